//! The HAPI hub: one owner's sessions, approvals and live events over HTTP.
//!
//! It is a library so that `hapi hub`, the desktop app and the tests all run the
//! same server: build an [`AppState`] with [`AppState::open`], then call
//! [`serve`] with a bound listener and a shutdown future (or mount [`router`]).
#![deny(missing_docs)]

mod assets;
mod audit;
pub mod auth;
mod backups;
mod config;
mod devices;
mod error;
mod links;
mod metrics;
mod pairing;
pub mod policy;
mod remote;
mod routes;
mod runner_links;
mod security;
mod tls;
mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::serve::ListenerExt as _;
use hapi_store::Store;
use tokio::net::TcpListener;

pub use backups::BackupSchedule;
pub use config::{HubConfig, HubConfigError, TlsFiles};
pub use error::ApiError;
pub use pairing::DEFAULT_PAIRING_TTL;
pub use tls::TlsError;
pub use writer::{LiveEvent, Writer};

use links::Links;
use metrics::Metrics;
use runner_links::RunnerLinks;

/// Everything that can stop the hub from starting.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] hapi_store::StoreError),
    /// The owner token could not be found or created (the message says what to do).
    #[error("cannot get the owner token: {0}")]
    Credentials(#[from] auth::CredentialError),
    /// `$HAPI_HOME/policy.toml` is invalid (the message has its line, column and
    /// reason). The hub does not start rather than run without the policy.
    #[error("invalid approval policy {0}; fix it (or move it away to ask for every request) and start the hub again")]
    Policy(String),
    /// `$HAPI_HOME` or a file in it could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS certificate or key (`HAPI_TLS_CERT`, `HAPI_TLS_KEY`) cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Shared state of a running hub. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: HubConfig,
    store: Arc<Store>,
    writer: Writer,
    auth: auth::Auth,
    links: Links,
    runner_links: RunnerLinks,
    machine_id: String,
    credentials: hapi_protocol::CredentialInfo,
    started: Instant,
    metrics: Metrics,
    /// The last database probe of `GET /ready`, shared by probes within a second.
    ready_probe: routes::ops::ProbeCache,
    /// Becomes true when the server shuts down, so that endless responses (event
    /// streams, wrapper links) end and graceful shutdown can finish.
    closing: tokio::sync::watch::Sender<bool>,
    /// Paired devices: token lookups and revocations.
    devices: devices::Devices,
    /// Pairing offers and the failed-attempt budget.
    pairing: pairing::Offers,
    /// Remote access: the remote listener and its tunnel.
    remote: remote::Remote,
    /// The local listener's address, once [`serve`] has it (for the Host check).
    local_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// The approval policy in effect (`$HAPI_HOME/policy.toml`, followed).
    policy: policy::PolicyFile,
    /// Serializes policy replacements (write the file, then swap).
    policy_update: tokio::sync::Mutex<()>,
}

/// An in-process subscription to the hub's live events; see
/// [`AppState::follow_events`].
pub struct EventFollower {
    events: tokio::sync::broadcast::Receiver<Arc<LiveEvent>>,
    // Fields are private and read through `recv`: a closure or async block
    // that used only `events` would capture just that field and drop the
    // count at once.
    _counted: metrics::EventClient,
}

impl EventFollower {
    /// The next event as it commits; a slow reader gets `Lagged` and re-reads.
    pub async fn recv(&mut self) -> Result<Arc<LiveEvent>, tokio::sync::broadcast::error::RecvError> {
        self.events.recv().await
    }
}

impl AppState {
    /// Opens the database in `config.home`, finds (or creates) the owner token
    /// (`CLI_API_TOKEN`, else the keychain, else the 0600 file; see
    /// [`auth::OwnerToken::resolve`]) and starts the writer.
    pub fn open(config: HubConfig) -> Result<Self, HubError> {
        Self::create_home(&config)?;
        let owner = auth::OwnerToken::resolve(&config)?;
        Self::open_inner(config, owner)
    }

    /// [`AppState::open`] with an owner token the caller already resolved (the
    /// desktop app needs the token itself, for its window and notifications, and
    /// looks it up once).
    pub fn open_with_owner(config: HubConfig, owner: auth::OwnerToken) -> Result<Self, HubError> {
        Self::create_home(&config)?;
        Self::open_inner(config, owner)
    }

