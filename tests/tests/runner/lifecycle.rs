//! The runner on its own: state and lock files, takeover, re-adoption, pruning,
//! stop and stop-session, autostart.
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::env::*;

#[test]
fn start_writes_state_and_lock_and_a_second_start_exits_at_once() {
    let env = Env::new();
    let out = env.hapi(&["runner", "status"]);
    assert_eq!(out.status.code(), Some(1), "status without a runner");
    assert!(text(&out.stdout).contains("No runner is running"));

    let pid = env.start();
    let state = env.state().unwrap();
    for field in [
        "pid",
        "httpPort",
        "startTime",
        "startedWithCliVersion",
        "startedWithCliMtimeMs",
        "lastHeartbeat",
        "runnerLogPath",
    ] {
        assert!(state.get(field).is_some(), "{field} missing: {state}");
    }
    assert_eq!(state["startedWithCliVersion"], hapi_protocol::VERSION);
    let mtime = std::fs::metadata(&env.hapi).unwrap().modified().unwrap();
    let mtime_ms = mtime.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert_eq!(state["startedWithCliMtimeMs"].as_u64(), Some(mtime_ms));
    for field in ["startTime", "lastHeartbeat"] {
        let t = state[field].as_str().unwrap();
        assert!(
            t.len() >= 20 && t.contains('T') && t.ends_with('Z'),
            "{field} is RFC 3339: {t}"
        );
    }
    let log = state["runnerLogPath"].as_str().unwrap();
    let name = Path::new(log).file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("runner-") && name.ends_with(".log") && name.len() == "runner-YYYYMMDD-HHMMSS.log".len());
    assert!(Path::new(log).starts_with(env.home.join("logs")));

    let lock = std::fs::read_to_string(env.home.join("runner.state.json.lock")).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start_time = stat.rsplit(')').next().unwrap().split_whitespace().nth(19).unwrap();
    assert_eq!(
        lock.trim(),
        format!("{pid} {start_time}"),
        "lock holds PID and start time"
    );
    let mode = std::fs::metadata(env.home.join("runner.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let status = env.ok(&["runner", "status"]);
    for expected in [
        format!("PID:            {pid}"),
        format!("HTTP port:      {}", state["httpPort"]),
        format!("CLI version:    {}", hapi_protocol::VERSION),
        format!("CLI mtime:      {mtime_ms}"),
        "Uptime:".into(),
        "Last heartbeat: ".into(),
        format!("Log:            {log}"),
    ] {
        assert!(status.contains(&expected), "{expected:?} not in:\n{status}");
    }
    assert_eq!(env.ok(&["runner", "logs"]).trim(), log);

    // The heartbeat moves lastHeartbeat.
    let first = state["lastHeartbeat"].clone();
    poll("a heartbeat", Duration::from_secs(15), || {
        (env.state()?["lastHeartbeat"] != first).then_some(())
    });

    let started = Instant::now();
    let again = env.ok(&["runner", "start"]);
    assert!(again.contains(&format!("Runner already running (PID {pid}")), "{again}");
    assert!(started.elapsed() < Duration::from_secs(5), "exits at once");
    assert_eq!(env.runners(), vec![pid], "one runner");

    // The control server wants the token, whatever the peer address.
    let port = state["httpPort"].as_u64().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/list"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = env.control("/stop-session", json!({"id": 1}));
    assert_eq!((status, &body["error"]["code"]), (400, &json!("bad_request")), "{body}");
    let (status, body) = env.control("/spawn-session", json!({"directory": "/no/such/dir"}));
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("directory_outside_roots")),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("/no/such/dir"),
        "{body}"
    );
    env.finish();
}

#[test]
fn bad_runner_env_values_fail_with_a_clear_error() {
    let env = Env::new();
    for (var, value) in [
        ("HAPI_RUNNER_HEARTBEAT_INTERVAL", "abc"),
        ("HAPI_RUNNER_HEARTBEAT_INTERVAL", "10"),
        ("HAPI_RUNNER_HTTP_TIMEOUT", "soon"),
        ("HAPI_WORKSPACE_ROOTS", "/ok:relative/dir"),
    ] {
        let out = env.cmd().args(["runner", "start"]).env(var, value).output().unwrap();
        assert!(!out.status.success(), "{var}={value} accepted");
        let err = text(&out.stderr);
        assert!(err.contains(var) && err.contains(value), "{err}");
    }
    assert!(env.state().is_none(), "no runner was started");
    env.finish();
}

