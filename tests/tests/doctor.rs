//! `hapi doctor` against a real hub and a real runner (a private copy of `hapi`,
//! a temp `HAPI_HOME`, a 1 s heartbeat): it passes while both run, and names a
//! stopped or killed runner, a phone-access tunnel that could not start, a bore
//! tunnel whose relay died, and approvals nobody is shown, each with its fix and
//! its runbook, exiting non-zero.
use std::time::Duration;

use serde_json::{Value, json};

use hapi_e2e::netns::Netns;
use hapi_e2e::{Child, bin, wait_sync};

// The runner tests' environment (hub, private `hapi` copy, cleanup that leaves
// no process behind), shared rather than copied; not every helper is used here.
#[allow(dead_code)]
#[path = "runner/env.rs"]
mod env;

use env::{Env, alive, poll, rt, text};

/// Every check doctor runs, in its order.
const CHECKS: [&str; 10] = [
    "config",
    "hub",
    "owner token",
    "database",
    "runner",
    "sessions",
    "phone access",
    "approvals",
    "backups",
    "disk",
];

/// One check's part of the report: its status, what it found, and the `fix:`
/// and `read:` lines under it.
#[derive(Debug)]
struct Line {
    status: String,
    found: String,
    fix: Option<String>,
    read: Option<String>,
}

/// Runs `hapi doctor`; returns its exit code and report, parsed by check.
fn doctor(env: &Env) -> (i32, String, Vec<(String, Line)>) {
    doctor_with(env, &[])
}

fn doctor_with(env: &Env, args: &[&str]) -> (i32, String, Vec<(String, Line)>) {
    let out = env.hapi(&[&["doctor"], args].concat());
    let report = text(&out.stdout);
    assert!(out.stderr.is_empty(), "doctor wrote to stderr: {}", text(&out.stderr));
    let mut lines: Vec<(String, Line)> = Vec::new();
    // The checks, up to the blank line before the summary.
    for line in report.lines().skip(1).take_while(|l| !l.is_empty()) {
        let rest = line.trim_start();
        if let Some(fix) = rest.strip_prefix("fix: ") {
            lines.last_mut().expect("a fix under a check").1.fix = Some(fix.to_owned());
        } else if let Some(read) = rest.strip_prefix("read: ") {
            lines.last_mut().expect("a runbook under a check").1.read = Some(read.to_owned());
        } else if line.len() > 23 && !line.starts_with(' ') {
            lines.push((
                line[9..23].trim().to_owned(),
                Line {
                    status: line[..8].trim().to_owned(),
                    found: line[23..].to_owned(),
                    fix: None,
                    read: None,
                },
            ));
        }
    }
    let names: Vec<&str> = lines.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(names, CHECKS, "one line per check, in order:\n{report}");
    (out.status.code().expect("an exit code"), report, lines)
}

fn check<'a>(lines: &'a [(String, Line)], name: &str) -> &'a Line {
    &lines.iter().find(|(c, _)| c == name).unwrap().1
}

