//! `ingest`: how many updates per second the hub commits and acknowledges, with
//! 10 wrappers pipelining as fast as they can.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use hapi_protocol::{HubFrame, SessionFrame, SessionUpdate};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use crate::hub::{Hub, HubMode, Ws};
use crate::procs::{Bins, clk_tck, cpu_ticks, rss_kb};
use crate::report::{Row, print_table};

#[derive(clap::Args, Clone, Debug)]
pub struct IngestArgs {
    /// Updates in total, over all sessions.
    #[arg(long, default_value_t = 200_000)]
    pub messages: u64,
    /// Simulated wrappers (one session each).
    #[arg(long, default_value_t = 10)]
    pub sessions: u64,
    /// Unacknowledged updates a wrapper keeps in flight.
    #[arg(long, default_value_t = 1024)]
    pub window: u64,
    /// Characters of text per update.
    #[arg(long, default_value_t = 400)]
    pub size: usize,
}

/// The serialized `Update` frame for `client_seq`.
pub fn update_frame(client_seq: u64, text: String) -> String {
    serde_json::to_string(&SessionFrame::Update {
        client_seq,
        update: SessionUpdate::AgentMessageChunk { text },
    })
    .unwrap_or_default()
}

/// Sends `n` updates as fast as the window allows and returns once the hub has
/// acknowledged all of them. Gives up if no ack arrives for 30 s.
pub async fn blast(ws: Ws, n: u64, window: u64, size: usize) -> Result<Duration> {
    let (mut sink, mut stream) = ws.split();
    let acked = Arc::new(AtomicU64::new(0));
    let notify = Arc::new(Notify::new());
    let reader = {
        let (acked, notify) = (acked.clone(), notify.clone());
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if let Message::Text(t) = msg
                    && let Ok(HubFrame::Ack { client_seq }) = serde_json::from_str::<HubFrame>(&t)
                {
                    acked.fetch_max(client_seq, Ordering::AcqRel);
                    notify.notify_one();
                    if client_seq >= n {
                        break;
                    }
                }
            }
            notify.notify_one();
        })
    };
    let pad = "x".repeat(size);
    let start = Instant::now();
    let mut sent = 0u64;
    let result = async {
        while sent < n {
            let in_flight = sent - acked.load(Ordering::Acquire).min(sent);
            if in_flight >= window {
                tokio::time::timeout(Duration::from_secs(30), notify.notified())
                    .await
                    .context("no ack from the hub for 30 s")?;
                if reader.is_finished() && acked.load(Ordering::Acquire) < n {
                    bail!("the hub closed the session link");
                }
                continue;
            }
            let k = (window - in_flight).min(128).min(n - sent);
            for _ in 0..k {
                sent += 1;
                sink.feed(Message::Text(update_frame(sent, pad.clone()).into())).await?;
            }
            sink.flush().await?;
        }
        while acked.load(Ordering::Acquire) < n {
            tokio::time::timeout(Duration::from_secs(30), notify.notified())
                .await
                .context("no ack from the hub for 30 s")?;
            if reader.is_finished() && acked.load(Ordering::Acquire) < n {
                bail!("the hub closed the session link");
            }
        }
        Ok(start.elapsed())
    }
    .await;
    let _ = sink.send(Message::Close(None)).await;
    reader.abort();
    result
}

pub async fn run(args: &IngestArgs, mode: HubMode, bins: &Bins) -> Result<Vec<Row>> {
    println!(
        "\n# ingest: {} updates of {} chars from {} wrappers, window {} (hub: {:?})",
        args.messages, args.size, args.sessions, args.window, mode
    );
    let hub = Hub::start(mode, bins).await?;
    let per = args.messages / args.sessions;
    let total = per * args.sessions;
    let mut sessions = Vec::new();
    let mut links = Vec::new();
    for _ in 0..args.sessions {
        let s = hub.create_session().await?;
        links.push(hub.wrapper(&s).await?);
        sessions.push(s);
    }
    // Let the connect-time writes (state changes, outbox reads) settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hub_ticks0 = cpu_ticks(hub.pid)?;
    let self_ticks0 = cpu_ticks(std::process::id())?;
    let start = Instant::now();
    let tasks: Vec<_> = links
        .into_iter()
        .map(|ws| tokio::spawn(blast(ws, per, args.window, args.size)))
        .collect();
    let mut slowest = Duration::ZERO;
    for t in tasks {
        slowest = slowest.max(t.await??);
    }
    let wall = start.elapsed();
    let hub_ticks = cpu_ticks(hub.pid)? - hub_ticks0;
    let self_ticks = cpu_ticks(std::process::id())? - self_ticks0;
    let rss = rss_kb(hub.pid)?;
    // Every acknowledged update must be in the database.
    let mut committed = 0;
    for s in &sessions {
        committed += hub.last_seq(&s.session.id).await?;
    }
    let tck = clk_tck() as f64;
    let rate = total as f64 / wall.as_secs_f64();
    let hub_cpu_s = hub_ticks as f64 / tck;
    let us_per_msg = hub_cpu_s * 1e6 / total as f64;
    let bench_cpu_s = self_ticks as f64 / tck;
    let inproc_note = if mode != HubMode::Process {
        " (hub and clients share this process)"
    } else {
        ""
    };

    let mut rows = vec![
        Row::new(
            "ingest",
            "committed+acked msg/s",
            format!("{rate:.0}"),
            "≥ 25,000",
            "~2,100 (saturated)",
        ),
        Row::new(
            "ingest",
            format!("hub CPU per msg{inproc_note}"),
            format!("{us_per_msg:.1} µs"),
            "-",
            "~440 µs",
        ),
    ];
    let detail = vec![
        Row::new(
            "ingest",
            "messages acked / committed (last_seq sum)",
            format!("{total} / {committed}"),
            "equal",
            "",
        ),
        Row::new("ingest", "wall time", format!("{:.2} s", wall.as_secs_f64()), "", ""),
        Row::new(
            "ingest",
            "hub CPU (utime+stime)",
            format!(
                "{hub_cpu_s:.2} s = {:.0}% of one core",
                100.0 * hub_cpu_s / wall.as_secs_f64()
            ),
            "",
            "",
        ),
        Row::new(
            "ingest",
            "bench clients CPU",
            if mode == HubMode::Process {
                format!("{bench_cpu_s:.2} s")
            } else {
                "(same process)".into()
            },
            "",
            "",
        ),
        Row::new(
            "ingest",
            "hub VmRSS after",
            format!("{:.1} MB", rss as f64 / 1024.0),
            "",
            "",
        ),
    ];
    print_table("ingest", &[rows.clone(), detail].concat());
    if committed != total {
        bail!("acked {total} updates but only {committed} are committed");
    }
    rows.push(Row::new("ingest", "acked = committed", "yes", "yes", ""));
    Ok(rows)
}
