//! Usage and budgets end to end: the real `hapi hub` and `hapi claude`, the real
//! Claude Code against the fake model server. What the usage API shows must be
//! what the fake server reported for the requests Claude Code made; a budget
//! below one turn pauses the session after that turn, and raising it lets the
//! next prompt run.
use std::collections::BTreeMap;

use hapi_e2e::{ClaudeSession, Hub, agent_texts, wait};
use hapi_testkit::{FakeAnthropic, Script, start_fake_anthropic};
use serde_json::{Value, json};

/// `(input, output)` tokens per model the fake server reported so far: each
/// response reports the same usage, so it is that times the requests per model.
fn served(model: &FakeAnthropic) -> BTreeMap<String, (u64, u64)> {
    let (input, output) = model.usage_per_response();
    let mut per_model = BTreeMap::new();
    for request in model.requests() {
        let name = request["model"].as_str().unwrap_or("unknown").to_owned();
        let entry = per_model.entry(name).or_insert((0, 0));
        entry.0 += input;
        entry.1 += output;
    }
    per_model
}

/// `(input, output)` tokens per model as the usage API reports them.
fn reported(usage: &Value) -> BTreeMap<String, (u64, u64)> {
    usage["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let n = |k: &str| m[k].as_u64().unwrap();
            (
                m["model"].as_str().unwrap().to_owned(),
                (n("input_tokens"), n("output_tokens")),
            )
        })
        .collect()
}

async fn usage(hub: &Hub, id: &str) -> Value {
    hub.get(&format!("/api/sessions/{id}/usage")).await
}

/// `PUT` is not among the shared helpers.
async fn put_budget(hub: &Hub, id: &str, body: Value) -> (u16, Value) {
    let r = hub
        .http
        .put(format!("{}/api/sessions/{id}/budget", hub.url))
        .bearer_auth(&hub.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn allow_pending(hub: &Hub, id: &str) {
    let approval = hub.pending_approval(id).await;
    let (status, body) = hub
        .post(
            &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
            json!({"decision": "allow_once"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Waits until the usage API agrees with the fake server (the usage update is
/// stored just before the turn end, so it is normally there at once).
async fn usage_matching_the_server(hub: &Hub, id: &str, model: &FakeAnthropic) -> Value {
    wait("usage to match what the model server reported", || async {
        let got = usage(hub, id).await;
        (reported(&got) == served(model)).then_some(got)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_api_shows_the_tokens_the_model_server_reported_per_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = start_fake_anthropic(Script::default()).await.unwrap();
    let hub = Hub::start(dir.path());
    let session = ClaudeSession::start(dir.path(), &hub, &model.url(), "do it");
    allow_pending(&hub, &session.id).await;
    hub.wait_turns(&session.id, 1).await;

    let first = usage_matching_the_server(&hub, &session.id, &model).await;
    let after_first = served(&model);
    assert!(!after_first.is_empty(), "Claude Code made requests");
    let total: u64 = after_first.values().map(|(i, o)| i + o).sum();
    assert_eq!(first["totals"]["total_tokens"], total);
    assert_eq!(first["totals"]["cache_read_tokens"], 0);
    // The session carries the same totals.
    let s = hub.get(&format!("/api/sessions/{}", session.id)).await;
    assert_eq!(s["session"]["usage"]["total_tokens"], total);

    // A second turn adds only what it used: Claude Code reports running totals,
    // the driver sends deltas.
    let (status, _) = hub
        .post(
            &format!("/api/sessions/{}/messages", session.id),
            json!({"text": "and now?"}),
        )
        .await;
    assert_eq!(status, 202);
    let messages = hub.wait_turns(&session.id, 2).await;
    assert_eq!(agent_texts(&messages).last().unwrap(), "You said: and now?");
    let second = usage_matching_the_server(&hub, &session.id, &model).await;
    let after_second = served(&model);
    assert!(after_second != after_first, "the second turn made requests");

    // The history's usage updates are per turn and model, and add up to the same.
    let mut from_history: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for m in messages.iter().filter(|m| m["update"]["kind"] == "usage_update") {
        let u = &m["update"]["usage"];
        let entry = from_history.entry(u["model"].as_str().unwrap().to_owned()).or_default();
        entry.0 += u["input_tokens"].as_u64().unwrap();
        entry.1 += u["output_tokens"].as_u64().unwrap();
    }
    assert_eq!(from_history, after_second);
    assert_eq!(reported(&second), after_second);
    model.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_below_one_turn_pauses_the_session_and_raising_it_lets_the_next_prompt_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = start_fake_anthropic(Script::default()).await.unwrap();
    let hub = Hub::start(dir.path());
    let session = ClaudeSession::start(dir.path(), &hub, &model.url(), "do it");
    let id = session.id.clone();

    // While the first turn waits for its approval, set a budget below one response.
    let (input, output) = model.usage_per_response();
    let small = (input + output) / 2;
    let approval = hub.pending_approval(&id).await;
    let (status, set) = put_budget(&hub, &id, json!({"max_tokens": small})).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["budget_paused"], false, "nothing was reported yet");
    let (status, _) = hub
        .post(
            &format!("/api/approvals/{}", approval["id"].as_str().unwrap()),
            json!({"decision": "allow_once"}),
        )
        .await;
    assert_eq!(status, 200);

    // The turn's usage crosses the budget: the session is paused after the turn.
    let messages = hub.wait_turns(&id, 1).await;
    let paused = wait("the session to be paused by its budget", || async {
        let s = hub.get(&format!("/api/sessions/{id}")).await;
        (s["session"]["usage"]["budget_paused"] == true).then_some(s)
    })
    .await;
    let used = usage_matching_the_server(&hub, &id, &model).await["totals"]["total_tokens"]
        .as_u64()
        .unwrap();
    assert!(used > small);
    assert_eq!(paused["session"]["state"], "idle");
    let got = usage(&hub, &id).await;
    assert_eq!(
        got["paused_reason"],
        format!("Budget reached: {used} of {small} tokens")
    );
    // The turn had finished by itself; the pause's abort found nothing to interrupt.
    let end = messages
        .iter()
        .rev()
        .find(|m| m["update"]["kind"] == "turn_end")
        .unwrap();
    assert_eq!(end["update"]["stop_reason"], "end_turn");

    // A new prompt is refused while paused.
    let (status, body) = hub
        .post(&format!("/api/sessions/{id}/messages"), json!({"text": "and now?"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "budget_reached");

    // Raising the budget unpauses; the next prompt runs to a normal end.
    let (status, raised) = put_budget(&hub, &id, json!({"max_tokens": used * 100})).await;
    assert_eq!(status, 200, "{raised}");
    assert_eq!(raised["budget_paused"], false);
    let (status, body) = hub
        .post(&format!("/api/sessions/{id}/messages"), json!({"text": "and now?"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let messages = hub.wait_turns(&id, 2).await;
    assert_eq!(agent_texts(&messages).last().unwrap(), "You said: and now?");
    let end = messages
        .iter()
        .rev()
        .find(|m| m["update"]["kind"] == "turn_end")
        .unwrap();
    assert_eq!(end["update"]["stop_reason"], "end_turn");
    let s = hub.get(&format!("/api/sessions/{id}")).await;
    assert_eq!(s["session"]["usage"]["budget_paused"], false);

    // The budget changes and the pause are in the audit log, newest first.
    let audit = hub.get(&format!("/api/audit?session_id={id}")).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["budget_resumed", "budget_set", "budget_paused", "budget_set"]);
    model.shutdown().await;
}
