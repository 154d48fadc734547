//! Route table. Handlers live in one module per resource.
mod approvals;
mod audit;
mod events;
mod hub;
mod link;
pub(crate) mod machines;
pub(crate) mod ops;
mod phone;
mod policy;
mod sessions;
pub(crate) mod usage;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use hapi_protocol::{Health, VERSION};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::{AppState, assets, auth, devices, pairing, remote, security};

pub(crate) use phone::router as phone_router;

pub(crate) fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/hub", get(hub::info))
        .route("/sessions", get(sessions::list).post(sessions::create))
        .route("/sessions/{id}", get(sessions::get))
        .route("/sessions/{id}/messages", get(sessions::messages).post(sessions::send))
        .route("/sessions/{id}/abort", post(sessions::abort))
        .route("/sessions/{id}/stop", post(sessions::stop))
        .route("/sessions/{id}/skip-approvals", post(sessions::skip_approvals))
        .route("/sessions/{id}/usage", get(usage::get))
        .route("/sessions/{id}/budget", put(usage::put_budget))
        .route("/sessions/{id}/ws", get(link::connect))
        .route("/approvals", get(approvals::list))
        .route("/approvals/{id}", get(approvals::get).post(approvals::decide))
        .route("/machines", get(machines::list))
        .route("/machines/{id}", get(machines::get))
        .route("/machines/{id}/ws", get(machines::connect))
        .route("/machines/{id}/sessions", post(machines::spawn))
        .route("/events", get(events::sse))
        .route("/events/ws", get(events::websocket))
        .route("/events/ticket", post(events::ticket))
        .route("/pairing", post(pairing::create))
        .route("/pairing/{id}", delete(pairing::withdraw))
        .route("/devices", get(devices::list))
        .route("/devices/revoke-all", post(devices::revoke_all))
        .route("/devices/{id}", delete(devices::revoke))
        .route("/remote", get(remote::get).put(remote::put))
        .route("/remote/consent", get(remote::consent))
        .route("/audit", get(audit::list))
        .route("/policy", get(policy::get).put(policy::put))
        .fallback(unknown_api_route)
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_auth));
    let body_limit = state.config().body_limit;
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route(
            "/pair",
            post(pairing::pair).layer(DefaultBodyLimit::max(pairing::PAIR_BODY_LIMIT)),
        )
        .nest("/api", api)
        .fallback(assets::serve)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), security::guard_local))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // One span per request; the query string is left out because it can
            // hold a (short-lived) event ticket.
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: VERSION.into(),
        uptime_s: state.uptime_s(),
    })
}

async fn unknown_api_route(req: Request) -> ApiError {
    ApiError::not_found(format!("no route {} {}", req.method(), req.uri().path()))
}
