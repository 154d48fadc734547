//! Tailscale Serve: the user's `tailscaled` serves HTTPS on this machine's
//! tailnet name and proxies it to the hub's remote listener.
//!
//! Driven through the `tailscale` CLI (1.52 or later, the current `serve`
//! syntax):
//! - `tailscale status --json`: `BackendState` must be `Running`; the public
//!   name is `Self.DNSName` (with its trailing dot removed);
//! - `tailscale serve --bg --yes --https=PORT http://127.0.0.1:LOCAL`: a
//!   background serve config that outlives the CLI call (`--yes`: no prompts);
//! - `tailscale serve --https=PORT off`: removes it again.
//!
//! TLS ends in `tailscaled` on this machine (a Let's Encrypt certificate for
//! the `*.ts.net` name), and the name is reachable only inside the tailnet:
//! nothing is public. The first `serve` on a tailnet without HTTPS
//! certificates prints a URL to enable them and waits; the command deadline
//! turns that into an error that shows the URL.
//!
//! While up, the provider polls `tailscale status --json` and reports the
//! tunnel lost when the backend leaves `Running` (logged out, `tailscale down`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::error::INSTALL_TAILSCALE;
use crate::process::{SearchPath, find_program, run_cli};
use crate::status::StatusCell;
use crate::{BoxFuture, ProviderKind, Transport, TunnelError, TunnelProvider, forward_target};

/// Where the macOS app keeps its CLI.
const MACOS_APP_CLI: &str = "/Applications/Tailscale.app/Contents/MacOS/Tailscale";

