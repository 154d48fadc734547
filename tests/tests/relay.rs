//! Phone pairing through a real bore relay, across Linux network namespaces
//! that the test builds (and deletes, panics included):
//!
//! ```text
//!  phone 10.77.2.2 ──veth── relay 10.77.2.1 | 10.77.1.1 ──veth── desktop 10.77.1.2
//!                           public address 10.77.0.1 (on its lo)
//!                           bore server (control port 7835, public ports)
//!                           ip_forward = 0
//! ```
//!
//! Phone and desktop both have their default route through the relay, as two
//! machines on the internet would, but the relay forwards nothing: the only
//! host either can reach is the relay. The hub, the fake model server, Claude
//! Code, the owner's Chromium and the test's own HTTP client run in the
//! desktop's namespace (the test body runs on a thread that entered it, and
//! whatever it starts inherits it); the bore server runs in the relay's
//! (`ip netns exec`), and the phone's Chromium in the phone's, through a
//! wrapper script. The phone then pairs from the QR code and approves a real
//! Claude Code request, every byte of it through the relay.
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hapi_e2e::netns::Netns;
use hapi_e2e::{BrowserTest, Child, ClaudeSession, Hub, agent_texts, bin, wait_sync};
use hapi_testkit::{Script, start_fake_anthropic};
use serde_json::{Value, json};

const SECRET: &str = "relay test secret";
const RELAY_PUBLIC: &str = "10.77.0.1";
const DESKTOP_IP: &str = "10.77.1.2";
const PHONE_IP: &str = "10.77.2.2";
/// The bore control port, fixed by `bore-cli` (`hapi_tunnel::BORE_CONTROL_PORT`).
const BORE_CONTROL: u16 = 7835;

/// The three namespaces, wired as in the module's diagram. Fields drop in
/// order, each deleting its namespace and the veth ends in it.
struct Network {
    relay: Netns,
    desktop: Netns,
    phone: Netns,
}

impl Network {
    fn build() -> Network {
        // Unique per run (the PID), so parallel or leftover runs never collide.
        let id = std::process::id();
        let net = Network {
            relay: Netns::create(&format!("hapi-{id}-relay")),
            desktop: Netns::create(&format!("hapi-{id}-desktop")),
            phone: Netns::create(&format!("hapi-{id}-phone")),
        };
        net.relay.veth("to-desktop", &net.desktop, "to-relay");
        net.relay.veth("to-phone", &net.phone, "to-relay");
        net.relay
            .ip(&["addr", "add", &format!("{RELAY_PUBLIC}/32"), "dev", "lo"]);
        net.relay.address("to-desktop", "10.77.1.1/24");
        net.relay.address("to-phone", "10.77.2.1/24");
        net.desktop.address("to-relay", &format!("{DESKTOP_IP}/24"));
        net.desktop.ip(&["route", "add", "default", "via", "10.77.1.1"]);
        net.phone.address("to-relay", &format!("{PHONE_IP}/24"));
        net.phone.ip(&["route", "add", "default", "via", "10.77.2.1"]);
        net
    }
}

#[test]
fn a_phone_pairs_and_approves_through_a_bore_relay_across_network_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let net = Network::build();

    // First, the premise: the phone has no path to the desktop. New namespaces
    // start with forwarding off, and the relay must keep it so.
    let forwarding = net
        .relay
        .enter(|| std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap());
    assert_eq!(
        forwarding.trim(),
        "0",
        "the relay must not route between phone and desktop"
    );
    // A listener on the desktop's own address: the relay reaches it (so it is
    // live on the wire), the phone does not (its packets die at the relay).
    let listener = net.desktop.enter(|| TcpListener::bind((DESKTOP_IP, 0)).unwrap());
    let desktop_addr = listener.local_addr().unwrap();
    net.relay
        .can_connect(desktop_addr, Duration::from_secs(5))
        .expect("the relay reaches the desktop");
    let direct = net.phone.can_connect(desktop_addr, Duration::from_secs(2));
    assert!(
        direct.is_err(),
        "the phone must not reach the desktop directly, but connected to {desktop_addr}"
    );
    drop(listener);

    // The bore server, in the relay's namespace, on every address of it.
    let mut relay_cmd = net.relay.command(bin("bore-relay"));
    relay_cmd
        .args(["--secret", SECRET, "--min-port", "47100", "--max-port", "47399"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null());
    let relay_log = dir.path().join("bore-relay.log");
    let relay = Child::spawn("bore-relay", relay_cmd, &relay_log);
    let control: SocketAddr = format!("{RELAY_PUBLIC}:{BORE_CONTROL}").parse().unwrap();
    wait_sync("the bore server", Duration::from_secs(30), || {
        net.desktop.can_connect(control, Duration::from_secs(1)).ok()
    });
    net.phone
        .can_connect(control, Duration::from_secs(5))
        .expect("the phone reaches the relay");

    let phone_chromium = phone_chromium_wrapper(dir.path(), &net.phone);
    net.desktop.enter(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(pair_and_approve(dir.path(), &net, &phone_chromium, &relay_log));
    });
    drop(relay);
}

