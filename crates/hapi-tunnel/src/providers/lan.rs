//! LAN: the phone reaches the hub's remote listener directly on a LAN address.
//!
//! Nothing is forwarded: the hub binds its remote listener to the chosen
//! address ([`TunnelProvider::listen_ip`]) and this provider reports
//! `http://IP:PORT`. It is the default for a first pairing at home, and it is
//! plaintext: anyone on that network can read the traffic, so it needs consent.
//!
//! With the user's certificate ([`Lan::with_tls`]) the hub serves TLS on that
//! listener itself: the URL is `https://IP:PORT`, TLS ends on this machine, and
//! no consent is needed. The health probe then trusts that certificate (and
//! only it), and the certificate must name the address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::status::StatusCell;
use crate::{BoxFuture, ProviderKind, Transport, TrustedCertificate, TunnelError, TunnelProvider, url_host};

/// The hub's remote listener on a LAN address: plain HTTP, or HTTPS with the
/// user's certificate.
#[derive(Debug)]
pub struct Lan {
    bind: IpAddr,
    tls: Option<TrustedCertificate>,
    cell: StatusCell,
}

impl Lan {
    /// A LAN provider publishing `bind` (one of [`lan_addresses`]), plain HTTP.
    pub fn new(bind: IpAddr) -> Self {
        Lan {
            bind,
            tls: None,
            cell: StatusCell::new(Transport::Plaintext),
        }
    }

    /// The remote listener serves TLS with `certificate` (the hub does the
    /// handshake): the URL becomes `https://IP:PORT`, the transport
    /// [`Transport::TlsAtThisMachine`], no consent is needed, and the health
    /// probe trusts `certificate`. [`start`](TunnelProvider::start) fails
    /// (permanently) when the certificate does not name the address.
    pub fn with_tls(self, certificate: TrustedCertificate) -> Self {
        Lan {
            bind: self.bind,
            tls: Some(certificate),
            cell: StatusCell::new(Transport::TlsAtThisMachine),
        }
    }

    /// The address the phone connects to.
    pub fn bind(&self) -> IpAddr {
        self.bind
    }

    /// Whether the remote listener is to serve TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

impl TunnelProvider for Lan {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Lan
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
            "The LAN connection uses plain HTTP: anyone on the same network as {} (the same \
             Wi-Fi, or whoever runs it) can read the traffic, including the pairing code and \
             your sessions. Use it only on a network you trust.",
            self.bind
        ))
    }

    fn listen_ip(&self) -> IpAddr {
        self.bind
    }

    fn trusted_certificate(&self) -> Option<&TrustedCertificate> {
        self.tls.as_ref()
    }

    fn start(&self, local: SocketAddr) -> BoxFuture<'_, Result<String, TunnelError>> {
        Box::pin(async move {
            self.cell.starting();
            if local.ip() != self.bind && !local.ip().is_unspecified() {
                let err = TunnelError::Config {
                    provider: ProviderKind::Lan,
                    reason: format!(
                        "the remote listener is bound to {local}, but the phone is to reach {}; \
                         bind it to {} first",
                        self.bind, self.bind
                    ),
                };
                self.cell.failed(err.to_string());
                return Err(err);
            }
            if let Some(certificate) = &self.tls
                && let Err(reason) = certificate.check_names(&self.bind.to_string())
            {
                let err = TunnelError::Config {
                    provider: ProviderKind::Lan,
                    reason,
                };
                self.cell.failed(err.to_string());
                return Err(err);
            }
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            let url = format!("{scheme}://{}:{}", url_host(&self.bind.to_string()), local.port());
            self.cell.up(&url);
            Ok(url)
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.cell.stopped() })
    }

    fn status_cell(&self) -> &StatusCell {
        &self.cell
    }
}

/// One of this machine's IPv4 addresses that a phone on a LAN could reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LanAddress {
    /// The interface (`eth0`, `wlan0`, `en0`, …), to show beside the address.
    pub interface: String,
    /// The address.
    pub ip: Ipv4Addr,
    /// Whether it is in a private range (10/8, 172.16/12, 192.168/16): the
    /// likely home or office network.
    pub private: bool,
}

/// This machine's non-loopback, non-link-local IPv4 addresses, private ranges
/// first. The list also has VPN and container bridges (`tailscale0`,
/// `docker0`); the interface name lets the user tell them apart.
pub fn lan_addresses() -> std::io::Result<Vec<LanAddress>> {
    let mut found: Vec<LanAddress> = if_addrs::get_if_addrs()?
        .into_iter()
        .filter_map(|iface| match iface.ip() {
            IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_link_local() && !ip.is_unspecified() => Some(LanAddress {
                interface: iface.name,
                ip,
                private: ip.is_private(),
            }),
            _ => None,
        })
        .collect();
    found.sort_by(|a, b| (!a.private, &a.interface, a.ip).cmp(&(!b.private, &b.interface, b.ip)));
    found.dedup();
    Ok(found)
}
