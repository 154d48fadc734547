//! The hub's own TLS (`HAPI_TLS_CERT`, `HAPI_TLS_KEY`): LAN on 127.0.0.1 with
//! a self-signed certificate made here, pairing and the event streams over
//! HTTPS and WSS, handshakes that never finish, and files the hub refuses;
//! bore with that certificate through a real bore server on 127.0.0.1.
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hapi_hub::{AppState, HubConfig, TlsFiles};
use hapi_protocol::{
    PairDevice, PairedDevice, Pairing, RemoteAccess, RemoteConsent, RemoteProvider, RemoteState, SetRemoteAccess,
    TransportSecurity,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::TestHub;

/// A self-signed certificate and its key, as PEM files in a directory of their own.
struct Certificate {
    _dir: tempfile::TempDir,
    files: TlsFiles,
    pem: String,
}

impl Certificate {
    fn for_names(names: &[&str]) -> Certificate {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        let pem = made.cert.pem();
        std::fs::write(&files.cert, &pem).unwrap();
        std::fs::write(&files.key, made.signing_key.serialize_pem()).unwrap();
        Certificate { _dir: dir, files, pem }
    }

    /// An HTTPS client that trusts this certificate (as a phone that was
    /// told to trust it), and the public roots not at all.
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    }

    /// A rustls client configuration that trusts this certificate.
    fn rustls_client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

async fn tls_hub(cert: &Certificate) -> TestHub {
    let files = cert.files.clone();
    TestHub::start_with(tempfile::tempdir().unwrap(), move |config| config.tls = Some(files)).await
}

fn lan() -> RemoteProvider {
    RemoteProvider::Lan {
        bind: "127.0.0.1".into(),
        port: 0,
    }
}

async fn put_remote(hub: &TestHub, consent: Option<String>) -> reqwest::Response {
    put_provider(hub, lan(), consent).await
}

async fn put_provider(hub: &TestHub, provider: RemoteProvider, consent: Option<String>) -> reqwest::Response {
    hub.http
        .put(format!("{}/api/remote", hub.url))
        .bearer_auth(&hub.token)
        .json(&SetRemoteAccess {
            provider: Some(provider),
            plaintext_consent: consent,
        })
        .send()
        .await
        .unwrap()
}

async fn pair(hub: &TestHub, https: &reqwest::Client, remote: &str) -> PairedDevice {
    let r = hub.post("/api/pairing").send().await.unwrap();
    assert_eq!(r.status(), 201);
    let pairing: Pairing = r.json().await.unwrap();
    assert!(pairing.url.starts_with(&format!("{remote}/#/pair/")), "{}", pairing.url);
    assert_eq!(pairing.transport, TransportSecurity::TlsAtThisMachine);
    let secret = pairing.url.rsplit_once("/#/pair/").unwrap().1.to_owned();
    let r = https
        .post(format!("{remote}/pair"))
        .json(&PairDevice {
            secret: Some(secret),
            code: None,
            device_name: "Ana's phone".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test]
async fn lan_with_the_hubs_certificate_is_https_ending_here_without_consent() {
    let cert = Certificate::for_names(&["127.0.0.1"]);
    let hub = tls_hub(&cert).await;
    assert!(
        hub.url.starts_with("http://127.0.0.1:"),
        "the local listener stays plain HTTP"
    );

    // No notice to accept: the path is encrypted.
    let consent: RemoteConsent = hub
        .get("/api/remote/consent?kind=lan&bind=127.0.0.1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(consent.notice, None);
    let r = put_remote(&hub, None).await;
    assert_eq!(r.status(), 200);
    let access: RemoteAccess = r.json().await.unwrap();
    assert_eq!(access.state, RemoteState::Up, "{access:?}");
    assert_eq!(access.transport, Some(TransportSecurity::TlsAtThisMachine));
    let remote = access.public_url.unwrap();
    let port = remote
        .strip_prefix("https://127.0.0.1:")
        .unwrap_or_else(|| panic!("an https URL: {remote}"))
        .parse::<u16>()
        .unwrap();
    let plain_url = format!("http://127.0.0.1:{port}");

    // A phone that trusts the certificate pairs and reads over HTTPS.
    let https = cert.client();
    let device = pair(&hub, &https, &remote).await;
    let as_device = |path: &str| https.get(format!("{remote}{path}")).bearer_auth(&device.token);
    let r = as_device("/api/sessions").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(as_device("/health").send().await.unwrap().status(), 200);

    // The https origin of the listener is accepted; its http twin is not.
    let r = https
        .post(format!("{remote}/api/events/ticket"))
        .bearer_auth(&device.token)
        .header("origin", &remote)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "same-origin POST over https");
    let r = https
        .post(format!("{remote}/api/events/ticket"))
        .bearer_auth(&device.token)
        .header("origin", &plain_url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the scheme counts");

    // Events over TLS: SSE, and a WebSocket over wss.
    let sse = as_device("/api/events?after=latest").send().await.unwrap();
    assert_eq!(sse.status(), 200);
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(cert.rustls_client())
        .connect(name, tcp)
        .await
        .unwrap();
    let mut req = format!("wss://127.0.0.1:{port}/api/events/ws?after=latest")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {}", device.token).parse().unwrap());
    req.headers_mut().insert("origin", remote.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();

    let created = hub.create_session().await;
    let id = created.session.id.clone();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(msg) = ws.next().await {
            if let Message::Text(text) = msg.unwrap()
                && text.contains(&id)
            {
                return;
            }
        }
        panic!("the WebSocket closed");
    })
    .await
    .expect("the new session on the wss stream");
    let mut body = sse.bytes_stream();
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut seen = String::new();
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains(&id) {
                return;
            }
        }
        panic!("the SSE stream ended");
    })
    .await
    .expect("the new session on the SSE stream");

    // Plain HTTP to the TLS port gets no answer from the hub.
    let plain = hub.http.get(format!("{plain_url}/health")).send().await;
    assert!(plain.as_ref().map_or(true, |r| !r.status().is_success()), "{plain:?}");

    // Clients that connect and never finish their handshake hold nobody up.
    let mut stalled = Vec::new();
    for _ in 0..5 {
        stalled.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(3), https.get(format!("{remote}/health")).send())
        .await
        .expect("a normal request waited behind stalled handshakes")
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    // A client whose handshake started and stalled does not either.
    let mut half = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(3), as_device("/api/sessions").send())
        .await
        .expect("a normal request waited behind a half handshake")
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(stalled);
    drop(half);

    // Off: the TLS listener is gone.
    let r = hub
        .http
        .put(format!("{}/api/remote", hub.url))
        .bearer_auth(&hub.token)
        .json(&SetRemoteAccess {
            provider: None,
            plaintext_consent: None,
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(https.get(format!("{remote}/health")).send().await.is_err());
    hub.stop().await;
}

/// A provider the hub's certificate does not fit: `502 tunnel_failed` at once
/// (not retried), phone access `failed` with TLS at this machine. Returns the
/// error message.
async fn failed_at_once(hub: &TestHub, r: reqwest::Response, started: Instant) -> String {
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "tunnel_failed");
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not retried: {:?}",
        started.elapsed()
    );
    let access: RemoteAccess = hub.get("/api/remote").send().await.unwrap().json().await.unwrap();
    assert_eq!(access.state, RemoteState::Failed);
    assert_eq!(access.transport, Some(TransportSecurity::TlsAtThisMachine));
    message
}

