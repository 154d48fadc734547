//! Approvals: one row per permission request, decided at most once.
use hapi_protocol::{
    Approval, ApprovalState, AuditEntry, AuditKind, Decision, DecisionChannel, EventPayload, HubEvent, PermissionOption,
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::audit::append_audit;
use crate::events::record_event;
use crate::sessions::announce;
use crate::{Result, StoreError, now_ms, rfc3339};

const SELECT: &str = "SELECT id, session_id, tool, input, options, state, decision, decided_by,
    message, created_at, decided_at, machine_id FROM approvals";

fn from_row(row: &Row) -> rusqlite::Result<Approval> {
    let bad = |i: usize, e: String| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into());
    let input: String = row.get(3)?;
    let options: String = row.get(4)?;
    let state: String = row.get(5)?;
    let decision: Option<String> = row.get(6)?;
    Ok(Approval {
        id: row.get(0)?,
        session_id: row.get(1)?,
        tool: row.get(2)?,
        input: serde_json::from_str(&input).map_err(|e| bad(3, e.to_string()))?,
        options: serde_json::from_str(&options).map_err(|e| bad(4, e.to_string()))?,
        state: ApprovalState::parse(&state).ok_or_else(|| bad(5, format!("state `{state}`")))?,
        decision: match decision {
            Some(d) => Some(Decision::parse(&d).ok_or_else(|| bad(6, format!("decision `{d}`")))?),
            None => None,
        },
        decided_by: row.get(7)?,
        message: row.get(8)?,
        created_at: rfc3339(row.get(9)?),
        decided_at: row.get::<_, Option<i64>>(10)?.map(rfc3339),
        machine_id: row.get(11)?,
    })
}

/// One approval.
pub fn approval(conn: &Connection, id: &str) -> Result<Approval> {
    conn.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .ok_or(StoreError::NotFound("approval"))
}

/// Approvals, oldest first, optionally filtered by state and session.
pub fn list_approvals(
    conn: &Connection,
    state: Option<ApprovalState>,
    session_id: Option<&str>,
    limit: u32,
) -> Result<Vec<Approval>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR session_id = ?2)
         ORDER BY created_at, id LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![state.map(ApprovalState::as_str), session_id, limit], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn record(tx: &Transaction, approval: Approval) -> Result<HubEvent> {
    let body = serde_json::to_string(&approval)?;
    // The event log's `session_id` column names what an event is about.
    let about = approval
        .session_id
        .as_deref()
        .or(approval.machine_id.as_deref())
        .unwrap_or_default();
    let seq = record_event(tx, "approval", about, None, None, &body)?;
    Ok(HubEvent {
        seq,
        payload: EventPayload::Approval { approval },
    })
}

/// Creates a pending approval for a permission request. A request id the session
/// already used yields `None` (a replayed request never makes a second approval).
pub(crate) fn create_approval(
    tx: &Transaction,
    session_id: &str,
    request_id: &str,
    tool_call_id: Option<&str>,
    tool: &str,
    input: &serde_json::Value,
    options: &[PermissionOption],
) -> Result<Option<HubEvent>> {
    let id = uuid::Uuid::now_v7().to_string();
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO approvals (id, session_id, request_id, tool, input, options, state, created_at,
                                          tool_call_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8)",
        params![
            id,
            session_id,
            request_id,
            tool,
            serde_json::to_string(input)?,
            serde_json::to_string(options)?,
            now_ms(),
            tool_call_id
        ],
    )?;
    if inserted == 0 {
        return Ok(None);
    }
    record(tx, approval(tx, &id)?).map(Some)
}

/// Decides a pending approval. The first decision wins: deciding one that is no
/// longer pending fails with [`StoreError::AlreadyDecided`] and changes nothing.
/// The decision is recorded in the audit log (who, which channel, how long
/// after the request) in the same transaction.
/// Returns the approval, its session's request id, and the events to publish.
pub fn decide_approval(
    tx: &Transaction,
    id: &str,
    decision: Decision,
    message: Option<&str>,
    decided_by: &str,
    channel: DecisionChannel,
) -> Result<(Approval, String, Vec<HubEvent>)> {
    let decided_at = now_ms();
    let changed = tx.execute(
        "UPDATE approvals SET state = 'decided', decision = ?2, message = ?3, decided_by = ?4, decided_at = ?5
         WHERE id = ?1 AND state = 'pending'",
        params![id, decision.as_str(), message, decided_by, decided_at],
    )?;
    if changed == 0 {
        let current = approval(tx, id)?;
        return Err(StoreError::AlreadyDecided(current.state.as_str()));
    }
    let (request_id, created_at, tool_call_id): (String, i64, Option<String>) = tx.query_row(
        "SELECT request_id, created_at, tool_call_id FROM approvals WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let approval = approval(tx, id)?;
    append_audit(
        tx,
        AuditEntry {
            session_id: approval.session_id.clone(),
            approval_id: Some(approval.id.clone()),
            tool_call_id: tool_call_id.clone(),
            actor: Some(decided_by.to_owned()),
            channel: Some(channel),
            decision: Some(decision),
            tool: Some(approval.tool.clone()),
            summary: Some(crate::tools::tool_summary(&approval.tool, &approval.input)),
            latency_ms: Some((decided_at - created_at).max(0) as u64),
            ..AuditEntry::new(AuditKind::Decision)
        },
    )?;
    if let (Some(session_id), Some(call)) = (&approval.session_id, &tool_call_id) {
        // The tool call's own row says whether it was allowed, until it finishes.
        tx.prepare_cached(
            "UPDATE audit SET outcome = ?3
             WHERE session_id = ?1 AND tool_call_id = ?2 AND kind = 'tool_call' AND outcome = 'requested'",
        )?
        .execute(params![
            session_id,
            call,
            if decision.allows() { "allowed" } else { "denied" }
        ])?;
    }
    let mut events = vec![record(tx, approval.clone())?];
    if let Some(session_id) = &approval.session_id {
        // The pending count is part of the session as clients see it.
        events.push(announce(tx, session_id)?);
    }
    Ok((approval, request_id, events))
}

/// Creates a pending machine-scoped approval (no session yet), e.g. whether to
/// create a directory for a session the person asked to start.
pub fn create_machine_approval(
    tx: &Transaction,
    machine_id: &str,
    tool: &str,
    input: &serde_json::Value,
    options: &[PermissionOption],
) -> Result<(Approval, HubEvent)> {
    let id = uuid::Uuid::now_v7().to_string();
    tx.execute(
        "INSERT INTO approvals (id, machine_id, request_id, tool, input, options, state, created_at)
         VALUES (?1, ?2, ?1, ?3, ?4, ?5, 'pending', ?6)",
        params![
            id,
            machine_id,
            tool,
            serde_json::to_string(input)?,
            serde_json::to_string(options)?,
            now_ms()
        ],
    )?;
    let approval = approval(tx, &id)?;
    let event = record(tx, approval.clone())?;
    Ok((approval, event))
}

/// Cancels every pending approval of a session (it ended; nobody can act on them).
pub(crate) fn cancel_pending(tx: &Transaction, session_id: &str) -> Result<Vec<HubEvent>> {
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM approvals WHERE session_id = ?1 AND state = 'pending'")?
        .query_map([session_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut events = Vec::with_capacity(ids.len());
    for id in ids {
        tx.execute(
            "UPDATE approvals SET state = 'cancelled', decided_at = ?2 WHERE id = ?1",
            params![id, now_ms()],
        )?;
        events.push(record(tx, approval(tx, &id)?)?);
    }
    Ok(events)
}
