//! The global event log and the session histories stored in it.
use hapi_protocol::{
    AuditEntry, AuditKind, DecisionChannel, EventPayload, HubEvent, Message, SessionCommand, SessionState,
    SessionUpdate,
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::approvals::{cancel_pending, create_approval};
use crate::audit::{append_audit, audit_tool_call, audit_tool_outcome};
use crate::sessions::{announce, set_state};
use crate::tools::tool_summary;
use crate::usage::{enforce_budget, record_usage, refuse_if_paused};
use crate::{Result, StoreError, now_ms, rfc3339};

/// Appends one row to the event log and returns its global sequence number.
pub(crate) fn record_event(
    tx: &Transaction,
    kind: &str,
    session_id: &str,
    session_seq: Option<u64>,
    client_seq: Option<u64>,
    body: &str,
) -> Result<u64> {
    tx.prepare_cached(
        "INSERT INTO events (kind, session_id, session_seq, client_seq, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        kind,
        session_id,
        session_seq.map(|v| v as i64),
        client_seq.map(|v| v as i64),
        body,
        now_ms()
    ])?;
    Ok(tx.last_insert_rowid() as u64)
}

/// What [`append_update`] did.
#[derive(Debug, Default)]
pub struct Appended {
    /// Events to publish, in sequence order. Empty for a duplicate.
    pub events: Vec<HubEvent>,
    /// The `client_seq` was already stored: a resend after a lost ack.
    pub duplicate: bool,
    /// Commands it queued in the session's outbox (an `Abort` when a usage
    /// update reached the budget during a turn), to push to the wrapper.
    pub commands: Vec<(u64, SessionCommand)>,
}

