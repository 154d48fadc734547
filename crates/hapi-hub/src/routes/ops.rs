//! Operations routes: `GET /metrics` (Prometheus text) and `GET /ready`
//! (readiness per component). See `docs/operations.md`.
//!
//! `/metrics` takes the owner token or the metrics token (`HAPI_METRICS_TOKEN`),
//! never a peer address: tunnels connect from 127.0.0.1 too. `/ready` is
//! unauthenticated like `/health` and tells only component states; its database
//! probe is one tiny write through the single writer, shared by every probe
//! within a second so a busy prober cannot turn it into load.
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hapi_protocol::{RemoteState, SessionState};
use serde::Serialize;

use crate::AppState;
use crate::auth::{bearer, token_hash};
use crate::error::ApiError;
use crate::metrics::{Metrics, RunnerBeat, RunnerSessions, Scrape};
use crate::routes::machines::SILENCE_LIMIT;

/// The content type of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// How long the database probe may take before the database counts as not ready.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Probes within this long of the last one share its answer.
const PROBE_REUSE: Duration = Duration::from_secs(1);
/// Id of the row the probe inserts and deletes in one transaction: nothing else
/// ever sees it. Machine ids are UUIDs, so it cannot be a real machine.
const PROBE_ROW: &str = "hapi-ready-probe";

pub(crate) async fn metrics(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let token = bearer(&req).ok_or_else(|| {
        ApiError::unauthorized("missing `Authorization: Bearer <token>` (the owner token or HAPI_METRICS_TOKEN)")
    })?;
    let metrics_token = state.config().metrics_token.as_deref();
    let allowed = state.auth().is_owner(token) || metrics_token.is_some_and(|t| token_hash(t) == token_hash(token));
    if !allowed {
        return Err(ApiError::unauthorized("invalid token"));
    }
    let (sessions, approvals_pending) = state.read(count_sessions_and_approvals).await?;
    let db = state.db_path().to_owned();
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let remote = state.remote().access();
    let scrape = Scrape {
        sessions,
        approvals_pending,
        wrapper_links: state.links().connected(),
        runner_links: state.runner_links().connected(),
        db_bytes: size(&db),
        wal_bytes: size(std::path::Path::new(&wal)),
        tunnel_up: remote.state == RemoteState::Up,
        tunnel_failures: remote.failures,
        runner_sessions: runner_sessions(&state.config().home),
    };
    let text = state.metrics().render(&scrape);
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response())
}

/// Sessions per state and the pending approvals. The approvals count walks the
/// `approvals_state` index; the sessions table has one row per session (not per
/// message), so grouping it stays cheap.
fn count_sessions_and_approvals(
    c: &hapi_store::rusqlite::Connection,
) -> hapi_store::Result<(Vec<(SessionState, u64)>, u64)> {
    let mut stmt = c.prepare_cached("SELECT state, COUNT(*) FROM sessions GROUP BY state")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut sessions = Vec::new();
    for row in rows {
        let (state, n) = row?;
        if let Some(state) = SessionState::parse(&state) {
            sessions.push((state, n as u64));
        }
    }
    let pending: i64 = c
        .prepare_cached("SELECT COUNT(*) FROM approvals WHERE state = 'pending'")?
        .query_row([], |r| r.get(0))?;
    Ok((sessions, pending as u64))
}

/// Folds histogram samples into buckets every few seconds until the hub stops.
pub(crate) async fn upkeep(metrics: Metrics, closing: impl std::future::Future<Output = ()>) {
    tokio::pin!(closing);
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => metrics.run_upkeep(),
            () = &mut closing => return,
        }
    }
}

/// `GET /ready`.
#[derive(Debug, Serialize)]
pub(crate) struct Readiness {
    /// `ready` when every component is, else `not_ready`.
    status: &'static str,
    components: Components,
}

#[derive(Debug, Serialize)]
struct Components {
    database: Component,
    runner: Component,
    /// Phone access's tunnel, while phone access is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    tunnel: Option<Component>,
}

/// One component's state.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Component {
    /// `ok`, or what is wrong (or absent) in one word.
    status: &'static str,
    /// Whether this state lets the hub count as ready.
    ready: bool,
    /// What was found, for a person.
    detail: String,
}

impl Component {
    fn new(status: &'static str, ready: bool, detail: impl Into<String>) -> Self {
        Component {
            status,
            ready,
            detail: detail.into(),
        }
    }
}

/// The last database probe, reused by probes within [`PROBE_REUSE`]; the lock
/// also makes concurrent probes wait for one write instead of queueing many.
#[derive(Default)]
pub(crate) struct ProbeCache {
    last: tokio::sync::Mutex<Option<(Instant, Component)>>,
}

pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let database = probe_database(&state).await;
    let runner = runner_component(state.metrics().runner(state.machine_id()));
    let tunnel = tunnel_component(&state.remote().access());
    let ready = database.ready && runner.ready && tunnel.as_ref().is_none_or(|t| t.ready);
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        components: Components {
            database,
            runner,
            tunnel,
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// The session counters the runner of this `$HAPI_HOME` keeps in its state file
/// (restarts, out-of-memory kills, whether cgroup limits apply); a small file,
/// read at scrape time. `None` without a runner state file.
fn runner_sessions(home: &std::path::Path) -> Option<RunnerSessions> {
    let text = std::fs::read_to_string(home.join("runner.state.json")).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).ok()?;
    let sessions = state.get("sessions")?;
    Some(RunnerSessions {
        restarts: sessions["restarts"].as_u64().unwrap_or(0),
        oom_kills: sessions["oomKills"].as_u64().unwrap_or(0),
        cgroup_ready: sessions["cgroupReady"].as_bool().unwrap_or(false),
    })
}

