//! Token usage and budgets: what the agents report per turn and model, what the
//! hub adds up per session, and the optional per-session budget that pauses a
//! session when it is reached (`docs/operations.md`, "Usage and budgets").
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The model name used when an agent does not say which model it used.
pub const UNKNOWN_MODEL: &str = "unknown";

fn unknown_model() -> String {
    UNKNOWN_MODEL.to_owned()
}

/// Token usage one turn added, for one model. Every number is a delta: what this
/// turn used, never a running total, so the hub can add updates up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct Usage {
    /// The model, as the agent names it; `unknown` when it names none. (Entries
    /// stored before models were recorded read as `unknown`.)
    #[serde(default = "unknown_model")]
    pub model: String,
    /// Input tokens that were neither read from nor written to the prompt cache.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// What this turn cost with this model, in US dollars, if the agent says.
    pub cost_usd: Option<f64>,
}

impl Default for Usage {
    fn default() -> Self {
        Usage {
            model: unknown_model(),
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: None,
        }
    }
}

impl Usage {
    /// Every token the model read or wrote: input, output, cache reads and writes.
    /// This is what a token budget counts.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }

    /// Whether the update says nothing (no tokens, no cost).
    pub fn is_empty(&self) -> bool {
        self.total_tokens() == 0 && self.cost_usd.is_none_or(|c| c == 0.0)
    }
}

/// A session's usage with one model, added up over its turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct ModelUsage {
    /// The model (`unknown` when the agent named none).
    pub model: String,
    /// Input tokens (not cached).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// The sum of the four.
    pub total_tokens: u64,
    /// Cost in US dollars; `null` while no update for this model carried one.
    pub cost_usd: Option<f64>,
    /// Usage updates counted (one per turn that used this model).
    pub updates: u64,
}

/// Usage added up over every model of a session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct UsageTotals {
    /// Input tokens (not cached).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// The sum of the four: what a token budget counts.
    pub total_tokens: u64,
    /// Cost in US dollars; `null` while no model's updates carried one.
    pub cost_usd: Option<f64>,
}

/// A per-session budget: at least one limit. When the session's usage reaches
/// either, the hub pauses the session (`budget_reached`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(export)]
pub struct Budget {
    /// Most tokens (input, output, cache reads and writes together).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Most cost, in US dollars (only sessions whose agent reports cost reach it).
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
}

impl Budget {
    /// Checks a budget a client sent: at least one limit, each above zero.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_tokens.is_none() && self.max_cost_usd.is_none() {
            return Err("a budget needs `max_tokens` or `max_cost_usd` (send `null` to clear it)".into());
        }
        if self.max_tokens == Some(0) {
            return Err("`max_tokens` must be above zero".into());
        }
        if let Some(cost) = self.max_cost_usd
            && !(cost.is_finite() && cost > 0.0)
        {
            return Err("`max_cost_usd` must be a number above zero".into());
        }
        Ok(())
    }

    /// Which limit `totals` reached, if any, as a sentence for a person:
    /// `Budget reached: 1200 of 1000 tokens`.
    pub fn reached(&self, totals: &UsageTotals) -> Option<String> {
        if let Some(max) = self.max_tokens
            && totals.total_tokens >= max
        {
            return Some(format!("Budget reached: {} of {max} tokens", totals.total_tokens));
        }
        if let (Some(max), Some(cost)) = (self.max_cost_usd, totals.cost_usd)
            && cost >= max
        {
            return Some(format!("Budget reached: ${cost:.4} of ${max:.4}"));
        }
        None
    }

    /// A short description for the audit log: `max 1000 tokens, max $0.50`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(max) = self.max_tokens {
            parts.push(format!("max {max} tokens"));
        }
        if let Some(max) = self.max_cost_usd {
            parts.push(format!("max ${max}"));
        }
        parts.join(", ")
    }
}

/// Usage and budget as part of a [`crate::Session`]: cheap totals for lists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SessionUsageSummary {
    /// Every token of the session (input, output, cache reads and writes).
    pub total_tokens: u64,
    /// Cost in US dollars, if the agent reports it.
    pub cost_usd: Option<f64>,
    /// The session's budget, if one is set.
    pub budget: Option<Budget>,
    /// The budget is reached: the hub interrupted the turn and refuses prompts
    /// (`409 budget_reached`) until the budget is raised or cleared.
    pub budget_paused: bool,
}

/// `GET /api/sessions/{id}/usage` and the answer to `PUT …/budget`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SessionUsage {
    /// The session.
    pub session_id: String,
    /// One row per model, by model name.
    pub models: Vec<ModelUsage>,
    /// All models together.
    pub totals: UsageTotals,
    /// The budget, if one is set.
    pub budget: Option<Budget>,
    /// Whether the budget paused the session.
    pub budget_paused: bool,
    /// Why it is paused (`Budget reached: 1200 of 1000 tokens`), while paused.
    pub paused_reason: Option<String>,
}
