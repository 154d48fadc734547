//! The per-test environment: a temp `HAPI_HOME` with a real hub, a private copy
//! of `hapi`, and cleanup that leaves no process behind.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hapi_e2e::{Hub, bin, cmdline, pids_with_env};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

pub(crate) const HEARTBEAT_MS: u64 = 1000;

pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) home: PathBuf,
    pub(crate) hapi: PathBuf,
    pub(crate) hub: Option<Hub>,
    /// PIDs of sessions this test started or saw.
    pub(crate) sessions: Vec<u32>,
}

pub(crate) fn poll<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
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

pub(crate) fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
    !state.starts_with(['Z', 'X'])
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A request to the control server of the runner of `home`.
pub(crate) fn control_at(home: &Path, path: &str, body: Value) -> (u16, Value) {
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
    pub(crate) fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::start(dir.path());
        let home = hub.home.clone();
        let hapi = dir.path().join("bin/hapi");
        hapi_testkit::install_executable(&bin("hapi"), &hapi);
        Env {
            dir,
            home,
            hapi,
            hub: Some(hub),
            sessions: Vec::new(),
        }
    }

    pub(crate) fn cmd(&self) -> Command {
        let mut cmd = Command::new(&self.hapi);
        cmd.env("HAPI_HOME", &self.home)
            .env("HAPI_RUNNER_HEARTBEAT_INTERVAL", HEARTBEAT_MS.to_string())
            .env("HAPI_NO_RUNNER_AUTOSTART", "1")
            // The hub's token file, never the developer's keychain.
            .env("HAPI_KEYCHAIN", "off")
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

    pub(crate) fn hapi(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.hapi(args);
        assert!(
            out.status.success(),
            "hapi {args:?} failed: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    pub(crate) fn state(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.home.join("runner.state.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub(crate) fn runner_pid(&self) -> u32 {
        self.state().expect("state file")["pid"].as_u64().unwrap() as u32
    }

    /// Runner processes (foreground runners) of this home.
    pub(crate) fn runners(&self) -> Vec<u32> {
        pids_with_env("HAPI_HOME", self.home.to_str().unwrap())
            .into_iter()
            .filter(|&pid| cmdline(pid).contains("runner start --foreground"))
            .collect()
    }

    pub(crate) fn start(&self) -> u32 {
        let out = self.ok(&["runner", "start"]);
        assert!(out.contains("Runner started (PID"), "{out}");
        self.runner_pid()
    }

    /// `runner list`, parsed: (session id, pid, started by).
    pub(crate) fn list(&self) -> Vec<(String, u32, String)> {
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

    pub(crate) fn control(&self, path: &str, body: Value) -> (u16, Value) {
        control_at(&self.home, path, body)
    }

    /// Has the runner spawn a `hapi claude` session; returns (id, pid).
    pub(crate) fn spawn_session(&mut self) -> (String, u32) {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let (status, body) = self.control("/spawn-session", json!({"directory": work, "prompt": "do it"}));
        assert_eq!(status, 200, "{body}");
        let pid = body["pid"].as_u64().unwrap() as u32;
        self.sessions.push(pid);
        (body["sessionId"].as_str().unwrap().to_owned(), pid)
    }

    pub(crate) async fn hub_state(&self, id: &str) -> String {
        let v = self.hub.as_ref().unwrap().get(&format!("/api/sessions/{id}")).await;
        let s = if v.get("session").is_some() { &v["session"] } else { &v };
        s["state"].as_str().unwrap_or_default().to_owned()
    }

    /// Stops everything this test started and checks nothing is left.
    pub(crate) fn finish(mut self) {
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

    pub(crate) fn cleanup(&mut self) {
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

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

impl Env {
    /// Starts `hapi claude` as a person would in a terminal (in `work/`), with or
    /// without runner autostart; returns the process and its session id.
    pub(crate) fn terminal_session(&mut self, autostart: bool, log: &str) -> (hapi_e2e::Child, String) {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let mut cmd = self.cmd();
        if autostart {
            cmd.env_remove("HAPI_NO_RUNNER_AUTOSTART");
        }
        cmd.args(["claude", "--prompt", "do it", "--cwd"])
            .arg(&work)
            .stdout(std::process::Stdio::piped());
        let mut session = hapi_e2e::Child::spawn("hapi claude", cmd, &self.dir.path().join(log));
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(session.child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        self.sessions.push(session.pid());
        (session, line.trim().to_owned())
    }

    /// The id of this runner's machine, once the hub shows it online.
    pub(crate) async fn online_machine(&self) -> String {
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
    pub(crate) async fn hub_spawn(&self, machine: &str, body: Value) -> (u16, Value) {
        let hub = self.hub.as_ref().unwrap();
        hub.post(&format!("/api/machines/{machine}/sessions"), body).await
    }

    /// Records the PIDs of the sessions the runner lists, for cleanup.
    pub(crate) fn adopt_listed(&mut self) -> Vec<(String, u32, String)> {
        let listed = self.list();
        self.sessions.extend(listed.iter().map(|(_, pid, _)| *pid));
        listed
    }
}

pub(crate) fn error_of(body: &Value) -> (String, String) {
    (
        body["error"]["code"].as_str().unwrap_or_default().to_owned(),
        body["error"]["message"].as_str().unwrap_or_default().to_owned(),
    )
}