/// Phone access's state, when it is on: up is ready; starting, down
/// (reconnecting) and failed are not.
fn tunnel_component(remote: &hapi_protocol::RemoteAccess) -> Option<Component> {
    let detail = |what: &str| match (&remote.public_url, &remote.detail) {
        (_, Some(detail)) => format!("{what}: {detail} ({} failures)", remote.failures),
        (Some(url), None) => format!("{what} at {url} ({} failures)", remote.failures),
        (None, None) => format!("{what} ({} failures)", remote.failures),
    };
    match remote.state {
        RemoteState::Off => None,
        RemoteState::Up => Some(Component::new("ok", true, detail("reachable"))),
        RemoteState::Starting => Some(Component::new("starting", false, detail("starting"))),
        RemoteState::Down => Some(Component::new("down", false, detail("lost, reconnecting"))),
        RemoteState::Failed => Some(Component::new("failed", false, detail("could not start"))),
    }
}

/// Whether a write commits: a probe row is inserted and deleted in one
/// transaction through the single writer, so pages really reach the WAL (an
/// update to an unchanged value would be skipped by SQLite) and nothing visible
/// changes. Fails if the writer is stuck, the write lock is held elsewhere, the
/// disk is full or read-only.
async fn probe_database(state: &AppState) -> Component {
    let mut last = state.ready_probe().last.lock().await;
    if let Some((at, component)) = last.as_ref()
        && at.elapsed() < PROBE_REUSE
    {
        return component.clone();
    }
    let started = Instant::now();
    let write = state.writer().write(|tx| {
        tx.execute(
            "INSERT OR REPLACE INTO machines (id, name, created_at) VALUES (?1, 'readiness probe', 0)",
            [PROBE_ROW],
        )?;
        tx.execute("DELETE FROM machines WHERE id = ?1", [PROBE_ROW])?;
        Ok(((), Vec::new()))
    });
    let component = match tokio::time::timeout(PROBE_TIMEOUT, write).await {
        Ok(Ok(())) => Component::new(
            "ok",
            true,
            format!("a probe write committed in {} ms", started.elapsed().as_millis()),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness probe: the database is not writable");
            Component::new("failing", false, format!("a probe write failed: {e}"))
        }
        Err(_) => {
            tracing::warn!("readiness probe: no commit within {} s", PROBE_TIMEOUT.as_secs());
            Component::new(
                "timeout",
                false,
                format!(
                    "a probe write did not commit within {} s (the writer is stuck, or another process holds the database's write lock)",
                    PROBE_TIMEOUT.as_secs()
                ),
            )
        }
    };
    *last = Some((Instant::now(), component.clone()));
    component
}

/// This machine's runner: `ok` while linked with a heartbeat within
/// [`SILENCE_LIMIT`] (three missed `alive` frames); `absent` (never linked since
/// the hub started) and `stopped` (it said it was shutting down) do not make the
/// hub unready, because sessions can still be started with `hapi claude`; `stale`
/// and `lost` (its link dropped without a shutdown) do.
pub(crate) fn runner_component(beat: Option<RunnerBeat>) -> Component {
    let Some(beat) = beat else {
        return Component::new(
            "absent",
            true,
            "no runner has linked since the hub started (start one with `hapi runner start`)",
        );
    };
    let age = beat.last.elapsed().as_secs();
    match (beat.linked, beat.stopping) {
        (true, _) if beat.last.elapsed() <= SILENCE_LIMIT => {
            Component::new("ok", true, format!("linked; last heartbeat {age} s ago"))
        }
        (true, _) => Component::new(
            "stale",
            false,
            format!("linked, but its last heartbeat was {age} s ago"),
        ),
        (false, true) => Component::new(
            "stopped",
            true,
            format!("the runner shut down (last heartbeat {age} s ago); start it with `hapi runner start`"),
        ),
        (false, false) => Component::new(
            "lost",
            false,
            format!(
                "the runner's link dropped without a shutdown (last heartbeat {age} s ago); a running runner reconnects by itself"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(ago: Duration, linked: bool, stopping: bool) -> Option<RunnerBeat> {
        Some(RunnerBeat {
            last: Instant::now() - ago,
            linked,
            stopping,
        })
    }

    #[test]
    fn runner_states() {
        let c = runner_component(None);
        assert_eq!((c.status, c.ready), ("absent", true));
        let c = runner_component(beat(Duration::from_secs(5), true, false));
        assert_eq!((c.status, c.ready), ("ok", true));
        let c = runner_component(beat(SILENCE_LIMIT + Duration::from_secs(1), true, false));
        assert_eq!((c.status, c.ready), ("stale", false));
        let c = runner_component(beat(Duration::from_secs(5), false, true));
        assert_eq!((c.status, c.ready), ("stopped", true));
        let c = runner_component(beat(Duration::from_secs(5), false, false));
        assert_eq!((c.status, c.ready), ("lost", false));
    }
}
