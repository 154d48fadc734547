//! The settings HAPI reads, in one list, and `hapi config check`.
//!
//! HAPI is configured by environment variables today (there is no
//! configuration file). [`KEYS`] is the one list of every `HAPI_*` variable a
//! HAPI binary, script or test harness reads: a `HAPI_*` variable that is not in
//! it is a typo (`HAPI_LISTEN_PROT`), and `hapi config check`, `hapi hub` and
//! `hapi runner start` refuse it by name. **A new variable goes into this
//! list**, with its parser in the crate that reads it.
//!
//! The values are checked by the same functions the binaries use
//! (`HubConfig::from_env`, `hapi_runner`'s `*_from_env`, `KeychainMode::from_env`),
//! so the check and the binaries never disagree.
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;

/// Who reads a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `hapi hub` and the desktop app's hub.
    Hub,
    /// Every command (home, keychain, logs, finding the hub).
    All,
    /// The runner.
    Runner,
    /// Sessions (`hapi claude`, and the runner that spawns them).
    Session,
    /// Set by the runner for the sessions it spawns; not for people to set.
    Internal,
    /// Build, scripts and test harnesses.
    Development,
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The variable.
    pub name: &'static str,
    /// Who reads it.
    pub scope: Scope,
    /// Whether its value is a secret (never printed).
    pub secret: bool,
}

const fn key(name: &'static str, scope: Scope) -> Key {
    Key {
        name,
        scope,
        secret: false,
    }
}

/// Every `HAPI_*` variable HAPI reads. Keep it complete: anything else is
/// reported as unknown.
pub const KEYS: &[Key] = &[
    key("HAPI_HOME", Scope::All),
    key("HAPI_KEYCHAIN", Scope::All),
    key("HAPI_LOG", Scope::All),
    key("HAPI_HUB_URL", Scope::All),
    key("HAPI_NO_RUNNER_AUTOSTART", Scope::All),
    key("HAPI_LISTEN_HOST", Scope::Hub),
    key("HAPI_LISTEN_PORT", Scope::Hub),
    key("HAPI_DB_SYNC", Scope::Hub),
    Key {
        name: "HAPI_METRICS_TOKEN",
        scope: Scope::Hub,
        secret: true,
    },
    key("HAPI_BACKUP_INTERVAL", Scope::Hub),
    key("HAPI_BACKUP_KEEP", Scope::Hub),
    key("HAPI_ALLOWED_ORIGINS", Scope::Hub),
    key("HAPI_TLS_CERT", Scope::Hub),
    key("HAPI_TLS_KEY", Scope::Hub),
    key("HAPI_AUDIT_RETENTION_DAYS", Scope::Hub),
    key("HAPI_RUNNER_HEARTBEAT_INTERVAL", Scope::Runner),
    key("HAPI_RUNNER_HTTP_TIMEOUT", Scope::Runner),
    key(hapi_runner::WORKSPACE_ROOTS_ENV, Scope::Runner),
    key("HAPI_CLAUDE_PATH", Scope::Session),
    key(hapi_runner::limits::MEMORY_MAX_ENV, Scope::Session),
    key(hapi_runner::limits::CPU_MAX_ENV, Scope::Session),
    key(hapi_runner::limits::NOFILE_ENV, Scope::Session),
    key(hapi_runner::limits::CORE_ENV, Scope::Session),
    key(hapi_runner::limits::CGROUP_CHOICE_ENV, Scope::Session),
    key(hapi_runner::limits::RESTART_ENV, Scope::Session),
    key(hapi_runner::limits::RESTART_BACKOFF_ENV, Scope::Session),
    key(hapi_runner::limits::START_GRACE_ENV, Scope::Session),
    key(hapi_runner::STARTED_BY_ENV, Scope::Internal),
    key(hapi_runner::limits::CGROUP_ENV, Scope::Internal),
    key(hapi_runner::limits::SESSION_NOTE_ENV, Scope::Internal),
    key("HAPI_UI_DIST", Scope::Development),
    key("HAPI_HEADLESS", Scope::Development),
    key("HAPI_TEST_THREADS", Scope::Development),
    key("HAPI_DESKTOP_TEST", Scope::Development),
    key("HAPI_KEEP_TEST_DIR", Scope::Development),
];

/// Prefixes of variables that belong to test harnesses (`tests/browser`).
pub const IGNORED_PREFIXES: &[&str] = &["HAPI_TEST_"];

/// A `HAPI_*` variable that is not a setting, with the closest known name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// The variable.
    pub name: String,
    /// A known name it is probably a typo of.
    pub suggestion: Option<&'static str>,
}

impl std::fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is not a HAPI setting", self.name)?;
        match self.suggestion {
            Some(known) => write!(f, " (did you mean {known}?)"),
            None => f.write_str(" (see `hapi config check` and the README's configuration table)"),
        }
    }
}

