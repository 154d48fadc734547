//! Typed hub configuration. Every path and port can be set by environment
//! (HAPI's names), and the CLI's flags override the environment.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use hapi_store::Durability;

use crate::BackupSchedule;

/// Default port, as in HAPI.
pub const DEFAULT_PORT: u16 = 3006;

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HubConfigError {
    /// An environment variable holds something unusable.
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why it is unusable.
        reason: String,
    },
    /// No home directory to default `$HAPI_HOME` to.
    #[error("cannot find the home directory; set HAPI_HOME")]
    NoHome,
}

/// How the hub runs.
#[derive(Clone)]
pub struct HubConfig {
    /// Data directory (`$HAPI_HOME`, default `~/.hapi`).
    pub home: PathBuf,
    /// Address to listen on (`HAPI_LISTEN_HOST`, `HAPI_LISTEN_PORT`; default 127.0.0.1:3006).
    pub listen: SocketAddr,
    /// Scheduled backups into `home/backups` (`HAPI_BACKUP_INTERVAL`, default a
    /// day; `HAPI_BACKUP_KEEP`, default 30). Off in [`HubConfig::for_home`].
    pub backups: BackupSchedule,
    /// Owner token from `CLI_API_TOKEN`; `None` means the token file in `home`.
    pub owner_token: Option<String>,
    /// COMMIT durability (`HAPI_DB_SYNC=normal|full`).
    pub durability: Durability,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// A token that opens `GET /metrics` and nothing else (`HAPI_METRICS_TOKEN`),
    /// for a Prometheus that should not hold the owner token. `None`: the owner
    /// token only.
    pub metrics_token: Option<String>,
    /// How long a pairing offer (QR code and typed code) stays valid (5 minutes).
    pub pairing_ttl: std::time::Duration,
    /// Extra origins the local listener accepts in `Host` and `Origin`
    /// (`HAPI_ALLOWED_ORIGINS`, comma-separated, e.g. `http://localhost:5173`
    /// for the UI's dev server). Loopback on the hub's own port is always allowed.
    pub allowed_origins: Vec<String>,
    /// The certificate and key the remote listener serves TLS with on the LAN
    /// provider (`HAPI_TLS_CERT`, `HAPI_TLS_KEY`, PEM files; both or neither).
    /// Read and checked when the hub starts ([`crate::AppState::open`]).
    pub tls: Option<TlsFiles>,
    /// Days the audit log keeps an entry (`HAPI_AUDIT_RETENTION_DAYS`, default
    /// 90); older entries are pruned at start and daily.
    pub audit_retention_days: u32,
}

/// Default of `HAPI_AUDIT_RETENTION_DAYS`.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 90;

/// `HAPI_AUDIT_RETENTION_DAYS`: whole days, 1 to 36500.
pub(crate) fn parse_retention_days(value: &str) -> Result<u32, HubConfigError> {
    match value.trim().parse::<u32>() {
        Ok(days) if (1..=36_500).contains(&days) => Ok(days),
        _ => Err(HubConfigError::Invalid {
            var: "HAPI_AUDIT_RETENTION_DAYS",
            value: value.into(),
            reason: "expected a number of days from 1 to 36500 (e.g. 90)".into(),
        }),
    }
}

/// The PEM files of the hub's own TLS: `HAPI_TLS_CERT` (the certificate chain,
/// end-entity first) and `HAPI_TLS_KEY` (its private key: PKCS#8, RSA or EC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// `HAPI_TLS_CERT` and `HAPI_TLS_KEY` as read (empty counts as unset):
    /// both or neither.
    pub fn from_vars(cert: Option<String>, key: Option<String>) -> Result<Option<TlsFiles>, HubConfigError> {
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            })),
            (Some(cert), None) => Err(HubConfigError::Invalid {
                var: "HAPI_TLS_CERT",
                value: cert,
                reason: "HAPI_TLS_KEY is not set: give both the certificate and its key, or neither".into(),
            }),
            (None, Some(key)) => Err(HubConfigError::Invalid {
                var: "HAPI_TLS_KEY",
                value: key,
                reason: "HAPI_TLS_CERT is not set: give both the certificate and its key, or neither".into(),
            }),
        }
    }

    /// Reads and checks the files as the hub does when it starts (for `hapi
    /// config check`).
    pub fn check(&self) -> Result<(), crate::TlsError> {
        crate::tls::HubTls::load(self).map(drop)
    }
}

impl std::fmt::Debug for HubConfig {
    // Hand-written so the owner token never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConfig")
            .field("home", &self.home)
            .field("listen", &self.listen)
            .field("backups", &self.backups)
            .field("owner_token", &self.owner_token.as_ref().map(|_| "<redacted>"))
            .field("durability", &self.durability)
            .field("body_limit", &self.body_limit)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "<redacted>"))
            .field("pairing_ttl", &self.pairing_ttl)
            .field("allowed_origins", &self.allowed_origins)
            .field("tls", &self.tls)
            .field("audit_retention_days", &self.audit_retention_days)
            .finish()
    }
}

