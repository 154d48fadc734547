//! Versioned migrations, applied in order at open. Each entry moves the schema
//! from `user_version = i` to `i + 1`; entries are never edited once released.
use rusqlite::Connection;

use crate::{Result, StoreError};

const MIGRATIONS: &[&str] = &[
    // 1: the core loop.
    r#"
    CREATE TABLE machines (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        id          TEXT PRIMARY KEY,
        machine_id  TEXT REFERENCES machines(id),
        agent       TEXT NOT NULL,
        cwd         TEXT NOT NULL,
        state       TEXT NOT NULL,
        -- a prompt was accepted and its turn has not ended yet
        turn_open   INTEGER NOT NULL DEFAULT 0,
        -- SHA-256 of the session-scoped token; the token itself is never stored
        token_hash  TEXT NOT NULL,
        last_seq    INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX sessions_updated ON sessions(updated_at);
    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT NOT NULL,          -- session | message | approval
        session_id  TEXT NOT NULL,
        session_seq INTEGER,                -- set for kind = message
        client_seq  INTEGER,                -- set for messages a wrapper sent
        body        TEXT NOT NULL,          -- JSON: the update, session or approval
        created_at  INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX events_session_seq ON events(session_id, session_seq)
        WHERE session_seq IS NOT NULL;
    CREATE UNIQUE INDEX events_client_seq ON events(session_id, client_seq)
        WHERE client_seq IS NOT NULL;
    CREATE TABLE approvals (
        id          TEXT PRIMARY KEY,
        session_id  TEXT NOT NULL REFERENCES sessions(id),
        request_id  TEXT NOT NULL,
        tool        TEXT NOT NULL,
        input       TEXT NOT NULL,
        options     TEXT NOT NULL,
        state       TEXT NOT NULL,
        decision    TEXT,
        decided_by  TEXT,
        message     TEXT,
        created_at  INTEGER NOT NULL,
        decided_at  INTEGER,
        UNIQUE(session_id, request_id)
    );
    CREATE INDEX approvals_state ON approvals(state, created_at);
    CREATE INDEX approvals_session_state ON approvals(session_id, state);
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id  TEXT NOT NULL REFERENCES sessions(id),
        body        TEXT NOT NULL,          -- JSON SessionCommand
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX outbox_session ON outbox(session_id, id);
    "#,
    // 2: machines get their runner's state. Machine events use kind = machine and
    // carry the machine id in events.session_id (the column names what an event
    // is about).
    r#"
    ALTER TABLE machines ADD COLUMN state TEXT NOT NULL DEFAULT 'offline';
    ALTER TABLE machines ADD COLUMN runner TEXT;          -- JSON RunnerInfo while connected
    ALTER TABLE machines ADD COLUMN last_seen INTEGER;
    "#,
    // 3: machine-scoped approvals (e.g. "create this directory for a new session"),
    // which belong to a machine and no session yet. SQLite cannot relax NOT NULL in
    // place, so the table is rebuilt.
    r#"
    CREATE TABLE approvals_v3 (
        id          TEXT PRIMARY KEY,
        session_id  TEXT REFERENCES sessions(id),
        machine_id  TEXT REFERENCES machines(id),
        request_id  TEXT NOT NULL,
        tool        TEXT NOT NULL,
        input       TEXT NOT NULL,
        options     TEXT NOT NULL,
        state       TEXT NOT NULL,
        decision    TEXT,
        decided_by  TEXT,
        message     TEXT,
        created_at  INTEGER NOT NULL,
        decided_at  INTEGER,
        UNIQUE(session_id, request_id),
        CHECK (session_id IS NOT NULL OR machine_id IS NOT NULL)
    );
    INSERT INTO approvals_v3 (id, session_id, machine_id, request_id, tool, input, options, state, decision,
                              decided_by, message, created_at, decided_at)
        SELECT id, session_id, NULL, request_id, tool, input, options, state, decision,
               decided_by, message, created_at, decided_at FROM approvals;
    DROP TABLE approvals;
    ALTER TABLE approvals_v3 RENAME TO approvals;
    CREATE INDEX approvals_state ON approvals(state, created_at);
    CREATE INDEX approvals_session_state ON approvals(session_id, state);
    "#,
    // 4: paired devices (phones). Only the SHA-256 of a device token is kept; a
    // revoked device keeps its row (revoked_at set) so the list can be audited.
    r#"
    CREATE TABLE devices (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        token_hash    TEXT NOT NULL UNIQUE,
        created_at    INTEGER NOT NULL,
        last_seen_at  INTEGER,
        revoked_at    INTEGER
    );
    CREATE INDEX devices_active ON devices(revoked_at, created_at);
    "#,
    // 5: the audit log (approval decisions, mutating tool calls, admin changes),
    // pruned by `at` (HAPI_AUDIT_RETENTION_DAYS); and a per-session opt-in to
    // skip approvals. No foreign keys: the log outlives what it records.
    r#"
    ALTER TABLE sessions ADD COLUMN skip_approvals INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE approvals ADD COLUMN tool_call_id TEXT;
    CREATE TABLE audit (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        at            INTEGER NOT NULL,     -- ms since the epoch
        kind          TEXT NOT NULL,        -- decision | tool_call | admin
        session_id    TEXT,
        approval_id   TEXT,
        tool_call_id  TEXT,
        actor         TEXT,
        channel       TEXT,
        decision      TEXT,
        tool          TEXT,
        summary       TEXT,
        latency_ms    INTEGER,
        outcome       TEXT,
        action        TEXT
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE INDEX audit_session ON audit(session_id, id);
    CREATE INDEX audit_tool_call ON audit(session_id, tool_call_id) WHERE tool_call_id IS NOT NULL;
    "#,
    // 6: token usage per session and model, added up in the transaction that
    // stores each usage update (so a resent update, refused by the client_seq
    // index, is never counted twice), and a per-session budget. Usage stored
    // before this version is folded in as model `unknown`, tokens only: those
    // updates carried the process's running cost, not the turn's.
    r#"
    CREATE TABLE session_usage (
        session_id          TEXT NOT NULL REFERENCES sessions(id),
        model               TEXT NOT NULL,
        input_tokens        INTEGER NOT NULL DEFAULT 0,
        output_tokens       INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens   INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
        cost_usd            REAL,               -- NULL while no update for the model carried a cost
        updates             INTEGER NOT NULL DEFAULT 0,
        updated_at          INTEGER NOT NULL,
        PRIMARY KEY (session_id, model)
    ) WITHOUT ROWID;
    ALTER TABLE sessions ADD COLUMN budget_max_tokens INTEGER;
    ALTER TABLE sessions ADD COLUMN budget_max_cost_usd REAL;
    ALTER TABLE sessions ADD COLUMN budget_paused INTEGER NOT NULL DEFAULT 0;
    INSERT INTO session_usage (session_id, model, input_tokens, output_tokens, updates, updated_at)
        SELECT session_id, 'unknown',
               SUM(COALESCE(json_extract(body, '$.usage.input_tokens'), 0)),
               SUM(COALESCE(json_extract(body, '$.usage.output_tokens'), 0)),
               COUNT(*), MAX(created_at)
        FROM events
        WHERE kind = 'message' AND json_extract(body, '$.kind') = 'usage_update'
              AND session_id IN (SELECT id FROM sessions)
        GROUP BY session_id;
    "#,
];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies every migration newer than the file's `user_version`.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = SCHEMA_VERSION;
    if current > supported {
        return Err(StoreError::TooNew {
            found: current,
            supported,
        });
    }
    for (version, sql) in (current + 1..).zip(&MIGRATIONS[current as usize..]) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
