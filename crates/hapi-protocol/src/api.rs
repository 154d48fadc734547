//! Request and response bodies of the REST API (`docs/api.md`).
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{AgentKind, Approval, Decision, Message, Session};

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct Health {
    /// Always `ok` when the hub answers.
    pub status: String,
    /// Hub version.
    pub version: String,
    /// Seconds since the hub started.
    pub uptime_s: u64,
}

/// `GET /api/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SessionList {
    /// Newest first.
    pub sessions: Vec<Session>,
}

/// `GET /api/sessions/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SessionResponse {
    /// The session.
    pub session: Session,
}

/// `POST /api/sessions`: register a new session (used by `hapi claude`).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct CreateSession {
    /// The wrapped agent.
    pub agent: AgentKind,
    /// Working directory of the agent.
    pub cwd: String,
}

/// Answer to [`CreateSession`].
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct CreatedSession {
    /// The new session.
    pub session: Session,
    /// Session-scoped token for the wrapper's WebSocket. Shown once; the hub keeps
    /// only its hash.
    pub token: String,
}

/// `GET /api/sessions/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct MessagePage {
    /// Ascending by `seq`.
    pub messages: Vec<Message>,
    /// Whether more messages exist beyond this page in the direction asked.
    pub has_more: bool,
}

/// `POST /api/sessions/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SendMessage {
    /// The prompt.
    pub text: String,
}

/// Answer to accepted commands (prompt, abort, stop): the command is committed to
/// the session's outbox and is delivered, in order, when the session is connected.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct Accepted {
    /// Whether the session was connected when the command was accepted.
    pub delivered_now: bool,
}

/// `GET /api/approvals`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct ApprovalList {
    /// Oldest first.
    pub approvals: Vec<Approval>,
}

/// `POST /api/approvals/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct DecideApproval {
    /// The decision.
    pub decision: Decision,
    /// Optional note passed to the agent (shown as the denial reason).
    #[serde(default)]
    pub message: Option<String>,
    /// Where the decision was made; recorded with it. Defaults to `web`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub channel: Option<DecisionChannel>,
}

/// Where an approval was decided, for the record and the latency metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum DecisionChannel {
    /// The web UI in a browser on this machine.
    Web,
    /// The desktop app's window.
    DesktopWindow,
    /// A button on a desktop notification.
    DesktopNotification,
    /// A paired phone.
    Phone,
    /// The approval policy, without asking anyone.
    Policy,
    /// A command line or script using the API.
    Cli,
}

impl DecisionChannel {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionChannel::Web => "web",
            DecisionChannel::DesktopWindow => "desktop_window",
            DecisionChannel::DesktopNotification => "desktop_notification",
            DecisionChannel::Phone => "phone",
            DecisionChannel::Policy => "policy",
            DecisionChannel::Cli => "cli",
        }
    }
}

/// Answer to [`DecideApproval`] (and to `GET /api/approvals/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct ApprovalResponse {
    /// The approval as it is now.
    pub approval: Approval,
    /// For an allowed machine-scoped spawn request: the session that was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub session_id: Option<String>,
    /// For an allowed machine-scoped request the runner then failed to carry out:
    /// why. The decision itself stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<crate::ErrorBody>,
}

/// `POST /api/machines/{id}/sessions` when the directory does not exist yet:
/// a machine-scoped approval asks whether to create it (status 202).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SpawnNeedsApproval {
    /// The pending approval (tool `create_directory`).
    pub approval: Approval,
}

/// `POST /api/events/ticket`: a short-lived, single-use ticket for `?ticket=`,
/// because `EventSource` cannot send an `Authorization` header.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct EventTicket {
    /// The ticket.
    pub ticket: String,
    /// Seconds until it expires unused.
    pub expires_in_s: u64,
}

/// File name of [`HubStateFile`] inside `$HAPI_HOME`.
pub const HUB_STATE_FILE: &str = "hub.json";

/// `$HAPI_HOME/hub.json`: where the running hub listens. `hapi hub` writes it
/// (temp file, then rename) and removes it on exit; `hapi claude` and the runner
/// read it to find the hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HubStateFile {
    /// Base URL, e.g. `http://127.0.0.1:3006`.
    pub url: String,
    /// PID of the hub process.
    pub pid: u32,
    /// RFC 3339.
    pub started_at: String,
}
