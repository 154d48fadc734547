//! How a `hapi` command finds and talks to the hub: `HAPI_HUB_URL` plus
//! `CLI_API_TOKEN`, or else the running hub recorded in `$HAPI_HOME/hub.json` and
//! the owner token of that `$HAPI_HOME`.
use anyhow::{Context as _, Result, bail};
use hapi_hub::HubConfig;
use hapi_protocol::{AgentKind, CreateSession, CreatedSession, ErrorResponse};

use crate::hub::{HUB_STATE_FILE, HubStateFile};

/// A hub address and the owner token for it.
pub struct HubClient {
    pub url: String,
    token: String,
    http: reqwest::Client,
}

impl HubClient {
    pub fn discover() -> Result<Self> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let config = HubConfig::from_env().context("invalid configuration")?;
        let url = match env("HAPI_HUB_URL") {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let path = config.home.join(HUB_STATE_FILE);
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("no running hub found ({} is missing): start one with `hapi hub`, or set HAPI_HUB_URL and CLI_API_TOKEN", path.display())
                })?;
                let state: HubStateFile =
                    serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
                state.url
            }
        };
        let token = match config.owner_token {
            Some(token) => token,
            None => std::fs::read_to_string(hapi_hub::auth::owner_token_path(&config.home))
                .map(|t| t.trim().to_owned())
                .with_context(|| format!("no owner token in {}; set CLI_API_TOKEN", config.home.display()))?,
        };
        Ok(HubClient {
            url,
            token,
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
