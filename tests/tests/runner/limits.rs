//! Per-session limits and the restart policy, through a real runner spawning
//! `hapi claude` with `fake-claude`: rlimits read back from `/proc/<agent>/limits`;
//! cgroup limits read back from the session's group(s) when this machine has a
//! writable cgroup (v2, or the v1 fallback), else the clear "not applied"
//! report; that report forced with `HAPI_SESSION_CGROUP=off`, so it is checked
//! on every machine; an agent that allocates past its memory limit, killed by
//! the kernel and reported; and `on-failure:2` with an agent that crashes.
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use hapi_runner::cgroup::SessionGroup;
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

/// The session group of the runner's only listed session, as `/list` gives it.
fn listed_group(env: &Env) -> SessionGroup {
    let listed = env.control("/list", serde_json::json!({})).1;
    let text = listed["children"][0]["cgroup"]
        .as_str()
        .unwrap_or_else(|| panic!("no cgroup in {listed}"));
    SessionGroup::decode(text.as_ref())
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_owned()
}

/// The session groups are removed by the runner when their session ends; a
/// group still there (its runner stopped first) is removed here, never the
/// test's own groups.
fn remove_groups(groups: &[SessionGroup]) {
    for group in groups {
        for dir in group.dirs() {
            assert!(
                dir.file_name().unwrap().to_string_lossy().starts_with("hapi-session-"),
                "{}",
                dir.display()
            );
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Whether the runner's status says session groups can be made.
fn cgroups_ready(status: &str) -> bool {
    status.contains("Cgroup:         cgroup v2, session groups in") || status.contains("Cgroup:         cgroup v1 (")
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
    let (_, pid) = env.spawn_session();
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
    let mut groups = Vec::new();
    if cgroups_ready(&status) {
        // The session and its agent are in every group of the session, and
        // the limits are written there: one group on v2, one per hierarchy
        // (memory, cpu) on v1.
        let group = listed_group(&env);
        eprintln!("session group: {group}");
        groups.push(group.clone());
        assert!(group.holds(pid) && group.holds(agent), "{group}");
        let v1 = status.contains("cgroup v1 (memory, cpu hierarchies)");
        assert_eq!(group.dirs().len(), if v1 { 2 } else { 1 }, "{group}\n{status}");
        let memory = (256u64 << 20).to_string();
        for dir in group.dirs() {
            assert!(
                dir.file_name().unwrap().to_string_lossy().starts_with("hapi-session-"),
                "{}",
                dir.display()
            );
            if !v1 {
                assert_eq!(read(dir, "memory.max"), memory);
                assert_eq!(read(dir, "cpu.max"), "50000 100000");
            } else if dir.join("memory.limit_in_bytes").exists() {
                assert_eq!(read(dir, "memory.limit_in_bytes"), memory);
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    assert_eq!(read(dir, "memory.memsw.limit_in_bytes"), memory);
                }
            } else {
                assert_eq!(read(dir, "cpu.cfs_period_us"), "100000");
                assert_eq!(read(dir, "cpu.cfs_quota_us"), "50000");
            }
        }
        assert_eq!(env.state().unwrap()["sessions"]["cgroupReady"], true);
    } else {
        // No writable cgroup here: reported (the wording is checked with
        // HAPI_SESSION_CGROUP=off below); the session runs anyway.
        assert!(status.contains("Cgroup:         NOT AVAILABLE: "), "{status}");
        assert_eq!(env.state().unwrap()["sessions"]["cgroupReady"], false);
    }
    env.finish();
    remove_groups(&groups);
}

#[test]
fn limits_that_cannot_be_applied_are_reported() {
    let mut env = Env::new();
    start_with(
        &env,
        &[
            ("HAPI_SESSION_MEMORY_MAX", "256M"),
            ("HAPI_SESSION_CPU_MAX", "0.5"),
            // No writable cgroup, on any machine.
            ("HAPI_SESSION_CGROUP", "off"),
        ],
    );
    let (id, pid) = env.spawn_session();
    agent_of(pid);
    // Said at start, in the status, and in the session's history; the
    // session runs anyway.
    let status = env.ok(&["runner", "status"]);
    assert!(
        status.contains("Cgroup:         NOT AVAILABLE: turned off (HAPI_SESSION_CGROUP=off)"),
        "{status}"
    );
    assert_eq!(env.state().unwrap()["sessions"]["cgroupReady"], false);
    let log = runner_log(&env);
    assert!(
        log.contains("[RUNNER LIMIT] no writable cgroup: turned off (HAPI_SESSION_CGROUP=off)")
            && log.contains("The memory and CPU limits (memory 256M, CPU 0.5 cores) are NOT applied"),
        "{log}"
    );
    let rt = rt();
    let hub = env.hub.as_ref().unwrap();
    let notes = rt.block_on(hapi_e2e::wait("the limits notice", || async {
        let errors = errors_of(&hub.messages(&id).await);
        (!errors.is_empty()).then_some(errors)
    }));
    assert_eq!(
        notes[0],
        "Limits not applied: memory 256M, CPU 0.5 cores (HAPI_SESSION_MEMORY_MAX / HAPI_SESSION_CPU_MAX). \
         No writable cgroup: turned off (HAPI_SESSION_CGROUP=off). The session runs without them.",
    );
    assert!(
        std::fs::read_to_string(format!("/proc/{pid}/environ"))
            .map(|e| !e.split('\0').any(|v| v.starts_with("HAPI_CGROUP=")))
            .unwrap_or(true),
        "no group is passed to the session"
    );
    env.finish();
}

#[test]
fn a_session_over_its_memory_limit_is_stopped_and_reported() {
    let mut env = Env::new();
    start_with(
        &env,
        &[
            ("HAPI_SESSION_MEMORY_MAX", "64M"),
            ("HAPI_SESSION_RESTART", "on-failure:1"),
            ("HAPI_SESSION_RESTART_BACKOFF", "1000"),
            ("HAPI_SESSION_START_GRACE", "20000"),
            // Far past the limit, a few seconds in (once the session has
            // reported itself and its group was read here).
            ("FAKE_CLAUDE_ALLOCATE_MB", "256"),
            ("FAKE_CLAUDE_ALLOCATE_AFTER_MS", "3000"),
        ],
    );
    let (first, pid) = env.spawn_session();
    let agent = agent_of(pid);
    let status = env.ok(&["runner", "status"]);
    if !cgroups_ready(&status) {
        // No limit can be applied here: reported, and nothing is killed.
        assert!(status.contains("Cgroup:         NOT AVAILABLE: "), "{status}");
        std::thread::sleep(Duration::from_secs(5));
        assert!(alive(agent), "the agent holds its memory without a limit");
        assert_eq!(env.state().unwrap()["sessions"]["oomKills"], 0);
        env.finish();
        return;
    }
    let group = listed_group(&env);
    eprintln!("session group: {group}");
    assert!(group.holds(agent), "{group}");
    assert_eq!(group.memory_max().unwrap(), (64u64 << 20).to_string());

    // The kernel kills the agent; its session says why, and ends.
    let rt = rt();
    let hub = env.hub.as_ref().unwrap();
    let notes = rt.block_on(hapi_e2e::wait("the memory-limit note", || async {
        let errors = errors_of(&hub.messages(&first).await);
        errors
            .iter()
            .any(|e| e.starts_with("killed: memory limit"))
            .then_some(errors)
    }));
    let note = notes.iter().find(|e| e.starts_with("killed: memory limit")).unwrap();
    eprintln!("session note: {note}");
    assert!(
        note.starts_with("killed: memory limit 64M reached (the kernel ended ")
            && note.ends_with(" process(es) of this session; HAPI_SESSION_MEMORY_MAX)"),
        "{note}"
    );
    assert!(!alive(agent));

    // The runner counts it, restarts it once (on-failure:1; the restart runs
    // into the same limit), then stops restarting.
    let log = poll("the restarts to run out", Duration::from_secs(90), || {
        let log = runner_log(&env);
        log.contains("no restarts left").then_some(log)
    });
    assert_eq!(
        log.matches("[RUNNER LIMIT] session killed: its memory limit was reached")
            .count(),
        2,
        "{log}"
    );
    assert_eq!(log.matches("[RUNNER RESTART] restarted").count(), 1, "{log}");
    let sessions: Vec<Value> =
        rt.block_on(async { hub.get("/api/sessions").await["sessions"].as_array().unwrap().clone() });
    let restart = sessions
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .find(|id| *id != first)
        .expect("the restart's session");
    let restart_notes = errors_of(&rt.block_on(hub.messages(&restart)));
    assert_eq!(
        restart_notes.first().map(String::as_str),
        Some(
            format!(
                "Restarted by the runner (restart 1 of 1, HAPI_SESSION_RESTART=on-failure:1): session {first} in this \
                 directory ended with a failure (exit status 1, memory limit reached)."
            )
            .as_str()
        ),
        "{restart_notes:?}"
    );
    poll("the state file to count the kills", Duration::from_secs(10), || {
        let state = env.state()?;
        (state["sessions"]["oomKills"] == 2).then_some(())
    });
    let status = env.ok(&["runner", "status"]);
    assert!(
        status.contains("Restarts:       1 since start; memory-limit kills: 2"),
        "{status}"
    );
    // The hub's /metrics reads the same state file.
    let metrics = rt.block_on(async {
        let r = hub
            .http
            .get(format!("{}/metrics", hub.url))
            .bearer_auth(&hub.token)
            .send();
        r.await.unwrap().text().await.unwrap()
    });
    assert!(
        metrics.contains("\nhapi_session_oom_kills_total 2\n") && metrics.contains("\nhapi_session_cgroup_limits 1\n"),
        "{metrics}"
    );
    // The ended sessions' groups are removed by the runner.
    poll("the session group to be removed", Duration::from_secs(10), || {
        group.dirs().iter().all(|d| !d.exists()).then_some(())
    });
    env.finish();
    remove_groups(&[group]);
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
