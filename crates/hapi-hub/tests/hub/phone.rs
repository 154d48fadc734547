//! Phone access end to end: remote access on the LAN provider bound to
//! 127.0.0.1, pairing over the real remote listener, device tokens, revocation,
//! the kill switch, and the Host/Origin checks.
use std::time::Duration;

use futures_util::StreamExt;
use hapi_protocol::{
    Device, DeviceList, PairDevice, PairedDevice, Pairing, PermissionOption, RemoteAccess, RemoteConsent,
    RemoteProvider, RemoteState, SessionUpdate, SetRemoteAccess, TransportSecurity,
};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::TestHub;

/// The body of an error answer.
async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["error"]["code"].as_str().unwrap_or("").to_owned())
}

fn lan() -> RemoteProvider {
    RemoteProvider::Lan {
        bind: "127.0.0.1".into(),
        port: 0,
    }
}

async fn consent_notice(hub: &TestHub) -> String {
    let consent: RemoteConsent = hub
        .get("/api/remote/consent?kind=lan&bind=127.0.0.1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    consent.notice.expect("LAN needs consent")
}

/// Turns remote access on (LAN on 127.0.0.1) and returns its URL.
pub(crate) async fn turn_on(hub: &TestHub) -> String {
    let notice = consent_notice(hub).await;
    let r = hub
        .http
        .put(format!("{}/api/remote", hub.url))
        .bearer_auth(&hub.token)
        .json(&SetRemoteAccess {
            provider: Some(lan()),
            plaintext_consent: Some(notice),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let access: RemoteAccess = r.json().await.unwrap();
    assert_eq!(access.state, RemoteState::Up, "{access:?}");
    assert_eq!(access.transport, Some(TransportSecurity::Plaintext));
    assert_eq!(access.provider, Some(lan()));
    let url = access.public_url.unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_ne!(url, hub.url, "a listener of its own");
    url
}

async fn offer(hub: &TestHub) -> Pairing {
    let r = hub.post("/api/pairing").send().await.unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

fn secret_of(pairing: &Pairing) -> String {
    pairing.url.rsplit_once("/#/pair/").unwrap().1.to_owned()
}

async fn pair(http: &reqwest::Client, remote: &str, secret: Option<&str>, code: Option<&str>) -> reqwest::Response {
    http.post(format!("{remote}/pair"))
        .json(&PairDevice {
            secret: secret.map(Into::into),
            code: code.map(Into::into),
            device_name: "Ana's phone".into(),
        })
        .send()
        .await
        .unwrap()
}

async fn devices(hub: &TestHub) -> Vec<Device> {
    let list: DeviceList = hub.get("/api/devices").send().await.unwrap().json().await.unwrap();
    list.devices
}

async fn paired(hub: &TestHub, remote: &str) -> PairedDevice {
    let pairing = offer(hub).await;
    let r = pair(&hub.http, remote, Some(&secret_of(&pairing)), None).await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

/// Reads a streaming body until it ends; panics if it is still open after `within`.
async fn ends_within(r: reqwest::Response, within: Duration) {
    let mut body = r.bytes_stream();
    tokio::time::timeout(within, async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await
    .expect("the stream is still open");
}

#[tokio::test]
async fn a_phone_pairs_through_the_remote_listener_and_sees_only_phone_routes() {
    let hub = TestHub::start().await;
    let http = &hub.http;

    // Off by default: nothing to pair with.
    let access: RemoteAccess = hub.get("/api/remote").send().await.unwrap().json().await.unwrap();
    assert_eq!(access.state, RemoteState::Off);
    assert_eq!(
        code(hub.post("/api/pairing").send().await.unwrap()).await,
        (409, "remote_off".into())
    );

    // A plaintext provider needs the exact notice.
    let notice = consent_notice(&hub).await;
    assert!(notice.contains("127.0.0.1"), "{notice}");
    for consent in [None, Some("I agree".to_owned())] {
        let r = http
            .put(format!("{}/api/remote", hub.url))
            .bearer_auth(&hub.token)
            .json(&SetRemoteAccess {
                provider: Some(lan()),
                plaintext_consent: consent,
            })
            .send()
            .await
            .unwrap();
        assert_eq!(code(r).await, (409, "consent_required".into()));
    }
    let remote = turn_on(&hub).await;

    let pairing = offer(&hub).await;
    assert!(pairing.url.starts_with(&format!("{remote}/#/pair/")), "{}", pairing.url);
    let secret = secret_of(&pairing);
    assert!(secret.len() >= 32, "at least 128 bits: {secret}");
    let (a, b) = pairing.code.split_once('-').unwrap();
    assert_eq!((a.len(), b.len()), (4, 4), "{}", pairing.code);
    assert!(
        pairing
            .code
            .chars()
            .all(|c| c == '-' || "23456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c))
    );
    assert!(pairing.qr_svg.contains("<svg"));
    assert_eq!(pairing.transport, TransportSecurity::Plaintext);

    let r = pair(http, &remote, Some(&secret), None).await;
    assert_eq!(r.status(), 201);
    let device: PairedDevice = r.json().await.unwrap();
    assert_eq!(device.device.name, "Ana's phone");
    assert_eq!(device.token.len(), 64, "256 bits, hex");

    // The device on the remote listener: the phone routes.
    let as_device = |path: &str| http.get(format!("{remote}{path}")).bearer_auth(&device.token);
    assert_eq!(as_device("/api/sessions").send().await.unwrap().status(), 200);
    assert_eq!(as_device("/api/approvals").send().await.unwrap().status(), 200);
    assert_eq!(as_device("/api/machines").send().await.unwrap().status(), 200);
    assert_eq!(as_device("/health").send().await.unwrap().status(), 200);
    // Owner-only routes do not exist there, whoever asks.
    for path in ["/api/devices", "/api/hub", "/api/remote", "/api/pairing"] {
        assert_eq!(as_device(path).send().await.unwrap().status(), 404, "{path}");
        let r = http.get(format!("{remote}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without a token");
    }
    let r = http
        .post(format!("{remote}/api/pairing"))
        .bearer_auth(&device.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    for path in ["/metrics", "/ready"] {
        assert_eq!(as_device(path).send().await.unwrap().status(), 404, "{path}");
        let r = http
            .get(format!("{remote}{path}"))
            .bearer_auth(&hub.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} with the owner token");
    }
    // The owner token is refused on the remote listener; the device token on the local one.
    let r = http
        .get(format!("{remote}/api/sessions"))
        .bearer_auth(&hub.token)
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (401, "unauthorized".into()));
    let r = http
        .get(format!("{}/api/sessions", hub.url))
        .bearer_auth(&device.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Tickets stay on their listener.
    let device_ticket: serde_json::Value = http
        .post(format!("{remote}/api/events/ticket"))
        .bearer_auth(&device.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .get(format!(
            "{}/api/events?ticket={}",
            hub.url,
            device_ticket["ticket"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a device's ticket on the local listener");
    let owner_ticket: serde_json::Value = hub
        .post("/api/events/ticket")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .get(format!(
            "{remote}/api/events?ticket={}",
            owner_ticket["ticket"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "an owner's ticket on the remote listener");

    // The device decides an approval as itself, on the phone channel.
    let created = hub.create_session().await;
    let mut wrapper = hub.wrapper(&created).await;
    wrapper
        .send(
            1,
            SessionUpdate::PermissionRequest {
                request_id: "req-1".into(),
                tool_call_id: None,
                tool: "Bash".into(),
                input: json!({"command": "ls"}),
                options: PermissionOption::every_kind(),
            },
        )
        .await;
    wrapper.wait_ack(1).await;
    let pending = hub.json("/api/approvals?state=pending").await;
    let approval_id = pending["approvals"][0]["id"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{remote}/api/approvals/{approval_id}"))
        .bearer_auth(&device.token)
        .json(&json!({"decision": "allow_once", "channel": "web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let decided: serde_json::Value = r.json().await.unwrap();
    assert_eq!(decided["approval"]["decided_by"], "Ana's phone");
    // The device's prompt reaches the session.
    let r = http
        .post(format!("{remote}/api/sessions/{}/messages", created.session.id))
        .bearer_auth(&device.token)
        .json(&json!({"text": "hello from the phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wrapper.close().await;

    // The owner sees the device, with when it was last seen.
    let listed = devices(&hub).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, device.device.id);
    let mut seen = listed[0].last_seen_at.clone();
    for _ in 0..50 {
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = devices(&hub).await[0].last_seen_at.clone();
    }
    assert!(seen.is_some(), "last_seen_at is recorded");

    // Withdrawing an offer answers 204 whether or not it is still there.
    let other = offer(&hub).await;
    let r = http
        .delete(format!("{}/api/pairing/{}", hub.url, other.id))
        .bearer_auth(&hub.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    hub.stop().await;
}

#[tokio::test]
async fn failed_pairing_attempts_create_nothing_and_lock_pairing() {
    let ttl = Duration::from_millis(1500);
    let hub = TestHub::start_with(tempfile::tempdir().unwrap(), |config| config.pairing_ttl = ttl).await;
    let http = &hub.http;
    let remote = turn_on(&hub).await;
    let invalid = (401, "pairing_invalid".to_owned());

    // Expired.
    let expired = offer(&hub).await;
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    assert_eq!(
        code(pair(http, &remote, Some(&secret_of(&expired)), None).await).await,
        invalid
    );
    assert_eq!(
        code(pair(http, &remote, None, Some(&expired.code)).await).await,
        invalid
    );

    // Used once, then never again.
    let used = offer(&hub).await;
    let first = pair(http, &remote, None, Some(&used.code.to_lowercase().replace('-', " "))).await;
    assert_eq!(first.status(), 201, "typed codes compare loosely");
    assert_eq!(
        code(pair(http, &remote, Some(&secret_of(&used)), None).await).await,
        invalid
    );

    // Withdrawn.
    let withdrawn = offer(&hub).await;
    let r = http
        .delete(format!("{}/api/pairing/{}", hub.url, withdrawn.id))
        .bearer_auth(&hub.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        code(pair(http, &remote, Some(&secret_of(&withdrawn)), None).await).await,
        invalid
    );

    // Malformed bodies are refused without spending the budget.
    assert_eq!(
        code(pair(http, &remote, None, None).await).await,
        (400, "invalid_request".into())
    );
    let both = pair(http, &remote, Some("a"), Some("b")).await;
    assert_eq!(code(both).await, (400, "invalid_request".into()));

    // Wrong typed codes until the global budget is spent: 4 misses so far.
    let live = offer(&hub).await;
    let mut misses = 4;
    loop {
        let (status, code) = code(pair(http, &remote, None, Some("ZZZZ-ZZZZ")).await).await;
        if status == 429 {
            assert_eq!(code, "pairing_locked");
            break;
        }
        assert_eq!((status, code), invalid);
        misses += 1;
        assert!(misses <= 10, "locked after 10 misses");
    }
    assert_eq!(misses, 10);
    // Locked: even the right code and the right secret are refused, on both listeners.
    let locked = (429, "pairing_locked".to_owned());
    assert_eq!(code(pair(http, &remote, None, Some(&live.code)).await).await, locked);
    assert_eq!(
        code(pair(http, &remote, Some(&secret_of(&live)), None).await).await,
        locked
    );
    assert_eq!(
        code(pair(http, &hub.url, Some(&secret_of(&live)), None).await).await,
        locked
    );

    // A forged device token opens nothing.
    let r = http
        .get(format!("{remote}/api/sessions"))
        .bearer_auth("f".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (401, "unauthorized".into()));

    // Only the one good pairing made a device.
    assert_eq!(devices(&hub).await.len(), 1);
    hub.stop().await;
}

#[tokio::test]
async fn revoking_a_device_ends_its_streams_and_refuses_its_token() {
    let hub = TestHub::start().await;
    let http = &hub.http;
    let remote = turn_on(&hub).await;
    let device = paired(&hub, &remote).await;
    let other = paired(&hub, &remote).await;

    let sse = http
        .get(format!("{remote}/api/events?after=latest"))
        .bearer_auth(&device.token)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let ticket: serde_json::Value = http
        .post(format!("{remote}/api/events/ticket"))
        .bearer_auth(&device.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = ticket["ticket"].as_str().unwrap().to_owned();
    let by_ticket = http
        .get(format!("{remote}/api/events?after=latest&ticket={ticket}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_ticket.status(), 200);
    let mut req = format!("{}/api/events/ws?after=latest", remote.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {}", device.token).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let unused_ticket: serde_json::Value = http
        .post(format!("{remote}/api/events/ticket"))
        .bearer_auth(&device.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Another device's stream is not affected.
    let bystander = http
        .get(format!("{remote}/api/events?after=latest"))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bystander.status(), 200);

    let r = http
        .delete(format!("{}/api/devices/{}", hub.url, device.device.id))
        .bearer_auth(&hub.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    ends_within(sse, Duration::from_secs(5)).await;
    ends_within(by_ticket, Duration::from_secs(5)).await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
        }
    })
    .await
    .expect("the WebSocket is still open");

    let r = http
        .get(format!("{remote}/api/sessions"))
        .bearer_auth(&device.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "revoked at once");
    let r = http
        .get(format!(
            "{remote}/api/events?ticket={}",
            unused_ticket["ticket"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "its tickets too");
    let r = http
        .delete(format!("{}/api/devices/{}", hub.url, device.device.id))
        .bearer_auth(&hub.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "already revoked");

    // The other device still works, and its stream is still open.
    let r = http
        .get(format!("{remote}/api/sessions"))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut bystander = bystander.bytes_stream();
    let still_open = tokio::time::timeout(Duration::from_millis(300), bystander.next()).await;
    assert!(still_open.is_err(), "the other device's stream stays open");
    let listed = devices(&hub).await;
    assert_eq!(
        listed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [other.device.id.as_str()]
    );
    hub.stop().await;
}

#[tokio::test]
async fn host_and_origin_must_be_the_hubs() {
    let hub = TestHub::start().await;
    let http = &hub.http;
    let remote = turn_on(&hub).await;
    let forbidden = (403, "forbidden_origin".to_owned());

    // DNS rebinding: a foreign name in Host, on either listener.
    let r = hub
        .get("/api/sessions")
        .header("host", "rebound.example:3006")
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, forbidden);
    let r = http
        .get(format!("{remote}/health"))
        .header("host", "rebound.example")
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, forbidden);

    // Cross-origin state changes.
    let body = json!({"agent": "claude", "cwd": "/tmp"});
    let r = hub
        .post("/api/sessions")
        .header("origin", "https://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, forbidden);
    let r = hub
        .post("/api/sessions")
        .header("origin", "null")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, forbidden);
    let r = hub
        .post("/api/sessions")
        .header("origin", hub.url.as_str())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "same origin");
    let r = http
        .post(format!("{remote}/pair"))
        .header("origin", "https://evil.example")
        .json(&json!({"secret": "x", "device_name": "p"}))
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, forbidden);
    let r = http
        .post(format!("{remote}/pair"))
        .header("origin", remote.as_str())
        .json(&json!({"secret": "x", "device_name": "p"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(r).await,
        (401, "pairing_invalid".into()),
        "same origin gets through"
    );

    // CORS stays closed: no Access-Control-* header, even to a preflight.
    let r = http
        .request(reqwest::Method::OPTIONS, format!("{}/api/sessions", hub.url))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().keys().all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        r.headers()
    );
    hub.stop().await;
}

#[tokio::test]
async fn the_kill_switch_revokes_everything_and_closes_the_remote_listener() {
    let hub = TestHub::start().await;
    let http = &hub.http;
    // The desktop's tray follows phone access through this, not a poll.
    let mut changes = hub.state.remote_changes();
    let remote = turn_on(&hub).await;
    assert!(changes.has_changed().unwrap(), "turning phone access on is announced");
    changes.borrow_and_update();
    let device = paired(&hub, &remote).await;
    let stream = http
        .get(format!("{remote}/api/events?after=latest"))
        .bearer_auth(&device.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let pending_offer = offer(&hub).await;

    let r = hub.post("/api/devices/revoke-all").send().await.unwrap();
    assert_eq!(r.status(), 204);

    ends_within(stream, Duration::from_secs(5)).await;
    let access: RemoteAccess = hub.get("/api/remote").send().await.unwrap().json().await.unwrap();
    assert_eq!(access.state, RemoteState::Off);
    assert!(changes.has_changed().unwrap(), "the kill switch is announced");
    assert!(devices(&hub).await.is_empty());
    let addr = remote.trim_start_matches("http://");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the remote listener no longer accepts"
    );
    // Offers were withdrawn, and pairing needs remote access again.
    let r = pair(http, &hub.url, Some(&secret_of(&pending_offer)), None).await;
    assert_eq!(code(r).await, (409, "remote_off".into()));
    assert_eq!(
        code(hub.post("/api/pairing").send().await.unwrap()).await,
        (409, "remote_off".into())
    );

    // On again: the revoked device stays revoked; a new pairing works.
    let remote = turn_on(&hub).await;
    let r = http
        .get(format!("{remote}/api/sessions"))
        .bearer_auth(&device.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let again = paired(&hub, &remote).await;
    let r = http
        .get(format!("{remote}/api/sessions"))
        .bearer_auth(&again.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Turning it off with PUT closes it too.
    let r = http
        .put(format!("{}/api/remote", hub.url))
        .bearer_auth(&hub.token)
        .json(&SetRemoteAccess {
            provider: None,
            plaintext_consent: None,
        })
        .send()
        .await
        .unwrap();
    let access: RemoteAccess = r.json().await.unwrap();
    assert_eq!(access.state, RemoteState::Off);
    let addr = remote.trim_start_matches("http://");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    hub.stop().await;
}
