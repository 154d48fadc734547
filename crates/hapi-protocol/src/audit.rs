//! The audit log (`GET /api/audit`, `hapi audit`) and the approval policy
//! (`GET`/`PUT /api/policy`, per-session "skip approvals").
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{Decision, DecisionChannel};

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum AuditKind {
    /// An approval was decided (by a person, a paired phone, the policy,
    /// "skip approvals", or a session rule of an earlier "always").
    Decision,
    /// An agent announced (or asked to run) a mutating tool call: one that runs
    /// commands, edits or writes files, or touches the network.
    ToolCall,
    /// The owner changed something that governs approvals or access (the
    /// policy, a session's "skip approvals", the owner token).
    Admin,
}

impl AuditKind {
    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Decision => "decision",
            AuditKind::ToolCall => "tool_call",
            AuditKind::Admin => "admin",
        }
    }

    /// Parses the database form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "decision" => AuditKind::Decision,
            "tool_call" => AuditKind::ToolCall,
            "admin" => AuditKind::Admin,
            _ => return None,
        })
    }
}

/// One row of the audit log. Only `kind` is always set; which other fields are
/// depends on it (see `docs/operations.md`, "Audit log").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct AuditEntry {
    /// Increasing id; also the paging cursor (`before`).
    pub id: u64,
    /// RFC 3339, when it was recorded.
    pub at: String,
    /// What it records.
    pub kind: AuditKind,
    /// The session it belongs to, if any.
    pub session_id: Option<String>,
    /// The approval decided (`decision`).
    pub approval_id: Option<String>,
    /// The agent's tool call id (`tool_call`, and `decision` when known).
    pub tool_call_id: Option<String>,
    /// Who: `owner`, a paired device's name, `policy:<rule name>`,
    /// `skip-approvals`, `session-rule`, or the CLI for `admin` entries.
    pub actor: Option<String>,
    /// Where a decision was made.
    pub channel: Option<DecisionChannel>,
    /// The decision.
    pub decision: Option<Decision>,
    /// Tool name as the agent reports it (`Bash`, `Write`, …).
    pub tool: Option<String>,
    /// A short summary of the input: the command, the file path, the URL.
    pub summary: Option<String>,
    /// From the request to the decision, in milliseconds.
    pub latency_ms: Option<u64>,
    /// A tool call's outcome: `requested`, then `completed` or `failed`.
    pub outcome: Option<String>,
    /// An `admin` entry's action: `policy_updated`, `skip_approvals_enabled`,
    /// `skip_approvals_disabled`, `owner_token_rotated`.
    pub action: Option<String>,
}

impl AuditEntry {
    /// An entry of `kind` with nothing else set (the store assigns `id` and `at`).
    pub fn new(kind: AuditKind) -> Self {
        AuditEntry {
            id: 0,
            at: String::new(),
            kind,
            session_id: None,
            approval_id: None,
            tool_call_id: None,
            actor: None,
            channel: None,
            decision: None,
            tool: None,
            summary: None,
            latency_ms: None,
            outcome: None,
            action: None,
        }
    }
}

/// `GET /api/audit`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct AuditList {
    /// Entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Whether older entries match too: ask again with `before` = the last id.
    pub has_more: bool,
}

/// What a policy rule does with a request it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum PolicyAction {
    /// Allow once, without asking.
    Allow,
    /// Reject once, without asking.
    Deny,
    /// Ask a person (the default).
    Ask,
}

impl PolicyAction {
    /// The name used in `policy.toml` and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyAction::Allow => "allow",
            PolicyAction::Deny => "deny",
            PolicyAction::Ask => "ask",
        }
    }
}

/// One rule of the policy, as parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct PolicyRuleSummary {
    /// The rule's name (decisions are recorded as `policy:<name>`).
    pub name: String,
    /// What it does.
    pub action: PolicyAction,
    /// Only for this agent (`claude`), if set.
    pub agent: Option<String>,
    /// Only for these tools; empty: any tool.
    pub tools: Vec<String>,
    /// Shell command patterns (Bash); empty: any command.
    pub commands: Vec<String>,
    /// Path patterns (a file tool's path, else the session's directory); empty: anywhere.
    pub paths: Vec<String>,
}

/// `GET /api/policy` and the answer to `PUT /api/policy`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct PolicyDocument {
    /// Where the policy is kept (`$HAPI_HOME/policy.toml`).
    pub path: String,
    /// The policy file's text in effect (empty when there is no file).
    pub text: String,
    /// Its rules, in file order.
    pub rules: Vec<PolicyRuleSummary>,
    /// Set when the file was edited by hand and does not parse: where and
    /// why. No rule applies then (every request is asked), and `text` is the
    /// file's text, to fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub problem: Option<String>,
}

/// `PUT /api/policy`: the new text of `policy.toml`. It is validated first; an
/// invalid text is refused (`400 invalid_policy`, with the line and the
/// reason) and the policy in effect stays.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SetPolicy {
    /// The whole file.
    pub text: String,
}

/// `POST /api/sessions/{id}/skip-approvals`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SetSkipApprovals {
    /// On: every request of the session is allowed without asking (policy
    /// `deny` rules still deny). Off: back to the policy and asking.
    pub enabled: bool,
}
