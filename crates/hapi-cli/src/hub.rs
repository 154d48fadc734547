//! `hapi hub` and `hapi auth token`.
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::Args;
use hapi_hub::{AppState, HubConfig};
use hapi_protocol::{HUB_STATE_FILE, HubStateFile};
use hapi_runner::{LockOutcome, ProcessId, RunnerLock};

/// `$HAPI_HOME/hub.lock`: one hub per `$HAPI_HOME`. Like the runner's lock it is
/// created with O_EXCL and holds `PID START_TIME`, so a lock left by a dead hub
/// (or one whose PID was reused) is recovered rather than believed.
pub const HUB_LOCK_FILE: &str = "hub.lock";

#[derive(Args)]
pub struct HubArgs {
    /// Address to listen on, HOST:PORT (overrides HAPI_LISTEN_HOST and HAPI_LISTEN_PORT).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<SocketAddr>,
    /// PEM certificate chain the phone's LAN listener serves HTTPS with
    /// (overrides HAPI_TLS_CERT; needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert (overrides HAPI_TLS_KEY).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

pub async fn run(args: HubArgs) -> Result<()> {
    crate::init_logging("info,tower_http=warn");
    let mut config = HubConfig::from_env().context("invalid hub configuration")?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(hapi_hub::TlsFiles { cert, key });
    }
    let hub = HubInstance::start(config).await?;
    let url = hub.url.clone();
    println!("HAPI hub listening on {url}");
    println!("Sign in: {url}/#token=<token from `hapi auth token`>");
    std::io::stdout().flush().ok();
    hub.serve(crate::shutdown_signal()).await
}

/// A hub that owns `$HAPI_HOME`: it holds `hub.lock`, is bound, and has written
/// `hub.json`. `hapi hub` and the desktop app both run the hub through this, so
/// there is one hub per `$HAPI_HOME` whichever started it.
pub struct HubInstance {
    /// `http://HOST:PORT` the hub answers on.
    pub url: String,
    /// The running hub's state (for in-process subscribers such as the desktop app).
    pub state: AppState,
    listener: tokio::net::TcpListener,
    lock: RunnerLock,
    home: std::path::PathBuf,
}

impl HubInstance {
    /// Takes the hub lock, opens the database and binds `config.listen`.
    pub async fn start(config: HubConfig) -> Result<Self> {
        Self::start_as(config, None).await
    }

    /// [`HubInstance::start`] with an owner token the caller already resolved
    /// (see [`AppState::open_with_owner`]).
    pub async fn start_with_owner(config: HubConfig, owner: hapi_hub::auth::OwnerToken) -> Result<Self> {
        Self::start_as(config, Some(owner)).await
    }

    async fn start_as(config: HubConfig, owner: Option<hapi_hub::auth::OwnerToken>) -> Result<Self> {
        let home = config.home.clone();
        let listen = config.listen;
        let lock = take_hub_lock(&home)?;
        let opened = match owner {
            Some(owner) => AppState::open_with_owner(config, owner),
            None => AppState::open(config),
        };
        let state = opened
            .map_err(|e| damaged_database_hint(e, &home))
            .with_context(|| format!("cannot start the hub in {}", home.display()))?;
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
            format!("cannot listen on {listen} (is another hub running? set --listen or HAPI_LISTEN_PORT)")
        })?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        write_state_file(&home, &url).context("cannot write hub.json")?;
        tracing::info!(%url, home = %home.display(), "hub listening");
        Ok(HubInstance {
            url,
            state,
            listener,
            lock,
            home,
        })
    }

    /// Serves until `shutdown` resolves, then removes `hub.json` and the lock.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<()> {
        let result = hapi_hub::serve(self.listener, self.state, shutdown).await;
        let _ = std::fs::remove_file(self.home.join(HUB_STATE_FILE));
        self.lock.release();
        tracing::info!("hub stopped");
        result.context("hub failed")
    }
}

/// A database that cannot be read says how to go back to a backup. The hub never
/// replaces it with a new one.
fn damaged_database_hint(e: hapi_hub::HubError, home: &Path) -> anyhow::Error {
    use hapi_store::StoreError;
    use hapi_store::rusqlite::ErrorCode;
    let unreadable = match &e {
        hapi_hub::HubError::Store(StoreError::Corrupt { .. }) => true,
        hapi_hub::HubError::Store(StoreError::Sqlite(s)) => matches!(
            s.sqlite_error_code(),
            Some(ErrorCode::CannotOpen | ErrorCode::SystemIoFailure | ErrorCode::PermissionDenied)
        ),
        _ => false,
    };
    if !unreadable {
        return e.into();
    }
    anyhow::anyhow!(
        "{e}\n\nThe hub will not start on this database, and it will not replace it with an empty one. \
         To go back to a backup, see them with `hapi backup list`, then run `hapi backup restore FILE` \
         (the damaged database is moved aside, not deleted). Backups are in {}.",
        hapi_store::backup::backups_dir(home).display()
    )
}

/// Takes `hub.lock`, or fails naming the hub that already runs for `home`.
fn take_hub_lock(home: &Path) -> Result<RunnerLock> {
    hapi_runner::create_home(home)?;
    let refuse = |pid: u32, url: Option<String>| -> anyhow::Error {
        let at = url.unwrap_or_else(|| "an address it has not recorded yet".into());
        anyhow::anyhow!(
            "A hub is already running for HAPI_HOME={} at {at} (PID {pid}). Use that hub, stop it first, \
             or give this one another HAPI_HOME.",
            home.display()
        )
    };
    let lock = match RunnerLock::try_acquire_file(&home.join(HUB_LOCK_FILE))? {
        LockOutcome::Acquired(lock) => lock,
        LockOutcome::Held(holder) => return Err(refuse(holder.pid, recorded_url(home, holder))),
    };
    Ok(lock)
}

fn read_state_file(home: &Path) -> Option<HubStateFile> {
    let text = std::fs::read_to_string(home.join(HUB_STATE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The URL `holder` recorded in hub.json; a hub that just took the lock gets a
/// few seconds to write it.
fn recorded_url(home: &Path, holder: ProcessId) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(state) = read_state_file(home)
            && state.pid == holder.pid
        {
            return Some(state.url);
        }
        if Instant::now() >= deadline || !holder.is_alive() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write_state_file(home: &std::path::Path, url: &str) -> Result<()> {
    let state = HubStateFile {
        url: url.to_owned(),
        pid: std::process::id(),
        started_at: hapi_store::rfc3339(hapi_store::now_ms()),
    };
    // Temp file then rename, so a reader never sees half a file.
    let tmp = home.join(format!("{HUB_STATE_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&state)?)?;
    std::fs::rename(&tmp, home.join(HUB_STATE_FILE))?;
    Ok(())
}

/// `hapi auth token`: the owner token on stdout (created on first use), and on
/// stderr a notice when it is not in the OS keychain.
pub fn print_token() -> Result<()> {
    let config = HubConfig::from_env().context("invalid configuration")?;
    let owner = hapi_hub::auth::OwnerToken::resolve(&config)
        .with_context(|| format!("cannot get the owner token of HAPI_HOME={}", config.home.display()))?;
    if let Some(notice) = &owner.info.notice {
        eprintln!("hapi: {notice}");
    }
    println!("{}", owner.token);
    Ok(())
}
