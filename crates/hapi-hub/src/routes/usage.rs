//! `/api/sessions/{id}/usage` and `/api/sessions/{id}/budget`: token usage per
//! model, and the budget that pauses a session when it is reached.
//!
//! Usage is added up by the store in the transaction that stores each usage
//! update (`routes/link.rs`), which is also where a reached budget pauses the
//! session and queues the `Abort`; here the budget is read and changed.
use axum::extract::{Path, State};
use axum::{Extension, Json};
use hapi_protocol::{Budget, HubFrame, SessionCommand, SessionUsage};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson};

/// `GET /api/sessions/{id}/usage`.
pub(super) async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<SessionUsage>, ApiError> {
    let usage = state.read(move |c| hapi_store::session_usage(c, &id)).await?;
    Ok(Json(usage))
}

/// `PUT /api/sessions/{id}/budget` with a [`Budget`], or `null` to clear it.
/// A raised or cleared budget unpauses the session; one already reached pauses
/// it at once. Audited with the caller (`owner` or the phone's name).
pub(super) async fn put_budget(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(budget): ApiJson<Option<Budget>>,
) -> Result<Json<SessionUsage>, ApiError> {
    if let Some(budget) = &budget {
        budget.validate().map_err(ApiError::invalid)?;
    }
    let actor = match caller {
        Caller::Owner => "owner".to_owned(),
        Caller::Device(device) => device.name,
    };
    let sid = id.clone();
    let (usage, commands) = state
        .writer()
        .write(move |tx| {
            let (usage, outcome) = hapi_store::set_budget(tx, &sid, budget, &actor)?;
            Ok(((usage, outcome.commands), outcome.events))
        })
        .await?;
    push_commands(&state, &id, commands);
    tracing::info!(session_id = %id, budget = ?usage.budget, paused = usage.budget_paused, "budget changed");
    Ok(Json(usage))
}

/// Pushes commands the store queued (the `Abort` of a budget pause) to the
/// session's wrapper, as the abort route does; a disconnected wrapper gets them
/// from the outbox when it reconnects.
pub(crate) fn push_commands(state: &AppState, session_id: &str, commands: Vec<(u64, SessionCommand)>) {
    for (id, command) in commands {
        if matches!(command, SessionCommand::Abort) {
            tracing::warn!(session_id, "budget reached: interrupting the turn");
        }
        state.links().push(session_id, HubFrame::Command { id, command });
    }
}
