//! Native approval notifications with **Approve** and **Deny** buttons, and
//! notices (a session its budget paused) that open the session.
//!
//! Each pending request gets one notification. Its buttons decide the request
//! through the hub's HTTP API (the same path as the web UI), and clicking its body
//! opens the session in the window. When the request is decided anywhere else, or
//! cancelled, the notification is withdrawn, so no button is ever left that can
//! no longer act. On Quit every notification is withdrawn for the same reason.
//!
//! Linux (XDG notifications over D-Bus) has the buttons. Elsewhere the
//! notification is shown without buttons and a click opens the window; see
//! docs/desktop.md for the platform notes.
use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Which buttons a notification has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buttons {
    /// An approval: Approve, Deny (and the body opens the session).
    Decide,
    /// A notice: only "Open session".
    Open,
}

/// What a person did with a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Approve,
    Deny,
    /// Clicked the body: open the session.
    Open,
    /// Dismissed, expired or withdrawn.
    Closed,
}

impl Action {
    fn from_key(key: &str) -> Action {
        match key {
            APPROVE => Action::Approve,
            DENY => Action::Deny,
            "default" => Action::Open,
            _ => Action::Closed,
        }
    }
}

const APPROVE: &str = "approve";
const DENY: &str = "deny";

/// The open notifications, by approval id.
#[derive(Default)]
pub struct Notifications {
    open: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl Notifications {
    /// Whether a notification for this approval is open (or being opened).
    pub fn is_open(&self, approval_id: &str) -> bool {
        self.open
            .lock()
            .expect("notifications poisoned")
            .contains_key(approval_id)
    }

    /// Shows a notification under `key` (an approval's id, or a notice's own
    /// key) unless one is open; `on_action` gets the person's answer (not
    /// called when the notification is withdrawn).
    pub fn show(
        &self,
        key: &str,
        buttons: Buttons,
        title: String,
        body: String,
        on_action: impl FnOnce(Action) + Send + 'static,
    ) {
        let (cancel_tx, cancel_rx) = oneshot::channel();
        {
            let mut open = self.open.lock().expect("notifications poisoned");
            if open.contains_key(key) {
                return;
            }
            open.insert(key.to_owned(), cancel_tx);
        }
        let key = key.to_owned();
        tauri::async_runtime::spawn(async move {
            match platform::show(&title, &body, buttons, cancel_rx).await {
                Ok(Some(action)) => on_action(action),
                Ok(None) => tracing::debug!(%key, "notification withdrawn"),
                Err(e) => tracing::warn!(%key, "cannot show the notification: {e}"),
            }
        });
    }

    /// Withdraws the notification under `key`, if one is open.
    pub fn withdraw(&self, key: &str) {
        if let Some(cancel) = self.open.lock().expect("notifications poisoned").remove(key) {
            let _ = cancel.send(());
        }
    }

    /// Forgets a notification that ended on its own (answered or dismissed).
    pub fn finished(&self, key: &str) {
        self.open.lock().expect("notifications poisoned").remove(key);
    }

    /// Withdraws every notification (on Quit), and gives the desktop a moment to
    /// process the withdrawals before the process goes.
    pub fn withdraw_all(&self) {
        let all: Vec<_> = self.open.lock().expect("notifications poisoned").drain().collect();
        let any = !all.is_empty();
        for (_, cancel) in all {
            let _ = cancel.send(());
        }
        if any {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
}

/// Warns once at start when the notification server cannot show buttons.
pub fn check_server() {
    platform::check_server();
}

#[cfg(all(unix, not(target_os = "macos")))]
mod platform {
    use super::{APPROVE, Action, Buttons, DENY};
    use notify_rust::{Hint, Notification, Timeout, Urgency};
    use tokio::sync::oneshot;

    pub fn check_server() {
        match notify_rust::get_capabilities() {
            Ok(caps) if caps.iter().any(|c| c == "actions") => {
                tracing::info!(?caps, "notification server supports actions")
            }
            Ok(caps) => tracing::warn!(
                ?caps,
                "the notification server shows no buttons: approval notifications will only open the window"
            ),
            Err(e) => tracing::warn!("no notification server reachable ({e}); approval notifications are off"),
        }
    }

    /// Shows the notification and waits for an answer; `Ok(None)` if withdrawn.
    pub async fn show(
        title: &str,
        body: &str,
        buttons: Buttons,
        withdraw: oneshot::Receiver<()>,
    ) -> notify_rust::error::Result<Option<Action>> {
        let mut notification = Notification::new();
        notification
            .appname("HAPI")
            .summary(title)
            .body(&escape_markup(body))
            .action("default", "Open session");
        match buttons {
            Buttons::Decide => notification
                .icon("dialog-question")
                .action(APPROVE, "Approve")
                .action(DENY, "Deny"),
            Buttons::Open => notification.icon("dialog-information"),
        };
        let handle = notification
            .hint(Hint::Category("im.received".into()))
            .hint(Hint::Resident(true))
            .urgency(Urgency::Normal)
            .timeout(Timeout::Never)
            .show_async()
            .await?;
        tracing::info!(id = handle.id(), ?buttons, "notification shown");
        let mut picked = None;
        tokio::select! {
            _ = handle.wait_for_action_async(|response| {
                picked = Some(match response {
                    notify_rust::NotificationResponse::Default => Action::Open,
                    notify_rust::NotificationResponse::Action(key) => Action::from_key(key),
                    _ => Action::Closed,
                });
            }) => {
                // Some servers keep a notification up after a button is used; an
                // answered request must not stay on screen.
                if picked.is_some_and(|action| action != Action::Closed) {
                    handle.close_async().await;
                }
                Ok(picked)
            }
            _ = withdraw => {
                handle.close_async().await;
                Ok(None)
            }
        }
    }

    /// Bodies may be rendered as markup: a command full of `<` and `&` must show
    /// as typed.
    fn escape_markup(s: &str) -> String {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    }
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
mod platform {
    use super::{Action, Buttons};
    use tokio::sync::oneshot;

    pub fn check_server() {
        tracing::warn!(
            "approval notifications on this platform have no Approve/Deny buttons; they show the request only"
        );
    }

    /// Shows a plain notification; the request is answered in the window.
    pub async fn show(
        title: &str,
        body: &str,
        _buttons: Buttons,
        withdraw: oneshot::Receiver<()>,
    ) -> notify_rust::error::Result<Option<Action>> {
        notify_rust::Notification::new().summary(title).body(body).show()?;
        let _ = withdraw.await;
        Ok(None)
    }
}
