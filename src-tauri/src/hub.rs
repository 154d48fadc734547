//! The app talks to its embedded hub the way every other client does: HTTP on
//! loopback with the owner token. A decision from a notification therefore takes
//! exactly the path of a click in the web UI (first decision wins, recorded with
//! its channel), and there is no second code path to keep in step.
use anyhow::{Context as _, Result, bail};
use hapi_protocol::{
    Approval, ApprovalList, ApprovalResponse, DecideApproval, Decision, DecisionChannel, ErrorResponse, RemoteAccess,
    Session, SessionList,
};

#[derive(Clone)]
pub struct HubClient {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl HubClient {
    pub fn new(url: &str, token: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .no_proxy()
            .build()?;
        Ok(HubClient {
            url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        read(response, path).await
    }

    /// Phone access, or `None` from a hub without it.
    pub async fn remote(&self) -> Result<Option<RemoteAccess>> {
        let response = self
            .http
            .get(format!("{}/api/remote", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .context("GET /api/remote")?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        read(response, "/api/remote").await.map(Some)
    }

    /// The kill switch: revokes every paired device and turns phone access off.
    pub async fn revoke_all_devices(&self) -> Result<()> {
        let path = "/api/devices/revoke-all";
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        if response.status().is_success() {
            return Ok(());
        }
        read::<serde_json::Value>(response, path).await.map(drop)
    }

    pub async fn sessions(&self) -> Result<Vec<Session>> {
        Ok(self.get::<SessionList>("/api/sessions").await?.sessions)
    }

    /// Pending approvals, oldest first.
    pub async fn pending_approvals(&self) -> Result<Vec<Approval>> {
        let mut approvals = self
            .get::<ApprovalList>("/api/approvals?state=pending")
            .await?
            .approvals;
        approvals.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(approvals)
    }

    pub async fn decide(&self, approval_id: &str, decision: Decision, channel: DecisionChannel) -> Result<Approval> {
        let path = format!("/api/approvals/{approval_id}");
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&DecideApproval {
                decision,
                message: None,
                channel: Some(channel),
            })
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        Ok(read::<ApprovalResponse>(response, &path).await?.approval)
    }
}

async fn read<T: serde::de::DeserializeOwned>(response: reqwest::Response, path: &str) -> Result<T> {
    let status = response.status();
    let bytes = response.bytes().await.with_context(|| format!("reading {path}"))?;
    if !status.is_success() {
        match serde_json::from_slice::<ErrorResponse>(&bytes) {
            Ok(e) => bail!("{path}: {} (HTTP {status})", e.error.message),
            Err(_) => bail!("{path}: HTTP {status}"),
        }
    }
    serde_json::from_slice(&bytes).with_context(|| format!("{path}: unexpected answer"))
}