/// The runbook a finding names exists in this repository.
fn assert_runbook(line: &Line, runbook: &str) {
    let name = runbook.trim_start_matches("docs/runbooks/").trim_end_matches(".md");
    assert_eq!(
        line.read.as_deref(),
        Some(format!("{runbook} (`hapi runbook {name}` prints it)").as_str()),
        "{line:?}"
    );
    let file = std::fs::read_to_string(hapi_e2e::repo().join(runbook)).expect("the runbook exists");
    // Built into the binary, for machines without the repository.
    let out = std::process::Command::new(bin("hapi"))
        .args(["runbook", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "hapi runbook {name}");
    assert_eq!(text(&out.stdout), file, "hapi runbook {name} prints {runbook}");
}

#[test]
fn doctor_passes_with_a_hub_and_a_runner_then_names_a_stopped_and_a_killed_runner() {
    let env = Env::new();
    let rt = rt();
    let first = env.start();
    rt.block_on(env.online_machine());

    let (code, report, lines) = doctor(&env);
    assert_eq!(code, 0, "{report}");
    for (name, line) in &lines {
        assert!(
            matches!(line.status.as_str(), "ok" | "warning"),
            "{name} is {}:\n{report}",
            line.status
        );
    }
    let runner = check(&lines, "runner");
    assert_eq!(runner.status, "ok", "{report}");
    assert!(runner.found.starts_with(&format!("PID {first} runs")), "{report}");
    assert!(runner.found.contains("linked to the hub"), "{report}");
    assert!(runner.found.contains("every 1 s, from its log"), "{report}");
    assert_eq!(check(&lines, "hub").status, "ok", "{report}");
    assert!(
        check(&lines, "owner token").found.contains("the hub accepts it"),
        "{report}"
    );
    assert!(
        check(&lines, "database")
            .found
            .starts_with("/ready: a probe write committed"),
        "{report}"
    );
    assert_eq!(check(&lines, "phone access").found, "off", "{report}");

    // The same findings as JSON.
    let out = env.hapi(&["doctor", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(json["status"], "problem", "{json}");
    let checks = json["checks"].as_array().unwrap();
    assert_eq!(checks.len(), CHECKS.len(), "{json}");
    assert_eq!(checks[4]["check"], "runner");
    assert_eq!(checks[4]["status"], "ok", "{json}");

    // Stopped on purpose: a problem, with the command that starts it again.
    env.ok(&["runner", "stop"]);
    let (code, report, lines) = doctor(&env);
    assert_eq!(code, 1, "{report}");
    let runner = check(&lines, "runner");
    assert_eq!(runner.status, "problem", "{report}");
    assert!(
        runner.found.starts_with("no runner is running for this HAPI_HOME"),
        "{report}"
    );
    assert!(
        runner.fix.as_deref().unwrap().contains("`hapi runner start`"),
        "{report}"
    );
    assert_runbook(runner, "docs/runbooks/runner-wont-start.md");
    assert_eq!(check(&lines, "sessions").status, "skipped", "{report}");
    assert_eq!(check(&lines, "hub").status, "ok", "only the runner is wrong:\n{report}");
    assert!(report.contains("\n1 problem, "), "{report}");

    // Killed: the state file it left names it, and the hub lost its link.
    let killed = env.start();
    assert_ne!(killed, first);
    rt.block_on(env.online_machine());
    let (code, report, _) = doctor(&env);
    assert_eq!(code, 0, "running again:\n{report}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(killed as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    poll("the killed runner to be gone", Duration::from_secs(10), || {
        (!alive(killed)).then_some(())
    });
    let (code, report, lines) = doctor(&env);
    assert_eq!(code, 1, "{report}");
    let runner = check(&lines, "runner");
    assert_eq!(runner.status, "problem", "{report}");
    assert!(
        runner
            .found
            .contains(&format!("the last one (PID {killed}) is gone without a shutdown")),
        "{report}"
    );
    assert!(runner.found.contains("crashed or was killed"), "{report}");
    assert!(
        runner.fix.as_deref().unwrap().contains("`hapi runner start`"),
        "{report}"
    );
    assert_runbook(runner, "docs/runbooks/runner-wont-start.md");
    env.finish();
}

#[test]
fn doctor_reports_a_tunnel_that_could_not_start_with_its_cause_and_runbook() {
    let env = Env::new();
    let rt = rt();
    env.start();
    rt.block_on(env.online_machine());

    // Phone access on the loopback "LAN", on a port another process holds: the
    // remote listener cannot bind, so phone access is dead (failed).
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let hub = env.hub.as_ref().unwrap();
    let set_remote = |provider: Value, consent: Value| {
        rt.block_on(async {
            let r = hub
                .http
                .put(format!("{}/api/remote", hub.url))
                .bearer_auth(&hub.token)
                .json(&json!({"provider": provider, "plaintext_consent": consent}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    let consent = rt.block_on(hub.get("/api/remote/consent?kind=lan&bind=127.0.0.1"));
    let (status, body) = set_remote(
        json!({"kind": "lan", "bind": "127.0.0.1", "port": port}),
        consent["notice"].clone(),
    );
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "tunnel_failed", "{body}");
    assert_eq!(rt.block_on(hub.get("/api/remote"))["state"], "failed");

    let (code, report, lines) = doctor(&env);
    assert_eq!(code, 1, "{report}");
    let phone = check(&lines, "phone access");
    assert_eq!(phone.status, "problem", "{report}");
    assert!(phone.found.contains("could not start and is not retried"), "{report}");
    assert!(
        phone.found.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "the provider's reason: {report}"
    );
    let fix = phone.fix.as_deref().unwrap();
    assert!(fix.contains(&format!("ss -ltnp | grep :{port}")), "{report}");
    assert!(fix.contains("turn phone access off and on again"), "{report}");
    assert_runbook(phone, "docs/runbooks/tunnel-or-relay-down.md");
    let problems: Vec<&str> = lines
        .iter()
        .filter(|(_, l)| l.status == "problem")
        .map(|(c, _)| c.as_str())
        .collect();
    assert_eq!(problems, ["phone access"], "{report}");

    // JSON says the same.
    let json: Value = serde_json::from_slice(&env.hapi(&["doctor", "--json"]).stdout).unwrap();
    assert_eq!(json["status"], "problem");
    let phone = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "phone access")
        .unwrap();
    assert_eq!(phone["status"], "problem", "{json}");
    assert_eq!(phone["runbook"], "docs/runbooks/tunnel-or-relay-down.md", "{json}");

    // Turned off, phone access is fine again: the finding follows the hub.
    let (status, body) = set_remote(Value::Null, Value::Null);
    assert_eq!((status, &body["state"]), (200, &json!("off")), "{body}");
    let (code, report, lines) = doctor(&env);
    assert_eq!(code, 0, "{report}");
    assert_eq!(check(&lines, "phone access").found, "off", "{report}");
    drop(holder);
    env.finish();
}

#[test]
fn doctor_says_pending_approvals_reach_nobody_until_someone_follows_the_hub() {
    let env = Env::new();
    let rt = rt();
    env.start();
    let machine = rt.block_on(env.online_machine());
    // New session in a directory that does not exist yet: the hub asks first
    // (a machine-scoped approval), and nothing follows its events.
    let missing = env.dir.path().join("not-yet");
    let (status, body) = rt.block_on(env.hub_spawn(&machine, json!({"agent": "claude", "cwd": missing})));
    assert_eq!(status, 202, "{body}");

    let (code, report, lines) = doctor_with(&env, &["--approval-wait", "0"]);
    assert_eq!(code, 1, "{report}");
    let approvals = check(&lines, "approvals");
    assert_eq!(approvals.status, "problem", "{report}");
    assert!(approvals.found.starts_with("1 pending, the oldest for "), "{report}");
    assert!(
        approvals
            .found
            .contains("0 event follower(s) connected (hapi_event_clients)"),
        "{report}"
    );
    assert!(approvals.found.contains("reach nobody"), "{report}");
    let hub = env.hub.as_ref().unwrap();
    assert!(approvals.fix.as_deref().unwrap().contains(&hub.url), "{report}");
    assert_runbook(approvals, "docs/runbooks/approvals-not-arriving.md");

    // A UI following the events (an SSE stream held open, from now on as the
    // UI follows after loading its lists): someone is shown them and has not
    // answered yet, which is a warning, not a lost approval.
    let stream = rt
        .block_on(
            hub.http
                .get(format!("{}/api/events?after=latest", hub.url))
                .bearer_auth(&hub.token)
                .send(),
        )
        .unwrap();
    assert!(stream.status().is_success());
    let metrics = rt.block_on(async {
        let r = hub
            .http
            .get(format!("{}/metrics", hub.url))
            .bearer_auth(&hub.token)
            .send();
        r.await.unwrap().text().await.unwrap()
    });
    assert!(
        metrics.contains("hapi_event_clients{transport=\"sse\"} 1\n"),
        "{metrics}"
    );
    let (code, report, lines) = doctor_with(&env, &["--approval-wait", "0"]);
    assert_eq!(code, 0, "{report}");
    let approvals = check(&lines, "approvals");
    assert_eq!(approvals.status, "warning", "{report}");
    assert!(approvals.found.contains("1 event follower(s) connected"), "{report}");

    // With the default wait (10 minutes) a fresh request is simply pending.
    let (code, report, lines) = doctor(&env);
    assert_eq!(code, 0, "{report}");
    assert_eq!(check(&lines, "approvals").status, "ok", "{report}");
    drop(stream);
    env.finish();
}

/// Phone access through a real bore relay (the workspace's `bore-relay`, a
/// `bore server`) that then dies: the tunnel is down and reconnecting, and
/// doctor says so with the relay to check. The relay runs in a network
/// namespace of its own, so its fixed control port (7835) meets no other test;
/// the hub, the runner and doctor run in a second one wired to it.
#[test]
fn doctor_reports_a_bore_tunnel_down_when_its_relay_dies() {
    const RELAY_IP: &str = "10.79.1.1";
    let id = std::process::id();
    let relay_ns = Netns::create(&format!("hapi-{id}-doctor-relay"));
    let desktop_ns = Netns::create(&format!("hapi-{id}-doctor-desktop"));
    relay_ns.veth("to-desktop", &desktop_ns, "to-relay");
    relay_ns.address("to-desktop", &format!("{RELAY_IP}/24"));
    desktop_ns.address("to-relay", "10.79.1.2/24");

    let logs = tempfile::tempdir().unwrap();
    let mut relay_cmd = relay_ns.command(bin("bore-relay"));
    relay_cmd
        .args(["--min-port", "47400", "--max-port", "47499"])
        .stdout(std::process::Stdio::null());
    let mut relay = Child::spawn("bore-relay", relay_cmd, &logs.path().join("bore-relay.log"));
    let control = format!("{RELAY_IP}:7835").parse().unwrap();
    wait_sync("the bore server", Duration::from_secs(30), || {
        desktop_ns.can_connect(control, Duration::from_secs(1)).ok()
    });

    desktop_ns.enter(|| {
        let env = Env::new();
        let rt = rt();
        env.start();
        rt.block_on(env.online_machine());
        let hub = env.hub.as_ref().unwrap();
        let remote = rt.block_on(async {
            let consent = hub.get(&format!("/api/remote/consent?kind=bore&host={RELAY_IP}")).await;
            let r = hub
                .http
                .put(format!("{}/api/remote", hub.url))
                .bearer_auth(&hub.token)
                .json(&json!({"provider": {"kind": "bore", "host": RELAY_IP}, "plaintext_consent": consent["notice"]}))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        });
        assert_eq!(remote["state"], "up", "{remote}");
        let public_url = remote["public_url"].as_str().unwrap().to_owned();

        let (code, report, lines) = doctor(&env);
        assert_eq!(code, 0, "{report}");
        let phone = check(&lines, "phone access");
        assert_eq!(phone.status, "ok", "{report}");
        assert_eq!(
            phone.found,
            format!("up through bore (server {RELAY_IP}) at {public_url} (0 failure(s) since it was turned on)")
        );

        // The relay dies; the hub's tunnel notices at once and keeps retrying.
        relay.stop();
        rt.block_on(hapi_e2e::wait("phone access to be down", || async {
            let remote = hub.get("/api/remote").await;
            (remote["state"] == "down").then_some(())
        }));
        let (code, report, lines) = doctor(&env);
        assert_eq!(code, 1, "{report}");
        let phone = check(&lines, "phone access");
        assert_eq!(phone.status, "problem", "{report}");
        assert!(
            phone.found.starts_with(&format!(
                "bore (server {RELAY_IP}) tunnel is down, reconnecting by itself: "
            )),
            "{report}"
        );
        assert!(!phone.found.contains("(0 failure(s)"), "the loss is counted: {report}");
        let fix = phone.fix.as_deref().unwrap();
        assert!(fix.contains(&format!("nc -vz {RELAY_IP} 7835")), "{report}");
        assert!(fix.contains("hapi_tunnel_up"), "{report}");
        assert_runbook(phone, "docs/runbooks/tunnel-or-relay-down.md");
        let problems: Vec<&str> = lines
            .iter()
            .filter(|(_, l)| l.status == "problem")
            .map(|(c, _)| c.as_str())
            .collect();
        assert_eq!(problems, ["phone access"], "{report}");
        env.finish();
    });
}
