//! The delta logic on hand-written `result` lines: several models, a counter
//! restart, agents that report no models.
use hapi_protocol::Usage;
use serde_json::{Value, json};

use super::UsageTracker;

fn result(model_usage: Value, total_cost: f64) -> Value {
    json!({"type": "result", "subtype": "success", "total_cost_usd": total_cost,
           "usage": {"input_tokens": 1, "output_tokens": 1}, "modelUsage": model_usage})
}

fn model(input: u64, output: u64, cache_read: u64, cache_write: u64, cost: f64) -> Value {
    json!({"inputTokens": input, "outputTokens": output, "cacheReadInputTokens": cache_read,
           "cacheCreationInputTokens": cache_write, "costUSD": cost, "contextWindow": 200000})
}

fn usage(model: &str, input: u64, output: u64, cache_read: u64, cache_write: u64, cost: f64) -> Usage {
    Usage {
        model: model.into(),
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        cost_usd: Some(cost),
    }
}

#[test]
fn each_model_reports_its_own_delta_and_an_idle_model_reports_nothing() {
    let mut t = UsageTracker::default();
    let first = t.on_result(&result(
        json!({"opus": model(100, 20, 1000, 50, 0.5), "haiku": model(10, 2, 0, 0, 0.01)}),
        0.51,
    ));
    assert_eq!(
        first,
        [usage("haiku", 10, 2, 0, 0, 0.01), usage("opus", 100, 20, 1000, 50, 0.5)]
    );
    // Turn 2 used opus only: haiku's totals did not move.
    let second = t.on_result(&result(
        json!({"opus": model(150, 30, 3000, 50, 0.75), "haiku": model(10, 2, 0, 0, 0.01)}),
        0.76,
    ));
    assert_eq!(second, [usage("opus", 50, 10, 2000, 0, 0.25)]);
}

#[test]
fn a_new_process_starts_from_zero_and_nothing_is_counted_twice() {
    // Process 1: two turns.
    let mut first = UsageTracker::default();
    first.on_result(&result(json!({"opus": model(200, 40, 0, 0, 0.0016)}), 0.0016));
    let turn2 = first.on_result(&result(json!({"opus": model(300, 60, 0, 0, 0.0024)}), 0.0024));
    assert_eq!(turn2, [usage("opus", 100, 20, 0, 0, 0.0008)]);
    // The wrapper restarts (or resumes): a new process, a new tracker, counters
    // from zero. Its first turn is reported whole, once.
    let mut second = UsageTracker::default();
    let turn3 = second.on_result(&result(json!({"opus": model(100, 20, 0, 0, 0.0008)}), 0.0008));
    assert_eq!(turn3, [usage("opus", 100, 20, 0, 0, 0.0008)]);
}

#[test]
fn totals_that_go_down_are_a_counter_restart_never_a_negative_delta() {
    let mut t = UsageTracker::default();
    t.on_result(&result(json!({"opus": model(300, 60, 0, 0, 0.0024)}), 0.0024));
    // Lower than before: the counters were restarted under the same tracker.
    let after_restart = t.on_result(&result(json!({"opus": model(100, 20, 0, 0, 0.0008)}), 0.0008));
    assert_eq!(after_restart, [usage("opus", 100, 20, 0, 0, 0.0008)]);
    // And from there on deltas again.
    let next = t.on_result(&result(json!({"opus": model(150, 30, 0, 0, 0.0012)}), 0.0012));
    assert_eq!(next, [usage("opus", 50, 10, 0, 0, 0.0004)]);
}

#[test]
fn without_model_usage_the_turn_is_reported_as_the_unknown_model() {
    let mut t = UsageTracker::default();
    let line = |input: u64, total_cost: f64| {
        json!({"type": "result", "total_cost_usd": total_cost,
               "usage": {"input_tokens": input, "output_tokens": 7, "cache_read_input_tokens": 3,
                         "cache_creation_input_tokens": 2}})
    };
    assert_eq!(t.on_result(&line(40, 0.25)), [usage("unknown", 40, 7, 3, 2, 0.25)]);
    // `usage` is per turn already; only the cost is a running total.
    assert_eq!(t.on_result(&line(10, 0.5)), [usage("unknown", 10, 7, 3, 2, 0.25)]);
    let no_cost = json!({"type": "result", "usage": {"input_tokens": 5, "output_tokens": 1}});
    let got = t.on_result(&no_cost);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].input_tokens, got[0].cost_usd), (5, None));
}

#[test]
fn a_turn_that_used_nothing_reports_nothing() {
    let mut t = UsageTracker::default();
    assert_eq!(t.on_result(&json!({"type": "result", "is_error": true})), []);
    t.on_result(&result(json!({"opus": model(100, 20, 0, 0, 0.5)}), 0.5));
    assert_eq!(
        t.on_result(&result(json!({"opus": model(100, 20, 0, 0, 0.5)}), 0.5)),
        []
    );
}
