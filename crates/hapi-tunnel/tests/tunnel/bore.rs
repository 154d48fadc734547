//! bore end to end: a real bore server on 127.0.0.1, the in-process client,
//! the health probe through the public port. Serial (fixed control port).

use std::sync::Arc;
use std::time::Duration;

use hapi_tunnel::{Bore, PlaintextConsent, Transport, Tunnel, TunnelError, TunnelProvider, TunnelState, probe};

use crate::common::{BORE_PORTS, BORE_SERIAL, BoreServer, HealthServer, quick_options, wait_status};

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
