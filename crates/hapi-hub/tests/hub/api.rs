//! REST contract: auth, errors, approvals, prompts.
use hapi_protocol::{Decision, HubFrame, PermissionOption, SessionCommand, SessionUpdate};
use serde_json::json;

use crate::support::TestHub;

fn permission(request_id: &str) -> SessionUpdate {
    SessionUpdate::PermissionRequest {
        request_id: request_id.into(),
        tool_call_id: Some("toolu_1".into()),
        tool: "Bash".into(),
        input: json!({"command": "echo hello > out.txt"}),
        options: PermissionOption::every_kind(),
    }
}

#[tokio::test]
async fn health_is_open_and_api_needs_the_owner_token() {
    let hub = TestHub::start().await;
    let health: serde_json::Value = reqwest::get(format!("{}/health", hub.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], hapi_protocol::VERSION);
    assert!(health["uptime_s"].is_u64());

    for token in [None, Some("wrong")] {
        let mut req = hub.http.get(format!("{}/api/sessions", hub.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(hub.json("/api/sessions").await["sessions"], json!([]));
    hub.stop().await;
}

#[tokio::test]
async fn approval_flows_to_the_wrapper_and_the_first_decision_wins() {
    let hub = TestHub::start().await;
    let created = hub.create_session().await;
    let id = &created.session.id;
    let mut wrapper = hub.wrapper(&created).await;
    wrapper.send(1, permission("req-1")).await;
    wrapper.wait_ack(1).await;

    let pending = hub.json("/api/approvals?state=pending").await;
    let approvals = pending["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1);
    let approval = &approvals[0];
    assert_eq!(approval["session_id"], id.as_str());
    assert_eq!(approval["tool"], "Bash");
    assert_eq!(approval["input"]["command"], "echo hello > out.txt");
    assert_eq!(approval["options"].as_array().unwrap().len(), 4);
    assert_eq!(
        approval["options"][0],
        json!({"id": "allow_once", "kind": "allow_once"})
    );
    let session = hub.json(&format!("/api/sessions/{id}")).await;
    assert_eq!(session["session"]["pending_approvals"], 1);

    let approval_id = approval["id"].as_str().unwrap();
    let r = hub
        .post(&format!("/api/approvals/{approval_id}"))
        .json(&json!({"decision": "allow_once"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let decided: serde_json::Value = r.json().await.unwrap();
    assert_eq!(decided["approval"]["state"], "decided");
    assert_eq!(decided["approval"]["decision"], "allow_once");
    assert_eq!(decided["approval"]["decided_by"], "owner");

    let frame = loop {
        if let f @ HubFrame::Command { .. } = wrapper.recv().await {
            break f;
        }
    };
    let HubFrame::Command { command, .. } = frame else {
        unreachable!()
    };
    assert_eq!(
        command,
        SessionCommand::Decide {
            request_id: "req-1".into(),
            decision: Decision::AllowOnce,
            message: None
        }
    );

    // A second decision is refused and changes nothing.
    let r = hub
        .post(&format!("/api/approvals/{approval_id}"))
        .json(&json!({"decision": "reject_once"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "already_decided");
    let after = hub.json(&format!("/api/approvals/{approval_id}")).await;
    assert_eq!(after["approval"]["decision"], "allow_once");
    assert_eq!(hub.json("/api/approvals?state=pending").await["approvals"], json!([]));
    wrapper.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn bad_input_gets_its_documented_error_and_changes_nothing() {
    let hub = TestHub::start().await;
    let created = hub.create_session().await;
    let id = created.session.id.clone();
    let before_events = hub.json("/api/sessions").await;

    let expect = |status: u16, code: &'static str| {
        move |r: reqwest::Response| async move {
            assert_eq!(r.status().as_u16(), status);
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    };
    // Malformed JSON, wrong field type, unknown decision.
    let r = hub
        .post(&format!("/api/sessions/{id}/messages"))
        .header("content-type", "application/json")
        .body("{\"text\": ")
        .send()
        .await
        .unwrap();
    expect(400, "invalid_request")(r).await;
    let r = hub
        .post(&format!("/api/sessions/{id}/messages"))
        .json(&json!({"text": 5}))
        .send()
        .await
        .unwrap();
    expect(400, "invalid_request")(r).await;
    let r = hub
        .post(&format!("/api/sessions/{id}/messages"))
        .json(&json!({"text": "  "}))
        .send()
        .await
        .unwrap();
    expect(400, "invalid_request")(r).await;
    let r = hub
        .get(&format!("/api/sessions/{id}/messages?limit=abc"))
        .send()
        .await
        .unwrap();
    expect(400, "invalid_request")(r).await;
    // Unknown ids.
    let r = hub.get("/api/sessions/nope").send().await.unwrap();
    expect(404, "not_found")(r).await;
    let r = hub
        .post("/api/sessions/nope/messages")
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    expect(404, "not_found")(r).await;
    let r = hub.get("/api/sessions/nope/messages").send().await.unwrap();
    expect(404, "not_found")(r).await;
    let r = hub
        .post("/api/approvals/nope")
        .json(&json!({"decision": "allow_once"}))
        .send()
        .await
        .unwrap();
    expect(404, "not_found")(r).await;
    let r = hub.get("/api/no-such-route").send().await.unwrap();
    expect(404, "not_found")(r).await;
    // Oversize body.
    let huge = "x".repeat(2 * 1024 * 1024);
    let r = hub
        .post(&format!("/api/sessions/{id}/messages"))
        .json(&json!({"text": huge}))
        .send()
        .await
        .unwrap();
    expect(413, "payload_too_large")(r).await;
    // Bad token.
    let r = hub
        .http
        .post(format!("{}/api/sessions/{id}/messages", hub.url))
        .bearer_auth("nope")
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    expect(401, "unauthorized")(r).await;

    // Nothing of the above reached the session.
    let messages = hub.json(&format!("/api/sessions/{id}/messages")).await;
    assert_eq!(messages["messages"], json!([]));
    assert_eq!(hub.json("/api/sessions").await, before_events);

    // A prompt to an ended session.
    let mut wrapper = hub.wrapper(&created).await;
    wrapper
        .send(
            1,
            SessionUpdate::SessionEnded {
                reason: "exited".into(),
                exit_code: Some(0),
            },
        )
        .await;
    wrapper.wait_ack(1).await;
    let r = hub
        .post(&format!("/api/sessions/{id}/messages"))
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    expect(409, "session_ended")(r).await;
    let r = hub.post(&format!("/api/sessions/{id}/abort")).send().await.unwrap();
    expect(409, "session_ended")(r).await;
    let messages = hub.json(&format!("/api/sessions/{id}/messages")).await;
    assert_eq!(
        messages["messages"].as_array().unwrap().len(),
        1,
        "only the end marker: {messages}"
    );
    assert_eq!(
        hub.json(&format!("/api/sessions/{id}")).await["session"]["state"],
        "ended"
    );
    wrapper.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn history_pages_forward_and_backward() {
    let hub = TestHub::start().await;
    let created = hub.create_session().await;
    let id = &created.session.id;
    let mut wrapper = hub.wrapper(&created).await;
    for n in 1..=25u64 {
        wrapper
            .send(n, SessionUpdate::AgentMessageChunk { text: format!("m{n}") })
            .await;
    }
    wrapper.wait_ack(25).await;
    let text = |page: &serde_json::Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["update"]["text"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = hub.json(&format!("/api/sessions/{id}/messages?after=0&limit=10")).await;
    assert_eq!(text(&first), (1..=10).map(|n| format!("m{n}")).collect::<Vec<_>>());
    assert_eq!(first["has_more"], true);
    let last = hub
        .json(&format!("/api/sessions/{id}/messages?after=20&limit=10"))
        .await;
    assert_eq!(text(&last), (21..=25).map(|n| format!("m{n}")).collect::<Vec<_>>());
    assert_eq!(last["has_more"], false);
    let newest = hub
        .json(&format!("/api/sessions/{id}/messages?before=26&limit=10"))
        .await;
    assert_eq!(text(&newest), (16..=25).map(|n| format!("m{n}")).collect::<Vec<_>>());
    assert_eq!(newest["has_more"], true);
    let oldest = hub
        .json(&format!("/api/sessions/{id}/messages?before=4&limit=10"))
        .await;
    assert_eq!(text(&oldest), vec!["m1", "m2", "m3"]);
    assert_eq!(oldest["has_more"], false);
    let seqs: Vec<u64> = newest["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (16..=25).collect::<Vec<_>>());
    wrapper.close().await;
    hub.stop().await;
}
