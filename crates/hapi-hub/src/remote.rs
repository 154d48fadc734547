//! Remote access: the separate listener a phone reaches, and the tunnel in
//! front of it.
//!
//! Off by default: the hub then listens on its local listener only. Turning it
//! on (`PUT /api/remote`, owner only) binds a **remote listener** (127.0.0.1:0
//! for tunnels, the chosen address for LAN) that serves only the phone-facing
//! routes with device tokens (`routes::phone`), starts the provider under a
//! [`Tunnel`] supervisor pointed at it, and waits until the public URL answers
//! the health probe. A plaintext provider (LAN or bore without the hub's
//! certificate) needs the person's consent to the provider's exact notice
//! (`GET /api/remote/consent`).
//!
//! Turning it off (or the kill switch, `POST /api/devices/revoke-all`) stops
//! the tunnel and the listener, ends every event stream opened through it and
//! withdraws the pairing offers. Changes are serialised by one async lock; a
//! start waiting for its tunnel is cancelled by any later change, so the kill
//! switch never waits for a slow tunnel.
//!
//! The remote listener accepts at most [`MAX_REMOTE_CONNECTIONS`] connections
//! at once (further ones wait in the kernel's backlog).
//!
//! With the user's certificate (`HAPI_TLS_CERT`, `HAPI_TLS_KEY`) the remote
//! listener of LAN and of bore serves TLS itself (`crate::tls`): the URL is
//! `https://IP:PORT` or `https://BORE_HOST:PORT`, no consent is needed, and
//! the bore server relays TLS it cannot read. Tailscale Serve and cloudflared
//! keep a plain-HTTP listener on 127.0.0.1 (their TLS ends in the tunnel).
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hapi_protocol::{
    ErrorCode, RemoteAccess, RemoteConsent, RemoteProvider, RemoteState, SetRemoteAccess, TransportSecurity,
};
use hapi_tunnel::{
    Bore, CloudflaredQuick, Lan, PlaintextConsent, TailscaleServe, Transport, Tunnel, TunnelOptions, TunnelProvider,
    TunnelState, TunnelStatus,
};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiQuery};
use crate::tls::{HubTls, TlsListener};

/// Most connections the remote listener serves at once.
pub(crate) const MAX_REMOTE_CONNECTIONS: usize = 64;
/// How long a start may take until the public URL answers its health probe
/// (a fresh quick tunnel's name takes a while to resolve).
const READY_TIMEOUT: Duration = Duration::from_secs(45);
/// How long a stopping remote listener may take to finish its requests.
const DRAIN: Duration = Duration::from_secs(3);

/// What the remote listener's handlers need to know about it. Put into every
/// request's extensions by its router.
#[derive(Clone)]
pub(crate) struct RemoteCtx {
    /// Becomes true when this remote listener stops.
    pub closing: watch::Receiver<bool>,
    /// The address it is bound to.
    pub listener: SocketAddr,
    /// Whether it serves TLS (its own address is then an `https` origin).
    pub tls: bool,
    /// The tunnel's status (the public URL it is reachable at now).
    pub status: watch::Receiver<TunnelStatus>,
}

/// What `GET /api/remote` reports about a provider, whatever its state.
#[derive(Clone)]
struct Meta {
    /// As chosen, with the bore secret removed and the LAN address resolved.
    provider: RemoteProvider,
    transport: TransportSecurity,
    sse: bool,
}

struct Server {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Stops accepting, ends the streams served through it, and waits a little
    /// for requests in flight.
    async fn stop(self) {
        self.stop.send_replace(true);
        let mut task = self.task;
        if tokio::time::timeout(DRAIN, &mut task).await.is_err() {
            task.abort();
        }
    }
}

struct Active {
    meta: Meta,
    tunnel: Tunnel,
    server: Server,
}

enum Phase {
    Off,
    Starting(Meta),
    On(Active),
    Failed { meta: Meta, detail: String, failures: u64 },
}

