//! Session wrappers that are connected right now, so a command committed to a
//! session's outbox can be pushed at once instead of waiting for a reconnect.
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hapi_protocol::HubFrame;
use tokio::sync::mpsc;

/// Registry of connected wrappers, one per session (a newer connection replaces
/// an older one, which then closes).
#[derive(Default)]
pub struct Links {
    next_id: AtomicU64,
    by_session: Mutex<HashMap<String, (u64, mpsc::UnboundedSender<HubFrame>)>>,
}

impl Links {
    /// Registers a connection and returns its id.
    pub fn register(&self, session_id: &str, tx: mpsc::UnboundedSender<HubFrame>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.by_session
            .lock()
            .expect("links poisoned")
            .insert(session_id.to_owned(), (id, tx));
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

    /// Pushes a frame to the session's wrapper; false if none is connected.
    pub fn push(&self, session_id: &str, frame: HubFrame) -> bool {
        let map = self.by_session.lock().expect("links poisoned");
        map.get(session_id).is_some_and(|(_, tx)| tx.send(frame).is_ok())
    }
}
