//! How a `hapi` command finds and talks to the hub: `HAPI_HUB_URL` plus
//! `CLI_API_TOKEN`, or else the running hub recorded in `$HAPI_HOME/hub.json` and
//! the owner token of that `$HAPI_HOME`.
use anyhow::{Context as _, Result, bail};
use hapi_hub::HubConfig;
use hapi_protocol::{AgentKind, CreateSession, CreatedSession, ErrorResponse};

/// A hub address and the owner token for it.
pub struct HubClient {
    pub url: String,
    token: String,
    http: reqwest::Client,
}

impl HubClient {
    pub fn discover() -> Result<Self> {
        let home = HubConfig::from_env().context("invalid configuration")?.home;
        let target = hapi_runner::HubTarget::discover(&home)?;
        Ok(HubClient {
            url: target.url,
            token: target.token,
            http: reqwest::Client::new(),
        })
    }

    pub async fn create_session(&self, agent: AgentKind, cwd: &str) -> Result<CreatedSession> {
        let response = self
            .http
            .post(format!("{}/api/sessions", self.url))
            .bearer_auth(&self.token)
            .json(&CreateSession {
                agent,
                cwd: cwd.to_owned(),
            })
            .send()
            .await
            .with_context(|| format!("cannot reach the hub at {}", self.url))?;
        if !response.status().is_success() {
            let status = response.status();
            let detail = match response.json::<ErrorResponse>().await {
                Ok(e) => format!("{:?}: {}", e.error.code, e.error.message),
                Err(_) => status.to_string(),
            };
            bail!("the hub refused to create the session ({status}): {detail}");
        }
        response.json().await.context("unexpected answer from the hub")
    }
}
