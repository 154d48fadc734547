//! `idle`: memory and CPU of a `hapi hub` process doing nothing.
use std::time::Duration;

use anyhow::Result;

use crate::hub::{Hub, HubMode};
use crate::procs::{Bins, clk_tck, cpu_ticks, rss_kb, status_field};
use crate::report::{Row, print_table};

#[derive(clap::Args, Clone, Debug)]
pub struct IdleArgs {
    /// Seconds to wait after start before measuring memory.
    #[arg(long, default_value_t = 5)]
    pub settle: u64,
    /// Idle seconds over which CPU is counted.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

pub async fn run(args: &IdleArgs, bins: &Bins) -> Result<Vec<Row>> {
    println!(
        "\n# idle: release `hapi hub`, {} s settle, {} s idle",
        args.settle, args.seconds
    );
    let hub = Hub::start(HubMode::Process, bins).await?;
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let rss = rss_kb(hub.pid)?;
    let t0 = cpu_ticks(hub.pid)?;
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let ticks = cpu_ticks(hub.pid)? - t0;
    let rss_end = rss_kb(hub.pid)?;
    let hwm = status_field(hub.pid, "VmHWM")?;
    let threads = status_field(hub.pid, "Threads")?;
    let tck = clk_tck();
    let rows = vec![
        Row::new(
            "idle",
            "hub VmRSS after start",
            format!("{:.1} MB", rss as f64 / 1024.0),
            "≤ 15 MB",
            "85–110 MB",
        ),
        Row::new(
            "idle",
            format!("hub CPU ticks in {} idle s", args.seconds),
            format!("{ticks} (of {} per s)", tck),
            "~0",
            "-",
        ),
    ];
    let detail = vec![
        Row::new(
            "idle",
            "VmRSS at end / VmHWM",
            format!("{:.1} MB / {:.1} MB", rss_end as f64 / 1024.0, hwm as f64 / 1024.0),
            "",
            "",
        ),
        Row::new("idle", "threads", threads.to_string(), "", ""),
    ];
    print_table("idle", &[rows.clone(), detail].concat());
    Ok(rows)
}
