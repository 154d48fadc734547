//! The remote listener's routes: what a paired phone may use, and nothing else.
//!
//! - `GET /health` (the tunnel's probe) and `POST /pair` without auth;
//! - the phone-facing `/api` routes (sessions, approvals, machines, events)
//!   with a device token or a device's ticket ([`auth::require_device`]); the
//!   owner token is refused;
//! - the web UI.
//!
//! Owner-only routes (`/api/hub`, `/api/pairing`, `/api/devices`,
//! `/api/remote`, session creation, the wrapper and runner links) do not exist
//! here: they answer `404` (or `401` without a device token). `/metrics` and
//! `/ready` answer `404`.
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post, put};
use axum::{Extension, Router, middleware};
use tower_http::trace::TraceLayer;

use super::{approvals, events, health, machines, sessions, unknown_api_route, usage};
use crate::error::ApiError;
use crate::remote::RemoteCtx;
use crate::{AppState, assets, auth, pairing, security};

pub(crate) fn router(state: AppState, ctx: RemoteCtx) -> Router {
    let api = Router::new()
        .route("/sessions", get(sessions::list))
        .route("/sessions/{id}", get(sessions::get))
        .route("/sessions/{id}/messages", get(sessions::messages).post(sessions::send))
        .route("/sessions/{id}/abort", post(sessions::abort))
        .route("/sessions/{id}/stop", post(sessions::stop))
        .route("/sessions/{id}/usage", get(usage::get))
        .route("/sessions/{id}/budget", put(usage::put_budget))
        .route("/approvals", get(approvals::list))
        .route("/approvals/{id}", get(approvals::get).post(approvals::decide))
        .route("/machines", get(machines::list))
        .route("/machines/{id}", get(machines::get))
        .route("/machines/{id}/sessions", post(machines::spawn))
        .route("/events", get(events::sse))
        .route("/events/ws", get(events::websocket))
        .route("/events/ticket", post(events::ticket))
        .fallback(unknown_api_route)
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_device));
    let body_limit = state.config().body_limit;
    Router::new()
        .route("/health", get(health))
        .route(
            "/pair",
            post(pairing::pair).layer(DefaultBodyLimit::max(pairing::PAIR_BODY_LIMIT)),
        )
        .route("/metrics", any(not_here))
        .route("/ready", any(not_here))
        .nest("/api", api)
        .fallback(assets::serve)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(security::guard_remote))
        .layer(Extension(ctx))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::extract::Request| {
                // The query string is left out: it can hold a (short-lived) ticket.
                tracing::info_span!("remote request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}

async fn not_here() -> ApiError {
    ApiError::not_found("not served on the remote listener")
}
