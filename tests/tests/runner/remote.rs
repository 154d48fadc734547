//! The runner with the hub: remote spawn (with the real Claude Code), directory
//! checks and approvals, worktrees, permissions, one hub per `HAPI_HOME`.
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hapi_e2e::{bin, pids_with_env};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::env::*;

/// Issue 3's end-to-end path: the hub's API starts a real Claude Code session on
/// this machine through the runner's link, and it is prompted, approved and done.
#[test]
fn the_hub_starts_a_real_claude_session_through_the_runner() {
    let mut env = Env::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let model = rt
        .block_on(hapi_testkit::start_fake_anthropic(hapi_testkit::Script::default()))
        .unwrap();
    let agent_home = env.dir.path().join("agent-home");
    std::fs::create_dir_all(&agent_home).unwrap();
    // The runner's environment is what its sessions inherit.
    let out = env
        .cmd()
        .args(["runner", "start"])
        .env("HAPI_CLAUDE_PATH", hapi_e2e::claude_path())
        .env("HOME", &agent_home)
        .env("ANTHROPIC_BASE_URL", model.url())
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env_remove("IS_SANDBOX")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let runner = env.runner_pid();
    let work = env.dir.path().join("remote-work");
    std::fs::create_dir_all(&work).unwrap();

    // The runner links this machine to the hub.
    let machine_id = rt.block_on(env.online_machine());
    let hub = env.hub.take().unwrap();
    let (session_id, machine_id) = rt.block_on(async {
        let machine = hub.get(&format!("/api/machines/{machine_id}")).await;
        assert_eq!(machine["machine"]["runner"]["pid"], runner);

        let (status, body) = hub
            .post(
                &format!("/api/machines/{machine_id}/sessions"),
                json!({"agent": "claude", "cwd": work, "prompt": "do it"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let session_id = body["session_id"].as_str().unwrap().to_owned();

        let approval = hub.pending_approval(&session_id).await;
        let (status, _) = hub
            .post(
                &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
                json!({"decision": "allow_once"}),
            )
            .await;
        assert_eq!(status, 200);
        let messages = hub.wait_turns(&session_id, 1).await;
        assert_eq!(
            hapi_e2e::agent_texts(&messages).last().unwrap(),
            "Done: wrote hello to out.txt."
        );

        // A directory outside the workspace roots is refused with the runner's reason.
        let (status, body) = hub
            .post(
                &format!("/api/machines/{machine_id}/sessions"),
                json!({"agent": "claude", "cwd": "/"}),
            )
            .await;
        assert!(status >= 400, "{status} {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("outside this machine's workspace roots"),
            "{body}"
        );
        (session_id, machine_id)
    });
    assert_eq!(std::fs::read_to_string(work.join("out.txt")).unwrap(), "hello\n");
    let listed = env.list();
    assert!(
        listed.iter().any(|(id, _, by)| id == &session_id && by == "runner"),
        "{listed:?}"
    );
    env.sessions.extend(listed.iter().map(|(_, pid, _)| *pid));

    // Stopping the runner tells the hub; the session keeps running.
    env.ok(&["runner", "stop"]);
    rt.block_on(async {
        hapi_e2e::wait("the machine to go offline", || async {
            let m = hub.get(&format!("/api/machines/{machine_id}")).await;
            (m["machine"]["state"] != "online").then_some(())
        })
        .await;
        let s = hub.get(&format!("/api/sessions/{session_id}")).await;
        assert_eq!(s["session"]["state"], "idle", "the session outlives its runner");
    });
    env.hub = Some(hub);
    rt.block_on(model.shutdown());
    env.finish();
}

/// The control server's `spawn-session` checks the directory: a missing one is
/// `directory_missing` unless `createDirectory` is set, a file in the way is
/// `directory_unusable`, and nothing outside the workspace roots (the test's temp
/// dir here) is used, whether reached by `..` or through a symlink.
#[test]
fn spawn_session_checks_the_directory_and_creates_it_only_when_asked() {
    let mut env = Env::new();
    env.start();
    let root = env.dir.path().to_owned();

    let missing = root.join("new/project");
    let (status, body) = env.control("/spawn-session", json!({"directory": missing}));
    let (code, message) = error_of(&body);
    assert_eq!((status, code.as_str()), (422, "directory_missing"), "{body}");
    assert!(message.contains(missing.to_str().unwrap()), "names the path: {message}");
    assert!(!missing.exists(), "nothing is created without createDirectory");

    let (status, body) = env.control(
        "/spawn-session",
        json!({"directory": missing, "createDirectory": true, "prompt": "do it"}),
    );
    assert_eq!(status, 200, "{body}");
    env.sessions.push(body["pid"].as_u64().unwrap() as u32);
    assert!(missing.is_dir(), "created");
    assert_eq!(body["directory"], json!(missing.canonicalize().unwrap()));
    assert_eq!(env.list().len(), 1);

    let file = root.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    for (path, create) in [(file.clone(), false), (file.clone(), true), (file.join("sub"), true)] {
        let (status, body) = env.control("/spawn-session", json!({"directory": path, "createDirectory": create}));
        let (code, message) = error_of(&body);
        assert_eq!((status, code.as_str()), (422, "directory_unusable"), "{body}");
        assert!(message.contains("a file exists"), "{message}");
        assert!(message.contains(path.to_str().unwrap()), "{message}");
    }

    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("escape")).unwrap();
    let outside_name = outside.path().file_name().unwrap().to_str().unwrap();
    for path in [
        PathBuf::from("/"),
        root.join("..").join(outside_name),
        root.join("new/../..").join(outside_name).join("made"),
        root.join("escape"),
        root.join("escape/made"),
    ] {
        let (status, body) = env.control("/spawn-session", json!({"directory": path, "createDirectory": true}));
        let (code, message) = error_of(&body);
        assert_eq!(
            (status, code.as_str()),
            (422, "directory_outside_roots"),
            "{}: {body}",
            path.display()
        );
        assert!(message.contains(root.to_str().unwrap()), "lists the roots: {message}");
    }
    assert!(
        !outside.path().join("made").exists(),
        "nothing created outside the roots"
    );
    assert_eq!(env.list().len(), 1, "no session started for a refused directory");
    env.finish();
}

/// Through the hub's API: the runner's directory codes reach the hub, a missing
/// directory is created after approval, and a worktree spawn runs the session in
/// a new git worktree on a new branch.
#[test]
fn the_hub_spawns_through_the_runner_with_directory_checks_and_worktrees() {
    let mut env = Env::new();
    env.start();
    let rt = rt();
    let root = env.dir.path().canonicalize().unwrap();
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    git(&repo, &["init", "-q"]);
    git(
        &repo,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "init",
        ],
    );
    std::fs::write(root.join("a-file"), "x").unwrap();

    let worktree = root.join("repo-worktrees/feature/remote");
    let session = rt.block_on(async {
        let machine = env.online_machine().await;
        // An existing directory.
        let (status, body) = env
            .hub_spawn(&machine, json!({"agent": "claude", "cwd": repo, "prompt": "do it"}))
            .await;
        assert_eq!(status, 201, "{body}");

        // The runner's codes and messages reach the hub's API.
        let (status, body) = env.hub_spawn(&machine, json!({"agent": "claude", "cwd": "/"})).await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (422, "directory_outside_roots"),
            "{body}"
        );
        let (status, body) = env
            .hub_spawn(&machine, json!({"agent": "claude", "cwd": root.join("a-file")}))
            .await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (422, "directory_unusable"),
            "{body}"
        );
        assert!(error_of(&body).1.contains("a file exists"), "{body}");

        // A missing directory needs approval; once allowed it is created.
        let missing = root.join("later/project");
        let (status, body) = env
            .hub_spawn(&machine, json!({"agent": "claude", "cwd": missing, "prompt": "do it"}))
            .await;
        assert_eq!(status, 202, "{body}");
        assert!(!missing.exists());
        let approval = body["approval"]["id"].as_str().unwrap().to_owned();
        let hub = env.hub.as_ref().unwrap();
        let (status, body) = hub
            .post(&format!("/api/approvals/{approval}"), json!({"decision": "allow_once"}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(body["session_id"].is_string(), "{body}");
        assert!(missing.is_dir(), "created after approval");

        // Worktrees: bad branch names, a directory that is no repository, then one that works.
        let (status, body) = env
            .hub_spawn(
                &machine,
                json!({"agent": "claude", "cwd": repo, "worktree_branch": "bad..name"}),
            )
            .await;
        assert_eq!((status, error_of(&body).0.as_str()), (422, "worktree_failed"), "{body}");
        assert!(error_of(&body).1.contains("not a valid branch name"), "{body}");
        let (status, body) = env
            .hub_spawn(
                &machine,
                json!({"agent": "claude", "cwd": missing, "worktree_branch": "x"}),
            )
            .await;
        assert_eq!((status, error_of(&body).0.as_str()), (422, "worktree_failed"), "{body}");
        assert!(error_of(&body).1.contains("not inside a git repository"), "{body}");

        let (status, body) = env
            .hub_spawn(
                &machine,
                json!({"agent": "claude", "cwd": repo, "prompt": "do it", "worktree_branch": "feature/remote"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["session_id"].as_str().unwrap().to_owned();
        let session = hub.get(&format!("/api/sessions/{id}")).await;
        assert_eq!(session["session"]["cwd"], json!(worktree), "{session}");

        // The same branch again: git refuses, and says why.
        let (status, body) = env
            .hub_spawn(
                &machine,
                json!({"agent": "claude", "cwd": repo, "worktree_branch": "feature/remote"}),
            )
            .await;
        assert_eq!((status, error_of(&body).0.as_str()), (422, "worktree_failed"), "{body}");
        id
    });
    assert!(worktree.join(".git").is_file(), "a linked worktree");
    assert!(git(&repo, &["branch", "--list", "feature/remote"]).contains("feature/remote"));
    assert!(git(&repo, &["worktree", "list"]).contains(worktree.to_str().unwrap()));
    let listed = env.adopt_listed();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().any(|(id, _, by)| id == &session && by == "runner"));
    env.finish();
}

/// One hub per `HAPI_HOME`: a second `hapi hub` exits with the running hub's
/// URL, and a lock and hub.json left by a dead hub do not stop a new one.
#[test]
fn a_second_hub_on_the_same_home_is_refused_and_a_dead_ones_files_are_not() {
    let mut env = Env::new();
    let url = env.hub.as_ref().unwrap().url.clone();
    let started = Instant::now();
    let out = env
        .cmd()
        .arg("hub")
        .env("HAPI_LISTEN_PORT", "0")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a second hub was started");
    let err = text(&out.stderr);
    let expected = format!("A hub is already running for HAPI_HOME={} at {url}", env.home.display());
    assert!(err.contains(&expected), "{expected:?} not in:\n{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "refused at once");
    assert!(env.home.join("hub.lock").exists(), "the running hub keeps its lock");

    // The hub stops and cleans up after itself.
    drop(env.hub.take());
    poll("the hub's lock to go", Duration::from_secs(10), || {
        (!env.home.join("hub.lock").exists() && !env.home.join("hub.json").exists()).then_some(())
    });

    // A dead hub's files are stale.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    std::fs::write(env.home.join("hub.lock"), format!("{dead_pid} 12345\n")).unwrap();
    std::fs::write(
        env.home.join("hub.json"),
        json!({"url": "http://127.0.0.1:9", "pid": dead_pid, "started_at": "2026-01-01T00:00:00Z"}).to_string(),
    )
    .unwrap();
    let mut cmd = env.cmd();
    cmd.arg("hub").env("HAPI_LISTEN_PORT", "0").stdout(Stdio::null());
    let mut hub = hapi_e2e::Child::spawn("hapi hub", cmd, &env.dir.path().join("hub2.log"));
    let state = poll("the new hub's hub.json", Duration::from_secs(30), || {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(env.home.join("hub.json")).ok()?).ok()?;
        (v["pid"] == hub.pid()).then_some(v)
    });
    assert_ne!(state["url"], "http://127.0.0.1:9");
    let lock = std::fs::read_to_string(env.home.join("hub.lock")).unwrap();
    assert!(lock.starts_with(&format!("{} ", hub.pid())), "{lock}");
    hub.stop();
    assert!(!env.home.join("hub.lock").exists(), "released on exit");
    env.finish();
}

/// EACCES needs a runner that permissions apply to, and root ignores them. So
/// the whole runner runs as `nobody` (uid 65534, through util-linux `setpriv`)
/// with its own world-traversable temp dir, a `HAPI_HOME` owned by nobody and a
/// root-owned 0700 directory it is asked to use and to create a directory in.
/// Running the real runner (rather than only the errno mapping, which the
/// runner's unit tests cover) checks the message end to end. It needs root and
/// util-linux's `setpriv` (as on CI); without them it fails rather than pass
/// without testing anything.
#[test]
fn a_directory_the_runner_may_not_use_is_refused_with_permission_denied() {
    use std::os::unix::fs::MetadataExt as _;
    let is_root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    let has_setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        is_root && has_setpriv,
        "this test runs a runner as an unprivileged user: it needs root and `setpriv` (util-linux)"
    );
    let base = tempfile::tempdir().unwrap();
    let dir = base.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let hapi = dir.join("bin/hapi");
    hapi_testkit::install_executable(&bin("hapi"), &hapi);
    let locked = dir.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();

    let hapi_as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&hapi)
            .args(args)
            .current_dir(dir)
            .env("HAPI_HOME", &home)
            .env("HOME", &home)
            .env("HAPI_WORKSPACE_ROOTS", dir)
            .env("HAPI_NO_RUNNER_AUTOSTART", "1")
            .env("HAPI_RUNNER_HEARTBEAT_INTERVAL", HEARTBEAT_MS.to_string())
            .env_remove("CLI_API_TOKEN")
            .env_remove("HAPI_HUB_URL")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Whatever happens, nothing of this home outlives the test.
    struct KillLeftovers(String);
    impl Drop for KillLeftovers {
        fn drop(&mut self) {
            for pid in pids_with_env("HAPI_HOME", &self.0) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
    let _guard = KillLeftovers(home.to_str().unwrap().to_owned());
    let out = hapi_as_nobody(&["runner", "start"]);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let state: Value = serde_json::from_str(&std::fs::read_to_string(home.join("runner.state.json")).unwrap()).unwrap();
    let runner = state["pid"].as_u64().unwrap() as u32;
    let uid = std::fs::metadata(format!("/proc/{runner}")).unwrap().uid();
    assert_eq!(uid, 65534, "the runner runs as nobody");

    for (path, create) in [
        (locked.join("sub"), true),
        (locked.join("sub"), false),
        (locked.clone(), false),
    ] {
        let (status, body) = control_at(
            &home,
            "/spawn-session",
            json!({"directory": path, "createDirectory": create}),
        );
        let (code, message) = error_of(&body);
        assert_eq!(
            (status, code.as_str()),
            (422, "directory_unusable"),
            "{}: {body}",
            path.display()
        );
        assert!(message.contains("permission denied"), "{message}");
        assert!(message.contains(path.to_str().unwrap()), "{message}");
    }
    assert!(!locked.join("sub").exists());

    let out = hapi_as_nobody(&["runner", "stop"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let home = home.to_str().unwrap().to_owned();
    let left = poll("the nobody runner to exit", Duration::from_secs(20), || {
        let left = pids_with_env("HAPI_HOME", &home);
        left.is_empty().then_some(left)
    });
    assert!(left.is_empty());
}
