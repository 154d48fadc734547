//! Per-session limits and the restart policy, as settings: what the runner
//! applies to the sessions it spawns, and what `hapi claude` applies to itself
//! (and so to its agent) at start.
//!
//! | variable | value | applied by |
//! |---|---|---|
//! | `HAPI_SESSION_MEMORY_MAX` | bytes with an optional `K`/`M`/`G`/`T` suffix (1024-based), or `max` | the runner: cgroup v2 `memory.max`, or cgroup v1 `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes`) |
//! | `HAPI_SESSION_CPU_MAX` | CPU cores, e.g. `1.5`, or `max` | the runner: cgroup v2 `cpu.max`, or cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` |
//! | `HAPI_SESSION_CGROUP` | `auto` (default: v2, else v1), `v2`, `v1` or `off` | the runner: which cgroup version holds those two |
//! | `HAPI_SESSION_NOFILE` | open files, at least 64 | `hapi claude`: `RLIMIT_NOFILE` (soft and hard) |
//! | `HAPI_SESSION_CORE` | `0`, `unlimited`, or a size | `hapi claude`: `RLIMIT_CORE` |
//! | `HAPI_SESSION_RESTART` | `never` (default) or `on-failure:N` | the runner |
//! | `HAPI_SESSION_RESTART_BACKOFF` | ms before the first restart (doubles, at most 5 min) | the runner |
//! | `HAPI_SESSION_START_GRACE` | ms a spawned session has to report itself | the runner |
//!
//! `RLIMIT_AS` is never set: JavaScript runtimes reserve far more address space
//! than they use, and would fail to start under any useful value.
use std::fmt;
use std::time::Duration;

use crate::config::millis_from_env;
use crate::error::{Result, RunnerError};

/// Memory limit of a session's cgroup.
pub const MEMORY_MAX_ENV: &str = "HAPI_SESSION_MEMORY_MAX";
/// CPU limit of a session's cgroup, in cores.
pub const CPU_MAX_ENV: &str = "HAPI_SESSION_CPU_MAX";
/// Which cgroup version the runner uses for the memory and CPU limits.
pub const CGROUP_CHOICE_ENV: &str = "HAPI_SESSION_CGROUP";
/// Open-file limit of a session.
pub const NOFILE_ENV: &str = "HAPI_SESSION_NOFILE";
/// Core-dump limit of a session.
pub const CORE_ENV: &str = "HAPI_SESSION_CORE";
/// Restart policy of runner-spawned sessions.
pub const RESTART_ENV: &str = "HAPI_SESSION_RESTART";
/// Delay before the first restart.
pub const RESTART_BACKOFF_ENV: &str = "HAPI_SESSION_RESTART_BACKOFF";
/// How long a spawned session has to report itself.
pub const START_GRACE_ENV: &str = "HAPI_SESSION_START_GRACE";
/// Set by the runner for a session it spawned: the cgroup the session's
/// `hapi claude` moves itself into before it starts the agent.
pub const CGROUP_ENV: &str = "HAPI_CGROUP";
/// Set by the runner for a session it spawned: lines the session shows in its
/// history first (a restart, limits that could not be applied).
pub const SESSION_NOTE_ENV: &str = "HAPI_SESSION_NOTE";

/// Default of [`START_GRACE_ENV`], in ms.
pub const DEFAULT_START_GRACE_MS: u64 = 30_000;
/// Default of [`RESTART_BACKOFF_ENV`], in ms.
pub const DEFAULT_RESTART_BACKOFF_MS: u64 = 1_000;
/// The longest delay between two restarts.
pub const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(300);
/// Most restarts `on-failure:N` accepts.
pub const MAX_RESTARTS: u32 = 100;
/// Smallest memory limit accepted: below it no agent starts at all, so a
/// smaller value is a typo (a missing unit).
pub const MIN_MEMORY_MAX: u64 = 32 << 20;
/// Smallest open-file limit accepted.
pub const MIN_NOFILE: u64 = 64;
/// The `cpu.max` period, in µs.
pub const CPU_PERIOD_US: u64 = 100_000;

/// A core-dump limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreLimit {
    /// At most this many bytes (`0`: no core dumps).
    Bytes(u64),
    /// As large as the hard limit allows.
    Unlimited,
}

