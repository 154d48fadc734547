//! Native approval notifications with **Approve** and **Deny** buttons.
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

use hapi_protocol::Approval;
use tokio::sync::oneshot;

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

    /// Shows a notification for `approval` unless one is open; `on_action` gets
    /// the person's answer (not called when the notification is withdrawn).
    pub fn show(
        &self,
        approval: &Approval,
        title: String,
        body: String,
        on_action: impl FnOnce(Action) + Send + 'static,
    ) {
        let (cancel_tx, cancel_rx) = oneshot::channel();
        {
            let mut open = self.open.lock().expect("notifications poisoned");
            if open.contains_key(&approval.id) {
                return;
            }
            open.insert(approval.id.clone(), cancel_tx);
        }
        let approval_id = approval.id.clone();
        tauri::async_runtime::spawn(async move {
            match platform::show(&title, &body, cancel_rx).await {
                Ok(Some(action)) => on_action(action),
                Ok(None) => tracing::debug!(%approval_id, "notification withdrawn"),
                Err(e) => tracing::warn!(%approval_id, "cannot show the approval notification: {e}"),
            }
        });
    }

    /// Withdraws the notification of this approval, if one is open.
    pub fn withdraw(&self, approval_id: &str) {
        if let Some(cancel) = self.open.lock().expect("notifications poisoned").remove(approval_id) {
            let _ = cancel.send(());
        }
    }

    /// Forgets a notification that ended on its own (answered or dismissed).
    pub fn finished(&self, approval_id: &str) {
        self.open.lock().expect("notifications poisoned").remove(approval_id);
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
    use super::{APPROVE, Action, DENY};
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
        withdraw: oneshot::Receiver<()>,
    ) -> notify_rust::error::Result<Option<Action>> {
        let handle = Notification::new()
            .appname("HAPI")
            .summary(title)
            .body(&escape_markup(body))
            .icon("dialog-question")
            .action("default", "Open session")
            .action(APPROVE, "Approve")
            .action(DENY, "Deny")
            .hint(Hint::Category("im.received".into()))
            .hint(Hint::Resident(true))
            .urgency(Urgency::Normal)
            .timeout(Timeout::Never)
            .show_async()
            .await?;
        tracing::info!(id = handle.id(), "approval notification shown");
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
    use super::Action;
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
        withdraw: oneshot::Receiver<()>,
    ) -> notify_rust::error::Result<Option<Action>> {
        notify_rust::Notification::new().summary(title).body(body).show()?;
        let _ = withdraw.await;
        Ok(None)
    }
}
