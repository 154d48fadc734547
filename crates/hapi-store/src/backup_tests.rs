//! Backups against real SQLite files: a live writer, corruption, restore, a full disk.
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hapi_protocol::AgentKind;
use rusqlite::params;

use super::*;
use crate::{Durability, Store};

fn quiet() -> impl FnMut(&str) {
    |_: &str| {}
}

/// A store at `dir/hapi.db` with `events` rows of ~1 KB each.
fn store_with_rows(dir: &Path, events: usize) -> Store {
    let store = Store::open(dir.join("hapi.db"), Durability::Normal).unwrap();
    let mut conn = store.writer().unwrap();
    let tx = conn.transaction().unwrap();
    crate::create_session(&tx, "s1", None, AgentKind::Claude, "/tmp", "hash").unwrap();
    {
        let mut insert = tx
            .prepare("INSERT INTO events (kind, session_id, body, created_at) VALUES ('message', 's1', ?1, 0)")
            .unwrap();
        let body = "x".repeat(1000);
        for _ in 0..events {
            insert.execute([&body]).unwrap();
        }
    }
    tx.commit().unwrap();
    store
}

fn add_session(store: &Store, id: &str) {
    let mut conn = store.writer().unwrap();
    let tx = conn.transaction().unwrap();
    crate::create_session(&tx, id, None, AgentKind::Claude, "/tmp", "hash").unwrap();
    tx.commit().unwrap();
}

fn session_ids(db: &Path) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT id FROM sessions ORDER BY id").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn a_backup_finishes_while_a_writer_keeps_writing_and_matches_its_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_rows(dir.path(), 20_000);
    let db = dir.path().join("hapi.db");

    // A writer inserting machines, one per transaction, as fast as it can.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        let mut conn = store.writer().unwrap();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let tx = conn.transaction().unwrap();
                tx.execute(
                    "INSERT INTO machines (id, name, created_at) VALUES (?1, 'm', 0)",
                    params![format!("{i:08}")],
                )
                .unwrap();
                tx.commit().unwrap();
                i += 1;
                written.store(i, Ordering::Relaxed);
            }
        })
    };
    while written.load(Ordering::Relaxed) < 100 {
        std::thread::sleep(Duration::from_millis(5));
    }

    let started = Instant::now();
    let before = written.load(Ordering::Relaxed);
    let meta = backup_now(&db, &backups_dir(dir.path()), &mut quiet()).unwrap();
    let took = started.elapsed();
    let during = written.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    eprintln!(
        "backup of {} events: {} bytes in {took:?}, {during} commits by the writer meanwhile",
        meta.tables["events"], meta.size_bytes
    );
    assert!(during > 0, "the writer kept committing during the backup");

    let path = backups_dir(dir.path()).join(&meta.file);
    assert!(parse_name(&meta.file).is_some(), "{}", meta.file);
    assert_eq!(read_meta(&path).unwrap().as_ref(), Some(&meta));
    assert_eq!(meta.tables["events"], 20_001, "the rows and the session event");
    assert_eq!(meta.schema_version, SCHEMA_VERSION);

    // One consistent snapshot: the machines in it are exactly the first N written.
    let copy = Connection::open(&path).unwrap();
    let (n, max): (i64, Option<String>) = copy
        .query_row("SELECT count(*), max(id) FROM machines", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(n as u64, meta.tables["machines"]);
    assert_eq!(max, Some(format!("{:08}", n - 1)));
    drop(copy);

    let verified = verify(&path, &mut quiet()).unwrap();
    assert!(verified.against_sidecar);
    assert_eq!(verified.tables, meta.tables);
    let recorded = read_meta(&path).unwrap().unwrap().last_verified.unwrap();
    assert!(recorded.ok, "{recorded:?}");
    let leftovers: Vec<_> = fs::read_dir(backups_dir(dir.path()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers.len(), 2, "the backup and its sidecar only: {leftovers:?}");
}

#[test]
fn verify_catches_a_corrupted_backup() {
    let dir = tempfile::tempdir().unwrap();
    let _store = store_with_rows(dir.path(), 2_000);
    let backups = backups_dir(dir.path());
    let meta = backup_now(&dir.path().join("hapi.db"), &backups, &mut quiet()).unwrap();
    let path = backups.join(&meta.file);
    verify(&path, &mut quiet()).unwrap();

    // Damage pages in the middle of the file.
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 8192].fill(0x5a);
    fs::write(&path, &bytes).unwrap();
    let err = verify(&path, &mut quiet()).unwrap_err();
    assert!(matches!(err, BackupError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("SHA-256"), "{err}");
    let recorded = read_meta(&path).unwrap().unwrap().last_verified.unwrap();
    assert!(!recorded.ok);

    // Without the sidecar, the integrity check still catches it.
    fs::remove_file(sidecar_path(&path)).unwrap();
    let err = verify(&path, &mut quiet()).unwrap_err();
    assert!(err.to_string().contains("integrity"), "{err}");

    // A backup whose row counts differ from its sidecar's (rows deleted, sidecar
    // rewritten with the new checksum): only the counts tell.
    let meta = backup_now(&dir.path().join("hapi.db"), &backups, &mut quiet()).unwrap();
    let path = backups.join(&meta.file);
    Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM events WHERE seq % 2 = 0", [])
        .unwrap();
    let mut changed = meta.clone();
    changed.size_bytes = fs::metadata(&path).unwrap().len();
    changed.sha256 = sha256_file(&path).unwrap();
    write_sidecar(&path, &changed).unwrap();
    let err = verify(&path, &mut quiet()).unwrap_err();
    assert!(
        err.to_string().contains("events: 2001 rows expected, 1001 rows found"),
        "{err}"
    );

    // Not a database at all.
    let garbage = backups.join("hapi-20200101-000000.db");
    fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
    let err = verify(&garbage, &mut quiet()).unwrap_err();
    assert!(matches!(err, BackupError::Invalid { .. }), "{err}");
    let scratch: Vec<_> = fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(scratch.is_empty(), "scratch copies are removed: {scratch:?}");
}

#[test]
fn verify_refuses_a_backup_from_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let _store = store_with_rows(dir.path(), 10);
    let backups = backups_dir(dir.path());
    let meta = backup_now(&dir.path().join("hapi.db"), &backups, &mut quiet()).unwrap();
    let path = backups.join(&meta.file);
    fs::remove_file(sidecar_path(&path)).unwrap();
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = verify(&path, &mut quiet()).unwrap_err();
    assert!(err.to_string().contains("newer than this hapi supports"), "{err}");
}

