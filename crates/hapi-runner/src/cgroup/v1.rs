//! cgroup v1: the fallback when cgroup v2 does not offer the controllers.
//!
//! Each v1 controller is a hierarchy of its own, mounted apart (fstype
//! `cgroup`, the controller among the super options in
//! `/proc/self/mountinfo`, e.g. `/sys/fs/cgroup/memory`), and a process is in
//! one group per hierarchy (`/proc/self/cgroup`, lines `N:memory:/path`). For
//! each controller the limits need, the runner's own group in that hierarchy
//! is the base, and a session gets a group `hapi-session-…` in each base.
//! cgroup v1 has no "no internal processes" rule, so the runner never moves.
use std::path::{Path, PathBuf};

use super::{SessionGroup, Unavailable, group_dir, permanent, unescape};
use crate::limits::SessionLimits;

/// A v1 hierarchy that holds session groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// The controllers the limits need from it (`memory`, `cpu`).
    pub controllers: Vec<String>,
    /// The runner's own group in it.
    pub base: PathBuf,
}

/// A mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub(crate) point: PathBuf,
    pub(crate) root: String,
    pub(crate) controllers: Vec<String>,
}

/// The file that shows a hierarchy's controller is usable for a limit (the
/// cpu hierarchy needs CFS bandwidth control for a quota).
fn limit_file(controller: &str) -> &'static str {
    match controller {
        "memory" => "memory.limit_in_bytes",
        _ => "cpu.cfs_quota_us",
    }
}

/// The v1 hierarchies for `controllers`, with the runner's group in each as
/// the base, checked writable. `Err(None)`: none of them is mounted as v1.
pub fn detect(mountinfo: &str, own: &str, controllers: &[&str]) -> Result<Vec<Hierarchy>, Option<Unavailable>> {
    let mounts = find_mounts(mountinfo);
    let paths = own_paths(own);
    let mount_of = |controller: &str| mounts.iter().find(|m| m.controllers.iter().any(|c| c == controller));
    let missing: Vec<&str> = controllers.iter().copied().filter(|c| mount_of(c).is_none()).collect();
    if missing.len() == controllers.len() {
        return Err(None);
    }
    if !missing.is_empty() {
        return Err(Some(permanent(format!(
            "no cgroup v1 hierarchy with the {} controller is mounted",
            missing.join(" and ")
        ))));
    }
    let mut hierarchies: Vec<Hierarchy> = Vec::new();
    for &controller in controllers {
        let mount = mount_of(controller).expect("checked above");
        let Some((_, path)) = paths.iter().find(|(cs, _)| cs.iter().any(|c| c == controller)) else {
            return Err(Some(permanent(format!(
                "this process is in no cgroup v1 {controller} group (no `N:{controller}:` line in /proc/self/cgroup)"
            ))));
        };
        let base = group_dir(&mount.point, &mount.root, path);
        if !base.join(limit_file(controller)).exists() {
            return Err(Some(permanent(format!(
                "the cgroup v1 group {} has no {}",
                base.display(),
                limit_file(controller)
            ))));
        }
        // Controllers mounted together share one hierarchy, so one group.
        match hierarchies.iter_mut().find(|h| h.base == base) {
            Some(h) => h.controllers.push(controller.to_owned()),
            None => hierarchies.push(Hierarchy {
                controllers: vec![controller.to_owned()],
                base,
            }),
        }
    }
    for h in &hierarchies {
        super::probe(&h.base, std::process::id()).map_err(Some)?;
    }
    Ok(hierarchies)
}

/// The cgroup v1 mounts in `mountinfo` (fstype `cgroup`), with the
/// controllers in their super options.
pub(crate) fn find_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mut after = after.split_whitespace();
            if after.next()? != "cgroup" {
                return None;
            }
            let options = after.nth(1)?;
            let fields: Vec<&str> = before.split_whitespace().collect();
            Some(Mount {
                point: PathBuf::from(unescape(fields.get(4)?)),
                root: unescape(fields.get(3)?),
                controllers: options.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// The v1 lines of `/proc/<pid>/cgroup`: `(controllers, path)`.
pub(crate) fn own_paths(proc_cgroup: &str) -> Vec<(Vec<String>, String)> {
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            (!controllers.is_empty()).then(|| {
                (
                    controllers.split(',').map(str::to_owned).collect(),
                    path.trim().to_owned(),
                )
            })
        })
        .collect()
}