/// The known key named `name`.
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// `HAPI_*` variables of `names` that are no setting.
pub fn unknown_in<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<UnknownKey> {
    let mut unknown: Vec<UnknownKey> = names
        .into_iter()
        .filter(|n| n.starts_with("HAPI_"))
        .filter(|n| find(n).is_none() && !IGNORED_PREFIXES.iter().any(|p| n.starts_with(p)))
        .map(|n| UnknownKey {
            name: n.to_owned(),
            suggestion: closest(n),
        })
        .collect();
    unknown.sort_by(|a, b| a.name.cmp(&b.name));
    unknown
}

/// `HAPI_*` variables of this process's environment that are no setting.
pub fn unknown_vars() -> Vec<UnknownKey> {
    let names: Vec<String> = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect();
    unknown_in(names.iter().map(String::as_str))
}

/// Fails naming every unknown `HAPI_*` variable (for commands that start
/// long-running processes: `hapi hub`, `hapi runner start`).
pub fn refuse_unknown() -> Result<()> {
    let unknown = unknown_vars();
    if unknown.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = unknown.iter().map(|u| format!("  {u}")).collect();
    bail!(
        "unknown setting{} in the environment:\n{}\nFix or unset {}; `hapi config check` checks every setting.",
        if unknown.len() > 1 { "s" } else { "" },
        lines.join("\n"),
        if unknown.len() > 1 { "them" } else { "it" }
    )
}

/// The known name closest to `name`, if close enough to be a typo of it.
fn closest(name: &str) -> Option<&'static str> {
    KEYS.iter()
        .filter(|k| k.scope != Scope::Internal)
        .map(|k| (distance(name, k.name), k.name))
        .filter(|(d, known)| *d <= (known.len() / 5).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known)
}

/// Levenshtein distance (bytes; the names are ASCII).
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let substitution = previous + usize::from(x != y);
            previous = row[j + 1];
            row[j + 1] = substitution.min(previous + 1).min(row[j] + 1);
        }
    }
    row[b.len()]
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check every HAPI setting in the environment (unknown HAPI_* variables
    /// and bad values) and print the effective configuration.
    Check,
}

/// Runs a config command; returns the exit code.
pub fn run(command: ConfigCommand) -> Result<i32> {
    match command {
        ConfigCommand::Check => Ok(check()),
    }
}

