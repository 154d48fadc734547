//! The fake Anthropic Messages API server: just enough of `/v1/messages` (SSE
//! streaming and plain JSON) for Claude Code to run a scripted conversation.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{head, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::script::{Reply, Script};

/// Input tokens every response reports (no cache reads or writes).
const INPUT_TOKENS: u64 = 100;
/// Output tokens every response reports (in `message_delta` when streaming).
const OUTPUT_TOKENS: u64 = 20;

/// A running fake API. Stops when dropped or on [`FakeAnthropic::shutdown`].
#[derive(Debug)]
pub struct FakeAnthropic {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Value>>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FakeAnthropic {
    /// Base URL for `ANTHROPIC_BASE_URL`: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The usage every response reports, `(input_tokens, output_tokens)`, so
    /// tests can say what an agent should have counted for the requests it made.
    pub fn usage_per_response(&self) -> (u64, u64) {
        (INPUT_TOKENS, OUTPUT_TOKENS)
    }

    /// Bodies of every `POST /v1/messages` so far, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the fake on `127.0.0.1:0`.
pub async fn start_fake_anthropic(script: Script) -> anyhow::Result<FakeAnthropic> {
    start_fake_anthropic_on(SocketAddr::from(([127, 0, 0, 1], 0)), script).await
}

/// Starts the fake on a given address (port 0 picks a free one).
pub async fn start_fake_anthropic_on(addr: SocketAddr, script: Script) -> anyhow::Result<FakeAnthropic> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let requests = Arc::new(Mutex::new(Vec::new()));
    let state = Arc::new(AppState {
        script,
        requests: requests.clone(),
        ids: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/", head(|| async { StatusCode::OK }))
        .fallback(fallback)
        .with_state(state);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(err) = served.await {
            tracing::error!(%err, "fake anthropic server failed");
        }
    });
    tracing::info!(%addr, "fake anthropic listening");
    Ok(FakeAnthropic {
        addr,
        requests,
        stop: Some(stop),
        task: Some(task),
    })
}

struct AppState {
    script: Script,
    requests: Arc<Mutex<Vec<Value>>>,
    ids: AtomicU64,
}

impl AppState {
    fn next_id(&self, prefix: &str) -> String {
        format!("{prefix}_fake_{}", self.ids.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

async fn fallback(method: Method) -> StatusCode {
    if method == Method::HEAD {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn count_tokens(body: Bytes) -> Response {
    axum::Json(json!({"input_tokens": (body.len() / 4).max(1)})).into_response()
}

async fn messages(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(err) => {
            let error =
                json!({"type": "error", "error": {"type": "invalid_request_error", "message": err.to_string()}});
            return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
        }
    };
    if let Ok(mut requests) = state.requests.lock() {
        requests.push(request.clone());
    }
    let reply = state.script.reply(&request);
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("claude-fake")
        .to_owned();
    let message_id = state.next_id("msg");
    let tool_id = reply.tool_use.as_ref().map(|_| state.next_id("toolu"));
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let body = sse_body(&reply, &model, &message_id, tool_id.as_deref());
        (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response()
    } else {
        axum::Json(json_body(&reply, &model, &message_id, tool_id.as_deref())).into_response()
    }
}

fn stop_reason(reply: &Reply) -> &'static str {
    if reply.tool_use.is_some() {
        "tool_use"
    } else {
        "end_turn"
    }
}

fn start_usage() -> Value {
    json!({"input_tokens": INPUT_TOKENS, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

fn json_body(reply: &Reply, model: &str, message_id: &str, tool_id: Option<&str>) -> Value {
    let mut content = vec![json!({"type": "text", "text": reply.text})];
    if let (Some(tool), Some(id)) = (&reply.tool_use, tool_id) {
        content.push(json!({"type": "tool_use", "id": id, "name": tool.name, "input": tool.input}));
    }
    json!({
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason(reply), "stop_sequence": null,
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    })
}

/// The reply as Anthropic's SSE event sequence, with text and tool input split
/// into a few deltas the way the real API streams them.
fn sse_body(reply: &Reply, model: &str, message_id: &str, tool_id: Option<&str>) -> String {
    let mut out = String::new();
    let mut event = |name: &str, data: Value| {
        out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    event(
        "message_start",
        json!({"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": null, "stop_sequence": null, "usage": start_usage()}}),
    );
    event(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0,
        "content_block": {"type": "text", "text": ""}}),
    );
    for piece in split_in(&reply.text, 3) {
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": piece}}),
        );
    }
    event("content_block_stop", json!({"type": "content_block_stop", "index": 0}));
    if let (Some(tool), Some(id)) = (&reply.tool_use, tool_id) {
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "tool_use", "id": id, "name": tool.name, "input": {}}}),
        );
        for piece in split_in(&tool.input.to_string(), 2) {
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": piece}}),
            );
        }
        event("content_block_stop", json!({"type": "content_block_stop", "index": 1}));
    }
    event(
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason(reply), "stop_sequence": null}, "usage": {"output_tokens": OUTPUT_TOKENS}}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    out
}

/// Splits `text` into at most `parts` non-empty pieces on char boundaries.
fn split_in(text: &str, parts: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    let size = chars.len().div_ceil(parts);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}