impl HubConfig {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, HubConfigError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let home = match var("HAPI_HOME") {
            Some(home) => PathBuf::from(home),
            None => PathBuf::from(var("HOME").ok_or(HubConfigError::NoHome)?).join(".hapi"),
        };
        let backups = BackupSchedule::from_vars(var("HAPI_BACKUP_INTERVAL"), var("HAPI_BACKUP_KEEP"))?;
        let host: IpAddr = match var("HAPI_LISTEN_HOST") {
            Some(v) => v
                .parse()
                .map_err(|e: std::net::AddrParseError| HubConfigError::Invalid {
                    var: "HAPI_LISTEN_HOST",
                    value: v.clone(),
                    reason: format!("{e} (give an IP address such as 127.0.0.1)"),
                })?,
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let port: u16 = match var("HAPI_LISTEN_PORT") {
            Some(v) => v.parse().map_err(|_| HubConfigError::Invalid {
                var: "HAPI_LISTEN_PORT",
                value: v.clone(),
                reason: "not a port number (0-65535)".into(),
            })?,
            None => DEFAULT_PORT,
        };
        let durability = match var("HAPI_DB_SYNC").as_deref() {
            None | Some("normal") => Durability::Normal,
            Some("full") => Durability::Full,
            Some(other) => {
                return Err(HubConfigError::Invalid {
                    var: "HAPI_DB_SYNC",
                    value: other.into(),
                    reason: "expected `normal` or `full`".into(),
                });
            }
        };
        let metrics_token = match var("HAPI_METRICS_TOKEN") {
            Some(token) => Some(check_metrics_token(&token).map_err(|reason| HubConfigError::Invalid {
                var: "HAPI_METRICS_TOKEN",
                // Never echo a secret, even a malformed one.
                value: "<redacted>".into(),
                reason,
            })?),
            None => None,
        };
        let mut allowed_origins = Vec::new();
        for origin in var("HAPI_ALLOWED_ORIGINS").iter().flat_map(|v| v.split(',')) {
            let origin = origin.trim();
            if origin.is_empty() {
                continue;
            }
            if crate::security::parse_origin(origin).is_none() {
                return Err(HubConfigError::Invalid {
                    var: "HAPI_ALLOWED_ORIGINS",
                    value: origin.into(),
                    reason: "expected http(s)://HOST[:PORT], comma-separated".into(),
                });
            }
            allowed_origins.push(origin.to_owned());
        }
        let tls = TlsFiles::from_vars(var("HAPI_TLS_CERT"), var("HAPI_TLS_KEY"))?;
        let audit_retention_days = match var("HAPI_AUDIT_RETENTION_DAYS") {
            Some(v) => parse_retention_days(&v)?,
            None => DEFAULT_AUDIT_RETENTION_DAYS,
        };
        Ok(HubConfig {
            home,
            listen: SocketAddr::new(host, port),
            backups,
            owner_token: var("CLI_API_TOKEN"),
            durability,
            body_limit: 1024 * 1024,
            metrics_token,
            pairing_ttl: crate::DEFAULT_PAIRING_TTL,
            allowed_origins,
            tls,
            audit_retention_days,
        })
    }

    /// A configuration for tests and embedding: `home`, 127.0.0.1:0, token file.
    pub fn for_home(home: impl Into<PathBuf>) -> Self {
        HubConfig {
            home: home.into(),
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            backups: BackupSchedule::OFF,
            owner_token: None,
            durability: Durability::Normal,
            body_limit: 1024 * 1024,
            metrics_token: None,
            pairing_ttl: crate::DEFAULT_PAIRING_TTL,
            allowed_origins: Vec::new(),
            tls: None,
            audit_retention_days: DEFAULT_AUDIT_RETENTION_DAYS,
        }
    }

    /// The SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.home.join("hapi.db")
    }
}

/// Shortest metrics token accepted: it guards what the hub is doing, so it must
/// not be guessable.
pub(crate) const MIN_METRICS_TOKEN: usize = 16;

/// A metrics token must be long enough and fit in an `Authorization` header
/// unchanged (visible ASCII, no spaces). Returns it, or why it is unusable.
pub(crate) fn check_metrics_token(token: &str) -> Result<String, String> {
    if token.len() < MIN_METRICS_TOKEN {
        return Err(format!(
            "shorter than {MIN_METRICS_TOKEN} characters (generate one with `openssl rand -hex 32`)"
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("only visible ASCII characters without spaces can be sent as a bearer token".into());
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::{TlsFiles, check_metrics_token, parse_retention_days};

    #[test]
    fn audit_retention_is_whole_days() {
        assert_eq!(parse_retention_days("90").unwrap(), 90);
        assert_eq!(parse_retention_days(" 1 ").unwrap(), 1);
        for bad in ["0", "-1", "90d", "", "40000"] {
            let e = parse_retention_days(bad).unwrap_err().to_string();
            assert!(e.contains("HAPI_AUDIT_RETENTION_DAYS"), "{e}");
        }
    }

    #[test]
    fn tls_files_come_in_pairs() {
        assert_eq!(TlsFiles::from_vars(None, None).unwrap(), None);
        assert_eq!(
            TlsFiles::from_vars(Some("/c.pem".into()), Some("/k.pem".into())).unwrap(),
            Some(TlsFiles {
                cert: "/c.pem".into(),
                key: "/k.pem".into()
            })
        );
        let only_cert = TlsFiles::from_vars(Some("/c.pem".into()), None)
            .unwrap_err()
            .to_string();
        assert!(
            only_cert.contains("HAPI_TLS_CERT") && only_cert.contains("HAPI_TLS_KEY is not set"),
            "{only_cert}"
        );
        let only_key = TlsFiles::from_vars(None, Some("/k.pem".into()))
            .unwrap_err()
            .to_string();
        assert!(only_key.contains("HAPI_TLS_CERT is not set"), "{only_key}");
    }

    #[test]
    fn metrics_token_must_be_long_and_printable() {
        assert!(check_metrics_token("0123456789abcdef").is_ok());
        assert!(check_metrics_token("short").unwrap_err().contains("shorter than 16"));
        assert!(
            check_metrics_token("0123456789 abcdef")
                .unwrap_err()
                .contains("visible ASCII")
        );
        assert!(
            check_metrics_token("0123456789abcdéf")
                .unwrap_err()
                .contains("visible ASCII")
        );
    }
}
