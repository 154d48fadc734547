//! Paired devices: phones that traded a pairing secret for a device token.
//!
//! Only the SHA-256 of a device's token is stored. Revoking a device sets
//! `revoked_at`; the row stays, but a revoked device is never listed or found
//! by its token again. Device changes are not events: only the owner's device
//! list shows them.
use hapi_protocol::Device;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::{Result, StoreError, now_ms, rfc3339};

const SELECT: &str = "SELECT id, name, created_at, last_seen_at FROM devices";

fn from_row(row: &Row) -> rusqlite::Result<Device> {
    Ok(Device {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at: rfc3339(row.get(2)?),
        last_seen_at: row.get::<_, Option<i64>>(3)?.map(rfc3339),
    })
}

/// Records a new device whose token hashes to `token_hash`.
pub fn create_device(tx: &Transaction, id: &str, name: &str, token_hash: &str) -> Result<Device> {
    tx.execute(
        "INSERT INTO devices (id, name, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, name, token_hash, now_ms()],
    )?;
    tx.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?
        .query_row([id], from_row)
        .map_err(StoreError::from)
}

/// Devices not revoked, newest first.
pub fn list_devices(conn: &Connection) -> Result<Vec<Device>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE revoked_at IS NULL ORDER BY created_at DESC, id DESC"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The device (not revoked) whose token hashes to `token_hash`, if any.
pub fn device_by_token_hash(conn: &Connection, token_hash: &str) -> Result<Option<Device>> {
    Ok(conn
        .prepare_cached(&format!("{SELECT} WHERE token_hash = ?1 AND revoked_at IS NULL"))?
        .query_row([token_hash], from_row)
        .optional()?)
}

/// Revokes one device. [`StoreError::NotFound`] if it does not exist or is
/// already revoked.
pub fn revoke_device(tx: &Transaction, id: &str) -> Result<()> {
    let changed = tx.execute(
        "UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now_ms()],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound("device"));
    }
    Ok(())
}

/// Revokes every device not revoked yet; returns their ids.
pub fn revoke_all_devices(tx: &Transaction) -> Result<Vec<String>> {
    let mut stmt = tx.prepare_cached("UPDATE devices SET revoked_at = ?1 WHERE revoked_at IS NULL RETURNING id")?;
    let rows = stmt.query_map([now_ms()], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Records that the device made a request at `at_ms` (callers throttle this).
/// A revoked or unknown device is left alone.
pub fn touch_device(tx: &Transaction, id: &str, at_ms: i64) -> Result<()> {
    tx.execute(
        "UPDATE devices SET last_seen_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, at_ms],
    )?;
    Ok(())
}