#[tokio::test]
async fn a_certificate_that_does_not_name_the_lan_address_fails_with_the_reason() {
    let cert = Certificate::for_names(&["localhost", "192.168.1.20"]);
    let hub = tls_hub(&cert).await;
    let started = Instant::now();
    let r = put_remote(&hub, None).await;
    let message = failed_at_once(&hub, r, started).await;
    assert!(
        message.contains("not valid for 127.0.0.1") && message.contains("IP:127.0.0.1"),
        "{message}"
    );
    hub.stop().await;
}

#[test]
fn the_hub_refuses_to_start_with_unusable_tls_files() {
    let cert = Certificate::for_names(&["127.0.0.1"]);
    let other = Certificate::for_names(&["127.0.0.1"]);
    let open = |files: TlsFiles| {
        let home = tempfile::tempdir().unwrap();
        let vault = hapi_hub::auth::Vault::open_with(home.path(), hapi_hub::auth::KeychainMode::Off).unwrap();
        let mut config = HubConfig::for_home(home.path());
        config.tls = Some(files);
        AppState::open_with_vault(config, &vault)
            .err()
            .expect("the hub refuses to start")
            .to_string()
    };
    let missing = cert.files.cert.with_file_name("nope.pem");
    let text = open(TlsFiles {
        cert: missing.clone(),
        key: cert.files.key.clone(),
    });
    assert!(
        text.contains("TLS certificate") && text.contains(&missing.display().to_string()),
        "{text}"
    );
    let text = open(TlsFiles {
        cert: cert.files.cert.clone(),
        key: other.files.key.clone(),
    });
    assert!(
        text.contains("does not belong") && text.contains(&other.files.key.display().to_string()),
        "{text}"
    );
}

const BORE_SECRET: &str = "bore secret of the tls tests";