    /// [`AppState::open`] with the owner token from `vault` (unless
    /// `CLI_API_TOKEN` is set): for an app that opened the vault itself, and for
    /// tests that must not touch a keychain ([`auth::KeychainMode::Off`]).
    pub fn open_with_vault(config: HubConfig, vault: &auth::Vault) -> Result<Self, HubError> {
        Self::create_home(&config)?;
        let owner = auth::OwnerToken::resolve_in(&config, vault)?;
        Self::open_inner(config, owner)
    }

    fn create_home(config: &HubConfig) -> Result<(), HubError> {
        std::fs::create_dir_all(&config.home).map_err(|source| HubError::Io {
            what: format!("cannot create {}", config.home.display()),
            source,
        })
    }

    fn open_inner(config: HubConfig, owner: auth::OwnerToken) -> Result<Self, HubError> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| HubError::Io { what, source }
        };
        let tls = config.tls.as_ref().map(tls::HubTls::load).transpose()?;
        let policy = policy::PolicyFile::open(&config.home).map_err(HubError::Policy)?;
        let store = Arc::new(Store::open(config.db_path(), config.durability)?);
        let writer = Writer::start(&store)?;
        let machine_id = machine_id(&config.home).map_err(io("cannot read or create machine-id"))?;
        let metrics = Metrics::new();
        Ok(AppState {
            inner: Arc::new(Inner {
                auth: auth::Auth::new(&owner.token),
                credentials: owner.info,
                config,
                store,
                writer,
                links: Links::new(metrics.clone()),
                runner_links: RunnerLinks::new(metrics.clone()),
                machine_id,
                started: Instant::now(),
                metrics,
                ready_probe: routes::ops::ProbeCache::default(),
                closing: tokio::sync::watch::channel(false).0,
                devices: devices::Devices::default(),
                pairing: pairing::Offers::default(),
                remote: remote::Remote::new(tls),
                local_addr: std::sync::OnceLock::new(),
                policy,
                policy_update: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The configuration the hub runs with.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// The single writer.
    pub fn writer(&self) -> &Writer {
        &self.inner.writer
    }

    /// Changes whenever phone access may report differently (`GET
    /// /api/remote`): turned on or off, or its tunnel dropped or came back.
    /// Phone access is not in the event log (it is not history), so an
    /// in-process follower (the desktop's tray) watches this instead.
    pub fn remote_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.remote.changes()
    }

    /// Follows the live events from inside the hub's process (the desktop
    /// app's tray and notifications). The follower counts in
    /// `hapi_event_clients{transport="in_process"}` while it lives, as a UI's
    /// stream does, so `/metrics` and `hapi doctor` know that new approvals
    /// reach someone even with no window open.
    pub fn follow_events(&self) -> EventFollower {
        EventFollower {
            events: self.inner.writer.subscribe(),
            _counted: self.inner.metrics.event_client(metrics::Transport::InProcess),
        }
    }

    pub(crate) fn auth(&self) -> &auth::Auth {
        &self.inner.auth
    }

    pub(crate) fn links(&self) -> &Links {
        &self.inner.links
    }

    pub(crate) fn runner_links(&self) -> &RunnerLinks {
        &self.inner.runner_links
    }

    pub(crate) fn machine_id(&self) -> &str {
        &self.inner.machine_id
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn ready_probe(&self) -> &routes::ops::ProbeCache {
        &self.inner.ready_probe
    }

    pub(crate) fn db_path(&self) -> &std::path::Path {
        self.inner.store.path()
    }

    pub(crate) fn devices(&self) -> &devices::Devices {
        &self.inner.devices
    }

    pub(crate) fn pairing(&self) -> &pairing::Offers {
        &self.inner.pairing
    }

    pub(crate) fn remote(&self) -> &remote::Remote {
        &self.inner.remote
    }

    pub(crate) fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.local_addr.get().copied()
    }

    /// The approval policy's rules in effect.
    pub fn policy(&self) -> Arc<policy::Policy> {
        self.policy_in_effect().policy
    }

    /// The approval policy in effect, re-read first if `policy.toml` was
    /// edited by hand since. A new version is logged and audited; one that
    /// does not parse too, and then no rule applies (every request is asked).
    pub fn policy_in_effect(&self) -> policy::PolicyInEffect {
        let (in_effect, reload) = self.inner.policy.current();
        let summary = match reload {
            policy::Reload::Unchanged => return in_effect,
            policy::Reload::Applied(rules) => {
                tracing::info!(rules, "policy.toml was edited; its rules apply now");
                format!(
                    "edited by hand: {rules} rule{} in effect",
                    if rules == 1 { "" } else { "s" }
                )
            }
            policy::Reload::Rejected(problem) => {
                tracing::warn!(%problem, "policy.toml was edited and does not parse; every request is asked until it is fixed");
                format!("edited by hand and rejected ({problem}); no rule applies, every request is asked")
            }
        };
        // Consulted from request handlers; the audit row follows on the writer.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let state = self.clone();
            runtime.spawn(async move {
                let written = state
                    .writer()
                    .write(move |tx| {
                        hapi_store::append_audit(
                            tx,
                            hapi_protocol::AuditEntry {
                                actor: Some(policy::POLICY_FILE.into()),
                                action: Some("policy_reloaded".into()),
                                summary: Some(summary),
                                ..hapi_protocol::AuditEntry::new(hapi_protocol::AuditKind::Admin)
                            },
                        )?;
                        Ok(((), Vec::new()))
                    })
                    .await;
                if let Err(e) = written {
                    tracing::warn!("cannot audit the policy reload: {e}");
                }
            });
        }
        in_effect
    }

    /// Replaces the policy in effect (after its file was written).
    pub(crate) fn set_policy(&self, policy: policy::Policy) {
        self.inner.policy.replaced(policy);
    }

    pub(crate) fn policy_update(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.policy_update
    }

    /// Where the owner token is kept, and why not in the keychain if it is not.
    pub fn credentials(&self) -> &hapi_protocol::CredentialInfo {
        &self.inner.credentials
    }

    /// Resolves once the server is shutting down.
    pub(crate) fn closing(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut rx = self.inner.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    pub(crate) fn uptime_s(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }

    /// Runs a read on a pooled connection off the async runtime.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&hapi_store::rusqlite::Connection) -> hapi_store::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(|e| ApiError::internal(format!("read task failed: {e}")))?
            .map_err(ApiError::from)
    }
}

/// A stable id for this machine, kept in `$HAPI_HOME/machine-id`.
fn machine_id(home: &std::path::Path) -> std::io::Result<String> {
    let path = home.join("machine-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = uuid::Uuid::now_v7().to_string();
            std::fs::write(&path, &id)?;
            Ok(id)
        }
    }
}

