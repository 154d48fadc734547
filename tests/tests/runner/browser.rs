//! The real web UI in headless Chromium starts a session on this machine through
//! the runner, approving the creation of its directory on the way.
use std::process::Command;
use std::time::Duration;

use hapi_e2e::repo;

use crate::env::*;

#[test]
fn phone_ui_starts_a_session_in_a_new_directory_through_the_runner() {
    let mut env = Env::new();
    env.start();
    let rt = rt();
    rt.block_on(env.online_machine());
    let cwd = env.dir.path().join("brand-new-project");
    let hub = env.hub.as_ref().unwrap();

    let browser_dir = repo().join("tests/browser");
    let artifacts =
        std::env::var("HAPI_TEST_ARTIFACTS").unwrap_or_else(|_| env.dir.path().join("artifacts").display().to_string());
    let out_log = env.dir.path().join("browser.log");
    let mut cmd = Command::new("node");
    cmd.arg("--test")
        .arg("new-session.test.mjs")
        .current_dir(&browser_dir)
        .env("HAPI_TEST_URL", &hub.url)
        .env("HAPI_TEST_TOKEN", &hub.token)
        .env("HAPI_TEST_CWD", &cwd)
        .env("HAPI_TEST_ARTIFACTS", &artifacts)
        .stdout(std::fs::File::create(&out_log).unwrap());
    let err_log = env.dir.path().join("browser.err");
    let mut node = hapi_e2e::Child::spawn("node --test", cmd, &err_log);
    let status = node.wait_exit(Duration::from_secs(300));
    let output =
        std::fs::read_to_string(&out_log).unwrap_or_default() + &std::fs::read_to_string(&err_log).unwrap_or_default();
    assert!(status.is_some_and(|s| s.success()), "browser test failed:\n{output}");

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
