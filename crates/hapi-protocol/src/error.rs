//! The one error shape on the wire: `{"error":{"code","message"}}`.
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Stable, machine-readable error codes. Clients branch on these, never on the
/// message text, so a code is never renamed once shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum ErrorCode {
    /// The body is not valid JSON or a field has the wrong type or value.
    InvalidRequest,
    /// No or a wrong bearer token, or an expired or used ticket.
    Unauthorized,
    /// The id in the path does not exist.
    NotFound,
    /// The approval was already decided; the first decision stands.
    AlreadyDecided,
    /// The session has ended and takes no more prompts.
    SessionEnded,
    /// The request body is larger than the hub accepts.
    PayloadTooLarge,
    /// The machine's runner is not connected.
    MachineOffline,
    /// The runner could not do what was asked (its message says why).
    RunnerFailed,
    /// The runner did not answer in time.
    RunnerTimeout,
    /// The session's directory does not exist (the hub then asks whether to create it).
    DirectoryMissing,
    /// The directory is outside the machine's workspace roots.
    DirectoryOutsideRoots,
    /// The directory cannot be used or created; the message names the cause
    /// (permission denied, a file in the way, disk full, read-only filesystem).
    DirectoryUnusable,
    /// A git worktree could not be created.
    WorktreeFailed,
    /// The pairing secret or code is unknown, used, expired or withdrawn.
    PairingInvalid,
    /// Too many failed pairing attempts: pairing is locked for a while.
    PairingLocked,
    /// Phone access is off: turn it on (and pick how) first.
    RemoteOff,
    /// The chosen path is plaintext; it needs the person's explicit consent.
    ConsentRequired,
    /// The remote-access provider could not be started or is not healthy.
    TunnelFailed,
    /// The request's Host or Origin is not this hub's.
    ForbiddenOrigin,
    /// The approval policy text is invalid; the message starts with
    /// `line L, column C:` and says why. The policy in effect is unchanged.
    InvalidPolicy,
    /// The session's budget is reached: it takes no prompts until the budget is
    /// raised or cleared (`PUT /api/sessions/{id}/budget`), or it is stopped.
    BudgetReached,
    /// The disk holding the hub's database is full: nothing of the request
    /// was stored. Free some space, then retry.
    DiskFull,
    /// Something failed inside the hub; the request may be retried.
    Internal,
}

/// Body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct ErrorResponse {
    /// The error itself.
    pub error: ErrorBody,
}

/// Code and human-readable message of an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct ErrorBody {
    /// Stable code.
    pub code: ErrorCode,
    /// Explanation for a person; may change between versions.
    pub message: String,
}
