//! Child processes (always in their own process group, stopped on drop) and the
//! numbers `/proc` has about them.
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A spawned process group. Dropping it sends SIGTERM to the group, waits up to
/// 3 s, then sends SIGKILL to whatever is left.
pub struct ChildGuard {
    child: Child,
    name: String,
    stopped: bool,
}

impl ChildGuard {
    /// Spawns `cmd` as the leader of a new process group.
    pub fn spawn(mut cmd: Command, name: &str) -> Result<Self> {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        Ok(ChildGuard {
            child,
            name: name.to_owned(),
            stopped: false,
        })
    }

    /// Process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the leader has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the whole group: SIGTERM, then SIGKILL after 3 s.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pgid = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(pgid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let leader_gone = self.child.try_wait().ok().flatten().is_some();
            // Signal 0: does any member of the group still exist?
            let group_gone = killpg(pgid, None).is_err();
            if leader_gone && group_gone {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "hapi-bench: {} (pgid {pgid}) ignored SIGTERM for 3 s; killing it",
            self.name
        );
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where the release `hapi` and `fake-claude` binaries are.
#[derive(Clone, Debug)]
pub struct Bins {
    pub hapi: PathBuf,
    pub fake_claude: PathBuf,
}

impl Bins {
    /// `dir`, or else the directory of this executable (`target/release`).
    pub fn find(dir: Option<&Path>) -> Result<Self> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_exe()
                .context("cannot find the bench executable")?
                .parent()
                .context("the bench executable has no directory")?
                .to_path_buf(),
        };
        let bins = Bins {
            hapi: dir.join("hapi"),
            fake_claude: dir.join("fake-claude"),
        };
        for b in [&bins.hapi, &bins.fake_claude] {
            if !b.is_file() {
                bail!(
                    "{} is missing: build it first with `cargo build --release -p hapi-cli -p hapi-testkit` \
                     (or pass --bin-dir)",
                    b.display()
                );
            }
        }
        Ok(bins)
    }
}

/// Clock ticks per second (`getconf CLK_TCK`, else 100).
pub fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// utime + stime of a process, in clock ticks (all its threads).
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("no /proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("unreadable stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11).context("short stat")?.parse()?;
    let stime: u64 = fields.get(12).context("short stat")?.parse()?;
    Ok(utime + stime)
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, …), in kB; `Threads` as a count.
pub fn status_field(pid: u32, field: &str) -> Result<u64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("no /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// VmRSS in kB.
pub fn rss_kb(pid: u32) -> Result<u64> {
    status_field(pid, "VmRSS")
}

/// Proportional set size in kB (`/proc/PID/smaps_rollup`): shared pages (the
/// `hapi` binary's text, libc) are divided among the processes mapping them, so
/// PSS sums to what a group of processes really costs.
pub fn pss_kb(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .with_context(|| format!("no /proc/{pid}/smaps_rollup"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no Pss in smaps_rollup")
}

/// Direct children of a process (from `/proc/PID/task/*/children`).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// The 1-minute load average.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
