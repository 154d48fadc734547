//! Fakes at the process and network edges, so the project's tests run real agent
//! code paths offline and fast.
//!
//! - [`start_fake_anthropic`]: a scripted Anthropic Messages API on loopback that
//!   real Claude Code can be pointed at with `ANTHROPIC_BASE_URL` (also the
//!   `fake-anthropic` binary, for tests that run in other processes).
//! - the `fake-claude` binary: a stand-in `claude` speaking the stdio control
//!   protocol, for driver tests and throughput benchmarks.
//! - [`install_executable`], [`write_executable`]: executables a test puts in
//!   place and runs at once, without "Text file busy".
//! - [`SmallDisk`]: a small tmpfs to fill, for full-disk tests.
#![deny(missing_docs)]

mod anthropic;
mod disk;
mod executable;
mod script;

pub use anthropic::{FakeAnthropic, start_fake_anthropic, start_fake_anthropic_on};
pub use disk::SmallDisk;
pub use executable::{install_executable, write_executable};
pub use script::{Reply, Script, Step, ToolUse};
