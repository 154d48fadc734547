//! Host and Origin checks on both listeners (DNS rebinding, cross-site requests).
//!
//! - **Host**: a request must name this hub. On the local listener that is
//!   `127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`, the configured listen
//!   address (any IP literal when it is the unspecified address) and the
//!   authorities of `HAPI_ALLOWED_ORIGINS`; on the remote listener, the current
//!   public URL's host and the listener's own address. Anything else is
//!   `403 forbidden_origin`: a page whose host name was rebound to 127.0.0.1
//!   still sends its own name. A request without Host is not from a browser and
//!   is let through on the local listener only.
//! - **Origin**: a state-changing request (POST, PUT, DELETE, PATCH) or a
//!   WebSocket upgrade that carries an `Origin` must come from one of those
//!   authorities with the right scheme; `Origin: null` is refused.
//! - **CORS** stays closed: the hub sends no `Access-Control-*` header at all,
//!   so a browser never lets another site read an answer or send a bearer
//!   token cross-origin.
//!
//! Nothing here looks at the peer address: every tunnel connects from 127.0.0.1.
use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hapi_protocol::ErrorCode;

use crate::AppState;
use crate::error::ApiError;
use crate::remote::RemoteCtx;

/// One allowed `scheme://host:port`. `port: None` means any port (the local
/// listener's port is unknown when the router is mounted without [`crate::serve`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Authority {
    scheme: String,
    /// Lower case; IPv6 literals in brackets.
    host: String,
    port: Option<u16>,
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// `host[:port]` split, host lower-cased (IPv6 literals keep their brackets).
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim();
    if authority.is_empty() || authority.contains(['/', '@', ' ']) {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &authority[..end + 2];
        match &rest[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?.parse().ok()?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port.parse().ok()?)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

/// `scheme://host[:port]` (an `Origin`, or the start of a URL) as an authority
/// with its port made explicit. Only http and https.
pub(crate) fn parse_origin(origin: &str) -> Option<Authority> {
    let (scheme, rest) = origin.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let rest = rest.trim_end_matches('/');
    let (host, port) = split_authority(rest)?;
    let port = port.unwrap_or_else(|| default_port(&scheme));
    Some(Authority {
        scheme,
        host,
        port: Some(port),
    })
}

/// `ip` as a URL host.
fn ip_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn is_ip_literal(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok()
}

/// The authorities one listener answers to.
#[derive(Debug, Default)]
pub(crate) struct Allowed {
    entries: Vec<Authority>,
    /// Any IP literal on this port (`Some(None)`: any port): a listener bound
    /// to the unspecified address. IP literals cannot be rebound.
    any_ip: Option<Option<u16>>,
    /// Refuse requests without a Host header.
    require_host: bool,
}

impl Allowed {
    fn push(&mut self, scheme: &str, host: String, port: Option<u16>) {
        self.entries.push(Authority {
            scheme: scheme.into(),
            host: host.to_ascii_lowercase(),
            port,
        });
    }

    fn host_ok(&self, host: &str, port: Option<u16>) -> bool {
        let entry_ok = self.entries.iter().any(|e| {
            e.host == host
                && e.port
                    .is_none_or(|p| port.unwrap_or_else(|| default_port(&e.scheme)) == p)
        });
        let ip_ok = match self.any_ip {
            Some(want) => is_ip_literal(host) && want.is_none_or(|p| port.unwrap_or(80) == p),
            None => false,
        };
        entry_ok || ip_ok
    }

    fn origin_ok(&self, origin: &Authority) -> bool {
        let port = origin.port.expect("parsed origins have a port");
        let entry_ok = self
            .entries
            .iter()
            .any(|e| e.scheme == origin.scheme && e.host == origin.host && e.port.is_none_or(|p| p == port));
        let ip_ok = match self.any_ip {
            Some(want) => origin.scheme == "http" && is_ip_literal(&origin.host) && want.is_none_or(|p| p == port),
            None => false,
        };
        entry_ok || ip_ok
    }

    /// Checks a request's Host (or, in HTTP/2, its `:authority`) and, where
    /// it counts, its Origin.
    pub(crate) fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        let forbidden = |what: String| ApiError::new(StatusCode::FORBIDDEN, ErrorCode::ForbiddenOrigin, what);
        let host = match headers.get(header::HOST) {
            Some(host) => Some(host.to_str().unwrap_or("")),
            None => uri.authority().map(|a| a.as_str()),
        };
        match host {
            Some(text) => {
                let ok = split_authority(text).is_some_and(|(h, p)| self.host_ok(&h, p));
                if !ok {
                    return Err(forbidden(format!("Host `{text}` is not this hub's address")));
                }
            }
            None if self.require_host => return Err(forbidden("a Host header is required".into())),
            None => {}
        }
        let state_changing = matches!(*method, Method::POST | Method::PUT | Method::DELETE | Method::PATCH);
        let upgrade = headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        if (state_changing || upgrade)
            && let Some(origin) = headers.get(header::ORIGIN)
        {
            let text = origin.to_str().unwrap_or("");
            if !parse_origin(text).is_some_and(|o| self.origin_ok(&o)) {
                return Err(forbidden(format!("requests from `{text}` are not accepted")));
            }
        }
        Ok(())
    }
}

