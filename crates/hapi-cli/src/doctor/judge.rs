//! The judgements of `hapi doctor` that need no process, file or network:
//! thresholds, parsing of what the hub and the runner write, and wording of
//! sizes and durations. Kept apart so they are tested on their own.
use std::time::Duration;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone as _};

use super::Level;

/// A heartbeat may be this late before it counts as missed: writing the state
/// file, a slow disk or a busy machine delay it a little.
const HEARTBEAT_SLACK: Duration = Duration::from_secs(5);

/// How late the runner's last heartbeat (`lastHeartbeat` in `runner.state.json`)
/// is, given its interval: one missed beat is a warning (a busy machine, a
/// suspended laptop that just woke), three are a hung runner.
pub(crate) fn heartbeat(age: Duration, interval: Duration) -> Level {
    if age <= interval * 2 + HEARTBEAT_SLACK {
        Level::Ok
    } else if age <= interval * 3 + HEARTBEAT_SLACK {
        Level::Warning
    } else {
        Level::Problem
    }
}

/// The heartbeat interval a runner logged when it started (`heartbeat_ms=N` on
/// its `[RUNNER RUN] starting` line). The state file does not record it, and the
/// runner may have been started with another `HAPI_RUNNER_HEARTBEAT_INTERVAL`
/// than the one in doctor's environment.
pub(crate) fn heartbeat_ms_in_log(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .filter(|line| line.contains("[RUNNER RUN] starting"))
        .filter_map(|line| line.split_whitespace().find_map(|w| w.strip_prefix("heartbeat_ms=")))
        .filter_map(|ms| ms.parse().ok())
        .next()
}

/// The runner logs (`runner-YYYYMMDD-HHMMSS[-N].log`, local time, one per
/// runner start) of `names` started within `window` before `now`.
pub(crate) fn runner_logs_within<'a>(
    names: impl IntoIterator<Item = &'a str>,
    now: DateTime<Local>,
    window: Duration,
) -> Vec<&'a str> {
    let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    names
        .into_iter()
        .filter(|name| runner_log_time(name).is_some_and(|t| t >= since && t <= now))
        .collect()
}

/// How a runner's log ends: a runner that stopped (on request, or replaced by
/// a newer one) says `runner stopped` last; one that crashed, was killed or
/// could not start does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunnerEnd {
    Stopped,
    /// Stopped because the `hapi` binary changed and a newer runner took over.
    Replaced,
    Crashed,
}

pub(crate) fn runner_end(log_tail: &str) -> RunnerEnd {
    if !log_tail.contains("runner stopped") {
        RunnerEnd::Crashed
    } else if log_tail.contains("replaced by a newer runner") {
        RunnerEnd::Replaced
    } else {
        RunnerEnd::Stopped
    }
}

fn runner_log_time(name: &str) -> Option<DateTime<Local>> {
    let stamp = name.strip_prefix("runner-")?.strip_suffix(".log")?;
    let stamp = stamp.get(..15)?;
    let naive = NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S").ok()?;
    Local.from_local_datetime(&naive).earliest()
}

/// A scheduled backup may take this long (writing, then verifying a scratch
/// copy) before a missing one counts as missed.
const BACKUP_GRACE: Duration = Duration::from_secs(600);

/// The age of the newest backup against the schedule. With none at all, the
/// hub's first one is due a minute after it starts (or one interval, if
/// shorter); a failed one is retried within the hour.
pub(crate) fn backups(newest: Option<Duration>, interval: Option<Duration>, hub_up: Option<Duration>) -> Level {
    match (newest, interval) {
        // Off on purpose: nothing protects the database but manual backups.
        (_, None) => Level::Warning,
        (Some(age), Some(every)) if age <= every + Duration::from_secs(3600) + BACKUP_GRACE => Level::Ok,
        (Some(_), Some(_)) => Level::Warning,
        (None, Some(every)) => match hub_up {
            Some(up) if up <= every.min(Duration::from_secs(60)) + BACKUP_GRACE => Level::Ok,
            _ => Level::Warning,
        },
    }
}

/// Free space where `$HAPI_HOME` lives. Below 100 MB writes are about to fail;
/// below 1 GB, 2 % of the disk, or twice the database (a backup is a full copy,
/// written beside it) it is time to act.
pub(crate) fn disk(free: u64, total: u64, db_bytes: u64) -> Level {
    const MB: u64 = 1024 * 1024;
    if free < 100 * MB {
        Level::Problem
    } else if free < 1024 * MB || free.saturating_mul(50) < total || free < db_bytes.saturating_mul(2) {
        Level::Warning
    } else {
        Level::Ok
    }
}