/// The limits of one session. `None` means "not limited by HAPI".
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionLimits {
    /// `memory.max`, in bytes.
    pub memory_max: Option<u64>,
    /// `cpu.max`, in cores.
    pub cpu_max: Option<f64>,
    /// `RLIMIT_NOFILE`.
    pub nofile: Option<u64>,
    /// `RLIMIT_CORE`.
    pub core: Option<CoreLimit>,
}

impl SessionLimits {
    /// Reads the four limit variables; an unusable value is an error naming it.
    pub fn from_env() -> Result<SessionLimits> {
        Ok(SessionLimits {
            memory_max: parse_var(MEMORY_MAX_ENV, parse_memory)?.flatten(),
            cpu_max: parse_var(CPU_MAX_ENV, parse_cpu)?.flatten(),
            nofile: parse_var(NOFILE_ENV, parse_nofile)?,
            core: parse_var(CORE_ENV, parse_core)?,
        })
    }

    /// Whether a cgroup is needed (a memory or CPU limit is set).
    pub fn needs_cgroup(&self) -> bool {
        self.memory_max.is_some() || self.cpu_max.is_some()
    }

    /// The cgroup part, for messages: `memory 2G, CPU 1.5 cores`.
    pub fn cgroup_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(bytes) = self.memory_max {
            parts.push(format!("memory {}", format_bytes(bytes)));
        }
        if let Some(cores) = self.cpu_max {
            parts.push(format!("CPU {cores} cores"));
        }
        parts.join(", ")
    }

    /// The CPU limit as `(quota, period)` in microseconds: cgroup v2's
    /// `cpu.max` and cgroup v1's `cpu.cfs_quota_us` / `cpu.cfs_period_us`
    /// (the kernel refuses a quota under 1 ms).
    pub fn cpu_quota_period(&self) -> Option<(u64, u64)> {
        self.cpu_max
            .map(|cores| (((cores * CPU_PERIOD_US as f64).round() as u64).max(1000), CPU_PERIOD_US))
    }

    /// The `cpu.max` line: `"<quota> <period>"`.
    pub fn cpu_max_line(&self) -> Option<String> {
        self.cpu_quota_period()
            .map(|(quota, period)| format!("{quota} {period}"))
    }

    /// Applies `RLIMIT_NOFILE` and `RLIMIT_CORE` to this process; children
    /// (the agent) inherit them. Returns one line per limit that could not be
    /// applied (the process goes on without it).
    pub fn apply_rlimits(&self) -> Vec<String> {
        use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
        let mut problems = Vec::new();
        if let Some(files) = self.nofile {
            // Soft and hard: a limit the agent cannot raise again.
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, files, files) {
                let hard = getrlimit(Resource::RLIMIT_NOFILE).map(|(_, h)| h).unwrap_or(0);
                problems.push(format!(
                    "{NOFILE_ENV}={files} was not applied: {e} (this process's hard limit is {})",
                    if hard == RLIM_INFINITY {
                        "unlimited".to_owned()
                    } else {
                        hard.to_string()
                    }
                ));
            }
        }
        if let Some(core) = self.core {
            let result = getrlimit(Resource::RLIMIT_CORE).and_then(|(_, hard)| match core {
                CoreLimit::Unlimited => setrlimit(Resource::RLIMIT_CORE, hard, hard),
                CoreLimit::Bytes(bytes) => setrlimit(Resource::RLIMIT_CORE, bytes.min(hard), bytes.min(hard)),
            });
            if let Err(e) = result {
                problems.push(format!("{CORE_ENV}={core} was not applied: {e}"));
            }
        }
        problems
    }
}

impl fmt::Display for SessionLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.needs_cgroup() {
            parts.push(self.cgroup_text());
        }
        if let Some(files) = self.nofile {
            parts.push(format!("open files {files}"));
        }
        if let Some(core) = self.core {
            parts.push(format!("core dumps {core}"));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

impl fmt::Display for CoreLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreLimit::Unlimited => f.write_str("unlimited"),
            CoreLimit::Bytes(0) => f.write_str("0 (off)"),
            CoreLimit::Bytes(bytes) => f.write_str(&format_bytes(*bytes)),
        }
    }
}

/// What the runner does when a session it spawned exits with a failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Leave it ended (the default).
    #[default]
    Never,
    /// Start a new session in the same directory, at most `max` times in a row.
    OnFailure {
        /// Most restarts.
        max: u32,
    },
}

