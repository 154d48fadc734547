//! cgroup v2 groups that hold the memory and CPU limits of runner-spawned
//! sessions.
//!
//! The runner finds the cgroup v2 mount (`/proc/self/mountinfo`: `/sys/fs/cgroup`
//! on a pure v2 system, `/sys/fs/cgroup/unified` on a hybrid one) and its own
//! group (`/proc/self/cgroup`, line `0::/path`). That group is the **base**:
//! session groups are created in it, as `hapi-session-…`. For that the base must
//! offer the needed controllers (`cgroup.controllers`) and have them enabled for
//! its children (`cgroup.subtree_control`). cgroup v2 lets a non-root group
//! enable controllers for children only while it holds no process itself (the
//! "no internal processes" rule), so when that write fails with `EBUSY` the
//! runner moves itself into a leaf, `hapi-runner`, and tries again. A runner
//! that starts inside such a leaf (one that replaced an older runner) uses its
//! parent as the base. The runner never moves any other process.
//!
//! A session's `hapi claude` joins its group itself, before it starts the agent
//! ([`join`], given the path in `HAPI_CGROUP`), so the agent is born inside it;
//! the workspace forbids the unsafe `pre_exec` that would be needed otherwise.
//!
//! When no writable group can be had, the reason says why, and the runner goes
//! on without memory and CPU limits: its log at start, `hapi runner status` and
//! each session's history say so.
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::limits::SessionLimits;

/// The leaf the runner moves itself into when its own group must give
/// controllers to session groups.
pub const RUNNER_LEAF: &str = "hapi-runner";
/// Prefix of session groups.
pub const SESSION_PREFIX: &str = "hapi-session-";

/// Whether session groups can be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupStatus {
    /// No memory or CPU limit is set: no cgroup is needed.
    NotNeeded,
    /// Session groups are created in `base`.
    Ready {
        /// The group that holds the session groups.
        base: PathBuf,
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
            CgroupStatus::Ready { base } => format!("session groups in {}", base.display()),
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
    status: Mutex<CgroupStatus>,
}

impl Cgroups {
    /// Nothing is detected yet; see [`Cgroups::prepare`].
    pub fn new(limits: SessionLimits) -> Cgroups {
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
            *status = match detect(&controllers(&self.limits)) {
                Ok(base) => {
                    sweep(&base);
                    CgroupStatus::Ready { base }
                }
                Err(Unavailable { reason, retry }) => CgroupStatus::Unavailable { reason, retry },
            };
        }
        status.clone()
    }

    /// A new session group named `hapi-session-<name>` with the limits written,
    /// or why there is none (`Ok(None)`: no limits need one).
    pub fn create_session_group(&self, name: &str) -> Result<Option<PathBuf>, String> {
        match self.prepare() {
            CgroupStatus::NotNeeded => Ok(None),
            CgroupStatus::Unavailable { reason, .. } => Err(reason),
            CgroupStatus::Ready { base } => {
                create_group(&base, &format!("{SESSION_PREFIX}{name}"), &self.limits).map(Some)
            }
        }
    }
}

/// Why no session groups can be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// For a person.
    pub reason: String,
    /// Whether it may pass.
    pub retry: bool,
}

fn permanent(reason: impl Into<String>) -> Unavailable {
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

/// Finds this process's cgroup v2 group and makes it able to hold session
/// groups with `controllers`; returns it (the base).
pub fn detect(controllers: &[&str]) -> Result<PathBuf, Unavailable> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| permanent(format!("cannot read /proc/self/mountinfo: {e}")))?;
    let Some((mount, root)) = find_cgroup2_mount(&mountinfo) else {
        return Err(permanent(
            "no cgroup v2 file system is mounted (this system uses cgroup v1 only)",
        ));
    };
    let cgroups = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| permanent(format!("cannot read /proc/self/cgroup: {e}")))?;
    let Some(own) = own_cgroup_path(&cgroups) else {
        return Err(permanent(
            "this process is in no cgroup v2 group (no `0::` line in /proc/self/cgroup)",
        ));
    };
    let own_dir = group_dir(&mount, &root, &own);
    let hybrid = mount != Path::new("/sys/fs/cgroup");
    prepare_base(&own_dir, controllers, std::process::id(), hybrid)
}

