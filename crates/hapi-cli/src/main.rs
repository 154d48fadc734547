//! `hapi`: run the hub, print credentials, run agent sessions, and manage the runner.
mod claude;
mod hub;
mod hub_client;
mod runner;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "hapi", version = hapi_protocol::VERSION, about = "Run, watch and steer local AI coding agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub (HTTP API, live events and the web UI) in the foreground.
    Hub(hub::HubArgs),
    /// Credentials.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Run a Claude Code session driven through the hub, in the foreground.
    Claude(claude::ClaudeArgs),
    /// The runner: a background daemon that keeps sessions alive and tracks them.
    Runner {
        #[command(subcommand)]
        command: runner::RunnerCommand,
    },
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Print the owner token (created on first use) for signing in to the UI.
    Token,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // A session wrapper relays one agent: one thread is plenty, and with ten or
    // more wrappers running, every extra thread's memory counts.
    let runtime = match cli.command {
        Command::Claude(_) => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
    };
    match cli.command {
        Command::Hub(args) => runtime.block_on(hub::run(args)),
        Command::Auth {
            command: AuthCommand::Token,
        } => hub::print_token(),
        Command::Claude(args) => {
            let code = runtime.block_on(claude::run(args))?;
            std::process::exit(code);
        }
        Command::Runner { command } => {
            let code = runtime.block_on(runner::run(command))?;
            drop(runtime);
            std::process::exit(code);
        }
    }
}

/// Logs go to stderr, so stdout stays for what a command prints for scripts.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HAPI_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("cannot install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
