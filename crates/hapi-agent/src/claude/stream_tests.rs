//! The translation fed with real Claude Code output recorded in
//! `shared/protocol-samples`: what we would have sent back must equal what the
//! recording harness sent.
use std::path::PathBuf;

use hapi_protocol::{Decision, SessionCommand, SessionUpdate, ToolCallStatus, Usage};
use serde_json::{Value, json};

use super::{Action, ClaudeStream};

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/protocol-samples")
}

/// `(dir, msg)` pairs of a transcript file.
fn transcript(name: &str) -> Vec<(String, Value)> {
    let path = samples().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("transcript line is JSON");
            (v["dir"].as_str().unwrap_or_default().to_owned(), v["msg"].clone())
        })
        .collect()
}

fn updates(actions: &[Action]) -> Vec<SessionUpdate> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Update(u) => Some(u.clone()),
            Action::Send(_) => None,
        })
        .collect()
}

fn sent(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(v) => Some(v.clone()),
            Action::Update(_) => None,
        })
        .collect()
}

/// Replays a transcript: Claude's lines go through `on_line`; wherever the
/// harness answered a permission request, `decide` picks our decision, and what
/// we send must equal what the harness sent. Returns every update.
fn replay(name: &str, decide: impl Fn(&str) -> (Decision, Option<String>)) -> Vec<SessionUpdate> {
    let mut stream = ClaudeStream::new();
    let mut all = Vec::new();
    let lines = transcript(name);
    assert_eq!(lines[0].1, ClaudeStream::initialize_request(), "handshake line");
    for (dir, msg) in lines {
        match dir.as_str() {
            "<<" => all.extend(updates(&stream.on_line(&msg.to_string()))),
            ">>" if msg["type"] == "control_response" => {
                let request_id = msg["response"]["request_id"].as_str().unwrap().to_owned();
                let (decision, message) = decide(&request_id);
                let actions = stream.on_command(SessionCommand::Decide {
                    request_id,
                    decision,
                    message,
                });
                assert_eq!(
                    sent(&actions),
                    vec![msg],
                    "our permission answer equals the recorded one"
                );
            }
            ">>" if msg["type"] == "user" => {
                let text = msg["message"]["content"][0]["text"].as_str().unwrap().to_owned();
                let actions = stream.on_command(SessionCommand::Prompt { text });
                assert_eq!(sent(&actions), vec![msg], "our prompt line equals the recorded one");
            }
            _ => {}
        }
    }
    assert_eq!(stream.pending_permissions(), 0);
    all
}

fn bash_input() -> Value {
    json!({"command": "echo hello > out.txt", "description": "Write hello to out.txt"})
}

#[test]
fn allow_transcript_maps_to_the_expected_updates() {
    let got = replay("claude_stdio_control_protocol_allow.transcript.jsonl", |_| {
        (Decision::AllowOnce, None)
    });
    let SessionUpdate::PermissionRequest {
        request_id, options, ..
    } = &got[2]
    else {
        panic!("third update should be the permission request: {got:#?}");
    };
    assert_eq!(request_id, "6a29e60a-2ec1-4744-9227-35de2480f780");
    let ids: Vec<_> = options.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["allow_once", "allow_always", "reject_once", "reject_always"]);
    assert_eq!(
        got,
        vec![
            SessionUpdate::AgentMessageChunk {
                text: "I'll create the file.".into()
            },
            SessionUpdate::ToolCall {
                tool_call_id: "toolu_fake_2".into(),
                name: "Bash".into(),
                title: "echo hello > out.txt".into(),
                input: bash_input(),
                status: ToolCallStatus::Pending,
            },
            SessionUpdate::PermissionRequest {
                request_id: request_id.clone(),
                tool_call_id: Some("toolu_fake_2".into()),
                tool: "Bash".into(),
                input: bash_input(),
                options: options.clone(),
            },
            SessionUpdate::ToolCallUpdate {
                tool_call_id: "toolu_fake_2".into(),
                status: ToolCallStatus::Completed,
                output: Some("(Bash completed with no output)".into()),
            },
            SessionUpdate::AgentMessageChunk {
                text: "Done: wrote hello to out.txt.".into()
            },
            SessionUpdate::UsageUpdate {
                usage: Usage {
                    model: "claude-opus-5-5".into(),
                    input_tokens: 200,
                    output_tokens: 40,
                    cache_read_tokens: 0,
                    cache_write_tokens: 0,
                    cost_usd: Some(0.0016)
                }
            },
            SessionUpdate::TurnEnd {
                stop_reason: "end_turn".into(),
                is_error: false
            },
        ]
    );
}

