//! Operations: `GET /metrics` (auth, Prometheus text, the numbers moving with
//! what happens) and `GET /ready` (200 normally, 503 when the database cannot
//! take a write or the runner's link is lost).
use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::SinkExt;
use hapi_hub::{AppState, HubConfig};
use hapi_protocol::{MachineFrame, PermissionOption, RunnerInfo, SessionUpdate, SetRemoteAccess};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{Sse, TestHub};

const METRICS_TOKEN: &str = "metrics-0123456789abcdef";

/// A hub with a metrics token, whose `HAPI_HOME` the test can reach.
struct OpsHub {
    url: String,
    token: String,
    home: tempfile::TempDir,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl OpsHub {
    async fn start() -> OpsHub {
        let home = tempfile::tempdir().unwrap();
        let vault = hapi_hub::auth::Vault::open_with(home.path(), hapi_hub::auth::KeychainMode::Off).unwrap();
        let mut config = HubConfig::for_home(home.path());
        config.metrics_token = Some(METRICS_TOKEN.into());
        let state = AppState::open_with_vault(config, &vault).unwrap();
        let token = vault.get_or_create(&hapi_hub::auth::OWNER_TOKEN).unwrap().value;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(hapi_hub::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        OpsHub {
            url,
            token,
            home,
            http: reqwest::Client::new(),
            stop: Some(stop),
        }
    }
}

impl Drop for OpsHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One parsed exposition: `name{sorted labels}` → value, plus `# TYPE`s.
struct Exposition {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    /// Parses the Prometheus text format strictly enough to catch malformed
    /// lines: every sample is `name[{k="v",…}] value`.
    fn parse(text: &str) -> Exposition {
        let mut samples = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment: {line}");
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                    let mut labels: Vec<(String, String)> = body
                        .split(',')
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("bad label: {line}"));
                            let v = v
                                .strip_prefix('"')
                                .and_then(|v| v.strip_suffix('"'))
                                .unwrap_or_else(|| panic!("unquoted label: {line}"));
                            (k.to_owned(), v.to_owned())
                        })
                        .collect();
                    labels.sort();
                    (name, labels)
                }
                None => (series, Vec::new()),
            };
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name: {line}"
            );
            samples.insert(series_key(name, &labels), value);
        }
        Exposition { samples, types }
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        labels.sort();
        let key = series_key(name, &labels);
        *self
            .samples
            .get(&key)
            .unwrap_or_else(|| panic!("no sample {key}; have: {:#?}", self.samples.keys().collect::<Vec<_>>()))
    }
}

fn series_key(name: &str, labels: &[(String, String)]) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

async fn scrape(hub: &TestHub) -> Exposition {
    let r = hub.get("/metrics").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers()["content-type"]
    );
    Exposition::parse(&r.text().await.unwrap())
}

