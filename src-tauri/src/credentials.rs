//! The owner token the window and the notifications use. It comes from the one
//! lookup every binary shares (`CLI_API_TOKEN`, else the OS keychain, else the
//! 0600 file; see docs/credentials.md), so the app, `hapi hub` and
//! `hapi auth token` always agree on it.
use anyhow::{Context as _, Result};

pub fn owner_token(config: &hapi_hub::HubConfig) -> Result<String> {
    let owner = hapi_hub::auth::OwnerToken::resolve(config).context("cannot find or create the owner token")?;
    // Where it is kept (and any warning) is logged by the lookup and shown in
    // the window through `GET /api/hub`.
    tracing::info!(store = ?owner.info.store, "owner token found");
    Ok(owner.token)
}
