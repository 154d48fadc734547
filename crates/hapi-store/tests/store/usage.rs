//! Usage aggregation and budgets in the store.
use hapi_protocol::{Budget, SessionCommand, SessionUpdate, Usage};
use hapi_store::{StoreError, rusqlite::Transaction};

use crate::{open, session, write};

fn usage(model: &str, input: u64, output: u64, cost: Option<f64>) -> SessionUpdate {
    SessionUpdate::UsageUpdate {
        usage: Usage {
            model: model.into(),
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: 10,
            cache_write_tokens: 5,
            cost_usd: cost,
        },
    }
}

fn prompt(tx: &Transaction, id: &str) -> hapi_store::Result<hapi_store::Appended> {
    hapi_store::append_update(tx, id, None, &SessionUpdate::UserMessage { text: "go".into() })
}

fn audit_query(id: &str) -> hapi_store::AuditQuery {
    hapi_store::AuditQuery {
        session_id: Some(id.to_owned()),
        since_ms: None,
        before_id: None,
        limit: 100,
    }
}

fn turn_end() -> SessionUpdate {
    SessionUpdate::TurnEnd {
        stop_reason: "end_turn".into(),
        is_error: false,
    }
}

#[test]
fn usage_adds_up_per_model_and_a_resend_is_counted_once() {
    let (_dir, store) = open();
    let id = session(&store);
    write(&store, |tx| {
        hapi_store::append_update(tx, &id, Some(1), &usage("opus", 100, 20, Some(0.5)))?;
        hapi_store::append_update(tx, &id, Some(2), &usage("haiku", 7, 3, None))?;
        hapi_store::append_update(tx, &id, Some(3), &usage("opus", 50, 10, Some(0.25)))
    })
    .unwrap();
    // The wrapper lost the acks and resends 2 and 3, in a later transaction.
    let resent = write(&store, |tx| {
        let a = hapi_store::append_update(tx, &id, Some(2), &usage("haiku", 7, 3, None))?;
        let b = hapi_store::append_update(tx, &id, Some(3), &usage("opus", 50, 10, Some(0.25)))?;
        Ok((a.duplicate, b.duplicate, a.events.len() + b.events.len()))
    })
    .unwrap();
    assert_eq!(resent, (true, true, 0));

    let got = store.read(|c| hapi_store::session_usage(c, &id)).unwrap();
    let rows: Vec<_> = got
        .models
        .iter()
        .map(|m| {
            (
                m.model.as_str(),
                m.input_tokens,
                m.output_tokens,
                m.cache_read_tokens,
                m.cache_write_tokens,
                m.total_tokens,
                m.cost_usd,
                m.updates,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("haiku", 7, 3, 10, 5, 25, None, 1),
            ("opus", 150, 30, 20, 10, 210, Some(0.75), 2)
        ]
    );
    assert_eq!(got.totals.input_tokens, 157);
    assert_eq!(got.totals.total_tokens, 235);
    assert_eq!(got.totals.cost_usd, Some(0.75));
    let s = store.read(|c| hapi_store::session(c, &id)).unwrap();
    assert_eq!((s.usage.total_tokens, s.usage.cost_usd), (235, Some(0.75)));
}

#[test]
fn reaching_the_budget_pauses_interrupts_an_open_turn_and_refuses_prompts() {
    let (_dir, store) = open();
    let id = session(&store);
    let budget = Budget {
        max_tokens: Some(300),
        max_cost_usd: None,
    };
    write(&store, |tx| hapi_store::set_budget(tx, &id, Some(budget), "owner")).unwrap();
    write(&store, |tx| prompt(tx, &id)).unwrap();
    // 135 of 300 tokens: not reached, no command.
    let first = write(&store, |tx| {
        hapi_store::append_update(tx, &id, Some(1), &usage("opus", 100, 20, None))
    })
    .unwrap();
    assert!(first.commands.is_empty());
    // 270 of 300: still under.
    write(&store, |tx| {
        hapi_store::append_update(tx, &id, Some(2), &usage("opus", 100, 20, None))
    })
    .unwrap();
    assert!(!store.read(|c| hapi_store::session(c, &id)).unwrap().usage.budget_paused);
    // 405 of 300: paused, and the open turn gets an abort through the outbox.
    let reached = write(&store, |tx| {
        hapi_store::append_update(tx, &id, Some(3), &usage("opus", 100, 20, None))
    })
    .unwrap();
    assert_eq!(reached.commands.len(), 1);
    assert_eq!(reached.commands[0].1, SessionCommand::Abort);
    let outbox = store.read(|c| hapi_store::pending_commands(c, &id)).unwrap();
    assert_eq!(outbox.last(), Some(&reached.commands[0]));
    let s = store.read(|c| hapi_store::session(c, &id)).unwrap();
    assert!(s.usage.budget_paused);
    let got = store.read(|c| hapi_store::session_usage(c, &id)).unwrap();
    assert_eq!(got.paused_reason.as_deref(), Some("Budget reached: 405 of 300 tokens"));
    write(&store, |tx| hapi_store::append_update(tx, &id, Some(4), &turn_end())).unwrap();

    // A prompt through the API is refused and changes nothing.
    let last_seq = store.read(|c| hapi_store::session(c, &id)).unwrap().last_seq;
    let err = write(&store, |tx| prompt(tx, &id)).unwrap_err();
    assert!(
        matches!(&err, StoreError::BudgetReached(m) if m == "Budget reached: 405 of 300 tokens"),
        "{err}"
    );
    assert_eq!(store.read(|c| hapi_store::session(c, &id)).unwrap().last_seq, last_seq);

    // Later usage (another model) is still counted, and pauses nothing twice.
    let more = write(&store, |tx| {
        hapi_store::append_update(tx, &id, Some(5), &usage("haiku", 1, 1, None))
    })
    .unwrap();
    assert!(more.commands.is_empty());

    // The audit log has the budget change and the pause.
    let actions: Vec<(String, String)> = store
        .read(|c| hapi_store::list_audit(c, &audit_query(&id)))
        .unwrap()
        .0
        .into_iter()
        .filter_map(|e| Some((e.action?, e.actor?)))
        .collect();
    assert_eq!(
        actions,
        [
            ("budget_paused".into(), "budget".into()),
            ("budget_set".into(), "owner".into())
        ]
    );
}

#[test]
fn raising_or_clearing_the_budget_unpauses_and_a_lower_one_pauses_at_once() {
    let (_dir, store) = open();
    let id = session(&store);
    write(&store, |tx| {
        hapi_store::append_update(tx, &id, Some(1), &usage("opus", 100, 20, Some(0.5)))
    })
    .unwrap();
    // 135 tokens, $0.50 used. A cost budget of $0.40 is reached at once; no turn
    // is open, so nothing is interrupted.
    let (got, outcome) = write(&store, |tx| {
        hapi_store::set_budget(
            tx,
            &id,
            Some(Budget {
                max_tokens: None,
                max_cost_usd: Some(0.4),
            }),
            "owner",
        )
    })
    .unwrap();
    assert!(got.budget_paused);
    assert!(outcome.commands.is_empty());
    assert!(!outcome.events.is_empty(), "the session is announced");
    assert_eq!(got.paused_reason.as_deref(), Some("Budget reached: $0.5000 of $0.4000"));

    // Raised above the usage: unpaused, prompts work.
    let (got, _) = write(&store, |tx| {
        hapi_store::set_budget(
            tx,
            &id,
            Some(Budget {
                max_tokens: Some(1000),
                max_cost_usd: Some(1.0),
            }),
            "owner",
        )
    })
    .unwrap();
    assert!(!got.budget_paused);
    assert_eq!(got.paused_reason, None);
    write(&store, |tx| prompt(tx, &id)).unwrap();

    // Lowered under it again: paused, and the open turn is interrupted.
    let (got, outcome) = write(&store, |tx| {
        hapi_store::set_budget(
            tx,
            &id,
            Some(Budget {
                max_tokens: Some(100),
                max_cost_usd: None,
            }),
            "owner",
        )
    })
    .unwrap();
    assert!(got.budget_paused);
    assert_eq!(
        outcome.commands.iter().map(|c| &c.1).collect::<Vec<_>>(),
        [&SessionCommand::Abort]
    );

    // Cleared: unpaused, no budget.
    let (got, _) = write(&store, |tx| hapi_store::set_budget(tx, &id, None, "owner")).unwrap();
    assert_eq!((got.budget, got.budget_paused), (None, false));
    let s = store.read(|c| hapi_store::session(c, &id)).unwrap();
    assert_eq!((s.usage.budget, s.usage.budget_paused), (None, false));
    let actions: Vec<String> = store
        .read(|c| hapi_store::list_audit(c, &audit_query(&id)))
        .unwrap()
        .0
        .into_iter()
        .filter_map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "budget_resumed",
            "budget_cleared",
            "budget_paused",
            "budget_set",
            "budget_resumed",
            "budget_set",
            "budget_paused",
            "budget_set"
        ]
    );
}
