//! Translation between Claude Code's stream-json control protocol and HAPI's
//! agent-neutral model, with no I/O so it can be fed recorded transcripts.
//!
//! Claude writes one JSON object per line on stdout (`system`, `assistant`, `user`,
//! `result`, `control_request`, `control_response`) and reads the same kind of
//! lines on stdin (`user` prompts, `control_request` initialize / interrupt,
//! `control_response` answers to its `can_use_tool` requests). [`ClaudeStream`]
//! keeps the little state the translation needs: permission requests still
//! waiting for a decision, the session's "always" rules, whether we asked for
//! an interrupt, how many turns are open, and the usage totals so far.
use std::collections::HashMap;

use hapi_protocol::{Decision, PermissionOption, SessionCommand, SessionUpdate, ToolCallStatus};

use super::usage::UsageTracker;
use serde_json::{Value, json};

/// The message Claude gets when a person denies without a note.
pub const DEFAULT_DENY_MESSAGE: &str = "Denied by the user via HAPI";
/// The message Claude gets when a session rule denies.
pub const RULE_DENY_MESSAGE: &str = "Denied by a session rule (reject always) via HAPI";

/// One consequence of a line or a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Report this to the hub.
    Update(SessionUpdate),
    /// Write this line to Claude's stdin.
    Send(Value),
}

#[derive(Debug, Clone)]
struct PendingPermission {
    tool: String,
    input: Value,
}

/// A session rule set by an "always" decision: the same tool with the same input
/// gets the same answer without asking again.
#[derive(Debug, Clone)]
struct Rule {
    tool: String,
    input: Value,
    decision: Decision,
}

/// Translation state of one Claude process.
#[derive(Debug, Default)]
pub struct ClaudeStream {
    pending: HashMap<String, PendingPermission>,
    rules: Vec<Rule>,
    interrupts_sent: u64,
    interrupting: bool,
    /// Prompts sent whose `result` has not come yet.
    open_turns: u64,
    usage: UsageTracker,
}

impl ClaudeStream {
    /// A fresh state for a new process.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first line Claude must get: the control-protocol handshake.
    pub fn initialize_request() -> Value {
        json!({"type": "control_request", "request_id": "init_1", "request": {"subtype": "initialize"}})
    }

    /// Number of permission requests waiting for a decision.
    pub fn pending_permissions(&self) -> usize {
        self.pending.len()
    }

