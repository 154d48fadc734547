//! The `hapi` binary's own behaviour: version, credentials, configuration errors.
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use hapi_e2e::{Hub, bin};

fn hapi(home: &std::path::Path) -> Command {
    let mut cmd = Command::new(bin("hapi"));
    cmd.env("HAPI_HOME", home)
        .env("HAPI_NO_RUNNER_AUTOSTART", "1")
        // The token file, never the developer's keychain (see keychain.rs).
        .env("HAPI_KEYCHAIN", "off")
        .env_remove("CLI_API_TOKEN")
        .env_remove("HAPI_HUB_URL")
        .env_remove("HAPI_LISTEN_PORT")
        .env_remove("HAPI_LISTEN_HOST");
    cmd
}

#[test]
fn version_is_printed() {
    let out = Command::new(bin("hapi")).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("hapi {}", hapi_protocol::VERSION)
    );
}

#[test]
fn auth_token_creates_one_private_token_that_the_hub_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("hapi-home");
    let first = hapi(&home).args(["auth", "token"]).output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let token = String::from_utf8(first.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64, "256-bit hex token");
    let mode = std::fs::metadata(home.join("owner.token"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let second = hapi(&home).args(["auth", "token"]).output().unwrap();
    assert_eq!(
        String::from_utf8(second.stdout).unwrap().trim(),
        token,
        "the same token every time"
    );

    // A hub started on that home uses the same token.
    let hub = Hub::start(dir.path());
    assert_eq!(hub.token, token);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = hub
            .http
            .get(format!("{}/api/sessions", hub.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let health: serde_json::Value = reqwest::get(format!("{}/health", hub.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "ok");
    });
}

#[test]
fn bad_configuration_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = hapi(dir.path())
        .arg("hub")
        .env("HAPI_LISTEN_PORT", "not-a-port")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HAPI_LISTEN_PORT") && err.contains("not-a-port"), "{err}");

    // A session without any hub says how to get one, and registers nothing.
    let out = hapi(dir.path())
        .args(["claude", "--cwd"])
        .arg(dir.path())
        .env("HAPI_CLAUDE_PATH", bin("fake-claude"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hapi hub"), "{err}");
    assert!(out.stdout.is_empty(), "no session id is printed");

    let out = hapi(dir.path())
        .args(["claude", "--cwd", "/no/such/dir"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/dir"));
}

#[test]
fn a_corrupt_database_stops_the_hub_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hapi.db"), vec![0x42u8; 4096]).unwrap();
    let out = hapi(dir.path())
        .arg("hub")
        .env("HAPI_LISTEN_PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("corrupt") && err.contains("hapi.db"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("hapi.db")).unwrap(),
        vec![0x42u8; 4096],
        "never replaced"
    );
}

#[test]
fn the_hub_stops_on_sigterm_even_with_open_event_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = Hub::start(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    // An open SSE stream and an open WebSocket event stream never end by themselves.
    let (_sse, _ws) = rt.block_on(async {
        let sse = hub
            .http
            .get(format!("{}/api/events", hub.url))
            .bearer_auth(&hub.token)
            .send()
            .await
            .unwrap();
        assert_eq!(sse.status(), 200);
        let ticket: serde_json::Value = hub
            .http
            .post(format!("{}/api/events/ticket", hub.url))
            .bearer_auth(&hub.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = format!(
            "{}/api/events/ws?ticket={}",
            hub.url.replace("http://", "ws://"),
            ticket["ticket"].as_str().unwrap()
        );
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        (sse, ws)
    });
    let pid = nix::unistd::Pid::from_raw(hub.process.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = hub.process.wait_exit(std::time::Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "hub must exit cleanly on SIGTERM: {status:?}"
    );
    assert!(!hub.home.join("hub.json").exists(), "hub.json is removed on shutdown");
}

#[test]
fn a_session_finds_the_hub_through_hapi_hub_url_and_cli_api_token() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let token = "a-token-set-by-the-operator-0123456789";
    let hub = Hub::start_with_token(dir.path(), Some(token));
    assert!(
        !hub.home.join("owner.token").exists(),
        "CLI_API_TOKEN replaces the token file"
    );

    // A different, empty HAPI_HOME: only the two variables lead to the hub.
    let elsewhere = dir.path().join("other-home");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = hapi(&elsewhere);
    cmd.args(["claude", "--prompt", "do it", "--cwd"])
        .arg(&work)
        .env("HAPI_HUB_URL", &hub.url)
        .env("CLI_API_TOKEN", token)
        .env("HAPI_CLAUDE_PATH", bin("fake-claude"))
        .stdout(std::process::Stdio::piped());
    let mut session = hapi_e2e::Child::spawn("hapi claude", cmd, &dir.path().join("claude.log"));
    let mut line = String::new();
    std::io::BufReader::new(session.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let id = line.trim().to_owned();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let approval = hub.pending_approval(&id).await;
        assert_eq!(approval["tool"], "Bash");
        let (status, _) = hub
            .post(&format!("/api/sessions/{id}/stop"), serde_json::json!({}))
            .await;
        assert_eq!(status, 202);
    });
    let status = session.wait_exit(std::time::Duration::from_secs(30));
    assert!(status.is_some(), "hapi claude exits when its session is stopped");
}
