//! Who may call the hub.
//!
//! - The **owner token** (one per `$HAPI_HOME`) opens every `/api` route. It is
//!   `CLI_API_TOKEN` if set, else the one `hapi-credentials` finds or creates for
//!   the home: in the OS keychain, or (no keychain reachable, or
//!   `HAPI_KEYCHAIN=off`) in `$HAPI_HOME/owner.token` with mode 0600. The hub,
//!   `hapi auth token`, the runner and `hapi claude` all use that one lookup. It
//!   never appears in a URL, and sessions never get it.
//! - **Event tickets** are short-lived and single-use, for `GET /api/events` and
//!   `/api/events/ws`, because a browser's `EventSource` cannot send a header.
//! - **Session tokens** open only their own session's wrapper WebSocket. The hub
//!   stores their SHA-256, never the token.
//! - **Device tokens** (a paired phone's, see `crate::devices`) open only the
//!   phone-facing routes, and only on the remote listener ([`require_device`]);
//!   the owner token is refused there. A device's event tickets remember the
//!   device, so revoking it also refuses its tickets.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
pub use hapi_credentials::{CredentialError, KeychainMode, OWNER_TOKEN, Vault};
use hapi_protocol::{CredentialInfo, CredentialStoreKind};
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::{AppState, HubConfig};

/// How long an event ticket stays valid unused.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// File name of the owner token inside `$HAPI_HOME` when it is kept in a file.
pub const OWNER_TOKEN_FILE: &str = OWNER_TOKEN.file;

/// A fresh random token: 256 bits, hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// SHA-256 of a token, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Path of the owner token file (used when no keychain is).
pub fn owner_token_path(home: &Path) -> PathBuf {
    home.join(OWNER_TOKEN_FILE)
}

/// The owner token of `home`, created on first use: the keychain first, then
/// the 0600 file (`HAPI_KEYCHAIN` decides whether the keychain is tried).
pub fn load_or_create_owner_token(home: &Path) -> Result<String, CredentialError> {
    hapi_credentials::owner_token(home).map(|c| c.value)
}

/// The owner token and where it is kept.
#[derive(Clone)]
pub struct OwnerToken {
    /// The token.
    pub token: String,
    /// Where it is kept, for `GET /api/hub`.
    pub info: CredentialInfo,
}

impl std::fmt::Debug for OwnerToken {
    // Hand-written so the token never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerToken")
            .field("token", &"<redacted>")
            .field("info", &self.info)
            .finish()
    }
}

impl OwnerToken {
    /// `CLI_API_TOKEN` (`config.owner_token`) if set, else the token of
    /// `config.home` from the vault [`Vault::open`] gives.
    pub fn resolve(config: &HubConfig) -> Result<OwnerToken, CredentialError> {
        match from_environment(config) {
            Some(token) => Ok(token),
            None => Self::from_vault(&Vault::open(&config.home)?),
        }
    }

    /// `CLI_API_TOKEN` if set, else the token `vault` finds or creates. A notice
    /// (no keychain) is logged: a warning, or info when the keychain is off on
    /// purpose.
    pub fn resolve_in(config: &HubConfig, vault: &Vault) -> Result<OwnerToken, CredentialError> {
        match from_environment(config) {
            Some(token) => Ok(token),
            None => Self::from_vault(vault),
        }
    }

    fn from_vault(vault: &Vault) -> Result<OwnerToken, CredentialError> {
        let credential = vault.get_or_create(&OWNER_TOKEN)?;
        if let Some(notice) = &credential.notice {
            if vault.keychain_off() {
                tracing::info!("{notice}");
            } else {
                tracing::warn!("{notice}");
            }
        }
        let store = match credential.store {
            hapi_credentials::StoreKind::Keychain => CredentialStoreKind::Keychain,
            hapi_credentials::StoreKind::File => CredentialStoreKind::File,
        };
        Ok(OwnerToken {
            token: credential.value,
            info: CredentialInfo {
                store,
                notice: credential.notice,
            },
        })
    }
}

fn from_environment(config: &HubConfig) -> Option<OwnerToken> {
    config.owner_token.as_ref().map(|token| OwnerToken {
        token: token.clone(),
        info: CredentialInfo {
            store: CredentialStoreKind::Environment,
            notice: None,
        },
    })
}

/// Who made a request, as the auth middleware found out. Handlers that act
/// differently for a paired device (approvals record the device, event streams
/// end when it is revoked) read it from the request's extensions.
#[derive(Clone, Debug)]
pub(crate) enum Caller {
    /// The owner token (or an owner's ticket), on the local listener.
    Owner,
    /// A paired device, on the remote listener.
    Device(DeviceCaller),
}

/// A paired device making a request on the remote listener.
#[derive(Clone, Debug)]
pub(crate) struct DeviceCaller {
    /// The device's id.
    pub id: String,
    /// Its name, recorded as `decided_by` on its approval decisions.
    pub name: String,
    /// Becomes true when the remote listener that took the request stops.
    pub remote_closing: tokio::sync::watch::Receiver<bool>,
}