/// The mount point and mount root of the first cgroup2 mount in `mountinfo`.
pub(crate) fn find_cgroup2_mount(mountinfo: &str) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let fields: Vec<&str> = before.split_whitespace().collect();
        Some((PathBuf::from(unescape(fields.get(4)?)), unescape(fields.get(3)?)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
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

/// The cgroup v2 path in `/proc/<pid>/cgroup` (the `0::/path` line).
pub(crate) fn own_cgroup_path(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| path.trim().to_owned())
}

/// The directory of the group `path` (as `/proc/self/cgroup` says it) under a
/// mount whose root is `root`.
fn group_dir(mount: &Path, root: &str, path: &str) -> PathBuf {
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

/// The cgroup directory of process `pid`, if it is in a cgroup v2 group.
pub fn cgroup_of(pid: u32) -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let (mount, root) = find_cgroup2_mount(&mountinfo)?;
    let path = own_cgroup_path(&std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?)?;
    Some(group_dir(&mount, &root, &path))
}

fn words(path: &Path) -> Result<Vec<String>, Unavailable> {
    std::fs::read_to_string(path)
        .map(|text| text.split_whitespace().map(str::to_owned).collect())
        .map_err(|e| permanent(format!("cannot read {}: {e}", path.display())))
}

const DELEGATE_HINT: &str = "run the runner in a cgroup delegated to it, e.g. \
    `systemd-run --user --scope -p Delegate=yes hapi runner start`";

/// Makes `own_dir` (or its parent, if it is the runner's leaf) able to hold
/// session groups with `controllers`.
pub(crate) fn prepare_base(
    own_dir: &Path,
    controllers: &[&str],
    pid: u32,
    hybrid: bool,
) -> Result<PathBuf, Unavailable> {
    let in_leaf = own_dir.file_name().is_some_and(|n| n == RUNNER_LEAF);
    let base = match own_dir.parent() {
        Some(parent) if in_leaf => parent.to_owned(),
        _ => own_dir.to_owned(),
    };
    let available = words(&base.join("cgroup.controllers"))?;
    let missing: Vec<&str> = controllers
        .iter()
        .copied()
        .filter(|c| !available.iter().any(|a| a == c))
        .collect();
    if !missing.is_empty() {
        let offered = if available.is_empty() {
            "none".to_owned()
        } else {
            available.join(" ")
        };
        let hint = if hybrid {
            "this system mounts cgroup v2 beside cgroup v1 (a hybrid setup) and manages memory and cpu \
             with cgroup v1; HAPI uses cgroup v2 only"
        } else {
            DELEGATE_HINT
        };
        return Err(permanent(format!(
            "the cgroup v2 group {} does not offer the {} controller (it offers: {offered}); {hint}",
            base.display(),
            missing.join(" and ")
        )));
    }
    let enabled = words(&base.join("cgroup.subtree_control"))?;
    let to_enable: Vec<String> = controllers
        .iter()
        .filter(|c| !enabled.iter().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if !to_enable.is_empty() {
        let control = base.join("cgroup.subtree_control");
        let enable = || std::fs::write(&control, to_enable.join(" "));
        match enable() {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                if !in_leaf {
                    let leaf = base.join(RUNNER_LEAF);
                    match std::fs::create_dir(&leaf) {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(not_writable(&leaf, &e)),
                    }
                    std::fs::write(leaf.join("cgroup.procs"), pid.to_string())
                        .map_err(|e| not_writable(&leaf.join("cgroup.procs"), &e))?;
                    tracing::info!(leaf = %leaf.display(), "moved the runner into its own cgroup leaf");
                }
                match enable() {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                        let others = std::fs::read_to_string(base.join("cgroup.procs"))
                            .map(|t| t.lines().count())
                            .unwrap_or(0);
                        return Err(Unavailable {
                            reason: format!(
                                "the cgroup v2 group {} holds {others} other process(es), so it cannot give \
                                 the {} controller to session groups (cgroup v2's \"no internal processes\" rule); {DELEGATE_HINT}",
                                base.display(),
                                controllers.join(" and ")
                            ),
                            retry: true,
                        });
                    }
                    Err(e) => return Err(not_writable(&control, &e)),
                }
            }
            Err(e) => return Err(not_writable(&control, &e)),
        }
    }
    // Creating a group is what a spawn will do: try it once now.
    let probe = base.join(format!("{SESSION_PREFIX}probe-{pid}"));
    std::fs::create_dir(&probe).map_err(|e| not_writable(&probe, &e))?;
    let _ = std::fs::remove_dir(&probe);
    Ok(base)
}

fn not_writable(path: &Path, e: &std::io::Error) -> Unavailable {
    let hint = match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            format!(" (not delegated to this user; {DELEGATE_HINT})")
        }
        _ => String::new(),
    };
    permanent(format!("cannot write {}: {e}{hint}", path.display()))
}

/// Creates `base/name` and writes the limits into it.
pub(crate) fn create_group(base: &Path, name: &str, limits: &SessionLimits) -> Result<PathBuf, String> {
    let dir = base.join(name);
    std::fs::create_dir(&dir).map_err(|e| format!("cannot create the cgroup {}: {e}", dir.display()))?;
    let mut writes = Vec::new();
    if let Some(bytes) = limits.memory_max {
        writes.push(("memory.max", bytes.to_string()));
    }
    if let Some(line) = limits.cpu_max_line() {
        writes.push(("cpu.max", line));
    }
    for (file, value) in writes {
        if let Err(e) = std::fs::write(dir.join(file), &value) {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!("cannot write {value} to {}: {e}", dir.join(file).display()));
        }
    }
    Ok(dir)
}

/// Moves this process into the group `dir` (its children are born there).
pub fn join(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
}

