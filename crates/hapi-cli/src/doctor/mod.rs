//! `hapi doctor`: runs the checks the runbooks (`docs/runbooks/`) start with,
//! in order, and prints one line per check (ok, warning, problem, or skipped when
//! an earlier finding makes it meaningless), with what was found and, for
//! anything not ok, the command to run and the runbook to read.
//!
//! It never changes anything: files are read (the database read-only), the hub is
//! asked through the same routes a person or Prometheus would use (`/health`,
//! `/ready`, `/metrics`, `GET /api/…`), and the runner through its control
//! server's `list`. It finds the hub, the runner and the owner token the way every
//! other command does (`HAPI_HOME`, `HAPI_HUB_URL`, `CLI_API_TOKEN`,
//! `HAPI_KEYCHAIN`), so it sees what they see.
//!
//! Exit status: 0 when nothing is a problem (warnings allowed), 1 otherwise.
mod hub;
mod judge;
mod local;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use hapi_hub::HubConfig;
use hapi_runner::RunnerState;
use serde::Serialize;

/// The runbooks a finding points to, relative to the repository root.
pub(crate) mod runbook {
    pub const INDEX: &str = "docs/runbooks/README.md";
    pub const TUNNEL: &str = "docs/runbooks/tunnel-or-relay-down.md";
    pub const AUTH: &str = "docs/runbooks/auth-failures-or-lost-phone.md";
    pub const DATABASE: &str = "docs/runbooks/database-corruption-and-restore.md";
    pub const RUNNER: &str = "docs/runbooks/runner-wont-start.md";
    pub const SESSIONS: &str = "docs/runbooks/sessions-not-appearing.md";
    pub const APPROVALS: &str = "docs/runbooks/approvals-not-arriving.md";
    #[cfg(test)]
    pub const ALL: [&str; 7] = [INDEX, TUNNEL, AUTH, DATABASE, RUNNER, SESSIONS, APPROVALS];
}

#[derive(Args)]
pub struct DoctorArgs {
    /// Print the findings as JSON (`{"status", "home", "checks": [{check, status, found, fix?, runbook?}]}`).
    #[arg(long)]
    json: bool,
    /// Pending approvals waiting longer than this many minutes, with nothing
    /// following the hub's events, count as not arriving.
    #[arg(long, default_value_t = 10, value_name = "MINUTES")]
    approval_wait: u64,
}

/// How a check came out. Ordered from best to worst, so the worst of several is `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    /// Not run: an earlier finding makes it meaningless (no hub, no runner).
    Skipped,
    Ok,
    /// Works now, but needs attention.
    Warning,
    /// Broken: doctor exits non-zero.
    Problem,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Skipped => "skipped",
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Problem => "problem",
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Finding {
    pub check: &'static str,
    pub status: Level,
    pub found: String,
    /// What to do, with the exact command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runbook: Option<&'static str>,
}

impl Finding {
    pub(crate) fn new(check: &'static str, status: Level, found: impl Into<String>) -> Self {
        Finding {
            check,
            status,
            found: found.into(),
            fix: None,
            runbook: None,
        }
    }

    pub(crate) fn ok(check: &'static str, found: impl Into<String>) -> Self {
        Self::new(check, Level::Ok, found)
    }

    pub(crate) fn skipped(check: &'static str, why: impl Into<String>) -> Self {
        Self::new(check, Level::Skipped, why)
    }

    /// The fix and the runbook; only shown when the finding is not ok.
    pub(crate) fn fix(mut self, fix: impl Into<String>, runbook: &'static str) -> Self {
        self.fix = Some(fix.into());
        self.runbook = Some(runbook);
        self
    }

    /// Drops the fix of a finding that turned out ok, so an ok line stays one line.
    fn settled(mut self) -> Self {
        if matches!(self.status, Level::Ok | Level::Skipped) {
            self.fix = None;
            self.runbook = None;
        }
        self
    }
}

/// What the checks learn and later checks use.
pub(crate) struct Doctor {
    pub home: PathBuf,
    /// The hub configuration of this environment, when it is valid.
    pub config: Option<HubConfig>,
    pub http: reqwest::Client,
    /// The hub that answered `/health`.
    pub hub: Option<hub::HubView>,
    /// The owner token, once the hub accepted it (or no hub was there to ask).
    pub token: Option<String>,
    /// `/metrics` of the hub, when the token opened it.
    pub metrics: Option<String>,
    /// The live runner of this `$HAPI_HOME`.
    pub runner: Option<RunnerState>,
    pub approval_wait: Duration,
}