#[test]
fn deny_transcript_fails_the_tool_call() {
    let got = replay("claude_stdio_control_protocol_deny.transcript.jsonl", |_| {
        (Decision::RejectOnce, Some("denied by stdio driver".into()))
    });
    assert!(got.contains(&SessionUpdate::ToolCallUpdate {
        tool_call_id: "toolu_fake_2".into(),
        status: ToolCallStatus::Failed,
        output: Some("denied by stdio driver".into()),
    }));
    assert_eq!(
        got.last(),
        Some(&SessionUpdate::TurnEnd {
            stop_reason: "end_turn".into(),
            is_error: false
        })
    );
}

#[test]
fn two_turns_end_twice() {
    let got = replay("claude_stdio_two_turns.transcript.jsonl", |_| {
        (Decision::AllowOnce, None)
    });
    let ends = got
        .iter()
        .filter(|u| matches!(u, SessionUpdate::TurnEnd { .. }))
        .count();
    assert_eq!(ends, 2);
    assert!(got.contains(&SessionUpdate::AgentMessageChunk {
        text: "Second turn answer.".into()
    }));
}

/// Plain `-p` stream-json output (not a transcript), one message per line.
fn raw_lines(name: &str) -> Vec<SessionUpdate> {
    let text = std::fs::read_to_string(samples().join(name)).expect("sample file");
    let mut stream = ClaudeStream::new();
    text.lines().flat_map(|l| updates(&stream.on_line(l))).collect()
}

#[test]
fn api_error_ends_the_turn_as_an_error_and_retries_stay_quiet() {
    let got = raw_lines("claude_p_api_error_500_retries2.jsonl");
    assert!(matches!(&got[0], SessionUpdate::AgentMessageChunk { text } if text.starts_with("API Error: 500")));
    assert_eq!(
        got.last(),
        Some(&SessionUpdate::TurnEnd {
            stop_reason: "api_error".into(),
            is_error: true
        })
    );
    // The failed requests used no tokens, so there is no usage update.
    assert_eq!(got.len(), 2, "chunk, turn end: {got:#?}");
}

#[test]
fn partial_message_events_are_skipped() {
    let got = raw_lines("claude_p_stream-json_include-partial-messages.jsonl");
    let chunks: Vec<_> = got
        .iter()
        .filter(|u| matches!(u, SessionUpdate::AgentMessageChunk { .. }))
        .collect();
    assert_eq!(
        chunks.len(),
        2,
        "one chunk per assistant text block, none per stream_event: {got:#?}"
    );
}

fn can_use_tool(request_id: &str) -> String {
    json!({"type": "control_request", "request_id": request_id, "request": {
        "subtype": "can_use_tool", "tool_name": "Bash", "input": bash_input(), "tool_use_id": "toolu_1"}})
    .to_string()
}

#[test]
fn always_decisions_become_session_rules() {
    for (decision, behavior) in [(Decision::AllowAlways, "allow"), (Decision::RejectAlways, "deny")] {
        let mut stream = ClaudeStream::new();
        assert_eq!(updates(&stream.on_line(&can_use_tool("r1"))).len(), 1);
        let answer = stream.on_command(SessionCommand::Decide {
            request_id: "r1".into(),
            decision,
            message: None,
        });
        assert_eq!(sent(&answer)[0]["response"]["response"]["behavior"], behavior);

        let again = stream.on_line(&can_use_tool("r2"));
        assert_eq!(sent(&again)[0]["response"]["request_id"], "r2");
        assert_eq!(sent(&again)[0]["response"]["response"]["behavior"], behavior);
        assert_eq!(
            updates(&again),
            vec![SessionUpdate::PermissionAutoDecided {
                tool: "Bash".into(),
                input: bash_input(),
                decision
            }]
        );
        assert_eq!(stream.pending_permissions(), 0);
    }
}

#[test]
fn once_decisions_leave_no_rule_and_unknown_ids_are_ignored() {
    let mut stream = ClaudeStream::new();
    stream.on_line(&can_use_tool("r1"));
    let denied = stream.on_command(SessionCommand::Decide {
        request_id: "r1".into(),
        decision: Decision::RejectOnce,
        message: None,
    });
    assert_eq!(
        sent(&denied)[0]["response"]["response"]["message"],
        super::DEFAULT_DENY_MESSAGE
    );
    assert!(matches!(
        updates(&stream.on_line(&can_use_tool("r2")))[..],
        [SessionUpdate::PermissionRequest { .. }]
    ));
    let unknown = stream.on_command(SessionCommand::Decide {
        request_id: "nope".into(),
        decision: Decision::AllowOnce,
        message: None,
    });
    assert!(unknown.is_empty());
}

