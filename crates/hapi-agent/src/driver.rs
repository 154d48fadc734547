//! The agent-neutral driver interface.
//!
//! A driver starts one agent process and speaks its native protocol; everything
//! outside the driver sees only [`SessionUpdate`]s going out and [`SessionCommand`]s
//! coming in. ACP and Codex app-server drivers plug in here without the hub or the
//! link changing.
use std::path::PathBuf;

use hapi_protocol::{AgentKind, SessionCommand, SessionUpdate};
use tokio::sync::{mpsc, oneshot};

use crate::AgentError;

/// How to start an agent process.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// The agent executable (already resolved by the caller).
    pub program: PathBuf,
    /// Extra arguments after the driver's own protocol flags.
    pub args: Vec<String>,
    /// Working directory of the agent.
    pub cwd: PathBuf,
    /// Extra environment variables for the agent.
    pub env: Vec<(String, String)>,
    /// File the agent's stderr is appended to; `None` discards it.
    pub stderr_log: Option<PathBuf>,
}

/// How an agent process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentExit {
    /// `exited` (on its own) or `stopped` (we stopped it).
    pub reason: String,
    /// Exit code, when it exited normally rather than by a signal.
    pub exit_code: Option<i32>,
}

/// A started agent.
///
/// `updates` ends with exactly one [`SessionUpdate::SessionEnded`] and then closes.
/// Dropping `commands` (every clone of it) counts as [`SessionCommand::Stop`].
#[derive(Debug)]
pub struct RunningAgent {
    /// Process id, which is also the id of the agent's process group.
    pub pid: u32,
    /// What the agent does, in order.
    pub updates: mpsc::Receiver<SessionUpdate>,
    /// What the agent should do.
    pub commands: mpsc::Sender<SessionCommand>,
    /// Resolves once the process has ended and its output is drained.
    pub exit: oneshot::Receiver<AgentExit>,
}

/// Starts agents of one kind.
pub trait AgentDriver: Send + Sync {
    /// Which agent this driver runs.
    fn kind(&self) -> AgentKind;

    /// Starts the agent. Must be called inside a tokio runtime.
    fn spawn(&self, spec: SpawnSpec) -> Result<RunningAgent, AgentError>;
}

/// The driver for an agent kind.
pub fn driver_for(kind: AgentKind) -> Box<dyn AgentDriver> {
    match kind {
        AgentKind::Claude => Box::new(crate::claude::ClaudeDriver),
    }
}