/// What the local listener answers to.
pub(crate) fn local_allowed(state: &AppState) -> Allowed {
    let port = state.local_addr().map(|a| a.port());
    let mut allowed = Allowed::default();
    for host in ["127.0.0.1", "localhost", "[::1]"] {
        allowed.push("http", host.into(), port);
    }
    let listen = state.config().listen.ip();
    if listen.is_unspecified() {
        allowed.any_ip = Some(port);
    } else if !listen.is_loopback() {
        allowed.push("http", ip_host(listen), port);
    }
    for origin in &state.config().allowed_origins {
        if let Some(a) = parse_origin(origin) {
            allowed.entries.push(a);
        }
    }
    allowed
}

/// What a remote listener answers to: its public URL (as the tunnel reports it
/// now) and its own address.
pub(crate) fn remote_allowed(ctx: &RemoteCtx) -> Allowed {
    let mut allowed = Allowed {
        require_host: true,
        ..Allowed::default()
    };
    let scheme = if ctx.tls { "https" } else { "http" };
    allowed.push(scheme, ip_host(ctx.listener.ip()), Some(ctx.listener.port()));
    if let Some(url) = ctx.status.borrow().state.public_url()
        && let Some(a) = parse_origin(url)
    {
        allowed.entries.push(a);
    }
    allowed
}

