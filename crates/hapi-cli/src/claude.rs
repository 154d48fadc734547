//! `hapi claude`: a Claude Code session driven through the hub, in the foreground.
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use hapi_agent::{SessionOptions, run_session};
use hapi_protocol::AgentKind;

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

/// Runs the session and returns the process exit code (the agent's, when known).
pub async fn run(args: ClaudeArgs) -> Result<i32> {
    crate::init_logging("warn");
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
    };
    let summary = run_session(options, crate::shutdown_signal())
        .await
        .context("session failed")?;
    Ok(summary.exit_code.unwrap_or(0))
}
