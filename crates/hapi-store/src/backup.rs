//! Backups of the database, and restoring one.
//!
//! - **Writing** ([`backup_to`]): `VACUUM INTO` a temporary name in the backup's
//!   directory. It copies one consistent snapshot (a read transaction) and, unlike
//!   the step-by-step online backup API, finishes while another connection keeps
//!   writing; in WAL mode it never blocks the writer. The copy is fsynced, its
//!   tables are counted and hashed, and only then does it get its final name
//!   (`hapi-YYYYMMDD-HHMMSS.db`, UTC), so a half-written file (full disk, crash,
//!   interrupt) never looks like a backup. A sidecar `<file>.json`
//!   ([`BackupMeta`]) records what the backup holds.
//! - **Verifying** ([`verify`]): the file must still match its recorded size and
//!   SHA-256; a scratch copy of it is checked with `PRAGMA integrity_check`, its
//!   schema must not be newer than this build, its row counts must equal the
//!   sidecar's, and it must open as a store (migrating, as a restore would). The
//!   result is written back into the sidecar.
//! - **Restoring** ([`restore`], only with the hub stopped): verify, move the
//!   current database and its `-wal`/`-shm` aside (`hapi.db.replaced-…`, kept),
//!   then copy the backup into place (temporary name, fsync, rename).
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::clock::{now_ms, rfc3339};
use crate::schema::SCHEMA_VERSION;

/// The directory in `$HAPI_HOME` that holds backups.
pub const BACKUPS_DIR: &str = "backups";

/// Partial files older than this are left over from a crash and are removed.
const STALE_PARTIAL: Duration = Duration::from_secs(3600);

/// Progress lines for long steps ("copying …", "checking integrity …").
pub type Progress<'a> = &'a mut dyn FnMut(&str);

/// Everything that can go wrong while backing up, verifying or restoring.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The device is full (or over quota). Nothing half-written is left.
    #[error(
        "no space left on the device while writing {}; the partial file was removed and nothing was kept. \
         Free some space (or keep fewer backups with HAPI_BACKUP_KEEP) and try again",
        path.display()
    )]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// A file could not be read, written, renamed or removed.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", …).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// SQLite failed.
    #[error("cannot {what} {}: {source}", path.display())]
    Sqlite {
        /// What was being done.
        what: &'static str,
        /// The database file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
    /// There is no database to back up.
    #[error("there is no database at {}: nothing to back up", .0.display())]
    NoDatabase(PathBuf),
    /// The backup was stopped (the hub is shutting down).
    #[error("the backup was interrupted; the partial file was removed")]
    Interrupted,
    /// The backup is damaged, changed since it was written, or unusable by this build.
    #[error("backup {} failed verification: {reason}", path.display())]
    Invalid {
        /// The backup.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Result alias for backups.
pub type Result<T, E = BackupError> = std::result::Result<T, E>;

/// What a backup holds, kept beside it as `<file>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupMeta {
    /// The backup's file name.
    pub file: String,
    /// When it was taken (RFC 3339, UTC).
    pub created_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// `PRAGMA user_version` of the backup.
    pub schema_version: i64,
    /// The hapi version that wrote it.
    pub app_version: String,
    /// File size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// How long writing it took.
    pub duration_ms: u64,
    /// Row count of every table in the backup.
    pub tables: BTreeMap<String, u64>,
    /// The latest [`verify`] of this backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified: Option<Verification>,
}

/// The outcome of one [`verify`], as recorded in the sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Whether the backup passed.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A backup found by [`list`].
#[derive(Debug, Clone)]
pub struct BackupEntry {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// When it was taken (from its name), ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Its sidecar, if present and readable.
    pub meta: Option<BackupMeta>,
}

impl BackupEntry {
    /// The file name.
    pub fn name(&self) -> String {
        file_name(&self.path)
    }
}

/// What [`verify`] checked.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The backup.
    pub path: PathBuf,
    /// Schema version in the backup.
    pub schema_version: i64,
    /// Row counts of the restored copy.
    pub tables: BTreeMap<String, u64>,
    /// Whether the counts (and checksum) were compared with a sidecar; `false`
    /// for a backup without one (only integrity and schema were checked).
    pub against_sidecar: bool,
    /// How long it took.
    pub duration: Duration,
}

