//! `latency`: ingest → SSE delivery latency at a steady, paced rate.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use crate::hub::{Hub, HubMode, find_ts, stamped_text, unix_nanos};
use crate::ingest::update_frame;
use crate::procs::{Bins, clk_tck, cpu_ticks, rss_kb};
use crate::report::{Row, print_table};
use crate::stats::{Summary, fmt_ns};

#[derive(clap::Args, Clone, Debug)]
pub struct LatencyArgs {
    /// Aggregate updates per second over all wrappers.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Wrappers (one session each).
    #[arg(long, default_value_t = 10)]
    pub sessions: u64,
    /// Seconds measured after the warm-up.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Seconds of warm-up, not measured.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Characters of text per update.
    #[arg(long, default_value_t = 400)]
    pub size: usize,
    /// Write `send_unix_ns latency_ns` lines of the measured samples to this file.
    #[arg(long, value_name = "FILE")]
    pub dump: Option<std::path::PathBuf>,
}

pub async fn run(args: &LatencyArgs, mode: HubMode, bins: &Bins) -> Result<Vec<Row>> {
    println!(
        "\n# latency: {} wrappers at {} msg/s in total, {} s warm-up + {} s measured (hub: {:?})",
        args.sessions, args.rate, args.warmup, args.seconds, mode
    );
    let hub = Hub::start(mode, bins).await?;
    let mut links = Vec::new();
    for _ in 0..args.sessions {
        let s = hub.create_session().await?;
        links.push(hub.wrapper(&s).await?);
    }
    let mut sse = hub.sse_with_ticket().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let sent = Arc::new(AtomicU64::new(0));
    let period = Duration::from_nanos(1_000_000_000 * args.sessions / args.rate.max(1));
    let total = args.warmup + args.seconds;
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs(total);
    let warm_wall = unix_nanos() + Duration::from_millis(50).as_nanos() as u64 + args.warmup * 1_000_000_000;
    let mut senders = Vec::new();
    for (i, ws) in links.into_iter().enumerate() {
        let sent = sent.clone();
        let size = args.size;
        // Staggered, so the wrappers do not all send in the same millisecond.
        let first = start + period.mul_f64(i as f64 / args.sessions as f64);
        senders.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let drain = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
            let mut tick = tokio::time::interval_at(first, period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let mut seq = 0u64;
            while tick.tick().await < end {
                seq += 1;
                if sink
                    .send(Message::Text(update_frame(seq, stamped_text(size)).into()))
                    .await
                    .is_err()
                {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            // Keep the link open until the stream is read; dropped by the caller.
            (sink, drain)
        }));
    }

    let tck = clk_tck() as f64;
    let hub_ticks_at_warm = Arc::new(AtomicU64::new(0));
    {
        let (t, pid) = (hub_ticks_at_warm.clone(), hub.pid);
        let at = start + Duration::from_secs(args.warmup);
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            t.store(cpu_ticks(pid).unwrap_or(0), Ordering::Relaxed);
        });
    }
    let mut samples = Vec::new();
    let mut dump = Vec::new();
    let mut received = 0u64;
    let mut hub_ticks_at_end = None;
    let deadline = end + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        if now >= end && hub_ticks_at_end.is_none() {
            hub_ticks_at_end = Some(cpu_ticks(hub.pid)?);
        }
        if now >= end && received >= sent.load(Ordering::Relaxed) {
            break;
        }
        if now >= deadline {
            break;
        }
        let ev = match tokio::time::timeout_at(deadline.min(now + Duration::from_millis(500)), sse.next()).await {
            Ok(Ok(Some(ev))) => ev,
            Ok(Ok(None)) => anyhow::bail!("the event stream ended"),
            Ok(Err(e)) => return Err(e),
            Err(_) => continue,
        };
        let at = unix_nanos();
        if let Some(ts) = find_ts(&ev.data) {
            received += 1;
            if ts >= warm_wall {
                samples.push(at.saturating_sub(ts));
                if args.dump.is_some() {
                    dump.push((ts, at.saturating_sub(ts)));
                }
            }
        }
    }
    let mut keep = Vec::new();
    for s in senders {
        keep.push(s.await?);
    }
    let rss = rss_kb(hub.pid)?;
    let sent = sent.load(Ordering::Relaxed);
    let hub_cpu_s = (hub_ticks_at_end
        .unwrap_or(0)
        .saturating_sub(hub_ticks_at_warm.load(Ordering::Relaxed))) as f64
        / tck;
    if let Some(path) = &args.dump {
        let text: String = dump.iter().map(|(ts, l)| format!("{ts} {l}\n")).collect();
        std::fs::write(path, text)?;
    }
    let s = Summary::new(samples);
    let rows = vec![
        Row::new(
            "latency",
            format!("ingest→SSE p50 @ {} msg/s", args.rate),
            fmt_ns(s.percentile(50.0)),
            "-",
            "",
        ),
        Row::new(
            "latency",
            format!("ingest→SSE p99 @ {} msg/s", args.rate),
            fmt_ns(s.percentile(99.0)),
            "≤ 2 ms",
            "25–50 ms",
        ),
    ];
    let detail = vec![
        Row::new(
            "latency",
            "p90 / max",
            format!("{} / {}", fmt_ns(s.percentile(90.0)), fmt_ns(s.max())),
            "",
            "",
        ),
        Row::new("latency", "samples (after warm-up)", s.len().to_string(), "", ""),
        Row::new(
            "latency",
            "sent / seen on SSE",
            format!("{sent} / {received}"),
            "equal",
            "",
        ),
        Row::new(
            "latency",
            "hub CPU while measured",
            format!(
                "{:.0}% of one core ({:.0} µs/msg)",
                100.0 * hub_cpu_s / args.seconds as f64,
                hub_cpu_s * 1e6 / (args.rate * args.seconds) as f64
            ),
            "",
            "",
        ),
        Row::new(
            "latency",
            "hub VmRSS after",
            format!("{:.1} MB", rss as f64 / 1024.0),
            "",
            "",
        ),
    ];
    print_table("latency", &[rows.clone(), detail].concat());
    drop(keep);
    Ok(rows)
}
