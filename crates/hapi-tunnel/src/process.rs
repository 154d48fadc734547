//! Running the users' CLIs (`tailscale`, `cloudflared`): finding them, running a
//! command with a deadline, and stopping a sidecar by its PID.
//!
//! A missing program is reported before anything is spawned, as
//! [`TunnelError::MissingBinary`] with install instructions. A desktop app on
//! macOS starts with a minimal `PATH` (no Homebrew), so the default search adds
//! the usual install directories.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::TunnelError;

/// Where a provider looks for its CLI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SearchPath {
    /// `$PATH`, then `/usr/local/bin`, `/opt/homebrew/bin`, `/usr/bin`,
    /// `/usr/sbin` and the program's known app-bundle location.
    #[default]
    System,
    /// Only the directories of this `PATH`-style list.
    Only(OsString),
    /// Exactly this file.
    Program(PathBuf),
}

const WELL_KNOWN_DIRS: &[&str] = &["/usr/local/bin", "/opt/homebrew/bin", "/usr/bin", "/usr/sbin"];

/// Finds `name` as `search` says; `bundled` are full paths tried last with
/// [`SearchPath::System`] (e.g. the CLI inside a macOS app bundle).
pub(crate) fn find_program(name: &str, search: &SearchPath, bundled: &[&str]) -> Option<PathBuf> {
    let in_dirs = |dirs: &OsString| {
        std::env::split_paths(dirs)
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
    };
    match search {
        SearchPath::Program(path) => is_executable(path).then(|| path.clone()),
        SearchPath::Only(dirs) => in_dirs(dirs),
        SearchPath::System => std::env::var_os("PATH").and_then(|p| in_dirs(&p)).or_else(|| {
            WELL_KNOWN_DIRS
                .iter()
                .map(|d| Path::new(d).join(name))
                .chain(bundled.iter().map(PathBuf::from))
                .find(|p| is_executable(p))
        }),
    }
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// `program args…` as the user would type it.
pub(crate) fn command_line(program: &Path, args: &[String]) -> String {
    let name = program
        .file_name()
        .map_or_else(|| program.display().to_string(), |n| n.to_string_lossy().into_owned());
    std::iter::once(name)
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last lines a process wrote, for error messages.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tail {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl Tail {
    const KEEP: usize = 20;

    pub(crate) fn push(&self, line: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == Self::KEEP {
            lines.pop_front();
        }
        lines.push_back(line.trim_end().to_owned());
    }

    /// The kept lines joined, or "(no output)".
    pub(crate) fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.iter().all(|l| l.trim().is_empty()) {
            "(no output)".to_owned()
        } else {
            lines.iter().cloned().collect::<Vec<_>>().join("\n")
        }
    }
}

fn collect(reader: impl AsyncRead + Unpin + Send + 'static, tail: Tail) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut all = String::new();
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tail.push(&line);
            all.push_str(&line);
            all.push('\n');
        }
        all
    })
}

/// Runs `program args…` to completion within `deadline` and returns its
/// stdout. A non-zero exit is [`TunnelError::Command`] with the output; a
/// command still running at the deadline is killed and reported as
/// [`TunnelError::Timeout`] with what it printed (Tailscale prints a URL to
/// visit and waits when HTTPS is not yet enabled for the tailnet).
pub(crate) async fn run_cli(program: &Path, args: &[String], deadline: Duration) -> Result<String, TunnelError> {
    let line = command_line(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| TunnelError::io(format!("running `{line}`"), e))?;
    let seen = Tail::default();
    let stdout = collect(child.stdout.take().expect("piped stdout"), seen.clone());
    let stderr = collect(child.stderr.take().expect("piped stderr"), seen.clone());
    let status = match tokio::time::timeout(deadline, child.wait()).await {
        Ok(status) => status.map_err(|e| TunnelError::io(format!("waiting for `{line}`"), e))?,
        Err(_) => {
            let _ = child.kill().await;
            // The readers end at EOF; give them a moment to take the last lines.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                let _ = stdout.await;
                let _ = stderr.await;
            })
            .await;
            return Err(TunnelError::Timeout {
                what: format!("waiting for `{line}`"),
                after: deadline,
                detail: Some(seen.text()),
            });
        }
    };
    let out = stdout.await.unwrap_or_default();
    let err = stderr.await.unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        let output = [err.trim(), out.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        Err(TunnelError::Command {
            command: line,
            detail: format!("{status}: {output}"),
        })
    }
}

/// Stops a sidecar by its PID: SIGTERM, up to `grace` to exit, then SIGKILL.
/// Always reaps it.
pub(crate) async fn terminate(child: &mut Child, grace: Duration) {
    #[cfg(unix)]
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        // The child is not reaped until `wait` returns, so the PID is still ours.
        if kill(Pid::from_raw(pid), Signal::SIGTERM).is_ok() && tokio::time::timeout(grace, child.wait()).await.is_ok()
        {
            return;
        }
    }
    #[cfg(not(unix))]
    let _ = grace;
    let _ = child.kill().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_found_only_where_the_search_path_says() {
        let empty = tempfile::tempdir().unwrap();
        let only = SearchPath::Only(empty.path().as_os_str().to_owned());
        assert_eq!(find_program("sh", &only, &[]), None);
        assert!(find_program("sh", &SearchPath::System, &[]).is_some());
        let exact = SearchPath::Program(empty.path().join("nope"));
        assert_eq!(find_program("nope", &exact, &[]), None);
    }

    #[tokio::test]
    async fn run_cli_reports_exit_status_output_and_timeouts() {
        let sh = PathBuf::from("/bin/sh");
        let args = |s: &str| vec!["-c".to_owned(), s.to_owned()];
        let out = run_cli(&sh, &args("echo hi"), Duration::from_secs(5)).await.unwrap();
        assert_eq!(out, "hi\n");

        let err = run_cli(&sh, &args("echo nope >&2; exit 3"), Duration::from_secs(5))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exit status: 3") && text.contains("nope"), "{text}");

        let err = run_cli(
            &sh,
            &args("echo visit https://login.example/x; exec sleep 30"),
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, TunnelError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("https://login.example/x"), "{err}");
    }
}
