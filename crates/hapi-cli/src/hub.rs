//! `hapi hub` and `hapi auth token`.
use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use clap::Args;
use hapi_hub::{AppState, HubConfig};
use hapi_protocol::{HUB_STATE_FILE, HubStateFile};

#[derive(Args)]
pub struct HubArgs {
    /// Address to listen on, HOST:PORT (overrides HAPI_LISTEN_HOST and HAPI_LISTEN_PORT).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<SocketAddr>,
}

pub async fn run(args: HubArgs) -> Result<()> {
    crate::init_logging("info,tower_http=warn");
    let mut config = HubConfig::from_env().context("invalid hub configuration")?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let home = config.home.clone();
    let listen = config.listen;
    let state = AppState::open(config).with_context(|| format!("cannot start the hub in {}", home.display()))?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen} (is another hub running? set --listen or HAPI_LISTEN_PORT)")
    })?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    write_state_file(&home, &url).context("cannot write hub.json")?;
    tracing::info!(%url, home = %home.display(), "hub listening");
    println!("HAPI hub listening on {url}");
    println!("Sign in: {url}/#token=<token from `hapi auth token`>");
    std::io::stdout().flush().ok();
    let result = hapi_hub::serve(listener, state, crate::shutdown_signal()).await;
    let _ = std::fs::remove_file(home.join(HUB_STATE_FILE));
    tracing::info!("hub stopped");
    result.context("hub failed")
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

pub fn print_token() -> Result<()> {
    let config = HubConfig::from_env().context("invalid configuration")?;
    let token = match config.owner_token {
        Some(token) => token,
        None => hapi_hub::auth::load_or_create_owner_token(&config.home).with_context(|| {
            format!(
                "cannot read or create {}",
                hapi_hub::auth::owner_token_path(&config.home).display()
            )
        })?,
    };
    println!("{token}");
    Ok(())
}
