//! A hub to measure (the release `hapi hub` process, or the library in this
//! process), and the clients the benchmarks use: REST, SSE, event WebSocket and
//! the wrapper's session WebSocket.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use hapi_protocol::{AgentKind, CreateSession, CreatedSession, EventTicket, MessagePage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

use crate::procs::{Bins, ChildGuard};

/// A client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where the hub under test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HubMode {
    /// The release `hapi hub` as a child process: its CPU and memory are its own.
    Process,
    /// `hapi_hub::serve` inside the bench: CPU numbers include the bench's clients.
    Inproc,
}

enum Running {
    Process(ChildGuard),
    Inproc {
        shutdown: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
    },
}

/// A running hub. Dropping it stops it.
pub struct Hub {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Owner token.
    pub token: String,
    /// Process whose CPU and memory are the hub's (this process when in-process).
    pub pid: u32,
    /// `$HAPI_HOME`.
    pub home: PathBuf,
    pub http: reqwest::Client,
    running: Running,
    // Last, so the directory is removed after the hub stopped.
    _dir: tempfile::TempDir,
}

impl Drop for Hub {
    fn drop(&mut self) {
        match &mut self.running {
            Running::Process(child) => child.stop(),
            Running::Inproc { shutdown, task } => {
                if let Some(tx) = shutdown.take() {
                    let _ = tx.send(());
                }
                // Long-lived streams would hold the graceful shutdown open.
                task.abort();
            }
        }
    }
}

