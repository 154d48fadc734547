//! LAN: the phone reaches the hub's remote listener directly on a LAN address.
//!
//! Nothing is forwarded: the hub binds its remote listener to the chosen
//! address ([`TunnelProvider::listen_ip`]) and this provider reports
//! `http://IP:PORT`. It is the default for a first pairing at home, and it is
//! plaintext: anyone on that network can read the traffic, so it needs consent.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::status::StatusCell;
use crate::{BoxFuture, ProviderKind, Transport, TunnelError, TunnelProvider, url_host};

/// The hub's remote listener on a LAN address, plain HTTP.
#[derive(Debug)]
pub struct Lan {
    bind: IpAddr,
    cell: StatusCell,
}

impl Lan {
    /// A LAN provider publishing `bind` (one of [`lan_addresses`]).
    pub fn new(bind: IpAddr) -> Self {
        Lan {
            bind,
            cell: StatusCell::new(Transport::Plaintext),
        }
    }

    /// The address the phone connects to.
    pub fn bind(&self) -> IpAddr {
        self.bind
    }
}

impl TunnelProvider for Lan {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Lan
    }

    fn transport(&self) -> Transport {
        Transport::Plaintext
    }

    fn consent_notice(&self) -> Option<String> {
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
            let url = format!("http://{}:{}", url_host(&self.bind.to_string()), local.port());
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
