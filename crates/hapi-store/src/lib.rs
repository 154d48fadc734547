//! The hub's SQLite store.
//!
//! One database file holds machines, sessions, their histories, approvals, the
//! global event log, the per-session command outbox, the audit log, and token
//! usage with budgets. Design points:
//! - **One event log.** Every change the hub announces is a row of `events`, whose
//!   `seq` (INTEGER PRIMARY KEY AUTOINCREMENT) is the global, monotonic sequence
//!   number clients resume from. A session's history entries are the `message`
//!   events; they also carry a per-session `session_seq` and, when a session wrapper
//!   sent them, its `client_seq` under `UNIQUE(session_id, client_seq)`, which makes
//!   a wrapper's resend idempotent.
//! - **Single writer.** All writes go through functions taking a
//!   [`rusqlite::Transaction`]; the hub runs them on one writer thread and groups
//!   many into one COMMIT. Reads use separate connections (WAL lets them run while
//!   the writer writes) and are always paged, never a whole session.
//! - **Migrations in code**, versioned by `PRAGMA user_version`.
#![deny(missing_docs)]

mod approvals;
mod audit;
pub mod backup;
mod clock;
mod devices;
mod events;
mod machines;
mod outbox;
mod schema;
mod sessions;
pub mod tools;
mod usage;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

/// The SQLite binding, for callers that run store functions in their own transactions.
pub use rusqlite;

pub use approvals::{approval, create_machine_approval, decide_approval, list_approvals};
pub use audit::{AuditQuery, append_audit, list_audit, prune_audit};
pub use clock::{now_ms, rfc3339};
pub use devices::{create_device, device_by_token_hash, list_devices, revoke_all_devices, revoke_device, touch_device};
pub use events::{Appended, append_update, events_after, head_seq, messages_after, messages_before};
pub use machines::{
    ensure_machine, list_machines, machine, machine_connected, machine_seen, mark_machines_offline, set_machine_state,
};
pub use outbox::{ack_commands, enqueue_command, pending_commands};
pub use schema::SCHEMA_VERSION;
pub use sessions::{
    create_session, list_sessions, mark_all_disconnected, mark_connected, mark_disconnected, session,
    session_token_hash, set_skip_approvals,
};
pub use usage::{BudgetOutcome, session_usage, set_budget};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (I/O, full disk, constraint, …).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database file exists but is not a HAPI database or is damaged.
    #[error("database at {path} is unreadable or corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        reason: String,
    },
    /// The database was written by a newer HAPI.
    #[error("database schema version {found} is newer than this hapi supports ({supported}); upgrade hapi")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A stored JSON column did not parse.
    #[error("stored JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    /// The id does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The approval was already decided or cancelled; the first decision stands.
    #[error("approval already {0}")]
    AlreadyDecided(&'static str),
    /// The session has ended.
    #[error("session has ended")]
    SessionEnded,
    /// The session's budget is reached: it takes no prompts until the budget
    /// is raised or cleared. The text says how far (`Budget reached: N of M tokens`).
    #[error("{0}")]
    BudgetReached(String),
    /// The group COMMIT this write was part of failed; nothing of it is stored.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// The disk holding the database is full (SQLite's SQLITE_FULL, the
    /// kernel's ENOSPC): nothing of this write was stored, and everything
    /// committed before it is intact.
    #[error("the disk holding the database is full; nothing of this write was stored")]
    DiskFull,
}

impl StoreError {
    /// Whether this failure is a full disk, which a client can act on (free
    /// space and retry) unlike other database errors.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::DiskFull => true,
            StoreError::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            _ => false,
        }
    }
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Durability of a COMMIT. `Normal` survives a process crash (WAL); `Full` also
/// survives power loss, at the cost of an fsync per commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `PRAGMA synchronous=NORMAL`.
    #[default]
    Normal,
    /// `PRAGMA synchronous=FULL`.
    Full,
}

/// The database: a path, plus a small pool of read connections.
pub struct Store {
    path: PathBuf,
    durability: Durability,
    readers: Mutex<Vec<Connection>>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    ///
    /// A file that is not a SQLite database, or fails a quick integrity probe, is
    /// reported as [`StoreError::Corrupt`]; it is never replaced by a new database.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let store = Store {
            path,
            durability,
            readers: Mutex::new(Vec::new()),
        };
        let mut conn = store.connect(false)?;
        store.quick_check(&conn)?;
        schema::migrate(&mut conn).map_err(|e| match e {
            StoreError::Sqlite(e) => store.classify(e),
            other => other,
        })?;
        Ok(store)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the connection the single writer uses.
    pub fn writer(&self) -> Result<Connection> {
        self.connect(false)
    }

    /// Runs `f` on a pooled read-only connection.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = match self.readers.lock().expect("reader pool poisoned").pop() {
            Some(conn) => conn,
            None => self.connect(true)?,
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().expect("reader pool poisoned");
        // Keep a handful; extra connections from a burst are simply closed.
        if pool.len() < 8 {
            pool.push(conn);
        }
        out
    }

    fn connect(&self, read_only: bool) -> Result<Connection> {
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = Connection::open_with_flags(&self.path, flags).map_err(|e| self.classify(e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let sync = match self.durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON;"
        ))
        .map_err(|e| self.classify(e))?;
        Ok(conn)
    }

    /// `PRAGMA quick_check` (every page and record, without cross-checking
    /// indexes: ~20 ms for a 27 MB database), so that a damaged file stops the hub
    /// at start rather than failing requests later.
    fn quick_check(&self, conn: &Connection) -> Result<()> {
        let check = || -> rusqlite::Result<Vec<String>> {
            let mut stmt = conn.prepare("PRAGMA quick_check(5)")?;
            stmt.query_map([], |r| r.get::<_, String>(0))?.collect()
        };
        let problems = check().map_err(|e| self.classify(e))?;
        if problems != ["ok"] {
            return Err(StoreError::Corrupt {
                path: self.path.clone(),
                reason: format!("integrity check failed: {}", problems.join("; ")),
            });
        }
        Ok(())
    }

    /// Turns "file is not a database"-style errors into [`StoreError::Corrupt`].
    fn classify(&self, e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        match e.sqlite_error_code() {
            Some(NotADatabase | DatabaseCorrupt) => StoreError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            },
            _ => StoreError::Sqlite(e),
        }
    }
}