/// This machine as `tailscale status --json` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailscaleSelf {
    /// `BackendState`: `Running` when connected (`NeedsLogin`, `Stopped`,
    /// `NeedsMachineAuth`, `Starting` otherwise).
    pub backend_state: String,
    /// `Self.DNSName` without the trailing dot (`desk.tailnet-name.ts.net`);
    /// empty when unknown.
    pub dns_name: String,
    /// `CertDomains`: names the control plane issues certificates for; empty
    /// when HTTPS is not enabled for the tailnet.
    pub cert_domains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StatusJson {
    backend_state: String,
    #[serde(rename = "Self")]
    me: Option<SelfJson>,
    #[serde(default)]
    cert_domains: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SelfJson {
    #[serde(default, rename = "DNSName")]
    dns_name: String,
}

/// Parses the output of `tailscale status --json`.
pub fn parse_tailscale_status(json: &str) -> Result<TailscaleSelf, TunnelError> {
    let status: StatusJson = serde_json::from_str(json).map_err(|e| TunnelError::NotReady {
        provider: ProviderKind::TailscaleServe,
        reason: format!("`tailscale status --json` printed something unexpected: {e}"),
    })?;
    Ok(TailscaleSelf {
        backend_state: status.backend_state,
        dns_name: status
            .me
            .map(|m| m.dns_name.trim_end_matches('.').to_owned())
            .unwrap_or_default(),
        cert_domains: status.cert_domains.unwrap_or_default(),
    })
}

impl TailscaleSelf {
    /// The tailnet name to serve on, or why Tailscale cannot serve now.
    pub fn serving_name(&self) -> Result<&str, TunnelError> {
        let not_ready = |reason: String| TunnelError::NotReady {
            provider: ProviderKind::TailscaleServe,
            reason,
        };
        match self.backend_state.as_str() {
            "Running" if self.dns_name.is_empty() => Err(not_ready(
                "this machine has no tailnet DNS name; turn on MagicDNS in the Tailscale admin \
                 console"
                    .into(),
            )),
            "Running" => Ok(&self.dns_name),
            "NeedsLogin" => Err(not_ready(
                "Tailscale is logged out; run `tailscale up` or sign in from the Tailscale app".into(),
            )),
            "Stopped" => Err(not_ready(
                "Tailscale is disconnected; run `tailscale up` or connect from the Tailscale app".into(),
            )),
            "NeedsMachineAuth" => Err(not_ready(
                "this machine is waiting for approval in the Tailscale admin console".into(),
            )),
            other => Err(not_ready(format!("Tailscale is {other}, not Running"))),
        }
    }
}

/// `tailscale serve` on this machine's tailnet name.
#[derive(Debug)]
pub struct TailscaleServe {
    https_port: u16,
    search: SearchPath,
    command_timeout: Duration,
    poll_interval: Duration,
    cell: StatusCell,
    session: Mutex<Option<Session>>,
}

#[derive(Debug)]
struct Session {
    program: PathBuf,
    poll: JoinHandle<()>,
}

impl Default for TailscaleServe {
    fn default() -> Self {
        Self::new()
    }
}

impl TailscaleServe {
    /// Serves on HTTPS port 443 (URL `https://NAME.ts.net`), finding
    /// `tailscale` on the system search path.
    pub fn new() -> Self {
        TailscaleServe {
            https_port: 443,
            search: SearchPath::System,
            command_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(15),
            cell: StatusCell::new(Transport::TlsAtThisMachine),
            session: Mutex::new(None),
        }
    }

    /// Serves on another HTTPS port (Tailscale allows 443, 8443 and 10000),
    /// e.g. when 443 already serves something else on this machine: this
    /// provider replaces the `/` handler of its port and removes the port's
    /// config when it stops.
    pub fn with_https_port(mut self, port: u16) -> Self {
        self.https_port = port;
        self
    }

    /// Where to look for `tailscale`.
    pub fn with_search_path(mut self, search: SearchPath) -> Self {
        self.search = search;
        self
    }

    /// How often to check, while up, that Tailscale is still running.
    pub fn with_poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    fn program(&self) -> Result<PathBuf, TunnelError> {
        find_program("tailscale", &self.search, &[MACOS_APP_CLI]).ok_or(TunnelError::MissingBinary {
            program: "tailscale",
            install: INSTALL_TAILSCALE,
        })
    }

    fn public_url(&self, name: &str) -> String {
        if self.https_port == 443 {
            format!("https://{name}")
        } else {
            format!("https://{name}:{}", self.https_port)
        }
    }

    async fn setup(&self, local: SocketAddr) -> Result<(PathBuf, String), TunnelError> {
        let program = self.program()?;
        let me = status(&program, self.command_timeout).await?;
        let name = me.serving_name()?;
        let target = format!("http://{}", forward_target(local));
        let args = [
            "serve".to_owned(),
            "--bg".to_owned(),
            "--yes".to_owned(),
            format!("--https={}", self.https_port),
            target,
        ];
        if let Err(e) = run_cli(&program, &args, self.command_timeout).await {
            return Err(match e {
                TunnelError::Command { command, detail } if detail.contains("Access denied") => TunnelError::Command {
                    command,
                    detail: format!(
                        "{detail}\nAllow your user to configure Tailscale once with \
                             `sudo tailscale set --operator=$USER`."
                    ),
                },
                TunnelError::Timeout { what, after, detail } if me.cert_domains.is_empty() => TunnelError::Timeout {
                    what,
                    after,
                    detail: Some(format!(
                        "{}\nHTTPS certificates seem not to be enabled for your tailnet: \
                             open the URL above, or enable HTTPS in the admin console's DNS page.",
                        detail.unwrap_or_default()
                    )),
                },
                other => other,
            });
        }
        Ok((program, self.public_url(name)))
    }
}

async fn status(program: &std::path::Path, deadline: Duration) -> Result<TailscaleSelf, TunnelError> {
    let args = ["status".to_owned(), "--json".to_owned()];
    parse_tailscale_status(&run_cli(program, &args, deadline).await?)
}

impl TunnelProvider for TailscaleServe {
    fn kind(&self) -> ProviderKind {
        ProviderKind::TailscaleServe
    }

    fn transport(&self) -> Transport {
        Transport::TlsAtThisMachine
    }

    fn start(&self, local: SocketAddr) -> BoxFuture<'_, Result<String, TunnelError>> {
        Box::pin(async move {
            let mut session = self.session.lock().await;
            if let Some(old) = session.take() {
                old.poll.abort();
            }
            self.cell.starting();
            let (program, url) = match self.setup(local).await {
                Ok(ok) => ok,
                Err(e) => {
                    self.cell.failed(e.to_string());
                    return Err(e);
                }
            };
            self.cell.up(&url);
            let (cell, every, deadline) = (self.cell.clone(), self.poll_interval, self.command_timeout);
            let polled = program.clone();
            let poll = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    // A failing `status` call (tailscaled restarting) is not a
                    // loss by itself; the supervisor's health probe decides.
                    if let Ok(me) = status(&polled, deadline).await
                        && let Err(e) = me.serving_name()
                    {
                        cell.lost(e.to_string());
                        return;
                    }
                }
            });
            *session = Some(Session { program, poll });
            Ok(url)
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(session) = self.session.lock().await.take() {
                session.poll.abort();
                let args = [format!("--https={}", self.https_port), "off".to_owned()];
                let args = [vec!["serve".to_owned()], args.to_vec()].concat();
                if let Err(e) = run_cli(&session.program, &args, self.command_timeout).await {
                    tracing::warn!(error = %e, "could not remove the Tailscale Serve config");
                }
            }
            self.cell.stopped();
        })
    }

    fn status_cell(&self) -> &StatusCell {
        &self.cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded-format fixtures: shaped after the documented
    // `tailscale status --json` output (ipnstate.Status), trimmed.
    const RUNNING: &str = include_str!("../../tests/fixtures/tailscale-status-running.json");
    const LOGGED_OUT: &str = include_str!("../../tests/fixtures/tailscale-status-needs-login.json");

    #[test]
    fn a_running_node_serves_on_its_dns_name() {
        let me = parse_tailscale_status(RUNNING).unwrap();
        assert_eq!(me.backend_state, "Running");
        assert_eq!(me.dns_name, "hapi-desk.example-tailnet.ts.net");
        assert_eq!(me.cert_domains, vec!["hapi-desk.example-tailnet.ts.net"]);
        assert_eq!(me.serving_name().unwrap(), "hapi-desk.example-tailnet.ts.net");
        let p = TailscaleServe::new();
        assert_eq!(p.public_url("a.b.ts.net"), "https://a.b.ts.net");
        let p = TailscaleServe::new().with_https_port(8443);
        assert_eq!(p.public_url("a.b.ts.net"), "https://a.b.ts.net:8443");
    }

    #[test]
    fn a_logged_out_node_says_to_run_tailscale_up() {
        let me = parse_tailscale_status(LOGGED_OUT).unwrap();
        assert_eq!(me.backend_state, "NeedsLogin");
        let err = me.serving_name().unwrap_err();
        assert!(err.to_string().contains("tailscale up"), "{err}");
        assert!(!err.is_permanent());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_tailscale_status("failed to connect to local tailscaled").is_err());
    }
}
