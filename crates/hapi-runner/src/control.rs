//! The runner's HTTP control server on 127.0.0.1 (random port, in the state
//! file). Every request needs `Authorization: Bearer <runner.token>`; the peer
//! address is never trusted, because tunnelled traffic arrives from 127.0.0.1 too.
//!
//! | endpoint | body | answer |
//! |---|---|---|
//! | `POST /session-started` | `{sessionId, metadata: {hostPid, startedBy}}` | `{status: "ok"}` |
//! | `POST /list` (or `GET`) | | `{children: [{sessionId, pid, startedBy, restarts?, restartOf?, cgroup?}]}` |
//! | `POST /stop-session` | `{sessionId}` (an id or `PID-n`) | `{success: true}` |
//! | `POST /spawn-session` | `{directory, prompt?, agent?, createDirectory?, worktreeBranch?}` | `{sessionId, pid, logPath, directory}` |
//! | `POST /stop` | | `{status: "stopping"}` |
//!
//! Errors are `{error: {code, message}}`, like the hub's. A directory the runner
//! will not or cannot use is a 422 with the hub's code for it
//! (`directory_missing`, `directory_outside_roots`, `directory_unusable`,
//! `worktree_failed`); any other spawn failure is a 422 `spawn_failed`.
use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::RunnerError;
use crate::runner::RunnerHandle;
use crate::sessions::{STARTED_BY_TERMINAL, SessionTarget, TrackedSession};
use crate::spawn::SpawnRequest;

/// Body of `session-started`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStarted {
    /// The hub's session id.
    pub session_id: String,
    /// Who and where.
    pub metadata: SessionMetadata,
}

/// Metadata of `session-started`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionMetadata {
    /// PID of the session's `hapi` process.
    pub host_pid: u32,
    /// `runner`, or (default) `hapi directly - likely by user from terminal`.
    #[serde(default)]
    pub started_by: Option<String>,
}

/// One entry of `list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedSession {
    /// The hub's session id.
    pub session_id: String,
    /// Its process.
    pub pid: u32,
    /// Who started it.
    pub started_by: String,
    /// Restarts the runner made to get this session (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
    /// The failed session this one replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_of: Option<String>,
    /// The cgroup holding its memory and CPU limits (on cgroup v1, one
    /// directory per hierarchy, joined with `:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<crate::cgroup::SessionGroup>,
}

impl From<TrackedSession> for ListedSession {
    fn from(s: TrackedSession) -> Self {
        ListedSession {
            session_id: s.session_id,
            pid: s.pid,
            started_by: s.started_by,
            restarts: (s.restarts > 0).then_some(s.restarts),
            restart_of: s.restart_of,
            cgroup: s.cgroup,
        }
    }
}

/// Answer of `list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionList {
    /// The tracked sessions.
    pub children: Vec<ListedSession>,
}

/// Body of `stop-session`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopSession {
    /// A session id or `PID-n`.
    pub session_id: String,
}

/// An error answer.
struct ApiError(StatusCode, String, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.1, "message": self.2}});
        (self.0, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError(StatusCode::BAD_REQUEST, "bad_request".into(), e.body_text())
    }
}

impl From<RunnerError> for ApiError {
    fn from(e: RunnerError) -> Self {
        match e {
            RunnerError::UnknownSession(_) => ApiError(StatusCode::NOT_FOUND, "not_found".into(), e.to_string()),
            RunnerError::Refused { message, .. } => ApiError(StatusCode::BAD_REQUEST, "bad_request".into(), message),
            RunnerError::Spawn(_) => ApiError(StatusCode::UNPROCESSABLE_ENTITY, "spawn_failed".into(), e.to_string()),
            RunnerError::Directory { code, message } => {
                let code = serde_json::to_value(code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "spawn_failed".into());
                ApiError(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            _ => ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal".into(), e.to_string()),
        }
    }
}

/// The control server's routes.
pub fn router(handle: RunnerHandle) -> Router {
    Router::new()
        .route("/session-started", post(session_started))
        .route("/list", post(list).get(list))
        .route("/stop-session", post(stop_session))
        .route("/spawn-session", post(spawn_session))
        .route("/stop", post(stop))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "not_found".into(), "no such endpoint".into()) })
        .layer(axum::middleware::from_fn_with_state(handle.clone(), authorise))
        .with_state(handle)
}

/// Constant-time comparison, so the token cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authorise(State(handle): State<RunnerHandle>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if same(token.as_bytes(), handle.token().as_bytes()) => next.run(request).await,
        _ => ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized".into(),
            "missing or wrong runner token (see $HAPI_HOME/runner.token)".into(),
        )
        .into_response(),
    }
}

async fn session_started(
    State(handle): State<RunnerHandle>,
    body: Result<Json<SessionStarted>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body?;
    let started_by = body.metadata.started_by.as_deref().unwrap_or(STARTED_BY_TERMINAL);
    handle.session_started(&body.session_id, body.metadata.host_pid, started_by)?;
    Ok(Json(json!({"status": "ok"})))
}

async fn list(State(handle): State<RunnerHandle>) -> Json<SessionList> {
    Json(SessionList {
        children: handle.sessions().into_iter().map(ListedSession::from).collect(),
    })
}

async fn stop_session(
    State(handle): State<RunnerHandle>,
    body: Result<Json<StopSession>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body?;
    handle.stop_session(&SessionTarget::parse(&body.session_id)).await?;
    Ok(Json(json!({"success": true})))
}

async fn spawn_session(
    State(handle): State<RunnerHandle>,
    body: Result<Json<SpawnRequest>, JsonRejection>,
) -> Result<Json<crate::spawn::SpawnedSession>, ApiError> {
    let Json(body) = body?;
    Ok(Json(handle.spawn_session(body).await?))
}

async fn stop(State(handle): State<RunnerHandle>) -> Json<serde_json::Value> {
    tracing::info!("stop requested through the control server");
    handle.request_stop();
    Json(json!({"status": "stopping"}))
}