/// Remote access of a running hub.
pub(crate) struct Remote {
    /// Serialises turning on and off.
    op: tokio::sync::Mutex<()>,
    /// Bumped by every change, to cancel a start that is still waiting.
    changes: watch::Sender<u64>,
    phase: std::sync::Mutex<Phase>,
    /// Bumped whenever what `access` answers may have changed: a phase change
    /// or the tunnel's own status (it drops and reconnects by itself). The
    /// desktop's tray follows it instead of polling.
    revision: Arc<watch::Sender<u64>>,
    /// The hub's own certificate, for the LAN and bore providers.
    tls: Option<HubTls>,
}

impl Remote {
    /// Remote access, off; `tls` is the certificate LAN and bore serve, if the
    /// user gave one.
    pub(crate) fn new(tls: Option<HubTls>) -> Self {
        Remote {
            op: tokio::sync::Mutex::new(()),
            changes: watch::channel(0).0,
            phase: std::sync::Mutex::new(Phase::Off),
            revision: Arc::new(watch::channel(0).0),
            tls,
        }
    }
}

fn transport_security(t: Transport) -> TransportSecurity {
    match t {
        Transport::TlsAtThisMachine => TransportSecurity::TlsAtThisMachine,
        Transport::TlsAtProvider => TransportSecurity::TlsAtProvider,
        Transport::Plaintext => TransportSecurity::Plaintext,
    }
}

fn tunnel_failed(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::TunnelFailed, message)
}

fn consent_required(notice: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::ConsentRequired,
        format!("this connection is not encrypted; accept this notice first: {notice}"),
    )
}

/// The LAN address used when none is given: the first of
/// [`hapi_tunnel::lan_addresses`] (private ranges first).
fn default_lan_ip() -> Result<IpAddr, ApiError> {
    let found = hapi_tunnel::lan_addresses()
        .map_err(|e| ApiError::internal(format!("cannot list this computer's network addresses: {e}")))?;
    found
        .first()
        .map(|a| IpAddr::V4(a.ip))
        .ok_or_else(|| ApiError::invalid("this computer has no LAN address; give `bind`"))
}

/// A provider as chosen: what to run, where to bind, and what to report.
struct Built {
    provider: Arc<dyn TunnelProvider>,
    port: u16,
    meta: Meta,
    /// The remote listener serves TLS with this (LAN or bore with a
    /// certificate).
    tls: Option<HubTls>,
}

fn lan_ip(bind: &str) -> Result<IpAddr, ApiError> {
    let bind = bind.trim();
    let ip = if bind.is_empty() {
        default_lan_ip()?
    } else {
        bind.parse::<IpAddr>()
            .map_err(|e| ApiError::invalid(format!("`bind` must be an IP address of this computer: {e}")))?
    };
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(ApiError::invalid(
            "`bind` must be one address of this computer, not 0.0.0.0 or a multicast address",
        ));
    }
    Ok(ip)
}

fn bore_host(host: &str) -> Result<String, ApiError> {
    let host = host.trim();
    if host.is_empty() || host.len() > 253 || host.contains(|c: char| c.is_whitespace() || "/@?#".contains(c)) {
        return Err(ApiError::invalid(
            "`host` must be the bore server's host name or IP address",
        ));
    }
    Ok(host.to_owned())
}

