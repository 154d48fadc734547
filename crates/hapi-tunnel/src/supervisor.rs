//! [`Tunnel`]: runs one provider, keeps it up, and says when it is usable.
//!
//! The loop: start the provider; while it is up, watch its status and probe
//! its public URL every `health_interval`; when the provider reports the
//! tunnel lost, or `unhealthy_after` probes in a row fail, stop it and start it
//! again after a [`Backoff`] delay. A permanent error (missing binary, rejected
//! secret, bad settings) ends the retries: the status stays `Failed` and
//! [`Tunnel::gave_up`] holds the error until the user changes something and
//! starts a new `Tunnel`.
//!
//! Plaintext providers are refused unless the options carry a
//! [`PlaintextConsent`] to the provider's exact notice: the consent the UI
//! collected is for what it showed.

use std::future::pending;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::{TunnelError, TunnelProvider, TunnelStatus, probe, probe_trusting};

/// Capped exponential backoff with jitter between restarts.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay (after jitter too).
    pub max: Duration,
    /// Each delay is scaled by a random factor in `[1 - jitter, 1 + jitter]`,
    /// so that many clients do not retry in step.
    pub jitter: f64,
    /// A tunnel that stayed up this long starts again from `initial`.
    pub stable_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: 0.2,
            stable_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first retry):
    /// `initial * 2^attempt`, jittered, never above `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.min(30)))
            .min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = if jitter > 0.0 {
            rand::rng().random_range(1.0 - jitter..=1.0 + jitter)
        } else {
            1.0
        };
        base.mul_f64(factor).min(self.max)
    }
}

/// The user's consent to a plaintext path, given to the exact notice shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaintextConsent {
    notice: String,
}

impl PlaintextConsent {
    /// The user read `notice` (the provider's
    /// [`consent_notice`](TunnelProvider::consent_notice), shown verbatim) and
    /// accepted it.
    pub fn accepted(notice: impl Into<String>) -> Self {
        PlaintextConsent { notice: notice.into() }
    }

    /// The notice that was accepted.
    pub fn notice(&self) -> &str {
        &self.notice
    }
}

/// How a [`Tunnel`] supervises its provider.
#[derive(Clone, Debug)]
pub struct TunnelOptions {
    /// Delays between restarts.
    pub backoff: Backoff,
    /// How often to probe the public URL while up (`None`: never; rely on the
    /// provider noticing losses).
    pub health_interval: Option<Duration>,
    /// The timeout of one probe.
    pub health_timeout: Duration,
    /// How many probes in a row must fail before the tunnel is restarted.
    pub unhealthy_after: u32,
    /// Required for plaintext providers.
    pub consent: Option<PlaintextConsent>,
}

impl Default for TunnelOptions {
    fn default() -> Self {
        TunnelOptions {
            backoff: Backoff::default(),
            health_interval: Some(Duration::from_secs(30)),
            health_timeout: Duration::from_secs(10),
            unhealthy_after: 3,
            consent: None,
        }
    }
}

/// A tunnel whose provider is probed to be usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The URL to put in the QR code.
    pub public_url: String,
    /// The health probe's round trip.
    pub latency: Duration,
}

/// A provider under supervision. Dropping it stops the provider in the
/// background; [`stop`](Self::stop) waits for that.
pub struct Tunnel {
    provider: Arc<dyn TunnelProvider>,
    status: watch::Receiver<TunnelStatus>,
    gave_up: watch::Receiver<Option<TunnelError>>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("kind", &self.provider.kind())
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl Tunnel {
    /// Starts supervising `provider` for the remote listener bound at `local`
    /// (bind it to [`TunnelProvider::listen_ip`] first). Must be called within
    /// a Tokio runtime. Fails only with [`TunnelError::ConsentRequired`]; every
    /// other problem shows in the status.
    pub fn start(
        provider: Arc<dyn TunnelProvider>,
        local: SocketAddr,
        options: TunnelOptions,
    ) -> Result<Tunnel, TunnelError> {
        if provider.requires_consent() {
            let notice = provider.consent_notice().unwrap_or_default();
            if options.consent.as_ref().map(PlaintextConsent::notice) != Some(notice.as_str()) {
                return Err(TunnelError::ConsentRequired { notice });
            }
        }
        let (stop, stop_rx) = watch::channel(false);
        let (gave_up_tx, gave_up) = watch::channel(None);
        let status = provider.subscribe();
        let task = tokio::spawn(supervise(Arc::clone(&provider), local, options, stop_rx, gave_up_tx));
        Ok(Tunnel {
            provider,
            status,
            gave_up,
            stop,
            task: Some(task),
        })
    }

    /// The supervised provider.
    pub fn provider(&self) -> &Arc<dyn TunnelProvider> {
        &self.provider
    }

    /// The current status.
    pub fn status(&self) -> TunnelStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn subscribe(&self) -> watch::Receiver<TunnelStatus> {
        self.status.clone()
    }

    /// The permanent error that ended the retries, if one did.
    pub fn gave_up(&self) -> Option<TunnelError> {
        self.gave_up.borrow().clone()
    }

    /// Waits until the tunnel is up and returns its public URL; fails at once
    /// if the supervisor gave up, or after `within`.
    pub async fn wait_up(&self, within: Duration) -> Result<String, TunnelError> {
        let mut status = self.status.clone();
        let mut gave_up = self.gave_up.clone();
        let wait = async {
            loop {
                if let Some(url) = status.borrow_and_update().state.public_url() {
                    return Ok(url.to_owned());
                }
                if let Some(e) = gave_up.borrow_and_update().clone() {
                    return Err(e);
                }
                tokio::select! {
                    r = status.changed() => if r.is_err() { pending::<()>().await },
                    r = gave_up.changed() => if r.is_err() { pending::<()>().await },
                }
            }
        };
        match tokio::time::timeout(within, wait).await {
            Ok(result) => result,
            Err(_) => Err(TunnelError::Timeout {
                what: format!("waiting for the {} tunnel to come up", self.provider.kind()),
                after: within,
                detail: Some(format!("{:?}", self.status().state)),
            }),
        }
    }

    /// Waits until the tunnel is up *and* its public URL answers the health
    /// probe: what to await before showing a QR code. Probes again every
    /// 250 ms until `within` runs out (a fresh quick tunnel's DNS name takes a
    /// moment to resolve).
    pub async fn ready(&self, within: Duration) -> Result<Ready, TunnelError> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let public_url = self.wait_up(left).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            let err = match probe_provider(self.provider.as_ref(), &public_url, left.min(Duration::from_secs(10))).await
            {
                Ok(latency) => {
                    return Ok(Ready { public_url, latency });
                }
                Err(e) => e,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(err);
            }
            tokio::time::sleep(left.min(Duration::from_millis(250))).await;
        }
    }

    /// Stops the provider and the supervisor, and waits for both.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        // The supervisor task sees this, stops the provider and ends.
        self.stop.send_replace(true);
    }
}

