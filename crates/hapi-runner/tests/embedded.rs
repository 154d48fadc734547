//! The runner embedded in-process, as the desktop app will use it: start, a
//! second start of the same identity, the control server through
//! `ControlClient`, and a clean stop.
use std::sync::Arc;
use std::time::Duration;

use hapi_runner::{
    ControlClient, ExitReason, NoHubLink, Runner, RunnerConfig, RunnerError, STARTED_BY_TERMINAL, StartOutcome,
    live_state, lock_path, state_path,
};

fn config(home: &std::path::Path) -> RunnerConfig {
    RunnerConfig {
        home: home.to_owned(),
        cli_path: std::env::current_exe().unwrap(),
        cli_version: "9.9.9-test".into(),
        heartbeat_interval: Duration::from_secs(1),
        log_path: home.join("logs/runner-test.log"),
        spawn_timeout: Duration::from_secs(5),
        stop_grace: Duration::from_secs(1),
        workspace_roots: vec![home.parent().unwrap().to_owned()],
        embedded_in: None,
        sessions: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_runner_serves_its_control_server_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let StartOutcome::Started(runner) = Runner::start(config(&home), Arc::new(NoHubLink)).await.unwrap() else {
        panic!("the first runner starts");
    };
    let handle = runner.handle();
    let pid = runner.state().pid;
    assert_eq!(pid, std::process::id());
    let task = tokio::spawn(runner.run(std::future::pending()));

    match Runner::start(config(&home), Arc::new(NoHubLink)).await.unwrap() {
        StartOutcome::AlreadyRunning { state } => assert_eq!(state.pid, pid),
        StartOutcome::Started(_) => panic!("one runner per HAPI_HOME"),
    }

    let (client, state) = ControlClient::connect(&home, Duration::from_secs(5)).unwrap();
    assert_eq!(state.started_with_cli_version, "9.9.9-test");
    assert!(client.list().await.unwrap().children.is_empty());
    client
        .session_started("s-1", std::process::id(), STARTED_BY_TERMINAL)
        .await
        .unwrap();
    let list = client.list().await.unwrap().children;
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].session_id.as_str(), list[0].pid, list[0].started_by.as_str()),
        ("s-1", pid, STARTED_BY_TERMINAL)
    );
    assert_eq!(handle.sessions().len(), 1);
    assert!(matches!(
        client.stop_session("nope").await,
        Err(RunnerError::UnknownSession(id)) if id == "nope"
    ));

    // A beat records lastHeartbeat.
    let first = state.last_heartbeat.clone();
    tokio::time::timeout(Duration::from_secs(10), async {
        while live_state(&home).unwrap().unwrap().last_heartbeat == first {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a heartbeat");

    client.stop().await.unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reason, ExitReason::Stopped);
    assert!(!state_path(&home).exists() && !lock_path(&home).exists());
    assert!(live_state(&home).unwrap().is_none());
    // The sessions file stays for the next runner.
    assert!(home.join(hapi_runner::SESSIONS_FILE).exists());
}
