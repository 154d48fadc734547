//! Runner links: machines come online and go offline with their runner, and the
//! hub's spawn-session RPC travels to the runner and back.
use futures_util::{SinkExt, StreamExt};
use hapi_protocol::{
    AgentKind, ErrorBody, ErrorCode, HubMachineFrame, MachineFrame, MachineRpc, RpcOutcome, RunnerInfo, SpawnSession,
};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::TestHub;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn runner(hub: &TestHub, machine_id: &str) -> Ws {
    let mut req = format!("{}/api/machines/{machine_id}/ws", hub.url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {}", hub.token).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let hello = MachineFrame::Hello {
        name: "laptop".into(),
        runner: RunnerInfo {
            pid: 4242,
            version: "0.1.0".into(),
            started_at: "2026-11-25T00:00:00.000Z".into(),
        },
    };
    ws.send(Message::Text(serde_json::to_string(&hello).unwrap().into()))
        .await
        .unwrap();
    ws
}

async fn machine_state(hub: &TestHub, id: &str) -> serde_json::Value {
    hub.json(&format!("/api/machines/{id}")).await["machine"].clone()
}

async fn wait_state(hub: &TestHub, id: &str, want: &str) -> serde_json::Value {
    for _ in 0..500 {
        let r = hub.get(&format!("/api/machines/{id}")).send().await.unwrap();
        if r.status() == 200 {
            let m: serde_json::Value = r.json().await.unwrap();
            if m["machine"]["state"] == want {
                return m["machine"].clone();
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("machine {id} never became {want}");
}

#[tokio::test]
async fn a_machine_is_online_while_its_runner_is_connected() {
    let hub = TestHub::start().await;
    let ws = runner(&hub, "m-1").await;
    let m = wait_state(&hub, "m-1", "online").await;
    assert_eq!(m["name"], "laptop");
    assert_eq!(m["runner"]["pid"], 4242);
    let list = hub.json("/api/machines").await;
    assert!(list["machines"].as_array().unwrap().iter().any(|m| m["id"] == "m-1"));
    drop(ws);
    let m = wait_state(&hub, "m-1", "offline").await;
    assert_eq!(m["runner"], serde_json::Value::Null);
    hub.stop().await;
}

#[tokio::test]
async fn spawn_session_is_relayed_to_the_runner_and_its_answer_returned() {
    let hub = TestHub::start().await;
    let mut ws = runner(&hub, "m-2").await;
    wait_state(&hub, "m-2", "online").await;
    let post = {
        let req = hub
            .post("/api/machines/m-2/sessions")
            .json(&json!({"agent": "claude", "cwd": "/work", "prompt": "hi"}));
        tokio::spawn(async move { req.send().await.unwrap() })
    };
    let frame = loop {
        if let Some(Ok(Message::Text(text))) = ws.next().await {
            break serde_json::from_str::<HubMachineFrame>(&text).unwrap();
        }
    };
    let HubMachineFrame::Rpc { id, call } = frame;
    assert_eq!(
        call,
        MachineRpc::SpawnSession(SpawnSession {
            agent: AgentKind::Claude,
            cwd: "/work".into(),
            prompt: Some("hi".into()),
            create_directory: false,
            worktree_branch: None,
        })
    );
    let answer = MachineFrame::RpcResult {
        id,
        outcome: RpcOutcome::Ok(json!({"session_id": "s-new"})),
    };
    ws.send(Message::Text(serde_json::to_string(&answer).unwrap().into()))
        .await
        .unwrap();
    let r = post.await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!({"session_id": "s-new"})
    );

    // A failure comes back with the runner's message.
    let post = {
        let req = hub
            .post("/api/machines/m-2/sessions")
            .json(&json!({"agent": "claude", "cwd": "/nope"}));
        tokio::spawn(async move { req.send().await.unwrap() })
    };
    let id = loop {
        if let Some(Ok(Message::Text(text))) = ws.next().await {
            let HubMachineFrame::Rpc { id, .. } = serde_json::from_str(&text).unwrap();
            break id;
        }
    };
    let error = ErrorBody {
        code: ErrorCode::RunnerFailed,
        message: "/nope: permission denied (EACCES)".into(),
    };
    let answer = MachineFrame::RpcResult {
        id,
        outcome: RpcOutcome::Err(error),
    };
    ws.send(Message::Text(serde_json::to_string(&answer).unwrap().into()))
        .await
        .unwrap();
    let r = post.await.unwrap();
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "runner_failed");
    assert_eq!(body["error"]["message"], "/nope: permission denied (EACCES)");
    hub.stop().await;
}

#[tokio::test]
async fn spawning_on_an_offline_or_unknown_machine_is_refused() {
    let hub = TestHub::start().await;
    let ws = runner(&hub, "m-3").await;
    wait_state(&hub, "m-3", "online").await;
    drop(ws);
    wait_state(&hub, "m-3", "offline").await;
    let r = hub
        .post("/api/machines/m-3/sessions")
        .json(&json!({"agent": "claude", "cwd": "/work"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "machine_offline"
    );
    let r = hub
        .post("/api/machines/nope/sessions")
        .json(&json!({"agent": "claude", "cwd": "/work"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = hub
        .post("/api/machines/m-3/sessions")
        .json(&json!({"agent": "codex", "cwd": "/work"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "unknown agent");
    assert_eq!(machine_state(&hub, "m-3").await["state"], "offline");
    hub.stop().await;
}

/// Reads frames until the next RPC.
async fn next_rpc(ws: &mut Ws) -> (u64, MachineRpc) {
    loop {
        if let Some(Ok(Message::Text(text))) = ws.next().await {
            let HubMachineFrame::Rpc { id, call } = serde_json::from_str(&text).unwrap();
            return (id, call);
        }
    }
}

async fn answer(ws: &mut Ws, id: u64, outcome: RpcOutcome) {
    let frame = MachineFrame::RpcResult { id, outcome };
    ws.send(Message::Text(serde_json::to_string(&frame).unwrap().into()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_directory_becomes_a_machine_approval_and_allowing_it_spawns_with_creation() {
    let hub = TestHub::start().await;
    let mut ws = runner(&hub, "m-4").await;
    wait_state(&hub, "m-4", "online").await;
    let missing = || {
        let req = hub
            .post("/api/machines/m-4/sessions")
            .json(&json!({"agent": "claude", "cwd": "/home/me/new", "prompt": "go"}));
        tokio::spawn(async move { req.send().await.unwrap() })
    };
    let refuse_missing = || {
        RpcOutcome::Err(ErrorBody {
            code: ErrorCode::DirectoryMissing,
            message: "/home/me/new does not exist".into(),
        })
    };

    // Missing: the runner refuses, the hub asks the person.
    let post = missing();
    let (id, call) = next_rpc(&mut ws).await;
    assert!(matches!(&call, MachineRpc::SpawnSession(s) if !s.create_directory));
    answer(&mut ws, id, refuse_missing()).await;
    let r = post.await.unwrap();
    assert_eq!(r.status(), 202);
    let body: serde_json::Value = r.json().await.unwrap();
    let approval = &body["approval"];
    assert_eq!(approval["tool"], "create_directory");
    assert_eq!(approval["machine_id"], "m-4");
    assert_eq!(approval["session_id"], serde_json::Value::Null);
    assert_eq!(approval["input"]["cwd"], "/home/me/new");
    let pending = hub.json("/api/approvals?state=pending").await;
    assert_eq!(pending["approvals"][0]["id"], approval["id"]);

    // Allowed: the hub spawns again, now with creation, and reports the session.
    let aid = approval["id"].as_str().unwrap().to_owned();
    let decide = {
        let req = hub
            .post(&format!("/api/approvals/{aid}"))
            .json(&json!({"decision": "allow_once"}));
        tokio::spawn(async move { req.send().await.unwrap() })
    };
    let (id, call) = next_rpc(&mut ws).await;
    let MachineRpc::SpawnSession(spawn) = call else {
        panic!("expected a spawn")
    };
    assert!(spawn.create_directory);
    assert_eq!(
        (spawn.cwd.as_str(), spawn.prompt.as_deref()),
        ("/home/me/new", Some("go"))
    );
    answer(&mut ws, id, RpcOutcome::Ok(json!({"session_id": "s-created"}))).await;
    let r = decide.await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["approval"]["decision"], "allow_once");
    assert_eq!(body["session_id"], "s-created");

    // Rejected: nothing is sent to the runner, and clients cannot set the flag themselves.
    let post = missing();
    let (id, _) = next_rpc(&mut ws).await;
    answer(&mut ws, id, refuse_missing()).await;
    let body: serde_json::Value = post.await.unwrap().json().await.unwrap();
    let aid = body["approval"]["id"].as_str().unwrap().to_owned();
    let r = hub
        .post(&format!("/api/approvals/{aid}"))
        .json(&json!({"decision": "reject_once"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body.get("session_id").is_none(), "{body}");
    let r = hub
        .post("/api/machines/m-4/sessions")
        .json(&json!({"agent": "claude", "cwd": "/x", "create_directory": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    hub.stop().await;
}

#[tokio::test]
async fn directory_refusals_keep_their_code() {
    let hub = TestHub::start().await;
    let mut ws = runner(&hub, "m-5").await;
    wait_state(&hub, "m-5", "online").await;
    let post = {
        let req = hub
            .post("/api/machines/m-5/sessions")
            .json(&json!({"agent": "claude", "cwd": "/etc"}));
        tokio::spawn(async move { req.send().await.unwrap() })
    };
    let (id, _) = next_rpc(&mut ws).await;
    let refusal = ErrorBody {
        code: ErrorCode::DirectoryOutsideRoots,
        message: "/etc is outside the workspace roots".into(),
    };
    answer(&mut ws, id, RpcOutcome::Err(refusal)).await;
    let r = post.await.unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "directory_outside_roots");
    hub.stop().await;
}
