//! bore: an in-process `bore` client (the `bore-cli` crate) to a self-hosted
//! bore server.
//!
//! The server (the user's own VPS, running `bore server --secret …`) gives us
//! a public TCP port and forwards every connection on it to the hub's remote
//! listener. bore carries raw TCP and the server does not terminate TLS, so
//! on its own the path is plaintext and needs consent.
//!
//! With the user's certificate ([`Bore::with_tls`]) the hub's remote listener
//! does the TLS handshake itself, as for LAN: the bore server relays TLS
//! records it cannot read, the URL is `https://HOST:PORT`, TLS ends on this
//! machine, and no consent is needed. The certificate must name the server's
//! host (the name the phone connects to), and the health probe trusts that
//! certificate only.
//!
//! Notes on `bore-cli` 0.6 that shape this file:
//! - the control port is the constant [`BORE_CONTROL_PORT`] (7835) on both
//!   sides; it cannot be configured;
//! - `Client::listen` returns when the server closes the control connection;
//!   it has no shutdown, so stopping aborts its task;
//! - errors are `anyhow` strings: a rejected secret reads
//!   `server error: invalid secret`.

use std::net::SocketAddr;
use std::time::Duration;

use bore_cli::client::Client;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::status::StatusCell;
use crate::{
    BoxFuture, ProviderKind, Transport, TrustedCertificate, TunnelError, TunnelProvider, forward_target, url_host,
};

/// The bore control port (fixed by `bore-cli`): the server must listen on it.
pub const BORE_CONTROL_PORT: u16 = bore_cli::shared::CONTROL_PORT;

/// A tunnel through a self-hosted bore server.
pub struct Bore {
    server_host: String,
    remote_port: u16,
    secret: Option<String>,
    /// The certificate the hub serves through the tunnel (TLS ends here).
    tls: Option<TrustedCertificate>,
    connect_timeout: Duration,
    cell: StatusCell,
    session: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Bore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bore")
            .field("server_host", &self.server_host)
            .field("remote_port", &self.remote_port)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Bore {
    /// A tunnel through the bore server at `server_host` (a host name or IP,
    /// no port: the control port is always [`BORE_CONTROL_PORT`]), which
    /// requires `secret` if it was started with one. The server picks the
    /// public port unless [`with_remote_port`](Self::with_remote_port) asks
    /// for one.
    pub fn new(server_host: impl Into<String>, secret: Option<String>) -> Self {
        Bore {
            server_host: server_host.into(),
            remote_port: 0,
            secret,
            tls: None,
            connect_timeout: Duration::from_secs(10),
            cell: StatusCell::new(Transport::Plaintext),
            session: Mutex::new(None),
        }
    }

    /// The hub's remote listener serves TLS with `certificate` (the hub does
    /// the handshake; the bore server relays it unread): the URL becomes
    /// `https://HOST:PORT`, the transport [`Transport::TlsAtThisMachine`], no
    /// consent is needed, and the health probe trusts `certificate` only.
    /// [`start`](TunnelProvider::start) fails (permanently) when the
    /// certificate does not name the server's host.
    pub fn with_tls(self, certificate: TrustedCertificate) -> Self {
        Bore {
            tls: Some(certificate),
            cell: StatusCell::new(Transport::TlsAtThisMachine),
            ..self
        }
    }

    /// Whether the remote listener is to serve TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Asks the server for this public port (it must be in the server's range
    /// and free), so the URL, and a QR code already scanned, stay the same
    /// across reconnects.
    pub fn with_remote_port(mut self, port: u16) -> Self {
        self.remote_port = port;
        self
    }

    /// The server host.
    pub fn server_host(&self) -> &str {
        &self.server_host
    }

    async fn connect(&self, local: SocketAddr) -> Result<Client, TunnelError> {
        let target = forward_target(local);
        let local_host = target.ip().to_string();
        let connect = Client::new(
            &local_host,
            target.port(),
            &self.server_host,
            self.remote_port,
            self.secret.as_deref(),
        );
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(classify(&format!("{e:#}"))),
            Err(_) => Err(TunnelError::Timeout {
                what: format!("connecting to the bore server {}", self.server_host),
                after: self.connect_timeout,
                detail: None,
            }),
        }
    }
}

/// Sorts a `bore-cli` error: what the server refused is permanent, the rest
/// (refused connection, timeout, a busy port) is worth retrying.
fn classify(message: &str) -> TunnelError {
    const REJECTED: &[&str] = &[
        "invalid secret",
        "requires authentication",
        "server requires secret",
        "no secret was required",
        "not in allowed range",
    ];
    if REJECTED.iter().any(|r| message.contains(r)) {
        TunnelError::Rejected {
            provider: ProviderKind::Bore,
            reason: message.to_owned(),
        }
    } else {
        TunnelError::Connect {
            provider: ProviderKind::Bore,
            reason: message.to_owned(),
        }
    }
}

impl TunnelProvider for Bore {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Bore
    }

    fn transport(&self) -> Transport {
        if self.tls.is_some() {
            Transport::TlsAtThisMachine
        } else {
            Transport::Plaintext
        }
    }

    fn consent_notice(&self) -> Option<String> {
        if self.tls.is_some() {
            return None;
        }
        Some(format!(
            "bore forwards plain, unencrypted TCP: the operator of the bore server {} and anyone \
             on the networks between your phone, that server and this computer can read the \
             traffic, including the pairing code and your sessions.",
            self.server_host
        ))
    }

    fn trusted_certificate(&self) -> Option<&TrustedCertificate> {
        self.tls.as_ref()
    }

    fn start(&self, local: SocketAddr) -> BoxFuture<'_, Result<String, TunnelError>> {
        Box::pin(async move {
            let mut session = self.session.lock().await;
            if let Some(task) = session.take() {
                task.abort();
            }
            self.cell.starting();
            // Checked before connecting: the phone would refuse the
            // certificate, and no retry changes that.
            if let Some(certificate) = &self.tls
                && let Err(reason) = certificate.check_names(&self.server_host)
            {
                let err = TunnelError::Config {
                    provider: ProviderKind::Bore,
                    reason: format!(
                        "{reason} (with a certificate, HAPI_TLS_CERT, the hub serves HTTPS through \
                         bore, so the certificate must name the bore server {} too)",
                        self.server_host
                    ),
                };
                self.cell.failed(err.to_string());
                return Err(err);
            }
            let client = match self.connect(local).await {
                Ok(client) => client,
                Err(e) => {
                    self.cell.failed(e.to_string());
                    return Err(e);
                }
            };
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            let url = format!("{scheme}://{}:{}", url_host(&self.server_host), client.remote_port());
            self.cell.up(&url);
            let cell = self.cell.clone();
            *session = Some(tokio::spawn(async move {
                // Returns when the server closes the control connection. A
                // stop aborts this task, so a stop is never reported as a loss.
                let reason = match client.listen().await {
                    Ok(()) => "the bore server closed the connection".to_owned(),
                    Err(e) => format!("the bore connection failed: {e:#}"),
                };
                cell.lost(reason);
            }));
            Ok(url)
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(task) = self.session.lock().await.take() {
                task.abort();
            }
            self.cell.stopped();
        })
    }

    fn status_cell(&self) -> &StatusCell {
        &self.cell
    }
}
