//! Phone access: remote access settings, pairing, and paired devices.
//!
//! The phone reaches the hub through a separate *remote listener* (LAN or a
//! tunnel); it never sees the owner token. It pairs once by trading a
//! single-use pairing secret (from the QR code's URL fragment, or a short typed
//! code) for its own device token, which the hub stores only as a hash.
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// How phone traffic reaches this hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export)]
pub enum RemoteProvider {
    /// Listen on a LAN address of this machine (plain HTTP: needs consent).
    Lan {
        /// The address to listen on, e.g. `192.168.1.20`.
        bind: String,
        /// Port for the remote listener (0: any free one).
        #[serde(default)]
        port: u16,
    },
    /// A self-hosted bore server (a raw TCP relay): HTTPS ending on this
    /// machine when the hub has a certificate naming the host, else
    /// plaintext, which needs consent.
    Bore {
        /// The bore server's host.
        host: String,
        /// The bore server's secret, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        secret: Option<String>,
    },
    /// `tailscale serve` (TLS ends on this machine; tailnet only).
    Tailscale,
    /// A cloudflared quick tunnel (TLS ends at Cloudflare; no SSE, WebSocket only).
    Cloudflared,
}

/// Where TLS ends on a remote path: who can read the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum TransportSecurity {
    /// Encrypted up to this machine.
    TlsAtThisMachine,
    /// Encrypted up to the provider, which can read it.
    TlsAtProvider,
    /// Not encrypted: anyone on the path can read it.
    Plaintext,
}

/// State of remote access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum RemoteState {
    /// Off: the hub listens on 127.0.0.1 only.
    Off,
    /// Starting the listener or the tunnel.
    Starting,
    /// Reachable at `public_url` (its health probe passed).
    Up,
    /// Lost; reconnecting with backoff.
    Down,
    /// Could not be started; see `detail`.
    Failed,
}

/// `GET /api/remote`, and the answer to `PUT /api/remote`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct RemoteAccess {
    /// Current state.
    pub state: RemoteState,
    /// The chosen provider, when on (the bore secret is never returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub provider: Option<RemoteProvider>,
    /// The URL a phone uses, when up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub public_url: Option<String>,
    /// Who can read the traffic on this path, when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub transport: Option<TransportSecurity>,
    /// Whether live updates can use SSE on this path (not through cloudflared).
    pub sse: bool,
    /// Failures since remote access was turned on.
    pub failures: u64,
    /// Why it is down or failed, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub detail: Option<String>,
}

/// `PUT /api/remote`: turn phone access on (with a provider) or off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SetRemoteAccess {
    /// The provider, or `None` to turn remote access off.
    pub provider: Option<RemoteProvider>,
    /// For a plaintext provider: the consent text the person accepted, exactly
    /// as `GET /api/remote/consent?kind=…` gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub plaintext_consent: Option<String>,
}

/// `POST /api/pairing`: a pairing offer, shown as a QR code and a typed code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct Pairing {
    /// Id, to withdraw it (`DELETE /api/pairing/{id}`) when the dialog closes.
    pub id: String,
    /// The URL the QR code encodes: the hub's public URL with the pairing secret
    /// in the fragment (`…/#/pair/<secret>`), so it never reaches a server log.
    pub url: String,
    /// The short code to type on a phone that cannot scan (8+ characters).
    pub code: String,
    /// The URL as a QR code, SVG.
    pub qr_svg: String,
    /// RFC 3339; the secret and the code stop working then (5 minutes).
    pub expires_at: String,
    /// Who can read the traffic on this path.
    pub transport: TransportSecurity,
}

/// `POST /pair` (unauthenticated, rate-limited): a phone trades a pairing secret
/// or code for a device token. Exactly one of `secret` and `code`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct PairDevice {
    /// The secret from the QR code's URL fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub secret: Option<String>,
    /// The typed code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub code: Option<String>,
    /// A name for this device, shown in the device list (e.g. "Ana's phone").
    pub device_name: String,
}

/// A paired device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct Device {
    /// Id.
    pub id: String,
    /// Name given when pairing.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339 of its last request, if any.
    pub last_seen_at: Option<String>,
}

/// Answer to [`PairDevice`]: the device and its token (shown once, never again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct PairedDevice {
    /// The new device.
    pub device: Device,
    /// Its bearer token. The hub keeps only its hash.
    pub token: String,
}

/// `GET /api/devices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct DeviceList {
    /// Paired devices not revoked, newest first.
    pub devices: Vec<Device>,
}

/// `GET /api/remote/consent?kind=…`: the notice a person must accept before a
/// plaintext provider is turned on, to be sent back verbatim as
/// [`SetRemoteAccess::plaintext_consent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct RemoteConsent {
    /// The exact text, or `None` when the provider is encrypted and needs no consent.
    pub notice: Option<String>,
}
