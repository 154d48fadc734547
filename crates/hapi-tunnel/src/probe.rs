//! The end-to-end health probe: `GET {public_url}/health` through the tunnel.
//!
//! A tunnel that reports `Up` may still not carry traffic (DNS for a fresh
//! quick tunnel, a firewall in front of a bore port), so the UI probes before it
//! shows a QR code, and the supervisor probes periodically while a tunnel is up.
//! The hub answers `/health` without authentication with
//! `{"status":"ok","version":…,"uptime_s":…}`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{TrustedCertificate, TunnelError};

/// The hub's unauthenticated health route.
pub const HEALTH_PATH: &str = "/health";

/// The probe's client settings, whatever it trusts.
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        // A redirect would mean something else answers at that URL.
        .redirect(reqwest::redirect::Policy::none())
        // Every probe opens a new connection, as a phone would: a pooled
        // one can outlive the tunnel it came through (bore keeps proxied
        // connections open after its client is stopped).
        .pool_max_idle_per_host(0)
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        client_builder()
            .build()
            .expect("building an HTTP client with static settings")
    })
}

/// Probes `GET {public_url}/health` within `timeout` and returns how long the
/// round trip took. Succeeds only on `200` with a JSON body whose `status` is
/// `"ok"`, so a page from something else at that address does not pass.
pub async fn probe(public_url: &str, timeout: Duration) -> Result<Duration, TunnelError> {
    probe_with(client(), public_url, timeout).await
}

/// [`probe`] of a listener that serves `trusted` (the hub's own certificate,
/// self-signed or from a private CA): that certificate is trusted, the public
/// roots are not, and it must still name the host of `public_url`.
pub async fn probe_trusting(
    public_url: &str,
    timeout: Duration,
    trusted: &TrustedCertificate,
) -> Result<Duration, TunnelError> {
    probe_with(trusted.client(), public_url, timeout).await
}

async fn probe_with(client: &reqwest::Client, public_url: &str, timeout: Duration) -> Result<Duration, TunnelError> {
    let url = format!("{}{HEALTH_PATH}", public_url.trim_end_matches('/'));
    let failed = |reason: String| TunnelError::Probe {
        url: url.clone(),
        reason,
    };
    let started = Instant::now();
    let response = client
        .get(&url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| failed(explained(error_chain(&e))))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}")));
    }
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| failed(format!("the answer is not the hub's health JSON ({e})")))?;
    let elapsed = started.elapsed();
    match body.get("status").and_then(|s| s.as_str()) {
        Some("ok") => Ok(elapsed),
        other => Err(failed(format!(
            "the answer's status is {}, not \"ok\"",
            other.map_or_else(|| "missing".to_owned(), |s| format!("{s:?}"))
        ))),
    }
}

/// A certificate that does not name the address is a problem a phone will hit
/// too: say so rather than leave it at rustls' words.
fn explained(mut reason: String) -> String {
    if reason.contains("not valid for name") {
        reason.push_str(
            " (the certificate does not name this address in its subjectAltName, so a phone \
             refuses it too: use a certificate made for this address)",
        );
    }
    reason
}

/// `e` and its sources, joined: reqwest's own message alone ("error sending
/// request") hides the cause (refused, timed out, certificate).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
