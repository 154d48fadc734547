//! `fake-claude`: a stand-in for `claude` in stdio control-protocol mode
//! (`--input-format stream-json --output-format stream-json --verbose
//! --permission-prompt-tool stdio`), for fast driver tests and benchmarks that
//! must not depend on a real Claude Code install or an API.
//!
//! Its lines have the shapes recorded from real Claude Code (see
//! `shared/protocol-samples/claude_stdio_*.transcript.jsonl`). Arguments are
//! accepted and ignored; behaviour is chosen with environment variables:
//! - `FAKE_CLAUDE_MODE=tool` (default): each prompt runs one Bash tool call
//!   (`FAKE_CLAUDE_COMMAND`, default `echo hello > out.txt`) behind a
//!   `can_use_tool` permission request, and really runs it with `sh -c` if allowed;
//! - `FAKE_CLAUDE_MODE=flood`: each prompt emits `FAKE_CLAUDE_COUNT` (1000)
//!   assistant texts of `FAKE_CLAUDE_SIZE` (400) chars at `FAKE_CLAUDE_RATE`
//!   (100) messages/s, each starting with `ts=<unix nanos>;`.
//!
//! With `FAKE_CLAUDE_EXIT_AFTER_MS` set, it exits with `FAKE_CLAUDE_EXIT_CODE`
//! (default 1) that long after start, whatever it is doing: a crashing agent.
//! With `FAKE_CLAUDE_ALLOCATE_MB` set, it allocates and touches that many MiB
//! `FAKE_CLAUDE_ALLOCATE_AFTER_MS` (default 1000) after start, and holds them:
//! an agent that runs into a memory limit.
//!
//! Prompts that arrive during a turn are queued; an `interrupt` control request
//! ends the current turn with a `result` line; closing stdin ends the process.
mod flood;
mod output;
mod tool;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use output::Output;

/// Permission requests waiting for a `control_response`, by request id.
type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Tool,
    Flood,
}

struct Turn {
    number: u64,
    task: JoinHandle<()>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mode = match std::env::var("FAKE_CLAUDE_MODE").as_deref() {
        Ok("flood") => Mode::Flood,
        Ok("tool") | Err(_) => Mode::Tool,
        Ok(other) => {
            eprintln!("fake-claude: unknown FAKE_CLAUDE_MODE `{other}`, using `tool`");
            Mode::Tool
        }
    };
    if let Ok(after) = std::env::var("FAKE_CLAUDE_EXIT_AFTER_MS") {
        let after = after.parse().unwrap_or(0);
        let code = env_number("FAKE_CLAUDE_EXIT_CODE", 1) as i32;
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(after)).await;
            eprintln!("fake-claude: exiting with {code} (FAKE_CLAUDE_EXIT_AFTER_MS)");
            std::process::exit(code);
        });
    }
    if let Ok(mib) = std::env::var("FAKE_CLAUDE_ALLOCATE_MB") {
        let mib = mib.parse().unwrap_or(0);
        let after = env_number("FAKE_CLAUDE_ALLOCATE_AFTER_MS", 1000);
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(after));
            eprintln!("fake-claude: allocating {mib} MiB (FAKE_CLAUDE_ALLOCATE_MB)");
            let mut held: Vec<Vec<u8>> = Vec::new();
            for _ in 0..mib {
                // Written, so every page is really resident (and counted).
                held.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
            eprintln!("fake-claude: holding {} MiB", held.len());
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                std::hint::black_box(&held);
            }
        });
    }
    let out = Arc::new(Output::new());
    let waiters: Waiters = Arc::default();
    let (lines_tx, mut lines) = mpsc::channel::<Value>(64);
    tokio::spawn(async move {
        let mut stdin = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = stdin.next_line().await {
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => {
                    if lines_tx.send(v).await.is_err() {
                        break;
                    }
                }
                Err(err) => eprintln!("fake-claude: skipping unreadable stdin line: {err}"),
            }
        }
    });
    let (done_tx, mut done) = mpsc::channel::<u64>(8);
    let mut queue: VecDeque<String> = VecDeque::new();
    let mut current: Option<Turn> = None;
    let mut turns = 0u64;
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(msg) = line else { break };
                match msg.get("type").and_then(Value::as_str) {
                    Some("user") => queue.push_back(prompt_text(&msg)),
                    Some("control_request") => {
                        let id = msg.get("request_id").cloned().unwrap_or(Value::Null);
                        let subtype = msg.pointer("/request/subtype").and_then(Value::as_str).unwrap_or_default();
                        let body = match subtype {
                            "initialize" => json!({"commands": [], "agents": [], "models": [], "output_style": "default"}),
                            "interrupt" => {
                                if let Some(turn) = current.take() {
                                    turn.task.abort();
                                    waiters.lock().map(|mut w| w.clear()).ok();
                                    out.result("error_during_execution", "", "interrupted", &json!([])).await;
                                }
                                json!({})
                            }
                            _ => json!({}),
                        };
                        out.line(&json!({"type": "control_response",
                            "response": {"subtype": "success", "request_id": id, "response": body}})).await;
                    }
                    Some("control_response") => {
                        let id = msg.pointer("/response/request_id").and_then(Value::as_str).unwrap_or_default();
                        let waiter = waiters.lock().ok().and_then(|mut w| w.remove(id));
                        match waiter {
                            Some(waiter) => {
                                let _ = waiter.send(msg.pointer("/response/response").cloned().unwrap_or(Value::Null));
                            }
                            None => eprintln!("fake-claude: control_response for unknown request {id}"),
                        }
                    }
                    other => eprintln!("fake-claude: ignoring stdin line of type {other:?}"),
                }
            }
            Some(number) = done.recv() => {
                if current.as_ref().is_some_and(|t| t.number == number) {
                    current = None;
                }
            }
        }
        if current.is_none()
            && let Some(prompt) = queue.pop_front()
        {
            turns += 1;
            let (out, waiters, done_tx) = (out.clone(), waiters.clone(), done_tx.clone());
            let number = turns;
            let task = tokio::spawn(async move {
                match mode {
                    Mode::Tool => tool::run(&out, &waiters, number, &prompt).await,
                    Mode::Flood => flood::run(&out, &prompt).await,
                }
                let _ = done_tx.send(number).await;
            });
            current = Some(Turn { number, task });
        }
    }
    if let Some(turn) = current {
        turn.task.abort();
    }
}

fn prompt_text(msg: &Value) -> String {
    match msg.pointer("/message/content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Environment number with a default.
fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
