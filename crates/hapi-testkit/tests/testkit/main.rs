//! Integration tests of the fakes, and of hapi-agent's Claude driver and
//! `run_session` against `fake-claude` (here because Cargo builds this crate's
//! binaries before its integration tests, so `CARGO_BIN_EXE_fake-claude` exists).
mod anthropic;
mod claude_driver;
mod session;
