//! Machines and the runner link: the daemon on each machine that spawns and
//! supervises sessions keeps one WebSocket to the hub
//! (`GET /api/machines/{id}/ws`) and answers the hub's RPCs over it.
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{AgentKind, ErrorBody};

/// Whether a machine's runner is reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum MachineState {
    /// Its runner is connected.
    Online,
    /// Its runner said it is stopping.
    ShuttingDown,
    /// No runner is connected (or it went silent).
    Offline,
}

impl MachineState {
    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Online => "online",
            MachineState::ShuttingDown => "shutting_down",
            MachineState::Offline => "offline",
        }
    }

    /// Parses the database form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "online" => MachineState::Online,
            "shutting_down" => MachineState::ShuttingDown,
            "offline" => MachineState::Offline,
            _ => return None,
        })
    }
}

/// What a runner tells the hub about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct RunnerInfo {
    /// Runner process id.
    pub pid: u32,
    /// CLI version the runner runs.
    pub version: String,
    /// RFC 3339.
    pub started_at: String,
}

/// A computer sessions run on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct Machine {
    /// Stable id (kept in `$HAPI_HOME/machine-id` on that machine).
    pub id: String,
    /// Display name (the host name unless set).
    pub name: String,
    /// Whether its runner is reachable.
    pub state: MachineState,
    /// The connected runner, if any.
    pub runner: Option<RunnerInfo>,
    /// RFC 3339 of the last frame from its runner.
    pub last_seen: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// `GET /api/machines`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct MachineList {
    /// Most recently seen first.
    pub machines: Vec<Machine>,
}

/// `GET /api/machines/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct MachineResponse {
    /// The machine.
    pub machine: Machine,
}

/// `POST /api/machines/{id}/sessions`: start a session on that machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SpawnSession {
    /// Which agent.
    pub agent: AgentKind,
    /// Working directory on that machine.
    pub cwd: String,
    /// First prompt.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Create `cwd` if it does not exist. The hub sets this only after a person
    /// approved the creation; a spawn without it fails with `directory_missing`.
    #[serde(default)]
    pub create_directory: bool,
    /// Run the session in a new git worktree of the repository at `cwd`, on a new
    /// branch of this name.
    #[serde(default)]
    pub worktree_branch: Option<String>,
}

/// Answer to [`SpawnSession`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SpawnedSession {
    /// The new session.
    pub session_id: String,
}

/// Runner → hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
#[ts(export)]
pub enum MachineFrame {
    /// Sent first on every connection, and whenever it changes.
    Hello {
        /// Display name.
        name: String,
        /// The runner.
        runner: RunnerInfo,
    },
    /// Liveness, every 20 s.
    Alive,
    /// The runner is stopping; its sessions keep running.
    ShuttingDown,
    /// The answer to an RPC.
    RpcResult {
        /// The RPC's id.
        id: u64,
        /// What it returned, or why it failed.
        outcome: RpcOutcome,
    },
}

/// Result of an RPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum RpcOutcome {
    /// Success, with the RPC's result.
    Ok(#[ts(type = "unknown")] serde_json::Value),
    /// Failure, with a stable code and a message for a person.
    Err(ErrorBody),
}

/// Hub → runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
#[ts(export)]
pub enum HubMachineFrame {
    /// A call the runner must answer with a [`MachineFrame::RpcResult`].
    Rpc {
        /// Increasing per connection.
        id: u64,
        /// What to do.
        call: MachineRpc,
    },
}

/// The hub's RPCs to a runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "method", rename_all = "kebab-case")]
#[ts(export)]
pub enum MachineRpc {
    /// Start a session; the result is a [`SpawnedSession`].
    SpawnSession(SpawnSession),
    /// Stop a session on this machine.
    StopSession {
        /// The session.
        session_id: String,
    },
    /// Stop the runner (sessions keep running).
    StopRunner,
}
