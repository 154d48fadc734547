//! Store tests against real SQLite files in a temporary directory.
use hapi_protocol::{
    AgentKind, Decision, DecisionChannel, EventPayload, PermissionOption, SessionState, SessionUpdate,
};
use hapi_store::rusqlite::TransactionBehavior;
use hapi_store::{Durability, Store, StoreError};
use serde_json::json;

mod audit;
mod usage;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("hapi.db"), Durability::Normal).unwrap();
    (dir, store)
}

fn write<T>(
    store: &Store,
    f: impl FnOnce(&hapi_store::rusqlite::Transaction) -> hapi_store::Result<T>,
) -> hapi_store::Result<T> {
    let mut conn = store.writer().unwrap();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
    let out = f(&tx)?;
    tx.commit().unwrap();
    Ok(out)
}

fn session(store: &Store) -> String {
    write(store, |tx| {
        hapi_store::create_session(tx, "s1", None, AgentKind::Claude, "/tmp", "hash")
    })
    .unwrap();
    "s1".into()
}

fn permission(request_id: &str) -> SessionUpdate {
    SessionUpdate::PermissionRequest {
        request_id: request_id.into(),
        tool_call_id: None,
        tool: "Bash".into(),
        input: json!({"command": "ls"}),
        options: vec![PermissionOption {
            id: "allow".into(),
            kind: Decision::AllowOnce,
        }],
    }
}

#[test]
fn reopening_keeps_data_and_migrations_run_once() {
    let (dir, store) = open();
    let id = session(&store);
    drop(store);
    let store = Store::open(dir.path().join("hapi.db"), Durability::Full).unwrap();
    let s = store.read(|c| hapi_store::session(c, &id)).unwrap();
    assert_eq!(s.state, SessionState::Starting);
    let version: i64 = store
        .read(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(version, hapi_store::SCHEMA_VERSION);
}

#[test]
fn a_file_that_is_not_a_database_is_reported_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hapi.db");
    let garbage = vec![0x5au8; 8192];
    std::fs::write(&path, &garbage).unwrap();
    let err = Store::open(&path, Durability::Normal).err().expect("must fail");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("hapi.db"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "the file is left untouched");
}

#[test]
fn a_newer_schema_is_refused() {
    let (dir, store) = open();
    write(&store, |tx| Ok(tx.pragma_update(None, "user_version", 99)?)).unwrap();
    drop(store);
    let err = Store::open(dir.path().join("hapi.db"), Durability::Normal)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            StoreError::TooNew { found: 99, supported } if supported == hapi_store::SCHEMA_VERSION
        ),
        "{err}"
    );
}

#[test]
fn sequence_numbers_are_global_and_per_session_and_resends_are_no_ops() {
    let (_dir, store) = open();
    let id = session(&store);
    write(&store, |tx| {
        hapi_store::create_session(tx, "s2", None, AgentKind::Claude, "/tmp", "h")
    })
    .unwrap();
    let chunk = |t: &str| SessionUpdate::AgentMessageChunk { text: t.into() };
    let a = write(&store, |tx| hapi_store::append_update(tx, &id, Some(1), &chunk("a"))).unwrap();
    let b = write(&store, |tx| hapi_store::append_update(tx, "s2", Some(1), &chunk("b"))).unwrap();
    let again = write(&store, |tx| hapi_store::append_update(tx, &id, Some(1), &chunk("a"))).unwrap();
    assert!(again.duplicate && again.events.is_empty());
    let c = write(&store, |tx| hapi_store::append_update(tx, &id, Some(2), &chunk("c"))).unwrap();
    let seq = |ap: &hapi_store::Appended| match &ap.events[0].payload {
        EventPayload::Message { message } => (ap.events[0].seq, message.seq),
        _ => panic!("message first"),
    };
    let (ga, sa) = seq(&a);
    let (gb, sb) = seq(&b);
    let (gc, sc) = seq(&c);
    assert!(ga < gb && gb < gc, "global seq is monotonic across sessions");
    assert_eq!((sa, sb, sc), (1, 1, 2), "per-session seq counts each session");
    let all = store.read(|c| hapi_store::events_after(c, 0, 100)).unwrap();
    assert_eq!(all.len(), 5, "2 session events + 3 messages");
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
}

/// A client resuming from before a runner connected replays the machine event
/// too (it once ended the stream as an "unknown event kind").
#[test]
fn machine_events_replay_like_the_others() {
    let (_dir, store) = open();
    let runner = hapi_protocol::RunnerInfo {
        pid: 42,
        version: "0.1.0".into(),
        started_at: "2026-11-25T00:00:00Z".into(),
    };
    let live = write(&store, |tx| hapi_store::machine_connected(tx, "m1", "desk", &runner)).unwrap();
    let id = session(&store);
    let replayed = store.read(|c| hapi_store::events_after(c, 0, 100)).unwrap();
    assert_eq!(replayed[0], live, "replayed exactly as it was sent live");
    match &replayed[0].payload {
        EventPayload::Machine { machine } => assert_eq!((machine.id.as_str(), machine.name.as_str()), ("m1", "desk")),
        other => panic!("a machine event first, got {other:?}"),
    }
    assert!(
        matches!(&replayed[1].payload, EventPayload::Session { session } if session.id == id),
        "{replayed:?}"
    );
}

