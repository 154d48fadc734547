//! Support for the end-to-end tests: the real `hapi` binary as a child process,
//! the fake Anthropic server, the pinned real Claude Code, and small API helpers.
//!
//! Every child runs in its own process group and is stopped (group-wide, by PID)
//! when its guard drops, so a failing test leaves nothing running.
pub mod netns;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;

/// Directory of the workspace's built binaries (`target/debug`), found from the
/// running test executable (`target/debug/deps/…`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The pinned real Claude Code installed by `scripts/setup.sh --test`.
pub fn claude_path() -> PathBuf {
    let path = repo().join("tests/agents/node_modules/.bin/claude");
    assert!(
        path.exists(),
        "{} is missing: run `scripts/setup.sh --test`",
        path.display()
    );
    path
}

/// A child process (and its process group) stopped on drop.
pub struct Child {
    pub child: std::process::Child,
    pub name: String,
}

impl Child {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Child {
        use std::os::unix::process::CommandExt as _;
        let log = std::fs::File::create(log).expect("log file");
        cmd.stdin(Stdio::null()).stderr(log).process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Child {
            child,
            name: name.into(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM to the group, then SIGKILL if it has not exited in 5 s.
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        if self.wait_exit(Duration::from_secs(5)).is_none() {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `hapi hub` process on 127.0.0.1 with a random port and its own `HAPI_HOME`.
pub struct Hub {
    pub process: Child,
    pub url: String,
    pub token: String,
    pub home: PathBuf,
    pub http: reqwest::Client,
}

impl Hub {
    pub fn start(dir: &Path) -> Hub {
        Self::start_with_token(dir, None)
    }

    /// Starts the hub with `CLI_API_TOKEN` set to `token` (no token file then).
    pub fn start_with_token(dir: &Path, token: Option<&str>) -> Hub {
        let home = dir.join("hapi-home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = Command::new(bin("hapi"));
        cmd.arg("hub")
            .env("HAPI_HOME", &home)
            .env("HAPI_LISTEN_PORT", "0")
            .env("HAPI_NO_RUNNER_AUTOSTART", "1")
            // The token file, never the developer's keychain (see tests/keychain.rs).
            .env("HAPI_KEYCHAIN", "off")
            .env_remove("CLI_API_TOKEN")
            .stdout(Stdio::null());
        if let Some(token) = token {
            cmd.env("CLI_API_TOKEN", token);
        }
        let process = Child::spawn("hapi hub", cmd, &dir.join("hub.log"));
        let state = wait_sync("hub.json", Duration::from_secs(30), || {
            let text = std::fs::read_to_string(home.join("hub.json")).ok()?;
            serde_json::from_str::<Value>(&text).ok()
        });
        let url = state["url"].as_str().unwrap().to_owned();
        let token = match token {
            Some(token) => token.to_owned(),
            None => std::fs::read_to_string(home.join("owner.token"))
                .unwrap()
                .trim()
                .to_owned(),
        };
        Hub {
            process,
            url,
            token,
            home,
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// All messages of a session (test sessions are short).
    pub async fn messages(&self, session_id: &str) -> Vec<Value> {
        let page = self
            .get(&format!("/api/sessions/{session_id}/messages?after=0&limit=500"))
            .await;
        page["messages"].as_array().unwrap().clone()
    }

    /// Waits for the session's single pending approval.
    pub async fn pending_approval(&self, session_id: &str) -> Value {
        wait("a pending approval", || async {
            let list = self
                .get(&format!("/api/approvals?state=pending&session_id={session_id}"))
                .await;
            list["approvals"].as_array().unwrap().first().cloned()
        })
        .await
    }

    /// Waits until the session has `n` turn ends and returns its messages.
    pub async fn wait_turns(&self, session_id: &str, n: usize) -> Vec<Value> {
        wait("the turn to end", || async {
            let messages = self.messages(session_id).await;
            let ends = messages.iter().filter(|m| m["update"]["kind"] == "turn_end").count();
            (ends >= n).then_some(messages)
        })
        .await
    }
}

/// A `hapi claude` session running the real Claude Code against the fake model.
pub struct ClaudeSession {
    pub process: Child,
    pub id: String,
    pub work: PathBuf,
}

impl ClaudeSession {
    pub fn start(dir: &Path, hub: &Hub, model_url: &str, prompt: &str) -> ClaudeSession {
        use std::io::BufRead as _;
        let work = dir.join("work");
        let home = dir.join("home");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = Command::new(bin("hapi"));
        cmd.arg("claude")
            .arg("--cwd")
            .arg(&work)
            .arg("--prompt")
            .arg(prompt)
            .env("HAPI_HOME", &hub.home)
            .env("HAPI_CLAUDE_PATH", claude_path())
            .env("HOME", &home)
            .env("ANTHROPIC_BASE_URL", model_url)
            .env("ANTHROPIC_API_KEY", "sk-test")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("HAPI_NO_RUNNER_AUTOSTART", "1")
            .env("HAPI_KEYCHAIN", "off")
            .env_remove("IS_SANDBOX")
            .env_remove("ANTHROPIC_AUTH_TOKEN")
            .env_remove("HAPI_HUB_URL")
            .env_remove("CLI_API_TOKEN")
            .stdout(Stdio::piped());
        let mut process = Child::spawn("hapi claude", cmd, &dir.join("hapi-claude.log"));
        let stdout = process.child.stdout.take().unwrap();
        let mut first = String::new();
        std::io::BufReader::new(stdout).read_line(&mut first).unwrap();
        let id = first.trim().to_owned();
        assert!(
            !id.is_empty(),
            "hapi claude printed no session id; see {}",
            dir.join("hapi-claude.log").display()
        );
        ClaudeSession { process, id, work }
    }
}

/// Polls `probe` until it yields a value. The 90 s limit only keeps a broken run
/// from hanging; it is not a speed assertion.
pub async fn wait<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the browser script to save the QR code as `png`, then decodes it
/// from its pixels (zbarimg), as a phone's camera would; returns what it says.
pub async fn decode_qr_image(png: &Path) -> String {
    wait("the QR code image", || async {
        if !png.exists() {
            return None;
        }
        let out = Command::new("zbarimg").args(["--raw", "-q"]).arg(png).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    })
    .await
}

/// Polls `probe` (blocking) until it yields a value, for at most `within`; the
/// limit only keeps a broken run from hanging.
pub fn wait_sync<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The kinds of a history, for readable assertions.
pub fn kinds(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["update"]["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Agent texts of a history.
pub fn agent_texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m["update"]["kind"] == "agent_message_chunk")
        .map(|m| m["update"]["text"].as_str().unwrap().to_owned())
        .collect()
}

/// A `dbus-daemon` configuration for a test's private session bus listening on
/// `listen` (a D-Bus address), with **no service activation**: every daemon a
/// test needs is started by the test. With activation, a client that reaches
/// the bus before (say) gnome-keyring has taken its name makes dbus-daemon start
/// a second one, which outlives the session holding the test's stdout and
/// stderr; a CI run hung on exactly that.
pub fn session_bus_config(listen: &str) -> String {
    format!(
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \
         \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
         <busconfig><type>session</type><listen>{listen}</listen><auth>EXTERNAL</auth>\
         <policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/>\
         <allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>\n"
    )
}

/// PIDs of this user's live processes whose environment has `name=value`
/// (e.g. every process started with one test's `HAPI_HOME`). Zombies have no
/// readable environment and are not listed.
pub fn pids_with_env(name: &str, value: &str) -> Vec<u32> {
    let needle = format!("{name}={value}");
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// The command line of a process, arguments joined by spaces.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim().to_owned())
        .unwrap_or_default()
}

/// One of the `tests/browser/*.test.mjs` scripts running under `node --test`
/// (playwright-core driving Debian's Chromium), with its inputs in the
/// environment; its output is kept in `dir` for the failure message.
pub struct BrowserTest {
    node: Child,
    out_log: PathBuf,
    err_log: PathBuf,
}

impl BrowserTest {
    /// Starts `script` with `env` (plus `HAPI_TEST_ARTIFACTS`, default `dir/artifacts`).
    pub fn start(dir: &Path, script: &str, env: &[(&str, &std::ffi::OsStr)]) -> BrowserTest {
        let browser_dir = repo().join("tests/browser");
        assert!(
            browser_dir.join("node_modules/playwright-core").is_dir(),
            "playwright-core is missing: run `scripts/setup.sh --test`"
        );
        let artifacts = std::env::var_os("HAPI_TEST_ARTIFACTS").unwrap_or_else(|| dir.join("artifacts").into());
        let out_log = dir.join(format!("{script}.log"));
        let err_log = dir.join(format!("{script}.err"));
        let mut cmd = Command::new("node");
        cmd.arg("--test")
            .arg(script)
            .current_dir(&browser_dir)
            .env("HAPI_TEST_ARTIFACTS", artifacts)
            .stdout(std::fs::File::create(&out_log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let node = Child::spawn("node --test", cmd, &err_log);
        BrowserTest { node, out_log, err_log }
    }

    /// Waits (blocking) for the script and fails the test with its output unless
    /// it passed.
    pub fn finish(mut self) {
        let status = self.node.wait_exit(Duration::from_secs(300));
        let output = std::fs::read_to_string(&self.out_log).unwrap_or_default()
            + &std::fs::read_to_string(&self.err_log).unwrap_or_default();
        let status = status.unwrap_or_else(|| panic!("browser test did not finish:\n{output}"));
        assert!(status.success(), "browser test failed:\n{output}");
    }
}
