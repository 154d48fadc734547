//! Restoring a backup over the live database, with the hub stopped.
use std::fs;
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::{
    BackupError, Progress, RemoveOnDrop, Restored, Result, copy_synced, count_rows, describe_differences, file_name,
    io_err, open_read_only, parent, sqlite_files, sync_dir, verify,
};

/// Replaces the database at `db_path` with `backup`. **The hub must be stopped**
/// (the caller holds the hub lock). Verifies first; then moves the current
/// database and its `-wal`, `-shm` and `-journal` aside as
/// `<db>.replaced-YYYYMMDD-HHMMSS[-wal|-shm|-journal]` (kept, so nothing is lost),
/// and copies the backup into place under a temporary name, fsynced, then renamed.
/// If the copy fails, the moved files are put back.
pub fn restore(db_path: &Path, backup: &Path, progress: Progress<'_>) -> Result<Restored> {
    progress(&format!("verifying {}", backup.display()));
    let verified = verify(backup, progress)?;

    let dir = parent(db_path);
    let incoming = dir.join(format!(".{}.restoring", file_name(db_path)));
    let guard = RemoveOnDrop(vec![incoming.clone()]);
    progress(&format!("copying the backup next to {}", db_path.display()));
    copy_synced(backup, &incoming)?;

    let moved_aside = move_aside(db_path)?;
    for (from, to) in &moved_aside {
        progress(&format!("moved {} aside to {}", from.display(), to.display()));
    }
    if let Err(e) = fs::rename(&incoming, db_path) {
        for (from, to) in moved_aside.iter().rev() {
            let _ = fs::rename(to, from);
        }
        return Err(io_err("put the backup in place as", db_path)(e));
    }
    drop(guard);
    sync_dir(&dir);

    progress("checking the restored database");
    let conn = open_read_only(db_path)?;
    let tables = count_rows(&conn, db_path)?;
    if tables != verified.tables {
        return Err(BackupError::Invalid {
            path: db_path.to_owned(),
            reason: format!(
                "the restored database's row counts differ from the backup's: {}",
                describe_differences(&verified.tables, &tables)
            ),
        });
    }
    Ok(Restored { verified, moved_aside })
}

/// Moves `db_path` and its companion files to `<db>.replaced-<stamp>…`.
fn move_aside(db_path: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let stamp = Utc::now().format("%Y%m%d-%H%M%S").to_string();
    let mut base = format!("{}.replaced-{stamp}", db_path.display());
    let mut n = 1;
    while sqlite_files(Path::new(&base)).iter().any(|p| p.exists()) {
        n += 1;
        base = format!("{}.replaced-{stamp}-{n}", db_path.display());
    }
    let mut moved = Vec::new();
    for (from, to) in sqlite_files(db_path).into_iter().zip(sqlite_files(Path::new(&base))) {
        if !from.exists() {
            continue;
        }
        if let Err(e) = fs::rename(&from, &to) {
            for (from, to) in moved.iter().rev() {
                let _ = fs::rename(to, from);
            }
            return Err(io_err("move aside", &from)(e));
        }
        moved.push((from, to));
    }
    Ok(moved)
}
