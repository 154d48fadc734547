//! The checks that read `$HAPI_HOME` and the environment: settings, the owner
//! token's store, the database with no hub running, the runner's lock, state
//! file and logs, backups, and free disk space.
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use hapi_credentials::{KeychainMode, StoreKind};
use hapi_hub::HubConfig;
use hapi_runner::RunnerState;

use super::judge::{self, human_bytes, human_duration};
use super::{Doctor, Finding, Level, runbook};

/// Databases up to this size get `PRAGMA quick_check` (the hub runs it at every
/// start: about 20 ms per 27 MB); a bigger one is only opened, to stay fast.
const QUICK_CHECK_MAX_BYTES: u64 = 2 << 30;
/// How long a runner (or a restarted hub) may take to link before "not linked"
/// counts as a problem: the runner retries with backoff up to 10 s.
const LINK_GRACE: Duration = Duration::from_secs(20);
/// How much of a log's head or tail is read.
const LOG_WINDOW: u64 = 64 * 1024;
/// This many runners ending badly (or replaced) within an hour is a crash loop
/// (or a binary that keeps changing under it).
const RESTARTS_PER_HOUR: usize = 3;

/// `$HAPI_HOME` when the configuration is invalid: the same rule as
/// `HubConfig::from_env`, so the other checks still look in the right place.
pub(crate) fn home_without_config() -> Result<PathBuf> {
    match std::env::var_os("HAPI_HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home)),
        None => Ok(PathBuf::from(std::env::var_os("HOME").context("set HAPI_HOME (HOME is not set)")?).join(".hapi")),
    }
}

