//! The cgroups that hold the memory and CPU limits of runner-spawned sessions.
//!
//! cgroup v2 is used when it offers the controllers the limits need ([`v2`]:
//! one group per session, in the runner's own v2 group). When it does not —
//! a hybrid system whose v2 mount has no controllers because memory and cpu
//! are cgroup v1 hierarchies — the runner falls back to cgroup v1 ([`v1`]: one
//! group per session in each controller's hierarchy, in the runner's own
//! group there). `HAPI_SESSION_CGROUP` (`auto`, `v2`, `v1`, `off`) can pin
//! the choice.
//!
//! A session's `hapi claude` joins its group(s) itself, before it starts the
//! agent ([`SessionGroup::join`], given the directories in `HAPI_CGROUP`), so
//! the agent is born inside them; the workspace forbids the unsafe `pre_exec`
//! that would be needed otherwise.
//!
//! When no writable group can be had, the reason says why, and the runner goes
//! on without memory and CPU limits: its log at start, `hapi runner status` and
//! each session's history say so.
use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::limits::{CGROUP_CHOICE_ENV, CgroupChoice, SessionLimits};

pub mod v1;
pub mod v2;

pub use v2::RUNNER_LEAF;

/// Prefix of session groups.
pub const SESSION_PREFIX: &str = "hapi-session-";

/// Where session groups are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v2: one group per session, in `base`.
    V2 {
        /// The group that holds the session groups.
        base: PathBuf,
    },
    /// cgroup v1: one group per session in each hierarchy.
    V1 {
        /// The hierarchies the limits need, each with the runner's own group
        /// in it as the base.
        hierarchies: Vec<v1::Hierarchy>,
    },
}

/// Whether session groups can be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupStatus {
    /// No memory or CPU limit is set: no cgroup is needed.
    NotNeeded,
    /// Session groups are created as `layout` says.
    Ready {
        /// Which cgroup version, and where.
        layout: Layout,
    },
    /// No writable cgroup: memory and CPU limits are not applied.
    Unavailable {
        /// Why, for a person.
        reason: String,
        /// Whether the cause may go away (checked again at the next spawn).
        retry: bool,
    },
}

impl CgroupStatus {
    /// One line for `hapi runner status` and logs.
    pub fn describe(&self) -> String {
        match self {
            CgroupStatus::NotNeeded => "not needed (no memory or CPU limit is set)".into(),
            CgroupStatus::Ready {
                layout: Layout::V2 { base },
            } => format!("cgroup v2, session groups in {}", base.display()),
            CgroupStatus::Ready {
                layout: Layout::V1 { hierarchies },
            } => {
                let names: Vec<String> = hierarchies.iter().map(|h| h.controllers.join(",")).collect();
                let bases: Vec<String> = hierarchies.iter().map(|h| h.base.display().to_string()).collect();
                format!(
                    "cgroup v1 ({} hierarchies), session groups in {}",
                    names.join(", "),
                    bases.join(" and ")
                )
            }
            CgroupStatus::Unavailable { reason, retry } => format!(
                "NOT AVAILABLE: {reason}{}",
                if *retry {
                    " (checked again at the next spawn)"
                } else {
                    ""
                }
            ),
        }
    }
}

/// The runner's view of cgroups: detected once, and again at a spawn while
/// the cause of a failure may go away.
#[derive(Debug)]
pub struct Cgroups {
    limits: SessionLimits,
    choice: CgroupChoice,
    status: Mutex<CgroupStatus>,
}

impl Cgroups {
    /// Nothing is detected yet; see [`Cgroups::prepare`].
    pub fn new(limits: SessionLimits, choice: CgroupChoice) -> Cgroups {
        let status = if limits.needs_cgroup() {
            CgroupStatus::Unavailable {
                reason: "not checked yet".into(),
                retry: true,
            }
        } else {
            CgroupStatus::NotNeeded
        };
        Cgroups {
            limits,
            choice,
            status: Mutex::new(status),
        }
    }

    /// The last known status.
    pub fn status(&self) -> CgroupStatus {
        self.status.lock().expect("cgroup lock").clone()
    }

    /// Detects (again, if the last failure may pass) and returns the status.
    pub fn prepare(&self) -> CgroupStatus {
        let mut status = self.status.lock().expect("cgroup lock");
        if matches!(*status, CgroupStatus::Unavailable { retry: true, .. }) {
            *status = match detect(self.choice, &controllers(&self.limits)) {
                Ok(layout) => {
                    match &layout {
                        Layout::V2 { base } => sweep(base, None),
                        // A v1 base is often shared with other runners (the
                        // root of the cpu hierarchy, say): a group just made by
                        // one of them is empty until its session joins.
                        Layout::V1 { hierarchies } => {
                            for h in hierarchies {
                                sweep(&h.base, Some(SWEEP_MIN_AGE));
                            }
                        }
                    }
                    CgroupStatus::Ready { layout }
                }
                Err(Unavailable { reason, retry }) => CgroupStatus::Unavailable { reason, retry },
            };
        }
        status.clone()
    }

