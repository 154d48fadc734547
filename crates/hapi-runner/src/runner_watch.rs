//! Watching the sessions the runner spawned: their exit, out-of-memory kills
//! in their cgroup, and the restart policy for failed ones.
use super::*;

/// A runner-spawned session that exited with a failure.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) request: SpawnRequest,
    pub(super) cwd: PathBuf,
    pub(super) session_id: String,
    pub(super) reason: String,
    pub(super) restarts: u32,
}

/// A runner-spawned session being watched until it exits.
pub(super) struct Watched {
    pub(super) request: SpawnRequest,
    pub(super) cwd: PathBuf,
    pub(super) session_id: String,
    pub(super) pid: u32,
    pub(super) cgroup: Option<crate::cgroup::SessionGroup>,
    pub(super) restarts: u32,
}

/// `exit status 3`, `killed by signal 9`.
pub(super) fn describe_exit(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

impl RunnerHandle {
    /// Waits for a spawned session to exit; reads its cgroup's OOM kills,
    /// removes the cgroup, and reports a failure to the restart task.
    pub(super) async fn watch(self, mut child: tokio::process::Child, session: Watched) {
        let status = child.wait().await;
        let stopped = self.0.stopped.lock().expect("stopped lock").remove(&session.pid);
        let mut oom = None;
        if let Some(group) = &session.cgroup {
            oom = group.oom_kills().filter(|n| *n > 0);
            if let Some(kills) = oom {
                self.0.counters.oom_kills.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    session = %session.session_id,
                    pid = session.pid,
                    oom_kills = kills,
                    memory_max = %group.memory_max().unwrap_or_default(),
                    "[RUNNER LIMIT] session killed: its memory limit was reached"
                );
            }
            // The agent's processes may take a moment to leave the group.
            for _ in 0..20 {
                if group.remove() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let mut reason = match &status {
            Ok(status) if status.success() => {
                tracing::info!(session = %session.session_id, pid = session.pid, "session ended");
                return;
            }
            Ok(status) => describe_exit(status),
            Err(e) => format!("cannot wait for it: {e}"),
        };
        if stopped {
            tracing::info!(session = %session.session_id, pid = session.pid, %reason, "session stopped on request");
            return;
        }
        if *self.0.stop.borrow() {
            return;
        }
        if oom.is_some() {
            reason.push_str(", memory limit reached");
        }
        self.0.counters.failed_exits.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(session = %session.session_id, pid = session.pid, %reason, "[RUNNER RESTART] session failed");
        let _ = self.0.failures.send(Failure {
            request: session.request,
            cwd: session.cwd,
            session_id: session.session_id,
            reason,
            restarts: session.restarts,
        });
    }

    /// Applies the restart policy to a failed session: a new session in the
    /// same directory after a backoff, up to `on-failure:N` restarts in a row.
    /// The new session is a new hub session; its history starts with a note
    /// naming the one it replaces.
    pub(super) async fn restart(self, failure: Failure) {
        let policy = self.0.config.sessions.restart;
        let RestartPolicy::OnFailure { max } = policy else {
            tracing::info!(session = %failure.session_id, "[RUNNER RESTART] not restarted (HAPI_SESSION_RESTART=never)");
            return;
        };
        let Failure {
            request,
            cwd,
            session_id: previous,
            mut reason,
            mut restarts,
        } = failure;
        // The same agent and directory; never the first prompt again (it may
        // have been carried out half-way), and nothing to create.
        let request = SpawnRequest {
            directory: cwd.clone(),
            prompt: None,
            create_directory: false,
            worktree_branch: None,
            ..request
        };
        let mut stop = self.0.stop.subscribe();
        loop {
            if restarts >= max {
                tracing::warn!(
                    session = %previous,
                    %reason,
                    "[RUNNER RESTART] no restarts left ({policy}); the session stays ended"
                );
                return;
            }
            restarts += 1;
            let delay = RestartPolicy::backoff(self.0.config.sessions.restart_backoff, restarts);
            tracing::info!(session = %previous, %reason, restart = restarts, of = max, ?delay, "[RUNNER RESTART] restarting");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            self.0.counters.restarts.fetch_add(1, Ordering::Relaxed);
            let lineage = Lineage {
                restarts,
                restart_of: Some(previous.clone()),
                note: Some(format!(
                    "Restarted by the runner (restart {restarts} of {max}, HAPI_SESSION_RESTART={policy}): \
                     session {previous} in this directory ended with a failure ({reason})."
                )),
            };
            match self.start_session(&request, &cwd, lineage).await {
                Ok(new) => {
                    tracing::info!(
                        session = %previous,
                        new_session = %new.session_id,
                        pid = new.pid,
                        restart = restarts,
                        "[RUNNER RESTART] restarted"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(session = %previous, restart = restarts, "[RUNNER RESTART] the restart failed: {e}");
                    reason = format!("its restart failed: {e}");
                }
            }
        }
    }
}
