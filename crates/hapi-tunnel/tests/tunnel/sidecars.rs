//! Tailscale Serve and cloudflared against fake executables that print the
//! real CLIs' documented output (the fixtures in `tests/fixtures/`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hapi_tunnel::{CloudflaredQuick, SearchPath, TailscaleServe, Transport, TunnelError, TunnelProvider, TunnelState};
use tokio::sync::Mutex;

use crate::common::LOCALHOST;

/// Writing an executable while another thread forks can make its exec fail
/// with ETXTBSY; these tests write and run scripts one at a time.
static SCRIPTS: Mutex<()> = Mutex::const_new(());

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const LOCAL: SocketAddr = SocketAddr::new(LOCALHOST, 41_234);

fn install(dir: &Path, name: &str, script: &str) -> PathBuf {
    let path = dir.join(name);
    hapi_testkit::write_executable(&path, script);
    path
}

fn copy_fixture(dir: &Path, fixture: &str, to: &str) {
    std::fs::copy(Path::new(FIXTURES).join(fixture), dir.join(to)).unwrap();
}

fn only(dir: &Path) -> SearchPath {
    SearchPath::Only(dir.as_os_str().to_owned())
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn read_pid(dir: &Path) -> i32 {
    std::fs::read_to_string(dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A `cloudflared` that records its arguments and PID, prints the quick-tunnel
/// log, then runs `tail` (a shell snippet; `exec sleep 600` stays up).
fn fake_cloudflared(dir: &Path, tail: &str) {
    copy_fixture(dir, "cloudflared-quick-tunnel.stderr.txt", "log");
    install(
        dir,
        "cloudflared",
        &format!(
            "#!/bin/sh\nd=$(dirname \"$0\")\necho \"$*\" > \"$d/args\"\necho $$ > \"$d/pid\"\n\
             cat \"$d/log\" >&2\n{tail}\n"
        ),
    );
}

#[tokio::test]
async fn cloudflared_reports_the_quick_tunnel_url_and_is_stopped_by_pid() {
    let _one = SCRIPTS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    fake_cloudflared(dir.path(), "exec sleep 600");
    let cf = CloudflaredQuick::new().with_search_path(only(dir.path()));
    assert_eq!(cf.transport(), Transport::TlsAtProvider);
    assert!(!cf.requires_consent() && cf.consent_notice().is_none());
    assert!(!cf.supports_sse(), "SSE does not pass through quick tunnels");

    let url = cf.start(LOCAL).await.unwrap();
    assert_eq!(url, "https://example-words-quick-tunnel.trycloudflare.com");
    assert_eq!(cf.status().state, TunnelState::Up { public_url: url });
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert_eq!(args.trim(), "tunnel --no-autoupdate --url http://127.0.0.1:41234");
    let pid = read_pid(dir.path());
    assert!(alive(pid));

    cf.stop().await;
    assert!(!alive(pid), "the sidecar is gone after stop");
    assert_eq!(
        cf.status().state,
        TunnelState::Down {
            reason: "stopped".into()
        }
    );
    assert_eq!(cf.status().failures, 0);
}

#[tokio::test]
async fn cloudflared_exiting_after_it_was_up_is_a_counted_loss() {
    let _one = SCRIPTS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    fake_cloudflared(
        dir.path(),
        "sleep 0.3\necho 'ERR edge connection lost: quick tunnel deleted' >&2\nexit 1",
    );
    let cf = CloudflaredQuick::new().with_search_path(only(dir.path()));
    cf.start(LOCAL).await.unwrap();
    let mut status = cf.subscribe();
    let lost = tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| !s.state.is_up()))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert_eq!(lost.failures, 1);
    assert!(
        matches!(&lost.state, TunnelState::Down { reason }
            if reason.contains("exit status: 1") && reason.contains("quick tunnel deleted")),
        "{lost:?}"
    );
    cf.stop().await;
    assert!(matches!(cf.status().state, TunnelState::Down { ref reason } if reason.contains("deleted")));
}

#[tokio::test]
async fn cloudflared_failing_or_hanging_at_startup_is_a_failed_start() {
    let _one = SCRIPTS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    install(
        dir.path(),
        "cloudflared",
        "#!/bin/sh\necho 'ERR failed to request quick Tunnel: 429 Too Many Requests' >&2\nexit 1\n",
    );
    let cf = CloudflaredQuick::new().with_search_path(only(dir.path()));
    let err = cf.start(LOCAL).await.unwrap_err();
    assert!(
        matches!(err, TunnelError::Command { .. }) && !err.is_permanent(),
        "{err:?}"
    );
    assert!(err.to_string().contains("429 Too Many Requests"), "{err}");
    assert_eq!(cf.status().failures, 1);

    let dir = tempfile::tempdir().unwrap();
    install(
        dir.path(),
        "cloudflared",
        "#!/bin/sh\necho $$ > \"$(dirname \"$0\")/pid\"\necho 'INF Requesting new quick Tunnel on trycloudflare.com...' >&2\nexec sleep 600\n",
    );
    let cf = CloudflaredQuick::new()
        .with_search_path(only(dir.path()))
        .with_startup_timeout(Duration::from_millis(500));
    let err = cf.start(LOCAL).await.unwrap_err();
    assert!(matches!(err, TunnelError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("Requesting new quick Tunnel"), "{err}");
    assert!(!alive(read_pid(dir.path())), "a sidecar that timed out is killed");
}

#[tokio::test]
async fn missing_binaries_say_how_to_install_them() {
    let empty = tempfile::tempdir().unwrap();
    let cf = CloudflaredQuick::new().with_search_path(only(empty.path()));
    let err = cf.start(LOCAL).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("`cloudflared` was not found on this computer."),
        "{text}"
    );
    assert!(text.contains("apt-get install cloudflared") && text.contains("brew install cloudflared"));
    assert!(err.is_permanent());
    assert!(matches!(cf.status().state, TunnelState::Failed { ref reason } if *reason == text));

    let ts = TailscaleServe::new().with_search_path(only(empty.path()));
    let err = ts.start(LOCAL).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("`tailscale` was not found on this computer."),
        "{text}"
    );
    assert!(text.contains("tailscale.com/install.sh") && text.contains("brew install tailscale"));
    assert_eq!(err.code(), "tunnel_missing_binary");
}

