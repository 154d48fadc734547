//! The hub's own TLS (`HAPI_TLS_CERT`, `HAPI_TLS_KEY`): LAN on 127.0.0.1 with
//! a self-signed certificate made here, pairing and the event streams over
//! HTTPS and WSS, handshakes that never finish, and files the hub refuses.
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hapi_hub::{AppState, HubConfig, TlsFiles};
use hapi_protocol::{
    PairDevice, PairedDevice, Pairing, RemoteAccess, RemoteConsent, RemoteProvider, RemoteState, SetRemoteAccess,
    TransportSecurity,
};
use tokio::io::AsyncWriteExt;
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
    hub.http
        .put(format!("{}/api/remote", hub.url))
        .bearer_auth(&hub.token)
        .json(&SetRemoteAccess {
            provider: Some(lan()),
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

#[tokio::test]
async fn a_certificate_that_does_not_name_the_lan_address_fails_with_the_reason() {
    let cert = Certificate::for_names(&["localhost", "192.168.1.20"]);
    let hub = tls_hub(&cert).await;
    let started = Instant::now();
    let r = put_remote(&hub, None).await;
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "tunnel_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("not valid for 127.0.0.1") && message.contains("IP:127.0.0.1"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not retried: {:?}",
        started.elapsed()
    );
    let access: RemoteAccess = hub.get("/api/remote").send().await.unwrap().json().await.unwrap();
    assert_eq!(access.state, RemoteState::Failed);
    assert_eq!(access.transport, Some(TransportSecurity::TlsAtThisMachine));
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
