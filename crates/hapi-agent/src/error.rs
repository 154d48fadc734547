//! The error type of this crate: what can make a session wrapper give up.
use std::path::PathBuf;

/// Why running a session failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent executable could not be started.
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// The executable that was tried.
        program: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The agent log file could not be opened.
    #[error("could not open agent log `{path}`: {source}")]
    Log {
        /// The log path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The hub URL is not something we can turn into a WebSocket URL.
    #[error("invalid hub url `{0}`: expected http://host:port or https://host:port")]
    HubUrl(String),
    /// The hub refused the session's WebSocket for good (bad token, unknown session).
    #[error("the hub rejected the session connection with HTTP {status}")]
    HubRejected {
        /// HTTP status of the refused upgrade.
        status: u16,
    },
    /// An internal task ended unexpectedly.
    #[error("internal task failed: {0}")]
    Internal(String),
}