/// The provider `choice` describes; LAN and bore serve TLS with `tls` when
/// given (the remote listener does the handshake).
fn build(choice: &RemoteProvider, tls: Option<&HubTls>) -> Result<Built, ApiError> {
    let mut served_tls = None;
    let (provider, port, shown): (Arc<dyn TunnelProvider>, u16, RemoteProvider) = match choice {
        RemoteProvider::Lan { bind, port } => {
            let ip = lan_ip(bind)?;
            let shown = RemoteProvider::Lan {
                bind: ip.to_string(),
                port: *port,
            };
            let lan = match tls {
                Some(tls) => {
                    served_tls = Some(tls.clone());
                    Lan::new(ip).with_tls(tls.trusted().clone())
                }
                None => Lan::new(ip),
            };
            (Arc::new(lan), *port, shown)
        }
        RemoteProvider::Bore { host, secret } => {
            let host = bore_host(host)?;
            let secret = secret.clone().filter(|s| !s.is_empty());
            let shown = RemoteProvider::Bore {
                host: host.clone(),
                secret: None,
            };
            // bore relays raw TCP, so the hub can end TLS itself exactly as
            // on LAN; the certificate must then name the bore host.
            let bore = match tls {
                Some(tls) => {
                    served_tls = Some(tls.clone());
                    Bore::new(host, secret).with_tls(tls.trusted().clone())
                }
                None => Bore::new(host, secret),
            };
            (Arc::new(bore), 0, shown)
        }
        RemoteProvider::Tailscale => (Arc::new(TailscaleServe::new()), 0, RemoteProvider::Tailscale),
        RemoteProvider::Cloudflared => (Arc::new(CloudflaredQuick::new()), 0, RemoteProvider::Cloudflared),
    };
    let meta = Meta {
        provider: shown,
        transport: transport_security(provider.transport()),
        sse: provider.supports_sse(),
    };
    Ok(Built {
        provider,
        port,
        meta,
        tls: served_tls,
    })
}

fn off() -> RemoteAccess {
    RemoteAccess {
        state: RemoteState::Off,
        provider: None,
        public_url: None,
        transport: None,
        sse: false,
        failures: 0,
        detail: None,
    }
}

fn described(meta: &Meta, state: RemoteState) -> RemoteAccess {
    RemoteAccess {
        state,
        provider: Some(meta.provider.clone()),
        public_url: None,
        transport: Some(meta.transport),
        sse: meta.sse,
        failures: 0,
        detail: None,
    }
}

