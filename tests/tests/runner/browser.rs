//! The real web UI in headless Chromium starts a session on this machine through
//! the runner, approving the creation of its directory on the way.
use hapi_e2e::BrowserTest;

use crate::env::*;

#[test]
fn phone_ui_starts_a_session_in_a_new_directory_through_the_runner() {
    let mut env = Env::new();
    env.start();
    let rt = rt();
    rt.block_on(env.online_machine());
    let cwd = env.dir.path().join("brand-new-project");
    let hub = env.hub.as_ref().unwrap();

    BrowserTest::start(
        env.dir.path(),
        "new-session.test.mjs",
        &[
            ("HAPI_TEST_URL", hub.url.as_ref()),
            ("HAPI_TEST_TOKEN", hub.token.as_ref()),
            ("HAPI_TEST_CWD", cwd.as_ref()),
        ],
    )
    .finish();

    // What the browser did happened on the machine: the directory exists and the
    // runner tracks a session started there.
    assert!(cwd.is_dir(), "the approved directory was created");
    let approvals = rt.block_on(hub.get("/api/approvals?state=decided"));
    let listed = env.adopt_listed();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].2, "runner");
    let decided = approvals["approvals"].as_array().unwrap();
    assert!(
        decided
            .iter()
            .any(|a| a["tool"] == "create_directory" && a["decision"] == "allow_once"),
        "{approvals}"
    );
    env.finish();
}