/// Pending approvals that wait longer than `limit` while nothing follows the
/// hub's live events (no UI window, no desktop app, no phone): nobody is told.
/// With followers, a long wait is a person who has not answered yet.
pub(crate) fn approvals(oldest_wait: Option<Duration>, limit: Duration, followers: Option<u64>) -> Level {
    match (oldest_wait, followers) {
        (Some(wait), Some(0)) if wait > limit => Level::Problem,
        (Some(wait), _) if wait > limit => Level::Warning,
        _ => Level::Ok,
    }
}

/// The value of the series `name` with exactly `labels` in a Prometheus text
/// exposition (`name{a="x",b="y"} 1.5`).
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    series(text, name).find_map(|(found, value)| {
        let mut found = found;
        found.sort_unstable();
        let mut wanted: Vec<(String, String)> =
            labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        wanted.sort_unstable();
        (found == wanted).then_some(value)
    })
}

/// The sum over every series of `name` (whatever its labels); `None` when the
/// exposition has no such series.
pub(crate) fn metric_sum(text: &str, name: &str) -> Option<f64> {
    series(text, name).map(|(_, v)| v).reduce(|a, b| a + b)
}

/// Every sample of `name`: its labels and its value.
fn series<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (Vec<(String, String)>, f64)> + 'a {
    text.lines().filter(|l| !l.starts_with('#')).filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        let (labels, value) = match rest.strip_prefix('{') {
            Some(inner) => {
                let (labels, value) = inner.split_once('}')?;
                (parse_labels(labels)?, value)
            }
            None if rest.starts_with(' ') => (Vec::new(), rest),
            // Another metric whose name starts with this one.
            None => return None,
        };
        let value = value.split_whitespace().next()?.parse().ok()?;
        Some((labels, value))
    })
}

fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => value.push(chars.next()?.1),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_owned(), value));
        rest = after[end + 1..].trim_start_matches(',').trim();
    }
    Some(labels)
}

/// `3d 4h`, `2h 5m`, `4m 10s`, `12 s`; a zero second unit is left out (`1d`, `1m`).
pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let pair = |big: u64, big_unit: &str, small: u64, small_unit: &str| match small {
        0 => format!("{big}{big_unit}"),
        _ => format!("{big}{big_unit} {small}{small_unit}"),
    };
    if days > 0 {
        pair(days, "d", hours, "h")
    } else if hours > 0 {
        pair(hours, "h", minutes, "m")
    } else if minutes > 0 {
        pair(minutes, "m", seconds, "s")
    } else {
        format!("{seconds} s")
    }
}

/// `512 B`, `96.0 KB`, `1.5 GB` (1024-based).
pub(crate) fn human_bytes(n: u64) -> String {
    let mut value = n as f64;
    for unit in ["B", "KB", "MB", "GB"] {
        if value < 1024.0 {
            return if unit == "B" {
                format!("{n} B")
            } else {
                format!("{value:.1} {unit}")
            };
        }
        value /= 1024.0;
    }
    format!("{value:.1} TB")
}

