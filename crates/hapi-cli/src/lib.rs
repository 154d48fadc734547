//! `hapi`: run the hub, print credentials, run agent sessions, and manage the runner.
//!
//! A library as well as a binary, so that the desktop app is the same program:
//! it embeds the hub ([`hub::HubInstance`]) and the runner ([`runner::run_embedded`])
//! from here, and answers `hapi …` subcommands itself ([`main_from`]) when its
//! runner spawns sessions with it.
mod audit;
mod backup;
mod claude;
pub mod config;
mod doctor;
pub mod hub;
mod hub_client;
mod rotate;
mod runbook;
pub mod runner;

use std::ffi::OsString;

use anyhow::Result;
use clap::{CommandFactory as _, Parser, Subcommand};

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
    /// Settings: `hapi config check` validates every HAPI_* variable.
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
    /// The runner: a background daemon that keeps sessions alive and tracks them.
    Runner {
        #[command(subcommand)]
        command: runner::RunnerCommand,
    },
    /// The audit log: approval decisions, mutating tool calls, policy changes.
    Audit(audit::AuditArgs),
    /// Backups of the database: make, list, verify and restore them.
    Backup {
        #[command(subcommand)]
        command: backup::BackupCommand,
    },
    /// Check the hub, runner, database, owner token, phone access, approvals,
    /// backups and disk; print what is wrong and what to do (docs/runbooks/).
    Doctor(doctor::DoctorArgs),
    /// Print a runbook (what to do when something fails); without a name, list them.
    Runbook(runbook::RunbookArgs),
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Print the owner token (created on first use) for signing in to the UI.
    Token,
    /// Replace the owner token with a new one and print it (the hub must be stopped).
    Rotate,
}

/// Runs `hapi` with these arguments (the first is the program name) and returns
/// the exit code.
pub fn main_from(args: impl IntoIterator<Item = OsString>) -> Result<i32> {
    let cli = Cli::parse_from(args);
    // A session wrapper relays one agent: one thread is plenty, and with ten or
    // more wrappers running, every extra thread's memory counts.
    let runtime = match cli.command {
        Command::Claude(_) => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
    };
    match cli.command {
        Command::Hub(args) => config::refuse_unknown()
            .and_then(|()| runtime.block_on(hub::run(args)))
            .map(|()| 0),
        Command::Auth {
            command: AuthCommand::Token,
        } => hub::print_token().map(|()| 0),
        Command::Auth {
            command: AuthCommand::Rotate,
        } => rotate::rotate(),
        Command::Config { command } => config::run(command),
        Command::Claude(args) => {
            let code = runtime.block_on(claude::run(args));
            // The agent's stdio readers may still block; exiting must not wait for them.
            runtime.shutdown_background();
            code
        }
        Command::Runner { command } => {
            let code = runtime.block_on(runner::run(command))?;
            drop(runtime);
            Ok(code)
        }
        Command::Backup { command } => backup::run(command),
        Command::Audit(args) => audit::run(args, &runtime),
        Command::Doctor(args) => doctor::run(args, &runtime),
        Command::Runbook(args) => runbook::run(args),
    }
}

/// Whether these arguments (after the program name) are a `hapi` command line
/// rather than a desktop-app launch: the app answers CLI subcommands itself.
pub fn is_cli_invocation(args: &[OsString]) -> bool {
    match args.get(1).and_then(|a| a.to_str()) {
        None => false,
        Some(first) => {
            Cli::command().get_subcommands().any(|c| c.get_name() == first)
                || matches!(first, "--help" | "-h" | "--version" | "-V" | "help")
        }
    }
}

/// Logs go to stderr, so stdout stays for what a command prints for scripts.
pub(crate) fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HAPI_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
