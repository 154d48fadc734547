//! Wire types of HAPI Desktop.
//!
//! Everything that crosses a process boundary is defined here once: the hub's REST
//! and event-stream payloads (read by the web UI, the phone and the CLI) and the
//! frames a session wrapper exchanges with the hub over its WebSocket. The web UI
//! gets these as TypeScript through ts-rs (`ui/src/generated/`), never by hand.
#![deny(missing_docs)]

mod api;
mod audit;
mod desktop;
mod error;
mod event;
mod machine;
mod pairing;
mod session;
mod update;
mod usage;
mod wire;

pub use api::*;
pub use audit::*;
pub use desktop::*;
pub use error::*;
pub use event::*;
pub use machine::*;
pub use pairing::*;
pub use session::*;
pub use update::*;
pub use usage::*;
pub use wire::*;

/// Version of this build, shared by the hub's `/health` and `hapi --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