/// Whom an event ticket was issued to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TicketHolder {
    /// The owner: redeemable on the local listener only.
    Owner,
    /// A paired device: redeemable on the remote listener only, while the
    /// device is not revoked.
    Device {
        /// The device's id.
        id: String,
        /// Its name.
        name: String,
    },
}

/// The hub's credentials and outstanding tickets.
pub struct Auth {
    owner_hash: String,
    tickets: Mutex<HashMap<String, (Instant, TicketHolder)>>,
}

impl Auth {
    /// Credentials for this owner token.
    pub fn new(owner_token: &str) -> Self {
        Auth {
            owner_hash: token_hash(owner_token),
            tickets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `token` is the owner token. Hashes are compared, so timing reveals
    /// nothing about the token.
    pub fn is_owner(&self, token: &str) -> bool {
        token_hash(token) == self.owner_hash
    }

    /// Issues a single-use event ticket to the owner.
    pub fn issue_ticket(&self) -> String {
        self.issue_ticket_for(TicketHolder::Owner)
    }

    /// Issues a single-use event ticket to `holder`.
    pub(crate) fn issue_ticket_for(&self, holder: TicketHolder) -> String {
        let ticket = new_token();
        let now = Instant::now();
        let mut tickets = self.tickets.lock().expect("ticket map poisoned");
        tickets.retain(|_, (expires, _)| *expires > now);
        tickets.insert(token_hash(&ticket), (now + TICKET_TTL, holder));
        ticket
    }

    /// Consumes an owner's ticket: true once, if it exists and has not expired.
    pub fn redeem_ticket(&self, ticket: &str) -> bool {
        self.redeem(ticket) == Some(TicketHolder::Owner)
    }

    /// Consumes a ticket: its holder once, if it exists and has not expired.
    pub(crate) fn redeem(&self, ticket: &str) -> Option<TicketHolder> {
        let mut tickets = self.tickets.lock().expect("ticket map poisoned");
        match tickets.remove(&token_hash(ticket)) {
            Some((expires, holder)) if expires > Instant::now() => Some(holder),
            _ => None,
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn query_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Middleware for `/api`: the owner token everywhere; a ticket on the event
/// streams; a wrapper's session token is checked by its own handler.
pub async fn require_auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    // Inside `nest("/api")` the prefix is already stripped; accept both forms.
    let path = req.uri().path();
    let path = path.strip_prefix("/api").unwrap_or(path);
    let is_session_link = path.starts_with("/sessions/") && path.ends_with("/ws");
    if is_session_link {
        return next.run(req).await;
    }
    if let Some(token) = bearer(&req) {
        if state.auth().is_owner(token) {
            req.extensions_mut().insert(Caller::Owner);
            return next.run(req).await;
        }
        return ApiError::unauthorized("invalid token").into_response();
    }
    let is_event_stream = path == "/events" || path == "/events/ws";
    if let Some(ticket) = query_param(&req, "ticket").filter(|_| is_event_stream) {
        // A device's ticket is for the remote listener only.
        if state.auth().redeem(ticket) == Some(TicketHolder::Owner) {
            req.extensions_mut().insert(Caller::Owner);
            return next.run(req).await;
        }
        return ApiError::unauthorized("ticket is unknown, expired or already used").into_response();
    }
    ApiError::unauthorized("missing `Authorization: Bearer <token>` (run `hapi auth token` to see it)").into_response()
}

/// Middleware for the phone-facing `/api` routes of the remote listener: a
/// device token (or a device's ticket on the event streams), never the owner
/// token. A revoked device is refused at once: its token is looked up on every
/// request (see `crate::devices`).
pub(crate) async fn require_device(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(remote_closing) = req
        .extensions()
        .get::<crate::remote::RemoteCtx>()
        .map(|ctx| ctx.closing.clone())
    else {
        return ApiError::internal("device auth outside the remote listener").into_response();
    };
    let path = req.uri().path();
    let path = path.strip_prefix("/api").unwrap_or(path);
    let is_event_stream = path == "/events" || path == "/events/ws";
    let device = if let Some(token) = bearer(&req) {
        if state.auth().is_owner(token) {
            return ApiError::unauthorized(
                "the owner token is not accepted on the remote listener; pair this device instead",
            )
            .into_response();
        }
        match state.devices().authenticate(&state, token).await {
            Ok(Some(device)) => device,
            Ok(None) => return ApiError::unauthorized("invalid or revoked device token").into_response(),
            Err(e) => return e.into_response(),
        }
    } else if let Some(ticket) = query_param(&req, "ticket").filter(|_| is_event_stream) {
        match state.auth().redeem(ticket) {
            Some(TicketHolder::Device { id, name }) if !state.devices().is_revoked(&id) => {
                crate::devices::DeviceIdentity { id, name }
            }
            _ => return ApiError::unauthorized("ticket is unknown, expired or already used").into_response(),
        }
    } else {
        return ApiError::unauthorized("missing `Authorization: Bearer <device token>` (pair this device first)")
            .into_response();
    };
    req.extensions_mut().insert(Caller::Device(DeviceCaller {
        id: device.id,
        name: device.name,
        remote_closing,
    }));
    next.run(req).await
}