#[test]
fn approvals_are_created_once_and_decided_once() {
    let (_dir, store) = open();
    let id = session(&store);
    write(&store, |tx| {
        hapi_store::append_update(tx, &id, Some(1), &permission("r1"))
    })
    .unwrap();
    // The same request id in a new message (a driver replay) makes no second approval.
    write(&store, |tx| {
        hapi_store::append_update(tx, &id, Some(2), &permission("r1"))
    })
    .unwrap();
    let pending = store
        .read(|c| hapi_store::list_approvals(c, Some(hapi_protocol::ApprovalState::Pending), None, 10))
        .unwrap();
    assert_eq!(pending.len(), 1);
    let aid = pending[0].id.clone();
    let (approval, request_id, _) = write(&store, |tx| {
        hapi_store::decide_approval(
            tx,
            &aid,
            Decision::RejectOnce,
            Some("no"),
            "owner",
            DecisionChannel::Web,
        )
    })
    .unwrap();
    assert_eq!(
        (approval.decision, request_id.as_str()),
        (Some(Decision::RejectOnce), "r1")
    );
    let second = write(&store, |tx| {
        hapi_store::decide_approval(tx, &aid, Decision::AllowOnce, None, "owner", DecisionChannel::Web)
    });
    assert!(matches!(second, Err(StoreError::AlreadyDecided("decided"))));
    let stored = store.read(|c| hapi_store::approval(c, &aid)).unwrap();
    assert_eq!(stored.decision, Some(Decision::RejectOnce));
    assert_eq!(stored.message.as_deref(), Some("no"));
}

#[test]
fn ending_a_session_cancels_its_pending_approvals_and_refuses_prompts() {
    let (_dir, store) = open();
    let id = session(&store);
    write(&store, |tx| {
        hapi_store::append_update(tx, &id, Some(1), &permission("r1"))
    })
    .unwrap();
    let ended = SessionUpdate::SessionEnded {
        reason: "exited".into(),
        exit_code: Some(0),
    };
    write(&store, |tx| hapi_store::append_update(tx, &id, Some(2), &ended)).unwrap();
    let s = store.read(|c| hapi_store::session(c, &id)).unwrap();
    assert_eq!((s.state, s.pending_approvals), (SessionState::Ended, 0));
    let all = store
        .read(|c| hapi_store::list_approvals(c, None, Some(&id), 10))
        .unwrap();
    assert_eq!(all[0].state, hapi_protocol::ApprovalState::Cancelled);
    let prompt = SessionUpdate::UserMessage { text: "hi".into() };
    let err = write(&store, |tx| hapi_store::append_update(tx, &id, None, &prompt));
    assert!(matches!(err, Err(StoreError::SessionEnded)));
}

#[test]
fn a_turn_end_cancels_approvals_left_pending_by_an_interrupted_turn() {
    let (_dir, store) = open();
    let id = session(&store);
    write(&store, |tx| {
        hapi_store::append_update(tx, &id, Some(1), &permission("r1"))
    })
    .unwrap();
    assert_eq!(
        store.read(|c| hapi_store::session(c, &id)).unwrap().pending_approvals,
        1
    );
    let end = SessionUpdate::TurnEnd {
        stop_reason: "interrupted".into(),
        is_error: false,
    };
    let appended = write(&store, |tx| hapi_store::append_update(tx, &id, Some(2), &end)).unwrap();
    let s = store.read(|c| hapi_store::session(c, &id)).unwrap();
    assert_eq!(s.pending_approvals, 0);
    let cancelled = appended.events.iter().any(|e| {
        matches!(&e.payload,
        EventPayload::Approval { approval } if approval.state == hapi_protocol::ApprovalState::Cancelled)
    });
    assert!(cancelled, "clients learn that the approval is gone");
    let last = appended.events.last().unwrap();
    assert!(matches!(&last.payload, EventPayload::Session { session } if session.pending_approvals == 0));
}

#[test]
fn devices_are_found_by_token_hash_until_revoked() {
    let (_dir, store) = open();
    let a = write(&store, |tx| {
        hapi_store::create_device(tx, "d1", "Ana's phone", "hash-a")
    })
    .unwrap();
    assert_eq!(a.name, "Ana's phone");
    assert_eq!(a.last_seen_at, None);
    std::thread::sleep(std::time::Duration::from_millis(2));
    write(&store, |tx| hapi_store::create_device(tx, "d2", "tablet", "hash-b")).unwrap();
    let dup = write(&store, |tx| hapi_store::create_device(tx, "d3", "copy", "hash-a"));
    assert!(dup.is_err(), "a token hash belongs to one device");

    let listed = store.read(hapi_store::list_devices).unwrap();
    assert_eq!(listed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["d2", "d1"]);
    let found = store.read(|c| hapi_store::device_by_token_hash(c, "hash-a")).unwrap();
    assert_eq!(found.unwrap().id, "d1");
    assert!(
        store
            .read(|c| hapi_store::device_by_token_hash(c, "nope"))
            .unwrap()
            .is_none()
    );

    write(&store, |tx| hapi_store::touch_device(tx, "d1", 1_700_000_000_000)).unwrap();
    let d1 = store
        .read(|c| hapi_store::device_by_token_hash(c, "hash-a"))
        .unwrap()
        .unwrap();
    assert_eq!(d1.last_seen_at.as_deref(), Some("2023-11-14T22:13:20.000Z"));

    write(&store, |tx| hapi_store::revoke_device(tx, "d1")).unwrap();
    assert!(
        store
            .read(|c| hapi_store::device_by_token_hash(c, "hash-a"))
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        write(&store, |tx| hapi_store::revoke_device(tx, "d1")),
        Err(StoreError::NotFound("device"))
    ));
    assert_eq!(store.read(hapi_store::list_devices).unwrap().len(), 1);

    let revoked = write(&store, hapi_store::revoke_all_devices).unwrap();
    assert_eq!(revoked, ["d2"]);
    assert!(store.read(hapi_store::list_devices).unwrap().is_empty());
    assert!(write(&store, hapi_store::revoke_all_devices).unwrap().is_empty());
}