/// `oom_kill` of the group's `memory.events`: how many of its processes the
/// kernel killed for the memory limit.
pub fn oom_kills(dir: &Path) -> Option<u64> {
    let events = std::fs::read_to_string(dir.join("memory.events")).ok()?;
    parse_oom_kills(&events)
}

pub(crate) fn parse_oom_kills(events: &str) -> Option<u64> {
    events
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// `memory.max` of a group, as written there (`max` or bytes).
pub fn memory_max(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("memory.max"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Removes an ended session's group; a group with processes left is kept
/// (and removed by a later sweep).
pub fn remove(dir: &Path) -> bool {
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
/// killed); groups with processes fail to be removed and stay.
pub fn sweep(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(SESSION_PREFIX) && entry.path().is_dir() {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn the_cgroup2_mount_is_found_in_mountinfo() {
        let (mount, root) = find_cgroup2_mount(HYBRID).unwrap();
        assert_eq!(mount, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(root, "/");
        let pure = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(find_cgroup2_mount(pure).unwrap().0, Path::new("/sys/fs/cgroup"));
        let spaced = "29 23 0:26 /sub /mnt/my\\040cg rw - cgroup2 none rw\n";
        assert_eq!(
            find_cgroup2_mount(spaced).unwrap(),
            (PathBuf::from("/mnt/my cg"), "/sub".to_owned())
        );
        assert!(find_cgroup2_mount("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n").is_none());
    }

    #[test]
    fn the_own_group_comes_from_proc_cgroup() {
        let text = "4:memory:/x\n1:cpu:/\n0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(
            own_cgroup_path(text).unwrap(),
            "/user.slice/user-1000.slice/session-2.scope"
        );
        assert!(own_cgroup_path("4:memory:/x\n").is_none());
        let mount = Path::new("/sys/fs/cgroup");
        assert_eq!(group_dir(mount, "/", "/"), mount);
        assert_eq!(group_dir(mount, "/", "/a/b"), mount.join("a/b"));
        assert_eq!(group_dir(mount, "/a", "/a/b"), mount.join("b"));
    }

    /// A directory tree shaped like a cgroup (plain files: the kernel's rules
    /// are not simulated, the reads and writes are).
    fn fake_group(dir: &Path, controllers: &str, enabled: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
        std::fs::write(dir.join("cgroup.subtree_control"), enabled).unwrap();
        std::fs::write(dir.join("cgroup.procs"), "").unwrap();
    }

    #[test]
    fn a_group_without_the_controllers_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fake_group(dir.path(), "hugetlb\n", "");
        let err = prepare_base(dir.path(), &["memory", "cpu"], 1, true).unwrap_err();
        assert!(!err.retry);
        assert!(
            err.reason.contains("does not offer the memory and cpu controller"),
            "{}",
            err.reason
        );
        assert!(
            err.reason.contains("offers: hugetlb") && err.reason.contains("hybrid"),
            "{}",
            err.reason
        );
        let err = prepare_base(dir.path(), &["memory"], 1, false).unwrap_err();
        assert!(err.reason.contains("Delegate=yes"), "{}", err.reason);
    }

    #[test]
    fn a_usable_group_gets_its_controllers_enabled_and_session_groups() {
        let dir = tempfile::tempdir().unwrap();
        fake_group(dir.path(), "cpuset cpu io memory pids\n", "");
        let base = prepare_base(dir.path(), &["memory", "cpu"], 1, false).unwrap();
        assert_eq!(base, dir.path());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cgroup.subtree_control")).unwrap(),
            "+memory +cpu"
        );
        assert!(
            !dir.path().join(format!("{SESSION_PREFIX}probe-1")).exists(),
            "the probe is removed"
        );

        // Inside the runner's leaf, the parent is the base.
        let leaf = dir.path().join(RUNNER_LEAF);
        std::fs::create_dir(&leaf).unwrap();
        assert_eq!(prepare_base(&leaf, &["memory"], 1, false).unwrap(), dir.path());

        let limits = SessionLimits {
            memory_max: Some(256 << 20),
            cpu_max: Some(0.5),
            ..Default::default()
        };
        let group = create_group(&base, "hapi-session-x", &limits).unwrap();
        assert_eq!(memory_max(&group).unwrap(), (256u64 << 20).to_string());
        assert_eq!(std::fs::read_to_string(group.join("cpu.max")).unwrap(), "50000 100000");
        assert!(
            create_group(&base, "hapi-session-x", &limits).is_err(),
            "never reuses a group"
        );
    }

    #[test]
    fn without_limits_no_cgroup_is_needed() {
        let cgroups = Cgroups::new(SessionLimits::default());
        assert_eq!(cgroups.prepare(), CgroupStatus::NotNeeded);
        assert_eq!(cgroups.create_session_group("a").unwrap(), None);
    }

    #[test]
    fn oom_kills_are_read_from_memory_events() {
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kills(events), Some(1));
        assert_eq!(parse_oom_kills("low 0\n"), None);
    }
}
