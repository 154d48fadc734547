//! Shared fixtures: the hub stand-ins (`/health`, plain and over TLS), the
//! bore server, certificates, options.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::{Json, Router, routing::get};
use hapi_tunnel::{Backoff, PlaintextConsent, TunnelOptions};
use tokio::sync::{Mutex, oneshot};

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// bore's control port is fixed (7835): one bore server at a time in this
/// process, so every bore test holds this lock.
pub static BORE_SERIAL: Mutex<()> = Mutex::const_new(());

/// The public ports the test bore server hands out.
pub const BORE_PORTS: std::ops::RangeInclusive<u16> = 47_100..=47_399;

/// The hub's unauthenticated health route, counting the requests it answers.
pub struct HealthServer {
    pub addr: SocketAddr,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthServer {
    pub async fn start() -> HealthServer {
        Self::start_on(LOCALHOST).await
    }

    pub async fn start_on(ip: IpAddr) -> HealthServer {
        let hits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&hits);
        let app = Router::new().route(
            "/health",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Json(serde_json::json!({"status": "ok", "version": "test", "uptime_s": 0})) }
            }),
        );
        // Bind first, then serve: the address is live when this returns.
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        HealthServer { addr, hits, task }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A real bore server (`bore_cli::server::Server`) on 127.0.0.1, in a runtime
/// of its own on its own thread, so that killing it (dropping that runtime)
/// closes every connection it holds, as a crashed server would.
pub struct BoreServer {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BoreServer {
    pub async fn start(secret: Option<&str>) -> BoreServer {
        let secret = secret.map(str::to_owned);
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut server = bore_cli::server::Server::new(BORE_PORTS, secret.as_deref());
                server.set_bind_addr(LOCALHOST);
                server.set_bind_tunnels(LOCALHOST);
                tokio::select! {
                    r = server.listen() => panic!("bore server ended: {r:?}"),
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every task: control connections close.
            drop(rt);
        });
        // `listen` has no ready signal: wait for the control port to accept.
        let control = SocketAddr::new(LOCALHOST, hapi_tunnel::BORE_CONTROL_PORT);
        for _ in 0..250 {
            if tokio::net::TcpStream::connect(control).await.is_ok() {
                return BoreServer {
                    stop: Some(stop),
                    thread: Some(thread),
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the bore server did not listen on {control}");
    }

    /// Kills the server and waits until its connections are closed.
    pub async fn kill(mut self) {
        self.shutdown();
        let thread = self.thread.take();
        tokio::task::spawn_blocking(move || thread.map(|t| t.join()))
            .await
            .unwrap();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for BoreServer {
    fn drop(&mut self) {
        self.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Fast retries and no periodic probes (tests that want probes set them).
pub fn quick_options(consent: Option<PlaintextConsent>) -> TunnelOptions {
    TunnelOptions {
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(400),
            jitter: 0.2,
            stable_after: Duration::from_secs(60),
        },
        health_interval: None,
        health_timeout: Duration::from_secs(2),
        unhealthy_after: 2,
        consent,
    }
}

/// Waits until `f` holds for the status, or panics with the last status.
pub async fn wait_status(
    rx: &mut tokio::sync::watch::Receiver<hapi_tunnel::TunnelStatus>,
    within: Duration,
    what: &str,
    f: impl FnMut(&hapi_tunnel::TunnelStatus) -> bool,
) -> hapi_tunnel::TunnelStatus {
    let seen = match tokio::time::timeout(within, rx.wait_for(f)).await {
        Ok(Ok(s)) => Some(s.clone()),
        _ => None,
    };
    seen.unwrap_or_else(|| panic!("{what}: last status {:?}", *rx.borrow()))
}

/// A `/health` stand-in that serves TLS with `chain` and `key` (HTTP/1.1, one
/// request per connection), counting the requests it answers.
pub struct TlsHealthServer {
    pub addr: SocketAddr,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsHealthServer {
    pub async fn start(chain: Vec<Vec<u8>>, key: Vec<u8>) -> TlsHealthServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls;
        let chain = chain.into_iter().map(rustls::pki_types::CertificateDer::from).collect();
        let key = rustls::pki_types::PrivateKeyDer::try_from(key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind((LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&hits);
        let task = tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = r#"{"status":"ok","version":"test","uptime_s":0}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsHealthServer { addr, hits, task }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for TlsHealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A self-signed certificate for `names` (IP addresses become IP entries of
/// its subjectAltName): (certificate DER, PKCS#8 key DER).
pub fn self_signed(names: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names).unwrap();
    (made.cert.der().to_vec(), made.signing_key.serialize_der())
}
