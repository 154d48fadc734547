//! hapi-agent's Claude driver against the `fake-claude` binary: real processes,
//! real pipes, real files.
use std::path::{Path, PathBuf};
use std::time::Duration;

use hapi_agent::claude::ClaudeDriver;
use hapi_agent::{AgentDriver, AgentError, RunningAgent, SpawnSpec};
use hapi_protocol::{Decision, SessionCommand, SessionUpdate, ToolCallStatus};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

fn spec(program: PathBuf, dir: &Path, env: &[(&str, &str)]) -> SpawnSpec {
    SpawnSpec {
        program,
        args: vec!["--model".into(), "fake".into()],
        cwd: dir.to_path_buf(),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        stderr_log: Some(dir.join("agent.log")),
    }
}

fn start(dir: &Path, env: &[(&str, &str)]) -> RunningAgent {
    ClaudeDriver
        .spawn(spec(PathBuf::from(env!("CARGO_BIN_EXE_fake-claude")), dir, env))
        .expect("fake-claude starts")
}

/// Collects updates until one matches `until`, which is returned last.
async fn collect_until(agent: &mut RunningAgent, until: impl Fn(&SessionUpdate) -> bool) -> Vec<SessionUpdate> {
    let mut seen = Vec::new();
    loop {
        let update = timeout(WAIT, agent.updates.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out; seen so far: {seen:#?}"))
            .unwrap_or_else(|| panic!("updates ended; seen: {seen:#?}"));
        let done = until(&update);
        seen.push(update);
        if done {
            return seen;
        }
    }
}

fn is_turn_end(u: &SessionUpdate) -> bool {
    matches!(u, SessionUpdate::TurnEnd { .. })
}

async fn prompt_until_permission(agent: &mut RunningAgent) -> String {
    agent
        .commands
        .send(SessionCommand::Prompt { text: "do it".into() })
        .await
        .unwrap();
    let seen = collect_until(agent, |u| matches!(u, SessionUpdate::PermissionRequest { .. })).await;
    assert!(seen.contains(&SessionUpdate::AgentMessageChunk {
        text: "I'll create the file.".into()
    }));
    assert!(seen.iter().any(
        |u| matches!(u, SessionUpdate::ToolCall { title, status: ToolCallStatus::Pending, .. }
        if title == "echo hello > out.txt")
    ));
    match seen.last() {
        Some(SessionUpdate::PermissionRequest { request_id, tool, .. }) => {
            assert_eq!(tool, "Bash");
            request_id.clone()
        }
        _ => unreachable!(),
    }
}

async fn decide(agent: &RunningAgent, request_id: String, decision: Decision, message: Option<&str>) {
    let message = message.map(str::to_owned);
    agent
        .commands
        .send(SessionCommand::Decide {
            request_id,
            decision,
            message,
        })
        .await
        .unwrap();
}

/// Stops the agent and checks it reports `SessionEnded` last.
async fn stop(mut agent: RunningAgent) {
    agent.commands.send(SessionCommand::Stop).await.unwrap();
    let seen = collect_until(&mut agent, |u| matches!(u, SessionUpdate::SessionEnded { .. })).await;
    assert_eq!(
        seen.last(),
        Some(&SessionUpdate::SessionEnded {
            reason: "stopped".into(),
            exit_code: Some(0)
        })
    );
    assert!(agent.updates.recv().await.is_none(), "nothing after SessionEnded");
    let exit = timeout(WAIT, agent.exit).await.unwrap().unwrap();
    assert_eq!(exit.reason, "stopped");
}

#[tokio::test]
async fn allowing_runs_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = start(dir.path(), &[]);
    let request_id = prompt_until_permission(&mut agent).await;
    decide(&agent, request_id, Decision::AllowOnce, None).await;
    let seen = collect_until(&mut agent, is_turn_end).await;
    assert!(seen.contains(&SessionUpdate::ToolCallUpdate {
        tool_call_id: "toolu_fake_1".into(),
        status: ToolCallStatus::Completed,
        output: Some("(Bash completed with no output)".into()),
    }));
    assert!(seen.contains(&SessionUpdate::AgentMessageChunk {
        text: "Done: wrote hello to out.txt.".into()
    }));
    assert!(matches!(&seen[seen.len() - 2], SessionUpdate::UsageUpdate { usage } if usage.output_tokens == 40));
    assert_eq!(
        seen.last(),
        Some(&SessionUpdate::TurnEnd {
            stop_reason: "end_turn".into(),
            is_error: false
        })
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).unwrap(), "hello\n");
    stop(agent).await;
}

#[tokio::test]
async fn denying_does_not_run_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = start(dir.path(), &[]);
    let request_id = prompt_until_permission(&mut agent).await;
    decide(&agent, request_id, Decision::RejectOnce, Some("not today")).await;
    let seen = collect_until(&mut agent, is_turn_end).await;
    assert!(seen.contains(&SessionUpdate::ToolCallUpdate {
        tool_call_id: "toolu_fake_1".into(),
        status: ToolCallStatus::Failed,
        output: Some("not today".into()),
    }));
    assert!(seen.contains(&SessionUpdate::AgentMessageChunk {
        text: "The command was not run: not today".into()
    }));
    assert!(!dir.path().join("out.txt").exists());
    stop(agent).await;
}