#[test]
fn restore_moves_the_old_database_aside_and_brings_back_the_backed_up_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hapi.db");
    let store = store_with_rows(dir.path(), 100);
    let backups = backups_dir(dir.path());
    let meta = backup_now(&db, &backups, &mut quiet()).unwrap();
    add_session(&store, "s2-after-the-backup");
    // Keep a reader open so that the WAL is still there when we restore.
    let reader = Connection::open(&db).unwrap();
    reader
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert!(sqlite_files(&db)[1].exists(), "hapi.db-wal exists");
    let replaced_before: Vec<String> = session_ids(&db);
    drop(store);

    let mut lines = Vec::new();
    let restored = restore(&db, &backups.join(&meta.file), &mut |l: &str| lines.push(l.to_owned())).unwrap();
    drop(reader);
    assert!(lines.iter().any(|l| l.contains("integrity")), "{lines:?}");
    let moved: Vec<_> = restored.moved_aside.iter().map(|(from, _)| file_name(from)).collect();
    assert!(moved.contains(&"hapi.db".to_owned()), "{moved:?}");
    assert!(moved.contains(&"hapi.db-wal".to_owned()), "{moved:?}");
    for (_, to) in &restored.moved_aside {
        assert!(to.exists(), "{} kept", to.display());
        assert!(file_name(to).starts_with("hapi.db.replaced-"), "{}", to.display());
    }
    // The replaced database, with its WAL, still holds what it held.
    let aside = &restored.moved_aside[0].1;
    assert_eq!(session_ids(aside), replaced_before);

    // The restored database opens as a store and has the backed-up rows only.
    let store = Store::open(&db, Durability::Normal).unwrap();
    assert_eq!(session_ids(&db), vec!["s1".to_owned()]);
    let events: i64 = store
        .read(|c| Ok(c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(events, 101, "100 rows and the session's event");
    assert!(!dir.path().join(".hapi.db.restoring").exists());
}

#[test]
fn restore_refuses_a_damaged_backup_and_leaves_the_database_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hapi.db");
    let store = store_with_rows(dir.path(), 100);
    let backups = backups_dir(dir.path());
    let meta = backup_now(&db, &backups, &mut quiet()).unwrap();
    drop(store);
    let path = backups.join(&meta.file);
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes.truncate(n / 2);
    fs::write(&path, &bytes).unwrap();
    let before = fs::read(&db).unwrap();
    let err = restore(&db, &path, &mut quiet()).unwrap_err();
    assert!(matches!(err, BackupError::Invalid { .. }), "{err}");
    assert_eq!(fs::read(&db).unwrap(), before, "untouched");
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("replaced")), "{names:?}");
}

