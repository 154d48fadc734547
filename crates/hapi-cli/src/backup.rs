//! `hapi backup now|list|verify [FILE]|restore FILE`: backups of `$HAPI_HOME/hapi.db`
//! in `$HAPI_HOME/backups` (see `docs/backups.md`).
//!
//! Progress goes to stderr, one line per step; results go to stdout.
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use hapi_hub::HubConfig;
use hapi_protocol::{HUB_STATE_FILE, HubStateFile};
use hapi_runner::{LockOutcome, RunnerLock};
use hapi_store::backup::{self, BackupEntry};

use crate::hub::HUB_LOCK_FILE;

#[derive(Subcommand)]
pub enum BackupCommand {
    /// Back up the database now, then verify the backup (works while the hub runs).
    Now,
    /// List the backups, newest first, with their size and verification.
    List,
    /// Verify a backup (default: the newest) by restoring it into a scratch copy.
    Verify {
        /// A backup file, or its name in $HAPI_HOME/backups.
        file: Option<PathBuf>,
    },
    /// Replace the database with a backup (the hub must be stopped). The current
    /// database is moved aside, never deleted.
    Restore {
        /// A backup file, or its name in $HAPI_HOME/backups.
        file: PathBuf,
    },
}

pub fn run(command: BackupCommand) -> Result<i32> {
    let config = HubConfig::from_env().context("invalid configuration")?;
    let home = config.home;
    match command {
        BackupCommand::Now => now(&home),
        BackupCommand::List => list(&home),
        BackupCommand::Verify { file } => verify(&home, file),
        BackupCommand::Restore { file } => restore(&home, &file),
    }?;
    Ok(0)
}

fn step(line: &str) {
    eprintln!("  {line}");
}

fn now(home: &Path) -> Result<()> {
    let db = home.join("hapi.db");
    let dir = backup::backups_dir(home);
    eprintln!("Backing up {}", db.display());
    let meta = backup::backup_now(&db, &dir, &mut step).context("backup failed")?;
    let path = dir.join(&meta.file);
    eprintln!("Verifying {}", path.display());
    let verified = backup::verify(&path, &mut step)
        .with_context(|| format!("the backup was written to {} but failed verification", path.display()))?;
    println!(
        "Backup written: {} ({}, {} rows in {} tables, {} ms; verified in {} ms)",
        path.display(),
        size(meta.size_bytes),
        meta.tables.values().sum::<u64>(),
        meta.tables.len(),
        meta.duration_ms,
        verified.duration.as_millis()
    );
    Ok(())
}

fn list(home: &Path) -> Result<()> {
    let dir = backup::backups_dir(home);
    let all = backup::list(&dir)?;
    if all.is_empty() {
        println!("No backups in {} (make one with `hapi backup now`).", dir.display());
        return Ok(());
    }
    println!("Backups in {}, newest first:", dir.display());
    let width = all.iter().map(|b| b.name().len()).max().unwrap_or(0);
    println!("{:width$}  {:19}  {:>9}  VERIFIED", "FILE", "CREATED (UTC)", "SIZE");
    for entry in &all {
        println!(
            "{:width$}  {:19}  {:>9}  {}",
            entry.name(),
            created(entry),
            size(entry.size_bytes),
            verification(entry)
        );
    }
    Ok(())
}

fn created(entry: &BackupEntry) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(entry.created_at_ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn verification(entry: &BackupEntry) -> String {
    let Some(meta) = &entry.meta else {
        return "no metadata (verify checks integrity only)".into();
    };
    match &meta.last_verified {
        None => "not yet".into(),
        Some(v) if v.ok => format!("ok ({})", v.at),
        Some(v) => format!("FAILED ({}): {}", v.at, v.error.as_deref().unwrap_or("")),
    }
}

fn verify(home: &Path, file: Option<PathBuf>) -> Result<()> {
    let dir = backup::backups_dir(home);
    let path = match file {
        Some(file) => resolve(&dir, &file)?,
        None => match backup::list(&dir)?.into_iter().next() {
            Some(newest) => newest.path,
            None => bail!(
                "there are no backups in {} (make one with `hapi backup now`)",
                dir.display()
            ),
        },
    };
    eprintln!("Verifying {}", path.display());
    let verified = backup::verify(&path, &mut step)?;
    let rows = verified.tables.values().sum::<u64>();
    if verified.against_sidecar {
        println!(
            "OK: {} passes the integrity check, opens with this hapi (schema {}), and its {rows} rows in {} \
             tables match what was recorded at backup time ({} ms).",
            path.display(),
            verified.schema_version,
            verified.tables.len(),
            verified.duration.as_millis()
        );
    } else {
        println!(
            "OK, with a caveat: {} passes the integrity check and opens with this hapi (schema {}, {rows} rows), \
             but it has no {} sidecar, so its row counts could not be compared.",
            path.display(),
            verified.schema_version,
            backup::sidecar_path(&path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn restore(home: &Path, file: &Path) -> Result<()> {
    let dir = backup::backups_dir(home);
    let path = resolve(&dir, file)?;
    let db = home.join("hapi.db");
    hapi_runner::create_home(home)?;
    // Holding the hub lock keeps a hub from starting on a half-restored database.
    let lock = match RunnerLock::try_acquire_file(&home.join(HUB_LOCK_FILE))? {
        LockOutcome::Acquired(lock) => lock,
        LockOutcome::Held(holder) => {
            let at = hub_url(home, holder.pid)
                .map(|u| format!(" at {u}"))
                .unwrap_or_default();
            bail!(
                "A hub is running for HAPI_HOME={} (PID {}{at}); a restore would replace the database under it. \
                 Stop it first (Ctrl-C in its terminal, `kill {}`, or quit HAPI Desktop), then run \
                 `hapi backup restore {}` again. Nothing was changed.",
                home.display(),
                holder.pid,
                holder.pid,
                file.display()
            );
        }
    };
    eprintln!(
        "Took the hub lock: no hub can start on {} until the restore is done.",
        home.display()
    );
    eprintln!("Restoring {} into {}", path.display(), db.display());
    let restored = backup::restore(&db, &path, &mut step);
    lock.release();
    let restored = restored.context("restore failed; the database was not replaced")?;
    if restored.moved_aside.is_empty() {
        println!("There was no database to move aside.");
    } else {
        println!("Moved the previous database aside (kept, delete it when you no longer need it):");
        for (from, to) in &restored.moved_aside {
            println!("  {} -> {}", from.display(), to.display());
        }
    }
    let tables = &restored.verified.tables;
    println!(
        "Restored {} into {}: {} rows in {} tables. Start the hub again with `hapi hub`.",
        path.display(),
        db.display(),
        tables.values().sum::<u64>(),
        tables.len()
    );
    Ok(())
}

/// A backup named on the command line: a path, or a name in the backups directory.
fn resolve(dir: &Path, file: &Path) -> Result<PathBuf> {
    if file.is_file() {
        return Ok(file.to_owned());
    }
    let in_dir = dir.join(file);
    if file.components().count() == 1 && in_dir.is_file() {
        return Ok(in_dir);
    }
    bail!(
        "no backup {} (looked in the current directory and in {}; `hapi backup list` shows them)",
        file.display(),
        dir.display()
    )
}

/// The URL the hub with this PID recorded in hub.json.
fn hub_url(home: &Path, pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(home.join(HUB_STATE_FILE)).ok()?;
    let state: HubStateFile = serde_json::from_str(&text).ok()?;
    (state.pid == pid).then_some(state.url)
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
