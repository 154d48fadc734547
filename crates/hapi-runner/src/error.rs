//! Every way the runner and its clients can fail, with messages a person can act on.
use std::path::PathBuf;

use hapi_protocol::ErrorCode;

/// An error of the runner library.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// An environment variable holds something unusable.
    #[error("{var}={value:?} is invalid: {reason}")]
    InvalidEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why it is unusable.
        reason: String,
    },
    /// A file in `$HAPI_HOME` could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("cannot write", …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A state, lock or sessions file exists but cannot be parsed.
    #[error("{} is not valid: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No runner is running for this `$HAPI_HOME`.
    #[error("no runner is running (no live runner in {})", home.display())]
    NotRunning {
        /// The `$HAPI_HOME` looked at.
        home: PathBuf,
    },
    /// A live runner holds the lock, and this process may not take over.
    #[error("a runner is already running (PID {pid})")]
    AlreadyRunning {
        /// Its PID.
        pid: u32,
    },
    /// The runner's control server could not be reached or answered badly.
    #[error("cannot reach the runner's control server: {0}")]
    Unreachable(String),
    /// The control server answered with an error.
    #[error("the runner refused ({code}): {message}")]
    Refused {
        /// Stable error code, e.g. `not_found`.
        code: String,
        /// Explanation.
        message: String,
    },
    /// No tracked session matches the id or `PID-n` given.
    #[error("no session {0} is tracked by the runner (see `hapi runner list`)")]
    UnknownSession(String),
    /// A session could not be started.
    #[error("cannot start the session: {0}")]
    Spawn(String),
    /// The session's directory (or its git worktree) cannot be used; `code` is
    /// one of `DirectoryMissing`, `DirectoryOutsideRoots`, `DirectoryUnusable`
    /// and `WorktreeFailed`, and the message names the path and the cause.
    #[error("{message}")]
    Directory {
        /// Stable code for the hub and the control server.
        code: ErrorCode,
        /// Explanation for a person.
        message: String,
    },
    /// No hub could be found to link this machine to.
    #[error("no hub to connect to: {0}")]
    NoHub(String),
    /// The control server could not listen.
    #[error("cannot start the control server: {0}")]
    Listen(std::io::Error),
}

impl RunnerError {
    /// The stable code this error is reported with to the hub: the directory
    /// codes for [`RunnerError::Directory`], `RunnerFailed` for the rest.
    pub fn code(&self) -> ErrorCode {
        match self {
            RunnerError::Directory { code, .. } => *code,
            _ => ErrorCode::RunnerFailed,
        }
    }

    pub(crate) fn directory(code: ErrorCode, message: impl Into<String>) -> Self {
        RunnerError::Directory {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RunnerError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Result with [`RunnerError`].
pub type Result<T, E = RunnerError> = std::result::Result<T, E>;
