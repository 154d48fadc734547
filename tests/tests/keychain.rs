//! The owner token in a real OS keychain: the real `hapi` inside a private
//! D-Bus session with a real, unlocked gnome-keyring (Secret Service), and the
//! same `hapi` with no session bus at all.
//!
//! Every test has its own HOME (the keyring files live in
//! `$HOME/.local/share/keyrings`, so a later session on the same HOME reopens the
//! same keyring), its own `XDG_RUNTIME_DIR` per session and its own `HAPI_HOME`;
//! nothing reaches the developer's keychain or session bus. Needs `dbus`,
//! `dbus-user-session`, `gnome-keyring` and `libsecret-tools`
//! (`scripts/setup.sh --test`).
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hapi_e2e::{Child, bin, pids_with_env};
use serde_json::Value;

/// Starts gnome-keyring inside the session, unlocked with a non-empty password
/// (an empty one never creates the login collection), waits until it owns
/// `org.freedesktop.secrets`, runs the command, then stops the keyring.
///
/// Waiting matters: the bus has no service activation
/// ([`hapi_e2e::session_bus_config`]), so
/// a client that called before the name was taken would get an error instead
/// of the keyring. The keyring's stderr goes to `$KEYRING_LOG`, never to the
/// test's pipes, so a daemon that outlives its session cannot keep
/// `Command::output` waiting for end of file.
const WITH_KEYRING: &str = r#"
eval "$(printf ci-pass | gnome-keyring-daemon --unlock --components=secrets 2>>"$KEYRING_LOG")" >/dev/null
ask() { dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus "org.freedesktop.DBus.$1" string:org.freedesktop.secrets 2>/dev/null; }
tries=0
until ask NameHasOwner | grep -q 'boolean true'; do
  tries=$((tries + 1))
  if [ "$tries" -ge 400 ]; then echo "the keyring never took org.freedesktop.secrets; see $KEYRING_LOG" >&2; exit 98; fi
  sleep 0.05
done
keyring=$(ask GetConnectionUnixProcessID | awk '/uint32/ {print $2}')
"$@"
rc=$?
kill "$keyring" 2>/dev/null
exit $rc
"#;

/// One test's world: HOME with the keyring files, and a `HAPI_HOME`.
struct Desk {
    dir: tempfile::TempDir,
    home: PathBuf,
    hapi_home: PathBuf,
    sessions: AtomicUsize,
}

