//! Agent processes live in their own process group so that stopping a session
//! also stops whatever the agent started (shells, language servers, …), and so a
//! signal aimed at the wrapper's terminal never reaches them directly.
use std::fs::OpenOptions;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::{AgentError, SpawnSpec};

/// How long an agent gets after its stdin closes before it is sent SIGTERM.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(3);
/// How long it gets after SIGTERM before SIGKILL.
pub(crate) const TERM_GRACE: Duration = Duration::from_secs(2);

/// Starts `spec.program` with `protocol_args` then `spec.args`, stdin and stdout
/// piped, stderr appended to the log (or discarded), in a new process group.
pub(crate) fn spawn_in_group(spec: &SpawnSpec, protocol_args: &[&str]) -> Result<Child, AgentError> {
    let stderr = match &spec.stderr_log {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| AgentError::Log {
                    path: path.clone(),
                    source,
                })?;
            Stdio::from(file)
        }
        None => Stdio::null(),
    };
    let mut command = Command::new(&spec.program);
    command
        .args(protocol_args)
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    command.spawn().map_err(|source| AgentError::Spawn {
        program: spec.program.clone(),
        source,
    })
}

/// Sends `signal` to the process group led by `pid`. A group that is already
/// gone is not an error.
pub(crate) fn signal_group(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Err(err) = killpg(Pid::from_raw(raw), signal)
        && err != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pid, ?signal, %err, "could not signal the agent's process group");
    }
}
