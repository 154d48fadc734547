//! `/api/machines`: machines, their runners' link, and starting sessions on them.
//!
//! A runner keeps `GET /api/machines/{id}/ws` open (owner token): it says hello,
//! then `alive` every 20 s; the hub marks the machine offline when the link drops
//! or stays silent for [`SILENCE_LIMIT`]. The hub's RPCs (spawn-session,
//! stop-session, stop-runner) travel over the same link.
use std::time::Duration;

use axum::Json;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hapi_protocol::{
    Decision, ErrorBody, ErrorCode, MachineFrame, MachineList, MachineResponse, MachineRpc, MachineState,
    PermissionOption, SpawnNeedsApproval, SpawnSession, SpawnedSession,
};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::AppState;
use crate::error::{ApiError, ApiJson};

/// Three missed `alive` frames.
pub(crate) const SILENCE_LIMIT: Duration = Duration::from_secs(60);
/// How long a runner may take to say hello.
const HELLO_LIMIT: Duration = Duration::from_secs(10);
/// How long a spawn may take (the runner starts a process and waits for it to
/// register its session).
const SPAWN_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) async fn list(State(state): State<AppState>) -> Result<Json<MachineList>, ApiError> {
    Ok(Json(MachineList {
        machines: state.read(hapi_store::list_machines).await?,
    }))
}

pub(super) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MachineResponse>, ApiError> {
    let machine = state.read(move |c| hapi_store::machine(c, &id)).await?;
    Ok(Json(MachineResponse { machine }))
}

/// Tool name of the machine-scoped approval that asks to create a directory.
pub(crate) const CREATE_DIRECTORY: &str = "create_directory";

pub(super) async fn spawn(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SpawnSession>,
) -> Result<Response, ApiError> {
    if body.cwd.trim().is_empty() {
        return Err(ApiError::invalid("`cwd` must not be empty"));
    }
    if body.create_directory {
        // Only an approved `create_directory` request may create a directory.
        return Err(ApiError::invalid(
            "`create_directory` is set by the hub after approval, not by clients",
        ));
    }
    let mid = id.clone();
    state.read(move |c| hapi_store::machine(c, &mid)).await?;
    match spawn_on(&state, &id, body.clone()).await? {
        Ok(session_id) => Ok((StatusCode::CREATED, Json(SpawnedSession { session_id })).into_response()),
        Err(e) if e.code == ErrorCode::DirectoryMissing => {
            // Ask the person first; deciding the approval carries out the spawn.
            let input = serde_json::to_value(&body).map_err(|e| ApiError::internal(e.to_string()))?;
            let options = [Decision::AllowOnce, Decision::RejectOnce]
                .into_iter()
                .map(|kind| PermissionOption {
                    id: kind.as_str().to_owned(),
                    kind,
                })
                .collect::<Vec<_>>();
            let mid = id.clone();
            let approval = state
                .writer()
                .write(move |tx| {
                    let (approval, event) =
                        hapi_store::create_machine_approval(tx, &mid, CREATE_DIRECTORY, &input, &options)?;
                    Ok((approval, vec![event]))
                })
                .await?;
            tracing::info!(approval_id = %approval.id, cwd = %body.cwd, "directory missing; asking to create it");
            Ok((StatusCode::ACCEPTED, Json(SpawnNeedsApproval { approval })).into_response())
        }
        Err(e) => Err(ApiError::from_runner(e)),
    }
}

/// Asks the machine's runner to start a session: the outer error is about
/// reaching the runner, the inner one is the runner's refusal.
pub(crate) async fn spawn_on(
    state: &AppState,
    machine_id: &str,
    spawn: SpawnSession,
) -> Result<Result<String, ErrorBody>, ApiError> {
    let answer = state
        .runner_links()
        .call(machine_id, MachineRpc::SpawnSession(spawn), SPAWN_TIMEOUT)
        .await?;
    Ok(match answer {
        Ok(value) => Ok(serde_json::from_value::<SpawnedSession>(value)
            .map_err(|e| ApiError::internal(format!("the runner answered spawn-session with something else: {e}")))?
            .session_id),
        Err(e) => Err(e),
    })
}

pub(super) async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let span = tracing::info_span!("runner_link", machine_id = %id);
    upgrade
        .on_upgrade(move |socket| run(state, id, socket).instrument(span))
        .into_response()
}

async fn run(state: AppState, id: String, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    // The first frame must be a hello.
    let hello = match tokio::time::timeout(HELLO_LIMIT, stream.next()).await {
        Ok(Some(Ok(WsMessage::Text(text)))) => serde_json::from_str::<MachineFrame>(&text).ok(),
        _ => None,
    };
    let Some(MachineFrame::Hello { name, runner }) = hello else {
        tracing::warn!("runner link closed: the first frame was not a hello");
        let _ = sink.close().await;
        return;
    };
    let (frames_tx, mut frames_rx) = mpsc::unbounded_channel();
    let link = state.runner_links().register(&id, frames_tx);
    let mid = id.clone();
    if let Err(e) = state
        .writer()
        .write(move |tx| Ok(((), vec![hapi_store::machine_connected(tx, &mid, &name, &runner)?])))
        .await
    {
        tracing::error!(error = %e, "cannot record the runner; closing its link");
        state.runner_links().unregister(&id, &link);
        return;
    }
    tracing::info!("runner connected");
    let closing = state.closing();
    tokio::pin!(closing);
    loop {
        tokio::select! {
            incoming = tokio::time::timeout(SILENCE_LIMIT, stream.next()) => {
                let text = match incoming {
                    Ok(Some(Ok(WsMessage::Text(text)))) => text,
                    Ok(Some(Ok(WsMessage::Close(_)) | Err(_)) | None) => break,
                    Ok(Some(Ok(_))) => continue,
                    Err(_) => {
                        tracing::warn!("runner went silent; marking the machine offline");
                        break;
                    }
                };
                let mid = id.clone();
                match serde_json::from_str::<MachineFrame>(&text) {
                    Ok(MachineFrame::Alive) => {
                        state.metrics().runner_alive(&id);
                        let _ = state.writer().write(move |tx| hapi_store::machine_seen(tx, &mid).map(|()| ((), Vec::new()))).await;
                    }
                    Ok(MachineFrame::Hello { name, runner }) => {
                        state.metrics().runner_alive(&id);
                        let _ = state.writer().write(move |tx| Ok(((), vec![hapi_store::machine_connected(tx, &mid, &name, &runner)?]))).await;
                    }
                    Ok(MachineFrame::ShuttingDown) => {
                        state.metrics().runner_stopping(&id);
                        let _ = state.writer().write(move |tx| {
                            Ok(((), hapi_store::set_machine_state(tx, &mid, MachineState::ShuttingDown)?.into_iter().collect()))
                        }).await;
                    }
                    Ok(MachineFrame::RpcResult { id: rpc, outcome }) => link.resolve(rpc, outcome),
                    Err(e) => tracing::warn!(error = %e, "ignoring malformed frame from runner"),
                }
            }
            Some(frame) = frames_rx.recv() => {
                let text = serde_json::to_string(&frame).unwrap_or_default();
                if sink.send(WsMessage::Text(text.into())).await.is_err() {
                    break;
                }
            }
            () = &mut closing => break,
        }
    }
    if state.runner_links().unregister(&id, &link) {
        let mid = id.clone();
        let _ = state
            .writer()
            .write(move |tx| {
                Ok((
                    (),
                    hapi_store::set_machine_state(tx, &mid, MachineState::Offline)?
                        .into_iter()
                        .collect(),
                ))
            })
            .await;
    }
    tracing::info!("runner disconnected");
}
