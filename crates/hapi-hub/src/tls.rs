//! The hub's own TLS: the user's certificate (`HAPI_TLS_CERT`, `HAPI_TLS_KEY`,
//! or `hapi hub --tls-cert FILE --tls-key FILE`) on the remote listener of the
//! LAN and bore providers.
//!
//! Where it applies, and why only there:
//! - **LAN**: the phone connects straight to this machine, so this machine is
//!   where TLS must end. With a certificate the URL is `https://IP:PORT`, the
//!   transport `tls_at_this_machine`, and no plaintext consent is asked.
//! - **bore** relays raw TCP, so the handshake still happens here: with a
//!   certificate that names the bore server's host, the URL is
//!   `https://HOST:PORT` and the relay carries only ciphertext.
//! - **The local listener** (127.0.0.1) stays plain HTTP: the desktop webview,
//!   `hapi`, session wrappers and the runner use it, and loopback traffic never
//!   leaves this machine.
//! - **Tunnels** keep a plain-HTTP remote listener on 127.0.0.1: Tailscale
//!   Serve ends TLS itself (in `tailscaled`, on this machine), cloudflared at
//!   Cloudflare.
//!
//! The files are read and checked when the hub starts ([`HubTls::load`]): a
//! missing file, a file without a certificate or key, or a key that is not the
//! certificate's stops the hub with a message naming the file.
//!
//! Handshakes run in tasks of their own, each within [`HANDSHAKE_TIMEOUT`], and
//! the listener hands finished ones to the server: a client that connects and
//! never completes its handshake holds one of the listener's connection
//! permits for at most that long, and never delays anyone else.
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hapi_tunnel::TrustedCertificate;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

use crate::config::TlsFiles;
use crate::remote::CappedIo;

/// How long a client may take to finish its TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The hub's TLS settings cannot be used. The message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file cannot be read or holds no usable certificate.
    #[error("cannot use the TLS certificate {} (HAPI_TLS_CERT, --tls-cert): {reason}", path.display())]
    Cert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file cannot be read or holds no usable private key.
    #[error("cannot use the TLS private key {} (HAPI_TLS_KEY, --tls-key): {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error(
        "the TLS private key {} does not belong to the certificate {} (the first certificate of \
         HAPI_TLS_CERT must be the one the key was made for)",
        key.display(),
        cert.display()
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

/// The loaded certificate and key: what the remote listener serves, and what
/// the tunnel's health probe trusts.
#[derive(Clone)]
pub(crate) struct HubTls {
    acceptor: TlsAcceptor,
    trusted: TrustedCertificate,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| e.to_string())
}

impl HubTls {
    /// Reads and checks `files`: at least one certificate, one unencrypted
    /// private key, and the key must match the first certificate.
    pub(crate) fn load(files: &TlsFiles) -> Result<HubTls, TlsError> {
        let cert_error = |reason: String| TlsError::Cert {
            path: files.cert.clone(),
            reason,
        };
        let key_error = |reason: String| TlsError::Key {
            path: files.key.clone(),
            reason,
        };
        let cert_pem = read(&files.cert).map_err(cert_error)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_error(format!("not a PEM file ({e})")))?;
        if chain.is_empty() {
            return Err(cert_error(
                "no certificate in it (expected PEM `-----BEGIN CERTIFICATE-----` blocks, the \
                 server's certificate first)"
                    .into(),
            ));
        }
        let key_pem = read(&files.key).map_err(key_error)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => key_error(
                "no private key in it (expected an unencrypted PEM `PRIVATE KEY`, `RSA PRIVATE KEY` \
                 or `EC PRIVATE KEY` block)"
                    .into(),
            ),
            e => key_error(format!("not a PEM private key ({e})")),
        })?;
        let trusted = TrustedCertificate::new(chain.iter().map(|c| c.to_vec()).collect())
            .map_err(|e| cert_error(format!("the first certificate cannot be parsed: {e}")))?;
        let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| cert_error(format!("TLS settings: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                },
                e => key_error(e.to_string()),
            })?;
        // HTTP/1.1 only: what the hub's WebSockets upgrade from.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HubTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            trusted,
        })
    }

    /// The certificate, for the health probe of the LAN provider.
    pub(crate) fn trusted(&self) -> &TrustedCertificate {
        &self.trusted
    }
}

