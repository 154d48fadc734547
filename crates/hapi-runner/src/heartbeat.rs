//! One heartbeat cycle: prune dead sessions, notice a changed CLI binary (and
//! start the runner that will replace this one), check that this runner still
//! owns the state file, and record `lastHeartbeat`.
use crate::runner::RunnerHandle;
use crate::spawn::detached_command;
use crate::state::{RunnerState, mtime_ms, now_rfc3339};

/// Whether the runner goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    Continue,
    /// Another runner owns the state file: this one must exit.
    Lost,
}

pub(crate) struct Heartbeat {
    handle: RunnerHandle,
    state: RunnerState,
    /// The binary mtime a replacement runner was already started for.
    replacement_for: Option<i64>,
}

impl Heartbeat {
    pub(crate) fn new(handle: RunnerHandle, state: RunnerState) -> Self {
        Heartbeat {
            handle,
            state,
            replacement_for: None,
        }
    }

    pub(crate) async fn beat(&mut self) -> Beat {
        let config = self.handle.config().clone();
        self.handle.prune();

        // An embedded runner is replaced by restarting its app, not by itself.
        let binary = if config.embedded_in.is_some() {
            Err(None)
        } else {
            mtime_ms(&config.cli_path).map_err(Some)
        };
        match binary {
            Ok(now) if now != self.state.started_with_cli_mtime_ms && self.replacement_for != Some(now) => {
                tracing::info!(
                    recorded_mtime_ms = self.state.started_with_cli_mtime_ms,
                    current_mtime_ms = now,
                    "version mismatch: the CLI binary changed; starting a new runner to take over"
                );
                self.replacement_for = Some(now);
                self.start_replacement(&config.cli_path).await;
            }
            Ok(_) => {}
            Err(None) => {}
            // Mid-upgrade the binary may be missing for a moment: try next time.
            Err(Some(e)) => tracing::debug!("{e}"),
        }

        match RunnerState::read(&config.home) {
            Ok(Some(on_disk)) if on_disk.pid != self.state.pid => {
                tracing::info!(
                    other_pid = on_disk.pid,
                    "another runner owns the state file now; exiting"
                );
                return Beat::Lost;
            }
            Ok(Some(_)) => {}
            Ok(None) => tracing::warn!("the state file was removed; writing it again"),
            Err(e) => tracing::warn!("{e}; writing it again"),
        }
        self.state.last_heartbeat = now_rfc3339();
        self.state.sessions = Some(self.handle.sessions_report());
        tracing::debug!(sessions = self.handle.sessions().len(), "heartbeat");
        if let Err(e) = self.state.write(&config.home) {
            tracing::warn!("cannot record the heartbeat: {e}");
        }
        Beat::Continue
    }

    /// `hapi runner start`, detached: it starts the new runner, which stops this one.
    async fn start_replacement(&self, cli: &std::path::Path) {
        let mut cmd = match detached_command(cli, None) {
            Ok(cmd) => cmd,
            Err(e) => {
                tracing::warn!("cannot start a new runner: {e}");
                return;
            }
        };
        cmd.args(["runner", "start"]);
        match cmd.spawn() {
            Ok(mut child) => {
                tokio::spawn(async move {
                    let _ = child.wait().await;
                });
            }
            Err(e) => tracing::warn!("cannot start a new runner ({}): {e}", cli.display()),
        }
    }
}
