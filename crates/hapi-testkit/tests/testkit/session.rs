//! `run_session` end to end: fake-claude as the agent, a tiny in-test hub on a
//! real WebSocket that acks, decides and stops the way the real hub would.
use std::future::pending;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hapi_agent::{AgentError, SessionOptions, run_session};
use hapi_protocol::{AgentKind, Decision, HubFrame, SessionCommand, SessionFrame, SessionUpdate};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::accept_async;
use tokio_tungstenite::tungstenite::Message;

/// A hub that acks every update, forwards them to the test, and sends commands
/// the test asks for. Serves connections one after another.
async fn start_hub() -> (
    String,
    mpsc::UnboundedReceiver<SessionUpdate>,
    mpsc::UnboundedSender<SessionCommand>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (updates_tx, updates_rx) = mpsc::unbounded_channel();
    let (commands_tx, mut commands_rx) = mpsc::unbounded_channel::<SessionCommand>();
    tokio::spawn(async move {
        let mut next_id = 0u64;
        let mut last_seq = 0u64;
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut ws) = accept_async(tcp).await else {
                continue;
            };
            loop {
                tokio::select! {
                    frame = ws.next() => {
                        let Some(Ok(Message::Text(text))) = frame else { break };
                        if let SessionFrame::Update { client_seq, update } = serde_json::from_str(&text).unwrap() {
                            if client_seq > last_seq {
                                last_seq = client_seq;
                                let _ = updates_tx.send(update);
                            }
                            let ack = serde_json::to_string(&HubFrame::Ack { client_seq }).unwrap();
                            if ws.send(Message::Text(ack.into())).await.is_err() { break; }
                        }
                    }
                    command = commands_rx.recv() => {
                        let Some(command) = command else { break };
                        next_id += 1;
                        let frame = serde_json::to_string(&HubFrame::Command { id: next_id, command }).unwrap();
                        if ws.send(Message::Text(frame.into())).await.is_err() { break; }
                    }
                }
            }
        }
    });
    (url, updates_rx, commands_tx)
}

fn options(hub_url: String, cwd: PathBuf, agent_path: PathBuf) -> SessionOptions {
    SessionOptions {
        hub_state_file: None,
        hub_url,
        session_id: "s1".into(),
        session_token: "t".into(),
        agent: AgentKind::Claude,
        agent_log: Some(cwd.join("agent.log")),
        cwd,
        agent_path,
        agent_args: Vec::new(),
        initial_prompt: Some("do it".into()),
        notices: Vec::new(),
        end_note: None,
    }
}

async fn next(updates: &mut mpsc::UnboundedReceiver<SessionUpdate>) -> SessionUpdate {
    tokio::time::timeout(Duration::from_secs(20), updates.recv())
        .await
        .expect("an update in time")
        .expect("hub alive")
}

#[tokio::test]
async fn a_session_runs_decides_and_stops_through_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_url, mut updates, commands) = start_hub().await;
    let opts = options(
        hub_url,
        dir.path().to_path_buf(),
        env!("CARGO_BIN_EXE_fake-claude").into(),
    );
    let session = tokio::spawn(run_session(opts, pending()));

    assert_eq!(
        next(&mut updates).await,
        SessionUpdate::UserMessage { text: "do it".into() }
    );
    let request_id = loop {
        if let SessionUpdate::PermissionRequest { request_id, .. } = next(&mut updates).await {
            break request_id;
        }
    };
    commands
        .send(SessionCommand::Decide {
            request_id,
            decision: Decision::AllowOnce,
            message: None,
        })
        .unwrap();
    while !matches!(next(&mut updates).await, SessionUpdate::TurnEnd { .. }) {}
    assert!(dir.path().join("out.txt").exists());
    commands.send(SessionCommand::Stop).unwrap();
    assert_eq!(
        next(&mut updates).await,
        SessionUpdate::SessionEnded {
            reason: "stopped".into(),
            exit_code: Some(0)
        }
    );

    let summary = tokio::time::timeout(Duration::from_secs(20), session)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(summary.reason, "stopped");
    assert!(summary.all_acked);
    assert!(summary.updates_sent >= 9, "{summary:?}");
}

#[tokio::test]
async fn the_shutdown_future_stops_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_url, mut updates, _commands) = start_hub().await;
    let opts = options(
        hub_url,
        dir.path().to_path_buf(),
        env!("CARGO_BIN_EXE_fake-claude").into(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let session = tokio::spawn(run_session(opts, async move {
        let _ = stop_rx.await;
    }));
    while !matches!(next(&mut updates).await, SessionUpdate::PermissionRequest { .. }) {}
    stop_tx.send(()).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(20), session)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((summary.reason.as_str(), summary.all_acked), ("stopped", true));
    assert!(matches!(next(&mut updates).await, SessionUpdate::SessionEnded { .. }));
}

#[tokio::test]
async fn a_spawn_failure_is_reported_to_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_url, mut updates, _commands) = start_hub().await;
    let opts = options(hub_url, dir.path().to_path_buf(), dir.path().join("missing-claude"));
    let result = run_session(opts, pending()).await;
    assert!(matches!(result, Err(AgentError::Spawn { .. })), "{result:?}");
    assert!(matches!(next(&mut updates).await, SessionUpdate::Error { .. }));
    assert_eq!(
        next(&mut updates).await,
        SessionUpdate::SessionEnded {
            reason: "spawn_failed".into(),
            exit_code: None
        }
    );
}
