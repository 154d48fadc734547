//! Token usage per session and model, and the per-session budget.
//!
//! Usage updates are added up in `session_usage` in the transaction that stores
//! them ([`crate::append_update`]), after the `client_seq` check, so a resent
//! update is counted once. Whenever usage or the budget changes, the budget is
//! enforced here too: a reached budget pauses the session (an `Abort` goes to
//! the outbox if a turn is open, prompts are refused with
//! [`StoreError::BudgetReached`]); a raised or cleared one unpauses it. Both are
//! in the audit log.
use hapi_protocol::{
    AuditEntry, AuditKind, Budget, HubEvent, ModelUsage, SessionCommand, SessionState, SessionUsage, Usage, UsageTotals,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::audit::append_audit;
use crate::sessions::announce;
use crate::{Result, StoreError, enqueue_command, now_ms};

/// Who the audit log names when the hub pauses a session for its budget.
const BUDGET_ACTOR: &str = "budget";

/// What a budget check or change did, for the hub to publish and deliver.
#[derive(Debug, Default)]
pub struct BudgetOutcome {
    /// Events to publish (a `session` event when anything changed).
    pub events: Vec<HubEvent>,
    /// Commands queued in the outbox (an `Abort` when a pause interrupts a
    /// turn), with their outbox ids, to push to a connected wrapper.
    pub commands: Vec<(u64, SessionCommand)>,
}

/// Adds one usage update to the session's row for its model.
pub(crate) fn record_usage(tx: &Transaction, session_id: &str, usage: &Usage) -> Result<()> {
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "INSERT INTO session_usage (session_id, model, input_tokens, output_tokens, cache_read_tokens,
                                    cache_write_tokens, cost_usd, updates, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8)
         ON CONFLICT (session_id, model) DO UPDATE SET
             input_tokens = input_tokens + excluded.input_tokens,
             output_tokens = output_tokens + excluded.output_tokens,
             cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
             cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
             cost_usd = CASE WHEN excluded.cost_usd IS NULL THEN cost_usd
                             ELSE COALESCE(cost_usd, 0) + excluded.cost_usd END,
             updates = updates + 1,
             updated_at = excluded.updated_at",
    )?
    .execute(params![
        session_id,
        usage.model,
        as_i64(usage.input_tokens),
        as_i64(usage.output_tokens),
        as_i64(usage.cache_read_tokens),
        as_i64(usage.cache_write_tokens),
        usage.cost_usd.filter(|c| c.is_finite() && *c >= 0.0),
        now_ms()
    ])?;
    Ok(())
}

