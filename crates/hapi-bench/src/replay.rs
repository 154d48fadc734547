//! `replay`: a client resuming from before 10,000 events, over SSE and WebSocket.
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;

use crate::hub::{Hub, HubMode};
use crate::ingest::blast;
use crate::procs::{Bins, clk_tck, cpu_ticks};
use crate::report::{Row, print_table};
use crate::stats::{Summary, fmt_ns};

#[derive(clap::Args, Clone, Debug)]
pub struct ReplayArgs {
    /// Events to replay.
    #[arg(long, default_value_t = 10_000)]
    pub events: u64,
    /// Repetitions of each replay (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
}

const LIMIT: Duration = Duration::from_secs(30);

fn seq_of(json: &str) -> Option<u64> {
    let at = json.find("\"seq\":")? + 6;
    let rest = &json[at..];
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

pub async fn run(args: &ReplayArgs, mode: HubMode, bins: &Bins) -> Result<Vec<Row>> {
    println!(
        "\n# replay: {} events, resumed {} times over SSE and over WebSocket (hub: {mode:?})",
        args.events, args.reps
    );
    let hub = Hub::start(mode, bins).await?;
    let session = hub.create_session().await?;
    let ws = hub.wrapper(&session).await?;
    blast(ws, args.events, 1024, 400).await?;
    let sid = &session.session.id;
    let first = hub
        .messages(sid, "after=0&limit=1")
        .await?
        .messages
        .first()
        .context("no history")?
        .event_seq;
    let last = hub
        .messages(sid, &format!("before={}&limit=1", args.events + 1))
        .await?
        .messages
        .first()
        .context("no history")?
        .event_seq;
    let from = first - 1;
    println!("  events {first}..={last} produced; resuming from {from}");

    let mut sse_times = Vec::new();
    let mut ws_times = Vec::new();
    let mut sse_chunks = 0;
    let mut sse_cpu = (0u64, 0u64);
    let mut ws_cpu = (0u64, 0u64);
    let mut sse_first = Duration::ZERO;
    for _ in 0..args.reps {
        // SSE with Last-Event-ID.
        let c0 = (cpu_ticks(hub.pid)?, cpu_ticks(std::process::id())?);
        let t0 = Instant::now();
        let mut count = 0u64;
        let mut sse = hub.sse_resume(from).await?;
        let mut first_at = None;
        tokio::time::timeout(LIMIT, async {
            while let Some(ev) = sse.next().await? {
                count += 1;
                first_at.get_or_insert_with(|| t0.elapsed());
                if ev.id.unwrap_or(0) >= last {
                    return Ok(());
                }
            }
            bail!("SSE stream ended early")
        })
        .await
        .context("SSE replay took over 30 s")??;
        sse_times.push(t0.elapsed().as_nanos() as u64);
        sse_chunks = sse.chunks;
        sse_cpu.0 += cpu_ticks(hub.pid)? - c0.0;
        sse_cpu.1 += cpu_ticks(std::process::id())? - c0.1;
        sse_first = first_at.unwrap_or_default();
        if count < args.events {
            bail!("SSE replay delivered {count} events, expected ≥ {}", args.events);
        }
        drop(sse);

        // WebSocket with ?after=.
        let c0 = (cpu_ticks(hub.pid)?, cpu_ticks(std::process::id())?);
        let t0 = Instant::now();
        let mut count = 0u64;
        let mut ws = hub.events_ws(from).await?;
        tokio::time::timeout(LIMIT, async {
            while let Some(msg) = ws.next().await {
                if let Message::Text(t) = msg? {
                    count += 1;
                    if seq_of(&t).unwrap_or(0) >= last {
                        return Ok(());
                    }
                }
            }
            bail!("event WebSocket ended early")
        })
        .await
        .context("WebSocket replay took over 30 s")??;
        ws_times.push(t0.elapsed().as_nanos() as u64);
        ws_cpu.0 += cpu_ticks(hub.pid)? - c0.0;
        ws_cpu.1 += cpu_ticks(std::process::id())? - c0.1;
        if count < args.events {
            bail!("WebSocket replay delivered {count} events, expected ≥ {}", args.events);
        }
        let _ = ws.close(None).await;
    }
    let per_rep_ms = |t: u64| format!("{:.0} ms", t as f64 * 1000.0 / clk_tck() as f64 / args.reps as f64);
    let sse = Summary::new(sse_times);
    let wss = Summary::new(ws_times);
    let rows = vec![
        Row::new(
            "replay",
            format!("{} events over SSE (median)", args.events),
            fmt_ns(sse.percentile(50.0)),
            "≤ 200 ms",
            "-",
        ),
        Row::new(
            "replay",
            format!("{} events over WS (median)", args.events),
            fmt_ns(wss.percentile(50.0)),
            "≤ 200 ms",
            "-",
        ),
    ];
    let detail = vec![
        Row::new(
            "replay",
            "SSE min / max",
            format!("{} / {}", fmt_ns(sse.percentile(0.0)), fmt_ns(sse.max())),
            "",
            "",
        ),
        Row::new(
            "replay",
            "SSE first event after / body chunks read",
            format!("{:.1} ms / {sse_chunks}", sse_first.as_secs_f64() * 1e3),
            "",
            "",
        ),
        Row::new(
            "replay",
            "SSE CPU per replay: hub / client",
            format!("{} / {}", per_rep_ms(sse_cpu.0), per_rep_ms(sse_cpu.1)),
            "",
            "",
        ),
        Row::new(
            "replay",
            "WS CPU per replay: hub / client",
            format!("{} / {}", per_rep_ms(ws_cpu.0), per_rep_ms(ws_cpu.1)),
            "",
            "",
        ),
        Row::new(
            "replay",
            "WS min / max",
            format!("{} / {}", fmt_ns(wss.percentile(0.0)), fmt_ns(wss.max())),
            "",
            "",
        ),
    ];
    print_table("replay", &[rows.clone(), detail].concat());
    Ok(rows)
}
