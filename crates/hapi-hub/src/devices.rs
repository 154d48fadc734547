//! Paired devices: who they are, whether they are revoked, and the owner's
//! `/api/devices` routes.
//!
//! A device token is looked up on every request. Found devices are cached by
//! token hash, but a revocation is never missed:
//! - a revoked id goes into `revoked` (kept for the hub's lifetime: ids are
//!   UUIDs, and there are few devices), which every lookup checks last;
//! - a lookup that read the database before a revocation committed cannot put
//!   a stale entry back into the cache, because every revocation bumps `epoch`
//!   and an entry is cached only if `epoch` did not change during the read;
//! - every revocation bumps a `watch` counter, which open event streams of
//!   devices select on: a revoked device's stream ends at once.
//!
//! `last_seen_at` is written through the single writer at most once a minute
//! per device ([`TOUCH_EVERY`]).
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hapi_protocol::DeviceList;
use tokio::sync::watch;

use crate::AppState;
use crate::auth::token_hash;
use crate::error::ApiError;

/// `last_seen_at` is written at most this often per device.
pub(crate) const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A device a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeviceIdentity {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

struct Entry {
    device: DeviceIdentity,
    /// When `last_seen_at` was last written (by this hub process).
    touched: Option<Instant>,
}

#[derive(Default)]
struct Registry {
    /// Bumped by every revocation.
    epoch: u64,
    /// Devices found by token hash, not revoked.
    by_hash: HashMap<String, Entry>,
    /// Every device revoked while this hub runs.
    revoked: HashSet<String>,
}

/// The device registry of a running hub.
pub(crate) struct Devices {
    registry: Mutex<Registry>,
    revocations: watch::Sender<u64>,
}

impl Default for Devices {
    fn default() -> Self {
        Devices {
            registry: Mutex::default(),
            revocations: watch::channel(0).0,
        }
    }
}

impl Devices {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().expect("device registry poisoned")
    }

    /// The device `token` belongs to, if it is paired and not revoked.
    pub(crate) async fn authenticate(&self, state: &AppState, token: &str) -> Result<Option<DeviceIdentity>, ApiError> {
        let hash = token_hash(token);
        let epoch = {
            let mut registry = self.lock();
            let Registry {
                by_hash,
                revoked,
                epoch,
            } = &mut *registry;
            if let Some(entry) = by_hash.get_mut(&hash) {
                if revoked.contains(&entry.device.id) {
                    return Ok(None);
                }
                let device = entry.device.clone();
                let touch = due(&mut entry.touched);
                drop(registry);
                if touch {
                    self.touch(state, &device.id);
                }
                return Ok(Some(device));
            }
            *epoch
        };
        let lookup = hash.clone();
        let Some(found) = state
            .read(move |c| hapi_store::device_by_token_hash(c, &lookup))
            .await?
        else {
            return Ok(None);
        };
        let device = DeviceIdentity {
            id: found.id,
            name: found.name,
        };
        let mut registry = self.lock();
        if registry.revoked.contains(&device.id) {
            return Ok(None);
        }
        let mut touched = None;
        let touch = due(&mut touched);
        if registry.epoch == epoch {
            registry.by_hash.insert(
                hash,
                Entry {
                    device: device.clone(),
                    touched,
                },
            );
        }
        drop(registry);
        if touch {
            self.touch(state, &device.id);
        }
        Ok(Some(device))
    }

    /// Writes `last_seen_at` in the background; a failure is only logged.
    fn touch(&self, state: &AppState, id: &str) {
        let writer = state.writer().clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            let at = hapi_store::now_ms();
            let result = writer
                .write(move |tx| hapi_store::touch_device(tx, &id, at).map(|()| ((), Vec::new())))
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "cannot record when a device was last seen");
            }
        });
    }

    /// Whether the device was revoked while this hub runs.
    pub(crate) fn is_revoked(&self, id: &str) -> bool {
        self.lock().revoked.contains(id)
    }

    /// Forgets revoked devices: refuses them from now on and wakes their streams.
    fn forget(&self, ids: &[String]) {
        {
            let mut registry = self.lock();
            registry.epoch += 1;
            registry.revoked.extend(ids.iter().cloned());
            registry.by_hash.retain(|_, e| !ids.contains(&e.device.id));
        }
        self.revocations.send_modify(|n| *n += 1);
    }

    /// Revokes one device (404 if it does not exist or is already revoked).
    pub(crate) async fn revoke(&self, state: &AppState, id: String) -> Result<(), ApiError> {
        let revoked = id.clone();
        state
            .writer()
            .write(move |tx| hapi_store::revoke_device(tx, &id).map(|()| ((), Vec::new())))
            .await?;
        self.forget(&[revoked]);
        Ok(())
    }

    /// Revokes every device; returns how many there were.
    pub(crate) async fn revoke_all(&self, state: &AppState) -> Result<usize, ApiError> {
        let ids = state
            .writer()
            .write(|tx| hapi_store::revoke_all_devices(tx).map(|ids| (ids, Vec::new())))
            .await?;
        self.forget(&ids);
        Ok(ids.len())
    }

    /// Resolves when device `id` is revoked (at once if it already is).
    pub(crate) fn revoked(state: &AppState, id: String) -> impl Future<Output = ()> + Send + 'static {
        let state = state.clone();
        let mut changes = state.devices().revocations.subscribe();
        async move {
            loop {
                if state.devices().is_revoked(&id) {
                    return;
                }
                if changes.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}

/// Whether `last_seen_at` is due, marking it written if so.
fn due(touched: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    match touched {
        Some(at) if now.duration_since(*at) < TOUCH_EVERY => false,
        _ => {
            *touched = Some(now);
            true
        }
    }
}

/// `GET /api/devices` (owner): paired devices, newest first.
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<DeviceList>, ApiError> {
    Ok(Json(DeviceList {
        devices: state.read(hapi_store::list_devices).await?,
    }))
}

/// `DELETE /api/devices/{id}` (owner): revokes one device; its token and
/// tickets stop working and its open event streams end.
pub(crate) async fn revoke(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.devices().revoke(&state, id.clone()).await?;
    tracing::info!(device_id = %id, "device revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/devices/revoke-all` (owner): the kill switch. Revokes every
/// device and turns remote access off (which also withdraws pairing offers and
/// closes the remote listener).
pub(crate) async fn revoke_all(State(state): State<AppState>) -> Result<StatusCode, ApiError> {
    // Off first: from then on nothing reaches the phone-facing routes at all.
    state.remote().turn_off(&state).await;
    let n = state.devices().revoke_all(&state).await?;
    tracing::warn!(
        devices = n,
        "kill switch: every device revoked and remote access turned off"
    );
    Ok(StatusCode::NO_CONTENT)
}
