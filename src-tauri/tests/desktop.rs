//! The desktop app end to end, in a private headless desktop (see `support`):
//! the tray menu over D-Bus, notifications through a real daemon (dunst), the
//! real window through WebDriver, autostart, single instance; with the real
//! Claude Code on the project's fake model server.
mod support;

use std::time::Duration;

use hapi_e2e::pids_with_env;
use serde_json::json;
use support::{Agent, Api, DesktopEnv, poll};

fn agent_env(agent: &Agent) -> Vec<(&'static str, std::ffi::OsString)> {
    agent.env()
}

fn as_extra<'a>(env: &'a [(&'static str, std::ffi::OsString)]) -> Vec<(&'static str, &'a std::ffi::OsStr)> {
    env.iter().map(|(k, v)| (*k, v.as_os_str())).collect()
}

fn work_dir(env: &DesktopEnv, name: &str) -> std::path::PathBuf {
    let dir = env.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const DONE: &str = "Done: wrote hello to out.txt.";

#[test]
fn tray_counts_sessions_and_requests_and_quit_leaves_sessions_running() {
    let env = DesktopEnv::start();
    let agent = Agent::start();
    let agent_vars = agent_env(&agent);
    let mut app = env.launch(true, &as_extra(&agent_vars));
    let api = Api::new(&app.url, &env.owner_token());

    // The tray exists before the hub's first read ("Hub starting…").
    let labels = poll("the tray to read the hub", Duration::from_secs(30), || {
        let labels = env.tray_labels();
        labels[0].starts_with("Hub running").then_some(labels)
    });
    assert_eq!(
        labels,
        [
            "Hub running · 0 sessions · 0 waiting for approval",
            "Phone access: off",
            "Pair phone…",
            "Revoke all phones and stop phone access",
            "Open window",
            "Start on login",
            "Approval notifications",
            "Open logs folder",
            "Quit HAPI"
        ],
        "{labels:?}"
    );
    let status = env.tray_menu().into_iter().next().unwrap();
    assert!(!status.enabled, "the status line is not clickable");

    let work = work_dir(&env, "proj");
    let session = api.spawn_claude(&work, "write hello");
    api.pending_approval(&session);
    let labels = poll("the tray to count the request", Duration::from_secs(30), || {
        let labels = env.tray_labels();
        (labels[0] == "Hub running · 1 session · 1 waiting for approval").then_some(labels)
    });
    assert_eq!(env.tray_label(), "1", "the icon's label counts the waiting request");
    assert!(
        labels
            .iter()
            .any(|l| l == "claude · proj wants to use Bash: echo hello > out.txt"),
        "the waiting request is listed: {labels:?}"
    );
    // The tray and notifications follow the hub's events, so `hapi doctor`
    // knows the request reaches someone although no window is open.
    let out = env
        .cmd(support::DESKTOP_BIN)
        .args(["doctor", "--json", "--approval-wait", "0"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let approvals = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "approvals")
        .unwrap();
    assert_eq!(approvals["status"], "warning", "{report}");
    assert!(
        approvals["found"].as_str().unwrap().contains("1 event follower(s)"),
        "{report}"
    );

    // Quit: the app exits cleanly; the session (a detached process) stays.
    env.click_tray("Quit HAPI");
    let status = app
        .process
        .wait_exit(Duration::from_secs(30))
        .expect("the app exits on Quit");
    assert!(status.success(), "{status:?}");
    assert!(!env.hapi_home.join("hub.json").exists(), "the hub is stopped");
    let survivors = pids_with_env("HAPI_HOME", env.hapi_home.to_str().unwrap());
    assert!(
        survivors.iter().any(|pid| hapi_e2e::cmdline(*pid).contains(" claude ")),
        "the session wrapper outlives the app: {:?}",
        survivors.iter().map(|p| hapi_e2e::cmdline(*p)).collect::<Vec<_>>()
    );

    // Back again: the session reconnects, its request is still waiting, and
    // approving it lets the agent finish.
    let app = env.launch(true, &as_extra(&agent_vars));
    let api = Api::new(&app.url, &api.token);
    poll("the session to reconnect", Duration::from_secs(60), || {
        let s = api.session(&session);
        (s["state"] != "disconnected").then_some(())
    });
    let approval = api.pending_approval(&session);
    let (status, body) = api.post(
        &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
        json!({"decision": "allow_once"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.wait_turn_texts(&session, 1).last().unwrap(), DONE);
    assert_eq!(std::fs::read_to_string(work.join("out.txt")).unwrap(), "hello\n");
    poll("the tray to show nothing waiting", Duration::from_secs(30), || {
        (env.tray_labels()[0] == "Hub running · 1 session · 0 waiting for approval").then_some(())
    });
    assert_eq!(env.tray_label(), "", "no count when nothing waits");
    drop(app);
    agent.rt.block_on(agent.model.shutdown());
}

#[test]
fn notification_buttons_decide_and_a_decision_elsewhere_withdraws_the_notification() {
    let env = DesktopEnv::start();
    let agent = Agent::start();
    let agent_vars = agent_env(&agent);
    let app = env.launch(true, &as_extra(&agent_vars));
    let api = Api::new(&app.url, &env.owner_token());

    // Approve from the notification.
    let work = work_dir(&env, "approve-me");
    let session = api.spawn_claude(&work, "write hello");
    let approval = api.pending_approval(&session);
    poll("the notification", Duration::from_secs(30), || {
        (env.notifications_displayed() == 1).then_some(())
    });
    let offered = env.invoke_notification_action("Approve");
    assert!(
        offered.contains("#Approve ") && offered.contains("#Deny "),
        "the buttons offered: {offered}"
    );
    assert_eq!(api.wait_turn_texts(&session, 1).last().unwrap(), DONE);
    assert_eq!(std::fs::read_to_string(work.join("out.txt")).unwrap(), "hello\n");
    let decided = api.approval(approval["id"].as_str().unwrap());
    assert_eq!(decided["decision"], "allow_once", "{decided}");
    poll("the notification to close", Duration::from_secs(30), || {
        (env.notifications_displayed() == 0).then_some(())
    });
    let history = env.notification_history();
    let (summary, body) = &history[0];
    assert_eq!(summary, "claude · approve-me wants to use Bash");
    assert!(
        body.contains("echo hello") && body.contains("out.txt"),
        "the body shows the command: {body}"
    );

    // Deny from the notification: the tool does not run.
    let work = work_dir(&env, "deny-me");
    let session = api.spawn_claude(&work, "write hello");
    let approval = api.pending_approval(&session);
    poll("the notification", Duration::from_secs(30), || {
        (env.notifications_displayed() == 1).then_some(())
    });
    env.invoke_notification_action("Deny");
    poll("the denial", Duration::from_secs(30), || {
        let a = api.approval(approval["id"].as_str().unwrap());
        (a["state"] != "pending").then_some(a)
    });
    assert_eq!(
        api.approval(approval["id"].as_str().unwrap())["decision"],
        "reject_once"
    );
    api.wait_turn_texts(&session, 1);
    assert!(!work.join("out.txt").exists(), "a denied command leaves no file");

    // Decided in the web UI: the notification is withdrawn, no dead buttons left.
    let work = work_dir(&env, "decide-elsewhere");
    let session = api.spawn_claude(&work, "write hello");
    let approval = api.pending_approval(&session);
    poll("the notification", Duration::from_secs(30), || {
        (env.notifications_displayed() == 1).then_some(())
    });
    let (status, _) = api.post(
        &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
        json!({"decision": "allow_once", "channel": "web"}),
    );
    assert_eq!(status, 200);
    poll("the notification to be withdrawn", Duration::from_secs(30), || {
        (env.notifications_displayed() == 0).then_some(())
    });
    assert_eq!(api.wait_turn_texts(&session, 1).last().unwrap(), DONE);

    // Muted sessions and a global switch-off raise none.
    let work = work_dir(&env, "muted");
    std::fs::write(env.hapi_home.join("desktop.json"), r#"{"notifications": false}"#).unwrap();
    drop(app);
    let app = env.launch(true, &as_extra(&agent_vars));
    let api = Api::new(&app.url, &api.token);
    let session = api.spawn_claude(&work, "write hello");
    api.pending_approval(&session);
    // The tray counting it proves the app saw the request.
    poll("the tray to count the request", Duration::from_secs(30), || {
        env.tray_labels()[0].ends_with("1 waiting for approval").then_some(())
    });
    assert_eq!(env.notifications_displayed(), 0, "notifications are off");
    let menu = env.tray_menu();
    let switch = menu.iter().find(|e| e.label == "Approval notifications").unwrap();
    assert_eq!(switch.checked, Some(false));
    // Turning them on from the tray shows the waiting request.
    env.click_tray("Approval notifications");
    poll("the notification", Duration::from_secs(30), || {
        (env.notifications_displayed() == 1).then_some(())
    });
    drop(app);
    agent.rt.block_on(agent.model.shutdown());
}

#[test]
fn a_session_its_budget_paused_shows_in_the_tray_and_a_notification_until_raised() {
    let env = DesktopEnv::start();
    let agent = Agent::start();
    let agent_vars = agent_env(&agent);
    let app = env.launch(true, &as_extra(&agent_vars));
    let api = Api::new(&app.url, &env.owner_token());

    let work = work_dir(&env, "thrifty");
    let session = api.spawn_claude(&work, "write hello");
    let approval = api.pending_approval(&session);
    // A budget below what one turn uses: the turn ends, then the session pauses.
    let (status, body) = api.put(&format!("/api/sessions/{session}/budget"), json!({"max_tokens": 10}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = api.post(
        &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
        json!({"decision": "allow_once", "channel": "web"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.wait_turn_texts(&session, 1).last().unwrap(), DONE);

    let line = poll("the tray to name the paused session", Duration::from_secs(30), || {
        env.tray_labels()
            .into_iter()
            .find(|l| l.starts_with("Budget reached: claude · thrifty ("))
    });
    assert!(line.ends_with(" of 10 tokens)"), "{line}");
    poll("the budget notification", Duration::from_secs(30), || {
        (env.notifications_displayed() == 1).then_some(())
    });
    // It only opens the session: the budget is raised (or the session
    // stopped) in the window, where the amount can be chosen.
    let offered = env.invoke_notification_action("Open session");
    assert!(!offered.contains("#Approve "), "no decision buttons: {offered}");
    poll("the notification to close", Duration::from_secs(30), || {
        (env.notifications_displayed() == 0).then_some(())
    });
    let history = env.notification_history();
    assert_eq!(history[0].0, "claude · thrifty reached its budget");
    assert!(history[0].1.contains("It is paused"), "{history:?}");

    // Raised: the tray line goes.
    let (status, body) = api.put(
        &format!("/api/sessions/{session}/budget"),
        json!({"max_tokens": 1_000_000}),
    );
    assert_eq!(status, 200, "{body}");
    poll("the tray line to go", Duration::from_secs(30), || {
        (!env.tray_labels().iter().any(|l| l.starts_with("Budget reached"))).then_some(())
    });
    drop(app);
    agent.rt.block_on(agent.model.shutdown());
}

#[test]
fn start_on_login_from_the_tray_writes_and_removes_the_login_entry() {
    let env = DesktopEnv::start();
    let app = env.launch(true, &[]);
    let entry = env.home.join(".config/autostart/HAPI.desktop");
    assert!(!entry.exists());
    env.click_tray("Start on login");
    let text = poll("the autostart entry", Duration::from_secs(10), || {
        std::fs::read_to_string(&entry).ok()
    });
    assert!(
        text.contains(&format!("Exec={} --minimized", support::DESKTOP_BIN)),
        "starts minimised to the tray: {text}"
    );
    poll("the check mark", Duration::from_secs(10), || {
        let menu = env.tray_menu();
        (menu.iter().find(|e| e.label == "Start on login")?.checked == Some(true)).then_some(())
    });
    env.click_tray("Start on login");
    poll("the entry to go", Duration::from_secs(10), || {
        (!entry.exists()).then_some(())
    });
    drop(app);
}

#[test]
fn one_app_per_home_a_second_launch_hands_over_and_the_cli_defers() {
    let env = DesktopEnv::start();
    let mut app = env.launch(true, &[]);
    let token = env.owner_token();

    // A second launch exits at once, and the first shows its window.
    let mut second = env.cmd(support::DESKTOP_BIN).output().unwrap();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let hub: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.hapi_home.join("hub.json")).unwrap()).unwrap();
    assert_eq!(hub["pid"], app.pid(), "still the first app's hub");
    let log = poll("the hand-over in the app log", Duration::from_secs(20), || {
        let logs = std::fs::read_dir(env.hapi_home.join("logs")).ok()?;
        logs.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .find(|text| text.contains("second launch: showing the window"))
    });
    assert!(log.contains("HAPI Desktop starting"));

    // `hapi hub` is refused with the running hub's URL; `hapi runner stop` says
    // whose runner it is and leaves it alone.
    second = env.cmd(hapi_e2e::bin("hapi")).arg("hub").output().unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&app.url) && stderr.contains("already running"),
        "{stderr}"
    );
    let stop = env
        .cmd(hapi_e2e::bin("hapi"))
        .args(["runner", "stop"])
        .output()
        .unwrap();
    assert!(!stop.status.success());
    let stderr = String::from_utf8_lossy(&stop.stderr);
    assert!(stderr.contains("belongs to HAPI Desktop"), "{stderr}");
    let api = Api::new(&app.url, &token);
    api.online_machine();
    assert!(
        app.process.child.try_wait().unwrap().is_none(),
        "the first app still runs"
    );
}

#[test]
fn the_window_shows_sessions_and_approves_through_the_real_webview() {
    let env = DesktopEnv::start();
    let agent = Agent::start();
    let driver = support::webdriver::Driver::start(&env, &agent.env());
    let window = driver.session(support::DESKTOP_BIN);
    let hub_json = env.hapi_home.join("hub.json");
    let url = poll("the app's hub", Duration::from_secs(60), || {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&hub_json).ok()?).ok()?;
        v["url"].as_str().map(str::to_owned)
    });
    let api = Api::new(&url, &env.owner_token());

    // Signed in without a token prompt; live.
    let badge = window.wait_for("[data-testid=connection-status]");
    poll("the live badge", Duration::from_secs(30), || {
        window.text(&badge).contains("live").then_some(())
    });
    assert!(
        window.find_all("[data-testid=token-input]").is_empty(),
        "no sign-in screen"
    );

    let work = work_dir(&env, "webview");
    let session = api.spawn_claude(&work, "write hello");
    api.pending_approval(&session);
    let item = window.wait_for(&format!("[data-testid=session-item][data-session-id='{session}']"));
    window.click(&item);
    let allow = window.wait_for("[data-testid=approval-allow-once]");
    window.screenshot(&env.dir.path().join("window-approval.png"));
    window.click(&allow);
    assert_eq!(api.wait_turn_texts(&session, 1).last().unwrap(), DONE);
    assert_eq!(std::fs::read_to_string(work.join("out.txt")).unwrap(), "hello\n");
    poll("the agent's answer in the window", Duration::from_secs(30), || {
        window
            .find_all("[data-testid=agent-text]")
            .iter()
            .any(|e| window.text(e).contains(DONE))
            .then_some(())
    });

    // The window's setting toggles start on login.
    let entry = env.home.join(".config/autostart/HAPI.desktop");
    let gear = window.wait_for("[data-testid=open-settings]");
    window.click(&gear);
    let autostart = window.wait_for("[data-testid=setting-autostart]");
    window.click(&autostart);
    poll("the autostart entry", Duration::from_secs(10), || {
        entry.exists().then_some(())
    });
    window.click(&autostart);
    poll("the entry to go", Duration::from_secs(10), || {
        (!entry.exists()).then_some(())
    });

    window.end();
    agent.rt.block_on(agent.model.shutdown());
}

#[test]
fn muting_a_session_in_the_window_silences_that_session_only() {
    let env = DesktopEnv::start();
    let agent = Agent::start();
    let driver = support::webdriver::Driver::start(&env, &agent.env());
    let window = driver.session(support::DESKTOP_BIN);
    let hub_json = env.hapi_home.join("hub.json");
    let url = poll("the app's hub", Duration::from_secs(60), || {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&hub_json).ok()?).ok()?;
        v["url"].as_str().map(str::to_owned)
    });
    let api = Api::new(&url, &env.owner_token());

    let quiet = api.spawn_claude(&work_dir(&env, "quiet"), "write hello");
    api.pending_approval(&quiet);
    poll("the notification", Duration::from_secs(30), || {
        (env.notifications_displayed() == 1).then_some(())
    });

    // "Notify" in the session's header mutes it: its notification goes away.
    let item = window.wait_for(&format!("[data-testid=session-item][data-session-id='{quiet}']"));
    window.click(&item);
    let notify = window.wait_for("[data-testid=session-notifications]");
    assert_eq!(window.attribute(&notify, "aria-pressed"), "true");
    window.click(&notify);
    poll(
        "the muted session's notification to be withdrawn",
        Duration::from_secs(30),
        || (env.notifications_displayed() == 0).then_some(()),
    );
    let saved = std::fs::read_to_string(env.hapi_home.join("desktop.json")).unwrap();
    assert!(saved.contains(&quiet), "the mute is saved: {saved}");

    // Another session still notifies.
    let loud = api.spawn_claude(&work_dir(&env, "loud"), "write hello");
    api.pending_approval(&loud);
    poll("the other session's notification", Duration::from_secs(30), || {
        (env.notifications_displayed() == 1).then_some(())
    });

    // Unmuting shows the request that is still waiting.
    let notify = window.wait_for("[data-testid=session-notifications]");
    poll("the toggle to show muted", Duration::from_secs(10), || {
        (window.attribute(&notify, "aria-pressed") == "false").then_some(())
    });
    window.click(&notify);
    poll("both notifications", Duration::from_secs(30), || {
        (env.notifications_displayed() == 2).then_some(())
    });

    window.end();
    agent.rt.block_on(agent.model.shutdown());
}

#[test]
fn the_app_and_a_headless_cli_find_one_owner_token_in_the_keyring() {
    let env = DesktopEnv::start();
    let app = env.launch(true, &[]);
    // `hapi auth token` from the plain CLI, in the same login session.
    let out = env.cmd(hapi_e2e::bin("hapi")).args(["auth", "token"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64);
    let api = Api::new(&app.url, &token);
    let hub = api.ok("/api/hub");
    assert_eq!(hub["credentials"]["store"], "keychain", "{hub}");
    assert!(hub["credentials"].get("notice").is_none(), "{hub}");
    assert!(
        !env.hapi_home.join("owner.token").exists(),
        "no token file next to the keychain"
    );
    // The Secret Service holds that very token.
    let home = std::fs::canonicalize(&env.hapi_home).unwrap();
    let out = env
        .base_cmd("secret-tool")
        .args(["lookup", "service", "hapi", "username"])
        .arg(format!("owner-token:{}", home.display()))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        token,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn without_a_keyring_the_app_says_so_and_keeps_the_token_in_a_private_file() {
    let mut env = DesktopEnv::start();
    env.stop_keyring();
    let app = env.launch(true, &[]);
    let token = std::fs::read_to_string(env.hapi_home.join("owner.token")).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.hapi_home.join("owner.token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let api = Api::new(&app.url, token.trim());
    let hub = api.ok("/api/hub");
    assert_eq!(hub["credentials"]["store"], "file", "{hub}");
    let notice = hub["credentials"]["notice"].as_str().unwrap_or_default();
    assert!(
        notice.to_lowercase().contains("keychain"),
        "the UI gets a warning: {hub}"
    );
    // The same warning is in the app's log.
    let logs = std::fs::read_dir(env.hapi_home.join("logs")).unwrap();
    let log: String = logs
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .collect();
    assert!(log.contains("WARN") && log.to_lowercase().contains("keychain"), "{log}");
    // The CLI finds the same token.
    assert_eq!(env.owner_token(), token.trim());
}

#[test]
fn the_app_will_not_start_a_second_hub_beside_a_headless_one() {
    let env = DesktopEnv::start();
    let mut cmd = env.cmd(hapi_e2e::bin("hapi"));
    cmd.arg("hub").stdout(std::process::Stdio::null());
    let _hub = hapi_e2e::Child::spawn("hapi hub", cmd, &env.dir.path().join("hub.log"));
    let url = poll("the headless hub", Duration::from_secs(30), || {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(env.hapi_home.join("hub.json")).ok()?).ok()?;
        v["url"].as_str().map(str::to_owned)
    });
    let out = env.cmd(support::DESKTOP_BIN).arg("--minimized").output().unwrap();
    assert!(!out.status.success(), "the app must not run a second hub");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HAPI Desktop cannot start") && stderr.contains(&url) && stderr.contains("already running"),
        "{stderr}"
    );
    // The person is told on screen too, not only in a terminal they may not have.
    poll("the notification", Duration::from_secs(10), || {
        (env.notifications_displayed() == 1).then_some(())
    });
}

#[test]
fn the_tray_shows_phone_access_and_its_kill_switch_cuts_every_phone_off() {
    let env = DesktopEnv::start();
    let app = env.launch(true, &[]);
    let api = Api::new(&app.url, &env.owner_token());

    // Phone access on the loopback "LAN", with the plaintext consent given.
    let (status, consent) = api.get("/api/remote/consent?kind=lan&bind=127.0.0.1");
    assert_eq!(status, 200, "{consent}");
    let (status, remote) = api.put(
        "/api/remote",
        json!({"provider": {"kind": "lan", "bind": "127.0.0.1", "port": 0}, "plaintext_consent": consent["notice"]}),
    );
    assert_eq!(status, 200, "{remote}");
    let public_url = remote["public_url"].as_str().unwrap().to_owned();
    let line = poll("the tray to show phone access", Duration::from_secs(30), || {
        env.tray_labels()
            .into_iter()
            .find(|l| l.starts_with("Phone access: on"))
    });
    assert_eq!(line, format!("Phone access: on · {public_url} · NOT encrypted"));

    // Pair a phone and check it works.
    let (status, offer) = api.post("/api/pairing", json!({}));
    assert_eq!(status, 201, "{}", offer["error"]);
    let secret = offer["url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let phone = Api::new(&public_url, "");
    let (status, paired) = phone.post("/pair", json!({"secret": secret, "device_name": "test phone"}));
    assert!(matches!(status, 200 | 201), "{status} {paired}");
    let phone = Api::new(&public_url, paired["token"].as_str().unwrap());
    assert_eq!(phone.get("/api/sessions").0, 200);

    // The kill switch.
    env.click_tray("Revoke all phones and stop phone access");
    poll("phone access to be off", Duration::from_secs(30), || {
        (api.ok("/api/remote")["state"] == "off").then_some(())
    });
    poll("every phone to be revoked", Duration::from_secs(30), || {
        (api.ok("/api/devices")["devices"] == json!([])).then_some(())
    });
    assert!(
        std::net::TcpStream::connect(public_url.trim_start_matches("http://")).is_err(),
        "the remote listener is closed"
    );
    poll("the tray to say so", Duration::from_secs(30), || {
        env.tray_labels()
            .contains(&"Phone access: off".to_owned())
            .then_some(())
    });
}

#[test]
fn clicking_a_notification_opens_the_window() {
    let env = DesktopEnv::start();
    let agent = Agent::start();
    let agent_vars = agent_env(&agent);
    let app = env.launch(true, &as_extra(&agent_vars));
    let api = Api::new(&app.url, &env.owner_token());
    let windows = || {
        let out = env.base_cmd("xwininfo").args(["-root", "-tree"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("\"HAPI"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert!(windows().is_empty(), "started in the tray only: {:?}", windows());
    let work = work_dir(&env, "open-me");
    let session = api.spawn_claude(&work, "write hello");
    api.pending_approval(&session);
    poll("the notification", Duration::from_secs(30), || {
        (env.notifications_displayed() == 1).then_some(())
    });
    env.invoke_notification_action("Open session");
    let shown = poll("the window", Duration::from_secs(30), || {
        let w = windows();
        (!w.is_empty()).then_some(w)
    });
    assert!(shown.iter().any(|w| w.contains("HAPI")), "{shown:?}");
    // Opening is not answering: the request still waits.
    assert_eq!(api.pending_approval(&session)["state"], "pending");
    drop(app);
    agent.rt.block_on(agent.model.shutdown());
}

#[test]
fn the_app_refuses_a_misspelt_setting_and_says_which() {
    let env = DesktopEnv::start();
    let out = env
        .cmd(support::DESKTOP_BIN)
        .arg("--minimized")
        .env("HAPI_LISTEN_PROT", "3999")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HAPI_LISTEN_PROT") && stderr.contains("HAPI_LISTEN_PORT"),
        "names the typo and its likely meaning: {stderr}"
    );
    assert!(!env.hapi_home.join("hub.json").exists(), "no hub was started");
}

#[test]
fn the_tray_keeps_saying_which_sessions_skip_approvals() {
    let env = DesktopEnv::start();
    let app = env.launch(true, &[]);
    let api = Api::new(&app.url, &env.owner_token());
    let work = work_dir(&env, "trusted");
    let (status, created) = api.post("/api/sessions", json!({"agent": "claude", "cwd": work}));
    assert_eq!(status, 201, "{created}");
    let id = created["session"]["id"].as_str().unwrap().to_owned();
    let (status, body) = api.post(&format!("/api/sessions/{id}/skip-approvals"), json!({"enabled": true}));
    assert_eq!(status, 200, "{body}");
    poll("the tray's reminder", Duration::from_secs(30), || {
        env.tray_labels()
            .contains(&"⚠ Skipping approvals: claude · trusted".to_owned())
            .then_some(())
    });
    let (status, body) = api.post(&format!("/api/sessions/{id}/skip-approvals"), json!({"enabled": false}));
    assert_eq!(status, 200, "{body}");
    poll("the reminder to go", Duration::from_secs(30), || {
        (!env.tray_labels().iter().any(|l| l.starts_with("⚠ Skipping approvals"))).then_some(())
    });
}