impl Remote {
    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().expect("remote phase poisoned")
    }

    /// Replaces the phase and tells the followers; returns the previous one.
    fn set_phase(&self, phase: Phase) -> Phase {
        let previous = std::mem::replace(&mut *self.phase(), phase);
        self.revision.send_modify(|n| *n += 1);
        previous
    }

    /// Changes whenever [`Remote::access`] may answer differently.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// What `GET /api/remote` answers.
    pub(crate) fn access(&self) -> RemoteAccess {
        match &*self.phase() {
            Phase::Off => off(),
            Phase::Starting(meta) => described(meta, RemoteState::Starting),
            Phase::Failed { meta, detail, failures } => RemoteAccess {
                failures: *failures,
                detail: Some(detail.clone()),
                ..described(meta, RemoteState::Failed)
            },
            Phase::On(active) => {
                let status = active.tunnel.status();
                let mut access = RemoteAccess {
                    failures: status.failures,
                    ..described(&active.meta, RemoteState::Down)
                };
                match status.state {
                    TunnelState::Up { public_url } => {
                        access.state = RemoteState::Up;
                        access.public_url = Some(public_url);
                    }
                    _ if active.tunnel.gave_up().is_some() => {
                        access.state = RemoteState::Failed;
                        access.detail = active.tunnel.gave_up().map(|e| e.to_string());
                    }
                    TunnelState::Starting => access.detail = Some("reconnecting".into()),
                    TunnelState::Down { reason } | TunnelState::Failed { reason } => access.detail = Some(reason),
                }
                access
            }
        }
    }

    /// The public URL and transport to pair through, when remote access is up.
    pub(crate) fn pairing_target(&self) -> Option<(String, TransportSecurity)> {
        match &*self.phase() {
            Phase::On(active) => {
                let url = active.tunnel.status().state.public_url()?.to_owned();
                Some((url, active.meta.transport))
            }
            _ => None,
        }
    }

    /// Cancels a start that is waiting and takes the lock for a change.
    async fn begin_change(&self) -> (tokio::sync::MutexGuard<'_, ()>, u64) {
        self.changes.send_modify(|n| *n += 1);
        let guard = self.op.lock().await;
        let epoch = *self.changes.borrow();
        (guard, epoch)
    }

    /// Stops whatever runs (call with the lock held) and withdraws the offers.
    async fn stop_locked(&self, state: &AppState) {
        let previous = self.set_phase(Phase::Off);
        state.pairing().clear();
        if let Phase::On(active) = previous {
            // The listener first: from now on no phone request gets in, and
            // the streams opened through it end.
            active.server.stop.send_replace(true);
            active.tunnel.stop().await;
            active.server.stop().await;
            tracing::info!("remote access off");
        }
    }

    /// Turns remote access off (idempotent): the kill switch's first half.
    pub(crate) async fn turn_off(&self, state: &AppState) {
        let (_guard, _) = self.begin_change().await;
        self.stop_locked(state).await;
    }

    /// Turns remote access on with `choice`, replacing what ran before, and
    /// waits until the public URL answers its health probe.
    async fn turn_on(
        &self,
        state: &AppState,
        choice: &RemoteProvider,
        consent: Option<String>,
    ) -> Result<RemoteAccess, ApiError> {
        let built = build(choice, self.tls.as_ref())?;
        if built.provider.requires_consent() {
            let notice = built.provider.consent_notice().unwrap_or_default();
            if consent.as_deref() != Some(notice.as_str()) {
                return Err(consent_required(&notice));
            }
        }
        let (_guard, epoch) = self.begin_change().await;
        self.stop_locked(state).await;
        let Built {
            provider,
            port,
            meta,
            tls,
        } = built;
        self.set_phase(Phase::Starting(meta.clone()));
        let fail = |detail: String, failures: u64| {
            self.set_phase(Phase::Failed {
                meta: meta.clone(),
                detail: detail.clone(),
                failures,
            });
            tracing::warn!(provider = %provider.kind(), %detail, "remote access failed to start");
            tunnel_failed(detail)
        };
        let bind = SocketAddr::new(provider.listen_ip(), port);
        let listener = match TcpListener::bind(bind).await {
            Ok(listener) => listener,
            Err(e) => return Err(fail(format!("cannot listen on {bind}: {e}"), 0)),
        };
        let local = match listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => return Err(fail(format!("cannot read the remote listener's address: {e}"), 0)),
        };
        let options = TunnelOptions {
            consent: consent.map(PlaintextConsent::accepted),
            ..TunnelOptions::default()
        };
        let tunnel = match Tunnel::start(Arc::clone(&provider), local, options) {
            Ok(tunnel) => tunnel,
            Err(e) => return Err(fail(e.to_string(), 0)),
        };
        let (stop, closing) = watch::channel(false);
        let ctx = RemoteCtx {
            closing: closing.clone(),
            listener: local,
            tls: tls.is_some(),
            status: tunnel.subscribe(),
        };
        let server = Server {
            stop,
            task: spawn_server(state, listener, tls, ctx, closing),
        };
        let mut changes = self.changes.subscribe();
        let ready = tokio::select! {
            r = tunnel.ready(READY_TIMEOUT) => Some(r),
            _ = changes.wait_for(|n| *n != epoch) => None,
        };
        match ready {
            Some(Ok(ready)) => {
                tracing::info!(provider = %provider.kind(), url = %ready.public_url,
                    latency_ms = ready.latency.as_millis() as u64, listener = %local, "remote access up");
                // The tunnel reconnects by itself; pass its status changes on
                // until it stops (its sender goes with it).
                let mut status = tunnel.subscribe();
                let revision = Arc::clone(&self.revision);
                tokio::spawn(async move {
                    while status.changed().await.is_ok() {
                        revision.send_modify(|n| *n += 1);
                    }
                });
                self.set_phase(Phase::On(Active { meta, tunnel, server }));
                Ok(self.access())
            }
            Some(Err(e)) => {
                let failures = tunnel.status().failures;
                let detail = tunnel.gave_up().unwrap_or(e).to_string();
                server.stop.send_replace(true);
                tunnel.stop().await;
                server.stop().await;
                Err(fail(detail, failures))
            }
            None => {
                server.stop.send_replace(true);
                tunnel.stop().await;
                server.stop().await;
                self.set_phase(Phase::Off);
                Err(ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::RemoteOff,
                    "remote access was changed or turned off while it was starting",
                ))
            }
        }
    }
}

