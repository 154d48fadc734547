//! The live event stream, over SSE (`/api/events`) and WebSocket
//! (`/api/events/ws`), resumable from any sequence number.
//!
//! Gap-free resume: a follower subscribes to live events *before* reading the
//! log from SQLite, so every event is either in the log it reads or in its
//! subscription (or both, and then it is skipped by `seq`). If the subscription
//! falls behind, the follower goes back to the log from the last `seq` it sent.
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::Stream;
use hapi_protocol::EventTicket;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

use crate::auth::{Caller, TICKET_TTL, TicketHolder};
use crate::devices::Devices;
use crate::error::{ApiError, ApiQuery};
use crate::metrics::Transport;
use crate::{AppState, LiveEvent};

/// Events read from the log per query while catching up.
const REPLAY_PAGE: u32 = 2000;
/// Comment lines keep idle proxies and tunnels from closing the stream.
const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
pub(super) struct StreamQuery {
    /// A sequence number, or `latest` for "only what happens from now on".
    after: Option<String>,
}

/// Where to resume: `Last-Event-ID` (sent by a reconnecting `EventSource`) wins
/// over `?after=`. `after=latest` lets a client that loads its snapshot over REST
/// skip the whole log; it is resolved after subscribing, so nothing is missed.
async fn resume_point(state: &AppState, headers: &HeaderMap, q: &StreamQuery) -> Result<u64, ApiError> {
    if let Some(v) = headers.get("last-event-id") {
        return v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ApiError::invalid("Last-Event-ID must be an event sequence number"));
    }
    match q.after.as_deref() {
        None => Ok(0),
        Some("latest") => state.read(hapi_store::head_seq).await,
        Some(n) => n
            .parse()
            .map_err(|_| ApiError::invalid("`after` must be an event sequence number or `latest`")),
    }
}

pub(super) async fn ticket(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Json<EventTicket> {
    // A device's ticket remembers the device: revoking it refuses the ticket too.
    let holder = match caller {
        Caller::Owner => TicketHolder::Owner,
        Caller::Device(device) => TicketHolder::Device {
            id: device.id,
            name: device.name,
        },
    };
    Json(EventTicket {
        ticket: state.auth().issue_ticket_for(holder),
        expires_in_s: TICKET_TTL.as_secs(),
    })
}

/// Resolves when a stream of `caller` must end: the hub shuts down; for a
/// device also when it is revoked or its remote listener stops.
fn stream_end(state: &AppState, caller: &Caller) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let closing = state.closing();
    match caller {
        Caller::Owner => Box::pin(closing),
        Caller::Device(device) => {
            let revoked = Devices::revoked(state, device.id.clone());
            let mut remote_closing = device.remote_closing.clone();
            Box::pin(async move {
                tokio::select! {
                    _ = closing => {}
                    _ = revoked => {}
                    _ = remote_closing.wait_for(|c| *c) => {}
                }
            })
        }
    }
}

pub(super) async fn sse(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let live = state.writer().subscribe();
    let after = resume_point(&state, &headers, &q).await?;
    let closing = stream_end(&state, &caller);
    // Counted until the response body, and with it this stream, is dropped.
    let client = state.metrics().event_client(Transport::Sse);
    let stream =
        futures_util::StreamExt::take_until(ReceiverStream::new(follow(state, after, live)), closing).map(move |ev| {
            let _counted = &client;
            Ok(Event::default().id(ev.seq.to_string()).event("hub").data(&ev.json))
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat")))
}

pub(super) async fn websocket(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let live = state.writer().subscribe();
    let after = resume_point(&state, &headers, &q).await?;
    let end = stream_end(&state, &caller);
    Ok(upgrade
        .on_upgrade(move |socket| async move {
            let _counted = state.metrics().event_client(Transport::WebSocket);
            pump_websocket(socket, follow(state, after, live), end).await;
        })
        .into_response())
}

async fn pump_websocket(
    mut socket: WebSocket,
    mut events: mpsc::Receiver<Arc<LiveEvent>>,
    mut end: Pin<Box<dyn Future<Output = ()> + Send>>,
) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            () = &mut end => {
                let _ = socket.send(WsMessage::Close(None)).await;
                break;
            }
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                if socket.send(WsMessage::Text(ev.json.clone().into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = heartbeat.tick() => {
                if socket.send(WsMessage::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Streams every event with `seq > after`, first from the log, then live.
/// `live` must have been subscribed before `after` was determined. The task ends
/// when the receiver is dropped.
pub(crate) fn follow(
    state: AppState,
    after: u64,
    mut live: broadcast::Receiver<Arc<LiveEvent>>,
) -> mpsc::Receiver<Arc<LiveEvent>> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut last = after;
        let mut resubscribe = false;
        'resume: loop {
            if resubscribe {
                live = state.writer().subscribe();
            }
            resubscribe = true;
            // Catch up from the log.
            loop {
                let from = last;
                let page = match state
                    .read(move |c| hapi_store::events_after(c, from, REPLAY_PAGE))
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(error = ?e, "event replay failed; closing stream");
                        return;
                    }
                };
                let full = page.len() == REPLAY_PAGE as usize;
                for event in page {
                    last = event.seq;
                    let json = serde_json::to_string(&event).unwrap_or_default();
                    if tx.send(Arc::new(LiveEvent { seq: event.seq, json })).await.is_err() {
                        return;
                    }
                }
                if !full {
                    break;
                }
            }
            // Then follow live.
            loop {
                match live.recv().await {
                    Ok(ev) if ev.seq <= last => continue,
                    Ok(ev) => {
                        last = ev.seq;
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, last, "event follower lagged; replaying from the log");
                        continue 'resume;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    rx
}