    /// A new session group named `hapi-session-<name>` (in each hierarchy, on
    /// cgroup v1) with the limits written, or why there is none (`Ok(None)`:
    /// no limits need one).
    pub fn create_session_group(&self, name: &str) -> Result<Option<SessionGroup>, String> {
        let name = format!("{SESSION_PREFIX}{name}");
        match self.prepare() {
            CgroupStatus::NotNeeded => Ok(None),
            CgroupStatus::Unavailable { reason, .. } => Err(reason),
            CgroupStatus::Ready {
                layout: Layout::V2 { base },
            } => v2::create_group(&base, &name, &self.limits).map(|dir| Some(SessionGroup { dirs: vec![dir] })),
            CgroupStatus::Ready {
                layout: Layout::V1 { hierarchies },
            } => v1::create_groups(&hierarchies, &name, &self.limits).map(Some),
        }
    }
}

/// Empty v1 session groups younger than this are left to their runner.
const SWEEP_MIN_AGE: Duration = Duration::from_secs(120);

/// Why no session groups can be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// For a person.
    pub reason: String,
    /// Whether it may pass.
    pub retry: bool,
}

pub(crate) fn permanent(reason: impl Into<String>) -> Unavailable {
    Unavailable {
        reason: reason.into(),
        retry: false,
    }
}

/// The controllers `limits` need.
fn controllers(limits: &SessionLimits) -> Vec<&'static str> {
    let mut needed = Vec::new();
    if limits.memory_max.is_some() {
        needed.push("memory");
    }
    if limits.cpu_max.is_some() {
        needed.push("cpu");
    }
    needed
}

/// Finds where session groups with `controllers` can be made: cgroup v2 if
/// it can (and `choice` allows), else cgroup v1.
pub fn detect(choice: CgroupChoice, controllers: &[&str]) -> Result<Layout, Unavailable> {
    if choice == CgroupChoice::Off {
        return Err(permanent(format!("turned off ({CGROUP_CHOICE_ENV}=off)")));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| permanent(format!("cannot read /proc/self/mountinfo: {e}")))?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| permanent(format!("cannot read /proc/self/cgroup: {e}")))?;
    let v2_failure = if choice == CgroupChoice::V1 {
        None
    } else {
        match v2::detect(&mountinfo, &own, controllers) {
            Ok(base) => return Ok(Layout::V2 { base }),
            Err(e) if choice == CgroupChoice::V2 => return Err(e),
            Err(e) => Some(e),
        }
    };
    match (v1::detect(&mountinfo, &own, controllers), v2_failure) {
        (Ok(hierarchies), _) => Ok(Layout::V1 { hierarchies }),
        // No v1 hierarchy for them either (a pure v2 system): the v2 reason.
        (Err(None), Some(v2)) => Err(v2),
        (Err(None), None) => Err(permanent(format!(
            "no cgroup v1 hierarchy with the {} controller is mounted",
            controllers.join(" and ")
        ))),
        (Err(Some(v1)), None) => Err(v1),
        (Err(Some(v1)), Some(v2)) => Err(Unavailable {
            reason: format!("{}; and cgroup v1: {}", v2.reason, v1.reason),
            retry: v2.retry || v1.retry,
        }),
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub(crate) fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if bytes[i] == b'\\'
            && let Some(digits) = octal
        {
            out.push(digits.iter().fold(0u8, |n, d| n.wrapping_mul(8).wrapping_add(d - b'0')));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory of the group `path` (as `/proc/self/cgroup` says it) under a
/// mount whose root is `root`.
pub(crate) fn group_dir(mount: &Path, root: &str, path: &str) -> PathBuf {
    let relative = path
        .strip_prefix(root.trim_end_matches('/'))
        .filter(|_| root != "/")
        .unwrap_or(path);
    let relative = relative.trim_start_matches('/');
    if relative.is_empty() {
        mount.to_owned()
    } else {
        mount.join(relative)
    }
}

pub(crate) const DELEGATE_HINT: &str = "run the runner in a cgroup delegated to it, e.g. \
    `systemd-run --user --scope -p Delegate=yes hapi runner start`";

pub(crate) fn not_writable(path: &Path, e: &std::io::Error) -> Unavailable {
    let hint = match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            format!(" (not delegated to this user; {DELEGATE_HINT})")
        }
        _ => String::new(),
    };
    permanent(format!("cannot write {}: {e}{hint}", path.display()))
}