/// What [`restore`] did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The verification that preceded it.
    pub verified: Verified,
    /// Where the previous database files were moved (empty if there was none).
    pub moved_aside: Vec<(PathBuf, PathBuf)>,
}

/// `$HAPI_HOME/backups`.
pub fn backups_dir(home: &Path) -> PathBuf {
    home.join(BACKUPS_DIR)
}

/// The sidecar of a backup: `<file>.json`.
pub fn sidecar_path(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Opens the live database at `db_path` for a backup (read-write, never creating it).
pub fn open_source(db_path: &Path) -> Result<Connection> {
    if !db_path.exists() {
        return Err(BackupError::NoDatabase(db_path.to_owned()));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db_path, flags).map_err(sqlite("open", db_path))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(sqlite("open", db_path))?;
    Ok(conn)
}

/// A free name for a backup taken at `at_ms` in `dir`: `hapi-YYYYMMDD-HHMMSS.db`,
/// or with `-2`, `-3`, … if a backup was already taken that second.
pub fn backup_path(dir: &Path, at_ms: i64) -> PathBuf {
    let stamp = DateTime::<Utc>::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .format("%Y%m%d-%H%M%S")
        .to_string();
    let mut n = 1;
    loop {
        let name = if n == 1 {
            format!("hapi-{stamp}.db")
        } else {
            format!("hapi-{stamp}-{n}.db")
        };
        let path = dir.join(name);
        if !path.exists() && !sidecar_path(&path).exists() {
            return path;
        }
        n += 1;
    }
}

/// Backs up the database at `db_path` into a new file in `dir` (created if
/// needed) and returns its metadata. Works while the hub runs.
pub fn backup_now(db_path: &Path, dir: &Path, progress: Progress<'_>) -> Result<BackupMeta> {
    let conn = open_source(db_path)?;
    create_private_dir(dir)?;
    backup_to(&conn, &backup_path(dir, now_ms()), progress)
}

/// Writes a backup of `conn`'s main database to `path` (which must not exist),
/// and its sidecar. See the module documentation for the steps.
pub fn backup_to(conn: &Connection, path: &Path, progress: Progress<'_>) -> Result<BackupMeta> {
    let started = Instant::now();
    let created_at_ms = now_ms();
    let dir = parent(path);
    create_private_dir(&dir)?;
    remove_stale_partials(&dir);
    let name = file_name(path);
    let partial = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let guard = RemoveOnDrop(sqlite_files(&partial));
    let partial_str = partial.to_str().ok_or_else(|| BackupError::Io {
        what: "write",
        path: partial.clone(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path is not UTF-8"),
    })?;
    let source = conn.path().map(PathBuf::from).unwrap_or_default();

    progress(&format!("writing a snapshot of {} (VACUUM INTO)", source.display()));
    conn.execute("VACUUM INTO ?1", [partial_str]).map_err(|e| {
        use rusqlite::ErrorCode::{DiskFull, OperationInterrupted};
        match e.sqlite_error_code() {
            Some(DiskFull) => BackupError::DiskFull { path: path.to_owned() },
            Some(OperationInterrupted) => BackupError::Interrupted,
            _ => BackupError::Sqlite {
                what: "write a snapshot of",
                path: source.clone(),
                source: e,
            },
        }
    })?;
    sync_file(&partial)?;

    progress("counting rows and computing the checksum");
    let (schema_version, tables) = {
        let copy = open_read_only(&partial)?;
        let version = schema_version(&copy, &partial)?;
        (version, count_rows(&copy, &partial)?)
    };
    let size_bytes = fs::metadata(&partial).map_err(io_err("read", &partial))?.len();
    let sha256 = sha256_file(&partial)?;

    // The final name appears only now, complete and synced. A hard link fails
    // rather than replace a backup another process just named the same.
    fs::hard_link(&partial, path)
        .or_else(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Err(e),
            _ if path.exists() => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
            _ => fs::rename(&partial, path),
        })
        .map_err(io_err("name the backup", path))?;
    drop(guard);
    let meta = BackupMeta {
        file: name,
        created_at: rfc3339(created_at_ms),
        created_at_ms,
        schema_version,
        app_version: hapi_protocol::VERSION.to_owned(),
        size_bytes,
        sha256,
        duration_ms: started.elapsed().as_millis() as u64,
        tables,
        last_verified: None,
    };
    if let Err(e) = write_sidecar(path, &meta) {
        // A backup is the file and its sidecar; without the sidecar, take it back.
        let _ = fs::remove_file(path);
        return Err(e);
    }
    sync_dir(&dir);
    Ok(meta)
}

/// Reads the sidecar of `backup`; `Ok(None)` if it has none.
pub fn read_meta(backup: &Path) -> Result<Option<BackupMeta>> {
    let path = sidecar_path(backup);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| BackupError::Io {
        what: "parse",
        path,
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })
}