/// Scrapes until `check` holds (the numbers follow events that are asynchronous
/// to the request that caused them).
async fn scrape_until(hub: &TestHub, what: &str, check: impl Fn(&Exposition) -> bool) -> Exposition {
    for _ in 0..250 {
        let m = scrape(hub).await;
        if check(&m) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("metrics never showed {what}");
}

#[tokio::test]
async fn metrics_need_the_owner_or_the_metrics_token() {
    let hub = OpsHub::start().await;
    let url = format!("{}/metrics", hub.url);
    let r = hub.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    // Coming from 127.0.0.1 opens nothing, and neither does a wrong token.
    let r = hub.http.get(&url).bearer_auth("not-the-token").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = hub.http.get(&url).bearer_auth(&hub.token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = hub.http.get(&url).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("hapi_uptime_seconds"));
    // The metrics token opens /metrics only.
    let r = hub
        .http
        .get(format!("{}/api/sessions", hub.url))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_fresh_hub_exports_every_metric_with_its_type() {
    let hub = TestHub::start().await;
    let m = scrape(&hub).await;
    let types = [
        ("hapi_build_info", "gauge"),
        ("hapi_uptime_seconds", "gauge"),
        ("hapi_sessions", "gauge"),
        ("hapi_approvals_pending", "gauge"),
        ("hapi_approval_latency_seconds", "histogram"),
        ("hapi_messages_ingested_total", "counter"),
        ("hapi_relay_failures_total", "counter"),
        ("hapi_links", "gauge"),
        ("hapi_link_connects_total", "counter"),
        ("hapi_link_reconnects_total", "counter"),
        ("hapi_event_clients", "gauge"),
        ("hapi_db_size_bytes", "gauge"),
        ("hapi_db_wal_size_bytes", "gauge"),
    ];
    for (name, kind) in types {
        assert_eq!(m.types.get(name).map(String::as_str), Some(kind), "type of {name}");
    }
    assert_eq!(m.get("hapi_build_info", &[("version", hapi_protocol::VERSION)]), 1.0);
    assert!(m.get("hapi_db_size_bytes", &[]) > 0.0);
    for state in ["starting", "idle", "working", "disconnected", "ended"] {
        assert_eq!(m.get("hapi_sessions", &[("state", state)]), 0.0);
    }
    for channel in [
        "web",
        "desktop_window",
        "desktop_notification",
        "phone",
        "policy",
        "cli",
    ] {
        assert_eq!(
            m.get("hapi_approval_latency_seconds_count", &[("channel", channel)]),
            0.0
        );
        for le in ["0.001", "1", "600", "3600", "+Inf"] {
            assert_eq!(
                m.get(
                    "hapi_approval_latency_seconds_bucket",
                    &[("channel", channel), ("le", le)]
                ),
                0.0
            );
        }
    }
    for (target, reason) in [
        ("session", "wrapper_disconnected"),
        ("runner", "runner_offline"),
        ("runner", "link_closed"),
        ("runner", "timeout"),
    ] {
        assert_eq!(
            m.get("hapi_relay_failures_total", &[("target", target), ("reason", reason)]),
            0.0
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn sessions_messages_approvals_and_their_latency_are_counted() {
    let hub = TestHub::start().await;
    let created = hub.create_session().await;
    let mut wrapper = hub.wrapper(&created).await;
    wrapper
        .send(1, SessionUpdate::AgentMessageChunk { text: "hello".into() })
        .await;
    wrapper
        .send(
            2,
            SessionUpdate::PermissionRequest {
                request_id: "req-1".into(),
                tool_call_id: None,
                tool: "Bash".into(),
                input: json!({"command": "ls"}),
                options: PermissionOption::every_kind(),
            },
        )
        .await;
    // A resend after a lost ack is not a new message.
    wrapper
        .send(1, SessionUpdate::AgentMessageChunk { text: "hello".into() })
        .await;
    wrapper.wait_ack(2).await;
    let m = scrape_until(&hub, "two wrapper messages and one pending approval", |m| {
        m.get("hapi_messages_ingested_total", &[("source", "wrapper")]) == 2.0
            && m.get("hapi_approvals_pending", &[]) == 1.0
    })
    .await;
    assert_eq!(m.get("hapi_sessions", &[("state", "idle")]), 1.0);
    assert_eq!(m.get("hapi_links", &[("link", "wrapper")]), 1.0);
    assert_eq!(m.get("hapi_link_connects_total", &[("link", "wrapper")]), 1.0);

    let approvals = hub.json("/api/approvals?state=pending").await;
    let id = approvals["approvals"][0]["id"].as_str().unwrap().to_owned();
    let r = hub
        .post(&format!("/api/approvals/{id}"))
        .json(&json!({"decision": "allow_once", "channel": "phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = scrape(&hub).await;
    assert_eq!(m.get("hapi_approvals_pending", &[]), 0.0);
    assert_eq!(
        m.get("hapi_approval_latency_seconds_count", &[("channel", "phone")]),
        1.0
    );
    assert_eq!(m.get("hapi_approval_latency_seconds_count", &[("channel", "web")]), 0.0);
    assert_eq!(
        m.get(
            "hapi_approval_latency_seconds_bucket",
            &[("channel", "phone"), ("le", "+Inf")]
        ),
        1.0
    );
    // Decided within the test, so well under a minute.
    assert_eq!(
        m.get(
            "hapi_approval_latency_seconds_bucket",
            &[("channel", "phone"), ("le", "60")]
        ),
        1.0
    );
    assert!(m.get("hapi_approval_latency_seconds_sum", &[("channel", "phone")]) < 60.0);

    // A prompt through the API is a message too; delivered, as the wrapper is linked.
    let r = hub
        .post(&format!("/api/sessions/{}/messages", created.session.id))
        .json(&json!({"text": "go on"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let m = scrape(&hub).await;
    assert_eq!(m.get("hapi_messages_ingested_total", &[("source", "api")]), 1.0);
    assert_eq!(
        m.get(
            "hapi_relay_failures_total",
            &[("target", "session"), ("reason", "wrapper_disconnected")]
        ),
        0.0
    );
    hub.stop().await;
}

#[tokio::test]
async fn wrapper_reconnects_and_undelivered_commands_are_counted() {
    let hub = TestHub::start().await;
    let created = hub.create_session().await;
    let wrapper = hub.wrapper(&created).await;
    wrapper.close().await;
    scrape_until(&hub, "the wrapper link gone", |m| {
        m.get("hapi_links", &[("link", "wrapper")]) == 0.0
    })
    .await;
    // A prompt while no wrapper is linked waits in the outbox.
    let r = hub
        .post(&format!("/api/sessions/{}/messages", created.session.id))
        .json(&json!({"text": "later"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let m = scrape(&hub).await;
    assert_eq!(
        m.get(
            "hapi_relay_failures_total",
            &[("target", "session"), ("reason", "wrapper_disconnected")]
        ),
        1.0
    );
    assert_eq!(m.get("hapi_link_reconnects_total", &[("link", "wrapper")]), 0.0);
    let again = hub.wrapper(&created).await;
    let m = scrape(&hub).await;
    assert_eq!(m.get("hapi_link_connects_total", &[("link", "wrapper")]), 2.0);
    assert_eq!(m.get("hapi_link_reconnects_total", &[("link", "wrapper")]), 1.0);
    again.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn event_clients_are_counted_while_their_stream_is_open() {
    let hub = TestHub::start().await;
    let m = scrape(&hub).await;
    assert_eq!(m.get("hapi_event_clients", &[("transport", "sse")]), 0.0);
    let mut sse = Sse::open(&hub, None).await;
    hub.create_session().await;
    sse.next().await;
    let m = scrape(&hub).await;
    assert_eq!(m.get("hapi_event_clients", &[("transport", "sse")]), 1.0);
    assert_eq!(m.get("hapi_event_clients", &[("transport", "websocket")]), 0.0);
    drop(sse);
    // The hub notices a closed stream when it next writes to it.
    for _ in 0..100 {
        hub.create_session().await;
        let m = scrape(&hub).await;
        if m.get("hapi_event_clients", &[("transport", "sse")]) == 0.0 {
            return hub.stop().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the closed SSE stream is still counted");
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn link_runner(url: &str, token: &str, machine_id: &str) -> Ws {
    let mut req = format!("{}/api/machines/{machine_id}/ws", url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
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

async fn ready(http: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let r = http.get(format!("{url}/ready")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn ready_follows_this_machines_runner() {
    let hub = TestHub::start().await;
    // No runner yet: the hub still serves sessions started with `hapi claude`.
    let (status, body) = ready(&hub.http, &hub.url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["components"]["database"]["status"], "ok");
    assert_eq!(body["components"]["database"]["ready"], true);
    assert_eq!(body["components"]["runner"]["status"], "absent");

    let machine_id = hub.json("/api/hub").await["machine_id"].as_str().unwrap().to_owned();
    let ws = link_runner(&hub.url, &hub.token, &machine_id).await;
    let m = scrape_until(&hub, "the runner linked", |m| {
        m.get("hapi_links", &[("link", "runner")]) == 1.0
    })
    .await;
    assert_eq!(m.get("hapi_runner_linked", &[("machine_id", &machine_id)]), 1.0);
    assert!(m.get("hapi_runner_heartbeat_age_seconds", &[("machine_id", &machine_id)]) < 60.0);
    assert_eq!(m.types["hapi_runner_heartbeat_age_seconds"], "gauge");
    let (status, body) = ready(&hub.http, &hub.url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["components"]["runner"]["status"], "ok");

    // Its link drops without a shutdown: not ready until it reconnects.
    drop(ws);
    scrape_until(&hub, "the runner unlinked", |m| {
        m.get("hapi_runner_linked", &[("machine_id", &machine_id)]) == 0.0
    })
    .await;
    let (status, body) = ready(&hub.http, &hub.url).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["components"]["runner"]["status"], "lost");
    assert_eq!(body["components"]["database"]["status"], "ok");

    let mut ws = link_runner(&hub.url, &hub.token, &machine_id).await;
    let m = scrape_until(&hub, "the runner relinked", |m| {
        m.get("hapi_runner_linked", &[("machine_id", &machine_id)]) == 1.0
    })
    .await;
    assert_eq!(m.get("hapi_link_reconnects_total", &[("link", "runner")]), 1.0);
    // A runner that says it is shutting down leaves the hub ready.
    let bye = serde_json::to_string(&MachineFrame::ShuttingDown).unwrap();
    ws.send(Message::Text(bye.into())).await.unwrap();
    ws.close(None).await.unwrap();
    scrape_until(&hub, "the runner gone", |m| {
        m.get("hapi_runner_linked", &[("machine_id", &machine_id)]) == 0.0
    })
    .await;
    let (status, body) = ready(&hub.http, &hub.url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["components"]["runner"]["status"], "stopped");
    hub.stop().await;
}

#[tokio::test]
async fn ready_is_503_while_the_database_cannot_take_a_write() {
    let hub = OpsHub::start().await;
    let (status, body) = ready(&hub.http, &hub.url).await;
    assert_eq!(status, 200, "{body}");

    // Another process (a backup tool, a `sqlite3` shell) holds the write lock.
    let db = hub.home.path().join("hapi.db");
    let (locked, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let (locked_tx, locked_rx) = locked;
    let (release_tx, release_rx) = release;
    let holder = std::thread::spawn(move || {
        let conn = hapi_store::rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv();
        conn.execute_batch("ROLLBACK").unwrap();
    });
    locked_rx.recv().unwrap();
    // Past the probe cache of the first answer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = ready(&hub.http, &hub.url).await;
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["components"]["database"]["status"], "timeout");
    assert_eq!(body["components"]["database"]["ready"], false);
    assert!(
        body["components"]["database"]["detail"]
            .as_str()
            .unwrap()
            .contains("write lock"),
        "{body}"
    );

    // Lock released: ready again once the cached answer expires.
    for _ in 0..100 {
        let (status, _) = ready(&hub.http, &hub.url).await;
        if status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the hub never became ready again");
}

#[tokio::test]
async fn ready_and_health_need_no_token() {
    let hub = TestHub::start().await;
    let (status, body) = ready(&hub.http, &hub.url).await;
    assert_eq!(status, 200, "{body}");
    let r = hub.http.get(format!("{}/health", hub.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    hub.stop().await;
}

/// Restarts and out-of-memory kills, as this `$HAPI_HOME`'s runner counts them
/// in its state file, reach `/metrics`.
#[tokio::test]
async fn the_runners_session_counters_are_exported() {
    let hub = TestHub::start().await;
    let before = hub.get("/metrics").send().await.unwrap().text().await.unwrap();
    assert!(
        !before.contains("hapi_session_restarts_total "),
        "no runner, no series: {before}"
    );
    std::fs::write(
        hub.home().join("runner.state.json"),
        r#"{"pid": 1, "sessions": {"limits": "memory 2G", "cgroupReady": true, "cgroup": "ok", "restart": "on-failure:2",
            "restartBackoffMs": 1000, "startGraceMs": 30000, "restarts": 2, "oomKills": 1}}"#,
    )
    .unwrap();
    let text = hub.get("/metrics").send().await.unwrap().text().await.unwrap();
    for line in [
        "hapi_session_restarts_total 2",
        "hapi_session_oom_kills_total 1",
        "hapi_session_cgroup_limits 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
}

/// The tunnel's state reaches the operator: `/metrics` and `/ready`.
#[tokio::test]
async fn the_tunnel_shows_in_metrics_and_readiness_while_phone_access_is_on() {
    let hub = TestHub::start().await;
    let metrics = |hub: &TestHub| {
        let r = hub.get("/metrics");
        async move { r.send().await.unwrap().text().await.unwrap() }
    };
    let ready = |hub: &TestHub| {
        let r = hub.http.get(format!("{}/ready", hub.url));
        async move { r.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let text = metrics(&hub).await;
    assert!(text.lines().any(|l| l == "hapi_tunnel_up 0"), "{text}");
    assert!(text.lines().any(|l| l == "hapi_tunnel_failures_total 0"), "{text}");
    assert!(
        ready(&hub).await["components"].get("tunnel").is_none(),
        "no tunnel while off"
    );

    let url = crate::phone::turn_on(&hub).await;
    let text = metrics(&hub).await;
    assert!(text.lines().any(|l| l == "hapi_tunnel_up 1"), "{text}");
    let body = ready(&hub).await;
    assert_eq!(body["components"]["tunnel"]["status"], "ok", "{body}");
    assert!(
        body["components"]["tunnel"]["detail"].as_str().unwrap().contains(&url),
        "{body}"
    );

    let r = hub
        .http
        .put(format!("{}/api/remote", hub.url))
        .bearer_auth(&hub.token)
        .json(&SetRemoteAccess {
            provider: None,
            plaintext_consent: None,
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = metrics(&hub).await;
    assert!(text.lines().any(|l| l == "hapi_tunnel_up 0"), "{text}");
}
