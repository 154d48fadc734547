//! End to end with the real Claude Code (pinned in tests/agents) against the
//! project's fake Anthropic server: the real `hapi hub` and `hapi claude`
//! processes, approvals decided over the public API, events watched over SSE.
use std::time::Duration;

use futures_util::StreamExt as _;
use hapi_e2e::{ClaudeSession, Hub, agent_texts, kinds, wait};
use hapi_testkit::{Script, start_fake_anthropic};
use serde_json::{Value, json};

/// Reads SSE events until one matches.
async fn sse_until(hub: &Hub, after: u64, mut pred: impl FnMut(&Value) -> bool) -> Value {
    let (_, ticket) = hub.post("/api/events/ticket", json!({})).await;
    let url = format!(
        "{}/api/events?ticket={}&after={after}",
        hub.url,
        ticket["ticket"].as_str().unwrap()
    );
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut buf = String::new();
    tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
                    let ev: Value = serde_json::from_str(data.trim()).unwrap();
                    if pred(&ev) {
                        return ev;
                    }
                }
            }
            let chunk = body.next().await.expect("SSE ended").unwrap();
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .expect("timed out waiting for the SSE event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_runs_the_tool_and_a_second_prompt_works() {
    let dir = tempfile::tempdir().unwrap();
    let model = start_fake_anthropic(Script::default()).await.unwrap();
    let hub = Hub::start(dir.path());
    let mut session = ClaudeSession::start(dir.path(), &hub, &model.url(), "do it");

    // The approval shows up on SSE and in /api/approvals.
    let sid = session.id.clone();
    let event = sse_until(&hub, 0, |ev| {
        ev["type"] == "approval" && ev["approval"]["session_id"] == sid.as_str()
    })
    .await;
    assert_eq!(event["approval"]["state"], "pending");
    assert_eq!(event["approval"]["tool"], "Bash");
    let approval = hub.pending_approval(&session.id).await;
    assert_eq!(approval["id"], event["approval"]["id"]);
    assert_eq!(approval["input"]["command"], "echo hello > out.txt");
    assert!(
        !session.work.join("out.txt").exists(),
        "nothing runs before the decision"
    );
    let listed = hub.get("/api/sessions").await;
    assert_eq!(listed["sessions"][0]["pending_approvals"], 1);

    let (status, decided) = hub
        .post(
            &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
            json!({"decision": "allow_once"}),
        )
        .await;
    assert_eq!(status, 200, "{decided}");

    let messages = hub.wait_turns(&session.id, 1).await;
    assert_eq!(
        std::fs::read_to_string(session.work.join("out.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        kinds(&messages),
        [
            "user_message",
            "agent_message_chunk",
            "tool_call",
            "permission_request",
            "tool_call_update",
            "agent_message_chunk",
            "usage_update",
            "turn_end"
        ]
    );
    let result = messages
        .iter()
        .find(|m| m["update"]["kind"] == "tool_call_update")
        .unwrap();
    assert_eq!(result["update"]["status"], "completed");
    assert_eq!(agent_texts(&messages).last().unwrap(), "Done: wrote hello to out.txt.");

    // A second prompt in the same session, through the hub.
    let (status, _) = hub
        .post(
            &format!("/api/sessions/{}/messages", session.id),
            json!({"text": "and now?"}),
        )
        .await;
    assert_eq!(status, 202);
    let messages = hub.wait_turns(&session.id, 2).await;
    assert_eq!(agent_texts(&messages).last().unwrap(), "You said: and now?");
    assert_eq!(
        hub.get(&format!("/api/sessions/{}", session.id)).await["session"]["state"],
        "idle"
    );

    // Stopping the session ends the agent and the `hapi claude` process.
    let (status, _) = hub.post(&format!("/api/sessions/{}/stop", session.id), json!({})).await;
    assert_eq!(status, 202);
    let exit = session.process.wait_exit(Duration::from_secs(30));
    assert!(exit.is_some(), "hapi claude did not exit after stop");
    let ended = wait("the session to end", || async {
        let s = hub.get(&format!("/api/sessions/{}", session.id)).await;
        (s["session"]["state"] == "ended").then_some(s)
    })
    .await;
    assert_eq!(ended["session"]["pending_approvals"], 0);
    let (status, body) = hub
        .post(
            &format!("/api/sessions/{}/messages", session.id),
            json!({"text": "too late"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "session_ended");
    model.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_keeps_the_file_away_and_the_turn_ends_with_the_denial() {
    let dir = tempfile::tempdir().unwrap();
    let model = start_fake_anthropic(Script::default()).await.unwrap();
    let hub = Hub::start(dir.path());
    let session = ClaudeSession::start(dir.path(), &hub, &model.url(), "do it");
    let approval = hub.pending_approval(&session.id).await;
    let (status, _) = hub
        .post(
            &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
            json!({"decision": "reject_once", "message": "not today"}),
        )
        .await;
    assert_eq!(status, 200);
    let messages = hub.wait_turns(&session.id, 1).await;
    assert!(
        !session.work.join("out.txt").exists(),
        "a rejected command must not run"
    );
    let result = messages
        .iter()
        .find(|m| m["update"]["kind"] == "tool_call_update")
        .unwrap();
    assert_eq!(result["update"]["status"], "failed");
    assert_eq!(result["update"]["output"], "not today");
    assert_eq!(
        agent_texts(&messages).last().unwrap(),
        "The command was not run: not today"
    );
    assert_eq!(kinds(&messages).last().unwrap(), "turn_end");
    model.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_while_waiting_for_approval_ends_the_turn_and_cancels_the_approval() {
    let dir = tempfile::tempdir().unwrap();
    let model = start_fake_anthropic(Script::default()).await.unwrap();
    let hub = Hub::start(dir.path());
    let session = ClaudeSession::start(dir.path(), &hub, &model.url(), "do it");
    let approval = hub.pending_approval(&session.id).await;

    let (status, _) = hub
        .post(&format!("/api/sessions/{}/abort", session.id), json!({}))
        .await;
    assert_eq!(status, 202);
    let messages = hub.wait_turns(&session.id, 1).await;
    let end = messages
        .iter()
        .rev()
        .find(|m| m["update"]["kind"] == "turn_end")
        .unwrap();
    assert_eq!(end["update"]["stop_reason"], "interrupted", "{messages:#?}");
    assert!(!session.work.join("out.txt").exists());
    let after = hub
        .get(&format!("/api/approvals/{}", approval["id"].as_str().unwrap()))
        .await;
    assert_eq!(after["approval"]["state"], "cancelled");
    let (status, body) = hub
        .post(
            &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
            json!({"decision": "allow_once"}),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("already_decided")));
    let s = hub.get(&format!("/api/sessions/{}", session.id)).await;
    assert_eq!(
        (
            s["session"]["state"].as_str(),
            s["session"]["pending_approvals"].as_u64()
        ),
        (Some("idle"), Some(0))
    );
    model.shutdown().await;
}
