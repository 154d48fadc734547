//! The real web UI in a real headless Chromium (playwright-core, phone viewport)
//! approving a real Claude Code tool call through the real hub.
use hapi_e2e::{BrowserTest, ClaudeSession, Hub, agent_texts};
use hapi_testkit::{Script, start_fake_anthropic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_ui_approves_a_pending_tool_call() {
    let dir = tempfile::tempdir().unwrap();
    let model = start_fake_anthropic(Script::default()).await.unwrap();
    let hub = Hub::start(dir.path());
    let session = ClaudeSession::start(dir.path(), &hub, &model.url(), "do it");
    hub.pending_approval(&session.id).await;

    let browser = BrowserTest::start(
        dir.path(),
        "approve.test.mjs",
        &[
            ("HAPI_TEST_URL", hub.url.as_ref()),
            ("HAPI_TEST_TOKEN", hub.token.as_ref()),
            ("HAPI_TEST_SESSION_ID", session.id.as_ref()),
        ],
    );
    tokio::task::spawn_blocking(move || browser.finish()).await.unwrap();

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