impl RestartPolicy {
    /// Reads [`RESTART_ENV`].
    pub fn from_env() -> Result<RestartPolicy> {
        Ok(parse_var(RESTART_ENV, parse_restart)?.unwrap_or_default())
    }

    /// Delay before restart number `attempt` (from 1): `base`, doubled per
    /// attempt, at most [`MAX_RESTART_BACKOFF`].
    pub fn backoff(base: Duration, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        base.saturating_mul(factor).min(MAX_RESTART_BACKOFF)
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::Never => f.write_str("never"),
            RestartPolicy::OnFailure { max } => write!(f, "on-failure:{max}"),
        }
    }
}

/// Which cgroup version holds the memory and CPU limits ([`CGROUP_CHOICE_ENV`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CgroupChoice {
    /// cgroup v2 when it offers the controllers, else cgroup v1.
    #[default]
    Auto,
    /// cgroup v2 only.
    V2,
    /// cgroup v1 only.
    V1,
    /// None: the limits are reported as not applied (to check that report,
    /// or to leave a machine's cgroups alone).
    Off,
}

impl CgroupChoice {
    /// Reads [`CGROUP_CHOICE_ENV`].
    pub fn from_env() -> Result<CgroupChoice> {
        Ok(parse_var(CGROUP_CHOICE_ENV, parse_cgroup_choice)?.unwrap_or_default())
    }
}

impl fmt::Display for CgroupChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupChoice::Auto => "auto",
            CgroupChoice::V2 => "v2",
            CgroupChoice::V1 => "v1",
            CgroupChoice::Off => "off",
        })
    }
}

fn parse_cgroup_choice(text: &str) -> Result<CgroupChoice, String> {
    match text.to_ascii_lowercase().as_str() {
        "auto" => Ok(CgroupChoice::Auto),
        "v2" | "2" => Ok(CgroupChoice::V2),
        "v1" | "1" => Ok(CgroupChoice::V1),
        "off" | "none" => Ok(CgroupChoice::Off),
        _ => Err("expected auto, v2, v1 or off".into()),
    }
}

/// Everything about the sessions a runner spawns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionPolicy {
    /// Their limits.
    pub limits: SessionLimits,
    /// Which cgroup version holds the memory and CPU limits.
    pub cgroup: CgroupChoice,
    /// Whether and how often failed sessions are restarted.
    pub restart: RestartPolicy,
    /// Delay before the first restart (doubling after).
    pub restart_backoff: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            limits: SessionLimits::default(),
            cgroup: CgroupChoice::Auto,
            restart: RestartPolicy::Never,
            restart_backoff: Duration::from_millis(DEFAULT_RESTART_BACKOFF_MS),
        }
    }
}

impl SessionPolicy {
    /// Reads every `HAPI_SESSION_*` setting but the start grace (which is
    /// [`crate::RunnerConfig::spawn_timeout`], see [`start_grace_from_env`]).
    pub fn from_env() -> Result<SessionPolicy> {
        Ok(SessionPolicy {
            limits: SessionLimits::from_env()?,
            cgroup: CgroupChoice::from_env()?,
            restart: RestartPolicy::from_env()?,
            restart_backoff: millis_from_env(RESTART_BACKOFF_ENV, DEFAULT_RESTART_BACKOFF_MS)?,
        })
    }
}

/// `HAPI_SESSION_START_GRACE` (default 30000 ms, at least 1000): how long a
/// spawned session has to report itself before the spawn counts as failed.
pub fn start_grace_from_env() -> Result<Duration> {
    millis_from_env(START_GRACE_ENV, DEFAULT_START_GRACE_MS)
}

/// Every `HAPI_SESSION_*` setting checked on its own, so that all bad values
/// are reported at once (`hapi config check`).
pub fn check_env() -> Vec<RunnerError> {
    let checks = [
        parse_var(MEMORY_MAX_ENV, parse_memory).map(drop),
        parse_var(CPU_MAX_ENV, parse_cpu).map(drop),
        parse_var(NOFILE_ENV, parse_nofile).map(drop),
        parse_var(CORE_ENV, parse_core).map(drop),
        CgroupChoice::from_env().map(drop),
        RestartPolicy::from_env().map(drop),
        millis_from_env(RESTART_BACKOFF_ENV, DEFAULT_RESTART_BACKOFF_MS).map(drop),
        start_grace_from_env().map(drop),
    ];
    checks.into_iter().filter_map(Result::err).collect()
}

