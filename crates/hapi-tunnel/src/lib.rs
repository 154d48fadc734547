//! Remote access to the hub: the ways a phone reaches it from outside this machine.
//!
//! Every way is a [`TunnelProvider`]: it takes the address of the hub's *remote
//! listener* (a listener separate from the desktop's, so that a request's peer
//! address never has to be trusted: every tunnel connects from 127.0.0.1), makes
//! it reachable, and reports a [`TunnelStatus`]: its [`TunnelState`] (with the
//! public URL when up), how many times it failed, and where TLS ends
//! ([`Transport`]).
//!
//! Providers:
//! - [`Lan`]: the remote listener itself is bound to a LAN address; plain HTTP,
//!   or HTTPS with the user's certificate ([`Lan::with_tls`]), which ends on
//!   this machine.
//! - [`Bore`]: an in-process `bore` client (the `bore-cli` crate) to a
//!   self-hosted bore server; raw TCP, so plain HTTP, or HTTPS with the
//!   user's certificate ([`Bore::with_tls`]): the hub does the handshake and
//!   the server relays TLS it cannot read.
//! - [`TailscaleServe`]: drives the user's `tailscale` CLI; HTTPS that ends on
//!   this machine, reachable only inside the tailnet.
//! - [`CloudflaredQuick`]: a `cloudflared` quick tunnel as a sidecar process;
//!   HTTPS that ends at Cloudflare.
//!
//! A [`Tunnel`] supervises one provider: it refuses a plaintext provider unless
//! it is given a [`PlaintextConsent`] to that provider's notice, restarts a lost
//! or unhealthy tunnel with capped, jittered exponential [`Backoff`], stops
//! retrying on a permanent error (a missing binary, a rejected secret), and
//! publishes the status on a `tokio::sync::watch` channel. [`probe`] checks the
//! public URL end to end (`GET {url}/health`) before a QR code is shown.
//!
//! Invariants:
//! - One [`StatusCell`] per provider holds its status; the provider and its
//!   supervisor both write to it, so the failure count is counted once.
//! - A sidecar process is owned by PID and stopped by PID (SIGTERM, then
//!   SIGKILL); nothing is ever found or killed by name.
//!
//! See `docs/tunnels.md` for the transport-security table and the consent rule.
#![deny(missing_docs)]

mod error;
mod probe;
mod process;
mod providers;
mod status;
mod supervisor;
mod trust;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;

use tokio::sync::watch;

pub use error::TunnelError;
pub use probe::{HEALTH_PATH, probe, probe_trusting};
pub use process::SearchPath;
pub use providers::bore::{BORE_CONTROL_PORT, Bore};
pub use providers::cloudflared::{CloudflaredQuick, parse_quick_tunnel_url};
pub use providers::lan::{Lan, LanAddress, lan_addresses};
pub use providers::tailscale::{TailscaleSelf, TailscaleServe, parse_tailscale_status};
pub use status::{NOT_STARTED, STOPPED, StatusCell, Transport, TunnelState, TunnelStatus};
pub use supervisor::{Backoff, PlaintextConsent, Ready, Tunnel, TunnelOptions};
pub use trust::TrustedCertificate;

/// A boxed, `Send` future: what [`TunnelProvider`]'s async methods return, so the
/// trait stays object-safe (`Arc<dyn TunnelProvider>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which kind of provider a tunnel is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The hub's remote listener on a LAN address.
    Lan,
    /// An in-process bore client to a self-hosted bore server.
    Bore,
    /// `tailscale serve` on this machine.
    TailscaleServe,
    /// A `cloudflared` quick tunnel (`*.trycloudflare.com`).
    CloudflaredQuick,
}

impl ProviderKind {
    /// A short name for messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Lan => "LAN",
            ProviderKind::Bore => "bore",
            ProviderKind::TailscaleServe => "Tailscale Serve",
            ProviderKind::CloudflaredQuick => "cloudflared quick tunnel",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One way to make the hub's remote listener reachable from a phone.
///
/// The methods take `&self` (providers keep their session behind a lock) and
/// return boxed futures, so a provider can be held as `Arc<dyn TunnelProvider>`.
/// A provider writes its own state to its [`StatusCell`]: `Starting` and then
/// `Up`/`Failed` in [`start`](Self::start), `Down` when it sees the tunnel lost
/// (a closed bore connection, an exited sidecar, a logged-out Tailscale).
pub trait TunnelProvider: Send + Sync + 'static {
    /// Which provider this is.
    fn kind(&self) -> ProviderKind;

    /// Where TLS ends on this provider's path.
    fn transport(&self) -> Transport;

    /// Whether this path needs the user's explicit consent before it is
    /// offered: true for plaintext paths, whose traffic can be read on the way.
    fn requires_consent(&self) -> bool {
        self.transport() == Transport::Plaintext
    }

    /// The notice the user consents to for a plaintext path (`None` when no
    /// consent is needed). A [`PlaintextConsent`] must carry this exact text.
    fn consent_notice(&self) -> Option<String> {
        self.requires_consent().then(|| {
            format!(
                "{} traffic is not encrypted: anyone who can see the network between your phone \
                 and this computer can read it, including the pairing code and session contents.",
                self.kind()
            )
        })
    }

    /// The address the hub should bind its remote listener to before
    /// [`start`](Self::start): 127.0.0.1 for every provider that forwards from
    /// elsewhere, the LAN address for [`Lan`].
    fn listen_ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }

    /// Whether Server-Sent Events pass through this path unbuffered (they do
    /// not through cloudflared quick tunnels; the UI should use WebSocket there).
    fn supports_sse(&self) -> bool {
        true
    }

    /// The certificate the hub itself serves on this path, which the health
    /// probe trusts instead of the public roots (`None`: the public roots, or
    /// plain HTTP).
    fn trusted_certificate(&self) -> Option<&TrustedCertificate> {
        None
    }

    /// Makes `local` (the bound remote listener) reachable and returns the
    /// public URL (scheme, host and port; no path, no trailing slash). Stops a
    /// previous session of this provider first.
    fn start(&self, local: SocketAddr) -> BoxFuture<'_, Result<String, TunnelError>>;

    /// Tears the tunnel down (idempotent). Keeps a `Down`/`Failed` reason that
    /// is already there, so the cause of a loss stays visible.
    fn stop(&self) -> BoxFuture<'_, ()>;

    /// The cell this provider reports its status through.
    fn status_cell(&self) -> &StatusCell;

    /// The current status.
    fn status(&self) -> TunnelStatus {
        self.status_cell().get()
    }

    /// A receiver that sees every status change.
    fn subscribe(&self) -> watch::Receiver<TunnelStatus> {
        self.status_cell().subscribe()
    }
}

/// `host` as it goes into a URL: IPv6 literals in brackets.
pub(crate) fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// The address a forwarding provider connects to for `local`: the listener's
/// own address, or loopback when it is bound to the unspecified address.
pub(crate) fn forward_target(local: SocketAddr) -> SocketAddr {
    if local.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port())
    } else {
        local
    }
}