    /// Translates one stdout line. Lines that are not JSON, or JSON we do not know,
    /// are logged and produce nothing.
    pub fn on_line(&mut self, line: &str) -> Vec<Action> {
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        let msg: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(err) => {
                tracing::warn!(%err, line = %truncate(line, 200), "skipping a non-JSON line from claude");
                return Vec::new();
            }
        };
        match msg.get("type").and_then(Value::as_str) {
            Some("assistant") => assistant_blocks(&msg),
            Some("user") => tool_results(&msg),
            Some("result") => self.on_result(&msg),
            Some("control_request") => self.on_control_request(&msg),
            Some("control_response") => on_control_response(&msg),
            Some("control_cancel_request") => {
                if let Some(id) = msg.get("request_id").and_then(Value::as_str) {
                    self.pending.remove(id);
                    tracing::info!(request_id = id, "claude cancelled a permission request");
                }
                Vec::new()
            }
            Some("system") => {
                if msg.get("subtype").and_then(Value::as_str) == Some("api_retry") {
                    let attempt = msg.get("attempt").and_then(Value::as_u64);
                    let status = msg.get("error_status").and_then(Value::as_u64);
                    tracing::warn!(?attempt, ?status, "claude is retrying an API request");
                }
                Vec::new()
            }
            Some("stream_event") => Vec::new(),
            other => {
                tracing::debug!(kind = ?other, "ignoring a claude line of unknown type");
                Vec::new()
            }
        }
    }

    /// Translates a hub command, except `Stop`, which is about the process and is
    /// handled by the driver.
    pub fn on_command(&mut self, command: SessionCommand) -> Vec<Action> {
        match command {
            SessionCommand::Prompt { text } => {
                self.open_turns += 1;
                vec![Action::Send(json!({
                "type": "user",
                "session_id": "",
                "parent_tool_use_id": null,
                "message": {"role": "user", "content": [{"type": "text", "text": text}]},
                }))]
            }
            SessionCommand::Decide {
                request_id,
                decision,
                message,
            } => {
                let Some(pending) = self.pending.remove(&request_id) else {
                    tracing::warn!(%request_id, "ignoring a decision for an unknown permission request");
                    return Vec::new();
                };
                if matches!(decision, Decision::AllowAlways | Decision::RejectAlways) {
                    self.rules
                        .retain(|r| !(r.tool == pending.tool && r.input == pending.input));
                    self.rules.push(Rule {
                        tool: pending.tool.clone(),
                        input: pending.input.clone(),
                        decision,
                    });
                }
                let deny_message = message.unwrap_or_else(|| DEFAULT_DENY_MESSAGE.to_owned());
                vec![Action::Send(permission_response(
                    &request_id,
                    decision,
                    &pending.input,
                    &deny_message,
                ))]
            }
            // An abort that arrives after its turn ended (the hub pausing a session
            // for its budget on the turn's last usage update, a late click) has
            // nothing to interrupt; sent anyway, it would mark the *next* turn as
            // interrupted.
            SessionCommand::Abort if self.open_turns == 0 => {
                tracing::info!("ignoring an abort: no turn is running");
                Vec::new()
            }
            SessionCommand::Abort => {
                self.interrupts_sent += 1;
                self.interrupting = true;
                vec![Action::Send(json!({
                    "type": "control_request",
                    "request_id": format!("interrupt_{}", self.interrupts_sent),
                    "request": {"subtype": "interrupt"},
                }))]
            }
            SessionCommand::Stop => Vec::new(),
        }
    }

    fn on_result(&mut self, msg: &Value) -> Vec<Action> {
        self.open_turns = self.open_turns.saturating_sub(1);
        let usage = self.usage.on_result(msg);
        let is_error = msg.get("is_error").and_then(Value::as_bool).unwrap_or(false);
        let text = |key: &str| msg.get(key).and_then(Value::as_str).map(str::to_owned);
        let stop_reason = if std::mem::take(&mut self.interrupting) {
            "interrupted".to_owned()
        } else if is_error {
            text("terminal_reason")
                .or_else(|| text("stop_reason"))
                .unwrap_or_else(|| "error".to_owned())
        } else {
            text("stop_reason")
                .or_else(|| text("terminal_reason"))
                .unwrap_or_else(|| "end_turn".to_owned())
        };
        usage
            .into_iter()
            .map(|usage| Action::Update(SessionUpdate::UsageUpdate { usage }))
            .chain([Action::Update(SessionUpdate::TurnEnd { stop_reason, is_error })])
            .collect()
    }

    fn on_control_request(&mut self, msg: &Value) -> Vec<Action> {
        let request_id = msg
            .get("request_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let request = msg.get("request").cloned().unwrap_or(Value::Null);
        let subtype = request.get("subtype").and_then(Value::as_str).unwrap_or_default();
        if subtype != "can_use_tool" {
            tracing::warn!(%request_id, subtype, "answering an unsupported claude control request with an error");
            return vec![Action::Send(json!({
                "type": "control_response",
                "response": {"subtype": "error", "request_id": request_id,
                             "error": format!("HAPI does not support `{subtype}` requests")},
            }))];
        }
        let tool = request
            .get("tool_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let input = request.get("input").cloned().unwrap_or_else(|| json!({}));
        if let Some(rule) = self.rules.iter().find(|r| r.tool == tool && r.input == input) {
            let decision = rule.decision;
            return vec![
                Action::Send(permission_response(&request_id, decision, &input, RULE_DENY_MESSAGE)),
                Action::Update(SessionUpdate::PermissionAutoDecided { tool, input, decision }),
            ];
        }
        let tool_call_id = request.get("tool_use_id").and_then(Value::as_str).map(str::to_owned);
        self.pending.insert(
            request_id.clone(),
            PendingPermission {
                tool: tool.clone(),
                input: input.clone(),
            },
        );
        let options = PermissionOption::every_kind();
        vec![Action::Update(SessionUpdate::PermissionRequest {
            request_id,
            tool_call_id,
            tool,
            input,
            options,
        })]
    }
}

/// The `control_response` line answering a `can_use_tool` request.
fn permission_response(request_id: &str, decision: Decision, input: &Value, deny_message: &str) -> Value {
    let response = if decision.allows() {
        json!({"behavior": "allow", "updatedInput": input})
    } else {
        json!({"behavior": "deny", "message": deny_message})
    };
    json!({
        "type": "control_response",
        "response": {"subtype": "success", "request_id": request_id, "response": response},
    })
}

fn on_control_response(msg: &Value) -> Vec<Action> {
    let response = msg.get("response");
    let subtype = response.and_then(|r| r.get("subtype")).and_then(Value::as_str);
    let request_id = response
        .and_then(|r| r.get("request_id"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if subtype == Some("error") {
        let error = response
            .and_then(|r| r.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        tracing::warn!(request_id, error, "claude refused a control request");
        return vec![Action::Update(SessionUpdate::Error {
            message: format!("Claude refused control request {request_id}: {error}"),
        })];
    }
    tracing::debug!(request_id, "claude answered a control request");
    Vec::new()
}

/// `assistant` lines carry content blocks: text is shown, tool_use announces a tool
/// call, anything else (thinking, …) stays inside the agent.
fn assistant_blocks(msg: &Value) -> Vec<Action> {
    let Some(blocks) = msg.pointer("/message/content").and_then(Value::as_array) else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter_map(|block| match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = block.get("text").and_then(Value::as_str).unwrap_or_default();
                (!text.is_empty()).then(|| Action::Update(SessionUpdate::AgentMessageChunk { text: text.to_owned() }))
            }
            Some("tool_use") => {
                let name = block.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                Some(Action::Update(SessionUpdate::ToolCall {
                    tool_call_id: block.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    title: tool_title(&name, &input),
                    name,
                    input,
                    status: ToolCallStatus::Pending,
                }))
            }
            _ => None,
        })
        .collect()
}

/// A short title for a tool call: the command for shells, the path for file tools.
pub fn tool_title(name: &str, input: &Value) -> String {
    let field = match name {
        "Bash" => "command",
        "Edit" | "Write" | "Read" | "MultiEdit" | "NotebookEdit" => "file_path",
        _ => return name.to_owned(),
    };
    input
        .get(field)
        .and_then(Value::as_str)
        .map_or_else(|| name.to_owned(), str::to_owned)
}

/// `user` lines from Claude echo tool results back; each one finishes a tool call.
fn tool_results(msg: &Value) -> Vec<Action> {
    let Some(blocks) = msg.pointer("/message/content").and_then(Value::as_array) else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter(|block| block.get("type").and_then(Value::as_str) == Some("tool_result"))
        .map(|block| {
            let is_error = block.get("is_error").and_then(Value::as_bool).unwrap_or(false);
            Action::Update(SessionUpdate::ToolCallUpdate {
                tool_call_id: block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                status: if is_error {
                    ToolCallStatus::Failed
                } else {
                    ToolCallStatus::Completed
                },
                output: block.get("content").map(content_text),
            })
        })
        .collect()
}

/// Tool result content is either a string or an array of blocks; text blocks
/// are joined with newlines and other blocks (images) are left out.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