/// The checks of `hapi config check`, through the same parsers the binaries use,
/// summed up in one line (`hapi config check` prints each).
pub(crate) fn config() -> Finding {
    const CHECK: &str = "config";
    let mut problems: Vec<String> = crate::config::unknown_vars().iter().map(ToString::to_string).collect();
    let mut summary = Vec::new();
    match HubConfig::from_env() {
        Ok(hub) => {
            summary.push(format!("hub on {}", hub.listen));
            if let Some(tls) = &hub.tls
                && let Err(e) = tls.check()
            {
                problems.push(e.to_string());
            }
            match hapi_hub::policy::Policy::load(&hub.home) {
                Ok(policy) => summary.push(format!("{} approval rule(s)", policy.summary().len())),
                // The hub refuses to start with it.
                Err(e) => problems.push(format!("invalid approval policy {e}")),
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    match KeychainMode::from_env() {
        Ok(mode) => summary.push(format!("keychain {}", format!("{mode:?}").to_lowercase())),
        Err(e) => problems.push(e.to_string()),
    }
    if let Ok(filter) = std::env::var("HAPI_LOG")
        && let Err(e) = tracing_subscriber::EnvFilter::try_new(&filter)
    {
        problems.push(format!("HAPI_LOG={filter:?} is invalid: {e}"));
    }
    if let Some(url) = std::env::var("HAPI_HUB_URL").ok().filter(|v| !v.trim().is_empty())
        && !reqwest::Url::parse(url.trim()).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
    {
        problems.push(format!(
            "HAPI_HUB_URL={url:?} is invalid: expected an http:// or https:// URL"
        ));
    }
    for e in [
        hapi_runner::heartbeat_interval_from_env().err(),
        hapi_runner::http_timeout_from_env().err(),
        hapi_runner::workspace_roots_from_env().err(),
    ]
    .into_iter()
    .flatten()
    {
        problems.push(e.to_string());
    }
    problems.extend(hapi_runner::limits::check_env().iter().map(ToString::to_string));
    if let Some(path) = std::env::var_os("HAPI_CLAUDE_PATH").filter(|p| !p.is_empty())
        && !Path::new(&path).is_file()
    {
        problems.push(format!(
            "HAPI_CLAUDE_PATH={} is invalid: no such file",
            Path::new(&path).display()
        ));
    }
    if problems.is_empty() {
        return Finding::ok(CHECK, format!("every HAPI_* setting is valid ({})", summary.join(", ")));
    }
    Finding::new(
        CHECK,
        Level::Problem,
        format!("{} problem(s) in the settings: {}", problems.len(), problems.join("; ")),
    )
    .fix(
        "`hapi config check` names each variable and what it expects; fix or unset them (the hub and the runner refuse to start with them)",
        runbook::INDEX,
    )
}

/// The owner token and where it is kept: `CLI_API_TOKEN`, else the vault's
/// lookup (keychain, then `owner.token`), which never creates one. The finding,
/// when there is no usable token.
pub(crate) fn find_owner_token(d: &Doctor) -> Result<(String, String), Finding> {
    const CHECK: &str = "owner token";
    if let Some(token) = std::env::var("CLI_API_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
        return Ok((
            token,
            "CLI_API_TOKEN from the environment (it overrides the stored one)".into(),
        ));
    }
    match hapi_credentials::find_owner_token(&d.home) {
        Ok(Some(credential)) => {
            let store = match credential.store {
                StoreKind::Keychain => format!("in the OS keychain (service `{}`)", hapi_credentials::SERVICE),
                StoreKind::File => format!(
                    "in {} (a 0600 file{})",
                    d.home.join(hapi_credentials::OWNER_TOKEN.file).display(),
                    if matches!(KeychainMode::from_env(), Ok(KeychainMode::Off)) {
                        ", HAPI_KEYCHAIN=off"
                    } else {
                        ""
                    }
                ),
            };
            Ok((credential.value, store))
        }
        Ok(None) if d.hub.is_some() => Err(Finding::new(
            CHECK,
            Level::Problem,
            "none in the keychain or owner.token, yet a hub runs: it was started with CLI_API_TOKEN",
        )
        .fix("export CLI_API_TOKEN=<the token the hub was started with>", runbook::AUTH)),
        Ok(None) => Err(Finding::new(
            CHECK,
            Level::Warning,
            "none yet: the hub creates one when it first starts",
        )
        .fix("`hapi hub`, then `hapi auth token` prints it", runbook::AUTH)),
        Err(e) => Err(Finding::new(CHECK, Level::Problem, e.to_string()).fix(
            "run `hapi auth token` where the keychain is reachable (the desktop session) and `export CLI_API_TOKEN=<it>` here",
            runbook::AUTH,
        )),
    }
}

/// The database with no hub running: nothing else uses the file, so a
/// read-only `PRAGMA quick_check` (what the hub runs when it opens it) says
/// whether the hub will start on it.
pub(crate) fn database(d: &Doctor) -> Finding {
    use hapi_store::rusqlite::{Connection, OpenFlags};
    const CHECK: &str = "database";
    let path = d.home.join("hapi.db");
    let Ok(meta) = std::fs::metadata(&path) else {
        return Finding::ok(CHECK, "no database yet: the hub creates hapi.db when it first starts");
    };
    let restore = "with the hub stopped: `hapi backup list`, `hapi backup verify FILE` on the newest, then `hapi backup restore FILE` (the damaged file is kept as hapi.db.replaced-…)";
    let checked = (|| -> Result<(i64, Option<Vec<String>>), hapi_store::rusqlite::Error> {
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(2))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if meta.len() > QUICK_CHECK_MAX_BYTES {
            return Ok((version, None));
        }
        let mut stmt = conn.prepare("PRAGMA quick_check(5)")?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((version, Some(rows)))
    })();
    let size = human_bytes(meta.len());
    match checked {
        Ok((version, _)) if version > hapi_store::SCHEMA_VERSION => Finding::new(
            CHECK,
            Level::Problem,
            format!(
                "hapi.db ({size}) was written by a newer hapi (schema {version}; this one knows {})",
                hapi_store::SCHEMA_VERSION
            ),
        )
        .fix(
            "run the newer hapi, or restore a backup this version wrote",
            runbook::DATABASE,
        ),
        Ok((version, None)) => Finding::ok(
            CHECK,
            format!(
                "no hub is running; hapi.db ({size}, schema {version}) opens read-only (too big for a quick page check here: `sqlite3 -readonly hapi.db 'PRAGMA quick_check'`)"
            ),
        ),
        Ok((version, Some(rows))) if rows == ["ok"] => Finding::ok(
            CHECK,
            format!("no hub is running; hapi.db ({size}, schema {version}) passes PRAGMA quick_check"),
        ),
        Ok((_, Some(rows))) => Finding::new(
            CHECK,
            Level::Problem,
            format!(
                "hapi.db ({size}) fails PRAGMA quick_check: {}; the hub will not start on it",
                rows.join("; ")
            ),
        )
        .fix(restore, runbook::DATABASE),
        Err(e) => Finding::new(
            CHECK,
            Level::Problem,
            format!("cannot read hapi.db ({size}) read-only: {e}"),
        )
        .fix(
            format!("if another process holds it, end it; else {restore}"),
            runbook::DATABASE,
        ),
    }
}

/// One thing found about the runner, with what to do about it.
struct Issue {
    level: Level,
    found: String,
    fix: String,
    runbook: &'static str,
}

/// The runner: running (its lock and state file), its heartbeat against its
/// interval, whether the hub sees it linked, and restarts.
pub(crate) fn runner(d: &mut Doctor) -> Finding {
    const CHECK: &str = "runner";
    let hub_says = d.hub.as_ref().and_then(|h| h.component("runner"));
    let live = match hapi_runner::live_state(&d.home) {
        Ok(live) => live,
        Err(e) => {
            return Finding::new(CHECK, Level::Problem, format!("cannot read the runner's files: {e}")).fix(
                "`hapi runner status`; a damaged runner.state.json is rewritten by `hapi runner start`",
                runbook::RUNNER,
            );
        }
    };
    let live_log = live.as_ref().map(|s| PathBuf::from(&s.runner_log_path));
    let (crashed, replaced) = runner_ends_last_hour(&d.home, live_log.as_deref());
    let mut issues = Vec::new();
    if crashed >= RESTARTS_PER_HOUR {
        issues.push(Issue {
            level: Level::Warning,
            found: format!("{crashed} runners crashed, were killed or failed to start in the last hour"),
            fix: "read why in their logs: `ls -t logs/runner-*.log` in HAPI_HOME, the last lines of each".into(),
            runbook: runbook::RUNNER,
        });
    }
    if replaced >= RESTARTS_PER_HOUR {
        issues.push(Issue {
            level: Level::Warning,
            found: format!("{replaced} runners were replaced in the last hour because the hapi binary changed"),
            fix: "`grep \"version mismatch\" logs/runner-*.log` in HAPI_HOME; run the runner from a binary that is not rebuilt or touched in place".into(),
            runbook: runbook::RUNNER,
        });
    }
    let Some(state) = live else {
        return not_running(d, hub_says, issues);
    };
    let base = match &state.embedded_in {
        Some(app) => format!("PID {} (in {app})", state.pid),
        None => format!("PID {}", state.pid),
    };
    let (interval, from) = heartbeat_interval(&state);
    let age = judge::age_of(&state.last_heartbeat, chrono::Utc::now()).unwrap_or_default();
    let mut found = format!(
        "{base} runs; last heartbeat {} ago (every {}{from})",
        human_duration(age),
        human_duration(interval)
    );
    let beat = judge::heartbeat(age, interval);
    if beat != Level::Ok {
        issues.push(Issue {
            level: beat,
            found: "its heartbeat is late: the runner is hung or the machine was asleep".into(),
            fix: "`hapi runner stop && hapi runner start` (stop falls back to SIGTERM; sessions keep running)".into(),
            runbook: runbook::RUNNER,
        });
    }
    match hub_says {
        Some((status, _)) if status == "ok" => found.push_str("; linked to the hub"),
        Some((status, detail)) => {
            // The runner logs why it cannot link only at debug level; the same
            // lookup from here usually names the cause.
            let lookup = match hapi_runner::HubTarget::discover(&d.home) {
                Ok(_) => String::new(),
                Err(e) => format!("; finding the hub and the owner token fails here too: {e}"),
            };
            // A runner links within a second, and relinks to a restarted hub
            // after its backoff (at most 10 s): not linked yet is not broken yet.
            let runner_up = judge::age_of(&state.start_time, chrono::Utc::now()).unwrap_or_default();
            let hub_up = d.hub.as_ref().map_or(Duration::ZERO, |h| h.uptime);
            let settling = runner_up.min(hub_up) < LINK_GRACE;
            issues.push(Issue {
                level: if settling { Level::Warning } else { Level::Problem },
                found: format!("the hub does not see it linked (/ready runner: {status}: {detail}){lookup}"),
                fix: "`hapi runner stop`, `HAPI_LOG=hapi_runner=debug hapi runner start`, then `grep \"hub link down\" $(hapi runner logs)` says why it cannot link".into(),
                runbook: runbook::RUNNER,
            });
        }
        None => {}
    }
    if let Some(report) = &state.sessions
        && report.restarts + report.oom_kills > 0
    {
        issues.push(Issue {
            level: Level::Warning,
            found: format!(
                "since it started it restarted {} failed session(s) and the kernel killed {} for their memory limit (hapi_session_restarts_total, hapi_session_oom_kills_total)",
                report.restarts, report.oom_kills
            ),
            fix: "read the failed sessions' logs/spawn-*.log; raise HAPI_SESSION_MEMORY_MAX if they hit it".into(),
            runbook: runbook::RUNNER,
        });
    }
    d.runner = Some(state);
    finish(CHECK, Level::Ok, found, issues)
}

fn not_running(d: &Doctor, hub_says: Option<(String, String)>, mut issues: Vec<Issue>) -> Finding {
    let mut found = "no runner is running for this HAPI_HOME".to_owned();
    let stale = RunnerState::read(&d.home).ok().flatten();
    if let Some(stale) = &stale {
        found.push_str(&format!(
            "; the last one (PID {}) is gone without a shutdown since its last heartbeat at {}: it crashed or was killed",
            stale.pid, stale.last_heartbeat
        ));
    } else if let Some((status, detail)) = &hub_says {
        match status.as_str() {
            "stopped" => found.push_str("; it was stopped on purpose (`hapi runner stop` or its app quit)"),
            "lost" | "stale" => found.push_str(&format!("; the hub says: {detail}")),
            _ => {}
        }
    }
    if let Some(line) = hapi_runner::newest_log(&d.home).and_then(|log| last_error(&log)) {
        found.push_str(&format!("; its log's last error: {line}"));
    }
    let fix = match stale.as_ref().and_then(|s| s.embedded_in.as_ref()) {
        Some(app) => format!("quit {app} from its tray menu and start it again"),
        None => "`hapi runner start` (it prints its log; `tail -n 50 $(hapi runner logs)` says why one exits)".into(),
    };
    issues.insert(
        0,
        Issue {
            level: Level::Problem,
            found: String::new(),
            fix,
            runbook: runbook::RUNNER,
        },
    );
    finish("runner", Level::Problem, found, issues)
}

/// One finding from a base and its issues: the worst level, every issue's
/// text, and the fixes of the worst ones.
fn finish(check: &'static str, base: Level, mut found: String, issues: Vec<Issue>) -> Finding {
    let level = issues.iter().map(|i| i.level).fold(base, Level::max);
    for issue in issues.iter().filter(|i| !i.found.is_empty()) {
        found.push_str("; ");
        found.push_str(&issue.found);
    }
    let mut worst = issues.iter().filter(|i| i.level == level);
    let Some(first) = worst.next() else {
        return Finding::new(check, level, found);
    };
    let mut fix = first.fix.clone();
    for more in worst {
        fix.push_str("; ");
        fix.push_str(&more.fix);
    }
    Finding::new(check, level, found).fix(fix, first.runbook)
}

/// The runner's heartbeat interval: from its own start line, else this
/// environment's `HAPI_RUNNER_HEARTBEAT_INTERVAL`.
fn heartbeat_interval(state: &RunnerState) -> (Duration, &'static str) {
    if let Some(ms) = read_head(Path::new(&state.runner_log_path)).and_then(|log| judge::heartbeat_ms_in_log(&log)) {
        return (Duration::from_millis(ms), ", from its log");
    }
    let interval =
        hapi_runner::heartbeat_interval_from_env().unwrap_or(Duration::from_millis(hapi_runner::DEFAULT_HEARTBEAT_MS));
    (interval, ", as this environment sets it")
}

/// How many runners of the last hour ended without a shutdown (crashed, killed,
/// failed to start), and how many were replaced by a newer binary; from the
/// ends of their logs, leaving out the live runner's.
fn runner_ends_last_hour(home: &Path, live_log: Option<&Path>) -> (usize, usize) {
    let dir = hapi_runner::logs_dir(home);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return (0, 0);
    };
    let names: Vec<String> = entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    let recent = judge::runner_logs_within(
        names.iter().map(String::as_str),
        chrono::Local::now(),
        Duration::from_secs(3600),
    );
    let (mut crashed, mut replaced) = (0, 0);
    // Bounded, so a crash loop of hundreds does not make doctor slow.
    for name in recent.into_iter().take(30) {
        let path = dir.join(name);
        if live_log == Some(path.as_path()) {
            continue;
        }
        match read_tail(&path).map(|tail| judge::runner_end(&tail)) {
            Some(judge::RunnerEnd::Crashed) => crashed += 1,
            Some(judge::RunnerEnd::Replaced) => replaced += 1,
            _ => {}
        }
    }
    (crashed, replaced)
}

fn read_head(path: &Path) -> Option<String> {
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(LOG_WINDOW)
        .read_to_end(&mut buf)
        .ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn read_tail(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(LOG_WINDOW))).ok()?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The last `ERROR` line (else `WARN`) in the tail of a log, shortened.
fn last_error(path: &Path) -> Option<String> {
    let text = read_tail(path)?;
    let pick = |level: &str| text.lines().rev().find(|l| l.contains(level)).map(str::trim);
    let line = pick(" ERROR ").or_else(|| pick(" WARN "))?;
    Some(line.chars().take(240).collect())
}

/// The newest backup against the schedule, and its last verification.
pub(crate) fn backups(d: &Doctor) -> Finding {
    const CHECK: &str = "backups";
    let Some(config) = &d.config else {
        return Finding::skipped(CHECK, "the settings are invalid (see config)");
    };
    if !d.home.join("hapi.db").exists() {
        return Finding::skipped(CHECK, "no database yet");
    }
    let dir = hapi_store::backup::backups_dir(&d.home);
    let list = match hapi_store::backup::list(&dir) {
        Ok(list) => list,
        Err(e) => {
            return Finding::new(CHECK, Level::Warning, format!("cannot list the backups: {e}"))
                .fix(format!("check the permissions of {}", dir.display()), runbook::DATABASE);
        }
    };
    let interval = config.backups.interval;
    let schedule = match interval {
        Some(every) => format!("every {}, keep {}", human_duration(every), config.backups.keep),
        None => "scheduled backups off (HAPI_BACKUP_INTERVAL=off)".into(),
    };
    let now = hapi_store::now_ms();
    let newest = list.first();
    let age = newest.map(|b| Duration::from_millis((now - b.created_at_ms).max(0) as u64));
    let mut level = judge::backups(age, interval, d.hub.as_ref().map(|h| h.uptime));
    let found = match newest {
        None => format!("no backup yet ({schedule}, as this environment sets it)"),
        Some(b) => {
            let verified = match b.meta.as_ref().map(|m| &m.last_verified) {
                None => "no sidecar, so never verified".to_owned(),
                Some(None) => "never verified".to_owned(),
                Some(Some(v)) if v.ok => format!("verified OK at {}", v.at),
                Some(Some(v)) => {
                    level = level.max(Level::Warning);
                    format!(
                        "its verification FAILED at {}: {}",
                        v.at,
                        v.error.as_deref().unwrap_or("no reason recorded")
                    )
                }
            };
            format!(
                "newest {} ({}, {} ago; {verified}); {} in all ({schedule}, as this environment sets it)",
                b.name(),
                human_bytes(b.size_bytes),
                human_duration(age.unwrap_or_default()),
                list.len()
            )
        }
    };
    Finding::new(CHECK, level, found).fix(
        "`hapi backup now`, then `hapi backup verify`; the hub's log says why a scheduled backup failed",
        runbook::DATABASE,
    )
}

/// Free space on the file system of `$HAPI_HOME`.
pub(crate) fn disk(d: &Doctor) -> Finding {
    const CHECK: &str = "disk";
    let mut dir = d.home.as_path();
    while !dir.exists() {
        match dir.parent() {
            Some(parent) => dir = parent,
            None => break,
        }
    }
    let stat = match nix::sys::statvfs::statvfs(dir) {
        Ok(stat) => stat,
        Err(e) => {
            return Finding::new(
                CHECK,
                Level::Warning,
                format!("cannot read free space of {}: {e}", dir.display()),
            );
        }
    };
    let block = stat.fragment_size() as u64;
    let (free, total) = (stat.blocks_available() as u64 * block, stat.blocks() as u64 * block);
    let size = |name: &str| std::fs::metadata(d.home.join(name)).map_or(0, |m| m.len());
    let db = size("hapi.db") + size("hapi.db-wal");
    let percent = if total > 0 {
        free as f64 * 100.0 / total as f64
    } else {
        0.0
    };
    let found = format!(
        "{} free of {} ({percent:.0} %) where {} is; the database takes {}",
        human_bytes(free),
        human_bytes(total),
        dir.display(),
        human_bytes(db)
    );
    Finding::new(CHECK, judge::disk(free, total, db), found).fix(
        format!(
            "free space there (`df -h {0}`, `du -sh {0}/*`); keep fewer backups with HAPI_BACKUP_KEEP",
            dir.display()
        ),
        runbook::DATABASE,
    )
}
