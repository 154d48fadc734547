//! The runner's link to the hub: one WebSocket (`/api/machines/{id}/ws`, owner
//! token) over which the runner announces its machine, stays visibly alive, and
//! answers the hub's RPCs (spawn-session, stop-session, stop-runner) by calling
//! its [`RunnerHandle`].
//!
//! The hub may start before or after the runner, restart, or move ports, so the
//! link rediscovers it (`HAPI_HUB_URL` + `CLI_API_TOKEN`, else `$HAPI_HOME/hub.json`
//! and the owner token) before every connection attempt and retries with backoff.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hapi_protocol::{
    ErrorBody, ErrorCode, HUB_STATE_FILE, HubMachineFrame, HubStateFile, MachineFrame, MachineRpc, RpcOutcome,
    RunnerInfo,
};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::runner::{HubLink, RunnerHandle};
use crate::sessions::SessionTarget;
use crate::spawn::SpawnRequest;
use crate::{Result, RunnerError};

/// How often the runner tells the hub it is alive (the hub gives up after 60 s).
pub const ALIVE_EVERY: Duration = Duration::from_secs(20);
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Where the hub is and the token that opens it.
#[derive(Clone)]
pub struct HubTarget {
    /// Base URL, `http://HOST:PORT`.
    pub url: String,
    /// Owner token.
    pub token: String,
}

impl std::fmt::Debug for HubTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubTarget")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl HubTarget {
    /// `HAPI_HUB_URL` plus `CLI_API_TOKEN`, or else the hub recorded in
    /// `home/hub.json` and the owner token of `home` from the keychain or the
    /// 0600 file, as `hapi-credentials` finds it (`CLI_API_TOKEN` still wins).
    pub fn discover(home: &Path) -> Result<HubTarget> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let url = match env("HAPI_HUB_URL") {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let path = home.join(HUB_STATE_FILE);
                let text = std::fs::read_to_string(&path).map_err(|_| {
                    RunnerError::NoHub(format!(
                        "{} is missing: start one with `hapi hub`, or set HAPI_HUB_URL and CLI_API_TOKEN",
                        path.display()
                    ))
                })?;
                let state: HubStateFile = serde_json::from_str(&text).map_err(|e| RunnerError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                state.url
            }
        };
        let token = match env("CLI_API_TOKEN") {
            Some(token) => token,
            // The same lookup as the hub's (keychain, then the 0600 file); it
            // never creates a token.
            None => {
                hapi_credentials::find_owner_token(home)
                    .map_err(|e| RunnerError::NoHub(e.to_string()))?
                    .ok_or_else(|| {
                        RunnerError::NoHub(format!(
                            "no owner token for HAPI_HOME={} (start `hapi hub` there first); or set CLI_API_TOKEN",
                            home.display()
                        ))
                    })?
                    .value
            }
        };
        Ok(HubTarget { url, token })
    }
}

/// This machine's id, shared with a hub that uses the same `$HAPI_HOME`
/// (`machine-id`, created on first use).
pub fn machine_id(home: &Path) -> Result<String> {
    let path = home.join("machine-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_owned());
    }
    let id = format!("m-{}", hex::encode(rand::random::<[u8; 16]>()));
    crate::state::write_atomically(&path, id.as_bytes())?;
    Ok(id)
}

/// The [`HubLink`] half the runner calls: frames for the hub go through a
/// channel to the connection task ([`HubConnection::run`]).
pub struct WsHubLink {
    frames: mpsc::UnboundedSender<MachineFrame>,
}

impl HubLink for WsHubLink {
    fn shutting_down(&self) {
        let _ = self.frames.send(MachineFrame::ShuttingDown);
    }
}

/// The connection task's half.
pub struct HubConnection {
    home: PathBuf,
    frames: mpsc::UnboundedReceiver<MachineFrame>,
}

/// Creates the two halves of a hub link for the runner of `home`.
pub fn hub_link(home: &Path) -> (Arc<WsHubLink>, HubConnection) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Arc::new(WsHubLink { frames: tx }),
        HubConnection {
            home: home.to_owned(),
            frames: rx,
        },
    )
}

enum Ended {
    /// The runner is stopping: the link is done.
    Shutdown,
    /// The connection dropped: reconnect.
    Lost(String),
}

