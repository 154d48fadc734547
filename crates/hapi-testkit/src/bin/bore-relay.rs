//! `bore-relay`: a real bore server (`bore_cli::server::Server`, the code behind
//! `bore server`) as a process, so that an end-to-end test can run it in a
//! network namespace of its own, the way a user runs it on a VPS. Built with
//! the workspace, so no test depends on a `bore` installed by hand.
use std::net::IpAddr;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(about = "A bore server (control port 7835) for the tests")]
struct Args {
    /// Secret the clients must prove they know (`bore server --secret`).
    #[arg(long)]
    secret: Option<String>,
    /// Lowest public port handed out.
    #[arg(long, default_value_t = 47_100)]
    min_port: u16,
    /// Highest public port handed out.
    #[arg(long, default_value_t = 47_399)]
    max_port: u16,
    /// Address of the control port and of the public ports.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Tests read the log (a file): peers as `addr=IP:PORT`, no colour codes.
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    anyhow::ensure!(args.min_port <= args.max_port, "--min-port is above --max-port");
    let mut server = bore_cli::server::Server::new(args.min_port..=args.max_port, args.secret.as_deref());
    server.set_bind_addr(args.bind);
    server.set_bind_tunnels(args.bind);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // `listen` binds the control port itself and only returns on an error
    // (the port taken, say): that error is the process's exit status.
    tokio::select! {
        result = server.listen() => result,
        _ = term.recv() => Ok(()),
        _ = int.recv() => Ok(()),
    }
}
