//! `hapi audit` against the real `hapi` binary: through a running hub's API,
//! then, with the hub stopped, from the database directly; filters and JSON.
use std::path::Path;
use std::process::{Command, Output};

use futures_util::{SinkExt, StreamExt};
use hapi_e2e::{Hub, bin};
use hapi_protocol::{AuditEntry, HubFrame, PermissionOption, SessionFrame, SessionUpdate, ToolCallStatus};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn hapi(home: &Path, args: &[&str]) -> Output {
    Command::new(bin("hapi"))
        .args(args)
        .env("HAPI_HOME", home)
        .env("HAPI_NO_RUNNER_AUTOSTART", "1")
        // The token file, never the developer's keychain.
        .env("HAPI_KEYCHAIN", "off")
        .env_remove("CLI_API_TOKEN")
        .env_remove("HAPI_HUB_URL")
        .output()
        .unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = hapi(home, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "hapi {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn entries(home: &Path, args: &[&str]) -> Vec<AuditEntry> {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(home, &all)).unwrap()
}

/// A session whose wrapper announces a mutating and a read-only tool call and
/// asks for `git status`, which the policy allows.
async fn session_with_activity(hub: &Hub) -> String {
    let (status, created) = hub
        .post("/api/sessions", json!({"agent": "claude", "cwd": "/tmp"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["session"]["id"].as_str().unwrap().to_owned();
    let token = created["token"].as_str().unwrap();
    let mut req = format!("{}/api/sessions/{id}/ws", hub.url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let updates = [
        SessionUpdate::ToolCall {
            tool_call_id: "t1".into(),
            name: "Bash".into(),
            title: "git status".into(),
            input: json!({"command": "git status"}),
            status: ToolCallStatus::Pending,
        },
        SessionUpdate::ToolCall {
            tool_call_id: "t2".into(),
            name: "Read".into(),
            title: "/etc/hosts".into(),
            input: json!({"file_path": "/etc/hosts"}),
            status: ToolCallStatus::Pending,
        },
        SessionUpdate::PermissionRequest {
            request_id: "r1".into(),
            tool_call_id: Some("t1".into()),
            tool: "Bash".into(),
            input: json!({"command": "git status"}),
            options: PermissionOption::every_kind(),
        },
    ];
    for (i, update) in updates.into_iter().enumerate() {
        let frame = SessionFrame::Update {
            client_seq: i as u64 + 1,
            update,
        };
        ws.send(Message::Text(serde_json::to_string(&frame).unwrap().into()))
            .await
            .unwrap();
    }
    // The policy's decision arrives as a command.
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("no decision from the hub")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = msg
            && let HubFrame::Command { .. } = serde_json::from_str::<HubFrame>(&text).unwrap()
        {
            break;
        }
    }
    let _ = ws.close(None).await;
    id
}

#[test]
fn hapi_audit_reads_through_the_hub_and_from_the_database_when_none_runs() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let home = dir.path().join("hapi-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("policy.toml"),
        "[[rule]]\nname = \"git status\"\ntool = \"Bash\"\ncommand = \"git status\"\naction = \"allow\"\n",
    )
    .unwrap();
    let mut hub = Hub::start(dir.path());
    assert_eq!(hub.home, home);
    let sid = rt.block_on(session_with_activity(&hub));
    let (status, _) = rt.block_on(hub.post(&format!("/api/sessions/{sid}/skip-approvals"), json!({"enabled": true})));
    assert_eq!(status, 200);

    // Through the hub.
    let via_hub = entries(&home, &[]);
    let kinds: Vec<(String, Option<String>)> = via_hub
        .iter()
        .map(|e| (e.kind.as_str().to_owned(), e.actor.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("admin".to_owned(), Some("owner".to_owned())),
            ("decision".to_owned(), Some("policy:git status".to_owned())),
            ("tool_call".to_owned(), None),
        ],
        "newest first; the Read call is not audited"
    );
    assert_eq!(via_hub[1].channel, Some(hapi_protocol::DecisionChannel::Policy));
    assert_eq!(via_hub[2].outcome.as_deref(), Some("allowed"));
    assert_eq!(entries(&home, &["--limit", "1"]).len(), 1);
    assert_eq!(entries(&home, &["--session", &sid, "--since", "1h"]).len(), 3);
    assert!(entries(&home, &["--session", "nope"]).is_empty());
    assert!(entries(&home, &["--since", "2999-01-01"]).is_empty());
    let text = ok(&home, &["audit", "--session", &sid]);
    assert!(text.contains("skip_approvals_enabled by owner"), "{text}");
    assert!(
        text.contains("allow_once    by policy:git status (policy) after"),
        "{text}"
    );
    assert!(text.contains("tool call  allowed       Bash git status"), "{text}");

    // No hub: the database, read-only.
    hub.process.stop();
    assert!(!home.join("hub.json").exists());
    let direct = entries(&home, &[]);
    assert_eq!(direct, via_hub);
    assert_eq!(ok(&home, &["audit", "--session", &sid]), text);

    let bad = hapi(&home, &["audit", "--since", "yesterday"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"), "{bad:?}");
}
