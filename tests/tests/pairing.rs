//! Phone pairing end to end in a real browser: the owner's page shows a QR code,
//! the test decodes it **from the image** (zbarimg), a phone-sized page opens
//! what it says, pairs, and approves a real Claude Code request through the
//! hub's remote listener.
use std::process::Command;
use std::time::Duration;

use hapi_e2e::{ClaudeSession, Hub, agent_texts, repo};
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

    let browser_dir = repo().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `scripts/setup.sh --test`"
    );
    let handshake = dir.path().join("handshake");
    std::fs::create_dir_all(&handshake).unwrap();
    let artifacts =
        std::env::var("HAPI_TEST_ARTIFACTS").unwrap_or_else(|_| dir.path().join("artifacts").display().to_string());
    let mut cmd = Command::new("node");
    cmd.arg("--test")
        .arg("pair.test.mjs")
        .current_dir(&browser_dir)
        .env("HAPI_TEST_URL", &hub.url)
        .env("HAPI_TEST_TOKEN", &hub.token)
        .env("HAPI_TEST_SESSION_ID", &session.id)
        .env("HAPI_TEST_HANDSHAKE", &handshake)
        .env("HAPI_TEST_ARTIFACTS", &artifacts)
        .stdout(std::process::Stdio::from(
            std::fs::File::create(dir.path().join("browser.log")).unwrap(),
        ));
    let log = dir.path().join("browser.err");
    let mut node = hapi_e2e::Child::spawn("node --test", cmd, &log);

    // Decode the QR code from the page's pixels, as a phone's camera would.
    let qr = handshake.join("qr.png");
    let url = hapi_e2e::wait("the QR code image", || async {
        if !qr.exists() {
            return None;
        }
        let out = Command::new("zbarimg").args(["--raw", "-q"]).arg(&qr).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    })
    .await;
    assert!(
        url.starts_with(&format!("{public_url}/#/pair/")),
        "the QR code names the remote listener and carries the secret in the fragment: {url}"
    );
    let secret = url.rsplit('/').next().unwrap();
    assert!(secret.len() >= 32, "a 128-bit or longer secret: {secret}");
    std::fs::write(handshake.join("url.txt"), &url).unwrap();

    let status = tokio::task::spawn_blocking(move || {
        let status = node.wait_exit(Duration::from_secs(300));
        (node, status)
    })
    .await
    .unwrap();
    let (_node, status) = status;
    let output = std::fs::read_to_string(dir.path().join("browser.log")).unwrap_or_default()
        + &std::fs::read_to_string(&log).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("browser test did not finish:\n{output}"));
    assert!(status.success(), "browser test failed:\n{output}");

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