/// Appends a history entry to a session and applies what it implies: a prompt
/// opens a turn, a turn end closes it, a permission request creates an approval,
/// the end of the session cancels its pending approvals.
///
/// `client_seq` is set for entries a session wrapper sent; storing the same one
/// twice is a no-op reported as `duplicate`. A prompt to an ended session is
/// refused with [`StoreError::SessionEnded`].
pub fn append_update(
    tx: &Transaction,
    session_id: &str,
    client_seq: Option<u64>,
    update: &SessionUpdate,
) -> Result<Appended> {
    if let Some(cs) = client_seq {
        let seen = tx
            .prepare_cached("SELECT 1 FROM events WHERE session_id = ?1 AND client_seq = ?2")?
            .query_row(params![session_id, cs as i64], |_| Ok(()))
            .optional()?;
        if seen.is_some() {
            return Ok(Appended {
                duplicate: true,
                ..Appended::default()
            });
        }
    }
    let (state, last_seq): (String, i64) = tx
        .prepare_cached("SELECT state, last_seq FROM sessions WHERE id = ?1")?
        .query_row([session_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or(StoreError::NotFound("session"))?;
    let ended = state == SessionState::Ended.as_str();
    if ended && matches!(update, SessionUpdate::UserMessage { .. }) {
        return Err(StoreError::SessionEnded);
    }
    // A prompt through the API (no client_seq) to a session its budget paused.
    // A wrapper's own first prompt is never refused: its link would resend it
    // forever.
    if client_seq.is_none() && matches!(update, SessionUpdate::UserMessage { .. }) {
        refuse_if_paused(tx, session_id)?;
    }
    let mut commands = Vec::new();

    let seq = last_seq as u64 + 1;
    let now = now_ms();
    let body = serde_json::to_string(update)?;
    let event_seq = record_event(tx, "message", session_id, Some(seq), client_seq, &body)?;
    tx.prepare_cached("UPDATE sessions SET last_seq = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![session_id, seq as i64, now])?;

    let mut events = vec![HubEvent {
        seq: event_seq,
        payload: EventPayload::Message {
            message: Message {
                session_id: session_id.to_owned(),
                seq,
                event_seq,
                created_at: rfc3339(now),
                update: update.clone(),
            },
        },
    }];
    match update {
        SessionUpdate::UserMessage { .. } => {
            tx.execute("UPDATE sessions SET turn_open = 1 WHERE id = ?1", [session_id])?;
            // A disconnected or not yet connected session shows that until its
            // wrapper connects (and then becomes `working`, as the turn is open).
            if state == SessionState::Idle.as_str() {
                events.extend(set_state(tx, session_id, SessionState::Working)?);
            }
        }
        SessionUpdate::TurnEnd { .. } if !ended => {
            tx.execute("UPDATE sessions SET turn_open = 0 WHERE id = ?1", [session_id])?;
            // A permission request belongs to its turn: once the turn is over
            // (e.g. interrupted while waiting), nobody can act on it any more.
            let cancelled = cancel_pending(tx, session_id)?;
            let any_cancelled = !cancelled.is_empty();
            events.extend(cancelled);
            match set_state(tx, session_id, SessionState::Idle)? {
                Some(ev) => events.push(ev),
                None if any_cancelled => events.push(announce(tx, session_id)?),
                None => {}
            }
        }
        SessionUpdate::PermissionRequest {
            request_id,
            tool_call_id,
            tool,
            input,
            options,
        } if !ended => {
            audit_tool_call(tx, session_id, tool_call_id.as_deref(), tool, input)?;
            if let Some(ev) = create_approval(
                tx,
                session_id,
                request_id,
                tool_call_id.as_deref(),
                tool,
                input,
                options,
            )? {
                events.push(ev);
                // The pending count is part of the session as clients see it.
                events.push(announce(tx, session_id)?);
            }
        }
        SessionUpdate::ToolCall {
            tool_call_id,
            name,
            input,
            ..
        } => audit_tool_call(tx, session_id, Some(tool_call_id), name, input)?,
        SessionUpdate::ToolCallUpdate {
            tool_call_id, status, ..
        } => audit_tool_outcome(tx, session_id, tool_call_id, *status)?,
        SessionUpdate::PermissionAutoDecided { tool, input, decision } => {
            // The wrapper answered by itself from a session rule ("always").
            append_audit(
                tx,
                AuditEntry {
                    session_id: Some(session_id.to_owned()),
                    actor: Some("session-rule".into()),
                    channel: Some(DecisionChannel::Policy),
                    decision: Some(*decision),
                    tool: Some(tool.clone()),
                    summary: Some(tool_summary(tool, input)),
                    latency_ms: Some(0),
                    ..AuditEntry::new(AuditKind::Decision)
                },
            )?;
        }
        SessionUpdate::UsageUpdate { usage } => {
            // Counted once: a resend never gets here (client_seq check above).
            record_usage(tx, session_id, usage)?;
            let outcome = enforce_budget(tx, session_id)?;
            commands = outcome.commands;
            if outcome.events.is_empty() {
                // The totals are part of the session as clients see it.
                events.push(announce(tx, session_id)?);
            } else {
                events.extend(outcome.events);
            }
        }
        SessionUpdate::SessionEnded { .. } => {
            tx.execute("UPDATE sessions SET turn_open = 0 WHERE id = ?1", [session_id])?;
            events.extend(cancel_pending(tx, session_id)?);
            // Always announce: the pending count may have dropped even if the
            // state was already `ended`.
            match set_state(tx, session_id, SessionState::Ended)? {
                Some(ev) => events.push(ev),
                None => events.push(announce(tx, session_id)?),
            }
        }
        _ => {}
    }
    Ok(Appended {
        events,
        duplicate: false,
        commands,
    })
}

type EventRow = (u64, String, String, Option<u64>, String, i64);

fn event_from_row(row: &Row) -> rusqlite::Result<EventRow> {
    Ok((
        row.get::<_, i64>(0)? as u64,
        row.get(1)?,
        row.get(2)?,
        row.get::<_, Option<i64>>(3)?.map(|v| v as u64),
        row.get(4)?,
        row.get(5)?,
    ))
}

fn to_event((seq, kind, session_id, session_seq, body, created_at): EventRow) -> Result<HubEvent> {
    let payload = match kind.as_str() {
        "message" => EventPayload::Message {
            message: Message {
                session_id,
                seq: session_seq.unwrap_or_default(),
                event_seq: seq,
                created_at: rfc3339(created_at),
                update: serde_json::from_str(&body)?,
            },
        },
        "session" => EventPayload::Session {
            session: serde_json::from_str(&body)?,
        },
        "approval" => EventPayload::Approval {
            approval: serde_json::from_str(&body)?,
        },
        "machine" => EventPayload::Machine {
            machine: serde_json::from_str(&body)?,
        },
        other => {
            return Err(StoreError::Corrupt {
                path: Default::default(),
                reason: format!("unknown event kind `{other}` at seq {seq}"),
            });
        }
    };
    Ok(HubEvent { seq, payload })
}

/// The newest event's sequence number (0 for an empty log); reads the primary
/// key's end, not the table.
pub fn head_seq(conn: &Connection) -> Result<u64> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT MAX(seq) FROM events")?
        .query_row([], |r| r.get(0))?;
    Ok(seq.unwrap_or(0) as u64)
}

/// Events with `seq > after`, ascending, at most `limit`. Reads by primary key, so
/// replaying from any point costs the same however long the log is.
pub fn events_after(conn: &Connection, after: u64, limit: u32) -> Result<Vec<HubEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, kind, session_id, session_seq, body, created_at FROM events
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after as i64, limit], event_from_row)?;
    rows.map(|r| to_event(r?)).collect()
}

fn to_message(row: EventRow) -> Result<Message> {
    match to_event(row)?.payload {
        EventPayload::Message { message } => Ok(message),
        _ => unreachable!("query selects message rows only"),
    }
}

/// A page of a session's history with `seq > after`, ascending. The flag says
/// whether more follow.
pub fn messages_after(conn: &Connection, session_id: &str, after: u64, limit: u32) -> Result<(Vec<Message>, bool)> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, kind, session_id, session_seq, body, created_at FROM events
         WHERE session_id = ?1 AND session_seq > ?2 ORDER BY session_seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![session_id, after as i64, limit + 1], event_from_row)?;
    let mut out = rows.map(|r| to_message(r?)).collect::<Result<Vec<_>>>()?;
    let more = out.len() > limit as usize;
    out.truncate(limit as usize);
    Ok((out, more))
}

/// The `limit` entries just before `before`, returned ascending. The flag says
/// whether older ones exist.
pub fn messages_before(conn: &Connection, session_id: &str, before: u64, limit: u32) -> Result<(Vec<Message>, bool)> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, kind, session_id, session_seq, body, created_at FROM events
         WHERE session_id = ?1 AND session_seq IS NOT NULL AND session_seq < ?2
         ORDER BY session_seq DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![session_id, before as i64, limit + 1], event_from_row)?;
    let mut out = rows.map(|r| to_message(r?)).collect::<Result<Vec<_>>>()?;
    let more = out.len() > limit as usize;
    out.truncate(limit as usize);
    out.reverse();
    Ok((out, more))
}