/// The session's usage, one row per model, by model name.
fn model_rows(conn: &Connection, session_id: &str) -> Result<Vec<ModelUsage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, updates
         FROM session_usage WHERE session_id = ?1 ORDER BY model",
    )?;
    let rows = stmt.query_map([session_id], |r| {
        let n = |i| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
        let (input, output, cache_read, cache_write) = (n(1)?, n(2)?, n(3)?, n(4)?);
        Ok(ModelUsage {
            model: r.get(0)?,
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            total_tokens: input + output + cache_read + cache_write,
            cost_usd: r.get(5)?,
            updates: n(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn totals_of(models: &[ModelUsage]) -> UsageTotals {
    models.iter().fold(UsageTotals::default(), |t, m| UsageTotals {
        input_tokens: t.input_tokens + m.input_tokens,
        output_tokens: t.output_tokens + m.output_tokens,
        cache_read_tokens: t.cache_read_tokens + m.cache_read_tokens,
        cache_write_tokens: t.cache_write_tokens + m.cache_write_tokens,
        total_tokens: t.total_tokens + m.total_tokens,
        cost_usd: match (t.cost_usd, m.cost_usd) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        },
    })
}

/// The budget columns of a session, and what enforcing it needs to know.
struct BudgetRow {
    budget: Option<Budget>,
    paused: bool,
    ended: bool,
    turn_open: bool,
}

fn budget_row(conn: &Connection, session_id: &str) -> Result<BudgetRow> {
    conn.prepare_cached(
        "SELECT budget_max_tokens, budget_max_cost_usd, budget_paused, state, turn_open
         FROM sessions WHERE id = ?1",
    )?
    .query_row([session_id], |r| {
        let max_tokens: Option<i64> = r.get(0)?;
        let max_cost_usd: Option<f64> = r.get(1)?;
        let state: String = r.get(3)?;
        Ok(BudgetRow {
            budget: budget_from(max_tokens, max_cost_usd),
            paused: r.get(2)?,
            ended: state == SessionState::Ended.as_str(),
            turn_open: r.get(4)?,
        })
    })
    .optional()?
    .ok_or(StoreError::NotFound("session"))
}

/// A budget from its two columns; `None` when neither is set.
pub(crate) fn budget_from(max_tokens: Option<i64>, max_cost_usd: Option<f64>) -> Option<Budget> {
    (max_tokens.is_some() || max_cost_usd.is_some()).then(|| Budget {
        max_tokens: max_tokens.map(|v| v.max(0) as u64),
        max_cost_usd,
    })
}

/// `GET /api/sessions/{id}/usage`: per model, totals, budget and pause.
pub fn session_usage(conn: &Connection, session_id: &str) -> Result<SessionUsage> {
    let row = budget_row(conn, session_id)?;
    let models = model_rows(conn, session_id)?;
    let totals = totals_of(&models);
    let paused_reason = match (row.paused, row.budget) {
        (true, Some(budget)) => budget.reached(&totals),
        _ => None,
    };
    Ok(SessionUsage {
        session_id: session_id.to_owned(),
        models,
        totals,
        budget: row.budget,
        budget_paused: row.paused,
        paused_reason,
    })
}

/// Refuses a prompt to a session its budget paused.
pub(crate) fn refuse_if_paused(conn: &Connection, session_id: &str) -> Result<()> {
    let usage = session_usage(conn, session_id)?;
    if !usage.budget_paused {
        return Ok(());
    }
    let reason = usage.paused_reason.unwrap_or_else(|| "Budget reached".into());
    Err(StoreError::BudgetReached(reason))
}

/// Pauses the session if its usage reached its budget, or unpauses it if the
/// budget no longer is reached (raised or cleared). An ended session is never
/// paused. Announces the session when the pause changed.
pub(crate) fn enforce_budget(tx: &Transaction, session_id: &str) -> Result<BudgetOutcome> {
    let row = budget_row(tx, session_id)?;
    let mut outcome = BudgetOutcome::default();
    let reached = match row.budget {
        Some(budget) => budget.reached(&totals_of(&model_rows(tx, session_id)?)),
        None => None,
    };
    match (reached, row.paused) {
        (Some(reason), false) if !row.ended => {
            set_paused(tx, session_id, true)?;
            audit(tx, session_id, BUDGET_ACTOR, "budget_paused", reason)?;
            // Interrupt the running turn through the abort path: the outbox, then
            // the wrapper. Without an open turn there is nothing to interrupt.
            if row.turn_open {
                let command = SessionCommand::Abort;
                let id = enqueue_command(tx, session_id, &command)?;
                outcome.commands.push((id, command));
            }
            outcome.events.push(announce(tx, session_id)?);
        }
        (None, true) => {
            set_paused(tx, session_id, false)?;
            outcome.events.push(announce(tx, session_id)?);
        }
        _ => {}
    }
    Ok(outcome)
}

fn set_paused(tx: &Transaction, session_id: &str, paused: bool) -> Result<()> {
    tx.prepare_cached("UPDATE sessions SET budget_paused = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![session_id, paused, now_ms()])?;
    Ok(())
}

fn audit(tx: &Transaction, session_id: &str, actor: &str, action: &str, summary: String) -> Result<()> {
    append_audit(
        tx,
        AuditEntry {
            session_id: Some(session_id.to_owned()),
            actor: Some(actor.to_owned()),
            action: Some(action.to_owned()),
            summary: Some(summary),
            ..AuditEntry::new(AuditKind::Admin)
        },
    )?;
    Ok(())
}

/// Sets (or, with `None`, clears) the session's budget, records the change in
/// the audit log, and enforces it at once: a budget already reached pauses the
/// session, one raised above the usage (or cleared) unpauses it. The caller has
/// validated the budget ([`Budget::validate`]).
pub fn set_budget(
    tx: &Transaction,
    session_id: &str,
    budget: Option<Budget>,
    actor: &str,
) -> Result<(SessionUsage, BudgetOutcome)> {
    let before = budget_row(tx, session_id)?;
    tx.prepare_cached(
        "UPDATE sessions SET budget_max_tokens = ?2, budget_max_cost_usd = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![
        session_id,
        budget
            .and_then(|b| b.max_tokens)
            .map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
        budget.and_then(|b| b.max_cost_usd),
        now_ms()
    ])?;
    let (action, summary) = match budget {
        Some(b) => ("budget_set", b.describe()),
        None => ("budget_cleared", "no budget".to_owned()),
    };
    audit(tx, session_id, actor, action, summary)?;
    let mut outcome = enforce_budget(tx, session_id)?;
    let usage = session_usage(tx, session_id)?;
    if before.paused && !usage.budget_paused {
        audit(
            tx,
            session_id,
            actor,
            "budget_resumed",
            "the session takes prompts again".into(),
        )?;
    }
    if outcome.events.is_empty() {
        // The budget is part of the session as clients see it.
        outcome.events.push(announce(tx, session_id)?);
    }
    Ok((usage, outcome))
}
