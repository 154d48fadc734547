//! Integration tests: the real hub on 127.0.0.1:0 with a temporary `HAPI_HOME`,
//! driven over HTTP, SSE and WebSocket exactly as clients do.
mod support;

mod api;
mod audit;
mod disk_full;
mod events;
mod link;
mod machines;
mod ops;
mod phone;
mod policy_edit;
mod tls;
mod usage;
