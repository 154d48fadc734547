//! Everything fake-claude writes goes through one locked, flushed stdout, in the
//! line shapes real Claude Code uses.
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufWriter, Stdout};
use tokio::sync::Mutex;

pub struct Output {
    stdout: Mutex<BufWriter<Stdout>>,
    session_id: String,
    cwd: String,
}

impl Output {
    pub fn new() -> Self {
        Output {
            stdout: Mutex::new(BufWriter::new(tokio::io::stdout())),
            session_id: uuid::Uuid::new_v4().to_string(),
            cwd: std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }
    }

    pub async fn line(&self, value: &Value) {
        self.lines(std::slice::from_ref(value)).await;
    }

    /// Writes several lines with one flush.
    pub async fn lines(&self, values: &[Value]) {
        let mut stdout = self.stdout.lock().await;
        for value in values {
            let mut bytes = value.to_string().into_bytes();
            bytes.push(b'\n');
            if stdout.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = stdout.flush().await;
    }

    pub async fn system_init(&self) {
        self.line(&json!({
            "type": "system", "subtype": "init", "cwd": self.cwd, "session_id": self.session_id,
            "tools": ["Bash", "Edit", "Read", "Write"], "mcp_servers": [], "model": "claude-fake",
            "permissionMode": "default", "apiKeySource": "none", "claude_code_version": "fake",
            "uuid": uuid::Uuid::new_v4().to_string(),
        }))
        .await;
    }

    /// An `assistant` line with one content block.
    pub fn assistant(&self, message_id: &str, block: Value) -> Value {
        json!({
            "type": "assistant",
            "message": {"id": message_id, "type": "message", "role": "assistant", "model": "claude-fake",
                        "content": [block], "stop_reason": null, "stop_sequence": null,
                        "usage": {"input_tokens": 100, "output_tokens": 1,
                                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}},
            "parent_tool_use_id": null, "session_id": self.session_id, "uuid": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// A `user` line carrying one tool result.
    pub fn tool_result(&self, tool_use_id: &str, content: &str, is_error: bool) -> Value {
        json!({
            "type": "user",
            "message": {"role": "user", "content": [
                {"tool_use_id": tool_use_id, "type": "tool_result", "content": content, "is_error": is_error}]},
            "parent_tool_use_id": null, "session_id": self.session_id, "uuid": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// The `result` line that ends a turn.
    pub async fn result(&self, subtype: &str, result: &str, terminal_reason: &str, denials: &Value) {
        let completed = subtype == "success";
        self.line(&json!({
            "type": "result", "subtype": subtype, "is_error": false,
            "duration_ms": 10, "duration_api_ms": 5, "num_turns": 2,
            "result": result, "stop_reason": if completed { json!("end_turn") } else { Value::Null },
            "session_id": self.session_id, "total_cost_usd": 0.0016,
            "usage": {"input_tokens": 200, "output_tokens": 40,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            "permission_denials": denials, "terminal_reason": terminal_reason,
            "uuid": uuid::Uuid::new_v4().to_string(),
        }))
        .await;
    }
}
