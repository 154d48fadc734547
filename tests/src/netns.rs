//! Linux network namespaces for tests that need a real network between their
//! parts (a relay, a desktop, a phone), made with iproute2's `ip netns`.
//!
//! A namespace is deleted when its guard drops, panics included; the veths in
//! it go with it. Processes are put into a namespace either with
//! [`Netns::command`] (`ip netns exec`, which `exec`s the program, so the PID
//! the test holds is the program's own) or by spawning them from a thread that
//! entered it ([`Netns::enter`]): a thread's network namespace is inherited by
//! the threads and processes it creates.
use std::ffi::OsStr;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Runs `ip ARGS…`, failing the test with its stderr unless it succeeds.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2): {e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// A named network namespace (`/run/netns/NAME`) with its `lo` up, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `name`. Creating a namespace needs root (CAP_SYS_ADMIN); without
    /// it the test fails saying so, rather than pass without testing anything.
    pub fn create(name: &str) -> Netns {
        // A namespace of this name can only be left over from a dead process
        // whose PID this one reuses (names carry the PID): remove it first.
        let _ = Command::new("ip").args(["netns", "delete", name]).output();
        let out = Command::new("ip")
            .args(["netns", "add", name])
            .output()
            .unwrap_or_else(|e| panic!("cannot run `ip` (Debian package iproute2): {e}"));
        assert!(
            out.status.success(),
            "`ip netns add {name}` failed: {}. This test builds a real network out of Linux \
             network namespaces and needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN), as on CI; \
             run it as root.",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let ns = Netns { name: name.to_owned() };
        // A new namespace starts with its loopback down: 127.0.0.1 would not work.
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS…`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// A veth pair: `here` in this namespace, `there` in `other`. Both ends are
    /// made inside the namespaces, so their names never meet the host's.
    pub fn veth(&self, here: &str, other: &Netns, there: &str) {
        self.ip(&[
            "link",
            "add",
            here,
            "type",
            "veth",
            "peer",
            "name",
            there,
            "netns",
            other.name(),
        ]);
    }

    /// Gives `dev` the address `cidr` and brings it up.
    pub fn address(&self, dev: &str, cidr: &str) {
        self.ip(&["addr", "add", cidr, "dev", dev]);
        self.ip(&["link", "set", dev, "up"]);
    }

    /// `program` run in this namespace by `ip netns exec`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `f` on a new thread inside this namespace and returns its result
    /// (a panic in `f` is the caller's panic). Sockets, threads, runtimes and
    /// child processes that `f` creates belong to this namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name(format!("netns {}", self.name))
                .spawn_scoped(scope, || {
                    let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                    // Only this thread moves (setns(2) on a thread of a
                    // multi-threaded process is allowed for network namespaces).
                    setns(ns, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns({path}): {e}"));
                    f()
                })
                .expect("thread");
            thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Whether a TCP connection from this namespace to `addr` opens within `within`.
    pub fn can_connect(&self, addr: SocketAddr, within: Duration) -> Result<(), std::io::Error> {
        self.enter(|| TcpStream::connect_timeout(&addr, within).map(drop))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Anything still running in the namespace was started by this test
        // (the name is this run's own) and escaped its guard, e.g. a browser
        // whose driver was killed: end it by PID, or it would outlive the test.
        let me = std::process::id();
        let listed = Command::new("ip").args(["netns", "pids", &self.name]).output();
        let listed = listed
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for pid in listed
            .lines()
            .filter_map(|l| l.trim().parse::<u32>().ok())
            .filter(|&p| p != me)
        {
            eprintln!(
                "killing pid {pid} ({}), left in network namespace {}",
                crate::cmdline(pid),
                self.name
            );
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let out = Command::new("ip").args(["netns", "delete", &self.name]).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("could not delete network namespace {}: {out:?}", self.name);
        }
    }
}
