//! The client side of the control server, for CLI commands, sessions that
//! report themselves, and a new runner stopping an old one.
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::control::{SessionList, SessionMetadata, SessionStarted, StopSession};
use crate::error::{Result, RunnerError};
use crate::lock::RunnerLock;
use crate::spawn::{SpawnRequest, SpawnedSession};
use crate::state::{RunnerState, read_token};

/// Talks to one runner's control server.
pub struct ControlClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ControlClient {
    /// A client for the control server on 127.0.0.1:`port`.
    pub fn new(port: u16, token: &str, timeout: Duration) -> ControlClient {
        ControlClient {
            base: format!("http://127.0.0.1:{port}"),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .no_proxy()
                .build()
                .expect("HTTP client"),
        }
    }

    /// A client for the live runner of `home`, with its state.
    pub fn connect(home: &Path, timeout: Duration) -> Result<(ControlClient, RunnerState)> {
        let state = live_state(home)?.ok_or_else(|| RunnerError::NotRunning { home: home.to_owned() })?;
        let token = read_token(home)?;
        Ok((ControlClient::new(state.http_port, &token, timeout), state))
    }

    async fn call<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| RunnerError::Unreachable(format!("{}{path}: {e}", self.base)))?;
        let status = response.status();
        let value: Value = response
            .json()
            .await
            .map_err(|e| RunnerError::Unreachable(format!("{}{path}: unreadable answer ({status}): {e}", self.base)))?;
        if !status.is_success() {
            let code = value["error"]["code"].as_str().unwrap_or("error").to_owned();
            let message = value["error"]["message"].as_str().unwrap_or("").to_owned();
            return Err(RunnerError::Refused { code, message });
        }
        serde_json::from_value(value)
            .map_err(|e| RunnerError::Unreachable(format!("{}{path}: unexpected answer: {e}", self.base)))
    }

    /// `list`.
    pub async fn list(&self) -> Result<SessionList> {
        self.call("/list", &json!({})).await
    }

    /// `stop`: the runner shuts down; sessions keep running.
    pub async fn stop(&self) -> Result<()> {
        self.call::<Value>("/stop", &json!({})).await.map(|_| ())
    }

    /// `stop-session` by id or `PID-n`.
    pub async fn stop_session(&self, target: &str) -> Result<()> {
        let body = StopSession {
            session_id: target.to_owned(),
        };
        match self.call::<Value>("/stop-session", &body).await {
            Err(RunnerError::Refused { code, .. }) if code == "not_found" => {
                Err(RunnerError::UnknownSession(target.to_owned()))
            }
            other => other.map(|_| ()),
        }
    }

    /// `session-started`: a session reports itself.
    pub async fn session_started(&self, session_id: &str, host_pid: u32, started_by: &str) -> Result<()> {
        let body = SessionStarted {
            session_id: session_id.to_owned(),
            metadata: SessionMetadata {
                host_pid,
                started_by: Some(started_by.to_owned()),
            },
        };
        self.call::<Value>("/session-started", &body).await.map(|_| ())
    }

    /// `spawn-session`.
    pub async fn spawn_session(&self, request: &SpawnRequest) -> Result<SpawnedSession> {
        self.call("/spawn-session", request).await
    }
}

/// The state of the live runner of `home`: the state file, if the lock's
/// holder is alive and is the process the state file names.
pub fn live_state(home: &Path) -> Result<Option<RunnerState>> {
    let Some(holder) = RunnerLock::holder(home)? else {
        return Ok(None);
    };
    Ok(RunnerState::read(home)?.filter(|state| state.pid == holder.pid))
}
