//! The agent-neutral event model, shaped like ACP's `session/update`.
//!
//! Every driver (Claude's stream-json today; ACP and Codex app-server later) maps its
//! agent's output into [`SessionUpdate`]s, so the hub and the UI never learn an
//! agent's native protocol.
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{PermissionOption, Usage};

/// Status of a tool call, as in ACP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum ToolCallStatus {
    /// Announced; may be waiting for permission.
    Pending,
    /// Running.
    InProgress,
    /// Finished successfully.
    Completed,
    /// Failed or was denied.
    Failed,
}

/// One entry of a session's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export)]
pub enum SessionUpdate {
    /// A prompt a person sent (recorded by the hub when it accepts it).
    UserMessage {
        /// The prompt.
        text: String,
    },
    /// Text the agent wrote.
    AgentMessageChunk {
        /// The text.
        text: String,
    },
    /// The agent announced a tool call.
    ToolCall {
        /// Agent-assigned id, unique within the session.
        tool_call_id: String,
        /// Tool name.
        name: String,
        /// Short human title (the command, the file).
        title: String,
        /// Raw tool input.
        #[ts(type = "unknown")]
        input: serde_json::Value,
        /// Status at announcement.
        status: ToolCallStatus,
    },
    /// A tool call progressed or finished.
    ToolCallUpdate {
        /// Id from the matching [`SessionUpdate::ToolCall`].
        tool_call_id: String,
        /// New status.
        status: ToolCallStatus,
        /// Output or error text, when finished.
        output: Option<String>,
    },
    /// The agent asks whether it may run a tool. The hub turns this into an
    /// [`crate::Approval`]; the decision goes back as a [`crate::SessionCommand::Decide`].
    PermissionRequest {
        /// Driver-assigned id, unique within the session; the decision names it.
        request_id: String,
        /// Tool call this is about, when the agent says.
        tool_call_id: Option<String>,
        /// Tool name.
        tool: String,
        /// Raw tool input.
        #[ts(type = "unknown")]
        input: serde_json::Value,
        /// Offered choices.
        options: Vec<PermissionOption>,
    },
    /// The driver decided a request by itself, from a session rule set by an
    /// earlier "always" decision.
    PermissionAutoDecided {
        /// Tool name.
        tool: String,
        /// Raw tool input.
        #[ts(type = "unknown")]
        input: serde_json::Value,
        /// What the rule decided.
        decision: crate::Decision,
    },
    /// Tokens (and cost) one turn used with one model: deltas, never running
    /// totals. A turn that used several models sends one update per model.
    UsageUpdate {
        /// Usage numbers.
        usage: Usage,
    },
    /// The agent finished a turn.
    TurnEnd {
        /// Why the turn ended (`end_turn`, `interrupted`, `error`, …).
        stop_reason: String,
        /// Whether the turn ended in an error.
        is_error: bool,
    },
    /// Something went wrong that the person should see.
    Error {
        /// What happened.
        message: String,
    },
    /// The agent process ended; the session is over.
    SessionEnded {
        /// Why (`exited`, `stopped`, `spawn_failed`, …).
        reason: String,
        /// The agent's exit code, if it exited normally.
        exit_code: Option<i32>,
    },
}

/// One stored history entry of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct Message {
    /// Session it belongs to.
    pub session_id: String,
    /// Per-session sequence number, from 1, without gaps.
    pub seq: u64,
    /// Global event sequence number of the event that carried it.
    pub event_seq: u64,
    /// RFC 3339.
    pub created_at: String,
    /// The entry.
    pub update: SessionUpdate,
}
