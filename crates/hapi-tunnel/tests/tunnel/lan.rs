//! The LAN provider, the consent rule and the health-driven restart.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hapi_tunnel::{Lan, PlaintextConsent, Transport, Tunnel, TunnelError, TunnelProvider, TunnelState, lan_addresses};

use crate::common::{HealthServer, LOCALHOST, quick_options, wait_status};

#[tokio::test]
async fn lan_reports_its_http_url_and_is_offered_only_with_consent() {
    let hub = HealthServer::start().await;
    let lan = Arc::new(Lan::new(LOCALHOST));
    assert_eq!(lan.listen_ip(), LOCALHOST, "the hub binds the remote listener here");
    assert_eq!(lan.transport(), Transport::Plaintext);
    assert!(lan.requires_consent());
    let notice = lan.consent_notice().unwrap();
    assert!(notice.contains("plain HTTP") && notice.contains("can read"), "{notice}");

    let refused = Tunnel::start(lan.clone(), hub.addr, quick_options(None)).unwrap_err();
    assert!(
        matches!(&refused, TunnelError::ConsentRequired { notice: n } if *n == notice),
        "{refused:?}"
    );
    let other_text = Some(PlaintextConsent::accepted("something else"));
    assert!(Tunnel::start(lan.clone(), hub.addr, quick_options(other_text)).is_err());
    assert_eq!(
        lan.status().state,
        TunnelState::Down {
            reason: "not started".into()
        }
    );

    let consent = Some(PlaintextConsent::accepted(notice));
    let tunnel = Tunnel::start(lan.clone(), hub.addr, quick_options(consent)).unwrap();
    let ready = tunnel.ready(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ready.public_url, format!("http://127.0.0.1:{}", hub.addr.port()));
    assert_eq!(tunnel.status().transport, Transport::Plaintext);
    tunnel.stop().await;
    assert_eq!(
        lan.status().state,
        TunnelState::Down {
            reason: "stopped".into()
        }
    );
}

#[tokio::test]
async fn lan_refuses_a_listener_bound_to_another_address() {
    let lan = Lan::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)));
    let err = lan.start(SocketAddr::new(LOCALHOST, 8080)).await.unwrap_err();
    assert!(
        matches!(err, TunnelError::Config { .. }) && err.is_permanent(),
        "{err:?}"
    );
    assert!(err.to_string().contains("bind it to 192.168.1.20"), "{err}");
    assert_eq!(lan.status().failures, 1);

    let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);
    assert_eq!(lan.start(any).await.unwrap(), "http://192.168.1.20:8080");
}

#[test]
fn lan_addresses_are_non_loopback_ipv4_private_first() {
    let found = lan_addresses().unwrap();
    assert!(found.iter().all(|a| !a.ip.is_loopback() && !a.ip.is_link_local()));
    let first_public = found.iter().position(|a| !a.private).unwrap_or(found.len());
    assert!(found[first_public..].iter().all(|a| !a.private), "{found:?}");
    assert!(found.iter().all(|a| !a.interface.is_empty()));
}

#[tokio::test]
async fn a_tunnel_that_stops_answering_its_probe_is_restarted() {
    let hub = HealthServer::start().await;
    let lan = Arc::new(Lan::new(LOCALHOST));
    let mut options = quick_options(Some(PlaintextConsent::accepted(lan.consent_notice().unwrap())));
    options.health_interval = Some(Duration::from_millis(100));
    options.health_timeout = Duration::from_millis(500);
    let tunnel = Tunnel::start(lan.clone(), hub.addr, options).unwrap();
    tunnel.ready(Duration::from_secs(5)).await.unwrap();
    let mut status = tunnel.subscribe();

    hub.stop();
    let down = wait_status(
        &mut status,
        Duration::from_secs(10),
        "down after probes",
        |s| matches!(&s.state, TunnelState::Down { reason } if reason.contains("health probe")),
    )
    .await;
    assert_eq!(down.failures, 1);
    assert!(
        matches!(&down.state, TunnelState::Down { reason } if reason.contains("2 probes in a row")),
        "{down:?}"
    );
    // The supervisor starts it again (LAN comes up at once; the probes will
    // keep failing until the hub answers again).
    wait_status(&mut status, Duration::from_secs(5), "up again", |s| s.state.is_up()).await;
    tunnel.stop().await;
}
