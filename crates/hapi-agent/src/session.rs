//! [`run_session`]: one agent process relayed to the hub, from spawn to the last
//! acknowledged update.
//!
//! The session forwards driver updates to the link instead of handing the
//! driver's channel over directly, so it can put the initial prompt's
//! `UserMessage` first, notice `SessionEnded`, and report spawn failures through
//! the same path as everything else.
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hapi_protocol::{AgentKind, SessionCommand, SessionUpdate};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::link::{Link, LinkConfig, LinkProgress};
use crate::{AgentError, SpawnSpec, driver_for};

/// How long to wait, after the agent ended, for the hub to acknowledge everything.
pub const FINAL_ACK_WAIT: Duration = Duration::from_secs(10);

/// What to run and where to report it.
#[derive(Clone)]
pub struct SessionOptions {
    /// Hub base URL, `http://127.0.0.1:PORT`.
    pub hub_url: String,
    /// Session id from `POST /api/sessions`.
    pub session_id: String,
    /// Session token from `POST /api/sessions`.
    pub session_token: String,
    /// The hub's `hub.json`, followed if the hub moves (see [`LinkConfig`]).
    pub hub_state_file: Option<PathBuf>,
    /// Which agent.
    pub agent: AgentKind,
    /// Working directory of the agent.
    pub cwd: PathBuf,
    /// The agent executable, already resolved.
    pub agent_path: PathBuf,
    /// Extra arguments for the agent.
    pub agent_args: Vec<String>,
    /// Prompt to send right after start.
    pub initial_prompt: Option<String>,
    /// File for the agent's stderr; `None` discards it.
    pub agent_log: Option<PathBuf>,
    /// Lines for the person, sent first as [`SessionUpdate::Error`] (a restart
    /// by the runner, a limit that could not be applied).
    pub notices: Vec<String>,
    /// Asked when the agent ended, before `SessionEnded` is sent: a line to
    /// send first as [`SessionUpdate::Error`] (e.g. "killed: memory limit 2G
    /// reached"), or `None`.
    pub end_note: Option<EndNote>,
}

/// See [`SessionOptions::end_note`]: given the end reason and exit code.
pub type EndNote = Arc<dyn Fn(&str, Option<i32>) -> Option<String> + Send + Sync>;

impl std::fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionOptions")
            .field("hub_url", &self.hub_url)
            .field("session_id", &self.session_id)
            .field("session_token", &"<redacted>")
            .field("agent", &self.agent)
            .field("cwd", &self.cwd)
            .field("agent_path", &self.agent_path)
            .field("agent_args", &self.agent_args)
            .field("initial_prompt", &self.initial_prompt)
            .field("agent_log", &self.agent_log)
            .field("notices", &self.notices)
            .field("end_note", &self.end_note.is_some())
            .finish()
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// Agent process id.
    pub pid: u32,
    /// `exited` or `stopped`.
    pub reason: String,
    /// The agent's exit code, if it exited normally.
    pub exit_code: Option<i32>,
    /// Updates sent to the hub (the last `client_seq`).
    pub updates_sent: u64,
    /// Whether the hub acknowledged every one of them.
    pub all_acked: bool,
    /// Times the link had to reconnect.
    pub reconnects: u64,
}

/// Runs the agent and relays it to the hub until the agent exits, the hub sends
/// `Stop`, or `shutdown` resolves (which stops the agent gracefully). Returns once
/// `SessionEnded` is acknowledged by the hub, or after [`FINAL_ACK_WAIT`].
pub async fn run_session(
    opts: SessionOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<SessionSummary, AgentError> {
    let span = tracing::info_span!("session", session_id = %opts.session_id, agent = opts.agent.as_str());
    run(opts, shutdown).instrument(span).await
}

async fn run(opts: SessionOptions, shutdown: impl Future<Output = ()> + Send) -> Result<SessionSummary, AgentError> {
    let config = LinkConfig {
        hub_url: opts.hub_url.clone(),
        session_id: opts.session_id.clone(),
        session_token: opts.session_token.clone(),
        hub_state_file: opts.hub_state_file.clone(),
    };
    let spec = SpawnSpec {
        program: opts.agent_path.clone(),
        args: opts.agent_args.clone(),
        cwd: opts.cwd.clone(),
        env: Vec::new(),
        stderr_log: opts.agent_log.clone(),
    };
    let (to_link, link_updates) = mpsc::channel::<SessionUpdate>(4096);
    let mut agent = match driver_for(opts.agent).spawn(spec) {
        Ok(agent) => agent,
        Err(err) => {
            tracing::error!(%err, "could not start the agent");
            let (commands, _) = mpsc::channel(1);
            let link = Link::start(config, link_updates, commands)?;
            for message in opts.notices {
                let _ = to_link.send(SessionUpdate::Error { message }).await;
            }
            let _ = to_link
                .send(SessionUpdate::Error {
                    message: err.to_string(),
                })
                .await;
            let ended = SessionUpdate::SessionEnded {
                reason: "spawn_failed".into(),
                exit_code: None,
            };
            let _ = to_link.send(ended).await;
            drop(to_link);
            link.finish(FINAL_ACK_WAIT).await?;
            return Err(err);
        }
    };
    let commands = agent.commands.clone();
    let link = Link::start(config, link_updates, agent.commands.clone())?;
    for message in opts.notices {
        let _ = to_link.send(SessionUpdate::Error { message }).await;
    }
    if let Some(text) = opts.initial_prompt {
        let _ = to_link.send(SessionUpdate::UserMessage { text: text.clone() }).await;
        let _ = commands.send(SessionCommand::Prompt { text }).await;
    }
    let mut shutdown = std::pin::pin!(shutdown);
    let mut shutdown_seen = false;
    let mut link_failed = false;
    let mut link_watch = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            update = agent.updates.recv() => match update {
                Some(update) => {
                    if let (SessionUpdate::SessionEnded { reason, exit_code }, Some(note)) = (&update, &opts.end_note)
                        && let Some(message) = note(reason, *exit_code)
                    {
                        let _ = to_link.send(SessionUpdate::Error { message }).await;
                    }
                    if to_link.send(update).await.is_err() {
                        link_failed = true;
                    }
                }
                None => break,
            },
            () = &mut shutdown, if !shutdown_seen => {
                tracing::info!("shutdown requested; stopping the agent");
                shutdown_seen = true;
                let _ = commands.send(SessionCommand::Stop).await;
            }
            _ = link_watch.tick(), if !link_failed => {
                if link.is_finished() {
                    tracing::error!("the hub link ended early; stopping the agent");
                    link_failed = true;
                    let _ = commands.send(SessionCommand::Stop).await;
                }
            }
        }
    }
    drop(to_link);
    drop(commands);
    let exit = agent
        .exit
        .await
        .map_err(|_| AgentError::Internal("the driver ended without an exit status".into()))?;
    let progress: LinkProgress = link.finish(FINAL_ACK_WAIT).await?;
    let summary = SessionSummary {
        pid: agent.pid,
        reason: exit.reason,
        exit_code: exit.exit_code,
        updates_sent: progress.sent,
        all_acked: progress.acked >= progress.sent,
        reconnects: progress.reconnects,
    };
    tracing::info!(?summary, "session finished");
    Ok(summary)
}
