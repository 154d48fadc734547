//! Sessions: creation, lookup, and the connection-driven state changes.
use hapi_protocol::{
    AgentKind, AuditEntry, AuditKind, EventPayload, HubEvent, Session, SessionState, SessionUsageSummary,
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::events::record_event;
use crate::usage::budget_from;
use crate::{Result, StoreError, now_ms, rfc3339};

const SELECT: &str = "SELECT s.id, s.agent, s.cwd, s.state, s.last_seq, s.created_at, s.updated_at,
    (SELECT COUNT(*) FROM approvals a WHERE a.session_id = s.id AND a.state = 'pending'), s.skip_approvals,
    s.budget_max_tokens, s.budget_max_cost_usd, s.budget_paused,
    (SELECT COALESCE(SUM(u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_write_tokens), 0)
        FROM session_usage u WHERE u.session_id = s.id),
    (SELECT SUM(u.cost_usd) FROM session_usage u WHERE u.session_id = s.id)
    FROM sessions s";

fn from_row(row: &Row) -> rusqlite::Result<Session> {
    let agent: String = row.get(1)?;
    let state: String = row.get(3)?;
    let corrupt = |what: &str, v: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown {what} `{v}`").into(),
        )
    };
    Ok(Session {
        id: row.get(0)?,
        agent: agent.parse().map_err(|_| corrupt("agent", &agent))?,
        cwd: row.get(2)?,
        state: SessionState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        last_seq: row.get::<_, i64>(4)? as u64,
        created_at: rfc3339(row.get(5)?),
        updated_at: rfc3339(row.get(6)?),
        pending_approvals: row.get::<_, i64>(7)? as u32,
        skip_approvals: row.get(8)?,
        usage: SessionUsageSummary {
            budget: budget_from(row.get(9)?, row.get(10)?),
            budget_paused: row.get(11)?,
            total_tokens: row.get::<_, i64>(12)?.max(0) as u64,
            cost_usd: row.get(13)?,
        },
    })
}

/// One session.
pub fn session(conn: &Connection, id: &str) -> Result<Session> {
    conn.prepare_cached(&format!("{SELECT} WHERE s.id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .ok_or(StoreError::NotFound("session"))
}

/// All sessions, most recently updated first, at most `limit`.
pub fn list_sessions(conn: &Connection, limit: u32) -> Result<Vec<Session>> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} ORDER BY s.updated_at DESC, s.id DESC LIMIT ?1"))?;
    let rows = stmt.query_map([limit], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// SHA-256 (hex) of the session's token, for authenticating its wrapper.
pub fn session_token_hash(conn: &Connection, id: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT token_hash FROM sessions WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

/// Creates a session in state `starting` and announces it.
pub fn create_session(
    tx: &Transaction,
    id: &str,
    machine_id: Option<&str>,
    agent: AgentKind,
    cwd: &str,
    token_hash: &str,
) -> Result<(Session, HubEvent)> {
    let now = now_ms();
    tx.execute(
        "INSERT INTO sessions (id, machine_id, agent, cwd, state, token_hash, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'starting', ?5, ?6, ?6)",
        params![id, machine_id, agent.as_str(), cwd, token_hash, now],
    )?;
    let event = announce(tx, id)?;
    let EventPayload::Session { session } = &event.payload else {
        unreachable!()
    };
    Ok((session.clone(), event))
}

/// Turns a session's "skip approvals" on or off, records who did it in the
/// audit log, and announces the session. Setting it to what it already is
/// changes and records nothing.
pub fn set_skip_approvals(tx: &Transaction, id: &str, enabled: bool, actor: &str) -> Result<(Session, Vec<HubEvent>)> {
    let current = session(tx, id)?;
    if current.skip_approvals == enabled {
        return Ok((current, Vec::new()));
    }
    tx.execute(
        "UPDATE sessions SET skip_approvals = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, enabled, now_ms()],
    )?;
    crate::audit::append_audit(
        tx,
        AuditEntry {
            session_id: Some(id.to_owned()),
            actor: Some(actor.to_owned()),
            action: Some(
                if enabled {
                    "skip_approvals_enabled"
                } else {
                    "skip_approvals_disabled"
                }
                .into(),
            ),
            summary: Some(current.cwd.clone()),
            ..AuditEntry::new(AuditKind::Admin)
        },
    )?;
    let event = announce(tx, id)?;
    let EventPayload::Session { session } = &event.payload else {
        unreachable!()
    };
    Ok((session.clone(), vec![event]))
}

/// Sets the state and announces the session, unless it is already in that state.
pub(crate) fn set_state(tx: &Transaction, id: &str, state: SessionState) -> Result<Option<HubEvent>> {
    let changed = tx.execute(
        "UPDATE sessions SET state = ?2, updated_at = ?3 WHERE id = ?1 AND state <> ?2",
        params![id, state.as_str(), now_ms()],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    announce(tx, id).map(Some)
}

/// Records a `session` event carrying the session as it is now.
pub(crate) fn announce(tx: &Transaction, id: &str) -> Result<HubEvent> {
    let session = session(tx, id)?;
    let body = serde_json::to_string(&session)?;
    let seq = record_event(tx, "session", id, None, None, &body)?;
    Ok(HubEvent {
        seq,
        payload: EventPayload::Session { session },
    })
}

/// The wrapper connected: the session is `working` if a turn is open, else `idle`.
/// An ended session stays ended.
pub fn mark_connected(tx: &Transaction, id: &str) -> Result<Option<HubEvent>> {
    let (state, turn_open): (String, bool) = tx
        .query_row("SELECT state, turn_open FROM sessions WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .ok_or(StoreError::NotFound("session"))?;
    if state == SessionState::Ended.as_str() {
        return Ok(None);
    }
    let next = if turn_open {
        SessionState::Working
    } else {
        SessionState::Idle
    };
    set_state(tx, id, next)
}

/// The wrapper's connection dropped.
pub fn mark_disconnected(tx: &Transaction, id: &str) -> Result<Option<HubEvent>> {
    let ended: bool = tx
        .query_row("SELECT state = 'ended' FROM sessions WHERE id = ?1", [id], |r| r.get(0))
        .optional()?
        .unwrap_or(true);
    if ended {
        return Ok(None);
    }
    set_state(tx, id, SessionState::Disconnected)
}

/// At hub start no wrapper is connected yet: every live session is shown as
/// `disconnected` until its wrapper reconnects (a wrapper that died while the hub
/// was down would otherwise look alive forever).
pub fn mark_all_disconnected(tx: &Transaction) -> Result<Vec<HubEvent>> {
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM sessions WHERE state IN ('idle', 'working')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut events = Vec::with_capacity(ids.len());
    for id in ids {
        events.extend(set_state(tx, &id, SessionState::Disconnected)?);
    }
    Ok(events)
}