async fn supervise(
    provider: Arc<dyn TunnelProvider>,
    local: SocketAddr,
    options: TunnelOptions,
    mut stop: watch::Receiver<bool>,
    gave_up: watch::Sender<Option<TunnelError>>,
) {
    let kind = provider.kind();
    let mut attempt: u32 = 0;
    loop {
        let started = tokio::select! {
            r = provider.start(local) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        match started {
            Ok(url) => {
                info!(provider = %kind, %url, "tunnel up");
                let since = Instant::now();
                let unhealthy = tokio::select! {
                    r = until_lost(provider.as_ref(), &url, &options) => r,
                    _ = stop.wait_for(|s| *s) => break,
                };
                provider.stop().await;
                if let Some(reason) = unhealthy {
                    provider.status_cell().lost(reason);
                }
                warn!(provider = %kind, status = ?provider.status().state, "tunnel lost");
                if since.elapsed() >= options.backoff.stable_after {
                    attempt = 0;
                }
            }
            Err(e) if e.is_permanent() => {
                warn!(provider = %kind, error = %e, "tunnel failed; not retrying");
                gave_up.send_replace(Some(e));
                let _ = stop.wait_for(|s| *s).await;
                break;
            }
            Err(e) => warn!(provider = %kind, error = %e, attempt, "tunnel failed"),
        }
        let delay = options.backoff.delay(attempt);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    provider.stop().await;
    provider.status_cell().shut_down();
    info!(provider = %kind, "tunnel stopped");
}

/// Probes `url` trusting what `provider` says its path serves.
async fn probe_provider(provider: &dyn TunnelProvider, url: &str, timeout: Duration) -> Result<Duration, TunnelError> {
    match provider.trusted_certificate() {
        Some(trusted) => probe_trusting(url, timeout, trusted).await,
        None => probe(url, timeout).await,
    }
}

/// Returns when the tunnel is lost: `None` when the provider reported it
/// (and counted it), `Some(reason)` when the health probes failed.
async fn until_lost(provider: &dyn TunnelProvider, url: &str, options: &TunnelOptions) -> Option<String> {
    let mut status = provider.subscribe();
    let lost = async {
        let _ = status.wait_for(|s| !s.state.is_up()).await;
        None
    };
    let unhealthy = async {
        let Some(every) = options.health_interval else {
            return pending().await;
        };
        let mut misses = 0;
        loop {
            tokio::time::sleep(every).await;
            match probe_provider(provider, url, options.health_timeout).await {
                Ok(_) => misses = 0,
                Err(e) => {
                    misses += 1;
                    warn!(provider = %provider.kind(), error = %e, misses, "health probe failed");
                    if misses >= options.unhealthy_after.max(1) {
                        return Some(format!("{e} ({misses} probes in a row)"));
                    }
                }
            }
        }
    };
    tokio::select! {
        r = lost => r,
        r = unhealthy => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            jitter: 0.2,
            stable_after: Duration::from_secs(1),
        };
        for attempt in 0..40 {
            let base = (100u64 << attempt.min(20)).min(2000) as f64;
            for _ in 0..20 {
                let d = backoff.delay(attempt).as_secs_f64() * 1000.0;
                assert!(
                    d >= base * 0.8 - 1e-6 && d <= (base * 1.2).min(2000.0) + 1e-6,
                    "{attempt}: {d}"
                );
            }
        }
        let exact = Backoff { jitter: 0.0, ..backoff };
        assert_eq!(exact.delay(0), Duration::from_millis(100));
        assert_eq!(exact.delay(3), Duration::from_millis(800));
        assert_eq!(exact.delay(u32::MAX), Duration::from_secs(2));
    }
}
