//! Session wrappers that are connected right now, so a command committed to a
//! session's outbox can be pushed at once instead of waiting for a reconnect.
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hapi_protocol::HubFrame;
use tokio::sync::mpsc;

use crate::metrics::{LinkKind, Metrics, RelayFailure};

/// Registry of connected wrappers, one per session (a newer connection replaces
/// an older one, which then closes).
pub struct Links {
    next_id: AtomicU64,
    by_session: Mutex<HashMap<String, (u64, mpsc::UnboundedSender<HubFrame>)>>,
    metrics: Metrics,
}

impl Links {
    /// An empty registry that counts connects and undelivered commands in `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Links {
            next_id: AtomicU64::new(0),
            by_session: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// How many wrappers are connected.
    pub fn connected(&self) -> usize {
        self.by_session.lock().expect("links poisoned").len()
    }

    /// Registers a connection and returns its id.
    pub fn register(&self, session_id: &str, tx: mpsc::UnboundedSender<HubFrame>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.by_session
            .lock()
            .expect("links poisoned")
            .insert(session_id.to_owned(), (id, tx));
        self.metrics.link_connected(LinkKind::Wrapper, session_id);
        id
    }

    /// Removes the connection if it is still the registered one.
    pub fn unregister(&self, session_id: &str, id: u64) -> bool {
        let mut map = self.by_session.lock().expect("links poisoned");
        if map.get(session_id).is_some_and(|(current, _)| *current == id) {
            map.remove(session_id);
            return true;
        }
        false
    }

    /// Pushes a frame to the session's wrapper; false if none is connected
    /// (the command then waits in the outbox for the wrapper's reconnect).
    pub fn push(&self, session_id: &str, frame: HubFrame) -> bool {
        let map = self.by_session.lock().expect("links poisoned");
        let delivered = map.get(session_id).is_some_and(|(_, tx)| tx.send(frame).is_ok());
        if !delivered {
            self.metrics.relay_failed(RelayFailure::WrapperDisconnected);
        }
        delivered
    }
}
