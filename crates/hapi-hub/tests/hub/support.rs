//! A running hub for one test, plus small typed clients for its protocols.
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hapi_hub::{AppState, HubConfig};
use hapi_protocol::{AgentKind, CreateSession, CreatedSession, HubFrame, SessionFrame, SessionUpdate};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct TestHub {
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
    /// The running hub's state, for what in-process followers (the desktop
    /// app) see.
    pub state: AppState,
    _home: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestHub {
    /// The hub's `$HAPI_HOME`.
    pub fn home(&self) -> &std::path::Path {
        self._home.path()
    }

    pub async fn start() -> TestHub {
        Self::start_in(tempfile::tempdir().unwrap()).await
    }

    /// Starts a hub on an existing `HAPI_HOME` (e.g. one a stopped hub used).
    pub async fn start_in(home: tempfile::TempDir) -> TestHub {
        Self::start_with(home, |_| {}).await
    }

    /// Starts a hub whose configuration `configure` adjusts first.
    pub async fn start_with(home: tempfile::TempDir, configure: impl FnOnce(&mut HubConfig)) -> TestHub {
        // The file store only: tests never touch the developer's keychain.
        let vault = hapi_hub::auth::Vault::open_with(home.path(), hapi_hub::auth::KeychainMode::Off).unwrap();
        let mut config = HubConfig::for_home(home.path());
        configure(&mut config);
        let state = AppState::open_with_vault(config, &vault).unwrap();
        let token = vault.get_or_create(&hapi_hub::auth::OWNER_TOKEN).unwrap().value;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let task = tokio::spawn(async move {
            hapi_hub::serve(listener, served, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        TestHub {
            url,
            token,
            http: reqwest::Client::new(),
            state,
            _home: home,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(self) {
        self.stop_keeping_home().await;
    }

    /// Stops the hub and hands back its `HAPI_HOME` for a restart.
    pub async fn stop_keeping_home(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task.take().unwrap()).await;
        let empty = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self._home, empty)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.url)).bearer_auth(&self.token)
    }

    pub async fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn create_session(&self) -> CreatedSession {
        let r = self
            .post("/api/sessions")
            .json(&CreateSession {
                agent: AgentKind::Claude,
                cwd: "/tmp".into(),
            })
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    pub async fn wrapper(&self, created: &CreatedSession) -> Wrapper {
        Wrapper::connect(&self.url, &created.session.id, &created.token)
            .await
            .unwrap()
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A hand-driven session wrapper.
pub struct Wrapper {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Wrapper {
    pub async fn connect(url: &str, id: &str, token: &str) -> Result<Wrapper, tokio_tungstenite::tungstenite::Error> {
        let mut req = format!("{}/api/sessions/{id}/ws", url.replace("http://", "ws://")).into_client_request()?;
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Wrapper { ws })
    }

    pub async fn send(&mut self, client_seq: u64, update: SessionUpdate) {
        let frame = SessionFrame::Update { client_seq, update };
        self.ws
            .send(Message::Text(serde_json::to_string(&frame).unwrap().into()))
            .await
            .unwrap();
    }

    pub async fn ack_command(&mut self, id: u64) {
        let frame = SessionFrame::CommandAck { id };
        self.ws
            .send(Message::Text(serde_json::to_string(&frame).unwrap().into()))
            .await
            .unwrap();
    }

    pub async fn recv(&mut self) -> HubFrame {
        self.next().await.expect("link closed")
    }

    /// The next frame, or `None` once the hub has closed the link.
    pub async fn next(&mut self) -> Option<HubFrame> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("hub frame timed out");
            match msg {
                Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Waits until the hub acknowledged `client_seq`, skipping commands.
    pub async fn wait_ack(&mut self, client_seq: u64) {
        loop {
            if let HubFrame::Ack { client_seq: acked } = self.recv().await
                && acked >= client_seq
            {
                return;
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// A minimal SSE reader: yields `(id, data)` per event.
pub struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Sse {
    pub async fn open(hub: &TestHub, last_event_id: Option<u64>) -> Sse {
        let mut req = hub.get("/api/events");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        Sse {
            body: Box::pin(r.bytes_stream()),
            buf: String::new(),
        }
    }

    pub async fn next(&mut self) -> (u64, serde_json::Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(id) = id {
                    return (id, serde_json::from_str(&data).unwrap());
                }
                continue; // heartbeat comment
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("SSE event timed out")
                .expect("SSE stream ended")
                .unwrap();
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}