/// The backups in `dir`, newest first. A missing directory has none.
pub fn list(dir: &Path) -> Result<Vec<BackupEntry>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        let path = entry.path();
        let Some(key) = parse_name(&file_name(&path)) else {
            continue;
        };
        let Ok(metadata) = entry.metadata() else { continue };
        if !metadata.is_file() {
            continue;
        }
        let meta = read_meta(&path).ok().flatten();
        found.push((
            key,
            BackupEntry {
                size_bytes: metadata.len(),
                created_at_ms: key.0,
                meta,
                path,
            },
        ));
    }
    found.sort_by_key(|b| std::cmp::Reverse(b.0));
    Ok(found.into_iter().map(|(_, entry)| entry).collect())
}

/// Removes all but the newest `keep` backups in `dir` (and their sidecars), but
/// never the newest backup that passed verification: if none of the kept ones
/// did, that one stays too. Returns the removed files.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let all = list(dir)?;
    let passed = |e: &BackupEntry| {
        e.meta
            .as_ref()
            .and_then(|m| m.last_verified.as_ref())
            .is_some_and(|v| v.ok)
    };
    let keep = keep.max(1);
    let mut spare = if all.iter().take(keep).any(passed) {
        None
    } else {
        all.iter().skip(keep).position(passed).map(|i| i + keep)
    };
    let mut removed = Vec::new();
    for (i, entry) in all.iter().enumerate().skip(keep) {
        if spare == Some(i) {
            spare = None;
            continue;
        }
        fs::remove_file(&entry.path).map_err(io_err("remove", &entry.path))?;
        let _ = fs::remove_file(sidecar_path(&entry.path));
        removed.push(entry.path.clone());
    }
    Ok(removed)
}

/// Verifies `backup` (see the module documentation) and records the outcome in
/// its sidecar. A failed check is [`BackupError::Invalid`].
pub fn verify(backup: &Path, progress: Progress<'_>) -> Result<Verified> {
    let meta = read_meta(backup)?;
    let outcome = verify_inner(backup, meta.as_ref(), progress);
    if let Some(mut meta) = meta {
        let (ok, error) = match &outcome {
            Ok(_) => (true, None),
            Err(BackupError::Invalid { reason, .. }) => (false, Some(reason.clone())),
            Err(other) => (false, Some(other.to_string())),
        };
        meta.last_verified = Some(Verification {
            at: rfc3339(now_ms()),
            ok,
            error,
        });
        // Recording the result is a convenience; the verification itself stands.
        if let Err(e) = write_sidecar(backup, &meta) {
            tracing::warn!(error = %e, "cannot record the verification in the sidecar");
        }
    }
    outcome
}

