//! Who may call the hub.
//!
//! - The **owner token** (one per `$HAPI_HOME`) opens every `/api` route. It is
//!   created on first start in `$HAPI_HOME/owner.token` with mode 0600, or taken
//!   from `CLI_API_TOKEN`. It never appears in a URL.
//! - **Event tickets** are short-lived and single-use, for `GET /api/events` and
//!   `/api/events/ws`, because a browser's `EventSource` cannot send a header.
//! - **Session tokens** open only their own session's wrapper WebSocket. The hub
//!   stores their SHA-256, never the token.
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// How long an event ticket stays valid unused.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// File name of the owner token inside `$HAPI_HOME`.
pub const OWNER_TOKEN_FILE: &str = "owner.token";

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

/// Path of the owner token file.
pub fn owner_token_path(home: &Path) -> PathBuf {
    home.join(OWNER_TOKEN_FILE)
}

/// Reads the owner token, creating it (mode 0600, exclusively) on first use, so
/// the hub and `hapi auth token` always agree on one token per `$HAPI_HOME`.
pub fn load_or_create_owner_token(home: &Path) -> std::io::Result<String> {
    let path = owner_token_path(home);
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_owned()),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} is empty; delete it to generate a new owner token",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(home)?;
    let token = new_token();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(token.as_bytes())?;
            file.sync_all()?;
            Ok(token)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)?.trim().to_owned())
        }
        Err(e) => Err(e),
    }
}

/// The hub's credentials and outstanding tickets.
pub struct Auth {
    owner_hash: String,
    tickets: Mutex<HashMap<String, Instant>>,
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

    /// Issues a single-use event ticket.
    pub fn issue_ticket(&self) -> String {
        let ticket = new_token();
        let now = Instant::now();
        let mut tickets = self.tickets.lock().expect("ticket map poisoned");
        tickets.retain(|_, expires| *expires > now);
        tickets.insert(token_hash(&ticket), now + TICKET_TTL);
        ticket
    }

    /// Consumes a ticket: true once, if it exists and has not expired.
    pub fn redeem_ticket(&self, ticket: &str) -> bool {
        let mut tickets = self.tickets.lock().expect("ticket map poisoned");
        matches!(tickets.remove(&token_hash(ticket)), Some(expires) if expires > Instant::now())
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
pub async fn require_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Inside `nest("/api")` the prefix is already stripped; accept both forms.
    let path = req.uri().path();
    let path = path.strip_prefix("/api").unwrap_or(path);
    let is_session_link = path.starts_with("/sessions/") && path.ends_with("/ws");
    if is_session_link {
        return next.run(req).await;
    }
    if let Some(token) = bearer(&req) {
        if state.auth().is_owner(token) {
            return next.run(req).await;
        }
        return ApiError::unauthorized("invalid token").into_response();
    }
    let is_event_stream = path == "/events" || path == "/events/ws";
    if let Some(ticket) = query_param(&req, "ticket").filter(|_| is_event_stream) {
        if state.auth().redeem_ticket(ticket) {
            return next.run(req).await;
        }
        return ApiError::unauthorized("ticket is unknown, expired or already used").into_response();
    }
    ApiError::unauthorized("missing `Authorization: Bearer <token>` (run `hapi auth token` to see it)").into_response()
}
