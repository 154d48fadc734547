//! Scheduled backups: every `HAPI_BACKUP_INTERVAL` (default a day) the hub writes
//! a backup of its database into `$HAPI_HOME/backups`, verifies it, and keeps the
//! newest `HAPI_BACKUP_KEEP` (default 30). See `hapi_store::backup` for how a
//! backup is written and verified, and `docs/backups.md`.
//!
//! Each run happens on a blocking thread with its own connection: `VACUUM INTO`
//! reads one snapshot, which in WAL mode never blocks the writer. The first run
//! is due one interval after the newest existing backup (so a hub restarted every
//! day still backs up daily), but never sooner than a minute after start.
//! Shutdown interrupts a backup in progress; its partial file is removed.
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hapi_store::backup::{self, BackupError};
use hapi_store::rusqlite::InterruptHandle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::HubConfigError;

/// Default time between two scheduled backups.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Default number of backups kept.
pub const DEFAULT_KEEP: usize = 30;
/// Never sooner than this after the hub starts (unless the interval is shorter).
const FIRST_DELAY: Duration = Duration::from_secs(60);
/// After a failed backup, the next try comes at most this much later.
const RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How long shutdown waits for an interrupted run to clean up.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// When the hub backs up its database, and how many backups it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSchedule {
    /// Time between backups (`HAPI_BACKUP_INTERVAL`); `None` turns them off.
    pub interval: Option<Duration>,
    /// Backups kept (`HAPI_BACKUP_KEEP`); older ones are removed after each
    /// scheduled backup.
    pub keep: usize,
}

impl Default for BackupSchedule {
    fn default() -> Self {
        BackupSchedule {
            interval: Some(DEFAULT_INTERVAL),
            keep: DEFAULT_KEEP,
        }
    }
}

impl BackupSchedule {
    /// No scheduled backups (tests and embedding via `HubConfig::for_home`).
    pub const OFF: BackupSchedule = BackupSchedule {
        interval: None,
        keep: DEFAULT_KEEP,
    };

    /// From the values of `HAPI_BACKUP_INTERVAL` and `HAPI_BACKUP_KEEP` (unset: defaults).
    pub fn from_vars(interval: Option<String>, keep: Option<String>) -> Result<Self, HubConfigError> {
        let mut schedule = BackupSchedule::default();
        if let Some(value) = interval {
            schedule.interval = parse_interval(&value).map_err(|reason| HubConfigError::Invalid {
                var: "HAPI_BACKUP_INTERVAL",
                value,
                reason,
            })?;
        }
        if let Some(value) = keep {
            schedule.keep = match value.trim().parse::<usize>() {
                Ok(n) if (1..=10_000).contains(&n) => n,
                _ => {
                    return Err(HubConfigError::Invalid {
                        var: "HAPI_BACKUP_KEEP",
                        value,
                        reason: "expected how many backups to keep, from 1 to 10000".into(),
                    });
                }
            };
        }
        Ok(schedule)
    }
}

/// `off`, seconds (`3600`), or a number with a unit: `90s`, `30m`, `6h`, `1d`.
fn parse_interval(value: &str) -> Result<Option<Duration>, String> {
    let v = value.trim().to_ascii_lowercase();
    if v == "off" {
        return Ok(None);
    }
    let usage = "expected `off`, seconds (e.g. 3600) or a number with s, m, h or d (e.g. 6h, 1d)";
    let (number, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v.as_str(), "s"),
    };
    let seconds: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(usage.into()),
    };
    let n: u64 = number.parse().map_err(|_| usage.to_owned())?;
    if n == 0 {
        return Err(format!("{usage}; use `off` to turn scheduled backups off"));
    }
    n.checked_mul(seconds)
        .filter(|s| *s <= 365 * 86_400)
        .map(|s| Some(Duration::from_secs(s)))
        .ok_or_else(|| "longer than a year".into())
}

