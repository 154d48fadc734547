//! Frames between a session wrapper and the hub, over `GET /api/sessions/{id}/ws`.
//!
//! Delivery is at-least-once in both directions with idempotent receivers:
//! - wrapper → hub: every [`SessionFrame::Update`] carries a per-session
//!   `client_seq`; the hub stores it under `UNIQUE(session_id, client_seq)` and
//!   acknowledges cumulatively once committed. The wrapper resends everything
//!   unacknowledged after a reconnect.
//! - hub → wrapper: commands sit in a per-session outbox with increasing ids and are
//!   replayed in order on every connect until the wrapper acknowledges them; the
//!   wrapper skips ids it has already applied.
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{Decision, SessionUpdate};

/// Wrapper → hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
#[ts(export)]
pub enum SessionFrame {
    /// A history entry.
    Update {
        /// Per-session client sequence, from 1, increasing by one.
        client_seq: u64,
        /// The entry.
        update: SessionUpdate,
    },
    /// The wrapper applied every command up to and including `id`.
    CommandAck {
        /// Outbox id.
        id: u64,
    },
}

/// Hub → wrapper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
#[ts(export)]
pub enum HubFrame {
    /// Every update with `client_seq` up to and including this one is committed.
    Ack {
        /// Highest committed client sequence.
        client_seq: u64,
    },
    /// A command from the outbox.
    Command {
        /// Outbox id, increasing per session.
        id: u64,
        /// What to do.
        command: SessionCommand,
    },
}

/// What the hub asks a session to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export)]
pub enum SessionCommand {
    /// Send a prompt to the agent.
    Prompt {
        /// The prompt.
        text: String,
    },
    /// Answer a permission request.
    Decide {
        /// The request, as the driver named it.
        request_id: String,
        /// The decision.
        decision: Decision,
        /// Optional note for the agent.
        message: Option<String>,
    },
    /// Interrupt the current turn.
    Abort,
    /// End the session: stop the agent process.
    Stop,
}