#[test]
fn abort_interrupts_and_marks_the_turn_end() {
    let mut stream = ClaudeStream::new();
    stream.on_command(SessionCommand::Prompt { text: "go".into() });
    let first = stream.on_command(SessionCommand::Abort);
    assert_eq!(
        sent(&first),
        vec![json!({"type": "control_request", "request_id": "interrupt_1", "request": {"subtype": "interrupt"}})]
    );
    let second = stream.on_command(SessionCommand::Abort);
    assert_eq!(sent(&second)[0]["request_id"], "interrupt_2");
    let end =
        stream.on_line(r#"{"type":"result","subtype":"error_during_execution","is_error":false,"stop_reason":null}"#);
    assert_eq!(
        updates(&end),
        [SessionUpdate::TurnEnd {
            stop_reason: "interrupted".into(),
            is_error: false
        }]
    );
    stream.on_command(SessionCommand::Prompt { text: "again".into() });
    let next = stream.on_line(r#"{"type":"result","subtype":"success","is_error":false,"stop_reason":"end_turn"}"#);
    assert_eq!(
        updates(&next),
        [SessionUpdate::TurnEnd {
            stop_reason: "end_turn".into(),
            is_error: false
        }]
    );
}

#[test]
fn an_abort_after_the_turn_ended_sends_nothing_and_leaves_the_next_turn_alone() {
    let mut stream = ClaudeStream::new();
    stream.on_command(SessionCommand::Prompt { text: "go".into() });
    stream.on_line(r#"{"type":"result","subtype":"success","is_error":false,"stop_reason":"end_turn"}"#);
    // The hub paused the session for its budget on that turn's usage update.
    assert_eq!(stream.on_command(SessionCommand::Abort), []);
    stream.on_command(SessionCommand::Prompt { text: "more".into() });
    let next = stream.on_line(r#"{"type":"result","subtype":"success","is_error":false,"stop_reason":"end_turn"}"#);
    assert_eq!(
        updates(&next),
        [SessionUpdate::TurnEnd {
            stop_reason: "end_turn".into(),
            is_error: false
        }]
    );
}

#[test]
fn two_turns_report_what_each_turn_added() {
    let got = replay("claude_stdio_two_turns.transcript.jsonl", |_| {
        (Decision::AllowOnce, None)
    });
    let usage: Vec<&Usage> = got
        .iter()
        .filter_map(|u| match u {
            SessionUpdate::UsageUpdate { usage } => Some(usage),
            _ => None,
        })
        .collect();
    // The recording's `modelUsage` says 200/40 after turn 1 and 300/60 after
    // turn 2 (running totals), `total_cost_usd` 0.0016 then 0.0024.
    let turn = |input, output, cost| Usage {
        model: "claude-opus-5-5".into(),
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cost_usd: Some(cost),
    };
    assert_eq!(usage, [&turn(200, 40, 0.0016), &turn(100, 20, 0.0008)]);
    // Each usage update comes right before its turn's end.
    let kinds: Vec<bool> = got
        .iter()
        .filter(|u| matches!(u, SessionUpdate::UsageUpdate { .. } | SessionUpdate::TurnEnd { .. }))
        .map(|u| matches!(u, SessionUpdate::UsageUpdate { .. }))
        .collect();
    assert_eq!(kinds, [true, false, true, false]);
}

#[test]
fn junk_and_unknown_lines_are_skipped() {
    let mut stream = ClaudeStream::new();
    for line in [
        "",
        "not json",
        "{\"type\":\"mystery\"}",
        "[1,2]",
        "{\"type\":\"assistant\"}",
    ] {
        assert!(stream.on_line(line).is_empty(), "{line}");
    }
    let hook = stream.on_line(r#"{"type":"control_request","request_id":"h1","request":{"subtype":"hook_callback"}}"#);
    assert_eq!(sent(&hook)[0]["response"]["subtype"], "error");
}

#[test]
fn tool_results_with_block_content_and_titles() {
    let mut stream = ClaudeStream::new();
    let line = json!({"type": "user", "message": {"role": "user", "content": [{"type": "tool_result",
        "tool_use_id": "t", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}});
    assert_eq!(
        updates(&stream.on_line(&line.to_string())),
        vec![SessionUpdate::ToolCallUpdate {
            tool_call_id: "t".into(),
            status: ToolCallStatus::Completed,
            output: Some("a\nb".into())
        }]
    );
    assert_eq!(super::tool_title("Write", &json!({"file_path": "/x/y.rs"})), "/x/y.rs");
    assert_eq!(super::tool_title("Grep", &json!({"pattern": "p"})), "Grep");
}