/// Reads `var` and parses it; unset or blank is `None`.
fn parse_var<T>(var: &'static str, parse: fn(&str) -> Result<T, String>) -> Result<Option<T>> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => parse(value.trim())
            .map(Some)
            .map_err(|reason| RunnerError::InvalidEnv { var, value, reason }),
        Ok(_) => Ok(None),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(RunnerError::InvalidEnv {
            var,
            value: v.to_string_lossy().into_owned(),
            reason: "not valid UTF-8".into(),
        }),
    }
}

/// A size: digits (a decimal point allowed with a unit), then `K`, `M`, `G` or
/// `T` (1024-based; `KB`, `KiB` … accepted too), or none for bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err("not a size (e.g. 2G, 512M or a number of bytes)".into());
    }
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        other => return Err(format!("unknown unit `{other}` (use K, M, G or T, e.g. 2G)")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| "not a size (e.g. 2G, 512M or a number of bytes)".to_owned())?;
    if shift == 0 && number.contains('.') {
        return Err("a number of bytes must be whole".into());
    }
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err("too large".into());
    }
    Ok(bytes as u64)
}

fn is_unlimited(text: &str) -> bool {
    matches!(text.to_ascii_lowercase().as_str(), "max" | "unlimited" | "none")
}

fn parse_memory(text: &str) -> Result<Option<u64>, String> {
    if is_unlimited(text) {
        return Ok(None);
    }
    let bytes = parse_size(text)?;
    if bytes < MIN_MEMORY_MAX {
        return Err(
            "below the minimum of 32M (no agent starts in less; a number without a unit is bytes, e.g. 2G)".into(),
        );
    }
    Ok(Some(bytes))
}

fn parse_cpu(text: &str) -> Result<Option<f64>, String> {
    if is_unlimited(text) {
        return Ok(None);
    }
    let cores: f64 = text
        .parse()
        .map_err(|_| "not a number of CPU cores (e.g. 1.5)".to_owned())?;
    if !cores.is_finite() || cores < 0.01 {
        return Err("at least 0.01 cores".into());
    }
    if cores > 1024.0 {
        return Err("more than 1024 cores".into());
    }
    Ok(Some(cores))
}

fn parse_nofile(text: &str) -> Result<u64, String> {
    let files: u64 = text
        .parse()
        .map_err(|_| "not a whole number of open files (e.g. 4096)".to_owned())?;
    if files < MIN_NOFILE {
        return Err(format!(
            "below the minimum of {MIN_NOFILE} (an agent needs dozens of files open)"
        ));
    }
    Ok(files)
}

fn parse_core(text: &str) -> Result<CoreLimit, String> {
    if is_unlimited(text) {
        return Ok(CoreLimit::Unlimited);
    }
    parse_size(text)
        .map(CoreLimit::Bytes)
        .map_err(|e| format!("{e}; expected 0 (no core dumps), unlimited, or a size"))
}

fn parse_restart(text: &str) -> Result<RestartPolicy, String> {
    let expected = "expected `never` or `on-failure:N` with N restarts from 1 to 100 (e.g. on-failure:3)";
    match text.to_ascii_lowercase().as_str() {
        "never" | "no" => Ok(RestartPolicy::Never),
        other => {
            let n = other.strip_prefix("on-failure:").ok_or_else(|| expected.to_owned())?;
            let max: u32 = n.trim().parse().map_err(|_| expected.to_owned())?;
            if !(1..=MAX_RESTARTS).contains(&max) {
                return Err(expected.into());
            }
            Ok(RestartPolicy::OnFailure { max })
        }
    }
}

