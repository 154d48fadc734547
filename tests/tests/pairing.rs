//! Phone pairing end to end in a real browser: the owner's page shows a QR code,
//! the test decodes it **from the image** (zbarimg), a phone-sized page opens
//! what it says, pairs, and approves a real Claude Code request through the
//! hub's remote listener.
use hapi_e2e::{BrowserTest, ClaudeSession, Hub, agent_texts};
use hapi_testkit::{Script, start_fake_anthropic};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_pairs_from_the_qr_code_and_approves_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let model = start_fake_anthropic(Script::default()).await.unwrap();
    let hub = Hub::start(dir.path());
    let session = ClaudeSession::start(dir.path(), &hub, &model.url(), "do it");
    hub.pending_approval(&session.id).await;

    // Phone access on the loopback "LAN" (plaintext: consent given).
    let consent = hub.get("/api/remote/consent?kind=lan&bind=127.0.0.1").await;
    let remote: Value = hub
        .http
        .put(format!("{}/api/remote", hub.url))
        .bearer_auth(&hub.token)
        .json(&json!({"provider": {"kind": "lan", "bind": "127.0.0.1", "port": 0}, "plaintext_consent": consent["notice"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(remote["state"], "up", "{remote}");
    let public_url = remote["public_url"].as_str().unwrap().to_owned();

    let handshake = dir.path().join("handshake");
    std::fs::create_dir_all(&handshake).unwrap();
    let browser = BrowserTest::start(
        dir.path(),
        "pair.test.mjs",
        &[
            ("HAPI_TEST_URL", hub.url.as_ref()),
            ("HAPI_TEST_TOKEN", hub.token.as_ref()),
            ("HAPI_TEST_SESSION_ID", session.id.as_ref()),
            ("HAPI_TEST_HANDSHAKE", handshake.as_ref()),
        ],
    );

    // Decode the QR code from the page's pixels, as a phone's camera would.
    let url = hapi_e2e::decode_qr_image(&handshake.join("qr.png")).await;
    assert!(
        url.starts_with(&format!("{public_url}/#/pair/")),
        "the QR code names the remote listener and carries the secret in the fragment: {url}"
    );
    let secret = url.rsplit('/').next().unwrap();
    assert!(secret.len() >= 32, "a 128-bit or longer secret: {secret}");
    std::fs::write(handshake.join("url.txt"), &url).unwrap();

    tokio::task::spawn_blocking(move || browser.finish()).await.unwrap();

    // The phone is a device of its own, and its decision reached the agent.
    let devices = hub.get("/api/devices").await;
    assert_eq!(devices["devices"][0]["name"], "Test phone", "{devices}");
    let messages = hub.wait_turns(&session.id, 1).await;
    assert_eq!(agent_texts(&messages).last().unwrap(), "Done: wrote hello to out.txt.");
    assert_eq!(
        std::fs::read_to_string(session.work.join("out.txt")).unwrap(),
        "hello\n"
    );
    let decided = hub.get(&format!("/api/approvals?session_id={}", session.id)).await;
    assert_eq!(decided["approvals"][0]["decision"], "allow_once");
    assert_eq!(decided["approvals"][0]["decided_by"], "Test phone", "{decided}");
    // The secret was single use.
    let (status, _) = hub
        .post("/pair", json!({"secret": secret, "device_name": "again"}))
        .await;
    assert_eq!(status, 401);
    model.shutdown().await;
}
