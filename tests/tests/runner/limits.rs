//! Per-session limits and the restart policy, through a real runner spawning
//! `hapi claude` with `fake-claude`: rlimits read back from `/proc/<agent>/limits`,
//! cgroup limits read back from the session's group when this machine has a
//! writable cgroup v2 group (else the clear "not applied" report, in the runner
//! log, `hapi runner status` and the session's history), and `on-failure:2`
//! with an agent that crashes.
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::env::*;

/// Starts the runner with extra environment.
fn start_with(env: &Env, vars: &[(&str, &str)]) -> u32 {
    let out: Output = env
        .cmd()
        .args(["runner", "start"])
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "runner start: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    env.runner_pid()
}

/// The `fake-claude` child of a session's `hapi claude`.
fn agent_of(session: u32) -> u32 {
    poll("the agent process", Duration::from_secs(30), || {
        let children = std::fs::read_to_string(format!("/proc/{session}/task/{session}/children")).ok()?;
        children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .find(|&p| hapi_e2e::cmdline(p).contains("fake-claude"))
    })
}

/// `(soft, hard)` of a line of `/proc/<pid>/limits`, e.g. "Max open files".
fn limit(pid: u32, name: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
    let mut fields = line[name.len()..].split_whitespace();
    (fields.next().unwrap().to_owned(), fields.next().unwrap().to_owned())
}

fn runner_log(env: &Env) -> String {
    let path = env.state().unwrap()["runnerLogPath"].as_str().unwrap().to_owned();
    std::fs::read_to_string(path).unwrap_or_default()
}

fn errors_of(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m["update"]["kind"] == "error")
        .map(|m| m["update"]["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn session_limits_are_applied_to_the_agent_or_reported() {
    let mut env = Env::new();
    start_with(
        &env,
        &[
            ("HAPI_SESSION_NOFILE", "512"),
            ("HAPI_SESSION_CORE", "0"),
            ("HAPI_SESSION_MEMORY_MAX", "256M"),
            ("HAPI_SESSION_CPU_MAX", "0.5"),
        ],
    );
    let (id, pid) = env.spawn_session();
    let agent = agent_of(pid);

    // setrlimit by `hapi claude` on itself, inherited by the agent.
    for process in [pid, agent] {
        assert_eq!(
            limit(process, "Max open files"),
            ("512".into(), "512".into()),
            "PID {process}"
        );
        assert_eq!(
            limit(process, "Max core file size"),
            ("0".into(), "0".into()),
            "PID {process}"
        );
        assert_eq!(
            limit(process, "Max address space").0,
            "unlimited",
            "RLIMIT_AS is never set"
        );
    }

    let status = env.ok(&["runner", "status"]);
    assert!(
        status.contains("Session limits: memory 256M, CPU 0.5 cores, open files 512, core dumps 0 (off)"),
        "{status}"
    );
    if status.contains("Cgroup:         session groups in") {
        // A writable cgroup v2 group: the agent runs in the session's group.
        let group = hapi_runner::cgroup::cgroup_of(agent).expect("the agent's cgroup");
        assert!(
            group
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("hapi-session-"),
            "{}",
            group.display()
        );
        assert_eq!(hapi_runner::cgroup::cgroup_of(pid), Some(group.clone()));
        assert_eq!(
            std::fs::read_to_string(group.join("memory.max")).unwrap().trim(),
            (256u64 << 20).to_string()
        );
        assert_eq!(
            std::fs::read_to_string(group.join("cpu.max")).unwrap().trim(),
            "50000 100000"
        );
        let listed = env.control("/list", serde_json::json!({})).1;
        assert_eq!(listed["children"][0]["cgroup"], group.to_str().unwrap());
    } else {
        // No writable cgroup v2 group here: said at start, in the status, and
        // in the session's history; the session runs anyway.
        assert!(status.contains("Cgroup:         NOT AVAILABLE: "), "{status}");
        let log = runner_log(&env);
        assert!(
            log.contains("[RUNNER LIMIT] no writable cgroup v2 group")
                && log.contains("The memory and CPU limits (memory 256M, CPU 0.5 cores) are NOT applied"),
            "{log}"
        );
        let rt = rt();
        let hub = env.hub.as_ref().unwrap();
        let notes = rt.block_on(hapi_e2e::wait("the limits notice", || async {
            let errors = errors_of(&hub.messages(&id).await);
            (!errors.is_empty()).then_some(errors)
        }));
        assert!(
            notes[0].starts_with("Limits not applied: memory 256M, CPU 0.5 cores")
                && notes[0].contains("No writable cgroup v2 group"),
            "{notes:?}"
        );
    }
    env.finish();
}

#[test]
fn a_session_that_fails_is_restarted_on_failure_up_to_n_times() {
    let mut env = Env::new();
    start_with(
        &env,
        &[
            ("HAPI_SESSION_RESTART", "on-failure:2"),
            ("HAPI_SESSION_RESTART_BACKOFF", "1000"),
            ("HAPI_SESSION_START_GRACE", "20000"),
            ("FAKE_CLAUDE_EXIT_AFTER_MS", "2500"),
            ("FAKE_CLAUDE_EXIT_CODE", "3"),
        ],
    );
    let (first, _) = env.spawn_session();
    poll("a restarted session in the list", Duration::from_secs(60), || {
        let list = env.ok(&["runner", "list"]);
        list.contains(&format!("Restart 1 (replaces {first})")).then_some(())
    });
    let log = poll("the restarts to run out", Duration::from_secs(90), || {
        let log = runner_log(&env);
        log.contains("no restarts left").then_some(log)
    });
    assert_eq!(log.matches("[RUNNER RESTART] restarted").count(), 2, "{log}");
    assert!(log.contains("exit status 3"), "{log}");

    // Three hub sessions: the first and two restarts, each naming the one it replaces.
    let rt = rt();
    let hub = env.hub.as_ref().unwrap();
    let sessions: Vec<Value> =
        rt.block_on(async { hub.get("/api/sessions").await["sessions"].as_array().unwrap().clone() });
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    let mut ids: Vec<String> = sessions.iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    ids.sort(); // UUID v7: creation order
    assert_eq!(ids[0], first);
    for (n, id) in ids.iter().enumerate().skip(1) {
        let messages = rt.block_on(hub.messages(id));
        assert!(
            !messages.iter().any(|m| m["update"]["kind"] == "user_message"),
            "a restart never sends the first prompt again: {messages:?}"
        );
        let notes = errors_of(&messages);
        let expected = format!(
            "Restarted by the runner (restart {n} of 2, HAPI_SESSION_RESTART=on-failure:2): session {} in this directory ended with a failure (exit status 3).",
            ids[n - 1]
        );
        assert_eq!(notes.first(), Some(&expected), "{notes:?}");
    }
    let status = env.ok(&["runner", "status"]);
    assert!(
        status.contains("Restart policy: on-failure:2 (first restart after 1000 ms, doubling); start grace 20000 ms"),
        "{status}"
    );
    poll("the state file to count the restarts", Duration::from_secs(10), || {
        let status = env.ok(&["runner", "status"]);
        status.contains("Restarts:       2 since start").then_some(())
    });
    env.finish();
}
