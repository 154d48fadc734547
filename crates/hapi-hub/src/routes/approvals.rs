//! `/api/approvals`: list pending requests and decide them. The first decision
//! wins; the decision reaches the session through its outbox.
use axum::Json;
use axum::extract::{Path, State};
use hapi_protocol::{ApprovalList, ApprovalResponse, ApprovalState, DecideApproval, HubFrame, SessionCommand};
use serde::Deserialize;

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiQuery};

const MAX_NOTE: usize = 16 * 1024;

#[derive(Deserialize)]
pub(super) struct ListQuery {
    state: Option<ApprovalState>,
    session_id: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ApprovalList>, ApiError> {
    let approvals = state
        .read(move |c| hapi_store::list_approvals(c, q.state, q.session_id.as_deref(), 1000))
        .await?;
    Ok(Json(ApprovalList { approvals }))
}

pub(super) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ApprovalResponse>, ApiError> {
    let approval = state.read(move |c| hapi_store::approval(c, &id)).await?;
    Ok(Json(ApprovalResponse { approval }))
}

pub(super) async fn decide(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecideApproval>,
) -> Result<Json<ApprovalResponse>, ApiError> {
    if body.message.as_ref().is_some_and(|m| m.len() > MAX_NOTE) {
        return Err(ApiError::invalid(format!("`message` is longer than {MAX_NOTE} bytes")));
    }
    let (approval, outbox_id, command) = state
        .writer()
        .write(move |tx| {
            let (approval, request_id, events) =
                hapi_store::decide_approval(tx, &id, body.decision, body.message.as_deref(), "owner")?;
            let command = SessionCommand::Decide {
                request_id,
                decision: body.decision,
                message: body.message,
            };
            let outbox_id = hapi_store::enqueue_command(tx, &approval.session_id, &command)?;
            Ok(((approval, outbox_id, command), events))
        })
        .await?;
    tracing::info!(approval_id = %approval.id, session_id = %approval.session_id, decision = body.decision.as_str(), "approval decided");
    state
        .links()
        .push(&approval.session_id, HubFrame::Command { id: outbox_id, command });
    Ok(Json(ApprovalResponse { approval }))
}
