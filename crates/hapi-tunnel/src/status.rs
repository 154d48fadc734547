//! A tunnel's status and the one cell that holds it.
//!
//! The cell is a `watch` channel: the UI, the supervisor and (later) the
//! metrics exporter all read the same value, and every change wakes them.
//! `failures` only ever grows: a failed start and a lost tunnel each count one.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

/// Where TLS ends on a provider's path, which says who can read the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// TLS from the phone ends on this machine (Tailscale Serve; LAN with the
    /// hub's own certificate): only the two ends see plaintext.
    TlsAtThisMachine,
    /// TLS from the phone ends at the provider's edge (Cloudflare), which sees
    /// plaintext before forwarding it.
    TlsAtProvider,
    /// No TLS (LAN HTTP, raw bore): anyone on the path can read it. Offered
    /// only with the user's explicit consent.
    Plaintext,
}

impl Transport {
    /// Who can read the plaintext, in a sentence for the UI.
    pub fn who_can_read(self) -> &'static str {
        match self {
            Transport::TlsAtThisMachine => "only your phone and this computer",
            Transport::TlsAtProvider => "your phone, this computer and the tunnel provider",
            Transport::Plaintext => "anyone on the networks between your phone and this computer",
        }
    }
}

/// What a tunnel is doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TunnelState {
    /// Being set up.
    Starting,
    /// Reachable at `public_url`.
    Up {
        /// Scheme, host and port, no trailing slash.
        public_url: String,
    },
    /// Not running: stopped, never started, or lost after being up.
    Down {
        /// Why, for the UI.
        reason: String,
    },
    /// The last attempt to start failed.
    Failed {
        /// Why, for the UI (the provider's own message where it gave one).
        reason: String,
    },
}

impl TunnelState {
    /// The public URL when up.
    pub fn public_url(&self) -> Option<&str> {
        match self {
            TunnelState::Up { public_url } => Some(public_url),
            _ => None,
        }
    }

    /// Whether the tunnel is up.
    pub fn is_up(&self) -> bool {
        matches!(self, TunnelState::Up { .. })
    }
}

/// A provider's status: what [`crate::TunnelProvider::status`] reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TunnelStatus {
    /// What it is doing.
    #[serde(flatten)]
    pub state: TunnelState,
    /// Failed starts plus lost tunnels since the provider was created.
    pub failures: u64,
    /// Where TLS ends.
    pub transport: Transport,
}

/// The reason a provider that was never started reports.
pub const NOT_STARTED: &str = "not started";
/// The reason a stopped provider reports.
pub const STOPPED: &str = "stopped";

/// Holds one provider's [`TunnelStatus`] and publishes every change. Clones
/// are handles to the same cell (for a provider's background tasks).
#[derive(Clone, Debug)]
pub struct StatusCell {
    tx: Arc<watch::Sender<TunnelStatus>>,
}

impl StatusCell {
    /// A cell for a provider with this transport, `Down` ("not started").
    pub fn new(transport: Transport) -> Self {
        let (tx, _) = watch::channel(TunnelStatus {
            state: TunnelState::Down {
                reason: NOT_STARTED.into(),
            },
            failures: 0,
            transport,
        });
        StatusCell { tx: Arc::new(tx) }
    }

    /// The current status.
    pub fn get(&self) -> TunnelStatus {
        self.tx.borrow().clone()
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<TunnelStatus> {
        self.tx.subscribe()
    }

    /// `Starting`.
    pub fn starting(&self) {
        self.set(TunnelState::Starting, false);
    }

    /// `Up` at `public_url`.
    pub fn up(&self, public_url: &str) {
        self.set(
            TunnelState::Up {
                public_url: public_url.to_owned(),
            },
            false,
        );
    }

    /// `Failed`: a start did not succeed. Counts one failure.
    pub fn failed(&self, reason: impl Into<String>) {
        self.set(TunnelState::Failed { reason: reason.into() }, true);
    }

    /// `Down`: a tunnel that was up is lost. Counts one failure.
    pub fn lost(&self, reason: impl Into<String>) {
        self.set(TunnelState::Down { reason: reason.into() }, true);
    }

    /// `Down` ("stopped") if the tunnel was up or starting; a `Down`/`Failed`
    /// reason already there is kept. What a provider's `stop` calls.
    pub fn stopped(&self) {
        self.tx.send_if_modified(|s| match s.state {
            TunnelState::Up { .. } | TunnelState::Starting => {
                s.state = TunnelState::Down { reason: STOPPED.into() };
                true
            }
            _ => false,
        });
    }

    /// `Down` ("stopped") whatever the state was: the user turned it off.
    pub fn shut_down(&self) {
        self.set(TunnelState::Down { reason: STOPPED.into() }, false);
    }

    fn set(&self, state: TunnelState, failure: bool) {
        self.tx.send_modify(|s| {
            s.state = state;
            if failure {
                s.failures += 1;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_failed_starts_and_losses_but_not_stops() {
        let cell = StatusCell::new(Transport::Plaintext);
        assert_eq!(
            cell.get().state,
            TunnelState::Down {
                reason: NOT_STARTED.into()
            }
        );
        cell.starting();
        cell.failed("connection refused");
        cell.starting();
        cell.up("http://example.test:1234");
        assert_eq!(cell.get().state.public_url(), Some("http://example.test:1234"));
        cell.lost("server closed the connection");
        cell.stopped();
        assert_eq!(
            cell.get().state,
            TunnelState::Down {
                reason: "server closed the connection".into()
            },
            "stop keeps the reason of a loss"
        );
        cell.shut_down();
        let status = cell.get();
        assert_eq!(status.failures, 2);
        assert_eq!(status.state, TunnelState::Down { reason: STOPPED.into() });
    }

    #[test]
    fn status_serializes_flat_with_a_state_tag() {
        let cell = StatusCell::new(Transport::TlsAtThisMachine);
        cell.up("https://desk.example.ts.net");
        let json = serde_json::to_value(cell.get()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "state": "up",
                "public_url": "https://desk.example.ts.net",
                "failures": 0,
                "transport": "tls_at_this_machine"
            })
        );
    }
}
