//! Process identity on this machine. A PID alone is not an identity: PIDs are
//! reused. A process is named by its PID **and** its start time (field 22 of
//! `/proc/PID/stat`, in clock ticks since boot), and nothing is ever signalled
//! unless both still match.
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A process, named so that a reused PID never matches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessId {
    /// The PID.
    pub pid: u32,
    /// Start time in clock ticks after boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
}

/// The fields of `/proc/PID/stat` the runner uses.
struct Stat {
    state: char,
    pgrp: i32,
    start_time: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces or
    // parentheses itself: the fields after it start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is fields[n - 3].
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

impl ProcessId {
    /// The identity of a running process, or `None` if there is none with that PID
    /// (zombies count as gone: they will never do anything again).
    pub fn of(pid: u32) -> Option<ProcessId> {
        let stat = read_stat(pid)?;
        if matches!(stat.state, 'Z' | 'X' | 'x') {
            return None;
        }
        Some(ProcessId {
            pid,
            start_time: stat.start_time,
        })
    }

    /// This process.
    pub fn current() -> ProcessId {
        ProcessId::of(std::process::id()).unwrap_or(ProcessId {
            pid: std::process::id(),
            start_time: 0,
        })
    }

    /// Whether this very process (same PID, same start time) is still running.
    pub fn is_alive(&self) -> bool {
        ProcessId::of(self.pid).is_some_and(|now| now.start_time == self.start_time)
    }

    /// Sends `signal` to the process's group if it leads one, else to the process,
    /// but only if it is still this process. Returns whether a signal was sent.
    pub fn signal_group(&self, signal: Signal) -> bool {
        let Some(stat) = read_stat(self.pid) else {
            return false;
        };
        if stat.start_time != self.start_time || matches!(stat.state, 'Z' | 'X' | 'x') {
            return false;
        }
        let pid = Pid::from_raw(self.pid as i32);
        if stat.pgrp == self.pid as i32 {
            killpg(pid, signal).is_ok()
        } else {
            kill(pid, signal).is_ok()
        }
    }

    /// Waits up to `within` for the process to end.
    pub async fn wait_gone(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if !self.is_alive() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM (to the group), then SIGKILL if it has not ended after `grace`.
    /// Returns whether the process is gone.
    pub async fn terminate(&self, grace: Duration) -> bool {
        if !self.signal_group(Signal::SIGTERM) {
            return !self.is_alive();
        }
        if self.wait_gone(grace).await {
            return true;
        }
        tracing::warn!(
            pid = self.pid,
            "did not stop within {grace:?} of SIGTERM; sending SIGKILL"
        );
        self.signal_group(Signal::SIGKILL);
        self.wait_gone(Duration::from_secs(5)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_identity_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::current();
        assert!(me.start_time > 0);
        assert!(me.is_alive());
        let other = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
        assert!(!other.signal_group(Signal::SIGTERM), "never signals a reused PID");
    }

    #[test]
    fn an_exited_process_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(ProcessId::of(pid).is_none());
    }
}