/// A connection that finished its handshake, with its listener permit.
type Accepted = (CappedIo<TlsStream<TcpStream>>, SocketAddr);

/// The remote listener with TLS: a task accepts TCP connections (at most as
/// many at once as `permits` allows, handshakes included) and runs each
/// handshake in a task of its own; [`accept`](axum::serve::Listener::accept)
/// hands out those that finished. Dropping it stops accepting and ends the
/// handshakes still running.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<Accepted>,
    local: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    pub(crate) fn new(listener: TcpListener, permits: Arc<Semaphore>, tls: &HubTls) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(16);
        let acceptor = tokio::spawn(accept_loop(listener, permits, tls.acceptor.clone(), tx));
        Ok(TlsListener { ready, local, acceptor })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(mut listener: TcpListener, permits: Arc<Semaphore>, tls: TlsAcceptor, tx: mpsc::Sender<Accepted>) {
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => p.expect("the semaphore is never closed"),
            _ = tx.closed() => return,
        };
        let (tcp, peer) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            _ = tx.closed() => return,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
        let tls = tls.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp));
            let done = tokio::select! {
                done = handshake => done,
                // The listener stopped: drop the connection.
                _ = tx.closed() => return,
            };
            match done {
                Ok(Ok(io)) => {
                    let _ = tx.send((CappedIo::new(io, permit), peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = CappedIo<TlsStream<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (it ends only when this listener does).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        }

        fn load(&self, cert: &Path, key: &Path) -> Result<HubTls, TlsError> {
            HubTls::load(&TlsFiles {
                cert: cert.to_owned(),
                key: key.to_owned(),
            })
        }
    }

    fn made(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    #[test]
    fn a_matching_certificate_and_key_load() {
        let files = Files::new();
        let (cert, key) = made(&["127.0.0.1"]);
        let cert = files.write("cert.pem", &cert);
        let key = files.write("key.pem", &key);
        files.load(&cert, &key).unwrap();
    }

    #[test]
    fn unusable_files_are_refused_naming_the_file() {
        let files = Files::new();
        let (cert_pem, key_pem) = made(&["127.0.0.1"]);
        let cert = files.write("cert.pem", &cert_pem);
        let key = files.write("key.pem", &key_pem);
        let missing = files.dir.path().join("missing.pem");
        let garbage = files.write("garbage.pem", "hello\n");
        let message = |r: Result<HubTls, TlsError>| r.err().expect("refused").to_string();

        let text = message(files.load(&missing, &key));
        assert!(
            text.contains("TLS certificate") && text.contains("missing.pem") && text.contains("No such file"),
            "{text}"
        );
        let text = message(files.load(&cert, &missing));
        assert!(
            text.contains("TLS private key") && text.contains("missing.pem"),
            "{text}"
        );
        let text = message(files.load(&garbage, &key));
        assert!(
            text.contains("garbage.pem") && text.contains("no certificate"),
            "{text}"
        );
        // The two files swapped: no certificate in the key file.
        let text = message(files.load(&key, &cert));
        assert!(text.contains("key.pem") && text.contains("no certificate"), "{text}");
        let text = message(files.load(&cert, &garbage));
        assert!(
            text.contains("garbage.pem") && text.contains("no private key"),
            "{text}"
        );

        // Another key pair's key.
        let (_, other_key) = made(&["127.0.0.1"]);
        let other_key = files.write("other-key.pem", &other_key);
        let text = message(files.load(&cert, &other_key));
        assert!(
            text.contains("does not belong") && text.contains("other-key.pem") && text.contains("cert.pem"),
            "{text}"
        );
    }
}
