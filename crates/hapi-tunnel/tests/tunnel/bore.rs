//! bore end to end: a real bore server on 127.0.0.1, the in-process client,
//! the health probe through the public port, plain and with the hub's own
//! certificate. Serial (fixed control port).

use std::sync::Arc;
use std::time::Duration;

use hapi_tunnel::{
    Bore, PlaintextConsent, Transport, TrustedCertificate, Tunnel, TunnelError, TunnelProvider, TunnelState, probe,
    probe_trusting,
};

use crate::common::{
    BORE_PORTS, BORE_SERIAL, BoreServer, HealthServer, TlsHealthServer, quick_options, self_signed, wait_status,
};

const SECRET: &str = "correct horse battery staple";

fn consent(p: &Bore) -> Option<PlaintextConsent> {
    Some(PlaintextConsent::accepted(p.consent_notice().unwrap()))
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_probe_passes_through_a_bore_tunnel() {
    let _serial = BORE_SERIAL.lock().await;
    let server = BoreServer::start(Some(SECRET)).await;
    let hub = HealthServer::start().await;

    let bore = Arc::new(Bore::new("127.0.0.1", Some(SECRET.into())));
    assert_eq!(bore.transport(), Transport::Plaintext);
    assert!(bore.requires_consent());
    let notice = bore.consent_notice().unwrap();
    assert!(notice.contains("can read the traffic"), "{notice}");
    assert!(!format!("{bore:?}").contains(SECRET), "the secret is redacted");

    let tunnel = Tunnel::start(bore.clone(), hub.addr, quick_options(consent(&bore))).unwrap();
    let ready = tunnel.ready(Duration::from_secs(15)).await.unwrap();
    assert!(
        ready.public_url.starts_with("http://127.0.0.1:"),
        "{}",
        ready.public_url
    );
    let public_port = port_of(&ready.public_url);
    assert!(BORE_PORTS.contains(&public_port) && public_port != hub.addr.port());

    let hits = hub.hits();
    probe(&ready.public_url, Duration::from_secs(5)).await.unwrap();
    assert_eq!(hub.hits(), hits + 1, "the probe reached the local server through bore");

    let status = tunnel.status();
    assert_eq!(
        status.state,
        TunnelState::Up {
            public_url: ready.public_url.clone()
        }
    );
    assert_eq!((status.failures, status.transport), (0, Transport::Plaintext));

    tunnel.stop().await;
    assert_eq!(
        bore.status().state,
        TunnelState::Down {
            reason: "stopped".into()
        }
    );
    assert!(
        probe(&ready.public_url, Duration::from_secs(2)).await.is_err(),
        "the public port no longer reaches the hub once stopped"
    );
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_fails_with_the_servers_message_and_is_not_retried() {
    let _serial = BORE_SERIAL.lock().await;
    let server = BoreServer::start(Some(SECRET)).await;
    let hub = HealthServer::start().await;

    let bore = Bore::new("127.0.0.1", Some("wrong".into()));
    let err = bore.start(hub.addr).await.unwrap_err();
    assert!(matches!(err, TunnelError::Rejected { .. }), "{err:?}");
    assert!(err.is_permanent());
    assert!(err.to_string().contains("server error: invalid secret"), "{err}");
    let status = bore.status();
    assert_eq!(status.failures, 1);
    assert!(
        matches!(&status.state, TunnelState::Failed { reason } if reason.contains("invalid secret")),
        "{status:?}"
    );

    let no_secret = Bore::new("127.0.0.1", None);
    let err = no_secret.start(hub.addr).await.unwrap_err();
    assert!(err.to_string().contains("requires authentication"), "{err}");

    // Under supervision: one attempt, then it gives up and says why.
    let bore = Arc::new(Bore::new("127.0.0.1", Some("wrong".into())));
    let tunnel = Tunnel::start(bore.clone(), hub.addr, quick_options(consent(&bore))).unwrap();
    let err = tunnel.wait_up(Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(err.code(), "tunnel_rejected");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tunnel.status().failures, 1, "a permanent error is not retried");
    assert_eq!(tunnel.gave_up().map(|e| e.code()), Some("tunnel_rejected"));
    tunnel.stop().await;
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_marks_the_tunnel_down_and_it_reconnects_to_a_new_one() {
    let _serial = BORE_SERIAL.lock().await;
    let server = BoreServer::start(Some(SECRET)).await;
    let hub = HealthServer::start().await;
    let bore = Arc::new(Bore::new("127.0.0.1", Some(SECRET.into())));
    let tunnel = Tunnel::start(bore.clone(), hub.addr, quick_options(consent(&bore))).unwrap();
    let first = tunnel.ready(Duration::from_secs(15)).await.unwrap();
    let mut status = tunnel.subscribe();

    server.kill().await;
    let down = wait_status(&mut status, Duration::from_secs(10), "down after the kill", |s| {
        !s.state.is_up()
    })
    .await;
    assert!(
        matches!(&down.state, TunnelState::Down { reason } if reason.contains("closed the connection")),
        "{down:?}"
    );
    assert!(down.failures >= 1);

    // No server: every retry is refused, counted, and retried with backoff.
    let counted = wait_status(&mut status, Duration::from_secs(10), "refused retries", |s| {
        s.failures >= 3
    })
    .await;
    assert!(
        matches!(&counted.state, TunnelState::Failed { reason } if reason.contains("could not connect")),
        "{counted:?}"
    );
    assert!(tunnel.gave_up().is_none(), "a refused connection is retried");

    let server = BoreServer::start(Some(SECRET)).await;
    let again = tunnel.ready(Duration::from_secs(15)).await.unwrap();
    probe(&again.public_url, Duration::from_secs(5)).await.unwrap();
    assert!(tunnel.status().failures >= 3);
    // The new server picks the public port again: the status holds the URL to use.
    assert!(
        again.public_url.starts_with("http://127.0.0.1:"),
        "{}",
        again.public_url
    );
    assert!(BORE_PORTS.contains(&port_of(&first.public_url)));

    tunnel.stop().await;
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bore_with_the_hubs_certificate_is_https_ending_here_without_consent() {
    let _serial = BORE_SERIAL.lock().await;
    let server = BoreServer::start(Some(SECRET)).await;
    // The hub's certificate names the bore server's host name (not an IP), so
    // the name is checked and sent as the server name.
    let (cert, key) = self_signed(&["localhost"]);
    let hub = TlsHealthServer::start(vec![cert.clone()], key).await;
    let trusted = TrustedCertificate::new(vec![cert]).unwrap();

    let bore = Arc::new(Bore::new("localhost", Some(SECRET.into())).with_tls(trusted.clone()));
    assert!(bore.is_tls());
    assert_eq!(bore.transport(), Transport::TlsAtThisMachine);
    assert_eq!(bore.status().transport, Transport::TlsAtThisMachine);
    assert!(!bore.requires_consent());
    assert_eq!(bore.consent_notice(), None);
    assert!(bore.trusted_certificate().is_some());

    // No consent needed; `ready` means the supervisor's probe, trusting the
    // certificate, passed through the bore server.
    let tunnel = Tunnel::start(bore.clone(), hub.addr, quick_options(None)).unwrap();
    let ready = tunnel.ready(Duration::from_secs(15)).await.unwrap();
    assert!(
        ready.public_url.starts_with("https://localhost:"),
        "{}",
        ready.public_url
    );
    let public_port = port_of(&ready.public_url);
    assert!(BORE_PORTS.contains(&public_port) && public_port != hub.addr.port());
    assert_eq!(tunnel.status().transport, Transport::TlsAtThisMachine);
    assert!(hub.hits() >= 1, "the readiness probe reached the TLS server");

    let hits = hub.hits();
    probe_trusting(&ready.public_url, Duration::from_secs(5), &trusted)
        .await
        .unwrap();
    assert_eq!(hub.hits(), hits + 1, "the probe went through bore to the TLS server");

    // Verification is not off: the public roots do not know this certificate.
    let err = probe(&ready.public_url, Duration::from_secs(5)).await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    // Plain HTTP through the public port reaches a TLS handshake, not the hub.
    let plain = format!("http://127.0.0.1:{public_port}");
    assert!(probe(&plain, Duration::from_secs(5)).await.is_err());
    assert_eq!(hub.hits(), hits + 1, "neither request was answered");

    tunnel.stop().await;
    assert!(
        probe_trusting(&ready.public_url, Duration::from_secs(2), &trusted)
            .await
            .is_err(),
        "the public port no longer reaches the hub once stopped"
    );
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_does_not_name_the_bore_host_fails_for_good_saying_so() {
    let _serial = BORE_SERIAL.lock().await;
    let server = BoreServer::start(Some(SECRET)).await;
    let hub = HealthServer::start().await;

    // A certificate for a name, and the server given by its IP.
    let (for_name, _) = self_signed(&["localhost"]);
    let bore = Bore::new("127.0.0.1", Some(SECRET.into())).with_tls(TrustedCertificate::new(vec![for_name]).unwrap());
    let err = bore.start(hub.addr).await.unwrap_err();
    assert!(
        matches!(err, TunnelError::Config { .. }) && err.is_permanent(),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("not valid for 127.0.0.1")
            && text.contains("IP:127.0.0.1")
            && text.contains("must name the bore server 127.0.0.1"),
        "{text}"
    );
    assert!(
        matches!(&bore.status().state, TunnelState::Failed { reason } if *reason == text),
        "{:?}",
        bore.status()
    );

    // A certificate for an IP, and the server given by name.
    let (for_ip, _) = self_signed(&["127.0.0.1"]);
    let trusted = TrustedCertificate::new(vec![for_ip]).unwrap();
    let bore = Arc::new(Bore::new("localhost", Some(SECRET.into())).with_tls(trusted));
    let err = bore.start(hub.addr).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("not valid for localhost") && text.contains("DNS:localhost"),
        "{text}"
    );

    // Under supervision: one attempt, then it gives up and says why.
    let tunnel = Tunnel::start(bore.clone(), hub.addr, quick_options(None)).unwrap();
    let err = tunnel.wait_up(Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(err.code(), "tunnel_config");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tunnel.gave_up().map(|e| e.code()), Some("tunnel_config"));
    assert_eq!(tunnel.status().failures, 2, "one failure per start, none retried");
    assert_eq!(hub.hits(), 0, "nothing was forwarded");
    tunnel.stop().await;
    server.kill().await;
}

#[test]
fn certificate_names_cover_host_names_wildcards_and_ip_addresses() {
    let trusted = |names: &[&str]| TrustedCertificate::new(vec![self_signed(names).0]).unwrap();

    let wildcard = trusted(&["*.example.com"]);
    wildcard.check_names("bore.example.com").unwrap();
    wildcard.check_names("Bore.EXAMPLE.com").unwrap();
    for host in ["example.com", "a.bore.example.com", "bore.example.org"] {
        let err = wildcard.check_names(host).unwrap_err();
        assert!(err.contains(&format!("not valid for {host}")), "{err}");
    }
    let err = wildcard.check_names("a.bore.example.com").unwrap_err();
    assert!(
        err.contains("DNS:a.bore.example.com (or the wildcard DNS:*.bore.example.com)"),
        "{err}"
    );

    let exact = trusted(&["bore.example.com", "192.0.2.7", "::1"]);
    exact.check_names("bore.example.com").unwrap();
    exact.check_names("192.0.2.7").unwrap();
    exact.check_names("::1").unwrap();
    exact.check_names("[::1]").unwrap();
    // An IP address is matched against IP entries only, never a DNS entry.
    let err = trusted(&["192.0.2.7.example.com"])
        .check_names("192.0.2.7")
        .unwrap_err();
    assert!(err.contains("IP:192.0.2.7"), "{err}");
    let err = exact.check_names("2001:db8::1").unwrap_err();
    assert!(err.contains("IP:2001:db8::1"), "{err}");
    let err = exact.check_names("not a host").unwrap_err();
    assert!(err.contains("neither an IP address nor a host name"), "{err}");
}
