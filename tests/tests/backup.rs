//! `hapi backup` against the real `hapi` binary: backing up under a running hub,
//! listing, verifying, refusing to restore under a hub, restoring after it
//! stops, scheduled backups, and a damaged database stopping the hub.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hapi_e2e::{Child, Hub, bin};
use serde_json::{Value, json};

fn hapi(home: &Path) -> Command {
    let mut cmd = Command::new(bin("hapi"));
    cmd.env("HAPI_HOME", home)
        .env("HAPI_NO_RUNNER_AUTOSTART", "1")
        // The token file, never the developer's keychain (see keychain.rs).
        .env("HAPI_KEYCHAIN", "off")
        .env("RUST_BACKTRACE", "0")
        .env_remove("HAPI_BACKUP_INTERVAL")
        .env_remove("HAPI_BACKUP_KEEP")
        .env_remove("CLI_API_TOKEN")
        .env_remove("HAPI_HUB_URL")
        .env_remove("HAPI_LISTEN_PORT")
        .env_remove("HAPI_LISTEN_HOST");
    cmd
}

fn run(home: &Path, args: &[&str]) -> Output {
    hapi(home).args(args).output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command that must succeed; returns its stdout and stderr.
fn ok(home: &Path, args: &[&str]) -> (String, String) {
    let out = run(home, args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "hapi {args:?} failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// `hapi hub` on `dir/hapi-home` (as `Hub::start`), with extra environment;
/// scheduled backups off unless `env` says otherwise.
fn start_hub(dir: &Path, env: &[(&str, &str)]) -> Hub {
    let home = dir.join("hapi-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = hapi(&home);
    cmd.arg("hub")
        .env("HAPI_LISTEN_PORT", "0")
        .env("HAPI_BACKUP_INTERVAL", "off")
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let process = Child::spawn("hapi hub", cmd, &dir.join("hub.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = loop {
        let state = std::fs::read_to_string(home.join("hub.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        if let Some(state) = state
            && state["pid"] == process.pid()
        {
            break state;
        }
        assert!(
            Instant::now() < deadline,
            "the hub did not start; see {}",
            dir.join("hub.log").display()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    Hub {
        process,
        url: state["url"].as_str().unwrap().to_owned(),
        token: std::fs::read_to_string(home.join("owner.token"))
            .unwrap()
            .trim()
            .to_owned(),
        home,
        http: reqwest::Client::new(),
    }
}

async fn create_session(hub: &Hub) -> String {
    let (status, body) = hub
        .post("/api/sessions", json!({"agent": "claude", "cwd": "/tmp"}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["session"]["id"].as_str().unwrap().to_owned()
}

async fn session_status(hub: &Hub, id: &str) -> u16 {
    hub.http
        .get(format!("{}/api/sessions/{id}", hub.url))
        .bearer_auth(&hub.token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn backups(home: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(home.join("backups"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "db"));
    files.sort();
    files
}

#[test]
fn backup_under_a_running_hub_then_restore_after_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut hub = start_hub(dir.path(), &[]);
    let home = hub.home.clone();
    let before = rt.block_on(create_session(&hub));

    // A backup while the hub runs (and writes).
    let started = Instant::now();
    let (stdout, stderr) = ok(&home, &["backup", "now"]);
    eprintln!("hapi backup now took {:?}: {stdout}", started.elapsed());
    assert!(
        stdout.contains("Backup written") && stdout.contains("verified"),
        "{stdout}"
    );
    assert!(
        stderr.contains("VACUUM INTO") && stderr.contains("integrity"),
        "one line per step: {stderr}"
    );
    let files = backups(&home);
    assert_eq!(files.len(), 1, "{files:?}");
    let file = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(file.starts_with("hapi-") && file.ends_with(".db"), "{file}");
    let after = rt.block_on(create_session(&hub));

    let (stdout, _) = ok(&home, &["backup", "list"]);
    assert!(stdout.contains(&file), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with(&file)).unwrap();
    assert!(line.contains("ok ("), "verified when written: {line}");
    assert!(line.contains("KB"), "size: {line}");
    let (stdout, _) = ok(&home, &["backup", "verify"]);
    assert!(
        stdout.starts_with("OK:") && stdout.contains(&file),
        "the newest: {stdout}"
    );
    let (stdout, _) = ok(&home, &["backup", "verify", files[0].to_str().unwrap()]);
    assert!(stdout.starts_with("OK:"), "{stdout}");

    // No restore under a running hub: it names the hub and changes nothing.
    let out = run(&home, &["backup", "restore", &file]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("A hub is running") && stderr.contains(&format!("PID {}", hub.process.pid())),
        "{stderr}"
    );
    assert!(stderr.contains("Nothing was changed"), "{stderr}");
    assert_eq!(
        rt.block_on(session_status(&hub, &after)),
        200,
        "the hub's data is untouched"
    );

    // Stopped: the restore takes the hub lock, moves the database aside, and brings back the backup.
    hub.process.stop();
    let (stdout, stderr) = ok(&home, &["backup", "restore", &file]);
    assert!(stderr.contains("Took the hub lock"), "{stderr}");
    assert!(stderr.contains("verifying") && stderr.contains("moved"), "{stderr}");
    assert!(stdout.contains("Moved the previous database aside"), "{stdout}");
    assert!(stdout.contains("hapi.db.replaced-"), "{stdout}");
    assert!(!home.join("hub.lock").exists(), "the lock is released");
    let aside: Vec<String> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("hapi.db.replaced-"))
        .collect();
    assert!(!aside.is_empty(), "the replaced database is kept");

    let hub = start_hub(dir.path(), &[]);
    rt.block_on(async {
        assert_eq!(
            session_status(&hub, &before).await,
            200,
            "created before the backup: back"
        );
        assert_eq!(
            session_status(&hub, &after).await,
            404,
            "created after the backup: gone"
        );
    });
    drop(hub);

    // Without a hub, `backup now` works as well.
    let (stdout, _) = ok(&home, &["backup", "now"]);
    assert!(stdout.contains("Backup written"), "{stdout}");
    assert_eq!(backups(&home).len(), 2);
}

#[test]
fn a_damaged_database_stops_the_hub_naming_backup_restore_which_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut hub = start_hub(dir.path(), &[]);
    let home = hub.home.clone();
    let id = rt.block_on(create_session(&hub));
    ok(&home, &["backup", "now"]);
    hub.process.stop();

    // Garbage over every page but the first (the header and the schema).
    let db = home.join("hapi.db");
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 16 * 1024, "{} bytes", bytes.len());
    bytes[4096..].fill(0x42);
    std::fs::write(&db, &bytes).unwrap();
    // No WAL either: its pages would be checkpointed into the file, which could
    // then no longer be compared byte for byte.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(home.join(format!("hapi.db{suffix}")));
    }
    // The hub must exit by itself, with its error on stderr.
    let start = |home: &Path| {
        let mut cmd = hapi(home);
        cmd.arg("hub").env("HAPI_LISTEN_PORT", "0").stdout(Stdio::null());
        let log = home.join("failed-start.log");
        let mut hub = Child::spawn("hapi hub", cmd, &log);
        let status = hub.wait_exit(Duration::from_secs(30));
        let stderr = std::fs::read_to_string(&log).unwrap();
        assert!(
            status.is_some_and(|s| !s.success()),
            "the hub must refuse to start: {status:?}\n{stderr}"
        );
        stderr
    };
    let stderr = start(&home);
    assert!(stderr.contains("corrupt") && stderr.contains("hapi.db"), "{stderr}");
    assert!(
        stderr.contains("hapi backup restore") && stderr.contains("hapi backup list"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let now = std::fs::read(&db).unwrap();
    let first_difference = now.iter().zip(&bytes).position(|(a, b)| a != b);
    assert!(
        now.len() == bytes.len() && first_difference.is_none(),
        "never replaced by a new database: {} bytes, was {}; first difference at {first_difference:?}",
        now.len(),
        bytes.len()
    );

    // A file that is not a database at all says the same.
    let other = dir.path().join("other-home");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("hapi.db"), vec![0x42u8; 4096]).unwrap();
    let stderr = start(&other);
    assert!(stderr.contains("hapi backup restore"), "{stderr}");

    // The restore puts the backup in place and the hub starts with the session.
    let file = backups(&home)[0].clone();
    let (stdout, _) = ok(&home, &["backup", "restore", file.to_str().unwrap()]);
    assert!(stdout.contains("hapi.db.replaced-"), "{stdout}");
    let hub = start_hub(dir.path(), &[]);
    assert_eq!(rt.block_on(session_status(&hub, &id)), 200);
}

#[test]
fn the_hub_backs_up_on_its_schedule_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let out = hapi(dir.path())
        .arg("hub")
        .env("HAPI_LISTEN_PORT", "0")
        .env("HAPI_BACKUP_INTERVAL", "every day")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("HAPI_BACKUP_INTERVAL") && stderr.contains("every day"),
        "{stderr}"
    );

    let mut hub = start_hub(dir.path(), &[("HAPI_BACKUP_INTERVAL", "1s"), ("HAPI_BACKUP_KEEP", "2")]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(dir.path().join("hub.log")).unwrap_or_default();
        if log.matches("backup written and verified").count() >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "no scheduled backups:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    }
    hub.process.stop();
    let log = std::fs::read_to_string(dir.path().join("hub.log")).unwrap();
    assert!(log.contains("scheduled backups on"), "{log}");
    assert_eq!(backups(&hub.home).len(), 2, "keeps the newest 2");
    let (stdout, _) = ok(&hub.home, &["backup", "list"]);
    assert_eq!(stdout.matches(" ok (").count(), 2, "{stdout}");
}
