//! cgroup v2: one group per session.
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
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{DELEGATE_HINT, Unavailable, group_dir, not_writable, permanent, unescape};
use crate::limits::SessionLimits;

/// The leaf the runner moves itself into when its own group must give
/// controllers to session groups.
pub const RUNNER_LEAF: &str = "hapi-runner";

/// Finds this process's cgroup v2 group (from the texts of
/// `/proc/self/mountinfo` and `/proc/self/cgroup`) and makes it able to hold
/// session groups with `controllers`; returns it (the base).
pub fn detect(mountinfo: &str, own: &str, controllers: &[&str]) -> Result<PathBuf, Unavailable> {
    let Some((mount, root)) = find_cgroup2_mount(mountinfo) else {
        return Err(permanent(
            "no cgroup v2 file system is mounted (this system uses cgroup v1 only)",
        ));
    };
    let Some(own) = own_cgroup_path(own) else {
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

/// The cgroup v2 path in `/proc/<pid>/cgroup` (the `0::/path` line).
pub(crate) fn own_cgroup_path(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| path.trim().to_owned())
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
             with cgroup v1"
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
    super::probe(&base, pid)?;
    Ok(base)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::SESSION_PREFIX;

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
        assert_eq!(
            std::fs::read_to_string(group.join("memory.max")).unwrap(),
            (256u64 << 20).to_string()
        );
        assert_eq!(std::fs::read_to_string(group.join("cpu.max")).unwrap(), "50000 100000");
        assert!(
            create_group(&base, "hapi-session-x", &limits).is_err(),
            "never reuses a group"
        );
    }
}