/// The running schedule; [`Scheduler::stop`] ends it.
pub(crate) struct Scheduler {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Scheduler {
    /// Starts backing up `db` into `dir` on `schedule`; `None` if it is off.
    pub(crate) fn start(db: PathBuf, dir: PathBuf, schedule: BackupSchedule) -> Option<Scheduler> {
        let interval = schedule.interval?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(db, dir, interval, schedule.keep, stopped));
        Some(Scheduler { stop, task })
    }

    /// Stops the schedule, interrupting a backup in progress.
    pub(crate) async fn stop(self) {
        self.stop.send_replace(true);
        if tokio::time::timeout(STOP_WAIT, self.task).await.is_err() {
            tracing::warn!("a backup is still finishing; not waiting for it");
        }
    }
}

async fn run(db: PathBuf, dir: PathBuf, interval: Duration, keep: usize, mut stopped: watch::Receiver<bool>) {
    let first = first_delay(&dir, interval);
    tracing::info!(
        every = %human(interval),
        keep,
        dir = %dir.display(),
        first_in = %human(first),
        "scheduled backups on"
    );
    let mut delay = first;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop_requested(&mut stopped) => return,
        }
        let interrupt: Arc<Mutex<Option<InterruptHandle>>> = Arc::default();
        let mut task = tokio::task::spawn_blocking({
            let (db, dir, interrupt) = (db.clone(), dir.clone(), interrupt.clone());
            move || run_once(&db, &dir, keep, &interrupt)
        });
        let outcome = tokio::select! {
            outcome = &mut task => outcome,
            _ = stop_requested(&mut stopped) => {
                let handle = interrupt.lock().expect("interrupt slot").take();
                if let Some(handle) = handle {
                    handle.interrupt();
                }
                let _ = task.await;
                return;
            }
        };
        delay = match outcome {
            Ok(Ok(())) => interval,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "scheduled backup failed");
                interval.min(RETRY_AFTER)
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduled backup task failed");
                interval.min(RETRY_AFTER)
            }
        };
    }
}

/// Resolves once a stop is requested (or the [`Scheduler`] is dropped).
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// One scheduled backup: write, verify, prune; logged.
fn run_once(
    db: &std::path::Path,
    dir: &std::path::Path,
    keep: usize,
    interrupt: &Mutex<Option<InterruptHandle>>,
) -> Result<(), BackupError> {
    let conn = backup::open_source(db)?;
    *interrupt.lock().expect("interrupt slot") = Some(conn.get_interrupt_handle());
    backup::create_private_dir(dir)?;
    let path = backup::backup_path(dir, hapi_store::now_ms());
    let mut step = |s: &str| tracing::debug!(step = s, "backup");
    let meta = backup::backup_to(&conn, &path, &mut step)?;
    drop(conn);
    let verified = backup::verify(&path, &mut step)?;
    let removed = backup::prune(dir, keep)?;
    tracing::info!(
        file = %path.display(),
        size_bytes = meta.size_bytes,
        rows = meta.tables.values().sum::<u64>(),
        write_ms = meta.duration_ms,
        verify_ms = verified.duration.as_millis() as u64,
        removed = removed.len(),
        "backup written and verified"
    );
    Ok(())
}

