//! The audit log: decisions with their channel and latency, mutating tool calls
//! (and not read-only ones), paging and filters, retention.
use hapi_protocol::{
    AuditEntry, AuditKind, Decision, DecisionChannel, EventPayload, PermissionOption, SessionUpdate, ToolCallStatus,
};
use hapi_store::AuditQuery;
use serde_json::json;

use super::{open, session, write};

fn all(store: &hapi_store::Store, session_id: Option<&str>) -> Vec<AuditEntry> {
    store
        .read(|c| {
            hapi_store::list_audit(
                c,
                &AuditQuery {
                    session_id: session_id.map(str::to_owned),
                    limit: 1000,
                    ..Default::default()
                },
            )
        })
        .unwrap()
        .0
}

fn append(
    store: &hapi_store::Store,
    sid: &str,
    client_seq: u64,
    update: SessionUpdate,
) -> Vec<hapi_protocol::HubEvent> {
    write(store, |tx| {
        hapi_store::append_update(tx, sid, Some(client_seq), &update)
    })
    .unwrap()
    .events
}

fn tool_call(id: &str, name: &str, input: serde_json::Value) -> SessionUpdate {
    SessionUpdate::ToolCall {
        tool_call_id: id.into(),
        name: name.into(),
        title: name.into(),
        input,
        status: ToolCallStatus::Pending,
    }
}

#[test]
fn mutating_tool_calls_are_audited_with_their_outcome_and_read_only_ones_are_not() {
    let (_dir, store) = open();
    let sid = session(&store);
    append(
        &store,
        &sid,
        1,
        tool_call("t1", "Bash", json!({"command": "rm -rf build"})),
    );
    append(
        &store,
        &sid,
        2,
        tool_call("t2", "Read", json!({"file_path": "/etc/hosts"})),
    );
    append(
        &store,
        &sid,
        3,
        tool_call("t3", "Write", json!({"file_path": "/tmp/x", "content": "…"})),
    );
    append(
        &store,
        &sid,
        4,
        tool_call("t4", "WebFetch", json!({"url": "https://example.com"})),
    );
    // The same call announced again (a resend under a new seq) is not recorded twice.
    append(
        &store,
        &sid,
        5,
        tool_call("t1", "Bash", json!({"command": "rm -rf build"})),
    );
    for (seq, id, status) in [
        (6, "t1", ToolCallStatus::Completed),
        (7, "t2", ToolCallStatus::Completed),
        (8, "t3", ToolCallStatus::Failed),
    ] {
        append(
            &store,
            &sid,
            seq,
            SessionUpdate::ToolCallUpdate {
                tool_call_id: id.into(),
                status,
                output: None,
            },
        );
    }
    let rows = all(&store, Some(&sid));
    let calls: Vec<(&str, &str, &str)> = rows
        .iter()
        .rev()
        .map(|e| {
            assert_eq!(e.kind, AuditKind::ToolCall);
            (
                e.tool.as_deref().unwrap(),
                e.summary.as_deref().unwrap(),
                e.outcome.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("Bash", "rm -rf build", "completed"),
            ("Write", "/tmp/x", "failed"),
            ("WebFetch", "https://example.com", "requested"),
        ]
    );
}

#[test]
fn decisions_are_audited_with_who_channel_and_latency() {
    let (_dir, store) = open();
    let sid = session(&store);
    append(&store, &sid, 1, tool_call("t1", "Bash", json!({"command": "make"})));
    let events = append(
        &store,
        &sid,
        2,
        SessionUpdate::PermissionRequest {
            request_id: "r1".into(),
            tool_call_id: Some("t1".into()),
            tool: "Bash".into(),
            input: json!({"command": "make"}),
            options: PermissionOption::every_kind(),
        },
    );
    let approval_id = events
        .iter()
        .find_map(|e| match &e.payload {
            EventPayload::Approval { approval } => Some(approval.id.clone()),
            _ => None,
        })
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(30));
    write(&store, |tx| {
        hapi_store::decide_approval(
            tx,
            &approval_id,
            Decision::AllowOnce,
            None,
            "Ann's phone",
            DecisionChannel::Phone,
        )
    })
    .unwrap();
    // A session rule of an earlier "always" answers a repeat in the wrapper.
    append(
        &store,
        &sid,
        3,
        SessionUpdate::PermissionAutoDecided {
            tool: "Bash".into(),
            input: json!({"command": "make"}),
            decision: Decision::AllowAlways,
        },
    );
    let rows = all(&store, Some(&sid));
    let decisions: Vec<&AuditEntry> = rows.iter().filter(|e| e.kind == AuditKind::Decision).collect();
    assert_eq!(decisions.len(), 2);
    let phone = decisions[1];
    assert_eq!(phone.actor.as_deref(), Some("Ann's phone"));
    assert_eq!(phone.channel, Some(DecisionChannel::Phone));
    assert_eq!(phone.decision, Some(Decision::AllowOnce));
    assert_eq!(phone.approval_id.as_deref(), Some(approval_id.as_str()));
    assert_eq!(phone.tool_call_id.as_deref(), Some("t1"));
    assert_eq!(phone.summary.as_deref(), Some("make"));
    assert!(phone.latency_ms.unwrap() >= 30, "{:?}", phone.latency_ms);
    let rule = decisions[0];
    assert_eq!(rule.actor.as_deref(), Some("session-rule"));
    assert_eq!(rule.decision, Some(Decision::AllowAlways));
    let call = rows.iter().find(|e| e.kind == AuditKind::ToolCall).unwrap();
    assert_eq!(
        call.outcome.as_deref(),
        Some("allowed"),
        "the decision shows on the call until it finishes"
    );
}

