//! The providers, one file each.

pub mod bore;
pub mod cloudflared;
pub mod lan;
pub mod tailscale;