#[test]
fn sessions_survive_kill_9_of_the_runner_and_are_listed_again_after_start() {
    let mut env = Env::new();
    let runner = env.start();
    let (spawned, spawned_pid) = env.spawn_session();

    // A session started by hand in a terminal reports itself too.
    let (mut terminal, terminal_id) = env.terminal_session(false, "terminal.log");

    let mut expected = vec![
        (spawned.clone(), spawned_pid, "runner".to_owned()),
        (
            terminal_id.clone(),
            terminal.pid(),
            "hapi directly - likely by user from terminal".to_owned(),
        ),
    ];
    expected.sort();
    poll("both sessions listed", Duration::from_secs(30), || {
        let mut list = env.list();
        list.sort();
        (list == expected).then_some(())
    });

    kill(Pid::from_raw(runner as i32), Signal::SIGKILL).unwrap();
    poll("the runner to die", Duration::from_secs(10), || {
        (!alive(runner)).then_some(())
    });
    assert!(
        alive(spawned_pid) && alive(terminal.pid()),
        "sessions outlive the runner"
    );

    let new_runner = env.start();
    assert_ne!(new_runner, runner);
    let mut list = env.list();
    list.sort();
    assert_eq!(list, expected, "re-adopted after kill -9");
    let log = std::fs::read_to_string(env.state().unwrap()["runnerLogPath"].as_str().unwrap()).unwrap();
    assert!(log.contains("recovering stale runner lock"), "{log}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for id in [&spawned, &terminal_id] {
            let state = env.hub_state(id).await;
            assert!(
                ["idle", "working"].contains(&state.as_str()),
                "hub sees {id} live: {state}"
            );
        }
    });
    terminal.stop();
    env.finish();
}

#[test]
fn a_touched_binary_makes_the_runner_replace_itself_and_sessions_survive() {
    let mut env = Env::new();
    let old = env.start();
    let (id, pid) = env.spawn_session();
    let old_log = env.state().unwrap()["runnerLogPath"].as_str().unwrap().to_owned();

    let later = SystemTime::now() + Duration::from_secs(3600);
    // Read-only: a running binary cannot be opened for writing, but its owner
    // may still set its times.
    std::fs::File::open(&env.hapi).unwrap().set_modified(later).unwrap();
    let touched_ms = later.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;

    let touched = Instant::now();
    let state = poll("a new runner", Duration::from_secs(60), || {
        let state = env.state()?;
        (state["pid"].as_u64()? as u32 != old && state["startedWithCliMtimeMs"].as_u64()? == touched_ms)
            .then_some(state)
    });
    let took = touched.elapsed();
    eprintln!("replaced after {took:?}");
    // Detection takes at most one heartbeat; the rest is starting the new runner
    // and stopping the old one, slow on a loaded 2-core machine.
    assert!(took < Duration::from_secs(20), "replaced only after {took:?}");
    let new = state["pid"].as_u64().unwrap() as u32;
    poll("the old runner to exit", Duration::from_secs(20), || {
        (!alive(old)).then_some(())
    });
    poll("one runner", Duration::from_secs(20), || {
        (env.runners() == vec![new]).then_some(())
    });
    assert!(alive(pid), "the session survives the takeover");
    assert_eq!(env.list(), vec![(id, pid, "runner".to_owned())]);
    let log = std::fs::read_to_string(&old_log).unwrap();
    assert!(log.contains("version mismatch"), "{log}");
    env.finish();
}

