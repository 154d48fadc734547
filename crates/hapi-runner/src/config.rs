//! How the runner is configured: `$HAPI_HOME`, the CLI binary it stands for, and
//! the `HAPI_RUNNER_*` variables (validated here so every entry point rejects
//! the same bad values with the same message).
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Result, RunnerError};

/// Default heartbeat interval (`HAPI_RUNNER_HEARTBEAT_INTERVAL`), in ms.
pub const DEFAULT_HEARTBEAT_MS: u64 = 60_000;
/// Default control-request timeout (`HAPI_RUNNER_HTTP_TIMEOUT`), in ms.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 10_000;
/// Smallest accepted value of either variable, in ms.
pub const MIN_INTERVAL_MS: u64 = 1_000;

/// Reads a millisecond duration from `var`: unset or empty means `default`;
/// anything that is not a whole number of at least 1000 ms is an error naming it.
pub fn millis_from_env(var: &'static str, default: u64) -> Result<Duration> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => parse_millis(var, &v).map(Duration::from_millis),
        _ => Ok(Duration::from_millis(default)),
    }
}

fn parse_millis(var: &'static str, value: &str) -> Result<u64> {
    let ms: u64 = value.trim().parse().map_err(|_| RunnerError::InvalidEnv {
        var,
        value: value.to_owned(),
        reason: "not a number of milliseconds (e.g. 60000)".into(),
    })?;
    if ms < MIN_INTERVAL_MS {
        return Err(RunnerError::InvalidEnv {
            var,
            value: value.to_owned(),
            reason: format!("below the minimum of {MIN_INTERVAL_MS} ms"),
        });
    }
    Ok(ms)
}

/// `HAPI_RUNNER_HEARTBEAT_INTERVAL` (default 60000 ms, at least 1000).
pub fn heartbeat_interval_from_env() -> Result<Duration> {
    millis_from_env("HAPI_RUNNER_HEARTBEAT_INTERVAL", DEFAULT_HEARTBEAT_MS)
}

/// `HAPI_RUNNER_HTTP_TIMEOUT` (default 10000 ms, at least 1000).
pub fn http_timeout_from_env() -> Result<Duration> {
    millis_from_env("HAPI_RUNNER_HTTP_TIMEOUT", DEFAULT_HTTP_TIMEOUT_MS)
}

/// Everything a runner needs to run.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// `$HAPI_HOME`: state, lock, token, sessions file and `logs/`.
    pub home: PathBuf,
    /// The `hapi` executable: spawned for sessions and takeovers, and whose
    /// mtime is half of the runner's identity.
    pub cli_path: PathBuf,
    /// The CLI version: the other half of the identity.
    pub cli_version: String,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
    /// This runner's log file (recorded as `runnerLogPath`).
    pub log_path: PathBuf,
    /// How long a spawned session has to report itself (`session-started`):
    /// the start grace, `HAPI_SESSION_START_GRACE` (default 30 s).
    pub spawn_timeout: Duration,
    /// Between SIGTERM and SIGKILL when stopping a session or an old runner.
    pub stop_grace: Duration,
    /// Sessions are only spawned inside these directories
    /// (`HAPI_WORKSPACE_ROOTS`, default `$HOME`; see [`crate::workdir`]).
    pub workspace_roots: Vec<PathBuf>,
    /// The application this runner is embedded in (the desktop app), or `None`
    /// for `hapi runner`. An embedded runner is never taken over by
    /// `hapi runner start`, never replaces itself (the app's updates restart it),
    /// and `hapi runner stop` refuses it, saying whose it is.
    pub embedded_in: Option<String>,
    /// Limits and restart policy of the sessions this runner spawns
    /// (`HAPI_SESSION_*`, see [`crate::limits`]).
    pub sessions: crate::limits::SessionPolicy,
}

impl RunnerConfig {
    /// A configuration with the defaults, and the heartbeat, workspace roots,
    /// start grace and session policy from the environment.
    pub fn from_env(home: PathBuf, cli_path: PathBuf, cli_version: &str, log_path: PathBuf) -> Result<Self> {
        Ok(RunnerConfig {
            home,
            cli_path,
            cli_version: cli_version.to_owned(),
            heartbeat_interval: heartbeat_interval_from_env()?,
            log_path,
            spawn_timeout: crate::limits::start_grace_from_env()?,
            stop_grace: Duration::from_secs(5),
            workspace_roots: crate::workdir::workspace_roots_from_env()?,
            embedded_in: None,
            sessions: crate::limits::SessionPolicy::from_env()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_are_validated() {
        assert_eq!(parse_millis("X", "1000").unwrap(), 1000);
        assert_eq!(parse_millis("X", " 60000 ").unwrap(), 60000);
        for bad in ["abc", "10", "-5", "1.5", "999"] {
            let err = parse_millis("HAPI_RUNNER_HEARTBEAT_INTERVAL", bad)
                .unwrap_err()
                .to_string();
            assert!(err.contains("HAPI_RUNNER_HEARTBEAT_INTERVAL"), "{err}");
        }
    }
}
