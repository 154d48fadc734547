//! The event stream: SSE resume without gaps or duplicates, tickets, WebSocket.
use futures_util::StreamExt;
use hapi_protocol::SessionUpdate;

use crate::support::{Sse, TestHub};

#[tokio::test]
async fn sse_resume_after_10000_missed_events_delivers_each_once_in_order() {
    let hub = TestHub::start().await;
    let created = hub.create_session().await;
    let mut sse = Sse::open(&hub, None).await;
    let (first_seq, first) = sse.next().await;
    assert_eq!(first["type"], "session");
    let mut wrapper = hub.wrapper(&created).await;
    wrapper
        .send(
            1,
            SessionUpdate::AgentMessageChunk {
                text: "before the drop".into(),
            },
        )
        .await;
    wrapper.wait_ack(1).await;
    // Read up to that message, then drop the client.
    let mut last = first_seq;
    loop {
        let (seq, ev) = sse.next().await;
        assert!(seq > last);
        last = seq;
        if ev["type"] == "message" {
            break;
        }
    }
    drop(sse);

    const N: u64 = 10_000;
    for n in 0..N {
        wrapper
            .send(
                n + 2,
                SessionUpdate::AgentMessageChunk {
                    text: format!("missed {n}"),
                },
            )
            .await;
    }
    wrapper.wait_ack(N + 1).await;

    let mut sse = Sse::open(&hub, Some(last)).await;
    let mut expected_text = 0u64;
    while expected_text < N {
        let (seq, ev) = sse.next().await;
        assert!(seq > last, "seq {seq} after {last}: duplicate or out of order");
        last = seq;
        assert_eq!(ev["seq"].as_u64(), Some(seq));
        if ev["type"] == "message" {
            assert_eq!(ev["message"]["update"]["text"], format!("missed {expected_text}"));
            expected_text += 1;
        }
    }
    // Live events still follow after the replay.
    wrapper
        .send(N + 2, SessionUpdate::AgentMessageChunk { text: "live".into() })
        .await;
    let (seq, ev) = sse.next().await;
    assert_eq!(seq, last + 1);
    assert_eq!(ev["message"]["update"]["text"], "live");
    wrapper.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn tickets_are_single_use_and_open_sse_and_websocket() {
    let hub = TestHub::start().await;
    hub.create_session().await;
    let ticket = |hub: &TestHub| {
        let req = hub.post("/api/events/ticket");
        async move {
            let body: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
            assert!(body["expires_in_s"].as_u64().unwrap() > 0);
            body["ticket"].as_str().unwrap().to_owned()
        }
    };
    let t = ticket(&hub).await;
    let url = format!("{}/api/events?ticket={t}&after=0", hub.url);
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    drop(r);
    let again = reqwest::get(&url).await.unwrap();
    assert_eq!(again.status(), 401);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(
        reqwest::get(format!("{}/api/events?ticket=forged", hub.url))
            .await
            .unwrap()
            .status(),
        401
    );

    // The same stream over WebSocket, resumable with ?after=.
    let t = ticket(&hub).await;
    let ws_url = format!(
        "{}/api/events/ws?ticket={t}&after=0",
        hub.url.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let msg = ws.next().await.unwrap().unwrap();
    let ev: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert_eq!(ev["type"], "session");
    assert_eq!(ev["seq"], 1);
    hub.stop().await;
}

#[tokio::test]
async fn after_latest_skips_the_log_and_follows_from_now() {
    let hub = TestHub::start().await;
    let created = hub.create_session().await;
    let mut wrapper = hub.wrapper(&created).await;
    for n in 1..=50 {
        wrapper
            .send(
                n,
                SessionUpdate::AgentMessageChunk {
                    text: format!("old {n}"),
                },
            )
            .await;
    }
    wrapper.wait_ack(50).await;
    let r = hub.get("/api/events?after=latest").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    wrapper
        .send(51, SessionUpdate::AgentMessageChunk { text: "new".into() })
        .await;
    let mut buf = String::new();
    while !buf.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let data = buf.lines().find_map(|l| l.strip_prefix("data:")).unwrap();
    let ev: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
    assert_eq!(
        ev["message"]["update"]["text"], "new",
        "the first event is the new one, not the log"
    );
    let r = hub.get("/api/events?after=soon").send().await.unwrap();
    assert_eq!(r.status(), 400);
    wrapper.close().await;
    hub.stop().await;
}
