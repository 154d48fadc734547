//! The LAN provider, the consent rule, the health-driven restart, and LAN
//! with the user's TLS certificate.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hapi_tunnel::{
    Lan, PlaintextConsent, Transport, TrustedCertificate, Tunnel, TunnelError, TunnelProvider, TunnelState,
    lan_addresses, probe, probe_trusting,
};

use crate::common::{HealthServer, LOCALHOST, TlsHealthServer, quick_options, self_signed, wait_status};

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

#[tokio::test]
async fn lan_with_tls_is_https_ending_here_without_consent_and_its_probe_trusts_that_certificate() {
    let (cert, key) = self_signed(&["127.0.0.1"]);
    let hub = TlsHealthServer::start(vec![cert.clone()], key).await;
    let trusted = TrustedCertificate::new(vec![cert]).unwrap();
    let lan = Arc::new(Lan::new(LOCALHOST).with_tls(trusted));
    assert!(lan.is_tls());
    assert_eq!(lan.listen_ip(), LOCALHOST);
    assert_eq!(lan.transport(), Transport::TlsAtThisMachine);
    assert_eq!(lan.status().transport, Transport::TlsAtThisMachine);
    assert!(!lan.requires_consent());
    assert_eq!(lan.consent_notice(), None);
    assert!(lan.trusted_certificate().is_some());

    // No consent needed; the supervisor's probe trusts the certificate.
    let tunnel = Tunnel::start(lan.clone(), hub.addr, quick_options(None)).unwrap();
    let ready = tunnel.ready(Duration::from_secs(5)).await.unwrap();
    let url = format!("https://127.0.0.1:{}", hub.addr.port());
    assert_eq!(ready.public_url, url);
    assert_eq!(tunnel.status().transport, Transport::TlsAtThisMachine);

    // Verification is not off: the public roots do not know this certificate.
    let err = probe(&url, Duration::from_secs(5)).await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    // Nor does plain HTTP reach a TLS listener.
    let plain = format!("http://127.0.0.1:{}", hub.addr.port());
    assert!(probe(&plain, Duration::from_secs(5)).await.is_err());
    tunnel.stop().await;
}

#[tokio::test]
async fn lan_with_tls_refuses_a_certificate_that_does_not_name_its_address() {
    let (cert, key) = self_signed(&["localhost", "192.168.1.20"]);
    let hub = TlsHealthServer::start(vec![cert.clone()], key).await;
    let trusted = TrustedCertificate::new(vec![cert]).unwrap();
    let lan = Lan::new(LOCALHOST).with_tls(trusted.clone());
    let err = lan.start(hub.addr).await.unwrap_err();
    assert!(
        matches!(err, TunnelError::Config { .. }) && err.is_permanent(),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("not valid for 127.0.0.1") && text.contains("IP:127.0.0.1"),
        "{text}"
    );
    assert!(matches!(lan.status().state, TunnelState::Failed { .. }));

    // The probe says the same when it meets it: the phone would refuse it too.
    let url = format!("https://127.0.0.1:{}", hub.addr.port());
    let err = probe_trusting(&url, Duration::from_secs(5), &trusted)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not name this address"), "{err}");
    // The names it has are fine.
    let by_name = format!("https://localhost:{}", hub.addr.port());
    probe_trusting(&by_name, Duration::from_secs(5), &trusted)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_probe_trusts_a_certificate_from_a_private_ca_and_no_other() {
    // A private CA (trusted on the phone, unknown here) and two certificates it issued.
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "HAPI test private CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let issue = || {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "hub");
        let cert = params.signed_by(&key, &ca).unwrap();
        (cert.der().to_vec(), key.serialize_der())
    };
    let (ours, our_key) = issue();
    let (other, other_key) = issue();

    // The file holds the end-entity certificate only: it is accepted as is.
    let trusted = TrustedCertificate::new(vec![ours.clone()]).unwrap();
    let hub = TlsHealthServer::start(vec![ours], our_key).await;
    let url = format!("https://127.0.0.1:{}", hub.addr.port());
    probe_trusting(&url, Duration::from_secs(5), &trusted).await.unwrap();

    // Another certificate of the same CA is not the configured one.
    let impostor = TlsHealthServer::start(vec![other], other_key).await;
    let url = format!("https://127.0.0.1:{}", impostor.addr.port());
    let err = probe_trusting(&url, Duration::from_secs(5), &trusted)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // With the CA in the file, the chain is checked the ordinary way.
    let with_ca = TrustedCertificate::new(vec![ca.der().to_vec()]).unwrap();
    probe_trusting(&url, Duration::from_secs(5), &with_ca).await.unwrap();

    assert!(TrustedCertificate::new(Vec::new()).is_err());
    assert!(TrustedCertificate::new(vec![b"not a certificate".to_vec()]).is_err());
}
