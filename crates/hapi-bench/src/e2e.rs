//! `e2e`: `hapi hub` + 10 `hapi claude` wrappers around flooding fake-claudes,
//! watched over SSE.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::hub::{Hub, HubMode, find_ts, unix_nanos};
use crate::procs::{Bins, ChildGuard, children, clk_tck, cpu_ticks, pss_kb, rss_kb};
use crate::report::{Row, print_table};
use crate::stats::{Summary, fmt_ns};

#[derive(clap::Args, Clone, Debug)]
pub struct E2eArgs {
    /// Aggregate rates to run, msg/s over all wrappers.
    #[arg(long, value_delimiter = ',', default_value = "1000,500")]
    pub rates: Vec<u64>,
    /// `hapi claude` processes.
    #[arg(long, default_value_t = 10)]
    pub wrappers: u64,
    /// Seconds measured after the warm-up.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Seconds of warm-up, not measured.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
}

pub async fn run(args: &E2eArgs, mode: HubMode, bins: &Bins) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &rate in &args.rates {
        rows.extend(run_rate(args, rate, mode, bins).await?);
    }
    Ok(rows)
}

async fn run_rate(args: &E2eArgs, rate: u64, mode: HubMode, bins: &Bins) -> Result<Vec<Row>> {
    let each = (rate / args.wrappers).max(1);
    let count = each * (args.warmup + args.seconds);
    let expected = count * args.wrappers;
    println!(
        "\n# e2e @ {rate} msg/s: hub ({mode:?}) + {} × `hapi claude` (fake-claude flood, {each} msg/s × {count} each)",
        args.wrappers
    );
    let hub = Hub::start(mode, bins).await?;
    let mut sse = hub.sse_with_ticket().await?;
    let work = tempfile::Builder::new().prefix("hapi-bench-e2e-").tempdir()?;
    let mut wrappers: Vec<ChildGuard> = Vec::new();
    for i in 0..args.wrappers {
        let cwd = work.path().join(format!("w{i}"));
        std::fs::create_dir_all(&cwd)?;
        let log = std::fs::File::create(work.path().join(format!("wrapper-{i}.log")))?;
        let mut cmd = Command::new(&bins.hapi);
        cmd.arg("claude")
            .arg("--cwd")
            .arg(&cwd)
            .arg("--prompt")
            .arg("flood")
            .env("HAPI_HOME", &hub.home)
            .env("HAPI_CLAUDE_PATH", &bins.fake_claude)
            .env("FAKE_CLAUDE_MODE", "flood")
            .env("FAKE_CLAUDE_RATE", each.to_string())
            .env("FAKE_CLAUDE_SIZE", "400")
            .env("FAKE_CLAUDE_COUNT", count.to_string())
            .env_remove("HAPI_HUB_URL")
            .env_remove("CLI_API_TOKEN")
            // A benchmark must not leave a runner daemon behind in its temp home.
            .env("HAPI_NO_RUNNER_AUTOSTART", "1")
            .env("HAPI_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if mode != HubMode::Process {
            // The hub is inside this process and writes no hub.json.
            cmd.env("HAPI_HUB_URL", &hub.url).env("CLI_API_TOKEN", &hub.token);
        }
        wrappers.push(ChildGuard::spawn(cmd, "hapi claude")?);
    }
    let pids: Vec<u32> = wrappers.iter().map(ChildGuard::pid).collect();

    let tck = clk_tck() as f64;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.warmup + args.seconds + 30);
    let mut samples: Vec<(u64, u64)> = Vec::with_capacity(expected as usize);
    let mut next_probe = started + Duration::from_secs(args.warmup);
    let mut rss_max_total = 0u64;
    let mut pss_max_total = 0u64;
    let mut rss_at_max = (0u64, 0u64, 0u64); // hub, wrappers, agents
    let mut cpu0: Option<(Instant, u64, u64)> = None;
    let mut cpu1: Option<(Instant, u64, u64)> = None;
    let wrapper_ticks = |pids: &[u32]| pids.iter().map(|p| cpu_ticks(*p).unwrap_or(0)).sum::<u64>();
    while (samples.len() as u64) < expected && Instant::now() < deadline {
        let now = Instant::now();
        if now >= next_probe && (samples.len() as u64) < expected * 95 / 100 {
            next_probe = now + Duration::from_secs(2);
            let hub_rss = rss_kb(hub.pid).unwrap_or(0);
            let wr: u64 = pids.iter().map(|p| rss_kb(*p).unwrap_or(0)).sum();
            let agents: u64 = pids
                .iter()
                .flat_map(|p| children(*p))
                .map(|c| rss_kb(c).unwrap_or(0))
                .sum();
            if hub_rss + wr > rss_max_total {
                rss_max_total = hub_rss + wr;
                rss_at_max = (hub_rss, wr, agents);
            }
            let pss = pss_kb(hub.pid).unwrap_or(0) + pids.iter().map(|p| pss_kb(*p).unwrap_or(0)).sum::<u64>();
            pss_max_total = pss_max_total.max(pss);
            let c = (now, cpu_ticks(hub.pid).unwrap_or(0), wrapper_ticks(&pids));
            if cpu0.is_none() {
                cpu0 = Some(c);
            } else {
                cpu1 = Some(c);
            }
        }
        let ev = match tokio::time::timeout(Duration::from_millis(500), sse.next()).await {
            Ok(Ok(Some(ev))) => ev,
            Ok(Ok(None)) => bail!("the event stream ended"),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                for w in wrappers.iter_mut() {
                    if let Some(status) = w.exited() {
                        bail!(
                            "a `hapi claude` exited early ({status}); logs in {}",
                            work.path().display()
                        );
                    }
                }
                continue;
            }
        };
        let at = unix_nanos();
        if let Some(ts) = find_ts(&ev.data) {
            samples.push((ts, at.saturating_sub(ts)));
        }
    }
    let received = samples.len() as u64;
    drop(wrappers);
    let first_ts = samples.iter().map(|s| s.0).min().unwrap_or(0);
    let warm = first_ts + args.warmup * 1_000_000_000;
    let s = Summary::new(samples.iter().filter(|s| s.0 >= warm).map(|s| s.1).collect());
    let (cpu_hub, cpu_wr, cpu_secs) = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (
            (b.1 - a.1) as f64 / tck,
            (b.2 - a.2) as f64 / tck,
            (b.0 - a.0).as_secs_f64(),
        ),
        _ => (0.0, 0.0, 1.0),
    };
    let mb = |kb: u64| format!("{:.1} MB", kb as f64 / 1024.0);
    let (hapi_p99, hapi_rss) = if rate >= 1000 {
        ("0.9–4.0 s", "≈1.2 GB (hub+runner+10)")
    } else {
        ("28–31 ms", "")
    };
    let target_p99 = if rate >= 1000 { "≤ 5 ms" } else { "-" };
    let suffix = if mode == HubMode::Process {
        String::new()
    } else {
        format!(" [{mode:?} hub: RSS/CPU include the bench]")
    };
    let rows = vec![
        Row::new(
            "e2e",
            format!("p50 @ {rate} msg/s{suffix}"),
            fmt_ns(s.percentile(50.0)),
            "-",
            "",
        ),
        Row::new(
            "e2e",
            format!("p99 @ {rate} msg/s{suffix}"),
            fmt_ns(s.percentile(99.0)),
            target_p99,
            hapi_p99,
        ),
        Row::new(
            "e2e",
            format!(
                "RSS hub + {} wrappers @ {rate} msg/s (no runner yet){suffix}",
                args.wrappers
            ),
            mb(rss_max_total),
            if rate >= 1000 { "≤ 80 MB (incl. runner)" } else { "-" },
            hapi_rss,
        ),
    ];
    let detail = vec![
        Row::new(
            "e2e",
            "PSS hub + wrappers (shared binary pages counted once)",
            mb(pss_max_total),
            "",
            "",
        ),
        Row::new("e2e", "latency", s.line(), "", ""),
        Row::new(
            "e2e",
            "messages seen / expected",
            format!("{received} / {expected}"),
            "equal",
            "",
        ),
        Row::new(
            "e2e",
            "RSS hub / wrappers (sum) / fake-claudes (sum, not counted)",
            format!("{} / {} / {}", mb(rss_at_max.0), mb(rss_at_max.1), mb(rss_at_max.2)),
            "",
            "",
        ),
        Row::new(
            "e2e",
            "CPU hub / wrappers (sum), % of one core",
            format!("{:.0}% / {:.0}%", 100.0 * cpu_hub / cpu_secs, 100.0 * cpu_wr / cpu_secs),
            "",
            "",
        ),
    ];
    print_table(&format!("e2e @ {rate} msg/s"), &[rows.clone(), detail].concat());
    if received < expected {
        eprintln!("hapi-bench: e2e saw {received} of {expected} messages before the deadline");
    }
    drop(sse);
    drop(hub);
    Ok(rows)
}
