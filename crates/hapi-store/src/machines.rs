//! Machines: the computers sessions run on, and whether their runner is
//! connected. The hub registers its own machine at start; runners register theirs
//! when they connect.
use hapi_protocol::{EventPayload, HubEvent, Machine, MachineState, RunnerInfo};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::events::record_event;
use crate::{Result, StoreError, now_ms, rfc3339};

const SELECT: &str = "SELECT id, name, state, runner, last_seen, created_at FROM machines";

fn from_row(row: &Row) -> rusqlite::Result<Machine> {
    let bad = |i: usize, e: String| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into());
    let state: String = row.get(2)?;
    let runner: Option<String> = row.get(3)?;
    Ok(Machine {
        id: row.get(0)?,
        name: row.get(1)?,
        state: MachineState::parse(&state).ok_or_else(|| bad(2, format!("state `{state}`")))?,
        runner: match runner {
            Some(json) => Some(serde_json::from_str(&json).map_err(|e| bad(3, e.to_string()))?),
            None => None,
        },
        last_seen: row.get::<_, Option<i64>>(4)?.map(rfc3339),
        created_at: rfc3339(row.get(5)?),
    })
}

/// Records the machine if it is new; keeps its name current.
pub fn ensure_machine(tx: &Transaction, id: &str, name: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO machines (id, name, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name",
        params![id, name, now_ms()],
    )?;
    Ok(())
}

/// One machine.
pub fn machine(conn: &Connection, id: &str) -> Result<Machine> {
    conn.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .ok_or(StoreError::NotFound("machine"))
}

/// All machines, most recently seen first.
pub fn list_machines(conn: &Connection) -> Result<Vec<Machine>> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} ORDER BY last_seen DESC NULLS LAST, created_at DESC"))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn announce(tx: &Transaction, id: &str) -> Result<HubEvent> {
    let machine = machine(tx, id)?;
    let seq = record_event(tx, "machine", id, None, None, &serde_json::to_string(&machine)?)?;
    Ok(HubEvent {
        seq,
        payload: EventPayload::Machine { machine },
    })
}

/// A runner connected (or said hello again): the machine is online with it.
pub fn machine_connected(tx: &Transaction, id: &str, name: &str, runner: &RunnerInfo) -> Result<HubEvent> {
    let now = now_ms();
    tx.execute(
        "INSERT INTO machines (id, name, state, runner, last_seen, created_at) VALUES (?1, ?2, 'online', ?3, ?4, ?4)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, state = 'online', runner = excluded.runner,
            last_seen = excluded.last_seen",
        params![id, name, serde_json::to_string(runner)?, now],
    )?;
    announce(tx, id)
}

/// A frame arrived from the machine's runner. No event: liveness alone is not news.
pub fn machine_seen(tx: &Transaction, id: &str) -> Result<()> {
    tx.prepare_cached("UPDATE machines SET last_seen = ?2 WHERE id = ?1")?
        .execute(params![id, now_ms()])?;
    Ok(())
}

/// Sets the machine's state; `offline` also forgets its runner. Announces a change.
pub fn set_machine_state(tx: &Transaction, id: &str, state: MachineState) -> Result<Option<HubEvent>> {
    let changed = tx.execute(
        "UPDATE machines SET state = ?2, runner = CASE WHEN ?2 = 'offline' THEN NULL ELSE runner END
         WHERE id = ?1 AND state <> ?2",
        params![id, state.as_str()],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    announce(tx, id).map(Some)
}

/// At hub start no runner is connected yet.
pub fn mark_machines_offline(tx: &Transaction) -> Result<Vec<HubEvent>> {
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM machines WHERE state <> 'offline'")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut events = Vec::with_capacity(ids.len());
    for id in ids {
        events.extend(set_machine_state(tx, &id, MachineState::Offline)?);
    }
    Ok(events)
}