/// The hub's routes: `/health`, `/api/...` and the web UI.
pub fn router(state: AppState) -> Router {
    routes::router(state)
}

/// Serves the hub on `listener` until `shutdown` resolves, then drains in-flight
/// requests. Registers this machine first, and marks every live session
/// `disconnected` (and every machine `offline`) until its wrapper (or runner)
/// reconnects. Runs the scheduled backups (`config.backups`) and the audit
/// log's retention (`config.audit_retention_days`) while it serves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HubError> {
    // Stopped at shutdown, or when dropped if the hub fails to start.
    let backups = backups::Scheduler::start(
        state.config().db_path(),
        hapi_store::backup::backups_dir(&state.config().home),
        state.config().backups,
    );
    let host = hostname();
    let id = state.machine_id().to_owned();
    state
        .writer()
        .write(move |tx| {
            hapi_store::ensure_machine(tx, &id, &host)?;
            let mut events = hapi_store::mark_all_disconnected(tx)?;
            events.extend(hapi_store::mark_machines_offline(tx)?);
            Ok(((), events))
        })
        .await?;
    tokio::spawn(routes::ops::upkeep(state.metrics().clone(), state.closing()));
    tokio::spawn(audit::retention(state.clone()));
    let closing = state.inner.closing.clone();
    if let Ok(addr) = listener.local_addr() {
        let _ = state.inner.local_addr.set(addr);
    }
    // Remote access (if on) is stopped with the hub: its tunnel and listener.
    let remote = state.clone();
    let app = router(state).into_make_service();
    // Event streams and links are small writes that must leave at once; with
    // Nagle's algorithm on they wait for the peer's delayed ACK (up to 40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            closing.send_replace(true);
            remote.remote().turn_off(&remote).await;
            if let Some(backups) = backups {
                backups.stop().await;
            }
        })
        .await
        .map_err(|source| HubError::Io {
            what: "server failed".into(),
            source,
        })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".into())
}
