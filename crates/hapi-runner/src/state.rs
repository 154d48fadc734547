//! The files in `$HAPI_HOME` through which CLI commands find the runner:
//! `runner.state.json` (written atomically: temp file, then rename), the control
//! token `runner.token` (0600), and the runner logs under `logs/`.
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, RunnerError};

/// State file name.
pub const STATE_FILE: &str = "runner.state.json";
/// Lock file name.
pub const LOCK_FILE: &str = "runner.state.json.lock";
/// Control token file name.
pub const TOKEN_FILE: &str = "runner.token";
/// Tracked sessions file name.
pub const SESSIONS_FILE: &str = "runner.sessions.json";

/// Path of the state file.
pub fn state_path(home: &Path) -> PathBuf {
    home.join(STATE_FILE)
}

/// Path of the lock file.
pub fn lock_path(home: &Path) -> PathBuf {
    home.join(LOCK_FILE)
}

/// Directory of runner and session logs.
pub fn logs_dir(home: &Path) -> PathBuf {
    home.join("logs")
}

/// What `runner.state.json` holds. Field names are HAPI's; times are RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerState {
    /// PID of the runner.
    pub pid: u32,
    /// Port of the control server on 127.0.0.1.
    pub http_port: u16,
    /// When the runner started (RFC 3339).
    pub start_time: String,
    /// CLI version the runner runs.
    pub started_with_cli_version: String,
    /// mtime of the CLI binary when the runner started, ms since the epoch.
    pub started_with_cli_mtime_ms: i64,
    /// Last completed heartbeat (RFC 3339).
    pub last_heartbeat: String,
    /// The runner's log file.
    pub runner_log_path: String,
    /// The application the runner is embedded in (absent for `hapi runner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded_in: Option<String>,
    /// Limits, cgroup availability and restarts of the sessions this runner
    /// spawns (absent in files of older runners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionsReport>,
}

/// The `sessions` part of the state file: what `hapi runner status` shows
/// about session limits and restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsReport {
    /// The configured limits, for a person (`memory 2G, open files 4096`, or `none`).
    pub limits: String,
    /// Whether memory and CPU limits can be applied (a writable cgroup v2
    /// group, or the cgroup v1 fallback).
    pub cgroup_ready: bool,
    /// The cgroup status, for a person (why not, when not).
    pub cgroup: String,
    /// The restart policy (`never`, `on-failure:N`).
    pub restart: String,
    /// Delay before a first restart, in ms.
    pub restart_backoff_ms: u64,
    /// How long a spawned session has to report itself, in ms.
    pub start_grace_ms: u64,
    /// Sessions restarted since the runner started.
    pub restarts: u64,
    /// Sessions whose processes the kernel killed for the memory limit.
    pub oom_kills: u64,
}

impl RunnerState {
    /// Reads the state file; `Ok(None)` if there is none.
    pub fn read(home: &Path) -> Result<Option<RunnerState>> {
        let path = state_path(home);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| RunnerError::Corrupt {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RunnerError::io("cannot read", path, e)),
        }
    }

    /// Writes the state file atomically.
    pub fn write(&self, home: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("state serialises");
        write_atomically(&state_path(home), &bytes)
    }
}

/// Writes `path` through a temp file in the same directory and a rename, so a
/// reader sees the old or the new content, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        RunnerError::io("cannot write", path, e)
    })
}

/// Removes a file if present.
pub(crate) fn remove_if_present(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), "cannot remove: {e}");
    }
}

/// The control token, created (0600, exclusively) on first use. Every control
/// request carries it; the peer address is never trusted, since tunnelled
/// traffic also arrives from 127.0.0.1.
pub fn load_or_create_token(home: &Path) -> Result<String> {
    let path = home.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(RunnerError::io("cannot read", path, e)),
    }
    create_home(home)?;
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let token = hex::encode(bytes);
    // Written under a temp name with mode 0600, then renamed: never readable by
    // others, never seen half-written.
    let tmp = home.join(format!(".{TOKEN_FILE}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(token.as_bytes()).and_then(|()| f.sync_all()));
    written.map_err(|e| RunnerError::io("cannot write", &tmp, e))?;
    // A racing runner may have created one meanwhile: keep the first.
    match std::fs::hard_link(&tmp, &path) {
        Ok(()) => {
            remove_if_present(&tmp);
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            remove_if_present(&tmp);
            let token = std::fs::read_to_string(&path).map_err(|e| RunnerError::io("cannot read", &path, e))?;
            Ok(token.trim().to_owned())
        }
        Err(e) => Err(RunnerError::io("cannot create", path, e)),
    }
}

/// Reads the control token without creating one.
pub fn read_token(home: &Path) -> Result<String> {
    let path = home.join(TOKEN_FILE);
    std::fs::read_to_string(&path)
        .map(|t| t.trim().to_owned())
        .map_err(|e| RunnerError::io("cannot read the runner token", path, e))
}

/// Creates `$HAPI_HOME` (mode 0700) if it does not exist yet.
pub fn create_home(home: &Path) -> Result<()> {
    if home.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(home)
        .map_err(|e| RunnerError::io("cannot create", home, e))
}

/// The mtime of `path` in ms since the epoch (the identity of a CLI binary).
pub fn mtime_ms(path: &Path) -> Result<i64> {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| RunnerError::io("cannot stat", path, e))?;
    let ms = match modified.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    };
    Ok(ms)
}

/// Now, as RFC 3339 with milliseconds in UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A fresh runner log path, `logs/runner-YYYYMMDD-HHMMSS.log` (with `-N` added if
/// that second's name is taken). Creates `logs/`.
pub fn new_log_path(home: &Path) -> Result<PathBuf> {
    let dir = logs_dir(home);
    create_home(home)?;
    std::fs::create_dir_all(&dir).map_err(|e| RunnerError::io("cannot create", &dir, e))?;
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let mut path = dir.join(format!("runner-{stamp}.log"));
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("runner-{stamp}-{n}.log"));
        n += 1;
    }
    Ok(path)
}

/// The newest `logs/runner-*.log`, by modification time.
pub fn newest_log(home: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(logs_dir(home)).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("runner-") && name.ends_with(".log")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, path)| path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn state_round_trips_with_hapi_field_names() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RunnerState::read(dir.path()).unwrap(), None);
        let state = RunnerState {
            pid: 1,
            http_port: 2,
            start_time: now_rfc3339(),
            started_with_cli_version: "0.1.0".into(),
            started_with_cli_mtime_ms: 3,
            last_heartbeat: now_rfc3339(),
            runner_log_path: "/x.log".into(),
            embedded_in: None,
            sessions: None,
        };
        state.write(dir.path()).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(state_path(dir.path())).unwrap()).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "httpPort",
                "lastHeartbeat",
                "pid",
                "runnerLogPath",
                "startTime",
                "startedWithCliMtimeMs",
                "startedWithCliVersion"
            ]
        );
        assert_eq!(RunnerState::read(dir.path()).unwrap(), Some(state));
    }

    #[test]
    fn the_token_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let token = load_or_create_token(dir.path()).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(load_or_create_token(dir.path()).unwrap(), token);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