fn verify_inner(backup: &Path, meta: Option<&BackupMeta>, progress: Progress<'_>) -> Result<Verified> {
    let started = Instant::now();
    let invalid = |reason: String| BackupError::Invalid {
        path: backup.to_owned(),
        reason,
    };
    let size = match fs::metadata(backup) {
        Ok(m) => m.len(),
        Err(e) => return Err(io_err("read", backup)(e)),
    };
    if let Some(meta) = meta {
        if size != meta.size_bytes {
            return Err(invalid(format!(
                "its size is {size} bytes, but {} bytes were written",
                meta.size_bytes
            )));
        }
        progress("comparing the checksum with the one recorded at backup time");
        let sha256 = sha256_file(backup)?;
        if sha256 != meta.sha256 {
            return Err(invalid(
                "the file changed since it was written (SHA-256 differs)".into(),
            ));
        }
    }

    let dir = parent(backup);
    let scratch = dir.join(format!(".{}.{}.verify", file_name(backup), std::process::id()));
    let _guard = RemoveOnDrop(sqlite_files(&scratch));
    progress(&format!("restoring it into a scratch copy ({size} bytes)"));
    copy_synced(backup, &scratch)?;

    progress("checking integrity (PRAGMA integrity_check)");
    let (schema_version, tables) = {
        let conn = Connection::open_with_flags(
            &scratch,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| invalid(format!("it does not open as a database: {e}")))?;
        let problems = integrity_check(&conn).map_err(|e| invalid(format!("the integrity check failed: {e}")))?;
        if problems != ["ok"] {
            return Err(invalid(format!("the integrity check failed: {}", problems.join("; "))));
        }
        let version = schema_version(&conn, &scratch).map_err(|e| invalid(e.to_string()))?;
        if version > SCHEMA_VERSION {
            return Err(invalid(format!(
                "its schema version {version} is newer than this hapi supports ({SCHEMA_VERSION}); upgrade hapi"
            )));
        }
        if version < 1 {
            return Err(invalid("it is not a HAPI database (schema version 0)".into()));
        }
        progress("counting rows");
        let tables = count_rows(&conn, &scratch).map_err(|e| invalid(e.to_string()))?;
        (version, tables)
    };
    if let Some(meta) = meta {
        if schema_version != meta.schema_version {
            return Err(invalid(format!(
                "its schema version is {schema_version}, but {} was recorded",
                meta.schema_version
            )));
        }
        if tables != meta.tables {
            return Err(invalid(format!(
                "row counts differ from the ones recorded at backup time: {}",
                describe_differences(&meta.tables, &tables)
            )));
        }
    }
    progress("opening it as this hapi would (migrating if older)");
    crate::Store::open(&scratch, crate::Durability::Normal)
        .map_err(|e| invalid(format!("this hapi cannot open it: {e}")))?;
    Ok(Verified {
        path: backup.to_owned(),
        schema_version,
        tables,
        against_sidecar: meta.is_some(),
        duration: started.elapsed(),
    })
}

/// A database file and its companions: the file, `-wal`, `-shm`, `-journal`.
fn sqlite_files(db: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        })
        .collect()
}

/// `hapi-YYYYMMDD-HHMMSS[-N].db` → (ms since the epoch, N).
fn parse_name(name: &str) -> Option<(i64, u32)> {
    let rest = name.strip_prefix("hapi-")?.strip_suffix(".db")?;
    let (stamp, n) = match rest.get(15..) {
        Some("") => (rest, 1),
        Some(tail) => (rest.get(..15)?, tail.strip_prefix('-')?.parse().ok()?),
        None => return None,
    };
    let at = NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S").ok()?;
    Some((at.and_utc().timestamp_millis(), n))
}

