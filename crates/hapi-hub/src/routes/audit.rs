//! `GET /api/audit` (owner only): the audit log, newest first, paged.
use axum::Json;
use axum::extract::State;
use hapi_protocol::AuditList;
use serde::Deserialize;

use crate::AppState;
use crate::error::{ApiError, ApiQuery};

/// Largest page.
const MAX_PAGE: u32 = 1000;

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    session_id: Option<String>,
    /// RFC 3339: entries recorded at or after it.
    since: Option<String>,
    /// An entry id: entries older than it (the next page).
    before: Option<u64>,
    limit: Option<u32>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid(format!("`limit` must be between 1 and {MAX_PAGE}")));
    }
    let since_ms = match q.since.as_deref().filter(|s| !s.is_empty()) {
        Some(since) => Some(
            chrono::DateTime::parse_from_rfc3339(since)
                .map_err(|e| ApiError::invalid(format!("`since` is not an RFC 3339 time ({e}): {since}")))?
                .timestamp_millis(),
        ),
        None => None,
    };
    let query = hapi_store::AuditQuery {
        session_id: q.session_id.filter(|s| !s.is_empty()),
        since_ms,
        before_id: q.before,
        limit,
    };
    let (entries, has_more) = state.read(move |c| hapi_store::list_audit(c, &query)).await?;
    Ok(Json(AuditList { entries, has_more }))
}
