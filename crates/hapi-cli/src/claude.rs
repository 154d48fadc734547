//! `hapi claude`: a Claude Code session driven through the hub, in the foreground.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use hapi_agent::{EndNote, SessionOptions, run_session};
use hapi_protocol::AgentKind;
use hapi_runner::limits::{CGROUP_ENV, SESSION_NOTE_ENV, format_bytes};
use hapi_runner::{SessionLimits, cgroup};

use crate::hub_client::HubClient;

#[derive(Args)]
pub struct ClaudeArgs {
    /// Working directory of the agent (default: the current directory).
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// First prompt to send once the agent is up.
    #[arg(long, value_name = "TEXT")]
    prompt: Option<String>,
    /// Extra arguments passed to `claude` unchanged (after `--`).
    #[arg(last = true, value_name = "CLAUDE_ARGS")]
    claude_args: Vec<String>,
}

/// Finds the `claude` executable: `HAPI_CLAUDE_PATH`, else `claude` on PATH.
fn claude_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("HAPI_CLAUDE_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("HAPI_CLAUDE_PATH={} does not exist", path.display());
        }
        return Ok(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("claude"))
        .find(|candidate| candidate.is_file())
        .context("`claude` was not found on PATH; install Claude Code (`npm install -g @anthropic-ai/claude-code`) or set HAPI_CLAUDE_PATH")
}

/// This session's limits, applied to this process before the agent starts
/// (the agent inherits them): `RLIMIT_NOFILE` and `RLIMIT_CORE` always, and the
/// cgroup the runner made for it (`HAPI_CGROUP`) when there is one. Returns
/// the lines the session shows first, and the cgroup joined.
fn apply_limits(limits: &SessionLimits) -> (Vec<String>, Option<cgroup::SessionGroup>) {
    let mut notices: Vec<String> = std::env::var(SESSION_NOTE_ENV)
        .map(|text| {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for problem in limits.apply_rlimits() {
        tracing::warn!("{problem}");
        notices.push(format!("Limit not applied: {problem}."));
    }
    // One directory (cgroup v2, or an older runner), or one per cgroup v1
    // hierarchy joined with `:`.
    let mut group = std::env::var_os(CGROUP_ENV)
        .filter(|g| !g.is_empty())
        .map(|g| cgroup::SessionGroup::decode(&g));
    if let Some(dirs) = &group
        && let Err(e) = dirs.join()
    {
        let problem = format!(
            "Limits not applied: {}: cannot join the session cgroup {dirs}: {e}. The session runs without them.",
            limits.cgroup_text()
        );
        tracing::warn!("{problem}");
        notices.push(problem);
        group = None;
    }
    let by_runner = std::env::var(hapi_runner::STARTED_BY_ENV).is_ok_and(|v| v == hapi_runner::STARTED_BY_RUNNER);
    if limits.needs_cgroup() && group.is_none() && !by_runner {
        let problem = format!(
            "Limits not applied: {}: HAPI_SESSION_MEMORY_MAX and HAPI_SESSION_CPU_MAX apply to sessions the runner \
             starts; a session started in a terminal runs without them (wrap it, e.g. \
             `systemd-run --user --scope -p MemoryMax=2G hapi claude`).",
            limits.cgroup_text()
        );
        eprintln!("hapi: {problem}");
        notices.push(problem);
    }
    (notices, group)
}

/// The line a session shows when the kernel killed its agent for the memory limit.
fn oom_note(group: cgroup::SessionGroup, limits: &SessionLimits) -> EndNote {
    let limit = limits.memory_max.map(format_bytes).unwrap_or_else(|| "?".into());
    Arc::new(move |_reason, _code| {
        let kills = group.oom_kills().filter(|n| *n > 0)?;
        let note = format!(
            "killed: memory limit {limit} reached (the kernel ended {kills} process(es) of this session; \
             HAPI_SESSION_MEMORY_MAX)"
        );
        tracing::warn!("{note}");
        Some(note)
    })
}

/// Runs the session and returns the process exit code: 0 when it ended well
/// or was stopped, the agent's code when it failed, 1 when the agent was
/// killed by a signal (so the runner's restart policy sees a failure).
pub async fn run(args: ClaudeArgs) -> Result<i32> {
    crate::init_logging("warn");
    let limits = SessionLimits::from_env()?;
    let (notices, group) = apply_limits(&limits);
    let cwd = match args.cwd {
        Some(dir) => dir,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    let cwd = cwd
        .canonicalize()
        .with_context(|| format!("--cwd {} does not exist", cwd.display()))?;
    if !cwd.is_dir() {
        bail!("--cwd {} is not a directory", cwd.display());
    }
    let agent_path = claude_path()?;
    let hub = HubClient::discover()?;
    let created = hub.create_session(AgentKind::Claude, &cwd.to_string_lossy()).await?;
    // The session id is the first line of stdout, for scripts and the runner.
    println!("{}", created.session.id);
    // Report to the runner (starting it unless HAPI_NO_RUNNER_AUTOSTART=1), in
    // the background: the session never waits for, or fails because of, it.
    tokio::spawn(crate::runner::announce_session(created.session.id.clone()));

    let home = hapi_hub::HubConfig::from_env()?.home;
    let logs = home.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let options = SessionOptions {
        hub_url: hub.url.clone(),
        session_id: created.session.id.clone(),
        session_token: created.token,
        // Found through hub.json: follow the hub if it comes back elsewhere.
        hub_state_file: std::env::var_os("HAPI_HUB_URL")
            .is_none()
            .then(|| home.join(hapi_protocol::HUB_STATE_FILE)),
        agent: AgentKind::Claude,
        cwd,
        agent_path,
        agent_args: args.claude_args,
        initial_prompt: args.prompt,
        agent_log: Some(logs.join(format!("session-{}.log", created.session.id))),
        notices,
        end_note: group.map(|group| oom_note(group, &limits)),
    };
    let summary = run_session(options, crate::shutdown_signal())
        .await
        .context("session failed")?;
    Ok(match (summary.reason.as_str(), summary.exit_code) {
        ("stopped", _) => 0,
        (_, Some(code)) => code,
        (_, None) => 1,
    })
}
