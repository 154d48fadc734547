//! The runner daemon, process level: real `hapi` binaries (a private copy per
//! test, so touching its mtime disturbs no other test), a temp `HAPI_HOME`, a
//! real hub, sessions running `fake-claude`, and a 1 s heartbeat.
//!
//! Sessions the runner spawns are not children of the test: each test kills the
//! ones it knows by PID (process group) and finally checks that no process
//! started with its `HAPI_HOME` is left.
mod browser;
mod env;
mod lifecycle;
mod limits;
mod remote;