/// Creating a group is what a spawn will do: tries it once in `base`.
pub(crate) fn probe(base: &Path, pid: u32) -> Result<(), Unavailable> {
    let probe = base.join(format!("{SESSION_PREFIX}probe-{pid}"));
    std::fs::create_dir(&probe).map_err(|e| not_writable(&probe, &e))?;
    let _ = std::fs::remove_dir(&probe);
    Ok(())
}

/// The group(s) of one session: one directory on cgroup v2, one per
/// hierarchy on cgroup v1. Its text form (in `HAPI_CGROUP`, the sessions
/// file and `/list`) is the directories joined with `:`, so a single v2
/// directory reads as before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "PathBuf", into = "PathBuf")]
pub struct SessionGroup {
    dirs: Vec<PathBuf>,
}

impl SessionGroup {
    /// A group made of these directories.
    pub fn new(dirs: Vec<PathBuf>) -> SessionGroup {
        SessionGroup { dirs }
    }

    /// Its directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The value of `HAPI_CGROUP`; `None` when a directory holds a `:`.
    pub fn encode(&self) -> Option<OsString> {
        match self.dirs.as_slice() {
            [one] => Some(one.clone().into_os_string()),
            dirs => std::env::join_paths(dirs).ok(),
        }
    }

    /// Reads a `HAPI_CGROUP` value (a single directory, as older runners
    /// wrote it, or several joined with `:`).
    pub fn decode(value: &OsStr) -> SessionGroup {
        let single = Path::new(value);
        let dirs = if !value.as_encoded_bytes().contains(&b':') || single.is_dir() {
            vec![single.to_owned()]
        } else {
            std::env::split_paths(value)
                .filter(|d| !d.as_os_str().is_empty())
                .collect()
        };
        SessionGroup { dirs }
    }

    /// Moves this process into every directory (its children are born there).
    pub fn join(&self) -> std::io::Result<()> {
        let pid = std::process::id().to_string();
        for dir in &self.dirs {
            std::fs::write(dir.join("cgroup.procs"), &pid)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        }
        Ok(())
    }

    /// Whether process `pid` is in every directory.
    pub fn holds(&self, pid: u32) -> bool {
        let pid = pid.to_string();
        self.dirs.iter().all(|dir| {
            std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|procs| procs.lines().any(|l| l == pid))
        })
    }

    /// How many of its processes the kernel killed for the memory limit:
    /// `oom_kill` of `memory.events` (v2) or `memory.oom_control` (v1, kernel
    /// 4.13 and later); `None` when no directory counts them.
    pub fn oom_kills(&self) -> Option<u64> {
        self.dirs
            .iter()
            .filter_map(|dir| {
                ["memory.events", "memory.oom_control"]
                    .iter()
                    .find_map(|file| parse_oom_kills(&std::fs::read_to_string(dir.join(file)).ok()?))
            })
            .reduce(|a, b| a + b)
    }

    /// The memory limit as written in the group (`max` or bytes).
    pub fn memory_max(&self) -> Option<String> {
        self.dirs.iter().find_map(|dir| {
            ["memory.max", "memory.limit_in_bytes"]
                .iter()
                .find_map(|file| std::fs::read_to_string(dir.join(file)).ok())
                .map(|s| s.trim().to_owned())
        })
    }

    /// Removes an ended session's directories; one with processes left is
    /// kept (and removed by a later sweep). True when none is left.
    pub fn remove(&self) -> bool {
        // Every directory is tried, whatever the others do.
        self.dirs.iter().filter(|dir| !remove(dir)).count() == 0
    }
}

impl From<PathBuf> for SessionGroup {
    fn from(value: PathBuf) -> Self {
        SessionGroup::decode(value.as_os_str())
    }
}

impl From<SessionGroup> for PathBuf {
    fn from(group: SessionGroup) -> Self {
        group
            .encode()
            .map(PathBuf::from)
            .unwrap_or_else(|| group.dirs.into_iter().next().unwrap_or_default())
    }
}

impl std::fmt::Display for SessionGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        f.write_str(&dirs.join(":"))
    }
}

/// The `oom_kill N` line of `memory.events` (v2) or `memory.oom_control` (v1).
pub(crate) fn parse_oom_kills(events: &str) -> Option<u64> {
    events
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// Removes a session group directory; false when it still holds processes.
fn remove(dir: &Path) -> bool {
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => true,
        Err(e) => {
            tracing::debug!(group = %dir.display(), "cannot remove the session cgroup yet: {e}");
            false
        }
    }
}