/// How long until the first scheduled backup: one interval after the newest
/// backup, but at least [`FIRST_DELAY`] (or the interval, if shorter) from now.
fn first_delay(dir: &std::path::Path, interval: Duration) -> Duration {
    let floor = interval.min(FIRST_DELAY);
    let newest = backup::list(dir).ok().and_then(|l| l.first().map(|b| b.created_at_ms));
    let Some(newest) = newest else { return floor };
    let age = Duration::from_millis((hapi_store::now_ms() - newest).max(0) as u64);
    interval.saturating_sub(age).max(floor)
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s >= 86_400 && s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s >= 3600 && s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s >= 60 && s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(interval: Option<&str>, keep: Option<&str>) -> Result<BackupSchedule, String> {
        BackupSchedule::from_vars(interval.map(Into::into), keep.map(Into::into)).map_err(|e| e.to_string())
    }

    #[test]
    fn intervals_and_retention_parse_and_bad_values_name_the_variable() {
        let day = Duration::from_secs(86_400);
        assert_eq!(schedule(None, None).unwrap(), BackupSchedule::default());
        assert_eq!(schedule(None, None).unwrap().interval, Some(day));
        assert_eq!(schedule(Some("1d"), None).unwrap().interval, Some(day));
        assert_eq!(
            schedule(Some("6h"), None).unwrap().interval,
            Some(Duration::from_secs(6 * 3600))
        );
        assert_eq!(
            schedule(Some("30m"), None).unwrap().interval,
            Some(Duration::from_secs(1800))
        );
        assert_eq!(
            schedule(Some("3600"), None).unwrap().interval,
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            schedule(Some("90s"), None).unwrap().interval,
            Some(Duration::from_secs(90))
        );
        assert_eq!(schedule(Some("OFF"), None).unwrap().interval, None);
        assert_eq!(schedule(None, Some("7")).unwrap().keep, 7);
        for bad in ["0", "daily", "1w", "-1h", "h", "400d", ""] {
            let err = schedule(Some(bad), None).unwrap_err();
            assert!(err.contains("HAPI_BACKUP_INTERVAL"), "{bad}: {err}");
        }
        assert!(schedule(Some("0"), None).unwrap_err().contains("off"));
        for bad in ["0", "-3", "many", "100000"] {
            let err = schedule(None, Some(bad)).unwrap_err();
            assert!(err.contains("HAPI_BACKUP_KEEP"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_first_backup_is_due_an_interval_after_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let day = Duration::from_secs(86_400);
        assert_eq!(first_delay(dir.path(), day), FIRST_DELAY, "none yet: soon");
        assert_eq!(first_delay(dir.path(), Duration::from_secs(5)), Duration::from_secs(5));
        let hours_ago = |h: i64| {
            let path = backup::backup_path(dir.path(), hapi_store::now_ms() - h * 3_600_000);
            std::fs::write(&path, b"").unwrap();
        };
        hours_ago(30);
        assert_eq!(first_delay(dir.path(), day), FIRST_DELAY, "overdue: soon");
        hours_ago(6);
        let delay = first_delay(dir.path(), day);
        assert!(
            delay > Duration::from_secs(17 * 3600) && delay <= Duration::from_secs(18 * 3600),
            "{delay:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_schedule_writes_verified_backups_keeps_the_newest_and_stops() {
        let home = tempfile::tempdir().unwrap();
        let db = home.path().join("hapi.db");
        drop(hapi_store::Store::open(&db, hapi_store::Durability::Normal).unwrap());
        let dir = backup::backups_dir(home.path());
        let schedule = BackupSchedule {
            interval: Some(Duration::from_secs(1)),
            keep: 2,
        };
        let scheduler = Scheduler::start(db, dir.clone(), schedule).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let all = backup::list(&dir).unwrap();
            seen.extend(all.iter().map(|b| b.name()));
            let verified = all
                .iter()
                .filter(|b| {
                    b.meta
                        .as_ref()
                        .and_then(|m| m.last_verified.as_ref())
                        .is_some_and(|v| v.ok)
                })
                .count();
            assert!(all.len() <= 3, "pruned after each run: {all:?}");
            // Three runs or more, and the newest two kept, both verified.
            if seen.len() >= 3 && all.len() == 2 && verified == 2 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no backups: {all:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        scheduler.stop().await;
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("hapi-") && (n.ends_with(".db") || n.ends_with(".db.json"))),
            "backups and sidecars only: {names:?}"
        );
        assert!(Scheduler::start(PathBuf::new(), PathBuf::new(), BackupSchedule::OFF).is_none());
    }
}
