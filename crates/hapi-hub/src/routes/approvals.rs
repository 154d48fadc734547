//! `/api/approvals`: list pending requests and decide them. The first decision
//! wins; the decision reaches the session through its outbox. The approval
//! policy decides through the same path ([`apply_policy`]).
use axum::extract::{Path, State};
use axum::{Extension, Json};
use hapi_protocol::{
    Approval, ApprovalList, ApprovalResponse, ApprovalState, DecideApproval, Decision, DecisionChannel, EventPayload,
    HubEvent, HubFrame, PolicyAction, SessionCommand, SpawnSession,
};
use hapi_store::rusqlite::Transaction;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::policy::{Policy, PolicyRequest};
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
    // Decided, audited, and for a session's request queued for its wrapper, in one transaction.
    let (approval, delivery) = state
        .writer()
        .write(move |tx| {
            let (approval, delivery, events) = decide_in(tx, &id, decision, body.message, &decided_by, channel)?;
            Ok(((approval, delivery), events))
        })
        .await?;
    let delivered = delivery.is_some();
    after_decided(&state, &approval, channel, delivery);
    if delivered {
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

/// A decision's command for the session's wrapper, committed to its outbox.
pub(crate) struct Delivery {
    session_id: String,
    outbox_id: u64,
    command: SessionCommand,
}

/// The one decision path, inside the writer's transaction: marks the approval
/// decided (the first decision wins), records it in the audit log, and for a
/// session's request queues `Decide` in the session's outbox. After the
/// COMMIT, call [`after_decided`].
pub(crate) fn decide_in(
    tx: &Transaction,
    id: &str,
    decision: Decision,
    message: Option<String>,
    decided_by: &str,
    channel: DecisionChannel,
) -> hapi_store::Result<(Approval, Option<Delivery>, Vec<HubEvent>)> {
    let (approval, request_id, events) =
        hapi_store::decide_approval(tx, id, decision, message.as_deref(), decided_by, channel)?;
    let delivery = match &approval.session_id {
        Some(session_id) => {
            let command = SessionCommand::Decide {
                request_id,
                decision,
                message,
            };
            let outbox_id = hapi_store::enqueue_command(tx, session_id, &command)?;
            Some(Delivery {
                session_id: session_id.clone(),
                outbox_id,
                command,
            })
        }
        None => None,
    };
    Ok((approval, delivery, events))
}

/// After a decision committed: log it, record its latency by channel, and push
/// the command to the wrapper if it is connected (else it waits in the outbox).
pub(crate) fn after_decided(
    state: &AppState,
    approval: &Approval,
    channel: DecisionChannel,
    delivery: Option<Delivery>,
) {
    tracing::info!(approval_id = %approval.id, session_id = ?approval.session_id, machine_id = ?approval.machine_id,
        decision = ?approval.decision, decided_by = ?approval.decided_by, channel = channel.as_str(), "approval decided");
    if let Some(latency) = decision_latency(approval) {
        state.metrics().approval_decided(channel, latency);
    }
    if let Some(Delivery {
        session_id,
        outbox_id,
        command,
    }) = delivery
    {
        state
            .links()
            .push(&session_id, HubFrame::Command { id: outbox_id, command });
    }
}

/// A request the hub decided by itself: the approval policy, or the session's
/// "skip approvals".
pub(crate) struct AutoDecided {
    approval: Approval,
    delivery: Option<Delivery>,
}

impl AutoDecided {
    /// Logs, measures (channel `policy`) and delivers it; after the COMMIT.
    pub(crate) fn finish(self, state: &AppState) {
        after_decided(state, &self.approval, DecisionChannel::Policy, self.delivery);
    }
}

/// Message the agent gets when a policy rule denies.
pub(crate) fn policy_deny_message(rule: &str) -> String {
    format!("Denied by the HAPI approval policy (rule `{rule}`)")
}

/// Runs the approval policy on the pending approval that `events` (just
/// appended for a permission request) created, in the same transaction: a
/// `deny` rule rejects it; otherwise "skip approvals" on the session, or an
/// `allow` rule, allows it; else it stays pending for a person. Decisions go
/// through [`decide_in`] with channel `policy` and `decided_by`
/// `policy:<rule>` or `skip-approvals`; their events are appended to `events`.
pub(crate) fn apply_policy(
    tx: &Transaction,
    policy: &Policy,
    session_id: &str,
    events: &mut Vec<HubEvent>,
) -> hapi_store::Result<Option<AutoDecided>> {
    let Some(pending) = events.iter().find_map(|e| match &e.payload {
        EventPayload::Approval { approval } if approval.state == ApprovalState::Pending => Some(approval.clone()),
        _ => None,
    }) else {
        return Ok(None);
    };
    let session = hapi_store::session(tx, session_id)?;
    let verdict = policy.evaluate(&PolicyRequest {
        agent: session.agent.as_str(),
        tool: &pending.tool,
        input: &pending.input,
        cwd: &session.cwd,
    });
    let rule = verdict.rule.unwrap_or_default();
    let (decision, decided_by, message) = match verdict.action {
        PolicyAction::Deny => (
            Decision::RejectOnce,
            format!("policy:{rule}"),
            Some(policy_deny_message(&rule)),
        ),
        _ if session.skip_approvals => (Decision::AllowOnce, "skip-approvals".to_owned(), None),
        PolicyAction::Allow => (Decision::AllowOnce, format!("policy:{rule}"), None),
        PolicyAction::Ask => return Ok(None),
    };
    let (approval, delivery, more) =
        decide_in(tx, &pending.id, decision, message, &decided_by, DecisionChannel::Policy)?;
    events.extend(more);
    Ok(Some(AutoDecided { approval, delivery }))
}

/// From the request to the decision, by the stored timestamps (zero if the clock
/// stepped back in between).
fn decision_latency(approval: &hapi_protocol::Approval) -> Option<std::time::Duration> {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let requested = parse(&approval.created_at)?;
    let decided = parse(approval.decided_at.as_deref()?)?;
    Some((decided - requested).to_std().unwrap_or_default())
}
