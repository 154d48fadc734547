//! Pairing: a phone trades a single-use pairing secret (or a short typed code)
//! for a device token of its own.
//!
//! - `POST /api/pairing` (owner) makes an *offer*: a 160-bit random secret,
//!   put in the fragment of the QR code's URL (`…/#/pair/<secret>`, so it never
//!   reaches a server log), and an 8-character code from an unambiguous
//!   alphabet (four and four characters, e.g. `K7QF-2MXD`) for a phone that cannot scan. Both stop working when
//!   one of them is used, after [`HubConfig::pairing_ttl`](crate::HubConfig)
//!   (5 minutes), when the owner withdraws the offer, and when remote access is
//!   turned off. Offers live in memory only: a hub restart drops them.
//! - `POST /pair` (no auth, both listeners) redeems one. Failed attempts share
//!   one **global** budget ([`MAX_FAILURES`] per [`FAILURE_WINDOW`]): not per
//!   address, because every tunnel delivers its connections from 127.0.0.1.
//!   Spending it locks pairing for [`LOCKOUT`], during which even a correct
//!   secret or code is refused. A wrong attempt never says whether any offer
//!   exists, and creates nothing.
//!
//! An 8-character code over 30 symbols has 30^8 ≈ 6.6·10^11 values; with at most
//! 10 guesses per lockout period, guessing a live code is out of reach.
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hapi_protocol::{ErrorCode, PairDevice, PairedDevice, Pairing};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use rand::{Rng as _, RngCore as _};

use crate::AppState;
use crate::auth::{new_token, token_hash};
use crate::error::{ApiError, ApiJson};

/// How long an offer stays valid unless configured otherwise.
pub const DEFAULT_PAIRING_TTL: Duration = Duration::from_secs(5 * 60);
/// Failed attempts allowed per [`FAILURE_WINDOW`], across all clients.
pub(crate) const MAX_FAILURES: usize = 10;
/// The window failed attempts are counted in.
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);
/// How long pairing stays locked once the budget is spent.
pub(crate) const LOCKOUT: Duration = Duration::from_secs(5 * 60);
/// Largest `POST /pair` body accepted.
pub(crate) const PAIR_BODY_LIMIT: usize = 4 * 1024;
/// Longest device name accepted, in characters.
const MAX_NAME: usize = 64;
/// Most offers alive at once; making another drops the oldest.
const MAX_OFFERS: usize = 8;
/// The typed code's alphabet: Crockford's base32 without 0 and 1 (it already
/// lacks I, L, O and U), so nothing can be misread.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a typed code.
const CODE_LEN: usize = 8;

struct Offer {
    id: String,
    secret_hash: String,
    code_hash: String,
    expires: Instant,
}

#[derive(Default)]
struct Book {
    offers: Vec<Offer>,
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

impl Book {
    /// Whether pairing is locked now; clears an expired lock (and the failures
    /// that led to it).
    fn locked(&mut self, now: Instant) -> Option<Duration> {
        match self.locked_until {
            Some(until) if now < until => Some(until - now),
            Some(_) => {
                self.locked_until = None;
                self.failures.clear();
                None
            }
            None => None,
        }
    }
}

/// What a phone sent to redeem an offer.
enum Key<'a> {
    Secret(&'a str),
    Code(&'a str),
}

/// Pairing offers and the failed-attempt budget of a running hub.
#[derive(Default)]
pub(crate) struct Offers {
    book: Mutex<Book>,
}

/// A new offer, before it is dressed up as a [`Pairing`].
struct NewOffer {
    id: String,
    secret: String,
    code: String,
}

fn locked_error(left: Duration) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::PairingLocked,
        format!(
            "too many failed pairing attempts; pairing is locked for another {} s",
            left.as_secs().max(1)
        ),
    )
}

fn invalid_error() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::PairingInvalid,
        "the pairing secret or code is unknown, used, expired or withdrawn",
    )
}

/// `code` without dashes and spaces, upper case.
fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

fn new_code() -> String {
    let mut rng = rand::rng();
    let chars: String = (0..CODE_LEN)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect();
    format!("{}-{}", &chars[..CODE_LEN / 2], &chars[CODE_LEN / 2..])
}

fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Offers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().expect("pairing offers poisoned")
    }

    fn offer(&self, ttl: Duration) -> NewOffer {
        let now = Instant::now();
        let mut book = self.lock();
        book.offers.retain(|o| o.expires > now);
        let code = loop {
            let code = new_code();
            let hash = token_hash(&normalize_code(&code));
            if !book.offers.iter().any(|o| o.code_hash == hash) {
                break code;
            }
        };
        let offer = NewOffer {
            id: uuid::Uuid::now_v7().to_string(),
            secret: new_secret(),
            code,
        };
        if book.offers.len() >= MAX_OFFERS {
            book.offers.remove(0);
        }
        book.offers.push(Offer {
            id: offer.id.clone(),
            secret_hash: token_hash(&offer.secret),
            code_hash: token_hash(&normalize_code(&offer.code)),
            expires: now + ttl,
        });
        offer
    }

    /// Withdraws an offer (nothing happens if it is gone already).
    fn withdraw(&self, id: &str) -> bool {
        let mut book = self.lock();
        let before = book.offers.len();
        book.offers.retain(|o| o.id != id);
        book.offers.len() != before
    }

    /// Withdraws every offer (remote access was turned off).
    pub(crate) fn clear(&self) {
        self.lock().offers.clear();
    }

    /// Refuses while pairing is locked.
    fn check_unlocked(&self) -> Result<(), ApiError> {
        match self.lock().locked(Instant::now()) {
            Some(left) => Err(locked_error(left)),
            None => Ok(()),
        }
    }

    /// Consumes the offer `key` matches; a miss counts against the budget.
    fn redeem(&self, key: Key<'_>) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut book = self.lock();
        if let Some(left) = book.locked(now) {
            return Err(locked_error(left));
        }
        book.offers.retain(|o| o.expires > now);
        let found = match key {
            Key::Secret(secret) => {
                let hash = token_hash(secret.trim());
                book.offers.iter().position(|o| o.secret_hash == hash)
            }
            Key::Code(code) => {
                let hash = token_hash(&normalize_code(code));
                book.offers.iter().position(|o| o.code_hash == hash)
            }
        };
        if let Some(i) = found {
            book.offers.swap_remove(i);
            return Ok(());
        }
        book.failures.push_back(now);
        while book
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            book.failures.pop_front();
        }
        let failures = book.failures.len();
        if failures >= MAX_FAILURES {
            book.locked_until = Some(now + LOCKOUT);
            tracing::warn!(failures, "pairing locked after too many failed attempts");
        } else {
            tracing::warn!(failures, "failed pairing attempt");
        }
        Err(invalid_error())
    }
}

/// The QR code of `url`, as SVG.
fn qr_svg(url: &str) -> Result<String, ApiError> {
    let code = QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M)
        .map_err(|e| ApiError::internal(format!("cannot make the QR code: {e}")))?;
    Ok(code
        .render::<svg::Color>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// `POST /api/pairing` (owner): a new offer. `409 remote_off` unless remote
/// access is up (the URL in the QR code must work).
pub(crate) async fn create(State(state): State<AppState>) -> Result<(StatusCode, Json<Pairing>), ApiError> {
    let Some((public_url, transport)) = state.remote().pairing_target() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::RemoteOff,
            "phone access is off (or not up yet): turn it on first",
        ));
    };
    let ttl = state.config().pairing_ttl;
    let offer = state.pairing().offer(ttl);
    let url = format!("{}/#/pair/{}", public_url.trim_end_matches('/'), offer.secret);
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let pairing = Pairing {
        id: offer.id,
        qr_svg: qr_svg(&url)?,
        url,
        code: offer.code,
        expires_at: hapi_store::rfc3339(hapi_store::now_ms().saturating_add(ttl_ms)),
        transport,
    };
    tracing::info!(offer_id = %pairing.id, "pairing offer made");
    Ok((StatusCode::CREATED, Json(pairing)))
}

