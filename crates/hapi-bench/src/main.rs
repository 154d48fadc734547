//! `hapi-bench`: throughput, latency, replay and memory benchmarks of the hub and
//! the `hapi` processes. Only loopback is used; every process started is stopped
//! (by process group) on exit and on error. See `docs/benchmarks.md`.
mod approval;
mod e2e;
mod hub;
mod idle;
mod ingest;
mod latency;
mod procs;
mod replay;
mod report;
mod stats;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use hub::HubMode;
use report::{Row, print_table};

#[derive(Parser)]
#[command(
    name = "hapi-bench",
    about = "Benchmarks of the HAPI hub and wrappers (loopback only)"
)]
struct Cli {
    /// Where the hub under test runs for ingest, latency, approval and replay.
    #[arg(long, value_enum, default_value_t = HubMode::Process, global = true)]
    hub: HubMode,
    /// Directory holding the release `hapi` and `fake-claude` (default: next to this binary).
    #[arg(long, global = true, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Committed updates per second with 10 pipelining wrappers.
    Ingest(ingest::IngestArgs),
    /// Ingest → SSE latency at a paced rate.
    Latency(latency::LatencyArgs),
    /// Permission request → SSE → decision → Decide round trips.
    Approval(approval::ApprovalArgs),
    /// Resuming 10,000 events over SSE and WebSocket.
    Replay(replay::ReplayArgs),
    /// Memory and CPU of an idle `hapi hub`.
    Idle(idle::IdleArgs),
    /// hapi hub + 10 `hapi claude` (fake-claude flood), watched over SSE.
    E2e(e2e::E2eArgs),
    /// Everything above, in sequence, with default settings.
    All,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let bins = procs::Bins::find(cli.bin_dir.as_deref())?;
    println!(
        "hapi-bench: {} cores, load average {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        procs::loadavg()
    );
    let mode = cli.hub;
    let rows: Vec<Row> = match cli.command {
        Cmd::Ingest(a) => ingest::run(&a, mode, &bins).await?,
        Cmd::Latency(a) => latency::run(&a, mode, &bins).await?,
        Cmd::Approval(a) => approval::run(&a, mode, &bins).await?,
        Cmd::Replay(a) => replay::run(&a, mode, &bins).await?,
        Cmd::Idle(a) => idle::run(&a, &bins).await?,
        Cmd::E2e(a) => e2e::run(&a, mode, &bins).await?,
        Cmd::All => {
            let mut rows = Vec::new();
            fn defaults<A: clap::Args>(name: &str) -> A {
                Wrap::<A>::parse_from([name]).args
            }
            macro_rules! step {
                ($name:literal, $e:expr) => {{
                    match $e.await {
                        Ok(r) => rows.extend(r),
                        Err(e) => {
                            eprintln!("hapi-bench: {} failed: {e:#}", $name);
                            rows.push(Row::new($name, "FAILED", format!("{e:#}"), "", ""));
                        }
                    }
                }};
            }
            step!("ingest", ingest::run(&defaults("ingest"), mode, &bins));
            step!("latency", latency::run(&defaults("latency"), mode, &bins));
            step!("approval", approval::run(&defaults("approval"), mode, &bins));
            step!("replay", replay::run(&defaults("replay"), mode, &bins));
            step!("idle", idle::run(&defaults("idle"), &bins));
            step!("e2e", e2e::run(&defaults("e2e"), HubMode::Process, &bins));
            rows
        }
    };
    print_table(&format!("summary (load average now {})", procs::loadavg()), &rows);
    Ok(())
}

/// Parses one subcommand's arguments on their own (for `all`'s defaults).
#[derive(Parser)]
struct Wrap<A: clap::Args> {
    #[command(flatten)]
    args: A,
}
