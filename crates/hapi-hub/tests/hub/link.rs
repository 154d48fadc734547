//! The session wrapper link: idempotent resend, outbox replay, session auth.
use hapi_protocol::{HubFrame, SessionCommand, SessionUpdate};
use serde_json::json;

use crate::support::{TestHub, Wrapper};

#[tokio::test]
async fn a_resent_update_is_stored_once() {
    let hub = TestHub::start().await;
    let created = hub.create_session().await;
    let id = &created.session.id;
    let mut wrapper = hub.wrapper(&created).await;
    wrapper
        .send(1, SessionUpdate::AgentMessageChunk { text: "one".into() })
        .await;
    wrapper
        .send(2, SessionUpdate::AgentMessageChunk { text: "two".into() })
        .await;
    wrapper.wait_ack(2).await;
    wrapper.close().await;
    // As if both acks were lost: reconnect and resend everything, then more.
    let mut wrapper = hub.wrapper(&created).await;
    wrapper
        .send(1, SessionUpdate::AgentMessageChunk { text: "one".into() })
        .await;
    wrapper
        .send(2, SessionUpdate::AgentMessageChunk { text: "two".into() })
        .await;
    wrapper
        .send(3, SessionUpdate::AgentMessageChunk { text: "three".into() })
        .await;
    wrapper.wait_ack(3).await;
    let page = hub.json(&format!("/api/sessions/{id}/messages")).await;
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["update"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
    wrapper.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn commands_for_a_disconnected_session_wait_and_replay_in_order() {
    let hub = TestHub::start().await;
    let created = hub.create_session().await;
    let id = &created.session.id;
    // Connect once so the session is live, then drop, and let the hub notice.
    hub.wrapper(&created).await.close().await;
    while hub.json(&format!("/api/sessions/{id}")).await["session"]["state"] != "disconnected" {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for text in ["first", "second"] {
        let r = hub
            .post(&format!("/api/sessions/{id}/messages"))
            .json(&json!({"text": text}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let r = hub.post(&format!("/api/sessions/{id}/abort")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        hub.json(&format!("/api/sessions/{id}")).await["session"]["state"],
        "disconnected"
    );

    let expected = vec![
        SessionCommand::Prompt { text: "first".into() },
        SessionCommand::Prompt { text: "second".into() },
        SessionCommand::Abort,
    ];
    let receive_all = |mut w: Wrapper| async move {
        let mut got = Vec::new();
        let mut last = 0;
        while got.len() < 3 {
            if let HubFrame::Command { id, command } = w.recv().await {
                assert!(id > last, "commands arrive in outbox order");
                last = id;
                got.push(command);
            }
        }
        (w, got, last)
    };
    // Not acknowledged: replayed again on the next connect.
    let (w, got, _) = receive_all(hub.wrapper(&created).await).await;
    assert_eq!(got, expected);
    w.close().await;
    let (mut w, got, last) = receive_all(hub.wrapper(&created).await).await;
    assert_eq!(got, expected);
    w.ack_command(last).await;
    // Make sure the ack is processed before reconnecting.
    w.send(1, SessionUpdate::AgentMessageChunk { text: "x".into() }).await;
    w.wait_ack(1).await;
    w.close().await;
    // Acknowledged: nothing is replayed; the next frame is the ack of new input.
    let mut w = hub.wrapper(&created).await;
    w.send(2, SessionUpdate::AgentMessageChunk { text: "y".into() }).await;
    assert_eq!(w.recv().await, HubFrame::Ack { client_seq: 2 });
    // The prompts are in the history as user messages, and the session is working.
    let page = hub.json(&format!("/api/sessions/{id}/messages")).await;
    let kinds: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["update"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "user_message",
            "user_message",
            "agent_message_chunk",
            "agent_message_chunk"
        ]
    );
    assert_eq!(
        hub.json(&format!("/api/sessions/{id}")).await["session"]["state"],
        "working"
    );
    w.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn a_wrapper_needs_its_own_session_token() {
    let hub = TestHub::start().await;
    let a = hub.create_session().await;
    let b = hub.create_session().await;
    assert!(Wrapper::connect(&hub.url, &a.session.id, &b.token).await.is_err());
    assert!(
        Wrapper::connect(&hub.url, &a.session.id, &hub.token).await.is_err(),
        "owner token is not a session token"
    );
    assert!(Wrapper::connect(&hub.url, &a.session.id, &a.token).await.is_ok());
    hub.stop().await;
}

#[tokio::test]
async fn after_a_hub_restart_sessions_are_disconnected_until_their_wrapper_returns() {
    let hub = TestHub::start().await;
    let created = hub.create_session().await;
    let id = created.session.id.clone();
    let mut wrapper = hub.wrapper(&created).await;
    wrapper
        .send(1, SessionUpdate::AgentMessageChunk { text: "before".into() })
        .await;
    wrapper.wait_ack(1).await;
    assert_eq!(
        hub.json(&format!("/api/sessions/{id}")).await["session"]["state"],
        "idle"
    );
    drop(wrapper);
    let home = hub.stop_keeping_home().await;

    let hub = TestHub::start_in(home).await;
    assert_eq!(
        hub.json(&format!("/api/sessions/{id}")).await["session"]["state"],
        "disconnected"
    );
    let mut wrapper = hub.wrapper(&created).await;
    wrapper
        .send(2, SessionUpdate::AgentMessageChunk { text: "after".into() })
        .await;
    wrapper.wait_ack(2).await;
    assert_eq!(
        hub.json(&format!("/api/sessions/{id}")).await["session"]["state"],
        "idle"
    );
    let page = hub.json(&format!("/api/sessions/{id}/messages")).await;
    assert_eq!(
        page["messages"].as_array().unwrap().len(),
        2,
        "history survives the restart"
    );
    wrapper.close().await;
    hub.stop().await;
}