/// The test proper, on a runtime inside the desktop's namespace.
async fn pair_and_approve(dir: &Path, net: &Network, phone_chromium: &Path, relay_log: &Path) {
    let model = start_fake_anthropic(Script::default()).await.unwrap();
    let hub = Hub::start(dir);
    let session = ClaudeSession::start(dir, &hub, &model.url(), "do it");
    hub.pending_approval(&session.id).await;

    // Phone access through the relay (plaintext: consent given).
    let consent = hub
        .get(&format!("/api/remote/consent?kind=bore&host={RELAY_PUBLIC}"))
        .await;
    let remote: Value = hub
        .http
        .put(format!("{}/api/remote", hub.url))
        .bearer_auth(&hub.token)
        .json(&json!({
            "provider": {"kind": "bore", "host": RELAY_PUBLIC, "secret": SECRET},
            "plaintext_consent": consent["notice"],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(remote["state"], "up", "{remote}");
    assert_eq!(remote["transport"], "plaintext", "{remote}");
    let public_url = remote["public_url"].as_str().unwrap().to_owned();
    assert!(
        public_url.starts_with(&format!("http://{RELAY_PUBLIC}:")),
        "the public URL is the relay's: {public_url}"
    );
    let public_addr: SocketAddr = public_url.trim_start_matches("http://").parse().unwrap();

    let handshake = dir.join("handshake");
    std::fs::create_dir_all(&handshake).unwrap();
    let browser = BrowserTest::start(
        dir,
        "relay.test.mjs",
        &[
            ("HAPI_TEST_URL", hub.url.as_ref()),
            ("HAPI_TEST_TOKEN", hub.token.as_ref()),
            ("HAPI_TEST_SESSION_ID", session.id.as_ref()),
            ("HAPI_TEST_HANDSHAKE", handshake.as_ref()),
            ("HAPI_TEST_PUBLIC_URL", public_url.as_ref()),
            ("HAPI_TEST_PHONE_CHROMIUM", phone_chromium.as_ref()),
        ],
    );

    // Decode the QR code from the page's pixels, as a phone's camera would.
    let url = hapi_e2e::decode_qr_image(&handshake.join("qr.png")).await;
    assert!(
        url.starts_with(&format!("{public_url}/#/pair/")),
        "the QR code names the relay's public URL: {url}"
    );
    std::fs::write(handshake.join("url.txt"), &url).unwrap();
    tokio::task::spawn_blocking(move || browser.finish()).await.unwrap();

    // The phone's decision reached the agent.
    let devices = hub.get("/api/devices").await;
    assert_eq!(devices["devices"][0]["name"], "Relay phone", "{devices}");
    let messages = hub.wait_turns(&session.id, 1).await;
    assert_eq!(agent_texts(&messages).last().unwrap(), "Done: wrote hello to out.txt.");
    assert_eq!(
        std::fs::read_to_string(session.work.join("out.txt")).unwrap(),
        "hello\n"
    );
    let decided = hub.get(&format!("/api/approvals?session_id={}", session.id)).await;
    assert_eq!(decided["approvals"][0]["decision"], "allow_once");
    assert_eq!(decided["approvals"][0]["decided_by"], "Relay phone", "{decided}");
    // And it came through the relay: the bore server accepted the phone's
    // connections on the public port (it logs each peer).
    let log = std::fs::read_to_string(relay_log).unwrap();
    assert!(
        log.contains(&format!("addr={PHONE_IP}:")),
        "the relay saw no connection from the phone:\n{log}"
    );

    // Turning phone access off closes the public port on the relay.
    let (status, off) = put_remote_off(&hub).await;
    assert_eq!((status, off["state"].as_str()), (200, Some("off")), "{off}");
    wait_sync("the relay to close the public port", Duration::from_secs(15), || {
        net.phone
            .can_connect(public_addr, Duration::from_secs(1))
            .is_err()
            .then_some(())
    });
    model.shutdown().await;
}

async fn put_remote_off(hub: &Hub) -> (u16, Value) {
    let r = hub
        .http
        .put(format!("{}/api/remote", hub.url))
        .bearer_auth(&hub.token)
        .json(&json!({"provider": null}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// An executable that runs Chromium in `phone`'s namespace. playwright drives
/// Chromium over pipes on fds 3 and 4, which `ip netns exec` (an `exec`, no
/// fork) passes on, so the PID playwright holds is Chromium's own.
fn phone_chromium_wrapper(dir: &Path, phone: &Netns) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let chromium = std::env::var("HAPI_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let path = dir.join("phone-chromium");
    let script = format!("#!/bin/sh\nexec ip netns exec '{}' '{chromium}' \"$@\"\n", phone.name());
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}