#[test]
fn backups_are_named_by_time_listed_newest_first_and_pruned_keeping_a_verified_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hapi.db");
    let _store = store_with_rows(dir.path(), 10);
    let backups = backups_dir(dir.path());
    assert!(list(&backups).unwrap().is_empty(), "no directory, no backups");

    let at = |s: &str| {
        NaiveDateTime::parse_from_str(s, "%Y%m%d-%H%M%S")
            .unwrap()
            .and_utc()
            .timestamp_millis()
    };
    let conn = open_source(&db).unwrap();
    fs::create_dir_all(&backups).unwrap();
    let mut names = Vec::new();
    for stamp in [
        "20240101-000000",
        "20240102-000000",
        "20240102-000000",
        "20240103-000000",
    ] {
        let path = backup_path(&backups, at(stamp));
        backup_to(&conn, &path, &mut quiet()).unwrap();
        names.push(file_name(&path));
    }
    assert_eq!(
        names,
        [
            "hapi-20240101-000000.db",
            "hapi-20240102-000000.db",
            "hapi-20240102-000000-2.db",
            "hapi-20240103-000000.db"
        ]
    );
    fs::write(backups.join("notes.txt"), "not a backup").unwrap();
    let listed: Vec<_> = list(&backups).unwrap().iter().map(|e| e.name()).collect();
    assert_eq!(
        listed,
        [
            "hapi-20240103-000000.db",
            "hapi-20240102-000000-2.db",
            "hapi-20240102-000000.db",
            "hapi-20240101-000000.db"
        ]
    );

    // Only the oldest was verified: keeping 2 keeps it as well.
    verify(&backups.join("hapi-20240101-000000.db"), &mut quiet()).unwrap();
    let removed: Vec<_> = prune(&backups, 2).unwrap().iter().map(|p| file_name(p)).collect();
    assert_eq!(removed, ["hapi-20240102-000000.db"]);
    assert!(!backups.join("hapi-20240102-000000.db.json").exists());
    let listed: Vec<_> = list(&backups).unwrap().iter().map(|e| e.name()).collect();
    assert_eq!(
        listed,
        [
            "hapi-20240103-000000.db",
            "hapi-20240102-000000-2.db",
            "hapi-20240101-000000.db"
        ]
    );
    // Once a kept one is verified, the older one goes.
    verify(&backups.join("hapi-20240103-000000.db"), &mut quiet()).unwrap();
    let removed: Vec<_> = prune(&backups, 2).unwrap().iter().map(|p| file_name(p)).collect();
    assert_eq!(removed, ["hapi-20240101-000000.db"]);
    assert!(backups.join("notes.txt").exists(), "other files are never touched");
}

#[test]
fn a_missing_database_is_not_backed_up() {
    let dir = tempfile::tempdir().unwrap();
    let err = backup_now(&dir.path().join("hapi.db"), &backups_dir(dir.path()), &mut quiet()).unwrap_err();
    assert!(matches!(err, BackupError::NoDatabase(_)), "{err}");
    assert!(!dir.path().join("hapi.db").exists(), "never created");
}

#[test]
fn a_full_disk_fails_clearly_and_leaves_nothing_that_looks_like_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hapi.db");
    let _store = store_with_rows(dir.path(), 2_000);
    let backups = dir.path().join("small");
    let Ok(_fs) = hapi_testkit::SmallDisk::mount(&backups, "256k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let err = backup_now(&db, &backups, &mut quiet()).unwrap_err();
    assert!(matches!(err, BackupError::DiskFull { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("no space left"), "{message}");
    assert!(message.contains("nothing was kept"), "{message}");
    let left: Vec<_> = fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "nothing half-written: {left:?}");
    assert!(list(&backups).unwrap().is_empty());
}

#[test]
fn names_parse_and_other_files_do_not() {
    assert!(parse_name("hapi-20240102-030405.db").is_some());
    assert_eq!(parse_name("hapi-20240102-030405-3.db").map(|k| k.1), Some(3));
    for other in [
        "hapi.db",
        "hapi-2024.db",
        "hapi-20240102-030405.db.json",
        ".hapi-20240102-030405.db.1.partial",
        "hapi-20240102-030405-x.db",
        "hapi-20241302-030405.db",
    ] {
        assert!(parse_name(other).is_none(), "{other}");
    }
}

#[test]
fn a_database_with_damaged_pages_does_not_open_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hapi.db");
    drop(store_with_rows(dir.path(), 2_000));
    let mut bytes = fs::read(&db).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 8192].fill(0x5a);
    fs::write(&db, &bytes).unwrap();
    let err = Store::open(&db, Durability::Normal).err().expect("refused");
    assert!(matches!(err, crate::StoreError::Corrupt { .. }), "{err:?}");
    assert_eq!(fs::read(&db).unwrap(), bytes, "never replaced");
}