#[test]
fn a_session_killed_from_outside_is_pruned_within_one_heartbeat() {
    let mut env = Env::new();
    env.start();
    let (id, pid) = env.spawn_session();
    assert_eq!(env.list().len(), 1);
    killpg(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    poll("the dead session to be pruned", Duration::from_secs(30), || {
        env.list().is_empty().then_some(())
    });
    let took = killed.elapsed();
    eprintln!("pruned after {took:?}");
    // One heartbeat plus slack for a loaded 2-core machine (the `list` calls included).
    assert!(
        took < Duration::from_millis(HEARTBEAT_MS * 5),
        "{id} pruned after {took:?}"
    );
    env.finish();
}

#[test]
fn two_racing_starts_leave_exactly_one_runner() {
    let env = Env::new();
    let spawn = || {
        env.cmd()
            .args(["runner", "start"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success(), "{a:?}\n{b:?}");
    let pid = env.runner_pid();
    poll("exactly one runner", Duration::from_secs(20), || {
        (env.runners() == vec![pid]).then_some(())
    });
    let outputs = text(&a.stdout) + &text(&b.stdout);
    assert!(outputs.contains(&format!("PID {pid}")), "{outputs}");
    env.finish();
}

#[test]
fn a_stale_lock_left_by_a_dead_pid_is_recovered() {
    let env = Env::new();
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    std::fs::write(env.home.join("runner.state.json.lock"), format!("{dead_pid} 12345\n")).unwrap();
    let out = env.hapi(&["runner", "status"]);
    assert_eq!(out.status.code(), Some(1), "a dead lock is no runner");
    let pid = env.start();
    assert_ne!(pid, dead_pid);
    let log = std::fs::read_to_string(env.state().unwrap()["runnerLogPath"].as_str().unwrap()).unwrap();
    assert!(
        log.contains("recovering stale runner lock") && log.contains("its process is gone"),
        "{log}"
    );
    env.finish();
}

#[test]
fn stop_removes_state_and_lock_and_sessions_keep_running() {
    let mut env = Env::new();
    let runner = env.start();
    let (_, pid) = env.spawn_session();
    let out = env.ok(&["runner", "stop"]);
    assert!(out.contains("Runner stopped"), "{out}");
    assert!(!alive(runner));
    assert!(!env.home.join("runner.state.json").exists());
    assert!(!env.home.join("runner.state.json.lock").exists());
    assert!(alive(pid), "sessions keep running");
    let again = env.ok(&["runner", "stop"]);
    assert!(again.contains("No runner is running"), "{again}");
    let list = env.hapi(&["runner", "list"]);
    assert!(!list.status.success());
    assert!(text(&list.stderr).contains("No runner is running"));
    env.finish();
}

#[test]
fn stop_session_by_id_and_by_pid_and_an_unknown_id_is_an_error() {
    let mut env = Env::new();
    env.start();
    let (first, first_pid) = env.spawn_session();
    let (_, second_pid) = env.spawn_session();
    assert_eq!(env.list().len(), 2);

    let out = env.ok(&["runner", "stop-session", &first]);
    assert!(out.contains("stopped"), "{out}");
    poll("the first session to exit", Duration::from_secs(15), || {
        (!alive(first_pid)).then_some(())
    });
    assert_eq!(env.list().iter().map(|s| s.1).collect::<Vec<_>>(), vec![second_pid]);

    env.ok(&["runner", "stop-session", &format!("PID-{second_pid}")]);
    poll("the second session to exit", Duration::from_secs(15), || {
        (!alive(second_pid)).then_some(())
    });
    assert!(env.list().is_empty());

    let out = env.hapi(&["runner", "stop-session", "no-such-session"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no session no-such-session is tracked"), "{err}");
    let out = env.hapi(&["runner", "stop-session", "PID-1"]);
    assert!(
        !out.status.success(),
        "PID 1 is no tracked session and is never signalled"
    );
    env.finish();
}

#[test]
fn hapi_claude_starts_the_runner_and_reports_itself() {
    let mut env = Env::new();
    let (mut session, id) = env.terminal_session(true, "claude.log");
    let listed = poll(
        "the autostarted runner to list the session",
        Duration::from_secs(30),
        || {
            env.state()?;
            let list = env.list();
            (!list.is_empty()).then_some(list)
        },
    );
    assert_eq!(
        listed,
        vec![(
            id,
            session.pid(),
            "hapi directly - likely by user from terminal".to_owned()
        )]
    );
    session.stop();
    env.finish();
}

/// A runner embedded in an app (the desktop app, in-process) holds the same lock
/// and state file: `hapi runner start` sees it running and leaves it alone, and
/// `hapi runner stop` explains that it belongs to the app.
#[test]
fn an_embedded_runner_is_left_to_its_app() {
    let env = Env::new();
    let rt = rt();
    let config = hapi_runner::RunnerConfig {
        home: env.home.clone(),
        cli_path: env.hapi.clone(),
        cli_version: "0.0.0-app".into(), // another identity than the CLI's
        heartbeat_interval: Duration::from_millis(HEARTBEAT_MS),
        log_path: env.home.join("logs/runner-embedded.log"),
        spawn_timeout: Duration::from_secs(10),
        stop_grace: Duration::from_secs(1),
        workspace_roots: vec![env.dir.path().to_owned()],
        embedded_in: Some("HAPI Desktop".into()),
        sessions: Default::default(),
    };
    let runner = rt.block_on(async {
        match hapi_runner::Runner::start(config, std::sync::Arc::new(hapi_runner::NoHubLink))
            .await
            .unwrap()
        {
            hapi_runner::StartOutcome::Started(runner) => runner,
            hapi_runner::StartOutcome::AlreadyRunning { .. } => panic!("nothing else runs here"),
        }
    });
    let handle = runner.handle();
    let task = rt.spawn(runner.run(std::future::pending()));
    assert_eq!(env.state().unwrap()["embeddedIn"], "HAPI Desktop");

    let out = env.ok(&["runner", "start"]);
    assert!(out.contains("already running in HAPI Desktop"), "{out}");
    assert_eq!(env.runner_pid(), std::process::id(), "not taken over");

    let out = env.hapi(&["runner", "stop"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("belongs to HAPI Desktop") && err.contains("quit HAPI Desktop"),
        "{err}"
    );
    assert_eq!(env.runner_pid(), std::process::id(), "still running");

    handle.request_stop();
    let reason = rt.block_on(task).unwrap().unwrap();
    assert_eq!(reason, hapi_runner::ExitReason::Stopped);
    assert!(env.state().is_none(), "the app's runner cleans up on quit");
    env.finish();
}
