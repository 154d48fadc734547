//! `tool` mode: one Bash call per prompt behind a real permission round trip.
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::Waiters;
use crate::output::Output;

const DEFAULT_COMMAND: &str = "echo hello > out.txt";

pub async fn run(out: &Output, waiters: &Waiters, turn: u64, _prompt: &str) {
    out.system_init().await;
    let command = std::env::var("FAKE_CLAUDE_COMMAND").unwrap_or_else(|_| DEFAULT_COMMAND.to_owned());
    let description = if command == DEFAULT_COMMAND {
        "Write hello to out.txt".to_owned()
    } else {
        format!("Run {command}")
    };
    let input = json!({"command": command, "description": description});
    let message_id = format!("msg_fake_{turn}_1");
    let tool_use_id = format!("toolu_fake_{turn}");
    out.lines(&[
        out.assistant(&message_id, json!({"type": "text", "text": "I'll create the file."})),
        out.assistant(
            &message_id,
            json!({"type": "tool_use", "id": tool_use_id, "name": "Bash", "input": input}),
        ),
    ])
    .await;

    let request_id = uuid::Uuid::new_v4().to_string();
    let (tx, rx) = oneshot::channel();
    if let Ok(mut w) = waiters.lock() {
        w.insert(request_id.clone(), tx);
    }
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    out.line(
        &json!({"type": "control_request", "request_id": request_id, "request": {
        "subtype": "can_use_tool", "tool_name": "Bash", "display_name": "Bash", "input": input,
        "description": description,
        "permission_suggestions": [
            {"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": format!("{command} *")}],
             "behavior": "allow", "destination": "localSettings"},
            {"type": "addDirectories", "directories": [cwd], "destination": "session"}],
        "tool_use_id": tool_use_id}}),
    )
    .await;
    let Ok(decision) = rx.await else { return };

    let (final_text, denials) = if decision.get("behavior").and_then(Value::as_str) == Some("allow") {
        let command = decision
            .pointer("/updatedInput/command")
            .and_then(Value::as_str)
            .unwrap_or(&command);
        let (content, failed) = run_shell(command).await;
        out.line(&out.tool_result(&tool_use_id, &content, failed)).await;
        let text = if failed {
            format!("The command failed: {content}")
        } else if command == DEFAULT_COMMAND {
            "Done: wrote hello to out.txt.".to_owned()
        } else {
            "Done.".to_owned()
        };
        (text, json!([]))
    } else {
        let message = decision
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("Permission denied");
        out.line(&out.tool_result(&tool_use_id, message, true)).await;
        let denials = json!([{"tool_name": "Bash", "tool_use_id": tool_use_id, "tool_input": input}]);
        (format!("The command was not run: {message}"), denials)
    };
    out.line(&out.assistant(
        &format!("msg_fake_{turn}_2"),
        json!({"type": "text", "text": final_text}),
    ))
    .await;
    out.result("success", &final_text, "completed", &denials).await;
}

/// Runs `command` with `sh -c` in the current directory; returns its combined
/// output (or Claude's no-output marker) and whether it failed.
async fn run_shell(command: &str) -> (String, bool) {
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    match output {
        Ok(output) => {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            let text = text.trim_end().to_owned();
            let text = if text.is_empty() {
                "(Bash completed with no output)".to_owned()
            } else {
                text
            };
            (text, !output.status.success())
        }
        Err(err) => (format!("could not run sh: {err}"), true),
    }
}
