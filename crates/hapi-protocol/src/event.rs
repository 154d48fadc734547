//! The hub's event stream (`/api/events`, over SSE or WebSocket).
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{Approval, Machine, Message, Session};

/// One event of the global stream. `seq` is global, monotonic and gap-free in
/// what a client receives: resuming after `seq` yields every later event once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct HubEvent {
    /// Global sequence number (also the SSE `id:`).
    pub seq: u64,
    /// What happened.
    #[serde(flatten)]
    pub payload: EventPayload,
}

/// What an event says. Each carries the full new state of the thing it is about,
/// so a client never needs a follow-up request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
#[ts(export)]
pub enum EventPayload {
    /// A session was created or changed state.
    Session {
        /// The session as it is now.
        session: Session,
    },
    /// A session's history grew.
    Message {
        /// The new entry.
        message: Message,
    },
    /// An approval was requested, decided or cancelled.
    Approval {
        /// The approval as it is now.
        approval: Approval,
    },
    /// A machine's runner connected, disconnected or changed.
    Machine {
        /// The machine as it is now.
        machine: Machine,
    },
}
