//! `hapi runner …`: start, stop and inspect the runner daemon of `$HAPI_HOME`,
//! and the hooks `hapi claude` uses to report itself (and start the runner).
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use hapi_protocol::RunnerInfo;
use hapi_runner::{
    ControlClient, ExitReason, ProcessId, Runner, RunnerConfig, RunnerError, RunnerLock, RunnerState, STARTED_BY_ENV,
    STARTED_BY_RUNNER, STARTED_BY_TERMINAL, StartOutcome, detached_command, live_state, mtime_ms,
};

#[derive(Subcommand)]
pub enum RunnerCommand {
    /// Start the runner in the background (exits at once if the same runner is running).
    Start {
        /// Run in this process instead of detaching (used by `start` itself).
        #[arg(long, hide = true)]
        foreground: bool,
        /// Log file of a foreground runner (default: a new logs/runner-*.log).
        #[arg(long, hide = true, value_name = "FILE")]
        log_file: Option<PathBuf>,
    },
    /// Stop the runner gracefully; sessions keep running.
    Stop,
    /// Show the runner's PID, uptime, version, port, heartbeat and log.
    Status,
    /// List the sessions the runner tracks.
    List,
    /// Stop one session, by session id or `PID-12345`.
    StopSession {
        /// A session id, or PID-<pid>.
        #[arg(value_name = "SESSION_ID|PID-N")]
        target: String,
    },
    /// Print the path of the newest runner log (`tail -f $(hapi runner logs)`).
    Logs,
}

fn home() -> Result<PathBuf> {
    Ok(hapi_hub::HubConfig::from_env().context("invalid configuration")?.home)
}

fn cli_path() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find the hapi executable")
}

fn version() -> &'static str {
    hapi_protocol::VERSION
}

/// Runs a runner command; returns the exit code.
pub async fn run(command: RunnerCommand) -> Result<i32> {
    match command {
        RunnerCommand::Start {
            foreground: true,
            log_file,
        } => foreground(log_file).await,
        RunnerCommand::Start { foreground: false, .. } => {
            crate::init_logging("warn");
            start().await
        }
        RunnerCommand::Stop => {
            crate::init_logging("warn");
            stop().await
        }
        RunnerCommand::Status => status(),
        RunnerCommand::List => list().await,
        RunnerCommand::StopSession { target } => stop_session(&target).await,
        RunnerCommand::Logs => logs(),
    }
}

