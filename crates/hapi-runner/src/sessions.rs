//! The sessions a runner tracks: session id → process, and who started it.
//!
//! The map is mirrored to `$HAPI_HOME/runner.sessions.json` (atomic writes) so a
//! runner that replaces another, or starts after one was killed with `kill -9`,
//! re-adopts every session whose process (PID **and** start time) is still alive.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Result, RunnerError};
use crate::process::ProcessId;
use crate::state::{SESSIONS_FILE, write_atomically};

/// "Started by" of a session the runner spawned.
pub const STARTED_BY_RUNNER: &str = "runner";
/// "Started by" of a session started by hand in a terminal.
pub const STARTED_BY_TERMINAL: &str = "hapi directly - likely by user from terminal";

/// One tracked session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackedSession {
    /// The hub's session id.
    pub session_id: String,
    /// The session's `hapi` process.
    pub pid: u32,
    /// Its start time (see [`ProcessId`]).
    pub pid_start_time: u64,
    /// [`STARTED_BY_RUNNER`], [`STARTED_BY_TERMINAL`], or what the session said.
    pub started_by: String,
    /// When the runner started tracking it (RFC 3339).
    pub tracked_since: String,
    /// The cgroup holding its memory and CPU limits (runner-spawned sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<crate::cgroup::SessionGroup>,
    /// How many times the runner restarted this session's chain to get it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u32,
    /// The failed session this one replaced, if it is a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_of: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TrackedSession {
    /// The session's process identity.
    pub fn process(&self) -> ProcessId {
        ProcessId {
            pid: self.pid,
            start_time: self.pid_start_time,
        }
    }
}

/// How a command names a session: its id, or `PID-12345`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionTarget {
    /// By session id.
    Id(String),
    /// By process id.
    Pid(u32),
}

impl SessionTarget {
    /// Parses `PID-12345` as a PID and anything else as a session id.
    pub fn parse(text: &str) -> SessionTarget {
        match text.strip_prefix("PID-").and_then(|n| n.parse().ok()) {
            Some(pid) => SessionTarget::Pid(pid),
            None => SessionTarget::Id(text.to_owned()),
        }
    }
}

impl std::fmt::Display for SessionTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionTarget::Id(id) => f.write_str(id),
            SessionTarget::Pid(pid) => write!(f, "PID-{pid}"),
        }
    }
}

/// The tracked sessions, persisted on every change.
#[derive(Debug)]
pub struct SessionRegistry {
    path: PathBuf,
    sessions: Mutex<BTreeMap<String, TrackedSession>>,
}

impl SessionRegistry {
    /// Loads the sessions file of `home`, keeping only sessions whose process is
    /// still the same live process.
    pub fn load(home: &Path) -> Result<SessionRegistry> {
        let path = home.join(SESSIONS_FILE);
        let saved: Vec<TrackedSession> = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!("ignoring unreadable {}: {e}", path.display());
                Vec::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(RunnerError::io("cannot read", path, e)),
        };
        let mut sessions = BTreeMap::new();
        for session in saved {
            if session.process().is_alive() {
                tracing::info!(
                    session = %session.session_id,
                    pid = session.pid,
                    "re-adopted live session"
                );
                sessions.insert(session.session_id.clone(), session);
            } else {
                tracing::info!(session = %session.session_id, pid = session.pid, "session ended while no runner watched it");
            }
        }
        let registry = SessionRegistry {
            path,
            sessions: Mutex::new(sessions),
        };
        registry.persist(&registry.sessions.lock().expect("sessions lock"));
        Ok(registry)
    }

    fn persist(&self, sessions: &BTreeMap<String, TrackedSession>) {
        let list: Vec<&TrackedSession> = sessions.values().collect();
        let bytes = serde_json::to_vec_pretty(&list).expect("sessions serialise");
        if let Err(e) = write_atomically(&self.path, &bytes) {
            tracing::warn!("{e}");
        }
    }

    /// Tracks a session (replacing an entry with the same id).
    pub fn add(&self, session: TrackedSession) {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.insert(session.session_id.clone(), session);
        self.persist(&sessions);
    }

    /// Changes a tracked session in place; `false` if it is not tracked.
    pub fn update(&self, session_id: &str, change: impl FnOnce(&mut TrackedSession)) -> bool {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let Some(session) = sessions.get_mut(session_id) else {
            return false;
        };
        change(session);
        self.persist(&sessions);
        true
    }

    /// All tracked sessions, by id.
    pub fn list(&self) -> Vec<TrackedSession> {
        self.sessions.lock().expect("sessions lock").values().cloned().collect()
    }

    /// The session named by `target`.
    pub fn find(&self, target: &SessionTarget) -> Option<TrackedSession> {
        let sessions = self.sessions.lock().expect("sessions lock");
        match target {
            SessionTarget::Id(id) => sessions.get(id).cloned(),
            SessionTarget::Pid(pid) => sessions.values().find(|s| s.pid == *pid).cloned(),
        }
    }

    /// Stops tracking a session.
    pub fn remove(&self, session_id: &str) -> Option<TrackedSession> {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let removed = sessions.remove(session_id);
        if removed.is_some() {
            self.persist(&sessions);
        }
        removed
    }

    /// Drops every session whose process is gone and returns them.
    pub fn prune(&self) -> Vec<TrackedSession> {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let dead: Vec<String> = sessions
            .values()
            .filter(|s| !s.process().is_alive())
            .map(|s| s.session_id.clone())
            .collect();
        let removed: Vec<TrackedSession> = dead.iter().filter_map(|id| sessions.remove(id)).collect();
        if !removed.is_empty() {
            self.persist(&sessions);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(SessionTarget::parse("PID-42"), SessionTarget::Pid(42));
        assert_eq!(SessionTarget::parse("PID-x"), SessionTarget::Id("PID-x".into()));
        assert_eq!(SessionTarget::parse("abc"), SessionTarget::Id("abc".into()));
    }

    #[test]
    fn live_sessions_are_re_adopted_and_dead_ones_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let me = ProcessId::current();
        let registry = SessionRegistry::load(dir.path()).unwrap();
        let live = TrackedSession {
            session_id: "live".into(),
            pid: me.pid,
            pid_start_time: me.start_time,
            started_by: STARTED_BY_RUNNER.into(),
            tracked_since: crate::state::now_rfc3339(),
            cgroup: None,
            restarts: 0,
            restart_of: None,
        };
        let reused = TrackedSession {
            session_id: "reused".into(),
            pid_start_time: me.start_time + 1,
            ..live.clone()
        };
        registry.add(live.clone());
        registry.add(reused.clone());
        let again = SessionRegistry::load(dir.path()).unwrap();
        assert_eq!(again.list(), vec![live.clone()]);
        registry.add(reused);
        assert_eq!(registry.prune().len(), 1);
        assert_eq!(registry.find(&SessionTarget::Pid(me.pid)), Some(live));
    }
}
