//! Machines: the computers sessions run on. Today the hub registers its own
//! machine at start; the runner issue adds remote ones.
use rusqlite::{Transaction, params};

use crate::{Result, now_ms};

/// Records the machine if it is new; keeps its name current.
pub fn ensure_machine(tx: &Transaction, id: &str, name: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO machines (id, name, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name",
        params![id, name, now_ms()],
    )?;
    Ok(())
}
