//! cloudflared quick tunnel: `cloudflared tunnel --no-autoupdate --url
//! http://127.0.0.1:PORT` as a sidecar process, no Cloudflare account needed.
//!
//! cloudflared logs to stderr. It prints the new `https://*.trycloudflare.com`
//! URL in an ASCII box, then `Registered tunnel connection` once the edge
//! accepts the connection; the tunnel is `Up` after both. While up, stderr is
//! drained (a full pipe would stall cloudflared) into a short tail for error
//! messages; the child exiting is a loss.
//!
//! TLS ends at Cloudflare's edge, which sees the plaintext. Quick tunnels do
//! not pass Server-Sent Events through ([`TunnelProvider::supports_sse`] is
//! false): the UI must use its WebSocket event stream there. The child is owned
//! by PID, in its own process group, and stopped with SIGTERM then SIGKILL.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

use crate::error::INSTALL_CLOUDFLARED;
use crate::process::{SearchPath, Tail, command_line, find_program, terminate};
use crate::status::StatusCell;
use crate::{BoxFuture, ProviderKind, Transport, TunnelError, TunnelProvider, forward_target};

/// The quick-tunnel URL in one line of cloudflared's log, if it has one.
pub fn parse_quick_tunnel_url(line: &str) -> Option<String> {
    const SUFFIX: &str = ".trycloudflare.com";
    line.match_indices("https://").find_map(|(at, _)| {
        let rest = &line[at + "https://".len()..];
        let host_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
            .unwrap_or(rest.len());
        let host = rest[..host_len].trim_end_matches('.');
        let label = host.strip_suffix(SUFFIX)?;
        let valid = !label.is_empty() && label != "api" && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        valid.then(|| format!("https://{host}"))
    })
}

/// Whether a log line says the edge registered our connection (the current
/// wording, and the `Connection <id> registered` of older releases).
fn is_registered(line: &str) -> bool {
    line.contains("Registered tunnel connection") || (line.contains("Connection ") && line.contains(" registered"))
}

/// A cloudflared quick tunnel.
#[derive(Debug)]
pub struct CloudflaredQuick {
    search: SearchPath,
    startup_timeout: Duration,
    stop_grace: Duration,
    cell: StatusCell,
    session: Mutex<Option<Sidecar>>,
}

#[derive(Debug)]
struct Sidecar {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Sidecar {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

impl Default for CloudflaredQuick {
    fn default() -> Self {
        Self::new()
    }
}

impl CloudflaredQuick {
    /// Finds `cloudflared` on the system search path; waits up to 60 s for
    /// the tunnel to come up.
    pub fn new() -> Self {
        CloudflaredQuick {
            search: SearchPath::System,
            startup_timeout: Duration::from_secs(60),
            stop_grace: Duration::from_secs(3),
            cell: StatusCell::new(Transport::TlsAtProvider),
            session: Mutex::new(None),
        }
    }

    /// Where to look for `cloudflared`.
    pub fn with_search_path(mut self, search: SearchPath) -> Self {
        self.search = search;
        self
    }

    /// How long to wait for the URL and the first registered connection.
    pub fn with_startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    async fn launch(&self, local: SocketAddr) -> Result<(Sidecar, String), TunnelError> {
        let program = find_program("cloudflared", &self.search, &[]).ok_or(TunnelError::MissingBinary {
            program: "cloudflared",
            install: INSTALL_CLOUDFLARED,
        })?;
        let args = vec![
            "tunnel".to_owned(),
            "--no-autoupdate".to_owned(),
            "--url".to_owned(),
            format!("http://{}", forward_target(local)),
        ];
        let line = command_line(&program, &args);
        let mut command = Command::new(&program);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| TunnelError::io(format!("starting `{line}`"), e))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let tail = Tail::default();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(watch(Watch {
            child,
            stderr,
            ready: Some(ready_tx),
            stop: stop_rx,
            cell: self.cell.clone(),
            tail: tail.clone(),
            command: line.clone(),
            grace: self.stop_grace,
        }));
        let sidecar = Sidecar { stop: stop_tx, task };
        match tokio::time::timeout(self.startup_timeout, ready_rx).await {
            Ok(Ok(Ok(url))) => Ok((sidecar, url)),
            Ok(Ok(Err(e))) => {
                sidecar.stop().await;
                Err(e)
            }
            Ok(Err(_)) => {
                sidecar.stop().await;
                Err(TunnelError::Command {
                    command: line,
                    detail: tail.text(),
                })
            }
            Err(_) => {
                sidecar.stop().await;
                Err(TunnelError::Timeout {
                    what: "waiting for the cloudflared quick tunnel".into(),
                    after: self.startup_timeout,
                    detail: Some(tail.text()),
                })
            }
        }
    }
}

impl TunnelProvider for CloudflaredQuick {
    fn kind(&self) -> ProviderKind {
        ProviderKind::CloudflaredQuick
    }