impl Hub {
    /// Starts a hub with an empty `$HAPI_HOME`.
    pub async fn start(mode: HubMode, bins: &Bins) -> Result<Hub> {
        let dir = tempfile::Builder::new().prefix("hapi-bench-").tempdir()?;
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home)?;
        let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
        let (url, pid, running) = match mode {
            HubMode::Process => {
                let log = std::fs::File::create(dir.path().join("hub.log"))?;
                let mut cmd = Command::new(&bins.hapi);
                cmd.arg("hub")
                    .env("HAPI_HOME", &home)
                    .env("HAPI_LISTEN_PORT", "0")
                    .env("HAPI_LISTEN_HOST", "127.0.0.1")
                    .env_remove("HAPI_HUB_URL")
                    .env_remove("CLI_API_TOKEN")
                    .env_remove("HAPI_DB_SYNC")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log);
                let mut child = ChildGuard::spawn(cmd, "hapi hub")?;
                let state = home.join("hub.json");
                let deadline = Instant::now() + Duration::from_secs(15);
                let url = loop {
                    if let Some(status) = child.exited() {
                        bail!(
                            "hapi hub exited early ({status}); see {}",
                            dir.path().join("hub.log").display()
                        );
                    }
                    if let Ok(text) = std::fs::read_to_string(&state)
                        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                        && let Some(url) = v.get("url").and_then(|u| u.as_str())
                    {
                        break url.to_owned();
                    }
                    if Instant::now() > deadline {
                        bail!("hapi hub did not write {} within 15 s", state.display());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                };
                (url, child.pid(), Running::Process(child))
            }
            HubMode::Inproc => {
                let state = hapi_hub::AppState::open(hapi_hub::HubConfig::for_home(&home))?;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let url = format!("http://{}", listener.local_addr()?);
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                let task = tokio::spawn(async move {
                    if let Err(e) = hapi_hub::serve(listener, state, async move {
                        let _ = rx.await;
                    })
                    .await
                    {
                        eprintln!("hapi-bench: in-process hub failed: {e}");
                    }
                });
                (
                    url,
                    std::process::id(),
                    Running::Inproc {
                        shutdown: Some(tx),
                        task,
                    },
                )
            }
        };
        let token = hapi_hub::auth::load_or_create_owner_token(&home)?;
        let hub = Hub {
            url,
            token,
            pid,
            home,
            http,
            running,
            _dir: dir,
        };
        // Ready when /health answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = hub.http.get(format!("{}/health", hub.url)).send().await
                && r.status().is_success()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("the hub at {} did not answer /health within 10 s", hub.url);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(hub)
    }

    /// `POST /api/sessions`.
    pub async fn create_session(&self) -> Result<CreatedSession> {
        let r = self
            .http
            .post(format!("{}/api/sessions", self.url))
            .bearer_auth(&self.token)
            .json(&CreateSession {
                agent: AgentKind::Claude,
                cwd: "/tmp/hapi-bench".into(),
            })
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "POST /api/sessions: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(r.json().await?)
    }

    /// One page of a session's history.
    pub async fn messages(&self, session: &str, query: &str) -> Result<MessagePage> {
        let r = self
            .http
            .get(format!("{}/api/sessions/{session}/messages?{query}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("GET messages: {} {}", r.status(), r.text().await.unwrap_or_default());
        }
        Ok(r.json().await?)
    }

    /// `last_seq` of a session (committed history entries).
    pub async fn last_seq(&self, session: &str) -> Result<u64> {
        let r = self
            .http
            .get(format!("{}/api/sessions/{session}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let v: hapi_protocol::SessionResponse = r.error_for_status()?.json().await?;
        Ok(v.session.last_seq)
    }

    /// Opens the SSE stream the way a browser does: a ticket, then `?ticket=`.
    pub async fn sse_with_ticket(&self) -> Result<SseReader> {
        let t: EventTicket = self
            .http
            .post(format!("{}/api/events/ticket", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        SseReader::open(&self.url, &format!("/api/events?ticket={}", t.ticket), &[]).await
    }

    /// Opens the SSE stream with the owner token, resuming after `last_event_id`.
    pub async fn sse_resume(&self, last_event_id: u64) -> Result<SseReader> {
        SseReader::open(
            &self.url,
            "/api/events",
            &[
                ("Authorization", format!("Bearer {}", self.token)),
                ("Last-Event-ID", last_event_id.to_string()),
            ],
        )
        .await
    }

    /// Opens `/api/events/ws?after=`.
    pub async fn events_ws(&self, after: u64) -> Result<Ws> {
        let rest = self.url.trim_start_matches("http://");
        let mut req = format!("ws://{rest}/api/events/ws?after={after}").into_client_request()?;
        req.headers_mut()
            .insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {}", self.token))?);
        let (ws, _) = connect_async_with_config(req, None, true).await.context("events ws")?;
        Ok(ws)
    }

    /// Connects as a session wrapper (`/api/sessions/{id}/ws`, session token).
    pub async fn wrapper(&self, session: &CreatedSession) -> Result<Ws> {
        let rest = self.url.trim_start_matches("http://");
        let mut req = format!("ws://{rest}/api/sessions/{}/ws", session.session.id).into_client_request()?;
        req.headers_mut().insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", session.token))?,
        );
        let (ws, _) = connect_async_with_config(req, None, true).await.context("session ws")?;
        Ok(ws)
    }
}

/// One server-sent event.
pub struct SseEvent {
    pub id: Option<u64>,
    pub data: String,
}

/// A minimal HTTP/1.1 SSE client on a raw loopback socket: it decodes the chunked
/// body itself, so measuring costs a few hundred nanoseconds per event instead of
/// a cross-task hand-off per chunk (which is what a general HTTP client costs, and
/// would be measured instead of the hub).
pub struct SseReader {
    sock: TcpStream,
    raw: Vec<u8>,
    rpos: usize,
    chunk: Chunk,
    buf: Vec<u8>,
    pos: usize,
    /// Body chunks read so far.
    pub chunks: u64,
    id: Option<u64>,
    data: String,
}

#[derive(Clone, Copy)]
enum Chunk {
    Size,
    Data(usize),
    Crlf,
    Done,
}

impl SseReader {
    /// `GET path` with `headers` on `url` (`http://host:port`).
    pub async fn open(url: &str, path: &str, headers: &[(&str, String)]) -> Result<Self> {
        use tokio::io::AsyncWriteExt as _;
        let addr = url.trim_start_matches("http://");
        let mut sock = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        sock.set_nodelay(true)?;
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        sock.write_all(req.as_bytes()).await?;
        let mut r = SseReader {
            sock,
            raw: Vec::with_capacity(256 * 1024),
            rpos: 0,
            chunk: Chunk::Size,
            buf: Vec::with_capacity(256 * 1024),
            pos: 0,
            chunks: 0,
            id: None,
            data: String::new(),
        };
        // Response head.
        let head_end = loop {
            if let Some(i) = r.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !r.fill_raw().await? || r.raw.len() > 64 * 1024 {
                bail!("no HTTP response head from the event stream");
            }
        };
        let head = String::from_utf8_lossy(&r.raw[..head_end]).to_ascii_lowercase();
        let status = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
        if status != "200" {
            bail!("event stream refused: HTTP {status}");
        }
        if !head.contains("transfer-encoding: chunked") {
            bail!("event stream is not chunked; this client only reads chunked bodies");
        }
        r.rpos = head_end;
        Ok(r)
    }

    async fn fill_raw(&mut self) -> Result<bool> {
        use tokio::io::AsyncReadExt as _;
        if self.rpos > 0 && self.rpos == self.raw.len() {
            self.raw.clear();
            self.rpos = 0;
        } else if self.rpos > 128 * 1024 {
            self.raw.drain(..self.rpos);
            self.rpos = 0;
        }
        let len = self.raw.len();
        self.raw.resize(len + 64 * 1024, 0);
        let n = self.sock.read(&mut self.raw[len..]).await?;
        self.raw.truncate(len + n);
        Ok(n > 0)
    }

    /// Moves de-chunked body bytes from `raw` to `buf`; false once the body ended.
    fn dechunk(&mut self) -> Result<bool> {
        loop {
            match self.chunk {
                Chunk::Done => return Ok(false),
                Chunk::Size => {
                    let Some(nl) = self.raw[self.rpos..].windows(2).position(|w| w == b"\r\n") else {
                        return Ok(true);
                    };
                    let line = std::str::from_utf8(&self.raw[self.rpos..self.rpos + nl])?;
                    let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                        .with_context(|| format!("bad chunk size {line:?}"))?;
                    self.rpos += nl + 2;
                    self.chunks += 1;
                    self.chunk = if size == 0 { Chunk::Done } else { Chunk::Data(size) };
                }
                Chunk::Data(n) => {
                    let take = n.min(self.raw.len() - self.rpos);
                    if take == 0 {
                        return Ok(true);
                    }
                    self.buf.extend_from_slice(&self.raw[self.rpos..self.rpos + take]);
                    self.rpos += take;
                    self.chunk = if take == n { Chunk::Crlf } else { Chunk::Data(n - take) };
                }
                Chunk::Crlf => {
                    if self.raw.len() - self.rpos < 2 {
                        return Ok(true);
                    }
                    self.rpos += 2;
                    self.chunk = Chunk::Size;
                }
            }
        }
    }

    /// The next event with data; `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<SseEvent>> {
        loop {
            // Lines are consumed by moving `pos`; the buffer is compacted only when
            // it runs dry, so a large chunk is never shifted once per line.
            while let Some(nl) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let line_start = self.pos;
                let mut line_end = self.pos + nl;
                self.pos = line_end + 1;
                if line_end > line_start && self.buf[line_end - 1] == b'\r' {
                    line_end -= 1;
                }
                let line = &self.buf[line_start..line_end];
                if line.is_empty() {
                    if !self.data.is_empty() {
                        let data = std::mem::take(&mut self.data);
                        return Ok(Some(SseEvent { id: self.id, data }));
                    }
                    continue;
                }
                let line = String::from_utf8_lossy(line);
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line.as_ref(), ""),
                };
                match field {
                    "id" => self.id = value.parse().ok(),
                    "data" => {
                        if !self.data.is_empty() {
                            self.data.push('\n');
                        }
                        self.data.push_str(value);
                    }
                    _ => {}
                }
            }
            self.buf.drain(..self.pos);
            self.pos = 0;
            if !self.dechunk()? {
                return Ok(None);
            }
            if self.buf.is_empty() || !self.buf.contains(&b'\n') {
                if !self.fill_raw().await? {
                    return Ok(None);
                }
                if !self.dechunk()? {
                    return Ok(None);
                }
            }
        }
    }
}

/// The `ts=<unix nanos>;` a text starts with, found anywhere in `data`.
pub fn find_ts(data: &str) -> Option<u64> {
    let at = data.find("ts=")? + 3;
    let digits = &data[at..];
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    digits[..end].parse().ok()
}

/// Now, in Unix nanoseconds.
pub fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

/// A 400-ish character text starting with `ts=<now>;`.
pub fn stamped_text(size: usize) -> String {
    let mut t = format!("ts={};", unix_nanos());
    while t.len() < size {
        t.push('x');
    }
    t
}
