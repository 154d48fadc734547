//! What the fake Anthropic API answers, decided from the request alone.
//!
//! The script is stateless on purpose: Claude Code retries requests, makes side
//! requests (titles, suggestions) and may run in another process, so the answer is
//! a function of the request body: the step is the number of assistant messages
//! already in `messages`.
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A scripted conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// Requests whose `tools` lack this tool are side requests (title generation,
    /// suggestion mode, …) and get [`Script::side_text`].
    pub main_tool: String,
    /// The answer to side requests.
    pub side_text: String,
    /// Step `n` answers a request holding `n` assistant messages; past the end
    /// the last step repeats.
    pub steps: Vec<Step>,
}

/// One scripted answer. Texts may contain `{tool_result}` (text of the last
/// tool result in the last user message) and `{user_text}` (the last user text
/// block that is not a `<system-reminder>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The text to answer with.
    pub text: String,
    /// Used instead of `text` when the last user message holds an error tool result.
    #[serde(default)]
    pub text_after_error: Option<String>,
    /// A tool call to make after the text.
    #[serde(default)]
    pub tool_use: Option<ToolUse>,
}

/// A tool call the fake model makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolUse {
    /// Tool name, e.g. `Bash`.
    pub name: String,
    /// Tool input.
    pub input: Value,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Text block.
    pub text: String,
    /// Tool call after the text, if any (then `stop_reason` is `tool_use`).
    pub tool_use: Option<ToolUse>,
}

impl Default for Script {
    /// Write a file with Bash, then report how it went, then echo the user.
    fn default() -> Self {
        Script {
            main_tool: "Bash".into(),
            side_text: "OK.".into(),
            steps: vec![
                Step {
                    text: "I'll create the file.".into(),
                    text_after_error: None,
                    tool_use: Some(ToolUse {
                        name: "Bash".into(),
                        input: json!({"command": "echo hello > out.txt", "description": "Write hello to out.txt"}),
                    }),
                },
                Step {
                    text: "Done: wrote hello to out.txt.".into(),
                    text_after_error: Some("The command was not run: {tool_result}".into()),
                    tool_use: None,
                },
                Step {
                    text: "You said: {user_text}".into(),
                    text_after_error: None,
                    tool_use: None,
                },
            ],
        }
    }
}

impl Script {
    /// The answer to a `POST /v1/messages` body.
    pub fn reply(&self, request: &Value) -> Reply {
        let has_main_tool = request.get("tools").and_then(Value::as_array).is_some_and(|tools| {
            tools
                .iter()
                .any(|t| t.get("name").and_then(Value::as_str) == Some(&self.main_tool))
        });
        let messages = request
            .get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some(step) = self.step_for(messages).filter(|_| has_main_tool) else {
            return Reply {
                text: self.side_text.clone(),
                tool_use: None,
            };
        };
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"));
        let error_result = last_user.and_then(error_tool_result);
        let template = match (&error_result, &step.text_after_error) {
            (Some(_), Some(after_error)) => after_error,
            _ => &step.text,
        };
        let text = template
            .replace("{tool_result}", error_result.as_deref().unwrap_or_default())
            .replace("{user_text}", &last_user_text(messages).unwrap_or_default());
        Reply {
            text,
            tool_use: step.tool_use.clone(),
        }
    }

    fn step_for(&self, messages: &[Value]) -> Option<&Step> {
        let assistant = messages
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
            .count();
        self.steps.get(assistant).or_else(|| self.steps.last())
    }
}

fn blocks(message: &Value) -> Vec<Value> {
    match message.get("content") {
        Some(Value::String(text)) => vec![json!({"type": "text", "text": text})],
        Some(Value::Array(blocks)) => blocks.clone(),
        _ => Vec::new(),
    }
}

/// Text of the first `is_error` tool result in a user message.
fn error_tool_result(message: &Value) -> Option<String> {
    blocks(message)
        .into_iter()
        .find(|b| {
            b.get("type").and_then(Value::as_str) == Some("tool_result")
                && b.get("is_error").and_then(Value::as_bool) == Some(true)
        })
        .map(|b| match b.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
}

fn last_user_text(messages: &[Value]) -> Option<String> {
    messages
        .iter()
        .rev()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .flat_map(|m| blocks(m).into_iter().rev())
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str).map(str::to_owned))
        .find(|text| !text.trim_start().starts_with("<system-reminder>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(messages: Value) -> Value {
        json!({"tools": [{"name": "Bash"}, {"name": "Read"}], "messages": messages, "stream": true})
    }

    #[test]
    fn follows_the_default_script() {
        let script = Script::default();
        let first = request(json!([{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\nctx</system-reminder>"},
            {"type": "text", "text": "do it"}]}]));
        let reply = script.reply(&first);
        assert_eq!(reply.text, "I'll create the file.");
        assert_eq!(reply.tool_use.unwrap().input["command"], "echo hello > out.txt");

        let denied = request(json!([
            {"role": "user", "content": "do it"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": true, "content": "no way"}]},
        ]));
        assert_eq!(script.reply(&denied).text, "The command was not run: no way");

        let ok = request(json!([
            {"role": "user", "content": "do it"},
            {"role": "assistant", "content": []},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "fine"}]}]},
        ]));
        assert_eq!(script.reply(&ok).text, "Done: wrote hello to out.txt.");

        let third = request(json!([
            {"role": "user", "content": "do it"}, {"role": "assistant", "content": []},
            {"role": "user", "content": "x"}, {"role": "assistant", "content": []},
            {"role": "user", "content": [{"type": "text", "text": "and now?"},
                                         {"type": "text", "text": "<system-reminder>r</system-reminder>"}]},
        ]));
        assert_eq!(script.reply(&third).text, "You said: and now?");
    }

    #[test]
    fn side_requests_get_the_side_text() {
        let reply = Script::default().reply(&json!({"tools": [], "messages": [{"role": "user", "content": "title?"}]}));
        assert_eq!(
            reply,
            Reply {
                text: "OK.".into(),
                tool_use: None
            }
        );
    }
}
