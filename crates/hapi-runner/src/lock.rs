//! The runner lock, `runner.state.json.lock`: one runner per `$HAPI_HOME`.
//!
//! It is created with `O_EXCL` (`create_new`) and holds `PID START_TIME`, the
//! holder's [`ProcessId`]. A lock whose holder is gone, or whose PID now names
//! another process (different start time), is stale: it is removed, with a log
//! line, while holding an advisory lock on `runner.state.json.lock.recover`, so
//! two processes recovering at once can never delete each other's fresh lock.
//!
//! The same kind of lock, on another file, keeps a second `hapi hub` off a
//! `$HAPI_HOME` ([`RunnerLock::try_acquire_file`] on `hub.lock`).
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Result, RunnerError};
use crate::process::ProcessId;
use crate::state::{lock_path, remove_if_present};

/// A lock file younger than this with no content yet is being written.
const WRITE_GRACE: Duration = Duration::from_secs(5);

/// The lock, held by this process until [`RunnerLock::release`].
#[derive(Debug)]
pub struct RunnerLock {
    path: PathBuf,
    owner: ProcessId,
}

/// What [`RunnerLock::try_acquire`] found.
#[derive(Debug)]
pub enum LockOutcome {
    /// This process holds the lock now.
    Acquired(RunnerLock),
    /// A live process holds it.
    Held(ProcessId),
}

enum Content {
    Holder(ProcessId),
    /// Created but not written yet (or emptied): alive if young.
    Unwritten {
        young: bool,
    },
    Missing,
}

fn read_content(path: &Path) -> Result<Content> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Content::Missing),
        Err(e) => return Err(RunnerError::io("cannot read", path, e)),
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(pid)), Some(Ok(start_time))) => Ok(Content::Holder(ProcessId {
            pid: pid as u32,
            start_time,
        })),
        _ => {
            let age = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or_default();
            Ok(Content::Unwritten {
                young: age < WRITE_GRACE,
            })
        }
    }
}

/// What a lock file is called in log lines ("runner lock" for the runner's).
fn kind(path: &Path) -> &'static str {
    if path.file_name().and_then(|n| n.to_str()) == Some(crate::state::LOCK_FILE) {
        "runner lock"
    } else {
        "lock"
    }
}

impl RunnerLock {
    /// Takes the runner lock of `home` for this process, recovering a stale one.
    pub fn try_acquire(home: &Path) -> Result<LockOutcome> {
        Self::try_acquire_file(&lock_path(home))
    }

    /// Takes a lock of this kind at `path` (whose directory must exist) for
    /// this process, recovering a stale one.
    pub fn try_acquire_file(path: &Path) -> Result<LockOutcome> {
        let path = path.to_owned();
        let me = ProcessId::current();
        loop {
            if Self::create(&path, me)? {
                return Ok(LockOutcome::Acquired(RunnerLock { path, owner: me }));
            }
            match read_content(&path)? {
                Content::Holder(holder) if holder.is_alive() => return Ok(LockOutcome::Held(holder)),
                Content::Unwritten { young: true } => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Content::Missing => continue,
                _ => {}
            }
            Self::recover_stale(&path)?;
        }
    }

    /// Creates the lock file exclusively; `Ok(false)` if it exists.
    fn create(path: &Path, me: ProcessId) -> Result<bool> {
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(path);
        match file {
            Ok(mut file) => {
                let written = writeln!(file, "{} {}", me.pid, me.start_time).and_then(|()| file.sync_all());
                written.map_err(|e| RunnerError::io("cannot write", path, e))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(RunnerError::io("cannot create", path, e)),
        }
    }

    /// Removes the lock if, checked again under the recovery lock, it is stale.
    fn recover_stale(path: &Path) -> Result<()> {
        let mut guard_path = path.as_os_str().to_owned();
        guard_path.push(".recover");
        let guard_path = PathBuf::from(guard_path);
        let guard = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&guard_path)
            .map_err(|e| RunnerError::io("cannot open", &guard_path, e))?;
        guard
            .lock()
            .map_err(|e| RunnerError::io("cannot lock", &guard_path, e))?;
        match read_content(path)? {
            Content::Holder(holder) if !holder.is_alive() => {
                let reason = if ProcessId::of(holder.pid).is_some() {
                    "its PID now belongs to another process"
                } else {
                    "its process is gone"
                };
                tracing::warn!(
                    pid = holder.pid,
                    "recovering stale {} {} ({reason})",
                    kind(path),
                    path.display()
                );
                remove_if_present(path);
            }
            Content::Unwritten { young: false } => {
                tracing::warn!(
                    "recovering stale {} {} (it was never written)",
                    kind(path),
                    path.display()
                );
                remove_if_present(path);
            }
            _ => {}
        }
        drop(guard);
        Ok(())
    }

    /// The live holder of the runner lock in `home`, if any.
    pub fn holder(home: &Path) -> Result<Option<ProcessId>> {
        Self::holder_of_file(&lock_path(home))
    }

    /// The live holder of the lock at `path`, if any.
    pub fn holder_of_file(path: &Path) -> Result<Option<ProcessId>> {
        Ok(match read_content(path)? {
            Content::Holder(holder) if holder.is_alive() => Some(holder),
            _ => None,
        })
    }

    /// Who holds this lock (this process).
    pub fn owner(&self) -> ProcessId {
        self.owner
    }

    /// Whether the lock file still names this process.
    pub fn still_owned(&self) -> bool {
        matches!(read_content(&self.path), Ok(Content::Holder(h)) if h == self.owner)
    }

    /// Removes the lock file, if it is still this process's.
    pub fn release(self) {
        if self.still_owned() {
            remove_if_present(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_by_self_then_stale_after_death() {
        let dir = tempfile::tempdir().unwrap();
        let LockOutcome::Acquired(lock) = RunnerLock::try_acquire(dir.path()).unwrap() else {
            panic!("free lock must be acquired");
        };
        match RunnerLock::try_acquire(dir.path()).unwrap() {
            LockOutcome::Held(holder) => assert_eq!(holder, ProcessId::current()),
            LockOutcome::Acquired(_) => panic!("a live lock is never taken twice"),
        }
        lock.release();
        assert!(!lock_path(dir.path()).exists());

        // A dead holder's lock is recovered.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        std::fs::write(lock_path(dir.path()), format!("{pid} 12345\n")).unwrap();
        assert!(matches!(
            RunnerLock::try_acquire(dir.path()).unwrap(),
            LockOutcome::Acquired(_)
        ));

        // So is a live PID whose start time differs (a reused PID).
        std::fs::remove_file(lock_path(dir.path())).unwrap();
        let me = ProcessId::current();
        std::fs::write(lock_path(dir.path()), format!("{} {}\n", me.pid, me.start_time + 7)).unwrap();
        assert!(matches!(
            RunnerLock::try_acquire(dir.path()).unwrap(),
            LockOutcome::Acquired(_)
        ));
    }
}