impl Desk {
    fn new() -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        Desk {
            hapi_home: dir.path().join("hapi-home"),
            home,
            dir,
            sessions: AtomicUsize::new(0),
        }
    }

    /// A private, empty runtime dir: no `bus` socket to fall back on.
    fn runtime_dir(&self) -> PathBuf {
        let n = self.sessions.fetch_add(1, Ordering::SeqCst);
        let dir = self.dir.path().join(format!("run-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("HOME", &self.home)
            .env("HAPI_HOME", &self.hapi_home)
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("HAPI_NO_RUNNER_AUTOSTART", "1")
            .env("RUST_BACKTRACE", "0")
            .env_remove("HAPI_KEYCHAIN")
            .env_remove("CLI_API_TOKEN")
            .env_remove("HAPI_HUB_URL")
            .env_remove("HAPI_LISTEN_HOST")
            .env_remove("HAPI_LISTEN_PORT")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("XDG_DATA_HOME")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null());
    }

    /// `program args…` in a fresh session bus with this HOME's keyring unlocked.
    fn in_keyring(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let config = self.dir.path().join("session-bus.conf");
        if !config.exists() {
            std::fs::write(&config, hapi_e2e::session_bus_config("unix:tmpdir=/tmp")).unwrap();
        }
        let mut cmd = Command::new("dbus-run-session");
        cmd.arg(format!("--config-file={}", config.display()))
            .args(["--", "sh", "-c", WITH_KEYRING, "sh"])
            .arg(program)
            .args(args);
        self.env(&mut cmd);
        cmd.env("KEYRING_LOG", self.dir.path().join("gnome-keyring.log"));
        cmd
    }

    /// `hapi args…` with no session bus: DBUS_SESSION_BUS_ADDRESS unset, or
    /// `bus` (an address where nothing listens).
    fn headless(&self, args: &[&str], bus: Option<&str>) -> Command {
        let mut cmd = Command::new(bin("hapi"));
        cmd.args(args);
        self.env(&mut cmd);
        if let Some(bus) = bus {
            cmd.env("DBUS_SESSION_BUS_ADDRESS", bus);
        }
        cmd
    }

    fn account(&self) -> String {
        format!("owner-token:{}", self.hapi_home.canonicalize().unwrap().display())
    }

    /// What `secret-tool` (libsecret, not our code) finds in the keyring.
    fn secret_tool_lookup(&self) -> Option<String> {
        let out = self
            .in_keyring(
                "secret-tool",
                &["lookup", "service", "hapi", "username", &self.account()],
            )
            .output()
            .unwrap();
        out.status.success().then(|| text(&out.stdout).trim().to_owned())
    }

    fn token_file(&self) -> PathBuf {
        self.hapi_home.join("owner.token")
    }

    fn marker(&self) -> PathBuf {
        self.hapi_home.join("owner.token.keychain")
    }

    /// Starts `hapi hub` from `cmd` and waits for its hub.json.
    fn start_hub(&self, mut cmd: Command, log: &str) -> (Child, String) {
        cmd.env("HAPI_LISTEN_PORT", "0").stdout(Stdio::null());
        let mut hub = Child::spawn("hapi hub", cmd, &self.dir.path().join(log));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(url) = std::fs::read_to_string(self.hapi_home.join("hub.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v["url"].as_str().map(str::to_owned))
            {
                return (hub, url);
            }
            if let Some(status) = hub.child.try_wait().unwrap() {
                panic!("the hub exited ({status}): {}", self.log(log));
            }
            assert!(Instant::now() < deadline, "no hub.json: {}", self.log(log));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

impl Drop for Desk {
    /// Nothing started for this HOME (dbus-daemon, gnome-keyring, hapi) outlives
    /// the test: the daemons end with their session; stragglers are stopped by PID.
    fn drop(&mut self) {
        let home = self.home.to_str().unwrap().to_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pids_with_env("HOME", &home).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for pid in pids_with_env("HOME", &home) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn token_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "hapi auth token failed ({}):\n{}",
        out.status,
        text(&out.stderr)
    );
    let token = text(&out.stdout).trim().to_owned();
    assert_eq!(token.len(), 64, "a 256-bit hex token: {token:?}");
    token
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `GET /api/hub` with `token`: (status, body).
fn hub_info(url: &str, token: &str) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("{url}/api/hub"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    })
}

#[test]
fn the_owner_token_round_trips_through_a_real_keyring_and_every_binary_finds_it() {
    let desk = Desk::new();
    let first = desk.in_keyring(bin("hapi"), &["auth", "token"]).output().unwrap();
    let token = token_of(&first);
    assert!(
        !text(&first.stderr).contains("hapi:"),
        "no notice when the keychain is used: {}",
        text(&first.stderr)
    );
    assert!(!desk.token_file().exists(), "no owner.token file");
    assert_eq!(mode(&desk.marker()), 0o600);
    let marker = std::fs::read_to_string(desk.marker()).unwrap();
    assert!(marker.contains(&format!("account: {}", desk.account())), "{marker}");
    assert!(!marker.contains(&token));

    // A later session on the same HOME reopens the same keyring.
    let second = desk.in_keyring(bin("hapi"), &["auth", "token"]).output().unwrap();
    assert_eq!(token_of(&second), token, "the same token every time");
    assert_eq!(
        desk.secret_tool_lookup().as_deref(),
        Some(token.as_str()),
        "libsecret sees it too"
    );

    // A real hub in its own session accepts it and says where it is kept.
    let (hub, url) = desk.start_hub(desk.in_keyring(bin("hapi"), &["hub"]), "hub.log");
    let (status, info) = hub_info(&url, &token);
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["credentials"], serde_json::json!({"store": "keychain"}));
    assert_eq!(info["version"], hapi_protocol::VERSION);
    assert!(info["machine_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(hub_info(&url, "not-the-token").0, 401);

    // `hapi claude` (the runner's lookup) finds the hub and the token by itself.
    let work = desk.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = desk.in_keyring(
        bin("hapi"),
        &["claude", "--prompt", "hello", "--cwd", work.to_str().unwrap()],
    );
    cmd.env("HAPI_CLAUDE_PATH", bin("fake-claude")).stdout(Stdio::piped());
    let mut session = Child::spawn("hapi claude", cmd, &desk.dir.path().join("claude.log"));
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(session.child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(
        !line.trim().is_empty(),
        "hapi claude printed no session id: {}",
        desk.log("claude.log")
    );
    drop(session);
    drop(hub);
    assert!(!desk.token_file().exists(), "still no token file");
}

#[test]
fn a_token_file_from_a_headless_run_moves_into_the_keychain() {
    let desk = Desk::new();
    let headless = token_of(&desk.headless(&["auth", "token"], None).output().unwrap());
    assert_eq!(std::fs::read_to_string(desk.token_file()).unwrap(), headless);
    assert_eq!(desk.secret_tool_lookup(), None, "not in the keychain yet");

    let moved = desk.in_keyring(bin("hapi"), &["auth", "token"]).output().unwrap();
    assert_eq!(token_of(&moved), headless, "the same token, moved");
    assert!(!desk.token_file().exists(), "the file is removed");
    assert_eq!(mode(&desk.marker()), 0o600, "a marker is left");
    assert_eq!(desk.secret_tool_lookup().as_deref(), Some(headless.as_str()));

    // A hub started inside the session afterwards uses it from the keychain.
    let (hub, url) = desk.start_hub(desk.in_keyring(bin("hapi"), &["hub"]), "hub.log");
    assert_eq!(hub_info(&url, &headless).1["credentials"]["store"], "keychain");
    drop(hub);
}

#[test]
fn without_a_keychain_the_token_file_is_used_and_everyone_is_told() {
    for bus in [None, Some("unix:path=/nonexistent/hapi-test/bus")] {
        let desk = Desk::new();
        let out = desk.headless(&["auth", "token"], bus).output().unwrap();
        let token = token_of(&out);
        let stderr = text(&out.stderr);
        let file = desk.token_file().canonicalize().unwrap();
        for part in [
            "hapi: no OS keychain is reachable",
            match bus {
                None => "DBUS_SESSION_BUS_ADDRESS is unset",
                Some(_) => "/nonexistent/hapi-test/bus",
            },
            &format!("kept in {} (mode 0600)", file.display()),
            "HAPI_KEYCHAIN=off",
        ] {
            assert!(stderr.contains(part), "{part:?} not in stderr:\n{stderr}");
        }
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), token);
        assert!(!desk.marker().exists());
        let again = desk.headless(&["auth", "token"], bus).output().unwrap();
        assert_eq!(token_of(&again), token, "the same token every time");

        // The hub logs it and tells the UI.
        let (hub, url) = desk.start_hub(desk.headless(&["hub"], bus), "hub.log");
        let (status, info) = hub_info(&url, &token);
        assert_eq!(status, 200);
        assert_eq!(info["credentials"]["store"], "file");
        let notice = info["credentials"]["notice"].as_str().unwrap();
        assert!(notice.starts_with("no OS keychain is reachable"), "{notice}");
        drop(hub);
        assert!(
            desk.log("hub.log").contains("no OS keychain is reachable"),
            "{}",
            desk.log("hub.log")
        );
    }
}

#[test]
fn hapi_keychain_off_keeps_the_file_even_with_a_keyring_at_hand() {
    let desk = Desk::new();
    let mut cmd = desk.in_keyring(bin("hapi"), &["auth", "token"]);
    cmd.env("HAPI_KEYCHAIN", "off");
    let out = cmd.output().unwrap();
    let token = token_of(&out);
    assert!(text(&out.stderr).contains("hapi: HAPI_KEYCHAIN=off: the owner-token is kept in"));
    assert_eq!(std::fs::read_to_string(desk.token_file()).unwrap(), token);
    assert_eq!(desk.secret_tool_lookup(), None, "the keychain is never touched");

    let mut cmd = desk.headless(&["auth", "token"], None);
    cmd.env("HAPI_KEYCHAIN", "sometimes");
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("HAPI_KEYCHAIN=\"sometimes\" is invalid"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn with_the_token_in_the_keychain_a_process_without_one_refuses_and_mints_nothing() {
    let desk = Desk::new();
    let token = token_of(&desk.in_keyring(bin("hapi"), &["auth", "token"]).output().unwrap());

    let refusals = [
        desk.headless(&["auth", "token"], None),
        desk.headless(&["auth", "token"], Some("unix:path=/nonexistent/hapi-test/bus")),
        {
            let mut off = desk.headless(&["auth", "token"], None);
            off.env("HAPI_KEYCHAIN", "off");
            off
        },
        {
            let mut hub = desk.headless(&["hub"], None);
            hub.env("HAPI_LISTEN_PORT", "0");
            hub
        },
    ];
    for mut cmd in refusals {
        let out = cmd.output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "must refuse; stdout {:?}", text(&out.stdout));
        assert!(text(&out.stdout).trim().len() < 64 && !text(&out.stdout).contains(&token));
        for part in [
            "is kept in the OS keychain",
            &desk.account(),
            "no keychain is reachable from this process",
            "inside the desktop session",
            "CLI_API_TOKEN",
            "No new token was created",
        ] {
            assert!(stderr.contains(part), "{part:?} not in stderr:\n{stderr}");
        }
        assert!(!desk.token_file().exists(), "no second token");
        assert!(!desk.hapi_home.join("hub.json").exists(), "no hub started");
    }

    // CLI_API_TOKEN is the way out for a headless process.
    let mut cmd = desk.headless(&["auth", "token"], None);
    cmd.env("CLI_API_TOKEN", &token);
    assert_eq!(token_of(&cmd.output().unwrap()), token);

    // And the keychain still has the one token.
    let again = desk.in_keyring(bin("hapi"), &["auth", "token"]).output().unwrap();
    assert_eq!(token_of(&again), token);
}

#[test]
fn concurrent_first_starts_with_and_without_the_keychain_agree_on_one_token() {
    let desk = Desk::new();
    let out_dir = desk.dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    // Inside one session: four `hapi auth token` with the keyring and four with
    // no bus, all at once.
    let script = r#"
        for i in 1 2 3 4; do
          ( "$@" > "$OUT/k$i" 2> "$OUT/k$i.err"; echo $? > "$OUT/k$i.rc" ) &
          ( env -u DBUS_SESSION_BUS_ADDRESS XDG_RUNTIME_DIR="$OUT" "$@" > "$OUT/h$i" 2> "$OUT/h$i.err"; echo $? > "$OUT/h$i.rc" ) &
        done
        wait
    "#;
    let mut cmd = desk.in_keyring("sh", &["-c", script, "sh"]);
    cmd.arg(bin("hapi")).args(["auth", "token"]).env("OUT", &out_dir);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    let read = |name: &str| std::fs::read_to_string(out_dir.join(name)).unwrap();
    let mut tokens = std::collections::HashSet::new();
    for i in 1..=4 {
        assert_eq!(read(&format!("k{i}.rc")).trim(), "0", "{}", read(&format!("k{i}.err")));
        tokens.insert(read(&format!("k{i}")).trim().to_owned());
        if read(&format!("h{i}.rc")).trim() == "0" {
            tokens.insert(read(&format!("h{i}")).trim().to_owned());
        } else {
            let err = read(&format!("h{i}.err"));
            assert!(err.contains("No new token was created"), "{err}");
        }
    }
    assert_eq!(tokens.len(), 1, "one token for everyone: {tokens:?}");
    let token = tokens.into_iter().next().unwrap();
    assert_eq!(token.len(), 64);
    assert_eq!(desk.secret_tool_lookup(), Some(token), "it ends in the keychain");
    assert!(!desk.token_file().exists());
}