/// Runs `hapi doctor`; returns the exit code.
pub fn run(args: DoctorArgs, runtime: &tokio::runtime::Runtime) -> Result<i32> {
    let config = HubConfig::from_env().ok();
    let home = match &config {
        Some(config) => config.home.clone(),
        None => local::home_without_config()?,
    };
    let mut doctor = Doctor {
        home,
        config,
        // Every request is to a hub that should answer at once; a hung hub is a
        // finding, not a reason to wait.
        http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?,
        hub: None,
        token: None,
        metrics: None,
        runner: None,
        approval_wait: Duration::from_secs(args.approval_wait.saturating_mul(60)),
    };
    let findings: Vec<Finding> = runtime
        .block_on(doctor.run_checks())
        .into_iter()
        .map(Finding::settled)
        .collect();
    let worst = findings.iter().map(|f| f.status).max().unwrap_or(Level::Ok);
    if args.json {
        let report = serde_json::json!({
            "status": worst,
            "home": doctor.home,
            "version": hapi_protocol::VERSION,
            "checks": findings,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&doctor.home, &findings));
    }
    Ok(if worst == Level::Problem { 1 } else { 0 })
}

impl Doctor {
    /// The checks, in the order the runbooks go: settings, then the hub and what
    /// everything else needs from it, then the runner and sessions, phone access,
    /// approvals, and the safety net (backups, disk).
    async fn run_checks(&mut self) -> Vec<Finding> {
        let mut findings = vec![local::config()];
        findings.push(hub::hub(self).await);
        findings.push(hub::owner_token(self).await);
        if let (Some(hub), Some(token)) = (&self.hub, &self.token) {
            self.metrics = hub::metrics(&self.http, &hub.url, token).await;
        }
        findings.push(match &self.hub {
            Some(hub) => hub::database(hub, self.metrics.as_deref()),
            None => local::database(self),
        });
        findings.push(local::runner(self));
        findings.push(hub::sessions(self).await);
        findings.push(hub::phone_access(self).await);
        findings.push(hub::approvals(self).await);
        findings.push(local::backups(self));
        findings.push(local::disk(self));
        findings
    }
}

/// The report for a person: one line per check, and under each finding that
/// is not ok what to do and where to read more.
fn render(home: &std::path::Path, findings: &[Finding]) -> String {
    let mut out = format!(
        "hapi doctor {} for HAPI_HOME={}\n",
        hapi_protocol::VERSION,
        home.display()
    );
    for f in findings {
        out.push_str(&format!("{:<8} {:<13} {}\n", f.status.label(), f.check, f.found));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("{:<22} fix: {fix}\n", ""));
        }
        if let Some(runbook) = f.runbook {
            out.push_str(&format!(
                "{:<22} read: {runbook} (`hapi runbook {}` prints it)\n",
                "",
                crate::runbook::name_of(runbook)
            ));
        }
    }
    let count = |level: Level| findings.iter().filter(|f| f.status == level).count();
    let (problems, warnings) = (count(Level::Problem), count(Level::Warning));
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    out.push('\n');
    out.push_str(&match (problems, warnings) {
        (0, 0) => "Everything checked is fine.\n".to_owned(),
        (0, w) => format!("No problem; {}: see above.\n", plural(w, "warning")),
        (p, w) => format!(
            "{}, {}: fix the problems above (start with the first one). Runbooks: {} (`hapi runbook`)\n",
            plural(p, "problem"),
            plural(w, "warning"),
            runbook::INDEX
        ),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runbook_doctor_names_exists() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for path in runbook::ALL {
            assert!(repo.join(path).is_file(), "{path} is missing");
        }
    }

    #[test]
    fn the_report_shows_fixes_only_for_what_is_not_ok() {
        let findings: Vec<Finding> = vec![
            Finding::ok("hub", "answers").fix("never shown", runbook::SESSIONS),
            Finding::new("runner", Level::Problem, "no runner is running").fix("hapi runner start", runbook::RUNNER),
        ]
        .into_iter()
        .map(Finding::settled)
        .collect();
        let text = render(std::path::Path::new("/h"), &findings);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "ok       hub           answers");
        assert_eq!(lines[2], "problem  runner        no runner is running");
        assert_eq!(lines[3].trim(), "fix: hapi runner start");
        assert_eq!(
            lines[4].trim(),
            "read: docs/runbooks/runner-wont-start.md (`hapi runbook runner-wont-start` prints it)"
        );
        assert!(!text.contains("never shown"), "{text}");
        assert!(text.ends_with("1 problem, 0 warnings: fix the problems above (start with the first one). Runbooks: docs/runbooks/README.md (`hapi runbook`)\n"), "{text}");
        assert!(Level::Problem > Level::Warning && Level::Warning > Level::Ok && Level::Ok > Level::Skipped);
    }
}
