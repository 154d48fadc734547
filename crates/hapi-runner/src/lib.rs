//! The HAPI runner: a per-machine daemon that keeps agent sessions alive.
//!
//! Why it exists: sessions must outlive the terminal that started them, the
//! desktop window, and even the runner itself; and a phone must be able to
//! start sessions on this machine. So sessions run as detached processes, and
//! the runner tracks them (id → PID + start time), spawns new ones, stops them
//! on request, replaces itself when the `hapi` binary changes, and lets CLI
//! commands drive it through a token-protected control server on 127.0.0.1.
//!
//! This crate is a library with no UI dependency: `hapi runner` runs it as a
//! background process, and the desktop app can embed it in-process (taking the
//! same lock and state file). The hub link ([`hub_link`]: the machine WebSocket
//! and the hub's RPCs) plugs in through [`HubLink`] and [`RunnerHandle`].
//!
//! Files in `$HAPI_HOME`: `runner.state.json` (see [`RunnerState`]),
//! `runner.state.json.lock` (see [`RunnerLock`]), `runner.token` (0600),
//! `runner.sessions.json` (see [`SessionRegistry`]) and `logs/runner-*.log`.
pub mod cgroup;
mod client;
mod config;
mod control;
mod error;
mod heartbeat;
mod hub_link;
pub mod limits;
mod lock;
mod process;
mod runner;
mod sessions;
mod spawn;
mod state;
mod workdir;

pub use client::{ControlClient, live_state};
pub use config::{
    DEFAULT_HEARTBEAT_MS, DEFAULT_HTTP_TIMEOUT_MS, MIN_INTERVAL_MS, RunnerConfig, heartbeat_interval_from_env,
    http_timeout_from_env, millis_from_env,
};
pub use control::{ListedSession, SessionList, SessionMetadata, SessionStarted, StopSession, router};
pub use error::{Result, RunnerError};
pub use hub_link::{ALIVE_EVERY, HubConnection, HubTarget, WsHubLink, hub_link, machine_id};
pub use limits::{RestartPolicy, SessionLimits, SessionPolicy};
pub use lock::{LockOutcome, RunnerLock};
pub use process::ProcessId;
pub use runner::{ExitReason, HubLink, NoHubLink, Runner, RunnerHandle, SessionCounts, StartOutcome};
pub use sessions::{STARTED_BY_RUNNER, STARTED_BY_TERMINAL, SessionRegistry, SessionTarget, TrackedSession};
pub use spawn::{STARTED_BY_ENV, SpawnRequest, SpawnedSession, detached_command};
pub use state::{
    LOCK_FILE, RunnerState, SESSIONS_FILE, STATE_FILE, SessionsReport, TOKEN_FILE, create_home, load_or_create_token,
    lock_path, logs_dir, mtime_ms, new_log_path, newest_log, now_rfc3339, read_token, state_path, write_atomically,
};
pub use workdir::{WORKSPACE_ROOTS_ENV, workspace_roots_from_env, worktree_path};
