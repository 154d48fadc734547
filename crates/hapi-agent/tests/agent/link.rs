//! The link against a tiny in-test hub that drops the connection mid-stream
//! without acknowledging, and replays commands after the reconnect.
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hapi_agent::link::{Link, LinkConfig};
use hapi_protocol::{HubFrame, SessionCommand, SessionFrame, SessionUpdate};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async};

const TOKEN: &str = "tok-123";
const UPDATES: u64 = 40;

/// Accepts one WebSocket, checking path and bearer token.
#[allow(
    clippy::result_large_err,
    reason = "tungstenite's handshake callback returns its own error type"
)]
async fn accept(listener: &TcpListener) -> WebSocketStream<TcpStream> {
    let (tcp, _) = listener.accept().await.expect("accept");
    accept_hdr_async(tcp, |req: &Request, resp: Response| {
        assert_eq!(req.uri().path(), "/api/sessions/s1/ws");
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        assert_eq!(auth, Some("Bearer tok-123"));
        Ok::<_, ErrorResponse>(resp)
    })
    .await
    .expect("handshake")
}

async fn send(ws: &mut WebSocketStream<TcpStream>, frame: HubFrame) {
    ws.send(Message::Text(serde_json::to_string(&frame).unwrap().into()))
        .await
        .expect("send");
}

async fn next_frame(ws: &mut WebSocketStream<TcpStream>) -> Option<SessionFrame> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(text)) => {
                return Some(serde_json::from_str(&text).expect("session frame"));
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn prompt(text: &str) -> SessionCommand {
    SessionCommand::Prompt { text: text.into() }
}

#[tokio::test]
async fn resends_unacked_updates_after_a_drop_and_applies_commands_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub_url = format!("http://{}/", listener.local_addr().unwrap());
    let hub = tokio::spawn(async move {
        // First connection: two commands, read some updates, never ack, drop.
        let mut ws = accept(&listener).await;
        send(
            &mut ws,
            HubFrame::Command {
                id: 1,
                command: prompt("a"),
            },
        )
        .await;
        send(
            &mut ws,
            HubFrame::Command {
                id: 2,
                command: SessionCommand::Abort,
            },
        )
        .await;
        let mut first = Vec::new();
        let mut acks_first = Vec::new();
        while first.len() < 5 || acks_first.len() < 2 {
            match next_frame(&mut ws).await.expect("frames before the drop") {
                SessionFrame::Update { client_seq, update } => first.push((client_seq, update)),
                SessionFrame::CommandAck { id } => acks_first.push(id),
            }
        }
        drop(ws);

        // Second connection: replay 1 and 2, add 3, ack everything as it comes.
        let mut ws = accept(&listener).await;
        send(
            &mut ws,
            HubFrame::Command {
                id: 1,
                command: prompt("a"),
            },
        )
        .await;
        send(
            &mut ws,
            HubFrame::Command {
                id: 2,
                command: SessionCommand::Abort,
            },
        )
        .await;
        send(
            &mut ws,
            HubFrame::Command {
                id: 3,
                command: prompt("b"),
            },
        )
        .await;
        let mut second = Vec::new();
        let mut acks_second = Vec::new();
        while let Some(frame) = next_frame(&mut ws).await {
            match frame {
                SessionFrame::Update { client_seq, update } => {
                    second.push((client_seq, update));
                    send(&mut ws, HubFrame::Ack { client_seq }).await;
                }
                SessionFrame::CommandAck { id } => acks_second.push(id),
            }
        }
        (first, acks_first, second, acks_second)
    });

    let (updates_tx, updates_rx) = mpsc::channel(16);
    let (commands_tx, mut commands_rx) = mpsc::channel(16);
    let config = LinkConfig {
        hub_url,
        session_id: "s1".into(),
        session_token: TOKEN.into(),
        hub_state_file: None,
    };
    let link = Link::start(config, updates_rx, commands_tx).expect("link starts");
    let sent: Vec<SessionUpdate> = (1..=UPDATES)
        .map(|i| SessionUpdate::AgentMessageChunk { text: format!("m{i}") })
        .collect();
    for update in sent.clone() {
        updates_tx.send(update).await.unwrap();
    }
    drop(updates_tx);
    let progress = link.finish(Duration::from_secs(10)).await.expect("link finishes");
    assert_eq!((progress.sent, progress.acked), (UPDATES, UPDATES));
    assert!(progress.reconnects >= 1);

    let (first, acks_first, second, acks_second) = tokio::time::timeout(Duration::from_secs(10), hub)
        .await
        .expect("hub ends")
        .unwrap();
    // The first connection saw a prefix, in order.
    for (i, (seq, update)) in first.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(update, &sent[i]);
    }
    // After the reconnect every update arrived, resends first with the same
    // client_seq and content, in order, without gaps.
    let seqs: Vec<u64> = second.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=UPDATES).collect::<Vec<_>>());
    for (seq, update) in &second {
        assert_eq!(update, &sent[*seq as usize - 1]);
    }
    assert_eq!(acks_first, vec![1, 2]);
    assert_eq!(
        acks_second,
        vec![2, 2, 3],
        "replays are re-acked, the new one acked once"
    );

    let mut applied = Vec::new();
    while let Ok(command) = commands_rx.try_recv() {
        applied.push(command);
    }
    assert_eq!(applied, vec![prompt("a"), SessionCommand::Abort, prompt("b")]);
}