/// How long ago an RFC 3339 time was (zero if it is in the future).
pub(crate) fn age_of(rfc3339: &str, now: DateTime<chrono::Utc>) -> Option<Duration> {
    let at = DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some((now - at.with_timezone(&chrono::Utc)).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_heartbeat_is_late_after_two_intervals_and_stale_after_three() {
        let minute = S(60);
        assert_eq!(heartbeat(S(0), minute), Level::Ok);
        assert_eq!(heartbeat(S(125), minute), Level::Ok);
        assert_eq!(heartbeat(S(126), minute), Level::Warning);
        assert_eq!(heartbeat(S(185), minute), Level::Warning);
        assert_eq!(heartbeat(S(186), minute), Level::Problem);
        // A 1 s heartbeat (the tests' runners) is judged on its own interval.
        assert_eq!(heartbeat(S(6), S(1)), Level::Ok);
        assert_eq!(heartbeat(S(9), S(1)), Level::Problem);
    }

    #[test]
    fn the_interval_comes_from_the_runners_start_line() {
        let log = "2026-11-25T19:00:00.1Z  INFO hapi_cli::runner: [RUNNER RUN] starting heartbeat_ms=60000 embedded_in=None\n\
                   2026-11-25T19:00:00.2Z  INFO hapi_runner: heartbeat_ms=5 is not a start line\n\
                   2026-11-25T19:10:00.1Z  INFO hapi_cli::runner: [RUNNER RUN] starting heartbeat_ms=1000 embedded_in=None\n";
        assert_eq!(heartbeat_ms_in_log(log), Some(1000));
        assert_eq!(heartbeat_ms_in_log("no start line"), None);
    }

    #[test]
    fn runner_starts_are_counted_from_the_log_names() {
        let now = Local.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let names = [
            "runner-20261125-115000.log",
            "runner-20261125-115000-1.log",
            "runner-20261125-113000.log",
            "runner-20261125-105959.log",
            "app-20261125-115500.log",
            "runner-garbage.log",
        ];
        assert_eq!(runner_logs_within(names, now, S(3600)).len(), 3);
        assert_eq!(
            runner_logs_within(names, now, S(600)),
            ["runner-20261125-115000.log", "runner-20261125-115000-1.log"]
        );
    }

    #[test]
    fn a_runner_log_without_its_last_line_is_a_crash() {
        let stopped = "INFO runner shutting down; sessions keep running\nINFO runner stopped\n";
        let replaced =
            "INFO version mismatch: the CLI binary changed\nINFO runner stopped\nINFO replaced by a newer runner\n";
        let crashed = "INFO [RUNNER RUN] starting heartbeat_ms=60000\n";
        let failed = "ERROR cannot start the runner: cannot bind\n";
        assert_eq!(runner_end(stopped), RunnerEnd::Stopped);
        assert_eq!(runner_end(replaced), RunnerEnd::Replaced);
        assert_eq!(runner_end(crashed), RunnerEnd::Crashed);
        assert_eq!(runner_end(failed), RunnerEnd::Crashed);
    }

    #[test]
    fn backups_are_judged_against_the_schedule() {
        let day = S(86_400);
        assert_eq!(backups(Some(S(3600)), Some(day), None), Level::Ok);
        assert_eq!(
            backups(Some(day + S(3000)), Some(day), None),
            Level::Ok,
            "a retry is due"
        );
        assert_eq!(backups(Some(day * 2), Some(day), None), Level::Warning);
        assert_eq!(
            backups(None, Some(day), Some(S(60))),
            Level::Ok,
            "the first one is not done yet"
        );
        assert_eq!(
            backups(None, Some(day), Some(S(3600))),
            Level::Warning,
            "the first one is overdue"
        );
        assert_eq!(backups(None, Some(day), None), Level::Warning);
        assert_eq!(backups(Some(S(1)), None, None), Level::Warning, "scheduled backups off");
    }

    #[test]
    fn disk_space_thresholds() {
        const GB: u64 = 1024 * 1024 * 1024;
        assert_eq!(disk(50 * GB, 100 * GB, GB), Level::Ok);
        assert_eq!(disk(50 * 1024 * 1024, 100 * GB, 0), Level::Problem);
        assert_eq!(disk(GB / 2, 100 * GB, 0), Level::Warning);
        assert_eq!(disk(15 * GB, 1000 * GB, 0), Level::Warning, "under 2 %");
        assert_eq!(disk(5 * GB, 10 * GB, 3 * GB), Level::Warning, "no room for a backup");
    }

    #[test]
    fn approvals_waiting_with_nobody_following_are_a_problem() {
        let limit = S(600);
        assert_eq!(approvals(None, limit, Some(0)), Level::Ok);
        assert_eq!(approvals(Some(S(60)), limit, Some(0)), Level::Ok);
        assert_eq!(approvals(Some(S(601)), limit, Some(0)), Level::Problem);
        assert_eq!(approvals(Some(S(601)), limit, Some(2)), Level::Warning);
        assert_eq!(approvals(Some(S(601)), limit, None), Level::Warning);
    }

    #[test]
    fn metrics_are_read_by_name_and_labels() {
        let text = "# HELP hapi_event_clients live event followers\n\
                    # TYPE hapi_event_clients gauge\n\
                    hapi_event_clients{transport=\"sse\"} 2\n\
                    hapi_event_clients{transport=\"websocket\"} 1\n\
                    hapi_approvals_pending 3\n\
                    hapi_approvals_pending_total 9\n\
                    hapi_relay_failures_total{target=\"session\",reason=\"wrapper_disconnected\"} 4\n\
                    hapi_build_info{version=\"0.1.0\"} 1\n";
        assert_eq!(metric(text, "hapi_approvals_pending", &[]), Some(3.0));
        assert_eq!(metric(text, "hapi_event_clients", &[("transport", "sse")]), Some(2.0));
        assert_eq!(metric_sum(text, "hapi_event_clients"), Some(3.0));
        assert_eq!(
            metric(
                text,
                "hapi_relay_failures_total",
                &[("reason", "wrapper_disconnected"), ("target", "session")]
            ),
            Some(4.0)
        );
        assert_eq!(
            metric(text, "hapi_event_clients", &[("transport", "carrier pigeon")]),
            None
        );
        assert_eq!(metric_sum(text, "hapi_tunnel_up"), None);
    }

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(human_duration(S(12)), "12 s");
        assert_eq!(human_duration(S(250)), "4m 10s");
        assert_eq!(human_duration(S(7500)), "2h 5m");
        assert_eq!(human_duration(S(273_600)), "3d 4h");
        assert_eq!(human_duration(S(86_400)), "1d");
        assert_eq!(human_duration(S(60)), "1m");
        assert_eq!(human_duration(S(7200)), "2h");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(98_304), "96.0 KB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GB");
    }
}