fn describe_differences(expected: &BTreeMap<String, u64>, found: &BTreeMap<String, u64>) -> String {
    let mut names: Vec<&String> = expected.keys().chain(found.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| expected.get(*n) != found.get(*n))
        .map(|n| {
            let show = |v: Option<&u64>| v.map_or("no table".to_owned(), |v| format!("{v} rows"));
            format!("{n}: {} expected, {} found", show(expected.get(n)), show(found.get(n)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn open_read_only(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags).map_err(sqlite("open", path))
}

fn schema_version(conn: &Connection, path: &Path) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite("read the schema version of", path))
}

/// Row count of every table (SQLite's internal ones aside).
fn count_rows(conn: &Connection, path: &Path) -> Result<BTreeMap<String, u64>> {
    let count = || -> rusqlite::Result<BTreeMap<String, u64>> {
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        )?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        names
            .into_iter()
            .map(|name| {
                let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
                let n: i64 = conn.query_row(&sql, [], |r| r.get(0))?;
                Ok((name, n as u64))
            })
            .collect()
    };
    count().map_err(sqlite("count the rows of", path))
}

/// `PRAGMA integrity_check`: `["ok"]`, or up to 20 problems.
fn integrity_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA integrity_check(20)")?;
    stmt.query_map([], |r| r.get::<_, String>(0))?.collect()
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(io_err("read", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Copies `from` to `to` (replacing it) and fsyncs the copy.
fn copy_synced(from: &Path, to: &Path) -> Result<()> {
    let _ = fs::remove_file(to);
    fs::copy(from, to).map_err(|e| write_err(to, e))?;
    sync_file(to)
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| write_err(path, e))
}

/// Creates `dir` (and its parents) if needed; on Unix readable by the owner only,
/// like `$HAPI_HOME`: backups hold whole conversations.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_err("create", dir))
}

/// Makes renames in `dir` durable; best effort (not every platform can).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes the sidecar of `backup`: temporary file, fsync, rename.
fn write_sidecar(backup: &Path, meta: &BackupMeta) -> Result<()> {
    let path = sidecar_path(backup);
    let tmp = parent(&path).join(format!(".{}.{}.tmp", file_name(&path), std::process::id()));
    let guard = RemoveOnDrop(vec![tmp.clone()]);
    let json = serde_json::to_vec_pretty(meta).expect("metadata serializes");
    fs::write(&tmp, json).map_err(|e| write_err(&tmp, e))?;
    sync_file(&tmp)?;
    fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
    drop(guard);
    Ok(())
}

/// Removes the hidden temporary files (`.hapi-….partial`, `.verify`, `.tmp`) that
/// a crashed backup or verification left behind.
fn remove_stale_partials(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let temporary = [".partial", ".verify", ".tmp"].iter().any(|end| {
            ["", "-journal", "-wal", "-shm"]
                .iter()
                .any(|s| name.ends_with(&format!("{end}{s}")))
        });
        if !(name.starts_with(".hapi-") && temporary) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_PARTIAL);
        if old {
            tracing::info!(file = %entry.path().display(), "removing a partial backup file left by an earlier run");
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

fn write_err(path: &Path, e: io::Error) -> BackupError {
    if is_disk_full(&e) {
        BackupError::DiskFull { path: path.to_owned() }
    } else {
        io_err("write", path)(e)
    }
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BackupError + use<> {
    let path = path.to_owned();
    move |source| BackupError::Io { what, path, source }
}

fn sqlite(what: &'static str, path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError + use<> {
    let path = path.to_owned();
    move |source| {
        if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            BackupError::DiskFull { path }
        } else {
            BackupError::Sqlite { what, path, source }
        }
    }
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Removes these files when dropped (the temporary files of a step that failed).
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

// Restoring is its own step (the hub stopped, files moved aside): its own file.
#[path = "backup_restore.rs"]
mod restore;
pub use restore::restore;

#[cfg(test)]
#[path = "backup_tests.rs"]
mod tests;
