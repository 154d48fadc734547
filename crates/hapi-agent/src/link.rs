//! The session link: carries a driver's updates to the hub and the hub's commands
//! back, over `GET /api/sessions/{id}/ws`, surviving disconnects.
//!
//! Delivery is at-least-once both ways (see `hapi_protocol::wire`):
//! - every update gets the next `client_seq` (1, 2, 3, …) once, and stays in memory
//!   until the hub acknowledges it (acks are cumulative); after every reconnect all
//!   unacknowledged updates are resent in order with their original `client_seq`;
//! - commands are applied in id order and at most once: ids at or below the last
//!   applied one are replays and are only re-acknowledged.
//!
//! Updates are pipelined: the link never waits for an ack before sending more, and
//! sends whatever has queued up as one batch before flushing the socket.
use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hapi_protocol::{HubFrame, SessionCommand, SessionFrame, SessionUpdate};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Request, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};
use tracing::Instrument;

use crate::AgentError;

/// First reconnect delay; doubles per failed attempt up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Most updates written before one flush.
const BATCH: usize = 512;
/// Longest wait for a TCP connect plus WebSocket handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often to ping the hub, so a half-open connection is noticed.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A connection on which nothing (not even a pong) arrived for this long is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where and as whom the link connects.
#[derive(Clone)]
pub struct LinkConfig {
    /// Hub base URL, `http://127.0.0.1:PORT` (or `ws://…`).
    pub hub_url: String,
    /// Session id.
    pub session_id: String,
    /// Session token from `POST /api/sessions`.
    pub session_token: String,
    /// The hub's `hub.json`, if the hub was found through it: after a failed
    /// connection the link reads it again, so a hub that came back on another
    /// port (the desktop app restarted, say) is found. `None` keeps `hub_url`.
    pub hub_state_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("hub_url", &self.hub_url)
            .field("session_id", &self.session_id)
            .field("session_token", &"<redacted>")
            .finish()
    }
}

/// Progress of a link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkProgress {
    /// Highest `client_seq` assigned (= updates taken from the driver).
    pub sent: u64,
    /// Highest `client_seq` the hub acknowledged.
    pub acked: u64,
    /// Successful connections after the first.
    pub reconnects: u64,
    /// Hub commands handed to the driver.
    pub commands_applied: u64,
}

/// A running link task.
#[derive(Debug)]
pub struct Link {
    task: JoinHandle<Result<LinkProgress, AgentError>>,
    progress: watch::Receiver<LinkProgress>,
}

impl Link {
    /// Starts relaying `updates` to the hub and hub commands into `commands`.
    /// The link finishes once `updates` is closed and everything is acknowledged.
    pub fn start(
        config: LinkConfig,
        updates: mpsc::Receiver<SessionUpdate>,
        commands: mpsc::Sender<SessionCommand>,
    ) -> Result<Link, AgentError> {
        let request = ws_request(&config)?;
        let (progress_tx, progress) = watch::channel(LinkProgress::default());
        let state = LinkState {
            request,
            config,
            updates,
            updates_open: true,
            commands,
            unacked: VecDeque::new(),
            last_command: 0,
            progress: LinkProgress::default(),
            progress_tx,
        };
        let task = tokio::spawn(state.run().in_current_span());
        Ok(Link { task, progress })
    }

    /// Progress so far.
    pub fn progress(&self) -> LinkProgress {
        *self.progress.borrow()
    }

    /// Whether the link task has ended (finished or failed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the link to deliver everything, at most `within`. On timeout the
    /// link is abandoned and the progress so far is returned with a warning.
    pub async fn finish(mut self, within: Duration) -> Result<LinkProgress, AgentError> {
        match timeout(within, &mut self.task).await {
            Ok(joined) => joined.map_err(|e| AgentError::Internal(format!("link task: {e}")))?,
            Err(_) => {
                self.task.abort();
                let progress = self.progress();
                tracing::warn!(
                    sent = progress.sent,
                    acked = progress.acked,
                    "gave up waiting for the hub to acknowledge every update after {within:?}"
                );
                Ok(progress)
            }
        }
    }
}

