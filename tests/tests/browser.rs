//! The real web UI in a real headless Chromium (playwright-core, phone viewport)
//! approving a real Claude Code tool call through the real hub.
use std::process::Command;
use std::time::Duration;

use hapi_e2e::{ClaudeSession, Hub, agent_texts, repo};
use hapi_testkit::{Script, start_fake_anthropic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_ui_approves_a_pending_tool_call() {
    let dir = tempfile::tempdir().unwrap();
    let model = start_fake_anthropic(Script::default()).await.unwrap();
    let hub = Hub::start(dir.path());
    let session = ClaudeSession::start(dir.path(), &hub, &model.url(), "do it");
    hub.pending_approval(&session.id).await;

    let browser_dir = repo().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `scripts/setup.sh --test`"
    );
    let artifacts =
        std::env::var("HAPI_TEST_ARTIFACTS").unwrap_or_else(|_| dir.path().join("artifacts").display().to_string());
    let mut cmd = Command::new("node");
    cmd.arg("--test")
        .arg("approve.test.mjs")
        .current_dir(&browser_dir)
        .env("HAPI_TEST_URL", &hub.url)
        .env("HAPI_TEST_TOKEN", &hub.token)
        .env("HAPI_TEST_SESSION_ID", &session.id)
        .env("HAPI_TEST_ARTIFACTS", &artifacts)
        .stdout(std::process::Stdio::from(
            std::fs::File::create(dir.path().join("browser.log")).unwrap(),
        ));
    let log = dir.path().join("browser.err");
    let mut node = hapi_e2e::Child::spawn("node --test", cmd, &log);
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

    // What the browser did reached the agent.
    let messages = hub.wait_turns(&session.id, 1).await;
    assert_eq!(
        std::fs::read_to_string(session.work.join("out.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!(agent_texts(&messages).last().unwrap(), "Done: wrote hello to out.txt.");
    let decided = hub.get(&format!("/api/approvals?session_id={}", session.id)).await;
    assert_eq!(decided["approvals"][0]["decision"], "allow_once");
    model.shutdown().await;
}