/// Middleware of the local listener.
pub(crate) async fn guard_local(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match local_allowed(&state).check(req.method(), req.uri(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Middleware of the remote listener (inside its `RemoteCtx` extension).
pub(crate) async fn guard_remote(req: Request, next: Next) -> Response {
    let Some(ctx) = req.extensions().get::<RemoteCtx>() else {
        return ApiError::internal("remote guard outside the remote listener").into_response();
    };
    match remote_allowed(ctx).check(req.method(), req.uri(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    impl Allowed {
        fn allows(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
            self.check(method, &Uri::default(), headers)
        }
    }

    fn local(port: Option<u16>) -> Allowed {
        let mut a = Allowed::default();
        for host in ["127.0.0.1", "localhost", "[::1]"] {
            a.push("http", host.into(), port);
        }
        a
    }

    #[test]
    fn authorities_parse() {
        assert_eq!(
            split_authority("LocalHost:3006"),
            Some(("localhost".into(), Some(3006)))
        );
        assert_eq!(split_authority("[::1]:80"), Some(("[::1]".into(), Some(80))));
        assert_eq!(split_authority("[::1]"), Some(("[::1]".into(), None)));
        assert_eq!(split_authority("a.example"), Some(("a.example".into(), None)));
        assert_eq!(split_authority("a.example:x"), None);
        assert_eq!(split_authority("user@a.example"), None);
        let o = parse_origin("https://Desk.ts.net").unwrap();
        assert_eq!(
            (o.scheme.as_str(), o.host.as_str(), o.port),
            ("https", "desk.ts.net", Some(443))
        );
        assert!(parse_origin("null").is_none());
        assert!(parse_origin("file://x").is_none());
    }

    #[test]
    fn host_must_name_the_hub() {
        let a = local(Some(3006));
        let get = Method::GET;
        assert!(a.allows(&get, &headers(&[("host", "127.0.0.1:3006")])).is_ok());
        assert!(a.allows(&get, &headers(&[("host", "localhost:3006")])).is_ok());
        assert!(a.allows(&get, &headers(&[("host", "[::1]:3006")])).is_ok());
        assert!(a.allows(&get, &headers(&[])).is_ok(), "no Host: not a browser");
        assert!(a.allows(&get, &headers(&[("host", "evil.example:3006")])).is_err());
        assert!(a.allows(&get, &headers(&[("host", "localhost:3007")])).is_err());
        assert!(
            a.allows(&get, &headers(&[("host", "localhost")])).is_err(),
            "port 80 is not ours"
        );
    }

    #[test]
    fn state_changing_requests_must_come_from_the_hub() {
        let a = local(Some(3006));
        let host = ("host", "127.0.0.1:3006");
        let post = Method::POST;
        assert!(
            a.allows(&post, &headers(&[host])).is_ok(),
            "no Origin: not a browser's cross-site request"
        );
        assert!(
            a.allows(&post, &headers(&[host, ("origin", "http://127.0.0.1:3006")]))
                .is_ok()
        );
        assert!(
            a.allows(&post, &headers(&[host, ("origin", "http://localhost:3006")]))
                .is_ok()
        );
        assert!(
            a.allows(&post, &headers(&[host, ("origin", "https://evil.example")]))
                .is_err()
        );
        assert!(
            a.allows(&post, &headers(&[host, ("origin", "http://localhost:5173")]))
                .is_err()
        );
        assert!(a.allows(&post, &headers(&[host, ("origin", "null")])).is_err());
        assert!(
            a.allows(&Method::GET, &headers(&[host, ("origin", "https://evil.example")]))
                .is_ok()
        );
        let ws = [host, ("upgrade", "websocket"), ("origin", "https://evil.example")];
        assert!(a.allows(&Method::GET, &headers(&ws)).is_err(), "cross-site WebSocket");
    }

    #[test]
    fn a_remote_public_url_and_any_ip_literal() {
        let mut a = Allowed {
            require_host: true,
            ..Allowed::default()
        };
        a.entries.push(parse_origin("https://desk.example.ts.net").unwrap());
        let get = Method::GET;
        assert!(a.allows(&get, &headers(&[("host", "desk.example.ts.net")])).is_ok());
        assert!(a.allows(&get, &headers(&[("host", "desk.example.ts.net:443")])).is_ok());
        assert!(a.allows(&get, &headers(&[])).is_err(), "Host required");
        let from = |o: &'static str| headers(&[("host", "desk.example.ts.net"), ("origin", o)]);
        assert!(a.allows(&Method::PUT, &from("https://desk.example.ts.net")).is_ok());
        assert!(
            a.allows(&Method::PUT, &from("http://desk.example.ts.net")).is_err(),
            "scheme counts"
        );

        let any = Allowed {
            any_ip: Some(Some(3006)),
            ..Allowed::default()
        };
        assert!(any.allows(&get, &headers(&[("host", "192.168.1.20:3006")])).is_ok());
        assert!(any.allows(&get, &headers(&[("host", "rebound.example:3006")])).is_err());
    }
}