#[tokio::test]
async fn abort_ends_the_turn_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = start(dir.path(), &[]);
    let request_id = prompt_until_permission(&mut agent).await;
    agent.commands.send(SessionCommand::Abort).await.unwrap();
    let seen = collect_until(&mut agent, is_turn_end).await;
    assert_eq!(
        seen.last(),
        Some(&SessionUpdate::TurnEnd {
            stop_reason: "interrupted".into(),
            is_error: false
        })
    );
    // A late decision for the abandoned request is harmless.
    decide(&agent, request_id, Decision::AllowOnce, None).await;
    assert!(!dir.path().join("out.txt").exists());
    // The next prompt works normally.
    let request_id = prompt_until_permission(&mut agent).await;
    decide(&agent, request_id, Decision::AllowOnce, None).await;
    let seen = collect_until(&mut agent, is_turn_end).await;
    assert_eq!(
        seen.last(),
        Some(&SessionUpdate::TurnEnd {
            stop_reason: "end_turn".into(),
            is_error: false
        })
    );
    stop(agent).await;
}

#[tokio::test]
async fn always_decisions_are_applied_by_the_driver() {
    for (decision, file_after) in [(Decision::AllowAlways, true), (Decision::RejectAlways, false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = start(dir.path(), &[]);
        let request_id = prompt_until_permission(&mut agent).await;
        decide(&agent, request_id, decision, None).await;
        collect_until(&mut agent, is_turn_end).await;
        let _ = std::fs::remove_file(dir.path().join("out.txt"));

        agent
            .commands
            .send(SessionCommand::Prompt { text: "again".into() })
            .await
            .unwrap();
        let seen = collect_until(&mut agent, is_turn_end).await;
        assert!(
            !seen
                .iter()
                .any(|u| matches!(u, SessionUpdate::PermissionRequest { .. })),
            "{seen:#?}"
        );
        let auto: Vec<_> = seen
            .iter()
            .filter(|u| matches!(u, SessionUpdate::PermissionAutoDecided { .. }))
            .collect();
        assert!(
            matches!(auto[..], [SessionUpdate::PermissionAutoDecided { tool, decision: d, .. }] if tool == "Bash" && *d == decision),
            "{seen:#?}"
        );
        assert_eq!(dir.path().join("out.txt").exists(), file_after, "{decision:?}");
        stop(agent).await;
    }
}

#[tokio::test]
async fn flood_arrives_complete_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("FAKE_CLAUDE_MODE", "flood"),
        ("FAKE_CLAUDE_COUNT", "3000"),
        ("FAKE_CLAUDE_RATE", "1000000"),
    ];
    let mut agent = start(dir.path(), &env);
    agent
        .commands
        .send(SessionCommand::Prompt { text: "go".into() })
        .await
        .unwrap();
    let seen = collect_until(&mut agent, is_turn_end).await;
    let texts: Vec<&String> = seen
        .iter()
        .filter_map(|u| match u {
            SessionUpdate::AgentMessageChunk { text } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(texts.len(), 3000);
    let stamps: Vec<u128> = texts
        .iter()
        .map(|t| {
            t.strip_prefix("ts=")
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "timestamps ascend");
    assert!(texts.iter().all(|t| t.len() == 400));
    stop(agent).await;
}

#[tokio::test]
async fn stop_escalates_to_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    // An "agent" that ignores stdin closing and has a child of its own.
    let script = dir.path().join("stubborn.sh");
    std::fs::write(&script, "#!/bin/sh\nsleep 60 &\necho $! > sleep.pid\nwait\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut agent = ClaudeDriver.spawn(spec(script, dir.path(), &[])).unwrap();
    let pid_file = dir.path().join("sleep.pid");
    for _ in 0..100 {
        if std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n')) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sleep_pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    agent.commands.send(SessionCommand::Stop).await.unwrap();
    let seen = collect_until(&mut agent, |u| matches!(u, SessionUpdate::SessionEnded { .. })).await;
    assert!(
        matches!(seen.last(), Some(SessionUpdate::SessionEnded { reason, exit_code: None }) if reason == "stopped"),
        "killed by a signal: {seen:#?}"
    );
    assert!(gone(sleep_pid).await, "the agent's child was stopped too");
}

/// Whether a process no longer runs (absent, or a zombie waiting for its reaper).
async fn gone(pid: i32) -> bool {
    for _ in 0..50 {
        let absent = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(nix::errno::Errno::ESRCH);
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "));
        if absent || zombie {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_missing_binary_is_a_spawn_error() {
    let dir = tempfile::tempdir().unwrap();
    let result = ClaudeDriver.spawn(spec(dir.path().join("no-such-claude"), dir.path(), &[]));
    assert!(matches!(result, Err(AgentError::Spawn { .. })));
}

#[tokio::test]
async fn the_handshake_and_flags_go_first_and_an_own_exit_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("record.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$@\" > args.txt\nread -r line\necho \"$line\" > first.json\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut agent = ClaudeDriver.spawn(spec(script, dir.path(), &[])).unwrap();
    let seen = collect_until(&mut agent, |u| matches!(u, SessionUpdate::SessionEnded { .. })).await;
    assert_eq!(
        seen,
        vec![SessionUpdate::SessionEnded {
            reason: "exited".into(),
            exit_code: Some(3)
        }]
    );
    let args = std::fs::read_to_string(dir.path().join("args.txt")).unwrap();
    assert_eq!(
        args.trim(),
        "--input-format stream-json --output-format stream-json --verbose \
         --permission-prompt-tool stdio --model fake"
    );
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("first.json")).unwrap()).unwrap();
    assert_eq!(first, hapi_agent::claude::stream::ClaudeStream::initialize_request());
}
