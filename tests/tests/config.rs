//! `hapi config check` (unknown `HAPI_*` variables and bad values), the same
//! check refusing `hapi hub` and `hapi runner start`, and `hapi auth rotate`.
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use hapi_e2e::{Child, Hub, bin};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `hapi` with a clean environment: only PATH, HOME and `HAPI_HOME`.
fn hapi(dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin("hapi"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("HAPI_HOME", dir.join("hapi-home"))
        .env("HAPI_KEYCHAIN", "off")
        .env("HAPI_NO_RUNNER_AUTOSTART", "1")
        .envs(vars.iter().copied())
        .stdin(Stdio::null());
    cmd
}

fn check(dir: &Path, vars: &[(&str, &str)]) -> Output {
    hapi(dir, vars).args(["config", "check"]).output().unwrap()
}

#[test]
fn config_check_names_typos_and_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let ok = check(
        dir.path(),
        &[("HAPI_LISTEN_PORT", "3999"), ("HAPI_SESSION_RESTART", "on-failure:3")],
    );
    let out = text(&ok.stdout);
    assert!(ok.status.success(), "{out}\n{}", text(&ok.stderr));
    assert!(out.starts_with("Configuration OK"), "{out}");
    assert!(out.contains("listens on 127.0.0.1:3999"), "{out}");
    assert!(out.contains("restart on-failure:3"), "{out}");
    assert!(out.contains("HAPI_LISTEN_PORT=3999"), "{out}");

    let typo = check(dir.path(), &[("HAPI_LISTEN_PROT", "3999")]);
    assert_eq!(typo.status.code(), Some(1));
    let err = text(&typo.stderr);
    assert!(
        err.contains("HAPI_LISTEN_PROT is not a HAPI setting (did you mean HAPI_LISTEN_PORT?)"),
        "{err}"
    );
    assert!(typo.stdout.is_empty(), "no summary on failure");

    let bad = check(
        dir.path(),
        &[
            ("HAPI_SESSION_MEMORY_MAX", "2"),
            ("HAPI_RUNNER_HEARTBEAT_INTERVAL", "abc"),
            ("HAPI_DB_SYNC", "sometimes"),
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    let err = text(&bad.stderr);
    for var in [
        "HAPI_SESSION_MEMORY_MAX=\"2\"",
        "HAPI_RUNNER_HEARTBEAT_INTERVAL=\"abc\"",
        "HAPI_DB_SYNC=\"sometimes\"",
    ] {
        assert!(err.contains(var), "{var} not named: {err}");
    }
    assert!(err.contains("3 problems"), "{err}");

    // The secret is never echoed.
    let secret = check(dir.path(), &[("HAPI_METRICS_TOKEN", "0123456789abcdef0123")]);
    assert!(secret.status.success());
    assert!(!text(&secret.stdout).contains("0123456789abcdef0123"));
}

#[test]
fn hub_and_runner_refuse_to_start_with_an_unknown_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = hapi(dir.path(), &[("HAPI_LISTEN_PORT", "0"), ("HAPI_DB_SYNK", "full")]);
    cmd.arg("hub").stdout(Stdio::null());
    let mut hub = Child::spawn("hapi hub", cmd, &dir.path().join("hub.log"));
    let status = hub
        .wait_exit(Duration::from_secs(20))
        .expect("the hub refuses and exits");
    assert!(!status.success());
    let log = std::fs::read_to_string(dir.path().join("hub.log")).unwrap();
    assert!(
        log.contains("HAPI_DB_SYNK is not a HAPI setting (did you mean HAPI_DB_SYNC?)"),
        "{log}"
    );
    assert!(!dir.path().join("hapi-home/hub.json").exists(), "no hub started");

    let out = hapi(dir.path(), &[("HAPI_SESSION_CPU", "2")])
        .args(["runner", "start"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("HAPI_SESSION_CPU is not a HAPI setting"), "{err}");
    assert!(
        !dir.path().join("hapi-home/runner.state.json").exists(),
        "no runner started"
    );
}

#[test]
fn auth_rotate_refuses_while_the_hub_runs_and_rotates_when_it_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = Hub::start(dir.path());
    let old = hub.token.clone();
    let rotate = || hapi(dir.path(), &[]).args(["auth", "rotate"]).output().unwrap();

    let refused = rotate();
    assert_eq!(refused.status.code(), Some(1));
    let err = text(&refused.stderr);
    assert!(
        err.contains(&format!("A hub is running for HAPI_HOME={}", hub.home.display()))
            && err.contains(&format!("(PID {} at {})", hub.process.pid(), hub.url))
            && err.contains("Stop the hub")
            && err.contains("Nothing was changed"),
        "{err}"
    );
    assert!(refused.stdout.is_empty());
    let token_file = hub.home.join("owner.token");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), old);

    hub.process.stop();
    let rotated = rotate();
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    let new = text(&rotated.stdout).trim().to_owned();
    assert_eq!(new.len(), 64, "{new}");
    assert_ne!(new, old);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), new);
    assert!(text(&rotated.stderr).contains("Owner token rotated"));
    let audit = std::fs::read_to_string(hub.home.join("logs/audit.log")).unwrap();
    assert!(audit.contains("\"event\":\"owner_token_rotated\""), "{audit}");
    assert!(!audit.contains(&new), "the audit log never holds the token");

    let again = Hub::start(dir.path());
    assert_eq!(again.token, new);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let status = |token: String| {
            let request = again.http.get(format!("{}/api/sessions", again.url)).bearer_auth(token);
            async move { request.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(status(old.clone()).await, 401, "the old token is refused");
        assert_eq!(status(new.clone()).await, 200, "the new token opens the hub");
        // The rotation is in the hub's audit log too.
        let audit = again.get("/api/audit").await;
        let rotations: Vec<_> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "owner_token_rotated")
            .collect();
        assert_eq!(rotations.len(), 1, "{audit}");
        assert_eq!(rotations[0]["kind"], "admin");
        assert!(!audit.to_string().contains(&new), "the audit log never holds the token");
    });
}
