//! `fake-anthropic`: the scripted Anthropic Messages API as a process, for tests
//! that run Claude Code (or anything else) in other processes.
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use hapi_testkit::{Script, start_fake_anthropic_on};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(about = "Scripted fake Anthropic Messages API on 127.0.0.1")]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Write the bound port here (atomically: temp file, then rename).
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// JSON file with a script (see `hapi_testkit::Script`); the default script otherwise.
    #[arg(long)]
    script: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let script = match &args.script {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => Script::default(),
    };
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let server = start_fake_anthropic_on(SocketAddr::from(([127, 0, 0, 1], args.port)), script).await?;
    if let Some(path) = &args.port_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, server.addr().port().to_string()).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    }
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    server.shutdown().await;
    Ok(())
}