/// The limit files of `controller` and their values, in the order they must
/// be written.
fn writes(controller: &str, dir: &Path, limits: &SessionLimits) -> Vec<(&'static str, String)> {
    match controller {
        "memory" => {
            let Some(bytes) = limits.memory_max else {
                return Vec::new();
            };
            // Memory plus swap must never be below memory alone: a new group
            // has both unlimited, so memory goes down first, then memsw to the
            // same value, which leaves the agent no swap to dodge the limit.
            let mut files = vec![("memory.limit_in_bytes", bytes.to_string())];
            if dir.join("memory.memsw.limit_in_bytes").exists() {
                files.push(("memory.memsw.limit_in_bytes", bytes.to_string()));
            }
            files
        }
        _ => match limits.cpu_quota_period() {
            // The period first, so the quota is read against it.
            Some((quota, period)) => vec![
                ("cpu.cfs_period_us", period.to_string()),
                ("cpu.cfs_quota_us", quota.to_string()),
            ],
            None => Vec::new(),
        },
    }
}

/// Creates `name` in every hierarchy and writes the limits; on a failure,
/// the groups made so far are removed.
pub(crate) fn create_groups(
    hierarchies: &[Hierarchy],
    name: &str,
    limits: &SessionLimits,
) -> Result<SessionGroup, String> {
    let mut made = Vec::new();
    let mut create = || {
        for h in hierarchies {
            let dir = h.base.join(name);
            std::fs::create_dir(&dir).map_err(|e| format!("cannot create the cgroup {}: {e}", dir.display()))?;
            made.push(dir.clone());
            for controller in &h.controllers {
                for (file, value) in writes(controller, &dir, limits) {
                    std::fs::write(dir.join(file), &value)
                        .map_err(|e| format!("cannot write {value} to {}: {e}", dir.join(file).display()))?;
                }
            }
        }
        Ok(())
    };
    let created: Result<(), String> = create();
    let group = SessionGroup::new(made);
    let checked = created.and_then(|()| match group.encode() {
        Some(_) => Ok(()),
        None => Err(format!(
            "a session cgroup path holds a `:` ({group}), which HAPI_CGROUP cannot carry"
        )),
    });
    match checked {
        Ok(()) => Ok(group),
        Err(e) => {
            group.remove();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's kind of hybrid layout: v1 controllers, and a v2 mount
    /// with none.
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const OWN: &str = "\
9:name=systemd:/
4:memory:/process_api/1b59
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn v1_mounts_are_found_with_their_controllers() {
        let mounts = find_mounts(HYBRID);
        assert_eq!(mounts.len(), 4, "{mounts:?}");
        let memory = mounts
            .iter()
            .find(|m| m.point == Path::new("/sys/fs/cgroup/memory"))
            .unwrap();
        assert_eq!(memory.controllers, ["rw", "memory"]);
        assert_eq!(memory.root, "/");
        let together = "25 24 0:22 /sub /sys/fs/cgroup/cpu\\054cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let mounts = find_mounts(together);
        assert_eq!(mounts[0].point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(mounts[0].root, "/sub");
        assert!(mounts[0].controllers.iter().any(|c| c == "cpu"));
        assert!(find_mounts("29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n").is_empty());
    }

    #[test]
    fn v1_groups_come_from_proc_cgroup() {
        let paths = own_paths(OWN);
        assert!(paths.contains(&(vec!["memory".to_owned()], "/process_api/1b59".to_owned())));
        assert!(paths.contains(&(vec!["cpu".to_owned()], "/".to_owned())));
        assert!(
            paths.iter().all(|(cs, _)| !cs.is_empty()),
            "the v2 line is not a v1 group"
        );
        let joint = own_paths("3:cpu,cpuacct:/user.slice\n");
        assert_eq!(
            joint,
            [(vec!["cpu".to_owned(), "cpuacct".to_owned()], "/user.slice".to_owned())]
        );
    }

    #[test]
    fn a_pure_v2_system_has_no_v1_hierarchy() {
        let pure = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(detect(pure, "0::/user.slice\n", &["memory", "cpu"]), Err(None));
        // One of two controllers on v1 is not enough.
        let only_memory = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let err = detect(only_memory, OWN, &["memory", "cpu"]).unwrap_err().unwrap();
        assert!(
            err.reason.contains("no cgroup v1 hierarchy with the cpu controller"),
            "{}",
            err.reason
        );
    }

    /// Fake hierarchies in a temporary directory (plain files: the kernel's
    /// checks are not simulated, the reads and writes are).
    fn fake_hierarchies(root: &Path) -> Vec<Hierarchy> {
        let memory = root.join("memory/process_api/1b59");
        let cpu = root.join("cpu");
        std::fs::create_dir_all(&memory).unwrap();
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(memory.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        std::fs::write(cpu.join("cpu.cfs_quota_us"), "-1\n").unwrap();
        let mountinfo = format!(
            "32 31 0:29 / {} rw - cgroup cgroup rw,cpu\n35 31 0:32 / {} rw - cgroup cgroup rw,memory\n",
            cpu.display(),
            root.join("memory").display()
        );
        detect(&mountinfo, OWN, &["memory", "cpu"]).unwrap()
    }

    #[test]
    fn session_groups_get_memory_and_cpu_limits_in_each_hierarchy() {
        let dir = tempfile::tempdir().unwrap();
        let hierarchies = fake_hierarchies(dir.path());
        assert_eq!(hierarchies.len(), 2);
        assert_eq!(hierarchies[0].controllers, ["memory"]);
        assert_eq!(hierarchies[0].base, dir.path().join("memory/process_api/1b59"));
        assert_eq!(hierarchies[1].base, dir.path().join("cpu"));
        let limits = SessionLimits {
            memory_max: Some(64 << 20),
            cpu_max: Some(0.5),
            ..Default::default()
        };
        let group = create_groups(&hierarchies, "hapi-session-x", &limits).unwrap();
        let [memory, cpu] = group.dirs() else { panic!("{group}") };
        let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(read(memory, "memory.limit_in_bytes"), (64u64 << 20).to_string());
        assert!(
            !memory.join("memory.memsw.limit_in_bytes").exists(),
            "only when the kernel has it"
        );
        assert_eq!(read(cpu, "cpu.cfs_period_us"), "100000");
        assert_eq!(read(cpu, "cpu.cfs_quota_us"), "50000");
        assert_eq!(group.memory_max().unwrap(), (64u64 << 20).to_string());

        // A failure in the second hierarchy removes the first one's group
        // (left empty here: plain directories with files cannot be removed).
        std::fs::create_dir(dir.path().join("cpu/hapi-session-y")).unwrap();
        let cpu_only = SessionLimits {
            cpu_max: Some(0.5),
            ..Default::default()
        };
        let err = create_groups(&hierarchies, "hapi-session-y", &cpu_only).unwrap_err();
        assert!(err.contains("cannot create the cgroup"), "{err}");
        assert!(!hierarchies[0].base.join("hapi-session-y").exists());
    }

    #[test]
    fn memory_and_swap_are_limited_alike_when_swap_is_accounted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.memsw.limit_in_bytes"), "max").unwrap();
        let limits = SessionLimits {
            memory_max: Some(64 << 20),
            ..Default::default()
        };
        let files = writes("memory", dir.path(), &limits);
        let bytes = (64u64 << 20).to_string();
        assert_eq!(
            files,
            [
                ("memory.limit_in_bytes", bytes.clone()),
                ("memory.memsw.limit_in_bytes", bytes)
            ],
            "memory first: memsw may never be below it"
        );
        assert!(writes("cpu", dir.path(), &limits).is_empty());
    }
}
