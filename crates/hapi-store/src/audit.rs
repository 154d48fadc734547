//! The audit log: who decided which approval, through which channel and how
//! fast; every mutating tool call; changes to the policy and to a session's
//! "skip approvals". Rows are written in the transaction of what they record
//! (the hub's single writer), read newest first, and pruned by `at`.
use hapi_protocol::{AuditEntry, AuditKind, Decision, DecisionChannel, ToolCallStatus};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::Value;

use crate::tools::{is_mutating_tool, tool_summary};
use crate::{Result, now_ms, rfc3339};

const SELECT: &str = "SELECT id, at, kind, session_id, approval_id, tool_call_id, actor, channel, decision,
    tool, summary, latency_ms, outcome, action FROM audit";

fn channel_from(s: &str) -> Option<DecisionChannel> {
    serde_json::from_value(Value::String(s.to_owned())).ok()
}

fn from_row(row: &Row) -> rusqlite::Result<AuditEntry> {
    let kind: String = row.get(2)?;
    let channel: Option<String> = row.get(7)?;
    let decision: Option<String> = row.get(8)?;
    Ok(AuditEntry {
        id: row.get::<_, i64>(0)? as u64,
        at: rfc3339(row.get(1)?),
        kind: AuditKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("unknown audit kind `{kind}`").into(),
            )
        })?,
        session_id: row.get(3)?,
        approval_id: row.get(4)?,
        tool_call_id: row.get(5)?,
        actor: row.get(6)?,
        channel: channel.as_deref().and_then(channel_from),
        decision: decision.as_deref().and_then(Decision::parse),
        tool: row.get(9)?,
        summary: row.get(10)?,
        latency_ms: row.get::<_, Option<i64>>(11)?.map(|v| v.max(0) as u64),
        outcome: row.get(12)?,
        action: row.get(13)?,
    })
}

/// Appends an entry to the audit log, in the caller's transaction, and returns
/// it as stored. `id` and `at` are assigned here (the values given are ignored).
///
/// This is the one way rows get in; other parts of HAPI (e.g. `hapi auth
/// rotate`, with `kind: Admin`, `action: "owner_token_rotated"`) call it too.
pub fn append_audit(tx: &Transaction, entry: AuditEntry) -> Result<AuditEntry> {
    let at = now_ms();
    tx.prepare_cached(
        "INSERT INTO audit (at, kind, session_id, approval_id, tool_call_id, actor, channel, decision, tool,
                            summary, latency_ms, outcome, action)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        at,
        entry.kind.as_str(),
        entry.session_id,
        entry.approval_id,
        entry.tool_call_id,
        entry.actor,
        entry.channel.map(DecisionChannel::as_str),
        entry.decision.map(Decision::as_str),
        entry.tool,
        entry.summary,
        entry.latency_ms.map(|v| v as i64),
        entry.outcome,
        entry.action,
    ])?;
    Ok(AuditEntry {
        id: tx.last_insert_rowid() as u64,
        at: rfc3339(at),
        ..entry
    })
}

/// Records a mutating tool call when it is announced or its permission is
/// asked, once per `(session, tool_call_id)`; read-only tools are not recorded.
pub(crate) fn audit_tool_call(
    tx: &Transaction,
    session_id: &str,
    tool_call_id: Option<&str>,
    tool: &str,
    input: &Value,
) -> Result<()> {
    if !is_mutating_tool(tool) {
        return Ok(());
    }
    if let Some(call) = tool_call_id.filter(|c| !c.is_empty()) {
        let seen = tx
            .prepare_cached("SELECT 1 FROM audit WHERE session_id = ?1 AND tool_call_id = ?2 AND kind = 'tool_call'")?
            .query_row(params![session_id, call], |_| Ok(()))
            .optional()?;
        if seen.is_some() {
            return Ok(());
        }
    }
    append_audit(
        tx,
        AuditEntry {
            session_id: Some(session_id.to_owned()),
            tool_call_id: tool_call_id.filter(|c| !c.is_empty()).map(str::to_owned),
            tool: Some(tool.to_owned()),
            summary: Some(tool_summary(tool, input)),
            outcome: Some("requested".into()),
            ..AuditEntry::new(AuditKind::ToolCall)
        },
    )?;
    Ok(())
}

/// A tool call finished: its audit row (if it has one: mutating tools only)
/// gets the outcome. One indexed update; nothing happens for other calls.
pub(crate) fn audit_tool_outcome(
    tx: &Transaction,
    session_id: &str,
    tool_call_id: &str,
    status: ToolCallStatus,
) -> Result<()> {
    let outcome = match status {
        ToolCallStatus::Completed => "completed",
        ToolCallStatus::Failed => "failed",
        ToolCallStatus::Pending | ToolCallStatus::InProgress => return Ok(()),
    };
    tx.prepare_cached(
        "UPDATE audit SET outcome = ?3 WHERE session_id = ?1 AND tool_call_id = ?2 AND kind = 'tool_call'",
    )?
    .execute(params![session_id, tool_call_id, outcome])?;
    Ok(())
}

/// Which entries [`list_audit`] returns.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this session's entries.
    pub session_id: Option<String>,
    /// Only entries recorded at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only entries with a smaller id (the paging cursor).
    pub before_id: Option<u64>,
    /// At most this many.
    pub limit: u32,
}

/// Entries matching `q`, newest first, and whether more (older) ones match.
/// By session it reads the `(session_id, id)` index; otherwise the primary key
/// backwards, so a page costs the same however long the log is.
pub fn list_audit(conn: &Connection, q: &AuditQuery) -> Result<(Vec<AuditEntry>, bool)> {
    let before = q.before_id.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
    let since = q.since_ms.unwrap_or(i64::MIN);
    let limit = i64::from(q.limit) + 1;
    let mut out = match &q.session_id {
        Some(session) => conn
            .prepare_cached(&format!(
                "{SELECT} WHERE session_id = ?1 AND id < ?2 AND at >= ?3 ORDER BY id DESC LIMIT ?4"
            ))?
            .query_map(params![session, before, since, limit], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        None => conn
            .prepare_cached(&format!(
                "{SELECT} WHERE id < ?1 AND at >= ?2 ORDER BY id DESC LIMIT ?3"
            ))?
            .query_map(params![before, since, limit], from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    let more = out.len() > q.limit as usize;
    out.truncate(q.limit as usize);
    Ok((out, more))
}

/// Deletes up to `batch` entries recorded before `cutoff_ms` (through the
/// `at` index) and returns how many. Call it again while it returns `batch`,
/// one transaction each, so a large backlog never holds the writer long.
pub fn prune_audit(tx: &Transaction, cutoff_ms: i64, batch: u32) -> Result<usize> {
    Ok(tx
        .prepare_cached("DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ?1 ORDER BY at LIMIT ?2)")?
        .execute(params![cutoff_ms, batch])?)
}
