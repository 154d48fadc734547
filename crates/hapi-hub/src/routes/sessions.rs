//! `/api/sessions`: list, create, history pages, prompts, abort and stop.
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hapi_protocol::{
    Accepted, CreateSession, CreatedSession, HubFrame, MessagePage, SendMessage, SessionCommand, SessionList,
    SessionResponse, SessionState, SessionUpdate, SetSkipApprovals,
};
use hapi_store::StoreError;
use serde::Deserialize;

use crate::AppState;
use crate::auth::{new_token, token_hash};
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::metrics::Source;

/// Largest page of history one request returns.
const MAX_PAGE: u32 = 500;
/// Largest prompt accepted, in bytes (the body limit caps it too).
const MAX_PROMPT: usize = 256 * 1024;

pub(super) async fn list(State(state): State<AppState>) -> Result<Json<SessionList>, ApiError> {
    let sessions = state.read(|c| hapi_store::list_sessions(c, 1000)).await?;
    Ok(Json(SessionList { sessions }))
}

pub(super) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SessionResponse>, ApiError> {
    let session = state.read(move |c| hapi_store::session(c, &id)).await?;
    Ok(Json(SessionResponse { session }))
}

pub(super) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<CreatedSession>), ApiError> {
    if body.cwd.trim().is_empty() {
        return Err(ApiError::invalid("`cwd` must not be empty"));
    }
    let token = new_token();
    let hash = token_hash(&token);
    let id = uuid::Uuid::now_v7().to_string();
    let machine = state.machine_id().to_owned();
    let session = state
        .writer()
        .write(move |tx| {
            let (session, event) = hapi_store::create_session(tx, &id, Some(&machine), body.agent, &body.cwd, &hash)?;
            Ok((session, vec![event]))
        })
        .await?;
    tracing::info!(session_id = %session.id, agent = session.agent.as_str(), "session created");
    Ok((StatusCode::CREATED, Json(CreatedSession { session, token })))
}

#[derive(Deserialize)]
pub(super) struct PageQuery {
    after: Option<u64>,
    before: Option<u64>,
    limit: Option<u32>,
}

pub(super) async fn messages(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid(format!("`limit` must be between 1 and {MAX_PAGE}")));
    }
    let (messages, has_more) = state
        .read(move |c| {
            hapi_store::session(c, &id)?; // 404 for an unknown session, not an empty page
            match (q.after, q.before) {
                (Some(_), Some(_)) => Ok(Err(ApiError::invalid("give `after` or `before`, not both"))),
                (None, Some(before)) => hapi_store::messages_before(c, &id, before, limit).map(Ok),
                (after, None) => hapi_store::messages_after(c, &id, after.unwrap_or(0), limit).map(Ok),
            }
        })
        .await??;
    Ok(Json(MessagePage { messages, has_more }))
}

/// Commits `command` to the session's outbox (after `prepare` ran in the same
/// transaction) and pushes it to the wrapper if it is connected.
async fn enqueue(
    state: &AppState,
    id: String,
    command: SessionCommand,
    prepare: impl FnOnce(&hapi_store::rusqlite::Transaction, &str) -> hapi_store::Result<Vec<hapi_protocol::HubEvent>>
    + Send
    + 'static,
) -> Result<Accepted, ApiError> {
    let cmd = command.clone();
    let sid = id.clone();
    let outbox_id = state
        .writer()
        .write(move |tx| {
            let events = prepare(tx, &sid)?;
            let outbox_id = hapi_store::enqueue_command(tx, &sid, &cmd)?;
            Ok((outbox_id, events))
        })
        .await?;
    let delivered_now = state.links().push(&id, HubFrame::Command { id: outbox_id, command });
    Ok(Accepted { delivered_now })
}

fn require_running(tx: &hapi_store::rusqlite::Transaction, id: &str) -> hapi_store::Result<()> {
    if hapi_store::session(tx, id)?.state == SessionState::Ended {
        return Err(StoreError::SessionEnded);
    }
    Ok(())
}

pub(super) async fn send(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SendMessage>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    if body.text.trim().is_empty() {
        return Err(ApiError::invalid("`text` must not be empty"));
    }
    if body.text.len() > MAX_PROMPT {
        return Err(ApiError::invalid(format!("`text` is longer than {MAX_PROMPT} bytes")));
    }
    let update = SessionUpdate::UserMessage {
        text: body.text.clone(),
    };
    let accepted = enqueue(&state, id, SessionCommand::Prompt { text: body.text }, move |tx, id| {
        Ok(hapi_store::append_update(tx, id, None, &update)?.events)
    })
    .await?;
    state.metrics().message_ingested(Source::Api);
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

pub(super) async fn abort(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let accepted = enqueue(&state, id, SessionCommand::Abort, |tx, id| {
        require_running(tx, id).map(|()| Vec::new())
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

pub(super) async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let accepted = enqueue(&state, id, SessionCommand::Stop, |tx, id| {
        require_running(tx, id).map(|()| Vec::new())
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// `POST /api/sessions/{id}/skip-approvals` (owner only): turns the session's
/// "skip approvals" on or off; audited; announced as a `session` event.
pub(super) async fn skip_approvals(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetSkipApprovals>,
) -> Result<Json<SessionResponse>, ApiError> {
    let enabled = body.enabled;
    let session = state
        .writer()
        .write(move |tx| hapi_store::set_skip_approvals(tx, &id, enabled, "owner"))
        .await?;
    tracing::warn!(session_id = %session.id, enabled, "skip approvals changed");
    Ok(Json(SessionResponse { session }))
}