#[tokio::test]
#[allow(
    clippy::result_large_err,
    reason = "tungstenite's handshake callback returns its own error type"
)]
async fn a_rejected_token_ends_the_link() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub_url = format!("http://{}", listener.local_addr().unwrap());
    let hub = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let refused = accept_hdr_async(tcp, |_: &Request, _: Response| {
            let mut response = ErrorResponse::new(None);
            *response.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::UNAUTHORIZED;
            Err(response)
        })
        .await;
        assert!(refused.is_err());
    });
    let (_updates_tx, updates_rx) = mpsc::channel(1);
    let (commands_tx, _commands_rx) = mpsc::channel(1);
    let config = LinkConfig {
        hub_url,
        session_id: "s1".into(),
        session_token: "wrong".into(),
        hub_state_file: None,
    };
    let link = Link::start(config, updates_rx, commands_tx).unwrap();
    let result = link.finish(Duration::from_secs(10)).await;
    assert!(
        matches!(result, Err(hapi_agent::AgentError::HubRejected { status: 401 })),
        "{result:?}"
    );
    hub.await.unwrap();
}

#[test]
fn a_non_http_hub_url_is_refused() {
    let (_tx, rx) = mpsc::channel(1);
    let (ctx, _crx) = mpsc::channel(1);
    let config = LinkConfig {
        hub_url: "ftp://x".into(),
        session_id: "s".into(),
        session_token: "t".into(),
        hub_state_file: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async { Link::start(config, rx, ctx).map(|_| ()) });
    assert!(matches!(result, Err(hapi_agent::AgentError::HubUrl(_))));
}

/// Many updates with sparse cumulative acks: all arrive, in order, pipelined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_many_updates_with_cumulative_acks() {
    const MANY: u64 = 50_000;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub_url = format!("http://{}", listener.local_addr().unwrap());
    let hub = tokio::spawn(async move {
        let mut ws = accept(&listener).await;
        let mut expected = 1;
        while let Some(frame) = next_frame(&mut ws).await {
            if let SessionFrame::Update { client_seq, .. } = frame {
                assert_eq!(client_seq, expected);
                expected += 1;
                if client_seq % 1000 == 0 || client_seq == MANY {
                    send(&mut ws, HubFrame::Ack { client_seq }).await;
                }
            }
        }
        expected - 1
    });
    let (updates_tx, updates_rx) = mpsc::channel(4096);
    let (commands_tx, _commands_rx) = mpsc::channel(1);
    let config = LinkConfig {
        hub_url,
        session_id: "s1".into(),
        session_token: TOKEN.into(),
        hub_state_file: None,
    };
    let started = std::time::Instant::now();
    let link = Link::start(config, updates_rx, commands_tx).unwrap();
    let text = "x".repeat(400);
    for _ in 0..MANY {
        updates_tx
            .send(SessionUpdate::AgentMessageChunk { text: text.clone() })
            .await
            .unwrap();
    }
    drop(updates_tx);
    let progress = link.finish(Duration::from_secs(60)).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!((progress.sent, progress.acked, progress.reconnects), (MANY, MANY, 0));
    assert_eq!(hub.await.unwrap(), MANY);
    eprintln!(
        "link: {MANY} updates in {elapsed:?} ({:.0}/s)",
        MANY as f64 / elapsed.as_secs_f64()
    );
}

/// A hub that comes back on another port (the desktop app restarted) is found
/// again through its hub.json, and the unacknowledged update is resent there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_hub_to_its_new_address_from_hub_json() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("hub.json");
    let old = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let old_url = format!("http://{}", old.local_addr().unwrap());
    let new = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let new_url = format!("http://{}", new.local_addr().unwrap());
    let write_state = |url: &str| {
        let state = hapi_protocol::HubStateFile {
            url: url.to_owned(),
            pid: 1,
            started_at: "2026-11-25T00:00:00Z".into(),
        };
        std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();
    };
    write_state(&old_url);
    let (updates_tx, updates_rx) = mpsc::channel(8);
    let (commands_tx, _commands_rx) = mpsc::channel(8);
    let config = LinkConfig {
        hub_url: old_url,
        session_id: "s1".into(),
        session_token: TOKEN.into(),
        hub_state_file: Some(state_file.clone()),
    };
    let link = Link::start(config, updates_rx, commands_tx).unwrap();
    // The old hub takes the update without acknowledging it, then goes away.
    let mut ws = accept(&old).await;
    updates_tx
        .send(SessionUpdate::AgentMessageChunk { text: "hi".into() })
        .await
        .unwrap();
    assert!(matches!(
        next_frame(&mut ws).await,
        Some(SessionFrame::Update { client_seq: 1, .. })
    ));
    write_state(&new_url);
    drop(ws);
    drop(old);
    // The new hub gets the resend and acknowledges it.
    let mut ws = tokio::time::timeout(Duration::from_secs(30), accept(&new))
        .await
        .expect("the link follows the hub");
    match next_frame(&mut ws).await {
        Some(SessionFrame::Update { client_seq: 1, update }) => {
            assert_eq!(update, SessionUpdate::AgentMessageChunk { text: "hi".into() })
        }
        other => panic!("expected the resend, got {other:?}"),
    }
    send(&mut ws, HubFrame::Ack { client_seq: 1 }).await;
    drop(updates_tx);
    let progress = link.finish(Duration::from_secs(10)).await.unwrap();
    assert_eq!((progress.sent, progress.acked, progress.reconnects), (1, 1, 1));
}
