//! `flood` mode: a paced stream of timestamped assistant texts, for measuring
//! throughput and latency through the driver, link and hub.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::time::{Instant, MissedTickBehavior, interval};

use crate::env_number;
use crate::output::Output;

pub async fn run(out: &Output, _prompt: &str) {
    let count = env_number("FAKE_CLAUDE_COUNT", 1000);
    let size = usize::try_from(env_number("FAKE_CLAUDE_SIZE", 400)).unwrap_or(400);
    let rate = env_number("FAKE_CLAUDE_RATE", 100).max(1);
    out.system_init().await;
    let period = Duration::from_nanos(1_000_000_000 / rate).max(Duration::from_millis(1));
    let mut ticks = interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < count {
        ticks.tick().await;
        // Above 1000 msgs/s one tick carries several messages: as many as are due.
        let elapsed = start.elapsed().as_secs_f64();
        let due = ((elapsed * rate as f64) as u64).clamp(sent + 1, count);
        let mut batch = Vec::new();
        while sent < due {
            sent += 1;
            batch.push(out.assistant(
                &format!("msg_flood_{sent}"),
                json!({"type": "text", "text": text(size)}),
            ));
        }
        out.lines(&batch).await;
    }
    out.result("success", "flood done", "completed", &json!([])).await;
}

fn text(size: usize) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut text = format!("ts={nanos};");
    while text.len() < size {
        text.push('x');
    }
    text
}
