//! Starting processes that must outlive the runner: sessions and, on a CLI
//! upgrade, the runner that replaces this one.
//!
//! Each gets its own session via util-linux `setsid` (which, for a child that is
//! not a group leader, calls setsid(2) and execs in place, so the PID stays the
//! one we record). Without that binary the child gets its own process group
//! (`process_group(0)`): calling setsid(2) ourselves would need `pre_exec`, which
//! is unsafe, and the workspace forbids unsafe code. stdin is `/dev/null` and
//! stdout/stderr go to a log file under `$HAPI_HOME/logs/`, never to the caller's.
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};

use crate::error::{Result, RunnerError};

/// Where util-linux `setsid` may live.
const SETSID_PATHS: [&str; 2] = ["/usr/bin/setsid", "/bin/setsid"];

/// Env var telling a session who started it (`runner` for sessions the runner spawns).
pub const STARTED_BY_ENV: &str = "HAPI_STARTED_BY";

/// A command for `program` that will run detached: its own session (or process
/// group), stdin from `/dev/null`, stdout and stderr to `log` (or `/dev/null`).
pub fn detached_command(program: &Path, log: Option<&Path>) -> Result<tokio::process::Command> {
    let mut cmd = match SETSID_PATHS.iter().map(Path::new).find(|p| p.is_file()) {
        Some(setsid) => {
            let mut cmd = tokio::process::Command::new(setsid);
            cmd.arg(program);
            cmd
        }
        None => {
            let mut cmd = tokio::process::Command::new(program);
            cmd.process_group(0);
            cmd
        }
    };
    let (out, err) = match log {
        Some(log) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| RunnerError::io("cannot open", log, e))?;
            let copy = file.try_clone().map_err(|e| RunnerError::io("cannot open", log, e))?;
            (Stdio::from(file), Stdio::from(copy))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    cmd.stdin(Stdio::null()).stdout(out).stderr(err).kill_on_drop(false);
    Ok(cmd)
}

/// A request to start a session on this machine: the body of the control
/// server's `spawn-session` endpoint (camelCase fields), and what the hub's
/// `spawn-session` RPC is translated into.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpawnRequest {
    /// The agent; only `claude` exists today.
    #[serde(default = "default_agent")]
    pub agent: String,
    /// Working directory: absolute, inside the workspace roots.
    pub directory: PathBuf,
    /// First prompt, if any.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Create `directory` (and its parents) if it does not exist; without it a
    /// missing directory fails with `directory_missing`.
    #[serde(default)]
    pub create_directory: bool,
    /// Run the session in a new git worktree of the repository at `directory`,
    /// on a new branch of this name.
    #[serde(default)]
    pub worktree_branch: Option<String>,
}

fn default_agent() -> String {
    "claude".into()
}

/// A session the runner started and that reported itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpawnedSession {
    /// The hub's session id.
    pub session_id: String,
    /// The session's `hapi` process.
    pub pid: u32,
    /// Its stdout/stderr log.
    pub log_path: PathBuf,
    /// The directory it runs in (resolved; the worktree for a worktree spawn).
    pub directory: PathBuf,
}

/// Refuses agents the runner cannot start.
pub(crate) fn check_agent(request: &SpawnRequest) -> Result<()> {
    if request.agent != "claude" {
        return Err(RunnerError::Spawn(format!(
            "unknown agent `{}` (supported: claude)",
            request.agent
        )));
    }
    Ok(())
}

/// Builds the `hapi claude …` command for `request`, to run in `cwd` (already
/// checked and prepared by [`crate::workdir`]).
pub(crate) fn session_command(
    cli: &Path,
    request: &SpawnRequest,
    cwd: &Path,
    log: &Path,
) -> Result<tokio::process::Command> {
    check_agent(request)?;
    let mut cmd = detached_command(cli, Some(log))?;
    cmd.arg("claude").arg("--cwd").arg(cwd);
    if let Some(prompt) = &request.prompt {
        cmd.arg("--prompt").arg(prompt);
    }
    cmd.env(STARTED_BY_ENV, crate::sessions::STARTED_BY_RUNNER)
        .env("HAPI_NO_RUNNER_AUTOSTART", "1");
    Ok(cmd)
}

/// A fresh log path for a spawned session: `logs/spawn-YYYYMMDD-HHMMSS-<random>.log`.
pub(crate) fn session_log_path(home: &Path) -> Result<PathBuf> {
    let dir = crate::state::logs_dir(home);
    std::fs::create_dir_all(&dir).map_err(|e| RunnerError::io("cannot create", &dir, e))?;
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let suffix: u16 = rand::random();
    Ok(dir.join(format!("spawn-{stamp}-{suffix:04x}.log")))
}