/// Removes the empty session groups left in `base` (by a runner that was
/// killed), those at least `min_age` old when given; groups with processes
/// fail to be removed and stay.
pub fn sweep(base: &Path, min_age: Option<Duration>) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(SESSION_PREFIX) || !entry.path().is_dir() {
            continue;
        }
        let young = min_age.is_some_and(|min| {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age < min)
        });
        if !young {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_limits_no_cgroup_is_needed() {
        let cgroups = Cgroups::new(SessionLimits::default(), CgroupChoice::Auto);
        assert_eq!(cgroups.prepare(), CgroupStatus::NotNeeded);
        assert_eq!(cgroups.create_session_group("a").unwrap(), None);
    }

    #[test]
    fn turned_off_the_limits_are_reported_as_not_applied() {
        let limits = SessionLimits {
            memory_max: Some(1 << 30),
            ..Default::default()
        };
        let cgroups = Cgroups::new(limits, CgroupChoice::Off);
        let status = cgroups.prepare();
        assert_eq!(status.describe(), "NOT AVAILABLE: turned off (HAPI_SESSION_CGROUP=off)");
        assert!(cgroups.create_session_group("a").unwrap_err().contains("turned off"));
    }

    #[test]
    fn oom_kills_are_read_from_memory_events_and_oom_control() {
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kills(events), Some(1));
        let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_oom_kills(oom_control), Some(3));
        assert_eq!(
            parse_oom_kills("oom_kill_disable 0\nunder_oom 0\n"),
            None,
            "before 4.13"
        );
        assert_eq!(parse_oom_kills("low 0\n"), None);

        let dir = tempfile::tempdir().unwrap();
        let (memory, cpu) = (dir.path().join("memory"), dir.path().join("cpu"));
        std::fs::create_dir(&memory).unwrap();
        std::fs::create_dir(&cpu).unwrap();
        std::fs::write(memory.join("memory.oom_control"), oom_control).unwrap();
        std::fs::write(memory.join("memory.limit_in_bytes"), "67108864\n").unwrap();
        let group = SessionGroup::new(vec![memory, cpu]);
        assert_eq!(group.oom_kills(), Some(3));
        assert_eq!(group.memory_max().unwrap(), "67108864");
        assert_eq!(SessionGroup::new(vec![dir.path().join("cpu")]).oom_kills(), None);
    }

    #[test]
    fn a_session_group_reads_back_from_its_text_form() {
        let v2 = SessionGroup::new(vec!["/sys/fs/cgroup/user.slice/hapi-session-a".into()]);
        assert_eq!(v2.encode().unwrap(), "/sys/fs/cgroup/user.slice/hapi-session-a");
        assert_eq!(SessionGroup::decode(&v2.encode().unwrap()), v2);
        let v1 = SessionGroup::new(vec![
            "/sys/fs/cgroup/memory/x/hapi-session-a".into(),
            "/sys/fs/cgroup/cpu/hapi-session-a".into(),
        ]);
        let text = v1.encode().unwrap();
        assert_eq!(
            text,
            "/sys/fs/cgroup/memory/x/hapi-session-a:/sys/fs/cgroup/cpu/hapi-session-a"
        );
        assert_eq!(SessionGroup::decode(&text), v1);
        // The sessions file and `/list` carry the same text.
        let json = serde_json::to_string(&v1).unwrap();
        assert_eq!(serde_json::from_str::<SessionGroup>(&json).unwrap(), v1);
        assert_eq!(
            serde_json::to_string(&v2).unwrap(),
            "\"/sys/fs/cgroup/user.slice/hapi-session-a\""
        );
        // A directory with a `:` cannot be passed along with others.
        assert!(SessionGroup::new(vec!["/a:b".into(), "/c".into()]).encode().is_none());
    }

    #[test]
    fn a_session_group_is_joined_and_removed_in_every_hierarchy() {
        let dir = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = ["memory", "cpu"].iter().map(|c| dir.path().join(c)).collect();
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
        }
        let group = SessionGroup::new(dirs.clone());
        group.join().unwrap();
        assert!(group.holds(std::process::id()));
        for d in &dirs {
            // Plain directories: the file written by join must go first.
            std::fs::remove_file(d.join("cgroup.procs")).unwrap();
        }
        assert!(group.remove());
        assert!(dirs.iter().all(|d| !d.exists()));
        assert!(group.remove(), "already gone is gone");
    }

    #[test]
    fn a_sweep_leaves_young_groups_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let young = dir.path().join(format!("{SESSION_PREFIX}young"));
        let other = dir.path().join("other");
        std::fs::create_dir(&young).unwrap();
        std::fs::create_dir(&other).unwrap();
        sweep(dir.path(), Some(Duration::from_secs(3600)));
        assert!(young.exists());
        sweep(dir.path(), None);
        assert!(!young.exists());
        assert!(other.exists(), "only session groups are swept");
    }
}
