//! `/api/sessions/{id}/ws`: the WebSocket a session wrapper keeps open.
//!
//! Authenticated by the session's own token. Updates are stored under their
//! `client_seq` (a resend is a no-op) and acknowledged cumulatively once
//! committed; writes are pipelined, so many are in flight and share COMMITs.
//! Commands waiting in the outbox are replayed on every connect.
use std::collections::VecDeque;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use hapi_protocol::{HubFrame, SessionFrame, SessionUpdate};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::AppState;
use crate::auth::{bearer, token_hash};
use crate::error::ApiError;
use crate::metrics::Source;
use crate::routes::approvals::apply_policy;
use crate::routes::usage::push_commands;

/// Most updates of one connection in flight before reading pauses.
const MAX_IN_FLIGHT: usize = 4096;

pub(super) async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
    req: Request,
) -> Result<Response, ApiError> {
    let token = bearer(&req)
        .ok_or_else(|| ApiError::unauthorized("missing session token"))?
        .to_owned();
    let sid = id.clone();
    let stored = state.read(move |c| hapi_store::session_token_hash(c, &sid)).await?;
    match stored {
        None => return Err(ApiError::not_found("session not found")),
        Some(hash) if hash != token_hash(&token) => return Err(ApiError::unauthorized("invalid session token")),
        Some(_) => {}
    }
    let span = tracing::info_span!("session_link", session_id = %id);
    Ok(upgrade
        .max_message_size(4 * 1024 * 1024)
        .on_upgrade(move |socket| run(state, id, socket).instrument(span))
        .into_response())
}

type Write = std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, ApiError>> + Send>>;

async fn run(state: AppState, id: String, socket: WebSocket) {
    let (push_tx, mut push_rx) = mpsc::unbounded_channel();
    let link_id = state.links().register(&id, push_tx);
    let (mut sink, mut stream) = socket.split();
    tracing::info!("wrapper connected");

    let sid = id.clone();
    let connected = state
        .writer()
        .write(move |tx| Ok(((), hapi_store::mark_connected(tx, &sid)?.into_iter().collect())))
        .await
        .map_err(ApiError::from);
    let sid = id.clone();
    // Registered before reading the outbox: a command committed after this read
    // is pushed live, one committed before is in the read (or both; the wrapper
    // skips ids it already applied).
    let replay = match connected {
        Ok(()) => state.read(move |c| hapi_store::pending_commands(c, &sid)).await,
        Err(e) => Err(e),
    };
    let replay = match replay {
        Ok(pending) => pending,
        Err(e) => {
            tracing::error!(error = ?e, "cannot set up the session link");
            state.links().unregister(&id, link_id);
            return;
        }
    };
    let mut outgoing: VecDeque<HubFrame> = replay
        .into_iter()
        .map(|(id, command)| HubFrame::Command { id, command })
        .collect();

    let mut writes: FuturesOrdered<Write> = FuturesOrdered::new();
    let closing = state.closing();
    tokio::pin!(closing);
    let mut acked = 0u64;
    let mut unacked_commits = 0usize;
    loop {
        while let Some(frame) = outgoing.pop_front() {
            let text = serde_json::to_string(&frame).unwrap_or_default();
            if sink.send(WsMessage::Text(text.into())).await.is_err() {
                return finish(&state, &id, link_id).await;
            }
        }
        tokio::select! {
            incoming = stream.next(), if writes.len() < MAX_IN_FLIGHT => {
                let text = match incoming {
                    Some(Ok(WsMessage::Text(text))) => text,
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                match serde_json::from_str::<SessionFrame>(&text) {
                    Ok(SessionFrame::Update { client_seq, update }) => {
                        let sid = id.clone();
                        // A permission request meets the approval policy in the
                        // transaction that stores it.
                        let policy = matches!(update, SessionUpdate::PermissionRequest { .. }).then(|| state.policy());
                        let usage = match &update {
                            SessionUpdate::UsageUpdate { usage } => Some(usage.clone()),
                            _ => None,
                        };
                        // Queued here, in arrival order; only the commit is awaited later.
                        let queued = state.writer().submit(move |tx| {
                            let mut appended = hapi_store::append_update(tx, &sid, Some(client_seq), &update)?;
                            let auto = match &policy {
                                Some(policy) if !appended.duplicate => {
                                    apply_policy(tx, policy, &sid, &mut appended.events)?
                                }
                                _ => None,
                            };
                            let done = (client_seq, appended.duplicate, auto, appended.commands);
                            Ok((done, appended.events))
                        }).await;
                        match queued {
                            Ok(commit) => {
                                let state = state.clone();
                                let sid = id.clone();
                                writes.push_back(Box::pin(async move {
                                    let (client_seq, duplicate, auto, commands) =
                                        commit.await.map_err(ApiError::from)?;
                                    if !duplicate {
                                        state.metrics().message_ingested(Source::Wrapper);
                                        if let Some(usage) = &usage {
                                            state.metrics().usage_recorded(usage);
                                        }
                                    }
                                    if let Some(auto) = auto {
                                        auto.finish(&state);
                                    }
                                    // A usage update that reached the budget paused the
                                    // session and queued an abort of its turn.
                                    push_commands(&state, &sid, commands);
                                    Ok(client_seq)
                                }));
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "writer unavailable; dropping the link");
                                break;
                            }
                        }
                    }
                    Ok(SessionFrame::CommandAck { id: upto }) => {
                        // Queued, not awaited, so reading goes on; an ack that is
                        // lost only means the command is replayed and skipped.
                        let sid = id.clone();
                        let queued = state.writer().submit(move |tx| {
                            hapi_store::ack_commands(tx, &sid, upto).map(|()| ((), Vec::new()))
                        }).await;
                        match queued {
                            Ok(commit) => {
                                tokio::spawn(async move {
                                    if let Err(e) = commit.await {
                                        tracing::warn!(error = %e, "cannot record command ack; the command will be replayed");
                                    }
                                });
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot record command ack; the command will be replayed"),
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "ignoring malformed frame from wrapper"),
                }
            }
            Some(done) = writes.next(), if !writes.is_empty() => match done {
                Ok(client_seq) => {
                    acked = acked.max(client_seq);
                    unacked_commits += 1;
                    // Ack once per drained burst rather than per update, but at
                    // least every 256 commits so a steady stream is acked too.
                    if writes.is_empty() || unacked_commits >= 256 {
                        outgoing.push_back(HubFrame::Ack { client_seq: acked });
                        unacked_commits = 0;
                    }
                }
                Err(e) => {
                    // Not acknowledged, so the wrapper resends it after reconnecting.
                    tracing::error!(error = ?e, "cannot store update; dropping the link so the wrapper resends");
                    break;
                }
            },
            Some(frame) = push_rx.recv() => outgoing.push_back(frame),
            // The hub is shutting down; the wrapper reconnects to the next one.
            () = &mut closing => break,
        }
    }
    finish(&state, &id, link_id).await
}

async fn finish(state: &AppState, id: &str, link_id: u64) {
    if state.links().unregister(id, link_id) {
        let sid = id.to_owned();
        let _ = state
            .writer()
            .write(move |tx| Ok(((), hapi_store::mark_disconnected(tx, &sid)?.into_iter().collect())))
            .await;
    }
    tracing::info!("wrapper disconnected");
}