#[test]
fn skip_approvals_is_stored_announced_and_audited() {
    let (_dir, store) = open();
    let sid = session(&store);
    let (s, events) = write(&store, |tx| hapi_store::set_skip_approvals(tx, &sid, true, "owner")).unwrap();
    assert!(s.skip_approvals);
    assert_eq!(events.len(), 1);
    let (_, again) = write(&store, |tx| hapi_store::set_skip_approvals(tx, &sid, true, "owner")).unwrap();
    assert!(again.is_empty(), "no change, no event");
    assert!(store.read(|c| hapi_store::session(c, &sid)).unwrap().skip_approvals);
    let rows = all(&store, Some(&sid));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].action.as_deref(), Some("skip_approvals_enabled"));
    assert_eq!(rows[0].actor.as_deref(), Some("owner"));
}

#[test]
fn pages_go_newest_first_and_filter_by_session_and_time() {
    let (_dir, store) = open();
    let sid = session(&store);
    for i in 0..5 {
        append(
            &store,
            &sid,
            i + 1,
            tool_call(&format!("t{i}"), "Bash", json!({"command": format!("c{i}")})),
        );
    }
    write(&store, |tx| {
        hapi_store::append_audit(
            tx,
            AuditEntry {
                actor: Some("cli".into()),
                action: Some("owner_token_rotated".into()),
                ..AuditEntry::new(AuditKind::Admin)
            },
        )
    })
    .unwrap();
    let page = |session_id: Option<&str>, before_id: Option<u64>, since_ms: Option<i64>, limit: u32| {
        store
            .read(|c| {
                hapi_store::list_audit(
                    c,
                    &AuditQuery {
                        session_id: session_id.map(str::to_owned),
                        since_ms,
                        before_id,
                        limit,
                    },
                )
            })
            .unwrap()
    };
    let (first, more) = page(None, None, None, 4);
    assert!(more);
    assert_eq!(first[0].action.as_deref(), Some("owner_token_rotated"), "newest first");
    assert!(first.windows(2).all(|w| w[0].id > w[1].id));
    let (second, more) = page(None, Some(first[3].id), None, 4);
    assert!(!more);
    assert_eq!(second.len(), 2);
    let (only_session, _) = page(Some(&sid), None, None, 100);
    assert_eq!(only_session.len(), 5);
    let (future, _) = page(None, None, Some(hapi_store::now_ms() + 60_000), 100);
    assert!(future.is_empty());
    let (recent, _) = page(None, None, Some(hapi_store::now_ms() - 60_000), 100);
    assert_eq!(recent.len(), 6);
}

#[test]
fn retention_deletes_old_entries_in_batches() {
    let (_dir, store) = open();
    let sid = session(&store);
    for i in 0..7 {
        append(
            &store,
            &sid,
            i + 1,
            tool_call(&format!("t{i}"), "Bash", json!({"command": "x"})),
        );
    }
    // Age five of them by a year.
    write(&store, |tx| {
        tx.execute(
            "UPDATE audit SET at = at - 365 * 86400000 WHERE id IN (SELECT id FROM audit ORDER BY id LIMIT 5)",
            [],
        )?;
        Ok(())
    })
    .unwrap();
    let cutoff = hapi_store::now_ms() - 90 * 86_400_000;
    assert_eq!(write(&store, |tx| hapi_store::prune_audit(tx, cutoff, 2)).unwrap(), 2);
    assert_eq!(write(&store, |tx| hapi_store::prune_audit(tx, cutoff, 2)).unwrap(), 2);
    assert_eq!(write(&store, |tx| hapi_store::prune_audit(tx, cutoff, 2)).unwrap(), 1);
    assert_eq!(write(&store, |tx| hapi_store::prune_audit(tx, cutoff, 2)).unwrap(), 0);
    assert_eq!(all(&store, None).len(), 2);
    // The pruning reads the `at` index, not the table.
    let plan: String = store
        .read(|c| {
            Ok(c.query_row(
                "EXPLAIN QUERY PLAN SELECT id FROM audit WHERE at < 1 ORDER BY at LIMIT 10",
                [],
                |r| r.get(3),
            )?)
        })
        .unwrap();
    assert!(plan.contains("audit_at"), "{plan}");
}
