//! The per-session outbox: commands for a session wrapper (prompts, decisions,
//! aborts, stop) wait here until the wrapper acknowledges them, so a command for a
//! disconnected session is delivered, in order, when it reconnects.
use hapi_protocol::SessionCommand;
use rusqlite::{Connection, Transaction, params};

use crate::{Result, now_ms};

/// Queues a command and returns its outbox id (increasing).
pub fn enqueue_command(tx: &Transaction, session_id: &str, command: &SessionCommand) -> Result<u64> {
    tx.prepare_cached("INSERT INTO outbox (session_id, body, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![session_id, serde_json::to_string(command)?, now_ms()])?;
    Ok(tx.last_insert_rowid() as u64)
}

/// Commands not yet acknowledged, in order.
pub fn pending_commands(conn: &Connection, session_id: &str) -> Result<Vec<(u64, SessionCommand)>> {
    let mut stmt = conn.prepare_cached("SELECT id, body FROM outbox WHERE session_id = ?1 ORDER BY id")?;
    let rows = stmt.query_map([session_id], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
    })?;
    rows.map(|r| {
        let (id, body) = r?;
        Ok((id, serde_json::from_str(&body)?))
    })
    .collect()
}

/// Drops every command up to and including `upto`: the wrapper applied them.
pub fn ack_commands(tx: &Transaction, session_id: &str, upto: u64) -> Result<()> {
    tx.prepare_cached("DELETE FROM outbox WHERE session_id = ?1 AND id <= ?2")?
        .execute(params![session_id, upto as i64])?;
    Ok(())
}
