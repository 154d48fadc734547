//! A private headless desktop for one test, built from Debian's packages: an X
//! server (Xvfb), a session bus, a Secret Service keyring (gnome-keyring), a
//! notification daemon (dunst) and a tray host (status-notifier-watcher). The
//! app under test runs in it as it would on a real desktop.
//!
//! Every process of the test carries `HAPI_DESKTOP_TEST=<its dir>` in its
//! environment, so the test ends them all, by PID, when it ends; sessions the
//! app started (which outlive the app by design) carry its `HAPI_HOME` and are
//! ended the same way.
#![allow(dead_code)]

pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hapi_e2e::{Child, pids_with_env};
use serde_json::Value;

pub const DESKTOP_BIN: &str = env!("CARGO_BIN_EXE_hapi-desktop");

pub struct DesktopEnv {
    pub dir: tempfile::TempDir,
    /// `HOME` of everything in this desktop (keyring files, autostart entries).
    pub home: PathBuf,
    pub hapi_home: PathBuf,
    pub bus: String,
    pub display: String,
    xauthority: String,
    runtime_dir: PathBuf,
    procs: Vec<Child>,
}

impl DesktopEnv {
    pub fn start() -> DesktopEnv {
        let dir = tempfile::Builder::new().prefix("hapi-desktop-").tempdir().unwrap();
        let home = dir.path().join("home");
        let hapi_home = dir.path().join("hapi-home");
        let runtime_dir = dir.path().join("run");
        for d in [&home, &hapi_home, &runtime_dir, &dir.path().join("tmp")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::set_permissions(&runtime_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let mut env = DesktopEnv {
            bus: format!("unix:path={}", runtime_dir.join("bus").display()),
            display: String::new(),
            xauthority: String::new(),
            dir,
            home,
            hapi_home,
            runtime_dir,
            procs: Vec::new(),
        };
        env.start_x();
        env.start_bus();
        env.start_keyring();
        env.start_dunst();
        let mut watcher = env.base_cmd("status-notifier-watcher");
        watcher.stdout(Stdio::null());
        env.spawn("status-notifier-watcher", watcher);
        env.wait_for_names(&[
            "org.freedesktop.Notifications",
            "org.kde.StatusNotifierWatcher",
            "org.freedesktop.secrets",
        ]);
        env
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn spawn(&mut self, name: &str, cmd: Command) {
        let log = self.log(name);
        self.procs.push(Child::spawn(name, cmd, &log));
    }

    /// A command in this desktop: its display, bus, HOME and runtime dir.
    pub fn base_cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env("DISPLAY", &self.display)
            .env("XAUTHORITY", &self.xauthority)
            .env("HAPI_DESKTOP_TEST", self.dir.path())
            // The tray writes its icon files to the temp dir: one per test.
            .env("TMPDIR", self.dir.path().join("tmp"))
            .env("NO_AT_BRIDGE", "1")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("HAPI_KEYCHAIN");
        cmd
    }

    /// A `hapi`-side command: [`base_cmd`](Self::base_cmd) plus this test's
    /// `HAPI_HOME`, a free port, and no credentials from the caller's environment.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = self.base_cmd(program);
        cmd.env("HAPI_HOME", &self.hapi_home)
            .env("HAPI_LISTEN_PORT", "0")
            .env("HAPI_WORKSPACE_ROOTS", self.dir.path())
            .env("HAPI_NO_RUNNER_AUTOSTART", "1")
            .env_remove("CLI_API_TOKEN")
            .env_remove("HAPI_HUB_URL")
            .env_remove("IS_SANDBOX")
            .env_remove("ANTHROPIC_AUTH_TOKEN");
        cmd
    }

    fn start_x(&mut self) {
        // xvfb-run picks a free display (-a) and prints nothing; the child shell
        // reports the display it got, then waits.
        let mut cmd = self.base_cmd("xvfb-run");
        cmd.args([
            "-a",
            "-s",
            "-screen 0 1280x800x24 -nolisten tcp",
            "sh",
            "-c",
            "echo $DISPLAY $XAUTHORITY; exec sleep 100000",
        ])
        .stdout(Stdio::piped());
        self.spawn("xvfb", cmd);
        let stdout = self.procs.last_mut().unwrap().child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        let mut parts = line.split_whitespace();
        self.display = parts.next().unwrap_or_default().to_owned();
        self.xauthority = parts.next().unwrap_or_default().to_owned();
        assert!(
            self.display.starts_with(':'),
            "xvfb-run gave no display; see {}",
            self.log("xvfb").display()
        );
    }

    fn start_bus(&mut self) {
        let config = self.dir.path().join("session-bus.conf");
        std::fs::write(&config, hapi_e2e::session_bus_config(&self.bus)).unwrap();
        let mut cmd = self.base_cmd("dbus-daemon");
        cmd.arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile"])
            .stdout(Stdio::null());
        self.spawn("dbus-daemon", cmd);
        let socket = self.runtime_dir.join("bus");
        poll("the session bus", Duration::from_secs(20), || {
            socket.exists().then_some(())
        });
    }

    fn start_keyring(&mut self) {
        // A non-empty password: with an empty one the login collection is never created.
        let mut cmd = self.base_cmd("gnome-keyring-daemon");
        cmd.args(["--foreground", "--unlock", "--components=secrets"])
            .arg(format!(
                "--control-directory={}",
                self.runtime_dir.join("keyring").display()
            ))
            .stdout(Stdio::null());
        let log = self.log("gnome-keyring");
        let mut child = {
            use std::os::unix::process::CommandExt as _;
            cmd.stdin(Stdio::piped())
                .stderr(std::fs::File::create(&log).unwrap())
                .process_group(0)
                .spawn()
                .expect("gnome-keyring-daemon (Debian package gnome-keyring)")
        };
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"ci-pass").unwrap();
        }
        self.procs.push(Child {
            child,
            name: "gnome-keyring-daemon".into(),
        });
    }

    /// Stops the Secret Service, as on a desktop without one.
    pub fn stop_keyring(&mut self) {
        let keyring = self
            .procs
            .iter_mut()
            .find(|p| p.name == "gnome-keyring-daemon")
            .unwrap();
        keyring.stop();
        poll("the keyring to leave the bus", Duration::from_secs(10), || {
            (!self.busctl(&["status", "org.freedesktop.secrets"]).status.success()).then_some(())
        });
    }

    fn start_dunst(&mut self) {
        // dunst's context menu goes through "dmenu"; this one records the entries
        // it is offered and picks the one named in `pick`, the way a person
        // would click a notification's button.
        let picker = self.dir.path().join("dmenu-pick.sh");
        let pick = self.dir.path().join("pick");
        let offered = self.dir.path().join("offered.log");
        std::fs::write(
            &picker,
            format!(
                "#!/bin/sh\nmenu=$(cat)\nprintf '%s\\n' \"$menu\" >> '{offered}'\nprintf '%s\\n' \"$menu\" | grep -m1 -F \"$(cat '{pick}')\"\n",
                offered = offered.display(),
                pick = pick.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&picker, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let config = self.dir.path().join("dunstrc");
        std::fs::write(
            &config,
            format!(
                "[global]\n    dmenu = {}\n    show_indicators = no\n    notification_limit = 20\n",
                picker.display()
            ),
        )
        .unwrap();
        let mut cmd = self.base_cmd("dunst");
        cmd.arg("-config").arg(&config).stdout(Stdio::null());
        self.spawn("dunst", cmd);
    }

    fn wait_for_names(&self, names: &[&str]) {
        for name in names {
            poll(&format!("{name} on the session bus"), Duration::from_secs(30), || {
                let out = self.busctl(&["status", name]);
                out.status.success().then_some(())
            });
        }
    }

    pub fn busctl(&self, args: &[&str]) -> Output {
        self.base_cmd("busctl").arg("--user").args(args).output().unwrap()
    }

    // --- the app ------------------------------------------------------------

    /// Starts the app (its window unless `minimized`), with `extra` env, and
    /// waits until its hub is up.
    pub fn launch(&self, minimized: bool, extra: &[(&str, &std::ffi::OsStr)]) -> App {
        let mut cmd = self.cmd(DESKTOP_BIN);
        if minimized {
            cmd.arg("--minimized");
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::null());
        let name = format!("app-{}", Instant::now().elapsed().as_nanos());
        let process = Child::spawn("hapi-desktop", cmd, &self.log(&name));
        let hub_json = self.hapi_home.join("hub.json");
        let pid = process.pid();
        let url = poll("the app's hub (hub.json)", Duration::from_secs(60), || {
            let state: Value = serde_json::from_str(&std::fs::read_to_string(&hub_json).ok()?).ok()?;
            (state["pid"] == pid).then(|| state["url"].as_str().unwrap().to_owned())
        });
        App { process, url }
    }

    /// `hapi-desktop auth token` (the app binary answering a CLI command) in
    /// this desktop.
    pub fn owner_token(&self) -> String {
        let out = self.cmd(DESKTOP_BIN).args(["auth", "token"]).output().unwrap();
        assert!(
            out.status.success(),
            "auth token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    // --- the tray, over D-Bus (StatusNotifierItem + com.canonical.dbusmenu) ---

    /// The tray item's bus name and menu object path, once registered.
    pub fn tray(&self) -> (String, String) {
        poll("the tray item", Duration::from_secs(30), || {
            let out = self.busctl(&[
                "--json=short",
                "get-property",
                "org.kde.StatusNotifierWatcher",
                "/StatusNotifierWatcher",
                "org.kde.StatusNotifierWatcher",
                "RegisteredStatusNotifierItems",
            ]);
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            let item = v["data"].as_array()?.first()?.as_str()?.to_owned();
            // Registered as a bus name (optionally with a path); the menu is the
            // object whose path ends in /Menu.
            let service = item.split('/').next()?.to_owned();
            let tree = self.busctl(&["--list", "tree", &service]);
            let menu = String::from_utf8_lossy(&tree.stdout)
                .lines()
                .map(str::trim)
                .find(|p| p.ends_with("/Menu"))?
                .to_owned();
            Some((service, menu))
        })
    }

    /// The tray menu's top-level entries: (id, label, enabled, toggle-state).
    pub fn tray_menu(&self) -> Vec<MenuEntry> {
        let (service, menu) = self.tray();
        let out = self.busctl(&[
            "--json=short",
            "--",
            "call",
            &service,
            &menu,
            "com.canonical.dbusmenu",
            "GetLayout",
            "iias",
            "0",
            "-1",
            "0",
        ]);
        assert!(
            out.status.success(),
            "GetLayout: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let root = &v["data"][1];
        root[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|child| {
                let item = &child["data"];
                let props = &item[1];
                MenuEntry {
                    id: item[0].as_i64().unwrap() as i32,
                    label: props["label"]["data"].as_str().unwrap_or("").replace('_', ""),
                    enabled: props["enabled"]["data"].as_bool().unwrap_or(true),
                    separator: props["type"]["data"] == "separator",
                    checked: props["toggle-state"]["data"].as_i64().map(|s| s == 1),
                }
            })
            .collect()
    }

    /// The label the tray item shows next to its icon (AppIndicator's label).
    pub fn tray_label(&self) -> String {
        let (service, menu) = self.tray();
        let item = menu.trim_end_matches("/Menu");
        let out = self.busctl(&[
            "--json=short",
            "get-property",
            &service,
            item,
            "org.kde.StatusNotifierItem",
            "XAyatanaLabel",
        ]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v["data"].as_str().unwrap_or_default().to_owned()
    }

    /// The labels of the menu's entries (separators left out).
    pub fn tray_labels(&self) -> Vec<String> {
        self.tray_menu()
            .into_iter()
            .filter(|e| !e.separator)
            .map(|e| e.label)
            .collect()
    }

    /// Clicks the tray menu entry whose label starts with `label`. The app may
    /// rebuild its menu between reading and clicking (new item ids), so a
    /// click on a vanished id is retried on a fresh read, as a person would.
    pub fn click_tray(&self, label: &str) {
        for _ in 0..10 {
            let entries = self.tray_menu();
            let entry = entries
                .iter()
                .find(|e| e.label.starts_with(label))
                .unwrap_or_else(|| panic!("no tray entry {label:?} in {entries:?}"));
            let (service, menu) = self.tray();
            let id = entry.id.to_string();
            let out = self.busctl(&[
                "--",
                "call",
                &service,
                &menu,
                "com.canonical.dbusmenu",
                "Event",
                "isvu",
                &id,
                "clicked",
                "s",
                "",
                "0",
            ]);
            if out.status.success() {
                return;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("does not refer to a menu item"), "Event: {err}");
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the tray entry {label:?} kept changing");
    }

    // --- notifications, through dunst -----------------------------------------

    pub fn dunstctl(&self, args: &[&str]) -> String {
        let out = self.base_cmd("dunstctl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "dunstctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Notifications on screen.
    pub fn notifications_displayed(&self) -> usize {
        self.dunstctl(&["count", "displayed"]).trim().parse().unwrap()
    }

    /// Opens dunst's action menu and picks the action labelled `label`, the way
    /// a person clicks the notification's button. Returns what the menu offered.
    pub fn invoke_notification_action(&self, label: &str) -> String {
        let offered = self.dir.path().join("offered.log");
        let _ = std::fs::remove_file(&offered);
        std::fs::write(self.dir.path().join("pick"), format!("#{label} ")).unwrap();
        self.dunstctl(&["context"]);
        // dunst runs the menu in the background; the picker writes the whole
        // menu with one write, ending in a line break.
        poll("dunst's action menu", Duration::from_secs(10), || {
            std::fs::read_to_string(&offered)
                .ok()
                .filter(|text| text.ends_with('\n'))
        })
    }

    /// Closed notifications: (summary, body), newest first.
    pub fn notification_history(&self) -> Vec<(String, String)> {
        let v: Value = serde_json::from_str(&self.dunstctl(&["history"])).unwrap();
        v["data"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["summary"]["data"].as_str().unwrap_or("").to_owned(),
                    n["body"]["data"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for DesktopEnv {
    fn drop(&mut self) {
        // Sessions first (they carry HAPI_HOME), then the desktop's daemons.
        for marker in [
            ("HAPI_HOME", self.hapi_home.to_string_lossy().into_owned()),
            ("HAPI_DESKTOP_TEST", self.dir.path().to_string_lossy().into_owned()),
        ] {
            for pid in pids_with_env(marker.0, &marker.1) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for p in self.procs.iter_mut().rev() {
            p.stop();
        }
        if std::thread::panicking() || std::env::var_os("HAPI_KEEP_TEST_DIR").is_some() {
            // Keep the logs of a failed test (or on request) for a person to read.
            let kept = self.dir.path().with_extension("failed");
            if std::fs::rename(self.dir.path(), &kept).is_ok() {
                eprintln!("the test's files (logs, screenshots) are in {}", kept.display());
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct MenuEntry {
    pub id: i32,
    pub label: String,
    pub enabled: bool,
    pub separator: bool,
    pub checked: Option<bool>,
}

/// The running app.
pub struct App {
    pub process: Child,
    pub url: String,
}

impl App {
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// An owner's client of the app's hub.
pub struct Api {
    pub url: String,
    pub token: String,
    http: reqwest::blocking::Client,
}

impl Api {
    pub fn new(url: &str, token: &str) -> Api {
        Api {
            url: url.to_owned(),
            token: token.to_owned(),
            http: reqwest::blocking::Client::builder().no_proxy().build().unwrap(),
        }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .put(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// This machine, once its (embedded) runner is linked.
    pub fn online_machine(&self) -> String {
        poll("the machine online", Duration::from_secs(60), || {
            let v = self.ok("/api/machines");
            v["machines"]
                .as_array()?
                .iter()
                .find(|m| m["state"] == "online")
                .map(|m| m["id"].as_str().unwrap().to_owned())
        })
    }

    /// Spawns a Claude session in `cwd` through the hub and the app's runner.
    pub fn spawn_claude(&self, cwd: &Path, prompt: &str) -> String {
        let machine = self.online_machine();
        let (status, body) = self.post(
            &format!("/api/machines/{machine}/sessions"),
            serde_json::json!({"agent": "claude", "cwd": cwd, "prompt": prompt}),
        );
        assert_eq!(status, 201, "{body}");
        body["session_id"].as_str().unwrap().to_owned()
    }

    pub fn pending_approval(&self, session_id: &str) -> Value {
        poll("a pending approval", Duration::from_secs(90), || {
            let v = self.ok(&format!("/api/approvals?state=pending&session_id={session_id}"));
            v["approvals"].as_array()?.first().cloned()
        })
    }

    pub fn approval(&self, id: &str) -> Value {
        self.ok(&format!("/api/approvals/{id}"))["approval"].clone()
    }

    pub fn session(&self, id: &str) -> Value {
        self.ok(&format!("/api/sessions/{id}"))["session"].clone()
    }

    /// The agent's texts once `n` turns have ended.
    pub fn wait_turn_texts(&self, session_id: &str, n: usize) -> Vec<String> {
        poll("the turn to end", Duration::from_secs(90), || {
            let v = self.ok(&format!("/api/sessions/{session_id}/messages?limit=500"));
            let messages = v["messages"].as_array()?.clone();
            let ends = messages.iter().filter(|m| m["update"]["kind"] == "turn_end").count();
            (ends >= n).then(|| hapi_e2e::agent_texts(&messages))
        })
    }
}

pub use hapi_e2e::wait_sync as poll;

/// The fake model server and the pinned real Claude Code, as env for the app
/// (its sessions inherit the app's environment).
pub struct Agent {
    pub model: hapi_testkit::FakeAnthropic,
    pub rt: tokio::runtime::Runtime,
}

impl Agent {
    pub fn start() -> Agent {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let model = rt
            .block_on(hapi_testkit::start_fake_anthropic(hapi_testkit::Script::default()))
            .unwrap();
        Agent { model, rt }
    }

    pub fn env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![
            ("HAPI_CLAUDE_PATH", hapi_e2e::claude_path().into_os_string()),
            ("ANTHROPIC_BASE_URL", self.model.url().into()),
            ("ANTHROPIC_API_KEY", "sk-test".into()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ]
    }
}