/// `hapi config check`: every problem on stderr and exit 1, or the effective
/// configuration on stdout and exit 0.
fn check() -> i32 {
    let mut errors: Vec<String> = unknown_vars().iter().map(ToString::to_string).collect();
    let mut summary: Vec<(&str, String)> = Vec::new();
    let mut problem = |e: String| errors.push(e);

    match hapi_hub::HubConfig::from_env() {
        Ok(hub) => {
            summary.push(("home", hub.home.display().to_string()));
            let backups = match hub.backups.interval {
                Some(every) => format!("every {}, keep {}", human(every), hub.backups.keep),
                None => "off".into(),
            };
            summary.push((
                "hub",
                format!(
                    "listens on {}; database sync {}; backups {backups}; metrics token {}",
                    hub.listen,
                    format!("{:?}", hub.durability).to_lowercase(),
                    if hub.metrics_token.is_some() { "set" } else { "unset" }
                ),
            ));
            if hub.owner_token.is_some() {
                summary.push(("owner token", "CLI_API_TOKEN (from the environment)".into()));
            }
            if let Some(tls) = &hub.tls {
                match tls.check() {
                    Ok(()) => summary.push(("TLS", format!("LAN serves HTTPS with {}", tls.cert.display()))),
                    Err(e) => problem(e.to_string()),
                }
            }
            summary.push(("audit log", format!("entries kept {} days", hub.audit_retention_days)));
            match hapi_hub::policy::Policy::load(&hub.home) {
                Ok(policy) if policy.summary().is_empty() => {
                    summary.push(("approval policy", "no rules: every request is asked".into()))
                }
                Ok(policy) => summary.push((
                    "approval policy",
                    format!(
                        "{} rules in {}",
                        policy.summary().len(),
                        hub.home.join(hapi_hub::policy::POLICY_FILE).display()
                    ),
                )),
                Err(e) => problem(format!("invalid approval policy {e}")),
            }
        }
        Err(e) => problem(e.to_string()),
    }
    match hapi_credentials::KeychainMode::from_env() {
        Ok(mode) => summary.push(("keychain", format!("{mode:?}").to_lowercase())),
        Err(e) => problem(e.to_string()),
    }
    if let Ok(filter) = std::env::var("HAPI_LOG")
        && let Err(e) = tracing_subscriber::EnvFilter::try_new(&filter)
    {
        problem(format!(
            "HAPI_LOG={filter:?} is invalid: {e} (e.g. `info` or `hapi_hub=debug`)"
        ));
    }
    match std::env::var("HAPI_HUB_URL").ok().filter(|v| !v.trim().is_empty()) {
        None => summary.push(("hub URL", "the running hub's, from $HAPI_HOME/hub.json".into())),
        Some(url) => match reqwest::Url::parse(url.trim()) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => summary.push(("hub URL", url)),
            _ => problem(format!(
                "HAPI_HUB_URL={url:?} is invalid: expected an http:// or https:// URL (e.g. http://127.0.0.1:3006)"
            )),
        },
    }
    match std::env::var("HAPI_NO_RUNNER_AUTOSTART").as_deref() {
        Err(_) | Ok("" | "0") => summary.push(("runner autostart", "on".into())),
        Ok("1") => summary.push(("runner autostart", "off (HAPI_NO_RUNNER_AUTOSTART=1)".into())),
        Ok(other) => problem(format!(
            "HAPI_NO_RUNNER_AUTOSTART={other:?} is invalid: expected 1 (or 0, or unset)"
        )),
    }

    let heartbeat = hapi_runner::heartbeat_interval_from_env();
    let timeout = hapi_runner::http_timeout_from_env();
    let roots = hapi_runner::workspace_roots_from_env();
    match (heartbeat, timeout, roots) {
        (Ok(heartbeat), Ok(timeout), Ok(roots)) => summary.push((
            "runner",
            format!(
                "heartbeat {} ms; control timeout {} ms; workspace roots {}",
                heartbeat.as_millis(),
                timeout.as_millis(),
                roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ),
        )),
        (heartbeat, timeout, roots) => {
            for e in [heartbeat.err(), timeout.err(), roots.err()].into_iter().flatten() {
                problem(e.to_string());
            }
        }
    }
    let session_errors = hapi_runner::limits::check_env();
    if session_errors.is_empty() {
        if let (Ok(policy), Ok(grace)) = (
            hapi_runner::SessionPolicy::from_env(),
            hapi_runner::limits::start_grace_from_env(),
        ) {
            summary.push((
                "sessions",
                format!(
                    "limits {}; restart {} (first after {} ms, doubling); start grace {} ms",
                    policy.limits,
                    policy.restart,
                    policy.restart_backoff.as_millis(),
                    grace.as_millis()
                ),
            ));
        }
    } else {
        for e in session_errors {
            problem(e.to_string());
        }
    }
    match std::env::var_os("HAPI_CLAUDE_PATH").filter(|p| !p.is_empty()) {
        Some(path) if !PathBuf::from(&path).is_file() => problem(format!(
            "HAPI_CLAUDE_PATH={} is invalid: no such file",
            PathBuf::from(path).display()
        )),
        Some(path) => summary.push((
            "claude",
            format!("{} (HAPI_CLAUDE_PATH)", PathBuf::from(path).display()),
        )),
        None => {
            let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|dir| dir.join("claude"))
                .find(|c| c.is_file());
            summary.push((
                "claude",
                match found {
                    Some(path) => path.display().to_string(),
                    None => "not found on PATH (needed only where sessions run; set HAPI_CLAUDE_PATH)".into(),
                },
            ));
        }
    }

    if !errors.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        eprintln!(
            "{} problem{} in the configuration (HAPI is configured by environment variables; there is no configuration file)",
            errors.len(),
            if errors.len() > 1 { "s" } else { "" }
        );
        return 1;
    }
    println!("Configuration OK (from the environment; HAPI reads no configuration file)");
    for (label, value) in summary {
        println!("  {:<18}{value}", format!("{label}:"));
    }
    let mut set: Vec<String> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let key = find(k.to_str()?)?;
            let shown = if key.secret {
                "<redacted>".to_owned()
            } else {
                v.to_string_lossy().into_owned()
            };
            Some(format!("{}={shown}", key.name))
        })
        .collect();
    set.sort();
    if set.is_empty() {
        println!("  No HAPI_* variable is set: every value is a default.");
    } else {
        println!("  Set in the environment:");
        for line in set {
            println!("    {line}");
        }
    }
    0
}

/// `1d`, `6h`, `30m`, `90s`.
fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= size && s.is_multiple_of(size) {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_unknown_with_a_suggestion() {
        let unknown = unknown_in([
            "HAPI_LISTEN_PROT",
            "HAPI_HOME",
            "PATH",
            "HAPI_TEST_URL",
            "HAPI_FROBNICATE",
        ]);
        assert_eq!(
            unknown,
            vec![
                UnknownKey {
                    name: "HAPI_FROBNICATE".into(),
                    suggestion: None
                },
                UnknownKey {
                    name: "HAPI_LISTEN_PROT".into(),
                    suggestion: Some("HAPI_LISTEN_PORT")
                },
            ]
        );
        assert_eq!(
            unknown[1].to_string(),
            "HAPI_LISTEN_PROT is not a HAPI setting (did you mean HAPI_LISTEN_PORT?)"
        );
        assert_eq!(closest("HAPI_SESSION_MEMORY"), Some("HAPI_SESSION_MEMORY_MAX"));
        assert_eq!(closest("HAPI_SESION_RESTART"), Some("HAPI_SESSION_RESTART"));
    }

    #[test]
    fn every_key_is_listed_once() {
        let mut names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a key is listed twice");
        assert!(KEYS.iter().all(|k| k.name.starts_with("HAPI_")));
    }

    #[test]
    fn distances_are_levenshtein() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }
}