/// `2G`, `512M`, `1.5G`, or bytes.
pub fn format_bytes(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        let size = 1u64 << shift;
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if bytes.is_multiple_of(size) {
                format!("{}{unit}", bytes / size)
            } else {
                format!("{value:.1}{unit}")
            };
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup_choice_parses() {
        assert_eq!(parse_cgroup_choice("auto").unwrap(), CgroupChoice::Auto);
        assert_eq!(parse_cgroup_choice("V1").unwrap(), CgroupChoice::V1);
        assert_eq!(parse_cgroup_choice("v2").unwrap(), CgroupChoice::V2);
        assert_eq!(parse_cgroup_choice("off").unwrap(), CgroupChoice::Off);
        assert!(parse_cgroup_choice("v3").is_err());
        assert_eq!(CgroupChoice::Off.to_string(), "off");
    }

    #[test]
    fn memory_sizes_parse_with_units() {
        assert_eq!(parse_memory("2G").unwrap(), Some(2 << 30));
        assert_eq!(parse_memory("512m").unwrap(), Some(512 << 20));
        assert_eq!(parse_memory("1.5G").unwrap(), Some(3 << 29));
        assert_eq!(parse_memory("2GiB").unwrap(), Some(2 << 30));
        assert_eq!(parse_memory("1073741824").unwrap(), Some(1 << 30));
        assert_eq!(parse_memory("max").unwrap(), None);
        for bad in ["lots", "2X", "2", "1.5", "-1G", "G", "16M"] {
            assert!(parse_memory(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_memory("2").unwrap_err().contains("minimum"));
    }

    #[test]
    fn cpu_cores_become_a_quota() {
        assert_eq!(parse_cpu("1.5").unwrap(), Some(1.5));
        assert_eq!(parse_cpu("max").unwrap(), None);
        for bad in ["0", "-1", "abc", "150%", "2000", "NaN", "inf"] {
            assert!(parse_cpu(bad).is_err(), "{bad} accepted");
        }
        let limits = SessionLimits {
            cpu_max: Some(1.5),
            ..Default::default()
        };
        assert_eq!(limits.cpu_max_line().unwrap(), "150000 100000");
        let tiny = SessionLimits {
            cpu_max: Some(0.01),
            ..Default::default()
        };
        assert_eq!(tiny.cpu_max_line().unwrap(), "1000 100000");
    }

    #[test]
    fn file_and_core_limits_parse() {
        assert_eq!(parse_nofile("4096").unwrap(), 4096);
        assert!(parse_nofile("10").unwrap_err().contains("minimum"));
        assert!(parse_nofile("many").is_err());
        assert_eq!(parse_core("0").unwrap(), CoreLimit::Bytes(0));
        assert_eq!(parse_core("unlimited").unwrap(), CoreLimit::Unlimited);
        assert_eq!(parse_core("1G").unwrap(), CoreLimit::Bytes(1 << 30));
        assert!(parse_core("yes").unwrap_err().contains("unlimited"));
    }

    #[test]
    fn restart_policies_parse() {
        assert_eq!(parse_restart("never").unwrap(), RestartPolicy::Never);
        assert_eq!(
            parse_restart("on-failure:2").unwrap(),
            RestartPolicy::OnFailure { max: 2 }
        );
        assert_eq!(
            parse_restart("ON-FAILURE:100").unwrap(),
            RestartPolicy::OnFailure { max: 100 }
        );
        for bad in [
            "always",
            "on-failure",
            "on-failure:0",
            "on-failure:101",
            "on-failure:x",
            "3",
        ] {
            assert!(
                parse_restart(bad).unwrap_err().contains("on-failure:N"),
                "{bad} accepted"
            );
        }
        assert_eq!(RestartPolicy::OnFailure { max: 3 }.to_string(), "on-failure:3");
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let base = Duration::from_secs(1);
        assert_eq!(RestartPolicy::backoff(base, 1), Duration::from_secs(1));
        assert_eq!(RestartPolicy::backoff(base, 2), Duration::from_secs(2));
        assert_eq!(RestartPolicy::backoff(base, 4), Duration::from_secs(8));
        assert_eq!(RestartPolicy::backoff(base, 60), MAX_RESTART_BACKOFF);
    }

    #[test]
    fn limits_read_well() {
        let limits = SessionLimits {
            memory_max: Some(2 << 30),
            cpu_max: Some(1.5),
            nofile: Some(1024),
            core: Some(CoreLimit::Bytes(0)),
        };
        assert_eq!(
            limits.to_string(),
            "memory 2G, CPU 1.5 cores, open files 1024, core dumps 0 (off)"
        );
        assert_eq!(SessionLimits::default().to_string(), "none");
        assert_eq!(format_bytes(3 << 29), "1.5G");
    }
}