    fn transport(&self) -> Transport {
        Transport::TlsAtProvider
    }

    fn supports_sse(&self) -> bool {
        false
    }

    fn start(&self, local: SocketAddr) -> BoxFuture<'_, Result<String, TunnelError>> {
        Box::pin(async move {
            let mut session = self.session.lock().await;
            if let Some(old) = session.take() {
                old.stop().await;
            }
            self.cell.starting();
            match self.launch(local).await {
                Ok((sidecar, url)) => {
                    *session = Some(sidecar);
                    Ok(url)
                }
                Err(e) => {
                    self.cell.failed(e.to_string());
                    Err(e)
                }
            }
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(sidecar) = self.session.lock().await.take() {
                sidecar.stop().await;
            }
            self.cell.stopped();
        })
    }

    fn status_cell(&self) -> &StatusCell {
        &self.cell
    }
}

struct Watch {
    child: Child,
    stderr: ChildStderr,
    ready: Option<oneshot::Sender<Result<String, TunnelError>>>,
    stop: oneshot::Receiver<()>,
    cell: StatusCell,
    tail: Tail,
    command: String,
    grace: Duration,
}

/// Owns the child: reads its log until it is up (then reports `Up` and the
/// URL), keeps draining it, and reports the child's exit as a loss. A stop
/// request (or the `Sidecar` being dropped) terminates the child instead.
async fn watch(mut w: Watch) {
    let mut lines = BufReader::new(w.stderr).lines();
    let mut url: Option<String> = None;
    let mut eof = false;
    let exit = loop {
        tokio::select! {
            line = lines.next_line(), if !eof => match line {
                Ok(Some(line)) => {
                    w.tail.push(&line);
                    tracing::debug!(target: "hapi_tunnel::cloudflared", "{line}");
                    if url.is_none() {
                        url = parse_quick_tunnel_url(&line);
                    }
                    if let Some(u) = &url
                        && is_registered(&line)
                        && let Some(ready) = w.ready.take()
                    {
                        w.cell.up(u);
                        let _ = ready.send(Ok(u.clone()));
                    }
                }
                _ => eof = true,
            },
            status = w.child.wait() => break status,
            _ = &mut w.stop => {
                terminate(&mut w.child, w.grace).await;
                return;
            }
        }
    };
    // Take the last lines it wrote before exiting, for the message.
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Ok(Some(line)) = lines.next_line().await {
            w.tail.push(&line);
        }
    })
    .await;
    let how = match exit {
        Ok(status) => status.to_string(),
        Err(e) => e.to_string(),
    };
    let detail = format!("cloudflared exited ({how}):\n{}", w.tail.text());
    match w.ready.take() {
        Some(ready) => {
            let _ = ready.send(Err(TunnelError::Command {
                command: w.command,
                detail,
            }));
        }
        None => w.cell.lost(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A recorded-format fixture: cloudflared's documented quick-tunnel log.
    const LOG: &str = include_str!("../../tests/fixtures/cloudflared-quick-tunnel.stderr.txt");

    #[test]
    fn the_url_comes_from_the_banner_and_nothing_else() {
        let urls: Vec<String> = LOG.lines().filter_map(parse_quick_tunnel_url).collect();
        assert_eq!(urls, vec!["https://example-words-quick-tunnel.trycloudflare.com"]);
        assert_eq!(LOG.lines().filter(|l| is_registered(l)).count(), 1);
    }

    #[test]
    fn lookalike_urls_are_ignored() {
        for line in [
            "INF Requesting new quick Tunnel on trycloudflare.com...",
            "ERR failed to request quick Tunnel: https://api.trycloudflare.com/tunnel 500",
            "INF see https://evil.example/x.trycloudflare.com",
            "INF https://a.b.trycloudflare.com",
        ] {
            assert_eq!(parse_quick_tunnel_url(line), None, "{line}");
        }
        assert_eq!(
            parse_quick_tunnel_url("|  https://x-1.trycloudflare.com  |").as_deref(),
            Some("https://x-1.trycloudflare.com")
        );
        assert!(is_registered(
            "INF Connection 6a2e0c1f-0000-4000-8000-000000000000 registered connIndex=0"
        ));
    }
}