/// `hapi runner start`: detach a foreground runner and wait until it is up.
async fn start() -> Result<i32> {
    let home = home()?;
    // Rejected here, so the person sees the error rather than a log file.
    crate::config::refuse_unknown()?;
    hapi_runner::heartbeat_interval_from_env()?;
    hapi_runner::http_timeout_from_env()?;
    hapi_runner::workspace_roots_from_env()?;
    if let Some(e) = hapi_runner::limits::check_env().into_iter().next() {
        return Err(e.into());
    }
    let exe = cli_path()?;
    let mtime = mtime_ms(&exe)?;
    if let Some(state) = live_state(&home)? {
        if let Some(app) = &state.embedded_in {
            println!(
                "Runner already running in {app} (PID {}, HTTP port {})",
                state.pid, state.http_port
            );
            return Ok(0);
        }
        if state.started_with_cli_version == version() && state.started_with_cli_mtime_ms == mtime {
            println!(
                "Runner already running (PID {}, version {}, HTTP port {})",
                state.pid, state.started_with_cli_version, state.http_port
            );
            return Ok(0);
        }
        println!(
            "Runner PID {} runs another CLI (version {}, mtime {}); starting a new runner to take over",
            state.pid, state.started_with_cli_version, state.started_with_cli_mtime_ms
        );
    }
    let log = hapi_runner::new_log_path(&home)?;
    let mut cmd = detached_command(&exe, Some(&log))?;
    cmd.args(["runner", "start", "--foreground", "--log-file"]).arg(&log);
    let mut child = cmd.spawn().with_context(|| format!("cannot run {}", exe.display()))?;
    let pid = child.id().context("the runner exited at once")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(state) = live_state(&home)?
            && state.pid == pid
        {
            println!("Runner started (PID {pid}, HTTP port {})", state.http_port);
            println!("Log: {}", log.display());
            return Ok(0);
        }
        if let Some(status) = child.try_wait()? {
            if status.success()
                && let Some(state) = live_state(&home)?
            {
                // Another start won the race with the same identity.
                println!(
                    "Runner already running (PID {}, version {}, HTTP port {})",
                    state.pid, state.started_with_cli_version, state.http_port
                );
                return Ok(0);
            }
            bail!("the runner exited ({status}) before it was up; see {}", log.display());
        }
        if Instant::now() > deadline {
            bail!("the runner (PID {pid}) is not up after 60 s; see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The runner itself, in this process, logging to its log file.
async fn foreground(log_file: Option<PathBuf>) -> Result<i32> {
    let home = home()?;
    let log = match log_file {
        Some(log) => log,
        None => {
            let log = hapi_runner::new_log_path(&home)?;
            eprintln!("Runner log: {}", log.display());
            log
        }
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("HAPI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .init();
    let config = RunnerConfig::from_env(home, cli_path()?, version(), log)?;
    run_linked(config, crate::shutdown_signal()).await?;
    Ok(0)
}

/// Runs a runner linked to the hub until `shutdown` resolves (or a newer runner
/// takes over). `Ok(false)` when the same runner was already running.
pub async fn run_linked(config: RunnerConfig, shutdown: impl std::future::Future<Output = ()>) -> Result<bool> {
    tracing::info!(
        heartbeat_ms = config.heartbeat_interval.as_millis() as u64,
        embedded_in = ?config.embedded_in,
        "[RUNNER RUN] starting"
    );
    let (link, connection) = hapi_runner::hub_link(&config.home);
    match Runner::start(config, link).await {
        Ok(StartOutcome::Started(runner)) => {
            let info = RunnerInfo {
                pid: runner.state().pid,
                version: runner.state().started_with_cli_version.clone(),
                started_at: runner.state().start_time.clone(),
            };
            let linked = tokio::spawn(connection.run(runner.handle(), hostname(), info));
            let reason = runner.run(shutdown).await?;
            // Give the link a moment to tell the hub that this runner is stopping.
            let _ = tokio::time::timeout(Duration::from_secs(3), linked).await;
            if reason == ExitReason::Superseded {
                tracing::info!("replaced by a newer runner");
            }
            Ok(true)
        }
        Ok(StartOutcome::AlreadyRunning { state }) => {
            tracing::info!(
                pid = state.pid,
                "a runner with the same version and binary is already running"
            );
            Ok(false)
        }
        Err(e) => {
            tracing::error!("cannot start the runner: {e}");
            Err(e.into())
        }
    }
}

/// The configuration of a runner embedded in `app` (the desktop app): it spawns
/// sessions with this executable, which answers `hapi` subcommands itself, and
/// logs to the app's log.
pub fn embedded_config(home: PathBuf, app: &str, log: PathBuf) -> Result<RunnerConfig> {
    let mut config = RunnerConfig::from_env(home, cli_path()?, version(), log)?;
    config.embedded_in = Some(app.to_owned());
    Ok(config)
}

fn not_running(home: &Path) -> String {
    format!("No runner is running (HAPI_HOME={})", home.display())
}

/// `hapi runner stop`. Exits 0 when no runner runs: the wanted end state holds.
async fn stop() -> Result<i32> {
    let home = home()?;
    let timeout = hapi_runner::http_timeout_from_env()?;
    let (client, state) = match ControlClient::connect(&home, timeout) {
        Ok(found) => found,
        Err(RunnerError::NotRunning { .. }) => {
            println!("{}", not_running(&home));
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(app) = &state.embedded_in {
        eprintln!(
            "The runner for HAPI_HOME={} (PID {}) belongs to {app}; it stops when you quit {app} from its tray menu.",
            home.display(),
            state.pid
        );
        return Ok(1);
    }
    let holder = RunnerLock::holder(&home)?.filter(|h| h.pid == state.pid);
    if let Err(e) = client.stop().await {
        eprintln!("the control server did not answer ({e}); sending SIGTERM");
        if let Some(holder) = holder {
            holder.terminate(Duration::from_secs(5)).await;
        }
    }
    if let Some(holder) = holder
        && !holder.wait_gone(Duration::from_secs(20)).await
    {
        bail!("the runner (PID {}) is still running after 20 s", holder.pid);
    }
    println!("Runner stopped (PID {}); sessions keep running", state.pid);
    Ok(0)
}

fn human_duration(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "?".into())
}

/// `hapi runner status`. Exits 1 when no runner runs (like `systemctl status`).
fn status() -> Result<i32> {
    let home = home()?;
    let Some(state) = live_state(&home)? else {
        println!("{}", not_running(&home));
        if let Some(stale) = RunnerState::read(&home).ok().flatten() {
            println!("(stale state file for PID {}: that process is gone)", stale.pid);
        }
        return Ok(1);
    };
    let uptime = chrono::DateTime::parse_from_rfc3339(&state.start_time)
        .map(|t| human_duration(chrono::Utc::now().signed_duration_since(t)))
        .unwrap_or_else(|_| "?".into());
    println!("Runner is running");
    println!("  PID:            {}", state.pid);
    println!("  Uptime:         {uptime} (since {})", state.start_time);
    println!("  CLI version:    {}", state.started_with_cli_version);
    println!(
        "  CLI mtime:      {} ({})",
        state.started_with_cli_mtime_ms,
        rfc3339_ms(state.started_with_cli_mtime_ms)
    );
    println!("  HTTP port:      {}", state.http_port);
    println!("  Last heartbeat: {}", state.last_heartbeat);
    println!("  Log:            {}", state.runner_log_path);
    if let Some(sessions) = &state.sessions {
        println!("  Session limits: {}", sessions.limits);
        println!("  Cgroup:         {}", sessions.cgroup);
        println!(
            "  Restart policy: {} (first restart after {} ms, doubling); start grace {} ms",
            sessions.restart, sessions.restart_backoff_ms, sessions.start_grace_ms
        );
        println!(
            "  Restarts:       {} since start; memory-limit kills: {}",
            sessions.restarts, sessions.oom_kills
        );
    }
    if let Ok(mtime) = mtime_ms(&cli_path()?)
        && (mtime != state.started_with_cli_mtime_ms || version() != state.started_with_cli_version)
    {
        println!(
            "  Note: this hapi ({}, mtime {mtime}) differs; the runner replaces itself when its own binary changes, or on `hapi runner start`",
            version()
        );
    }
    Ok(0)
}

async fn connect() -> Result<Option<ControlClient>> {
    let home = home()?;
    match ControlClient::connect(&home, hapi_runner::http_timeout_from_env()?) {
        Ok((client, _)) => Ok(Some(client)),
        Err(RunnerError::NotRunning { .. }) => {
            eprintln!("{}; start it with `hapi runner start`", not_running(&home));
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// `hapi runner list`.
async fn list() -> Result<i32> {
    let Some(client) = connect().await? else {
        return Ok(1);
    };
    let list = client.list().await?;
    println!("Active Sessions ({}):", list.children.len());
    for s in list.children {
        let restarted = match (s.restarts, &s.restart_of) {
            (Some(n), Some(of)) => format!("  Restart {n} (replaces {of})"),
            _ => String::new(),
        };
        println!(
            "  - Session: {}  PID: {}  Started by: {}{restarted}",
            s.session_id, s.pid, s.started_by
        );
    }
    Ok(0)
}

/// `hapi runner stop-session ID|PID-n`.
async fn stop_session(target: &str) -> Result<i32> {
    let Some(client) = connect().await? else {
        return Ok(1);
    };
    match client.stop_session(target).await {
        Ok(()) => {
            println!("Session {target} stopped");
            Ok(0)
        }
        Err(e @ RunnerError::UnknownSession(_)) => {
            eprintln!("Error: {e}");
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

/// `hapi runner logs`.
fn logs() -> Result<i32> {
    let home = home()?;
    match hapi_runner::newest_log(&home) {
        Some(path) => {
            println!("{}", path.display());
            Ok(0)
        }
        None => {
            eprintln!("No runner logs in {}", hapi_runner::logs_dir(&home).display());
            Ok(1)
        }
    }
}

/// Tells the runner about a session this process runs, starting the runner
/// first unless `HAPI_NO_RUNNER_AUTOSTART=1`. Never fails the session: problems
/// are debug logs.
pub async fn announce_session(session_id: String) {
    if let Err(e) = announce(&session_id).await {
        tracing::debug!("the runner was not told about session {session_id}: {e:#}");
    }
}

async fn announce(session_id: &str) -> Result<()> {
    let home = home()?;
    let timeout = hapi_runner::http_timeout_from_env()?;
    let autostart = std::env::var("HAPI_NO_RUNNER_AUTOSTART").map_or(true, |v| v != "1");
    if autostart && live_state(&home)?.is_none() {
        let exe = cli_path()?;
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(["runner", "start"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let status = tokio::time::timeout(Duration::from_secs(60), cmd.status()).await;
        tracing::debug!("runner autostart: {status:?}");
    }
    let started_by = match std::env::var(STARTED_BY_ENV) {
        Ok(v) if v == STARTED_BY_RUNNER => STARTED_BY_RUNNER,
        _ => STARTED_BY_TERMINAL,
    };
    let (client, _) = ControlClient::connect(&home, timeout)?;
    client
        .session_started(session_id, ProcessId::current().pid, started_by)
        .await?;
    tracing::debug!("session {session_id} reported to the runner");
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "this machine".into())
}
