//! `/api/approvals`: list pending requests and decide them. The first decision
//! wins; the decision reaches the session through its outbox.
use axum::extract::{Path, State};
use axum::{Extension, Json};
use hapi_protocol::{
    ApprovalList, ApprovalResponse, ApprovalState, DecideApproval, HubFrame, SessionCommand, SpawnSession,
};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::routes::machines::{CREATE_DIRECTORY, spawn_on};

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
    Ok(Json(ApprovalResponse {
        approval,
        session_id: None,
        error: None,
    }))
}

pub(super) async fn decide(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecideApproval>,
) -> Result<Json<ApprovalResponse>, ApiError> {
    if body.message.as_ref().is_some_and(|m| m.len() > MAX_NOTE) {
        return Err(ApiError::invalid(format!("`message` is longer than {MAX_NOTE} bytes")));
    }
    let decision = body.decision;
    // A paired device decides as itself, on the phone channel, whatever it says.
    let (decided_by, channel) = match caller {
        Caller::Owner => (
            "owner".to_owned(),
            body.channel.unwrap_or(hapi_protocol::DecisionChannel::Web),
        ),
        Caller::Device(device) => (device.name, hapi_protocol::DecisionChannel::Phone),
    };
    // Decided, and for a session's request queued for its wrapper, in one transaction.
    let (approval, delivery) = state
        .writer()
        .write(move |tx| {
            let (approval, request_id, events) =
                hapi_store::decide_approval(tx, &id, decision, body.message.as_deref(), &decided_by)?;
            let delivery = match &approval.session_id {
                Some(session_id) => {
                    let command = SessionCommand::Decide {
                        request_id,
                        decision,
                        message: body.message,
                    };
                    let outbox_id = hapi_store::enqueue_command(tx, session_id, &command)?;
                    Some((session_id.clone(), outbox_id, command))
                }
                None => None,
            };
            Ok(((approval, delivery), events))
        })
        .await?;
    tracing::info!(approval_id = %approval.id, session_id = ?approval.session_id, machine_id = ?approval.machine_id,
        decision = decision.as_str(), channel = channel.as_str(), "approval decided");
    if let Some(latency) = decision_latency(&approval) {
        state.metrics().approval_decided(channel, latency);
    }
    if let Some((session_id, outbox_id, command)) = delivery {
        state
            .links()
            .push(&session_id, HubFrame::Command { id: outbox_id, command });
        return Ok(Json(ApprovalResponse {
            approval,
            session_id: None,
            error: None,
        }));
    }
    // A machine-scoped request: carry it out now that it is allowed.
    let (session_id, error) = match (&approval.machine_id, approval.tool.as_str()) {
        (Some(machine_id), CREATE_DIRECTORY) if decision.allows() => {
            match serde_json::from_value::<SpawnSession>(approval.input.clone()) {
                Ok(spawn) => match spawn_on(
                    &state,
                    machine_id,
                    SpawnSession {
                        create_directory: true,
                        ..spawn
                    },
                )
                .await
                {
                    Ok(Ok(session_id)) => (Some(session_id), None),
                    Ok(Err(refused)) => (None, Some(refused)),
                    Err(unreachable) => (None, Some(unreachable.body())),
                },
                Err(e) => (
                    None,
                    Some(ApiError::internal(format!("stored request is unreadable: {e}")).body()),
                ),
            }
        }
        _ => (None, None),
    };
    Ok(Json(ApprovalResponse {
        approval,
        session_id,
        error,
    }))
}

/// From the request to the decision, by the stored timestamps (zero if the clock
/// stepped back in between).
fn decision_latency(approval: &hapi_protocol::Approval) -> Option<std::time::Duration> {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let requested = parse(&approval.created_at)?;
    let decided = parse(approval.decided_at.as_deref()?)?;
    Some((decided - requested).to_std().unwrap_or_default())
}