/// The WebSocket request for a session: `ws://host/api/sessions/{id}/ws` with the
/// session token as a bearer token.
fn ws_request(config: &LinkConfig) -> Result<Request<()>, AgentError> {
    let base = config.hub_url.trim_end_matches('/');
    let rest = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("ws://"))
        .ok_or_else(|| AgentError::HubUrl(config.hub_url.clone()))?;
    let url = format!("ws://{rest}/api/sessions/{}/ws", config.session_id);
    let mut request = url
        .into_client_request()
        .map_err(|_| AgentError::HubUrl(config.hub_url.clone()))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", config.session_token))
        .map_err(|_| AgentError::Internal("the session token is not a valid header value".into()))?;
    request.headers_mut().insert(AUTHORIZATION, bearer);
    Ok(request)
}

/// Why one connection ended.
enum Disconnect {
    /// Everything is delivered and the driver is done.
    Done,
    /// The connection broke; reconnect.
    Lost(String),
}

struct LinkState {
    request: Request<()>,
    config: LinkConfig,
    updates: mpsc::Receiver<SessionUpdate>,
    updates_open: bool,
    commands: mpsc::Sender<SessionCommand>,
    /// `(client_seq, serialized frame)`, ascending.
    unacked: VecDeque<(u64, Utf8Bytes)>,
    last_command: u64,
    progress: LinkProgress,
    progress_tx: watch::Sender<LinkProgress>,
}

impl LinkState {
    async fn run(mut self) -> Result<LinkProgress, AgentError> {
        let mut backoff = MIN_BACKOFF;
        let mut connected_before = false;
        loop {
            if self.is_done() {
                return Ok(self.progress);
            }
            match self.connect().await {
                Ok(ws) => {
                    if connected_before {
                        self.progress.reconnects += 1;
                        self.publish();
                        tracing::info!(resending = self.unacked.len(), "reconnected to the hub");
                    } else {
                        tracing::info!("connected to the hub");
                    }
                    connected_before = true;
                    backoff = MIN_BACKOFF;
                    match self.serve(ws).await {
                        Disconnect::Done => return Ok(self.progress),
                        Disconnect::Lost(why) => {
                            tracing::warn!(%why, "lost the hub connection; reconnecting")
                        }
                    }
                }
                Err(ConnectError::Rejected(status)) => {
                    tracing::error!(status, "the hub rejected the session connection");
                    return Err(AgentError::HubRejected { status });
                }
                Err(ConnectError::Failed(why)) => {
                    tracing::warn!(%why, retry_in = ?backoff, "could not connect to the hub");
                    self.rediscover();
                }
            }
            self.wait_queueing(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Re-reads the hub's URL from its state file; switches to it if it moved.
    fn rediscover(&mut self) {
        let Some(path) = &self.config.hub_state_file else {
            return;
        };
        let Some(url) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str::<hapi_protocol::HubStateFile>(&text).ok())
            .map(|state| state.url)
        else {
            return;
        };
        if url.trim_end_matches('/') == self.config.hub_url.trim_end_matches('/') {
            return;
        }
        let mut moved = self.config.clone();
        moved.hub_url = url;
        match ws_request(&moved) {
            Ok(request) => {
                tracing::info!(from = %self.config.hub_url, to = %moved.hub_url, "the hub moved; following it");
                self.request = request;
                self.config = moved;
            }
            Err(e) => tracing::warn!("{} names an unusable hub URL: {e}", path.display()),
        }
    }

    fn is_done(&self) -> bool {
        !self.updates_open && self.unacked.is_empty()
    }

    fn publish(&self) {
        self.progress_tx.send_replace(self.progress);
    }

    /// Sleeps for `delay` while still taking updates from the driver, so the
    /// driver never stalls on a disconnected hub.
    async fn wait_queueing(&mut self, delay: Duration) {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                () = sleep_until(until) => return,
                update = self.updates.recv(), if self.updates_open => match update {
                    Some(update) => { self.enqueue(update); }
                    None => self.updates_open = false,
                },
            }
        }
    }

