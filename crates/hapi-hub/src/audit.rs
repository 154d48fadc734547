//! The audit log's retention: entries older than `HAPI_AUDIT_RETENTION_DAYS`
//! are deleted at start and then once a day, through the single writer, in
//! batches (each its own write) by the indexed `at` column.
use std::time::Duration;

use crate::AppState;

/// How often retention runs after the first time (at start).
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Entries deleted per write, so a large backlog never holds the writer long.
const PRUNE_BATCH: u32 = 5_000;

/// Deletes every entry older than the retention; returns how many.
pub(crate) async fn prune_now(state: &AppState) -> Result<usize, hapi_store::StoreError> {
    let days = i64::from(state.config().audit_retention_days);
    let cutoff = hapi_store::now_ms() - days * 24 * 60 * 60 * 1000;
    let mut total = 0;
    loop {
        let deleted = state
            .writer()
            .write(move |tx| Ok((hapi_store::prune_audit(tx, cutoff, PRUNE_BATCH)?, Vec::new())))
            .await?;
        total += deleted;
        if deleted < PRUNE_BATCH as usize {
            return Ok(total);
        }
    }
}

/// Runs retention now and every day until the hub shuts down.
pub(crate) async fn retention(state: AppState) {
    let closing = state.closing();
    tokio::pin!(closing);
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => match prune_now(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, days = state.config().audit_retention_days,
                    "audit log: deleted entries older than the retention"),
                Err(e) => tracing::warn!(error = %e, "audit log retention failed; retrying tomorrow"),
            },
            () = &mut closing => return,
        }
    }
}
