//! Per-turn, per-model usage deltas from Claude Code's `result` lines.
//!
//! A `result` carries `usage` (this turn's tokens, all models together),
//! `total_cost_usd` and `modelUsage` (`{model: {inputTokens, outputTokens,
//! cacheReadInputTokens, cacheCreationInputTokens, costUSD}}`), the last two
//! running totals of the process. The hub adds updates up, so it must get what
//! each turn added: [`UsageTracker`] keeps the previous totals and reports the
//! difference. A new process (a wrapper restart, a resume) starts its counters
//! at zero and gets a new tracker; should totals ever go down within one
//! tracker anyway, the counters were restarted, and the new totals are the
//! delta (never a negative number, never a turn counted twice).
use std::collections::HashMap;

use hapi_protocol::{UNKNOWN_MODEL, Usage};
use serde_json::Value;

/// Running totals of one model, as last reported.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Totals {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    cost: Option<f64>,
}

impl Totals {
    fn from_model_usage(v: &Value) -> Totals {
        let n = |key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
        Totals {
            input: n("inputTokens"),
            output: n("outputTokens"),
            cache_read: n("cacheReadInputTokens"),
            cache_write: n("cacheCreationInputTokens"),
            cost: v.get("costUSD").and_then(Value::as_f64),
        }
    }

    /// Whether any counter is below `earlier`'s: the process restarted its counters.
    fn went_down_from(&self, earlier: &Totals) -> bool {
        self.input < earlier.input
            || self.output < earlier.output
            || self.cache_read < earlier.cache_read
            || self.cache_write < earlier.cache_write
            || matches!((self.cost, earlier.cost), (Some(now), Some(before)) if now < before)
    }

    /// What was added since `earlier` (all of it after a restart).
    fn since(&self, earlier: &Totals, model: &str) -> Usage {
        let base = if self.went_down_from(earlier) {
            Totals::default()
        } else {
            *earlier
        };
        Usage {
            model: model.to_owned(),
            input_tokens: self.input - base.input,
            output_tokens: self.output - base.output,
            cache_read_tokens: self.cache_read - base.cache_read,
            cache_write_tokens: self.cache_write - base.cache_write,
            // Rounded to a micro-dollar: the difference of two float sums is noisy.
            cost_usd: self
                .cost
                .map(|now| ((now - base.cost.unwrap_or(0.0)).max(0.0) * 1e6).round() / 1e6),
        }
    }
}

/// The totals of one Claude process, to turn its running totals into per-turn deltas.
#[derive(Debug, Default)]
pub struct UsageTracker {
    models: HashMap<String, Totals>,
    /// `total_cost_usd` as last reported, for results without `modelUsage`.
    total_cost: Option<f64>,
}

impl UsageTracker {
    /// What the turn that this `result` line ends used, one [`Usage`] per model
    /// that used anything. Models are in name order, so the output is stable.
    pub fn on_result(&mut self, result: &Value) -> Vec<Usage> {
        let total_cost = result.get("total_cost_usd").and_then(Value::as_f64);
        let per_model = result
            .get("modelUsage")
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty());
        let Some(per_model) = per_model else {
            return self.without_models(result, total_cost).into_iter().collect();
        };
        self.total_cost = total_cost.or(self.total_cost);
        let mut names: Vec<&String> = per_model.keys().collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|name| {
                let now = Totals::from_model_usage(&per_model[name]);
                let before = self.models.insert(name.clone(), now).unwrap_or_default();
                let model = if name.is_empty() { UNKNOWN_MODEL } else { name };
                Some(now.since(&before, model)).filter(|u| !u.is_empty())
            })
            .collect()
    }

    /// An agent that reports no models: this turn's `usage` as model `unknown`,
    /// and the cost as the difference of the process's `total_cost_usd`.
    fn without_models(&mut self, result: &Value, total_cost: Option<f64>) -> Option<Usage> {
        let usage = result.get("usage");
        let n = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_u64).unwrap_or(0);
        let cost = total_cost.map(|now| match self.total_cost {
            Some(before) if now >= before => ((now - before) * 1e6).round() / 1e6,
            _ => now,
        });
        self.total_cost = total_cost.or(self.total_cost);
        Some(Usage {
            model: UNKNOWN_MODEL.to_owned(),
            input_tokens: n("input_tokens"),
            output_tokens: n("output_tokens"),
            cache_read_tokens: n("cache_read_input_tokens"),
            cache_write_tokens: n("cache_creation_input_tokens"),
            cost_usd: cost,
        })
        .filter(|u| !u.is_empty())
    }
}

#[cfg(test)]
#[path = "usage_tests.rs"]
mod tests;
