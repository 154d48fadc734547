//! Usage and budgets over the API: aggregation through the wrapper link (a
//! resend counted once), the tokens metric, budget validation, and a reached
//! budget pausing the session (abort to the wrapper, prompts refused with
//! `409 budget_reached`) until it is raised.
use hapi_protocol::{HubFrame, SessionCommand, SessionUpdate, Usage};
use serde_json::{Value, json};

use crate::support::{Sse, TestHub, Wrapper};

fn usage(model: &str, input: u64, output: u64, cost: Option<f64>) -> SessionUpdate {
    SessionUpdate::UsageUpdate {
        usage: Usage {
            model: model.into(),
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: cost,
        },
    }
}

fn turn_end() -> SessionUpdate {
    SessionUpdate::TurnEnd {
        stop_reason: "end_turn".into(),
        is_error: false,
    }
}

async fn put_budget(hub: &TestHub, id: &str, body: &str) -> (u16, Value) {
    let r = hub
        .http
        .put(format!("{}/api/sessions/{id}/budget", hub.url))
        .bearer_auth(&hub.token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn prompt(hub: &TestHub, id: &str, text: &str) -> (u16, Value) {
    let r = hub
        .post(&format!("/api/sessions/{id}/messages"))
        .json(&json!({"text": text}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The next command the hub pushes to the wrapper (skipping acks).
async fn next_command(w: &mut Wrapper) -> (u64, SessionCommand) {
    loop {
        if let HubFrame::Command { id, command } = w.recv().await {
            return (id, command);
        }
    }
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

async fn audit_actions(hub: &TestHub, id: &str) -> Vec<(String, String, String)> {
    let list = hub.json(&format!("/api/audit?session_id={id}")).await;
    list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "admin")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("action"), s("actor"), s("summary"))
        })
        .collect()
}

#[tokio::test]
async fn usage_adds_up_per_model_once_per_update_and_is_counted_in_metrics() {
    let hub = TestHub::start().await;
    let created = hub.create_session().await;
    let id = &created.session.id;
    let mut w = hub.wrapper(&created).await;
    w.send(1, usage("opus", 100, 20, Some(0.5))).await;
    w.send(2, usage("haiku", 30, 5, None)).await;
    w.wait_ack(2).await;
    w.close().await;
    // The acks were lost: everything is resent, then one more.
    let mut w = hub.wrapper(&created).await;
    w.send(1, usage("opus", 100, 20, Some(0.5))).await;
    w.send(2, usage("haiku", 30, 5, None)).await;
    w.send(3, usage("opus", 50, 10, Some(0.25))).await;
    w.wait_ack(3).await;

    let got = hub.json(&format!("/api/sessions/{id}/usage")).await;
    assert_eq!(got["session_id"], id.as_str());
    assert_eq!(
        got["models"],
        json!([
            {"model": "haiku", "input_tokens": 30, "output_tokens": 5, "cache_read_tokens": 0,
             "cache_write_tokens": 0, "total_tokens": 35, "cost_usd": null, "updates": 1},
            {"model": "opus", "input_tokens": 150, "output_tokens": 30, "cache_read_tokens": 0,
             "cache_write_tokens": 0, "total_tokens": 180, "cost_usd": 0.75, "updates": 2},
        ])
    );
    assert_eq!(got["totals"]["total_tokens"], 215);
    assert_eq!(got["totals"]["cost_usd"], 0.75);
    assert_eq!(
        (got["budget"].clone(), got["budget_paused"].clone()),
        (Value::Null, json!(false))
    );
    // The session (list and get) carries the totals.
    let session = hub.json(&format!("/api/sessions/{id}")).await["session"].clone();
    assert_eq!(session["usage"]["total_tokens"], 215);
    assert_eq!(session["usage"]["cost_usd"], 0.75);
    let listed = hub.json("/api/sessions").await;
    assert_eq!(listed["sessions"][0]["usage"]["total_tokens"], 215);

    let text = hub.get("/metrics").send().await.unwrap().text().await.unwrap();
    assert_eq!(
        metric(&text, r#"hapi_tokens_total{model="opus",kind="input"}"#),
        Some(150.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"hapi_tokens_total{model="opus",kind="output"}"#),
        Some(30.0)
    );
    assert_eq!(
        metric(&text, r#"hapi_tokens_total{model="haiku",kind="input"}"#),
        Some(30.0)
    );
    assert_eq!(
        metric(&text, r#"hapi_tokens_total{model="haiku",kind="cache_read"}"#),
        Some(0.0)
    );

    let missing = hub.get("/api/sessions/nope/usage").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    w.close().await;
    hub.stop().await;
}

#[tokio::test]
async fn a_bad_budget_is_refused_and_changes_nothing() {
    let hub = TestHub::start().await;
    let created = hub.create_session().await;
    let id = &created.session.id;
    for body in [
        r#"{"max_tokens": -5}"#,
        r#"{"max_tokens": 0}"#,
        r#"{"max_tokens": "1000"}"#,
        r#"{"max_tokens": 1.5}"#,
        r#"{"max_cost_usd": 0}"#,
        r#"{"max_cost_usd": -1.0}"#,
        r#"{"max_cost_usd": "cheap"}"#,
        r#"{}"#,
        r#"{"max_token": 100}"#,
        r#"100"#,
        r#"not json"#,
    ] {
        let (status, err) = put_budget(&hub, id, body).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["code"], "invalid_request", "{body}: {err}");
        assert!(err["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let got = hub.json(&format!("/api/sessions/{id}/usage")).await;
    assert_eq!(got["budget"], Value::Null);
    assert!(audit_actions(&hub, id).await.is_empty(), "nothing was recorded");
    let (status, err) = put_budget(&hub, "nope", r#"{"max_tokens": 10}"#).await;
    assert_eq!((status, err["error"]["code"].clone()), (404, json!("not_found")));
    hub.stop().await;
}

#[tokio::test]
async fn a_reached_budget_pauses_the_session_until_it_is_raised() {
    let hub = TestHub::start().await;
    let created = hub.create_session().await;
    let id = &created.session.id;
    let mut w = hub.wrapper(&created).await;
    let (status, set) = put_budget(&hub, id, r#"{"max_tokens": 100}"#).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["budget"], json!({"max_tokens": 100, "max_cost_usd": null}));
    assert_eq!(set["budget_paused"], false);

    let (status, _) = prompt(&hub, id, "go").await;
    assert_eq!(status, 202);
    assert_eq!(
        next_command(&mut w).await.1,
        SessionCommand::Prompt { text: "go".into() }
    );
    let mut sse = Sse::open(&hub, None).await;

    // The turn used 120 tokens: over the budget. The hub interrupts the turn
    // through the abort path and marks the session paused.
    w.send(1, usage("opus", 100, 20, None)).await;
    let (_, abort) = next_command(&mut w).await;
    assert_eq!(abort, SessionCommand::Abort);
    let paused = loop {
        let (_, ev) = sse.next().await;
        if ev["type"] == "session" && ev["session"]["usage"]["budget_paused"] == true {
            break ev;
        }
    };
    assert_eq!(paused["session"]["usage"]["total_tokens"], 120);
    w.send(2, turn_end()).await;
    w.wait_ack(2).await;
    let got = hub.json(&format!("/api/sessions/{id}/usage")).await;
    assert_eq!(got["budget_paused"], true);
    assert_eq!(got["paused_reason"], "Budget reached: 120 of 100 tokens");

    // Prompts are refused, and nothing is recorded or queued for them.
    let last_seq = hub.json(&format!("/api/sessions/{id}")).await["session"]["last_seq"].clone();
    let (status, err) = prompt(&hub, id, "more").await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "budget_reached");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Budget reached: 120 of 100 tokens"),
        "{err}"
    );
    assert_eq!(
        hub.json(&format!("/api/sessions/{id}")).await["session"]["last_seq"],
        last_seq
    );

    // A budget still below the usage keeps it paused.
    let (status, still) = put_budget(&hub, id, r#"{"max_tokens": 110}"#).await;
    assert_eq!((status, still["budget_paused"].clone()), (200, json!(true)));
    // Raised above: the next prompt runs.
    let (status, raised) = put_budget(&hub, id, r#"{"max_tokens": 1000, "max_cost_usd": 2.5}"#).await;
    assert_eq!(status, 200, "{raised}");
    assert_eq!(raised["budget_paused"], false);
    assert_eq!(raised["paused_reason"], Value::Null);
    let (status, _) = prompt(&hub, id, "more").await;
    assert_eq!(status, 202);
    assert_eq!(
        next_command(&mut w).await.1,
        SessionCommand::Prompt { text: "more".into() }
    );
    // Cleared with null.
    let (status, cleared) = put_budget(&hub, id, "null").await;
    assert_eq!((status, cleared["budget"].clone()), (200, Value::Null));
    let session = hub.json(&format!("/api/sessions/{id}")).await["session"].clone();
    assert_eq!(session["usage"]["budget"], Value::Null);
    assert_eq!(session["usage"]["budget_paused"], false);

    let actions = audit_actions(&hub, id).await;
    let expected = [
        ("budget_cleared", "owner", "no budget"),
        ("budget_resumed", "owner", "the session takes prompts again"),
        ("budget_set", "owner", "max 1000 tokens, max $2.5"),
        ("budget_set", "owner", "max 110 tokens"),
        ("budget_paused", "budget", "Budget reached: 120 of 100 tokens"),
        ("budget_set", "owner", "max 100 tokens"),
    ]
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
    assert_eq!(actions, expected);
    w.close().await;
    hub.stop().await;
}
