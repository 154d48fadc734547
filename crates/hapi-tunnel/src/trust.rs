//! [`TrustedCertificate`]: the certificate the hub serves itself (the user's
//! `HAPI_TLS_CERT`, on LAN or through bore), which the health probe of that
//! provider trusts.
//!
//! Such a certificate is self-signed or issued by a private CA that the phone
//! trusts but this process does not know, so the probe cannot check it against
//! the public roots. It does not turn verification off either: it trusts
//! exactly the configured certificates (every one of the chain is a root for
//! it), and when the end-entity certificate does not chain to one of them (it
//! was issued by a CA outside the file) it accepts that certificate only, byte
//! for byte. In both cases the
//! certificate must name the address the phone connects to (the LAN IP, the
//! bore server's host): a certificate without it in its subjectAltName fails
//! the probe, as it would fail on the phone.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::{ProviderKind, TunnelError};

/// The certificate chain the hub serves on its remote listener, for the
/// health probe to trust (and nothing else).
#[derive(Clone)]
pub struct TrustedCertificate {
    leaf: CertificateDer<'static>,
    client: reqwest::Client,
}

impl std::fmt::Debug for TrustedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedCertificate").finish_non_exhaustive()
    }
}

impl TrustedCertificate {
    /// Trusts `chain`: the DER certificates the hub serves, end-entity first
    /// (as read from `HAPI_TLS_CERT`). Fails when the chain is empty or a
    /// certificate cannot be parsed.
    pub fn new(chain: Vec<Vec<u8>>) -> Result<Self, TunnelError> {
        let config_error = |reason: String| TunnelError::Config {
            provider: ProviderKind::Lan,
            reason,
        };
        let chain: Vec<CertificateDer<'static>> = chain.into_iter().map(CertificateDer::from).collect();
        let leaf = chain
            .first()
            .cloned()
            .ok_or_else(|| config_error("the TLS certificate chain is empty".into()))?;
        ParsedCertificate::try_from(&leaf)
            .map_err(|e| config_error(format!("the TLS certificate cannot be parsed: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        // A certificate that cannot be a trust anchor (none can be extracted
        // from it) is still pinned as the end-entity below.
        let _ = roots.add_parsable_certificates(chain.iter().cloned());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .ok();
        let verifier = Arc::new(Pinned {
            leaf: leaf.clone(),
            webpki,
            provider: Arc::clone(&provider),
        });
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(format!("TLS client settings: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let client = crate::probe::client_builder()
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| config_error(format!("cannot build the probe's HTTPS client: {e}")))?;
        Ok(TrustedCertificate { leaf, client })
    }

    /// Checks that the end-entity certificate is valid for `host`, the name
    /// or address the phone connects to: an IP address (`192.168.1.20`,
    /// `::1`, `[::1]`) needs an `IP:` entry in its subjectAltName, a host name
    /// a `DNS:` entry, exact or a wildcard (`*.example.com` names
    /// `bore.example.com`, not `example.com` nor `a.b.example.com`). A phone
    /// connecting to `https://host:PORT` refuses the certificate otherwise. The
    /// error says what to change.
    pub fn check_names(&self, host: &str) -> Result<(), String> {
        let host = host.trim();
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let (name, entry) = match bare.parse::<IpAddr>() {
            Ok(ip) => (ServerName::IpAddress(ip.into()), format!("IP:{ip}")),
            Err(_) => match ServerName::try_from(bare) {
                Ok(name) => {
                    let wildcard = bare
                        .split_once('.')
                        .filter(|(_, parent)| parent.contains('.'))
                        .map(|(_, parent)| format!(" (or the wildcard DNS:*.{parent})"))
                        .unwrap_or_default();
                    (name, format!("DNS:{bare}{wildcard}"))
                }
                Err(e) => return Err(format!("{host:?} is neither an IP address nor a host name ({e})")),
            },
        };
        let parsed = ParsedCertificate::try_from(&self.leaf).map_err(|e| e.to_string())?;
        rustls::client::verify_server_name(&parsed, &name).map_err(|e| {
            format!(
                "the TLS certificate is not valid for {bare} ({e}); a phone connecting to {bare} would refuse it: \
                 use a certificate whose subjectAltName includes {entry}"
            )
        })
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// Accepts a server certificate that chains to one of the configured
/// certificates, or that is the configured end-entity certificate itself
/// (byte for byte); in both cases valid for the name connected to.
#[derive(Debug)]
struct Pinned {
    leaf: CertificateDer<'static>,
    /// `None` when no configured certificate could be a trust anchor.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

/// An expired (or not yet valid) certificate is refused by a phone too.
fn out_of_date(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
        )
    )
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chained = match &self.webpki {
            Some(webpki) => webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            None => Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        };
        match chained {
            // No chain to a configured certificate (issued by a CA outside the
            // file, one the phone trusts; or a self-signed certificate marked
            // as a CA, as `openssl req -x509` makes them): the very
            // certificate configured is accepted, unless it is out of date, and
            // it must still name the address connected to.
            Err(e) if end_entity.as_ref() == self.leaf.as_ref() && !out_of_date(&e) => {
                let parsed = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