/// A `tailscale` that logs each call and answers `status --json` from
/// `status.json`; `serve` fails with the text of `serve-error` if present.
fn fake_tailscale(dir: &Path, status_fixture: &str) {
    copy_fixture(dir, status_fixture, "status.json");
    install(
        dir,
        "tailscale",
        "#!/bin/sh\nd=$(dirname \"$0\")\necho \"$*\" >> \"$d/calls\"\ncase \"$1\" in\n\
         status) cat \"$d/status.json\" ;;\n\
         serve) if [ -f \"$d/serve-error\" ]; then cat \"$d/serve-error\" >&2; exit 1; fi ;;\n\
         *) echo \"unknown command $1\" >&2; exit 2 ;;\nesac\n",
    );
}

fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn tailscale_serve_publishes_the_tailnet_name_and_notices_a_logout() {
    let _one = SCRIPTS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    fake_tailscale(dir.path(), "tailscale-status-running.json");
    let ts = TailscaleServe::new()
        .with_search_path(only(dir.path()))
        .with_poll_interval(Duration::from_millis(100));
    assert_eq!(ts.transport(), Transport::TlsAtThisMachine);
    assert!(!ts.requires_consent());

    let url = ts.start(LOCAL).await.unwrap();
    assert_eq!(url, "https://hapi-desk.example-tailnet.ts.net");
    assert_eq!(
        calls(dir.path())[..2],
        ["status --json", "serve --bg --yes --https=443 http://127.0.0.1:41234"]
    );

    copy_fixture(dir.path(), "tailscale-status-needs-login.json", "status.json");
    let mut status = ts.subscribe();
    let lost = tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| !s.state.is_up()))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert_eq!(lost.failures, 1);
    assert!(
        matches!(&lost.state, TunnelState::Down { reason } if reason.contains("logged out")),
        "{lost:?}"
    );

    ts.stop().await;
    assert_eq!(calls(dir.path()).last().unwrap(), "serve --https=443 off");

    // Logged out from the start: not ready, retried (the user may sign in).
    let err = ts.start(LOCAL).await.unwrap_err();
    assert!(
        matches!(err, TunnelError::NotReady { .. }) && !err.is_permanent(),
        "{err:?}"
    );
    assert!(err.to_string().contains("tailscale up"), "{err}");
}

#[tokio::test]
async fn tailscale_access_denied_explains_the_operator_setting() {
    let _one = SCRIPTS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    fake_tailscale(dir.path(), "tailscale-status-running.json");
    std::fs::write(dir.path().join("serve-error"), "Access denied: serve config denied\n").unwrap();
    let ts = TailscaleServe::new()
        .with_search_path(only(dir.path()))
        .with_https_port(8443);
    let err = ts.start(LOCAL).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("serve --bg --yes --https=8443"), "{text}");
    assert!(text.contains("sudo tailscale set --operator=$USER"), "{text}");
    assert_eq!(ts.status().failures, 1);
}