/// `DELETE /api/pairing/{id}` (owner): withdraws an offer. `204` whether or not
/// it was still there (it may have been used or have expired meanwhile).
pub(crate) async fn withdraw(State(state): State<AppState>, Path(id): Path<String>) -> StatusCode {
    if state.pairing().withdraw(&id) {
        tracing::info!(offer_id = %id, "pairing offer withdrawn");
    }
    StatusCode::NO_CONTENT
}

/// `POST /pair` (no auth): redeems an offer for a new device and its token.
pub(crate) async fn pair(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PairDevice>,
) -> Result<(StatusCode, Json<PairedDevice>), ApiError> {
    // Locked first: then nothing, not even a correct code, gets through.
    state.pairing().check_unlocked()?;
    if state.remote().pairing_target().is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::RemoteOff,
            "phone access is off on this computer",
        ));
    }
    let name = body.device_name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "`device_name` must be 1 to {MAX_NAME} characters, without control characters"
        )));
    }
    let key = match (body.secret.as_deref(), body.code.as_deref()) {
        (Some(secret), None) => Key::Secret(secret),
        (None, Some(code)) => Key::Code(code),
        _ => return Err(ApiError::invalid("give exactly one of `secret` and `code`")),
    };
    state.pairing().redeem(key)?;
    let token = new_token();
    let hash = token_hash(&token);
    let id = uuid::Uuid::now_v7().to_string();
    let device = state
        .writer()
        .write(move |tx| hapi_store::create_device(tx, &id, &name, &hash).map(|d| (d, Vec::new())))
        .await?;
    tracing::info!(device_id = %device.id, device_name = %device.name, "device paired");
    Ok((StatusCode::CREATED, Json(PairedDevice { device, token })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unambiguous_and_compare_loosely() {
        for _ in 0..200 {
            let code = new_code();
            assert_eq!(code.len(), CODE_LEN + 1);
            assert_eq!(&code[4..5], "-");
            assert!(code.bytes().filter(|b| *b != b'-').all(|b| CODE_ALPHABET.contains(&b)));
            assert!(!code.contains(['0', '1', 'O', 'I', 'L']), "{code}");
        }
        assert_eq!(normalize_code(" ab2c-d3ef \n"), "AB2CD3EF");
        assert_eq!(normalize_code("ab2c d3ef"), "AB2CD3EF");
    }

    #[test]
    fn an_offer_is_single_use_and_misses_spend_a_global_budget() {
        let offers = Offers::default();
        let a = offers.offer(Duration::from_secs(60));
        let b = offers.offer(Duration::from_secs(60));
        assert!(a.secret.len() >= 32, "at least 128 bits");
        offers.redeem(Key::Secret(&a.secret)).unwrap();
        assert!(offers.redeem(Key::Secret(&a.secret)).is_err(), "single use");
        offers
            .redeem(Key::Code(&b.code.to_lowercase().replace('-', " ")))
            .unwrap();
        assert_eq!(offers.lock().failures.len(), 1);

        let c = offers.offer(Duration::from_secs(60));
        for _ in 1..MAX_FAILURES {
            assert!(offers.redeem(Key::Code("ZZZZ-ZZZZ")).is_err());
        }
        assert!(offers.check_unlocked().is_err(), "locked after {MAX_FAILURES} misses");
        let err = offers.redeem(Key::Code(&c.code)).unwrap_err();
        assert_eq!(err.body().code, ErrorCode::PairingLocked, "even the right code");
    }

    #[test]
    fn expired_and_withdrawn_offers_are_refused() {
        let offers = Offers::default();
        let a = offers.offer(Duration::ZERO);
        assert!(offers.redeem(Key::Secret(&a.secret)).is_err());
        let b = offers.offer(Duration::from_secs(60));
        assert!(offers.withdraw(&b.id));
        assert!(!offers.withdraw(&b.id));
        assert!(offers.redeem(Key::Code(&b.code)).is_err());
    }

    #[test]
    fn the_qr_code_is_svg() {
        let svg = qr_svg("http://192.168.1.20:41234/#/pair/0123456789abcdef0123456789abcdef01234567").unwrap();
        assert!(svg.contains("<svg"), "{svg}");
    }
}