/// bore's control port is fixed (7835): one bore server at a time here.
static BORE_SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A real bore server (`bore_cli::server::Server`, the version the hub's
/// client speaks) on 127.0.0.1, in a runtime of its own on its own thread;
/// dropping it drops that runtime, which closes every connection it holds.
struct BoreServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl BoreServer {
    async fn start() -> BoreServer {
        let serial = BORE_SERIAL.lock().await;
        let localhost = std::net::IpAddr::from([127, 0, 0, 1]);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut server = bore_cli::server::Server::new(47_400..=47_699, Some(BORE_SECRET));
                server.set_bind_addr(localhost);
                server.set_bind_tunnels(localhost);
                tokio::select! {
                    r = server.listen() => panic!("bore server ended: {r:?}"),
                    _ = stopped => {}
                }
            });
        });
        // `listen` has no ready signal: wait for the control port to accept.
        let control = std::net::SocketAddr::new(localhost, hapi_tunnel::BORE_CONTROL_PORT);
        for _ in 0..250 {
            if tokio::net::TcpStream::connect(control).await.is_ok() {
                return BoreServer {
                    stop: Some(stop),
                    thread: Some(thread),
                    _serial: serial,
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the bore server did not listen on {control}");
    }
}

impl Drop for BoreServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn bore(host: &str) -> RemoteProvider {
    RemoteProvider::Bore {
        host: host.into(),
        secret: Some(BORE_SECRET.into()),
    }
}

async fn consent_for_bore(hub: &TestHub, host: &str) -> RemoteConsent {
    let r = hub
        .get(&format!("/api/remote/consent?kind=bore&host={host}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn bore_with_the_hubs_certificate_is_https_to_this_machine_without_consent() {
    let relay = BoreServer::start().await;
    // The bore server by name: the certificate names it, the phone sends it.
    let cert = Certificate::for_names(&["localhost"]);
    let hub = tls_hub(&cert).await;

    assert_eq!(
        consent_for_bore(&hub, "localhost").await.notice,
        None,
        "nothing to accept"
    );
    let r = put_provider(&hub, bore("localhost"), None).await;
    assert_eq!(r.status(), 200);
    let access: RemoteAccess = r.json().await.unwrap();
    assert_eq!(access.state, RemoteState::Up, "{access:?}");
    assert_eq!(access.transport, Some(TransportSecurity::TlsAtThisMachine));
    assert_eq!(
        access.provider,
        Some(RemoteProvider::Bore {
            host: "localhost".into(),
            secret: None
        }),
        "the secret is not returned"
    );
    let remote = access.public_url.unwrap();
    let port = remote
        .strip_prefix("https://localhost:")
        .unwrap_or_else(|| panic!("an https URL on the bore host: {remote}"))
        .parse::<u16>()
        .unwrap();
    assert!((47_400..=47_699).contains(&port), "a port of the bore server: {port}");

    // A phone that trusts the certificate pairs through the relay over TLS.
    let https = cert.client();
    let device = pair(&hub, &https, &remote).await;
    let r = https
        .get(format!("{remote}/api/sessions"))
        .bearer_auth(&device.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A forged device token opens nothing.
    let r = https
        .get(format!("{remote}/api/sessions"))
        .bearer_auth("f".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    // What the relay carries is TLS: plain HTTP through its public port gets
    // no HTTP answer at all (a TLS alert, or the connection closed).
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain
        .write_all(format!("GET /health HTTP/1.1\r\nhost: localhost:{port}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/"), "{:?}", String::from_utf8_lossy(&answer));
    // And a client that does not trust the certificate is refused.
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(untrusting.get(format!("{remote}/health")).send().await.is_err());

    // Off: the public port no longer reaches the hub.
    let r = hub
        .http
        .put(format!("{}/api/remote", hub.url))
        .bearer_auth(&hub.token)
        .json(&SetRemoteAccess {
            provider: None,
            plaintext_consent: None,
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(https.get(format!("{remote}/health")).send().await.is_err());
    hub.stop().await;
    drop(relay);
}

#[tokio::test]
async fn bore_with_a_certificate_for_another_name_fails_with_the_reason() {
    let cert = Certificate::for_names(&["localhost"]);
    let hub = tls_hub(&cert).await;
    let started = Instant::now();
    let r = put_provider(&hub, bore("127.0.0.1"), None).await;
    let message = failed_at_once(&hub, r, started).await;
    assert!(
        message.contains("not valid for 127.0.0.1") && message.contains("must name the bore server 127.0.0.1"),
        "{message}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn bore_without_a_certificate_stays_plaintext_with_consent() {
    let relay = BoreServer::start().await;
    let hub = TestHub::start().await;
    let notice = consent_for_bore(&hub, "127.0.0.1")
        .await
        .notice
        .expect("plaintext bore needs consent");
    assert!(
        notice.contains("127.0.0.1") && notice.contains("can read the traffic"),
        "{notice}"
    );

    let r = put_provider(&hub, bore("127.0.0.1"), None).await;
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "consent_required");

    let r = put_provider(&hub, bore("127.0.0.1"), Some(notice)).await;
    assert_eq!(r.status(), 200);
    let access: RemoteAccess = r.json().await.unwrap();
    assert_eq!(access.state, RemoteState::Up, "{access:?}");
    assert_eq!(access.transport, Some(TransportSecurity::Plaintext));
    let remote = access.public_url.unwrap();
    assert!(remote.starts_with("http://127.0.0.1:"), "{remote}");
    let r = hub.http.get(format!("{remote}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200, "plain HTTP through the relay");
    hub.stop().await;
    drop(relay);
}
