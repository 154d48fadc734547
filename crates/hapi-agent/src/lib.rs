//! Runs one local agent CLI and relays it to the hub.
//!
//! Two halves meet here: a driver ([`AgentDriver`]) owns the agent process and
//! translates its native protocol into agent-neutral [`SessionUpdate`]s, and the
//! link ([`link`]) carries those updates to the hub over the session WebSocket with
//! at-least-once delivery, bringing hub commands back. [`run_session`] wires the two
//! together and is the one entry point the CLI calls.
#![deny(missing_docs)]

pub mod claude;
mod driver;
mod error;
pub mod link;
mod process;
mod session;

pub use driver::{AgentDriver, AgentExit, RunningAgent, SpawnSpec, driver_for};
pub use error::AgentError;
pub use session::{EndNote, SessionOptions, SessionSummary, run_session};

pub use hapi_protocol::{AgentKind, SessionCommand, SessionUpdate};
