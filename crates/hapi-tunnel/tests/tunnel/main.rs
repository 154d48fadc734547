//! Integration tests of hapi-tunnel with real components: an in-process bore
//! server, a real HTTP server answering `/health`, and fake `tailscale` /
//! `cloudflared` executables that print those CLIs' documented output.
//! Nothing here needs the internet.

mod bore;
mod common;
mod lan;
mod sidecars;