impl HubConnection {
    /// Keeps the link up until the runner says it is shutting down (after telling
    /// the hub so) or every sender is gone.
    pub async fn run(mut self, handle: RunnerHandle, name: String, runner: RunnerInfo) {
        let mut delay = RETRY_MIN;
        loop {
            let why = match HubTarget::discover(&self.home).and_then(|t| machine_id(&self.home).map(|m| (t, m))) {
                Ok((target, machine)) => match self.session(&handle, &target, &machine, &name, &runner).await {
                    Ended::Shutdown => return,
                    Ended::Lost(why) => {
                        delay = RETRY_MIN;
                        why
                    }
                },
                Err(e) => e.to_string(),
            };
            tracing::debug!(%why, retry_in = ?delay, "hub link down");
            // Wait for the retry, but leave at once if the runner stops meanwhile.
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                frame = self.frames.recv() => match frame {
                    Some(MachineFrame::ShuttingDown) | None => return,
                    Some(_) => {}
                },
            }
            delay = (delay * 2).min(RETRY_MAX);
        }
    }

    async fn session(
        &mut self,
        handle: &RunnerHandle,
        target: &HubTarget,
        machine: &str,
        name: &str,
        runner: &RunnerInfo,
    ) -> Ended {
        let url = format!("{}/api/machines/{machine}/ws", target.url.replacen("http", "ws", 1));
        let mut request = match url.into_client_request() {
            Ok(r) => r,
            Err(e) => return Ended::Lost(format!("bad hub URL {}: {e}", target.url)),
        };
        match format!("Bearer {}", target.token).parse() {
            Ok(value) => {
                request.headers_mut().insert("authorization", value);
            }
            Err(_) => return Ended::Lost("the owner token is not a valid header value".into()),
        }
        let (ws, _) = match tokio_tungstenite::connect_async(request).await {
            Ok(ok) => ok,
            Err(e) => return Ended::Lost(format!("cannot connect to {}: {e}", target.url)),
        };
        let (mut sink, mut stream) = ws.split();
        let send = |frame: &MachineFrame| Message::Text(serde_json::to_string(frame).unwrap_or_default().into());
        let hello = MachineFrame::Hello {
            name: name.to_owned(),
            runner: runner.clone(),
        };
        if let Err(e) = sink.send(send(&hello)).await {
            return Ended::Lost(e.to_string());
        }
        tracing::info!(hub = %target.url, machine, "linked to the hub");
        let (results_tx, mut results) = mpsc::unbounded_channel::<MachineFrame>();
        let mut alive = tokio::time::interval(ALIVE_EVERY);
        alive.tick().await;
        loop {
            let outgoing = tokio::select! {
                _ = alive.tick() => MachineFrame::Alive,
                Some(result) = results.recv() => result,
                frame = self.frames.recv() => match frame {
                    Some(MachineFrame::ShuttingDown) | None => {
                        let _ = sink.send(send(&MachineFrame::ShuttingDown)).await;
                        let _ = sink.close().await;
                        return Ended::Shutdown;
                    }
                    Some(other) => other,
                },
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        match serde_json::from_str::<HubMachineFrame>(&text) {
                            Ok(HubMachineFrame::Rpc { id, call }) => {
                                // RPCs run concurrently: a slow spawn must not stall the link.
                                let handle = handle.clone();
                                let results = results_tx.clone();
                                tokio::spawn(async move {
                                    let outcome = answer(&handle, call).await;
                                    let _ = results.send(MachineFrame::RpcResult { id, outcome });
                                });
                            }
                            Err(e) => tracing::warn!(error = %e, "ignoring malformed frame from the hub"),
                        }
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None => return Ended::Lost("the hub closed the link".into()),
                    Some(Err(e)) => return Ended::Lost(e.to_string()),
                    Some(Ok(_)) => continue,
                },
            };
            if let Err(e) = sink.send(send(&outgoing)).await {
                return Ended::Lost(e.to_string());
            }
        }
    }
}

/// Carries out one RPC.
async fn answer(handle: &RunnerHandle, call: MachineRpc) -> RpcOutcome {
    let failed = |message: String| {
        RpcOutcome::Err(ErrorBody {
            code: ErrorCode::RunnerFailed,
            message,
        })
    };
    match call {
        MachineRpc::SpawnSession(spawn) => {
            let request = SpawnRequest {
                agent: spawn.agent.as_str().to_owned(),
                directory: spawn.cwd.into(),
                prompt: spawn.prompt,
                create_directory: spawn.create_directory,
                worktree_branch: spawn.worktree_branch,
            };
            match handle.spawn_session(request).await {
                Ok(spawned) => RpcOutcome::Ok(serde_json::json!({ "session_id": spawned.session_id })),
                // Directory problems keep their own codes: the hub turns
                // `directory_missing` into a request to approve creating it.
                Err(e) => RpcOutcome::Err(ErrorBody {
                    code: e.code(),
                    message: e.to_string(),
                }),
            }
        }
        MachineRpc::StopSession { session_id } => match handle.stop_session(&SessionTarget::parse(&session_id)).await {
            Ok(stopped) => RpcOutcome::Ok(serde_json::json!({ "session_id": stopped.session_id })),
            Err(e) => failed(e.to_string()),
        },
        MachineRpc::StopRunner => {
            handle.request_stop();
            RpcOutcome::Ok(serde_json::json!({ "status": "stopping" }))
        }
    }
}
