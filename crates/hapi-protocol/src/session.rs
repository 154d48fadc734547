//! Sessions and approvals as the hub reports them.
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Which agent CLI a session wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum AgentKind {
    /// Anthropic's Claude Code, driven over its stream-json control protocol.
    Claude,
}

impl AgentKind {
    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Claude => "claude",
        }
    }
}

impl std::str::FromStr for AgentKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "claude" => Ok(AgentKind::Claude),
            other => Err(format!("unknown agent `{other}` (known: claude)")),
        }
    }
}

/// Lifecycle of a session, as far as the hub can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum SessionState {
    /// Created; the wrapper has not connected yet.
    Starting,
    /// Connected and waiting for a prompt.
    Idle,
    /// Connected and in the middle of a turn.
    Working,
    /// The wrapper's connection dropped; it reconnects on its own if alive.
    Disconnected,
    /// The agent process ended; the session takes no more prompts.
    Ended,
}

impl SessionState {
    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Starting => "starting",
            SessionState::Idle => "idle",
            SessionState::Working => "working",
            SessionState::Disconnected => "disconnected",
            SessionState::Ended => "ended",
        }
    }

    /// Parses the database form; unknown text is a corrupt row.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "starting" => SessionState::Starting,
            "idle" => SessionState::Idle,
            "working" => SessionState::Working,
            "disconnected" => SessionState::Disconnected,
            "ended" => SessionState::Ended,
            _ => return None,
        })
    }
}

/// One agent session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct Session {
    /// Hub-assigned id (UUID v7, so ids sort by creation time).
    pub id: String,
    /// The wrapped agent.
    pub agent: AgentKind,
    /// Working directory of the agent.
    pub cwd: String,
    /// Current state.
    pub state: SessionState,
    /// Approvals of this session still waiting for a decision.
    pub pending_approvals: u32,
    /// Highest per-session message sequence number so far (0 when empty).
    pub last_seq: u64,
    /// The owner turned on "skip approvals" for this session: its requests are
    /// allowed without asking (recorded in the audit log; policy `deny` rules
    /// still deny). Off by default.
    #[serde(default)]
    pub skip_approvals: bool,
    /// Tokens and cost so far, the budget, and whether the budget paused the session.
    #[serde(default)]
    pub usage: crate::SessionUsageSummary,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// Decision on a permission request. The names are ACP's permission option kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum Decision {
    /// Run the tool this time.
    AllowOnce,
    /// Run the tool, and the same request from now on.
    AllowAlways,
    /// Do not run the tool this time.
    RejectOnce,
    /// Do not run the tool, and deny the same request from now on.
    RejectAlways,
}

impl Decision {
    /// Every decision, in the order a person is offered them.
    pub const ALL: [Decision; 4] = [
        Decision::AllowOnce,
        Decision::AllowAlways,
        Decision::RejectOnce,
        Decision::RejectAlways,
    ];

    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::AllowOnce => "allow_once",
            Decision::AllowAlways => "allow_always",
            Decision::RejectOnce => "reject_once",
            Decision::RejectAlways => "reject_always",
        }
    }

    /// Parses the database form.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }

    /// Whether the tool may run.
    pub fn allows(self) -> bool {
        matches!(self, Decision::AllowOnce | Decision::AllowAlways)
    }
}

/// One choice offered with a permission request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct PermissionOption {
    /// Agent-specific option id (ACP agents differ between versions; pick by `kind`).
    pub id: String,
    /// What choosing it means.
    pub kind: Decision,
}

impl PermissionOption {
    /// All four kinds, each with its kind name as id: for agents (like Claude
    /// Code's stdio protocol) that offer no options of their own.
    pub fn every_kind() -> Vec<PermissionOption> {
        Decision::ALL
            .into_iter()
            .map(|kind| PermissionOption {
                id: kind.as_str().to_owned(),
                kind,
            })
            .collect()
    }
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum ApprovalState {
    /// Waiting for a person (or, later, a policy).
    Pending,
    /// Decided; `decision` says how.
    Decided,
    /// The session ended before anyone decided.
    Cancelled,
}

impl ApprovalState {
    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Decided => "decided",
            ApprovalState::Cancelled => "cancelled",
        }
    }

    /// Parses the database form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ApprovalState::Pending,
            "decided" => ApprovalState::Decided,
            "cancelled" => ApprovalState::Cancelled,
            _ => return None,
        })
    }
}

/// A tool-approval request: "may I run this?" (a session's), or "may I do
/// this on that machine?" (a machine's, with no session yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct Approval {
    /// Hub-assigned id.
    pub id: String,
    /// Session that asked; `None` for a machine-scoped request, such as creating
    /// the directory for a session that does not exist yet.
    pub session_id: Option<String>,
    /// Machine the request is about, for machine-scoped requests.
    pub machine_id: Option<String>,
    /// Tool name as the agent reports it (e.g. `Bash`, `Write`).
    pub tool: String,
    /// The tool's input as the agent sent it (command, file path, …).
    #[ts(type = "unknown")]
    pub input: serde_json::Value,
    /// The choices offered.
    pub options: Vec<PermissionOption>,
    /// Where it stands.
    pub state: ApprovalState,
    /// The decision, once decided.
    pub decision: Option<Decision>,
    /// Who decided: `owner`, a paired device's name, `policy:<rule name>` or
    /// `skip-approvals`.
    pub decided_by: Option<String>,
    /// Optional note sent to the agent with the decision.
    pub message: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once decided.
    pub decided_at: Option<String>,
}
