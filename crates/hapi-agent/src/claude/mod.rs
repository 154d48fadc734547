//! The Claude Code driver: runs `claude` with its stdio control protocol
//! (`--permission-prompt-tool stdio`), so tool approvals come to us as
//! `can_use_tool` requests on the same pipe as the conversation.
//!
//! One task owns the process: it reads stdout lines, takes commands, writes stdin,
//! and escalates a stop (close stdin, then SIGTERM, then SIGKILL to the process
//! group). The protocol translation itself lives in [`stream`].
pub mod stream;
pub mod usage;

use std::process::ExitStatus;
use std::time::Duration;

use hapi_protocol::{AgentKind, SessionCommand, SessionUpdate};
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::Instrument;

use crate::process::{STOP_GRACE, TERM_GRACE, signal_group, spawn_in_group};
use crate::{AgentDriver, AgentError, AgentExit, RunningAgent, SpawnSpec};
use stream::{Action, ClaudeStream};

/// Flags that put Claude Code into the stdio control protocol.
pub const PROTOCOL_ARGS: [&str; 7] = [
    "--input-format",
    "stream-json",
    "--output-format",
    "stream-json",
    "--verbose",
    "--permission-prompt-tool",
    "stdio",
];

/// How long to keep reading stdout after the process exited (a grandchild may
/// still hold the pipe open).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// Drives Claude Code over stream-json.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClaudeDriver;

impl AgentDriver for ClaudeDriver {
    fn kind(&self) -> AgentKind {
        AgentKind::Claude
    }

    fn spawn(&self, spec: SpawnSpec) -> Result<RunningAgent, AgentError> {
        let mut child = spawn_in_group(&spec, &PROTOCOL_ARGS)?;
        let pid = child.id().unwrap_or_default();
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(AgentError::Internal("claude's pipes were not created".into()));
        };
        tracing::info!(pid, program = %spec.program.display(), cwd = %spec.cwd.display(), "claude started");
        let (updates_tx, updates) = mpsc::channel(1024);
        let (commands, commands_rx) = mpsc::channel(256);
        let (exit_tx, exit) = oneshot::channel();
        let process = ClaudeProcess {
            pid,
            stdin: Some(stdin),
            stream: ClaudeStream::new(),
            updates: updates_tx,
            stopping: false,
        };
        tokio::spawn(process.run(child, stdout, commands_rx, exit_tx).in_current_span());
        Ok(RunningAgent {
            pid,
            updates,
            commands,
            exit,
        })
    }
}

struct ClaudeProcess {
    pid: u32,
    stdin: Option<ChildStdin>,
    stream: ClaudeStream,
    updates: mpsc::Sender<SessionUpdate>,
    stopping: bool,
}

impl ClaudeProcess {
    async fn run(
        mut self,
        mut child: Child,
        stdout: ChildStdout,
        mut commands: mpsc::Receiver<SessionCommand>,
        exit_tx: oneshot::Sender<AgentExit>,
    ) {
        self.write(&ClaudeStream::initialize_request()).await;
        let mut stdout = BufReader::new(stdout);
        let mut line = Vec::new();
        let mut stdout_open = true;
        let mut commands_open = true;
        let mut deadline: Option<Instant> = None;
        let mut terminated = false;
        let status = loop {
            tokio::select! {
                read = stdout.read_until(b'\n', &mut line), if stdout_open => {
                    match read {
                        Ok(0) => stdout_open = false,
                        Ok(_) => self.on_line(&line).await,
                        Err(err) => {
                            tracing::warn!(%err, "reading claude's stdout failed");
                            stdout_open = false;
                        }
                    }
                    line.clear();
                }
                command = commands.recv(), if commands_open => match command {
                    Some(SessionCommand::Stop) | None => {
                        commands_open = command.is_some();
                        if !self.stopping {
                            tracing::info!(pid = self.pid, "stopping claude: closing its stdin");
                            self.stopping = true;
                            self.stdin = None;
                            deadline = Some(Instant::now() + STOP_GRACE);
                        }
                    }
                    Some(command) => {
                        let actions = self.stream.on_command(command);
                        self.apply(actions).await;
                    }
                },
                status = child.wait() => break status,
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    if terminated {
                        tracing::warn!(pid = self.pid, "claude ignored SIGTERM; sending SIGKILL to its group");
                        signal_group(self.pid, Signal::SIGKILL);
                        deadline = None;
                    } else {
                        tracing::info!(pid = self.pid, "claude did not exit after stdin closed; sending SIGTERM to its group");
                        signal_group(self.pid, Signal::SIGTERM);
                        terminated = true;
                        deadline = Some(Instant::now() + TERM_GRACE);
                    }
                }
            }
        };
        if stdout_open {
            self.drain(&mut stdout).await;
        }
        if self.stopping {
            signal_group(self.pid, Signal::SIGKILL);
        }
        let exit = AgentExit {
            reason: if self.stopping { "stopped" } else { "exited" }.to_owned(),
            exit_code: exit_code(&status),
        };
        tracing::info!(pid = self.pid, reason = %exit.reason, exit_code = ?exit.exit_code, "claude ended");
        let ended = SessionUpdate::SessionEnded {
            reason: exit.reason.clone(),
            exit_code: exit.exit_code,
        };
        let _ = self.updates.send(ended).await;
        let _ = exit_tx.send(exit);
    }

    /// Reads what is left on stdout after the process exited, for a bounded time.
    async fn drain(&mut self, stdout: &mut BufReader<ChildStdout>) {
        let until = Instant::now() + DRAIN_AFTER_EXIT;
        let mut line = Vec::new();
        loop {
            match timeout(
                until.saturating_duration_since(Instant::now()),
                stdout.read_until(b'\n', &mut line),
            )
            .await
            {
                Ok(Ok(n)) if n > 0 => self.on_line(&line).await,
                _ => break,
            }
            line.clear();
        }
    }

    async fn on_line(&mut self, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let actions = self.stream.on_line(&text);
        self.apply(actions).await;
    }

    async fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Update(update) => {
                    if self.updates.send(update).await.is_err() {
                        tracing::debug!("update receiver gone; dropping update");
                    }
                }
                Action::Send(line) => self.write(&line).await,
            }
        }
    }

    async fn write(&mut self, message: &Value) {
        let Some(stdin) = self.stdin.as_mut() else {
            tracing::warn!("claude's stdin is closed; dropping a line for it");
            return;
        };
        let mut bytes = message.to_string().into_bytes();
        bytes.push(b'\n');
        let written = async {
            stdin.write_all(&bytes).await?;
            stdin.flush().await
        }
        .await;
        if let Err(err) = written {
            tracing::warn!(%err, "writing to claude's stdin failed; closing it");
            self.stdin = None;
        }
    }
}

fn exit_code(status: &std::io::Result<ExitStatus>) -> Option<i32> {
    match status {
        Ok(status) => status.code(),
        Err(err) => {
            tracing::warn!(%err, "waiting for claude failed");
            None
        }
    }
}