    async fn connect(&self) -> Result<Ws, ConnectError> {
        let attempt = connect_async_with_config(self.request.clone(), None, true);
        match timeout(CONNECT_TIMEOUT, attempt).await {
            Err(_) => Err(ConnectError::Failed("timed out".into())),
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(WsError::Http(response))) => {
                let status = response.status().as_u16();
                if matches!(status, 401 | 403 | 404 | 410) {
                    Err(ConnectError::Rejected(status))
                } else {
                    Err(ConnectError::Failed(format!("HTTP {status}")))
                }
            }
            Ok(Err(err)) => Err(ConnectError::Failed(err.to_string())),
        }
    }

    /// Assigns the next `client_seq`, keeps the frame until acked, returns it.
    fn enqueue(&mut self, update: SessionUpdate) -> Utf8Bytes {
        self.progress.sent += 1;
        let client_seq = self.progress.sent;
        let frame = SessionFrame::Update { client_seq, update };
        let text = Utf8Bytes::from(serde_json::to_string(&frame).unwrap_or_default());
        self.unacked.push_back((client_seq, text.clone()));
        self.publish();
        text
    }

    async fn serve(&mut self, ws: Ws) -> Disconnect {
        let (mut sink, mut stream) = ws.split();
        for (_, text) in &self.unacked {
            if let Err(err) = sink.feed(Message::Text(text.clone())).await {
                return Disconnect::Lost(err.to_string());
            }
        }
        if let Err(err) = sink.flush().await {
            return Disconnect::Lost(err.to_string());
        }
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            if self.is_done() {
                let _ = sink.send(Message::Close(None)).await;
                return Disconnect::Done;
            }
            tokio::select! {
                _ = ping.tick() => {
                    if last_heard.elapsed() > SILENCE_LIMIT {
                        return Disconnect::Lost(format!("nothing from the hub for {SILENCE_LIMIT:?}"));
                    }
                    if let Err(err) = sink.send(Message::Ping(Default::default())).await {
                        return Disconnect::Lost(err.to_string());
                    }
                }
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        last_heard = Instant::now();
                        if let Some(ack) = self.on_hub_frame(&text).await
                            && let Err(err) = sink.send(Message::Text(ack)).await
                        {
                            return Disconnect::Lost(err.to_string());
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => return Disconnect::Lost("closed by the hub".into()),
                    Some(Ok(_)) => last_heard = Instant::now(),
                    Some(Err(err)) => return Disconnect::Lost(err.to_string()),
                },
                update = self.updates.recv(), if self.updates_open => {
                    let Some(update) = update else {
                        self.updates_open = false;
                        continue;
                    };
                    let mut batch = vec![self.enqueue(update)];
                    while batch.len() < BATCH {
                        match self.updates.try_recv() {
                            Ok(update) => batch.push(self.enqueue(update)),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => {
                                self.updates_open = false;
                                break;
                            }
                        }
                    }
                    for text in batch {
                        if let Err(err) = sink.feed(Message::Text(text)).await {
                            return Disconnect::Lost(err.to_string());
                        }
                    }
                    if let Err(err) = sink.flush().await {
                        return Disconnect::Lost(err.to_string());
                    }
                }
            }
        }
    }

    /// Handles one hub frame; returns a `CommandAck` to send, if any.
    async fn on_hub_frame(&mut self, text: &str) -> Option<Utf8Bytes> {
        let frame: HubFrame = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(err) => {
                tracing::warn!(%err, "ignoring an unreadable frame from the hub");
                return None;
            }
        };
        match frame {
            HubFrame::Ack { client_seq } => {
                while self.unacked.front().is_some_and(|(seq, _)| *seq <= client_seq) {
                    self.unacked.pop_front();
                }
                self.progress.acked = self.progress.acked.max(client_seq);
                self.publish();
                None
            }
            HubFrame::Command { id, command } => {
                if id <= self.last_command {
                    tracing::debug!(id, "skipping a replayed command");
                    return Some(command_ack(self.last_command));
                }
                tracing::info!(id, ?command, "applying a hub command");
                if self.commands.send(command).await.is_err() {
                    tracing::warn!(id, "the agent is gone; acknowledging the command without applying it");
                }
                self.last_command = id;
                self.progress.commands_applied += 1;
                self.publish();
                Some(command_ack(id))
            }
        }
    }
}

fn command_ack(id: u64) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(&SessionFrame::CommandAck { id }).unwrap_or_default())
}

enum ConnectError {
    Rejected(u16),
    Failed(String),
}
