//! The runner daemon, process level: real `hapi` binaries (a private copy per
//! test, so touching its mtime disturbs no other test), a temp `HAPI_HOME`, a
//! real hub, sessions running `fake-claude`, and a 1 s heartbeat.
//!
//! Sessions the runner spawns are not children of the test: each test kills the
//! ones it knows by PID (process group) and finally checks that no process
//! started with its `HAPI_HOME` is left.
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use hapi_e2e::{Hub, bin, cmdline, pids_with_env};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

const HEARTBEAT_MS: u64 = 1000;

struct Env {
    dir: tempfile::TempDir,
    home: PathBuf,
    hapi: PathBuf,
    hub: Option<Hub>,
    /// PIDs of sessions this test started or saw.
    sessions: Vec<u32>,
}

fn poll<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
    !state.starts_with(['Z', 'X'])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A request to the control server of the runner of `home`.
fn control_at(home: &Path, path: &str, body: Value) -> (u16, Value) {
    let state: Value = serde_json::from_str(&std::fs::read_to_string(home.join("runner.state.json")).unwrap()).unwrap();
    let port = state["httpPort"].as_u64().unwrap();
    let token = std::fs::read_to_string(home.join("runner.token")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}{path}"))
            .bearer_auth(token.trim())
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    })
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::start(dir.path());
        let home = hub.home.clone();
        let hapi = dir.path().join("bin/hapi");
        std::fs::create_dir_all(hapi.parent().unwrap()).unwrap();
        std::fs::copy(bin("hapi"), &hapi).unwrap();
        Env {
            dir,
            home,
            hapi,
            hub: Some(hub),
            sessions: Vec::new(),
        }
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new(&self.hapi);
        cmd.env("HAPI_HOME", &self.home)
            .env("HAPI_RUNNER_HEARTBEAT_INTERVAL", HEARTBEAT_MS.to_string())
            .env("HAPI_NO_RUNNER_AUTOSTART", "1")
            .env("HAPI_CLAUDE_PATH", bin("fake-claude"))
            // The temp dir is outside $HOME, the default workspace root.
            .env("HAPI_WORKSPACE_ROOTS", self.dir.path())
            .env_remove("CLI_API_TOKEN")
            .env_remove("HAPI_HUB_URL")
            .env_remove("HAPI_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    fn hapi(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.hapi(args);
        assert!(
            out.status.success(),
            "hapi {args:?} failed: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn state(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.home.join("runner.state.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn runner_pid(&self) -> u32 {
        self.state().expect("state file")["pid"].as_u64().unwrap() as u32
    }

    /// Runner processes (foreground runners) of this home.
    fn runners(&self) -> Vec<u32> {
        pids_with_env("HAPI_HOME", self.home.to_str().unwrap())
            .into_iter()
            .filter(|&pid| cmdline(pid).contains("runner start --foreground"))
            .collect()
    }

    fn start(&self) -> u32 {
        let out = self.ok(&["runner", "start"]);
        assert!(out.contains("Runner started (PID"), "{out}");
        self.runner_pid()
    }

    /// `runner list`, parsed: (session id, pid, started by).
    fn list(&self) -> Vec<(String, u32, String)> {
        let out = self.ok(&["runner", "list"]);
        let mut lines = out.lines();
        let header = lines.next().unwrap_or_default();
        assert!(header.starts_with("Active Sessions ("), "{out}");
        let sessions: Vec<_> = lines
            .map(|line| {
                let rest = line
                    .strip_prefix("  - Session: ")
                    .unwrap_or_else(|| panic!("bad line {line:?}"));
                let (id, rest) = rest.split_once("  PID: ").unwrap();
                let (pid, by) = rest.split_once("  Started by: ").unwrap();
                (id.to_owned(), pid.parse().unwrap(), by.to_owned())
            })
            .collect();
        assert_eq!(header, format!("Active Sessions ({}):", sessions.len()));
        sessions
    }

    fn control(&self, path: &str, body: Value) -> (u16, Value) {
        control_at(&self.home, path, body)
    }

    /// Has the runner spawn a `hapi claude` session; returns (id, pid).
    fn spawn_session(&mut self) -> (String, u32) {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let (status, body) = self.control("/spawn-session", json!({"directory": work, "prompt": "do it"}));
        assert_eq!(status, 200, "{body}");
        let pid = body["pid"].as_u64().unwrap() as u32;
        self.sessions.push(pid);
        (body["sessionId"].as_str().unwrap().to_owned(), pid)
    }

    async fn hub_state(&self, id: &str) -> String {
        let v = self.hub.as_ref().unwrap().get(&format!("/api/sessions/{id}")).await;
        let s = if v.get("session").is_some() { &v["session"] } else { &v };
        s["state"].as_str().unwrap_or_default().to_owned()
    }

    /// Stops everything this test started and checks nothing is left.
    fn finish(mut self) {
        self.cleanup();
        let home = self.home.to_str().unwrap().to_owned();
        let left = poll(
            "every process of this HAPI_HOME to exit",
            Duration::from_secs(20),
            || {
                let left = pids_with_env("HAPI_HOME", &home);
                left.is_empty().then_some(left)
            },
        );
        assert!(left.is_empty());
    }

    fn cleanup(&mut self) {
        for pid in self.sessions.drain(..) {
            if alive(pid) {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
        }
        if let Some(state) = self.state() {
            let pid = state["pid"].as_u64().unwrap() as i32;
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        drop(self.hub.take());
        // Whatever is still there after a grace period (a failed test) is killed.
        let home = self.home.to_str().unwrap().to_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pids_with_env("HAPI_HOME", &home).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for pid in pids_with_env("HAPI_HOME", &home) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.cleanup();
    }
}

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
    let work = env.dir.path().join("work");
    let mut cmd = env.cmd();
    cmd.args(["claude", "--prompt", "do it", "--cwd"])
        .arg(&work)
        .stdout(Stdio::piped());
    let mut terminal = hapi_e2e::Child::spawn("hapi claude", cmd, &env.dir.path().join("terminal.log"));
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(terminal.child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let terminal_id = line.trim().to_owned();
    env.sessions.push(terminal.pid());

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
    let work = env.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = env.cmd();
    cmd.env_remove("HAPI_NO_RUNNER_AUTOSTART")
        .args(["claude", "--prompt", "do it", "--cwd"])
        .arg(&work)
        .stdout(Stdio::piped());
    let mut session = hapi_e2e::Child::spawn("hapi claude", cmd, &env.dir.path().join("claude.log"));
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(session.child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let id = line.trim().to_owned();
    env.sessions.push(session.pid());
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

/// Issue 3's end-to-end path: the hub's API starts a real Claude Code session on
/// this machine through the runner's link, and it is prompted, approved and done.
#[test]
fn the_hub_starts_a_real_claude_session_through_the_runner() {
    let mut env = Env::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let model = rt
        .block_on(hapi_testkit::start_fake_anthropic(hapi_testkit::Script::default()))
        .unwrap();
    let agent_home = env.dir.path().join("agent-home");
    std::fs::create_dir_all(&agent_home).unwrap();
    // The runner's environment is what its sessions inherit.
    let out = env
        .cmd()
        .args(["runner", "start"])
        .env("HAPI_CLAUDE_PATH", hapi_e2e::claude_path())
        .env("HOME", &agent_home)
        .env("ANTHROPIC_BASE_URL", model.url())
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env_remove("IS_SANDBOX")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let runner = env.runner_pid();
    let work = env.dir.path().join("remote-work");
    std::fs::create_dir_all(&work).unwrap();

    let hub = env.hub.take().unwrap();
    let (session_id, machine_id) = rt.block_on(async {
        // The runner links this machine to the hub.
        let machine = hapi_e2e::wait("the machine to come online", || async {
            let list = hub.get("/api/machines").await;
            list["machines"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["state"] == "online")
                .cloned()
        })
        .await;
        assert_eq!(machine["runner"]["pid"], runner);
        let machine_id = machine["id"].as_str().unwrap().to_owned();

        let (status, body) = hub
            .post(
                &format!("/api/machines/{machine_id}/sessions"),
                json!({"agent": "claude", "cwd": work, "prompt": "do it"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let session_id = body["session_id"].as_str().unwrap().to_owned();

        let approval = hub.pending_approval(&session_id).await;
        let (status, _) = hub
            .post(
                &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
                json!({"decision": "allow_once"}),
            )
            .await;
        assert_eq!(status, 200);
        let messages = hub.wait_turns(&session_id, 1).await;
        assert_eq!(
            hapi_e2e::agent_texts(&messages).last().unwrap(),
            "Done: wrote hello to out.txt."
        );

        // A directory outside the workspace roots is refused with the runner's reason.
        let (status, body) = hub
            .post(
                &format!("/api/machines/{machine_id}/sessions"),
                json!({"agent": "claude", "cwd": "/"}),
            )
            .await;
        assert!(status >= 400, "{status} {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("outside this machine's workspace roots"),
            "{body}"
        );
        (session_id, machine_id)
    });
    assert_eq!(std::fs::read_to_string(work.join("out.txt")).unwrap(), "hello\n");
    let listed = env.list();
    assert!(
        listed.iter().any(|(id, _, by)| id == &session_id && by == "runner"),
        "{listed:?}"
    );
    env.sessions.extend(listed.iter().map(|(_, pid, _)| *pid));

    // Stopping the runner tells the hub; the session keeps running.
    env.ok(&["runner", "stop"]);
    rt.block_on(async {
        hapi_e2e::wait("the machine to go offline", || async {
            let m = hub.get(&format!("/api/machines/{machine_id}")).await;
            (m["machine"]["state"] != "online").then_some(())
        })
        .await;
        let s = hub.get(&format!("/api/sessions/{session_id}")).await;
        assert_eq!(s["session"]["state"], "idle", "the session outlives its runner");
    });
    env.hub = Some(hub);
    rt.block_on(model.shutdown());
    env.finish();
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

impl Env {
    /// The id of this runner's machine, once the hub shows it online.
    async fn online_machine(&self) -> String {
        let hub = self.hub.as_ref().unwrap();
        let machine = hapi_e2e::wait("the machine to come online", || async {
            let list = hub.get("/api/machines").await;
            list["machines"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["state"] == "online")
                .cloned()
        })
        .await;
        machine["id"].as_str().unwrap().to_owned()
    }

    /// `POST /api/machines/{id}/sessions` on the hub.
    async fn hub_spawn(&self, machine: &str, body: Value) -> (u16, Value) {
        let hub = self.hub.as_ref().unwrap();
        hub.post(&format!("/api/machines/{machine}/sessions"), body).await
    }

    /// Records the PIDs of the sessions the runner lists, for cleanup.
    fn adopt_listed(&mut self) -> Vec<(String, u32, String)> {
        let listed = self.list();
        self.sessions.extend(listed.iter().map(|(_, pid, _)| *pid));
        listed
    }
}

fn error_of(body: &Value) -> (String, String) {
    (
        body["error"]["code"].as_str().unwrap_or_default().to_owned(),
        body["error"]["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The control server's `spawn-session` checks the directory: a missing one is
/// `directory_missing` unless `createDirectory` is set, a file in the way is
/// `directory_unusable`, and nothing outside the workspace roots (the test's temp
/// dir here) is used, whether reached by `..` or through a symlink.
#[test]
fn spawn_session_checks_the_directory_and_creates_it_only_when_asked() {
    let mut env = Env::new();
    env.start();
    let root = env.dir.path().to_owned();

    let missing = root.join("new/project");
    let (status, body) = env.control("/spawn-session", json!({"directory": missing}));
    let (code, message) = error_of(&body);
    assert_eq!((status, code.as_str()), (422, "directory_missing"), "{body}");
    assert!(message.contains(missing.to_str().unwrap()), "names the path: {message}");
    assert!(!missing.exists(), "nothing is created without createDirectory");

    let (status, body) = env.control(
        "/spawn-session",
        json!({"directory": missing, "createDirectory": true, "prompt": "do it"}),
    );
    assert_eq!(status, 200, "{body}");
    env.sessions.push(body["pid"].as_u64().unwrap() as u32);
    assert!(missing.is_dir(), "created");
    assert_eq!(body["directory"], json!(missing.canonicalize().unwrap()));
    assert_eq!(env.list().len(), 1);

    let file = root.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    for (path, create) in [(file.clone(), false), (file.clone(), true), (file.join("sub"), true)] {
        let (status, body) = env.control("/spawn-session", json!({"directory": path, "createDirectory": create}));
        let (code, message) = error_of(&body);
        assert_eq!((status, code.as_str()), (422, "directory_unusable"), "{body}");
        assert!(message.contains("a file exists"), "{message}");
        assert!(message.contains(path.to_str().unwrap()), "{message}");
    }

    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("escape")).unwrap();
    let outside_name = outside.path().file_name().unwrap().to_str().unwrap();
    for path in [
        PathBuf::from("/"),
        root.join("..").join(outside_name),
        root.join("new/../..").join(outside_name).join("made"),
        root.join("escape"),
        root.join("escape/made"),
    ] {
        let (status, body) = env.control("/spawn-session", json!({"directory": path, "createDirectory": true}));
        let (code, message) = error_of(&body);
        assert_eq!(
            (status, code.as_str()),
            (422, "directory_outside_roots"),
            "{}: {body}",
            path.display()
        );
        assert!(message.contains(root.to_str().unwrap()), "lists the roots: {message}");
    }
    assert!(
        !outside.path().join("made").exists(),
        "nothing created outside the roots"
    );
    assert_eq!(env.list().len(), 1, "no session started for a refused directory");
    env.finish();
}

/// Through the hub's API: the runner's directory codes reach the hub, a missing
/// directory is created after approval, and a worktree spawn runs the session in
/// a new git worktree on a new branch.
#[test]
fn the_hub_spawns_through_the_runner_with_directory_checks_and_worktrees() {
    let mut env = Env::new();
    env.start();
    let rt = rt();
    let root = env.dir.path().canonicalize().unwrap();
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    git(&repo, &["init", "-q"]);
    git(
        &repo,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "init",
        ],
    );
    std::fs::write(root.join("a-file"), "x").unwrap();

    let worktree = root.join("repo-worktrees/feature/remote");
    let session = rt.block_on(async {
        let machine = env.online_machine().await;
        // An existing directory.
        let (status, body) = env
            .hub_spawn(&machine, json!({"agent": "claude", "cwd": repo, "prompt": "do it"}))
            .await;
        assert_eq!(status, 201, "{body}");

        // The runner's codes and messages reach the hub's API.
        let (status, body) = env.hub_spawn(&machine, json!({"agent": "claude", "cwd": "/"})).await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (422, "directory_outside_roots"),
            "{body}"
        );
        let (status, body) = env
            .hub_spawn(&machine, json!({"agent": "claude", "cwd": root.join("a-file")}))
            .await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (422, "directory_unusable"),
            "{body}"
        );
        assert!(error_of(&body).1.contains("a file exists"), "{body}");

        // A missing directory needs approval; once allowed it is created.
        let missing = root.join("later/project");
        let (status, body) = env
            .hub_spawn(&machine, json!({"agent": "claude", "cwd": missing, "prompt": "do it"}))
            .await;
        assert_eq!(status, 202, "{body}");
        assert!(!missing.exists());
        let approval = body["approval"]["id"].as_str().unwrap().to_owned();
        let hub = env.hub.as_ref().unwrap();
        let (status, body) = hub
            .post(&format!("/api/approvals/{approval}"), json!({"decision": "allow_once"}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(body["session_id"].is_string(), "{body}");
        assert!(missing.is_dir(), "created after approval");

        // Worktrees: bad branch names, a directory that is no repository, then one that works.
        let (status, body) = env
            .hub_spawn(
                &machine,
                json!({"agent": "claude", "cwd": repo, "worktree_branch": "bad..name"}),
            )
            .await;
        assert_eq!((status, error_of(&body).0.as_str()), (422, "worktree_failed"), "{body}");
        assert!(error_of(&body).1.contains("not a valid branch name"), "{body}");
        let (status, body) = env
            .hub_spawn(
                &machine,
                json!({"agent": "claude", "cwd": missing, "worktree_branch": "x"}),
            )
            .await;
        assert_eq!((status, error_of(&body).0.as_str()), (422, "worktree_failed"), "{body}");
        assert!(error_of(&body).1.contains("not inside a git repository"), "{body}");

        let (status, body) = env
            .hub_spawn(
                &machine,
                json!({"agent": "claude", "cwd": repo, "prompt": "do it", "worktree_branch": "feature/remote"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["session_id"].as_str().unwrap().to_owned();
        let session = hub.get(&format!("/api/sessions/{id}")).await;
        assert_eq!(session["session"]["cwd"], json!(worktree), "{session}");

        // The same branch again: git refuses, and says why.
        let (status, body) = env
            .hub_spawn(
                &machine,
                json!({"agent": "claude", "cwd": repo, "worktree_branch": "feature/remote"}),
            )
            .await;
        assert_eq!((status, error_of(&body).0.as_str()), (422, "worktree_failed"), "{body}");
        id
    });
    assert!(worktree.join(".git").is_file(), "a linked worktree");
    assert!(git(&repo, &["branch", "--list", "feature/remote"]).contains("feature/remote"));
    assert!(git(&repo, &["worktree", "list"]).contains(worktree.to_str().unwrap()));
    let listed = env.adopt_listed();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().any(|(id, _, by)| id == &session && by == "runner"));
    env.finish();
}

/// One hub per `HAPI_HOME`: a second `hapi hub` exits with the running hub's
/// URL, and a lock and hub.json left by a dead hub do not stop a new one.
#[test]
fn a_second_hub_on_the_same_home_is_refused_and_a_dead_ones_files_are_not() {
    let mut env = Env::new();
    let url = env.hub.as_ref().unwrap().url.clone();
    let started = Instant::now();
    let out = env
        .cmd()
        .arg("hub")
        .env("HAPI_LISTEN_PORT", "0")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a second hub was started");
    let err = text(&out.stderr);
    let expected = format!("A hub is already running for HAPI_HOME={} at {url}", env.home.display());
    assert!(err.contains(&expected), "{expected:?} not in:\n{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "refused at once");
    assert!(env.home.join("hub.lock").exists(), "the running hub keeps its lock");

    // The hub stops and cleans up after itself.
    drop(env.hub.take());
    poll("the hub's lock to go", Duration::from_secs(10), || {
        (!env.home.join("hub.lock").exists() && !env.home.join("hub.json").exists()).then_some(())
    });

    // A dead hub's files are stale.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    std::fs::write(env.home.join("hub.lock"), format!("{dead_pid} 12345\n")).unwrap();
    std::fs::write(
        env.home.join("hub.json"),
        json!({"url": "http://127.0.0.1:9", "pid": dead_pid, "started_at": "2026-01-01T00:00:00Z"}).to_string(),
    )
    .unwrap();
    let mut cmd = env.cmd();
    cmd.arg("hub").env("HAPI_LISTEN_PORT", "0").stdout(Stdio::null());
    let mut hub = hapi_e2e::Child::spawn("hapi hub", cmd, &env.dir.path().join("hub2.log"));
    let state = poll("the new hub's hub.json", Duration::from_secs(30), || {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(env.home.join("hub.json")).ok()?).ok()?;
        (v["pid"] == hub.pid()).then_some(v)
    });
    assert_ne!(state["url"], "http://127.0.0.1:9");
    let lock = std::fs::read_to_string(env.home.join("hub.lock")).unwrap();
    assert!(lock.starts_with(&format!("{} ", hub.pid())), "{lock}");
    hub.stop();
    assert!(!env.home.join("hub.lock").exists(), "released on exit");
    env.finish();
}

/// EACCES needs a runner that permissions apply to, and root ignores them. So
/// the whole runner runs as `nobody` (uid 65534, through util-linux `setpriv`)
/// with its own world-traversable temp dir, a `HAPI_HOME` owned by nobody and a
/// root-owned 0700 directory it is asked to use and to create a directory in.
/// Running the real runner (rather than only the errno mapping, which the
/// runner's unit tests cover) checks the message end to end. It needs root and
/// util-linux's `setpriv` (as on CI); without them it fails rather than pass
/// without testing anything.
#[test]
fn a_directory_the_runner_may_not_use_is_refused_with_permission_denied() {
    use std::os::unix::fs::MetadataExt as _;
    let is_root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    let has_setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        is_root && has_setpriv,
        "this test runs a runner as an unprivileged user: it needs root and `setpriv` (util-linux)"
    );
    let base = tempfile::tempdir().unwrap();
    let dir = base.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let hapi = dir.join("bin/hapi");
    std::fs::create_dir_all(hapi.parent().unwrap()).unwrap();
    std::fs::copy(bin("hapi"), &hapi).unwrap();
    std::fs::set_permissions(&hapi, std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = dir.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();

    let hapi_as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&hapi)
            .args(args)
            .current_dir(dir)
            .env("HAPI_HOME", &home)
            .env("HOME", &home)
            .env("HAPI_WORKSPACE_ROOTS", dir)
            .env("HAPI_NO_RUNNER_AUTOSTART", "1")
            .env("HAPI_RUNNER_HEARTBEAT_INTERVAL", HEARTBEAT_MS.to_string())
            .env_remove("CLI_API_TOKEN")
            .env_remove("HAPI_HUB_URL")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Whatever happens, nothing of this home outlives the test.
    struct KillLeftovers(String);
    impl Drop for KillLeftovers {
        fn drop(&mut self) {
            for pid in pids_with_env("HAPI_HOME", &self.0) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
    let _guard = KillLeftovers(home.to_str().unwrap().to_owned());
    let out = hapi_as_nobody(&["runner", "start"]);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let state: Value = serde_json::from_str(&std::fs::read_to_string(home.join("runner.state.json")).unwrap()).unwrap();
    let runner = state["pid"].as_u64().unwrap() as u32;
    let uid = std::fs::metadata(format!("/proc/{runner}")).unwrap().uid();
    assert_eq!(uid, 65534, "the runner runs as nobody");

    for (path, create) in [
        (locked.join("sub"), true),
        (locked.join("sub"), false),
        (locked.clone(), false),
    ] {
        let (status, body) = control_at(
            &home,
            "/spawn-session",
            json!({"directory": path, "createDirectory": create}),
        );
        let (code, message) = error_of(&body);
        assert_eq!(
            (status, code.as_str()),
            (422, "directory_unusable"),
            "{}: {body}",
            path.display()
        );
        assert!(message.contains("permission denied"), "{message}");
        assert!(message.contains(path.to_str().unwrap()), "{message}");
    }
    assert!(!locked.join("sub").exists());

    let out = hapi_as_nobody(&["runner", "stop"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let home = home.to_str().unwrap().to_owned();
    let left = poll("the nobody runner to exit", Duration::from_secs(20), || {
        let left = pids_with_env("HAPI_HOME", &home);
        left.is_empty().then_some(left)
    });
    assert!(left.is_empty());
}