/// Serves the phone-facing router on `listener` (over TLS with `tls`) until
/// `closing` (or the hub's shutdown).
fn spawn_server(
    state: &AppState,
    listener: TcpListener,
    tls: Option<HubTls>,
    ctx: RemoteCtx,
    mut closing: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let app = crate::routes::phone_router(state.clone(), ctx).into_make_service();
    let hub_closing = state.closing();
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(MAX_REMOTE_CONNECTIONS));
        let shutdown = async move {
            tokio::select! {
                _ = closing.wait_for(|c| *c) => {}
                _ = hub_closing => {}
            }
        };
        let served = match tls {
            None => {
                let listener = Capped {
                    inner: listener,
                    permits,
                };
                axum::serve(listener, app).with_graceful_shutdown(shutdown).await
            }
            Some(tls) => match TlsListener::new(listener, permits, &tls) {
                Ok(listener) => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = served {
            tracing::warn!(error = %e, "remote listener failed");
        }
    })
}

/// A listener that serves at most as many connections as it has permits.
struct Capped {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

impl axum::serve::Listener for Capped {
    type Io = CappedIo<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CappedIo<TcpStream>, SocketAddr) {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        if let Err(e) = io.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
        (CappedIo::new(io, permit), addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection holding one permit of its listener until it closes.
pub(crate) struct CappedIo<T> {
    io: T,
    _permit: OwnedSemaphorePermit,
}

impl<T> CappedIo<T> {
    pub(crate) fn new(io: T, permit: OwnedSemaphorePermit) -> Self {
        CappedIo { io, _permit: permit }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CappedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CappedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// `GET /api/remote` (owner).
pub(crate) async fn get(State(state): State<AppState>) -> Json<RemoteAccess> {
    Json(state.remote().access())
}

/// `PUT /api/remote` (owner): on with a provider, or off with `provider: null`.
pub(crate) async fn put(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SetRemoteAccess>,
) -> Result<Json<RemoteAccess>, ApiError> {
    match body.provider {
        None => {
            state.remote().turn_off(&state).await;
            Ok(Json(state.remote().access()))
        }
        Some(choice) => state
            .remote()
            .turn_on(&state, &choice, body.plaintext_consent)
            .await
            .map(Json),
    }
}

#[derive(Deserialize)]
pub(crate) struct ConsentQuery {
    kind: String,
    /// LAN: the address to listen on (default: the one the hub would pick).
    bind: Option<String>,
    /// bore: the server's host (required).
    host: Option<String>,
}

/// `GET /api/remote/consent?kind=lan[&bind=IP]|bore&host=H|tailscale|cloudflared`
/// (owner): the exact notice `PUT /api/remote` wants back in
/// `plaintext_consent` (`null` for encrypted providers, LAN and bore with the
/// hub's certificate included).
pub(crate) async fn consent(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ConsentQuery>,
) -> Result<Json<RemoteConsent>, ApiError> {
    let choice = match q.kind.as_str() {
        "lan" => RemoteProvider::Lan {
            bind: q.bind.unwrap_or_default(),
            port: 0,
        },
        "bore" => RemoteProvider::Bore {
            host: q
                .host
                .ok_or_else(|| ApiError::invalid("give the bore server's `host`: the notice names it"))?,
            secret: None,
        },
        "tailscale" => RemoteProvider::Tailscale,
        "cloudflared" => RemoteProvider::Cloudflared,
        other => {
            return Err(ApiError::invalid(format!(
                "unknown `kind` {other:?} (lan, bore, tailscale or cloudflared)"
            )));
        }
    };
    let built = build(&choice, state.remote().tls.as_ref())?;
    Ok(Json(RemoteConsent {
        notice: built.provider.consent_notice(),
    }))
}
