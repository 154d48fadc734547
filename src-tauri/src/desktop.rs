//! The app's state: the embedded hub and runner, what the tray shows, the
//! notifications, and the settings; plus the operations the tray, the window's
//! commands and the notifications share.
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, Result};
use hapi_cli::hub::HubInstance;
use hapi_protocol::{Decision, DecisionChannel, DesktopSettings};
use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Manager as _};
use tauri_plugin_autostart::ManagerExt as _;
use tokio::sync::watch;

use crate::hub::HubClient;
use crate::notification::{Action, Buttons, Notifications};
use crate::settings::Settings;
use crate::status::{HubHealth, TrayStatus};

/// How the embedded runner names its owner (`hapi runner stop` quotes it).
pub const APP_NAME: &str = "HAPI Desktop";

pub struct Desktop {
    pub home: PathBuf,
    pub hub: HubClient,
    /// The embedded hub, for its in-process event feed.
    hub_state: hapi_hub::AppState,
    token: String,
    pub notifications: Notifications,
    settings: Mutex<Settings>,
    status: Mutex<TrayStatus>,
    /// Approvals already notified: each request raises one notification, even
    /// if it was dismissed (a dismissal is an answer of sorts).
    notified: Mutex<HashSet<String>>,
    refresh: tokio::sync::Notify,
    services: Mutex<Option<Services>>,
}

/// The embedded hub and runner, running on Tauri's async runtime.
struct Services {
    shutdown: watch::Sender<bool>,
    hub: JoinHandle<Result<()>>,
    runner: JoinHandle<Result<bool>>,
}

impl Desktop {
    /// Starts the hub (taking `$HAPI_HOME`'s hub lock) and the runner, in this
    /// process. Fails if another hub owns `$HAPI_HOME`.
    pub fn start(log_path: PathBuf) -> Result<Desktop> {
        // Like `hapi hub`: a typo in a setting is an error, not a silent default.
        hapi_cli::config::refuse_unknown()?;
        let config = hapi_hub::HubConfig::from_env().context("invalid configuration")?;
        let home = config.home.clone();
        // The one owner-token lookup every binary shares (`CLI_API_TOKEN`, the OS
        // keychain, the 0600 file), done once: the hub gets the result, and the
        // window and the notifications use the token.
        let owner = hapi_hub::auth::OwnerToken::resolve(&config).context("cannot find or create the owner token")?;
        let token = owner.token.clone();
        let hub = tauri::async_runtime::block_on(HubInstance::start_with_owner(config, owner))?;
        let client = HubClient::new(&hub.url, &token)?;
        let hub_state = hub.state.clone();
        let settings = Settings::load(&home)?;
        let (shutdown, rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let hub_task = tauri::async_runtime::spawn(hub.serve(stopped(rx.clone())));
        let runner_config = hapi_cli::runner::embedded_config(home.clone(), APP_NAME, log_path)?;
        let runner_task = tauri::async_runtime::spawn(hapi_cli::runner::run_linked(runner_config, stopped(rx)));
        Ok(Desktop {
            home,
            hub: client,
            hub_state,
            token,
            notifications: Notifications::default(),
            settings: Mutex::new(settings),
            status: Mutex::new(TrayStatus::default()),
            notified: Mutex::default(),
            refresh: tokio::sync::Notify::new(),
            services: Mutex::new(Some(Services {
                shutdown,
                hub: hub_task,
                runner: runner_task,
            })),
        })
    }

    /// The hub's live events, in process (what `/api/events` streams).
    /// The hub's live events, counted as a follower of them (`hapi doctor`
    /// then knows approvals reach this desktop).
    pub fn follow_events(&self) -> hapi_hub::EventFollower {
        self.hub_state.follow_events()
    }

    /// Changes whenever phone access may read differently (on, off, the
    /// tunnel dropping or coming back): that is not in the event log.
    pub fn remote_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.hub_state.remote_changes()
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn status(&self) -> TrayStatus {
        self.status.lock().expect("status poisoned").clone()
    }

    pub fn settings(&self) -> Settings {
        self.settings.lock().expect("settings poisoned").clone()
    }

    /// Asks the refresher to re-read the hub soon.
    pub fn request_refresh(&self) {
        self.refresh.notify_one();
    }

    pub async fn refresh_requested(&self) {
        self.refresh.notified().await;
    }

    /// Stops the runner and the hub and waits (bounded) for both. Sessions keep
    /// running; they reconnect when the app comes back.
    pub fn stop_services(&self) {
        let Some(services) = self.services.lock().expect("services poisoned").take() else {
            return;
        };
        services.shutdown.send_replace(true);
        tauri::async_runtime::block_on(async {
            let wait = async {
                match services.runner.await {
                    Ok(Err(e)) => tracing::warn!("runner stopped with an error: {e:#}"),
                    Err(e) => tracing::warn!("runner task failed: {e}"),
                    Ok(Ok(_)) => {}
                }
                match services.hub.await {
                    Ok(Err(e)) => tracing::warn!("hub stopped with an error: {e:#}"),
                    Err(e) => tracing::warn!("hub task failed: {e}"),
                    Ok(Ok(())) => {}
                }
            };
            if tokio::time::timeout(Duration::from_secs(10), wait).await.is_err() {
                tracing::warn!("hub and runner did not stop within 10 s; exiting anyway");
            }
        });
        tracing::info!("embedded hub and runner stopped");
    }

    /// Says in the tray that the hub stopped answering, keeping the last counts
    /// (they are shown again once it answers).
    pub fn hub_not_answering(&self, app: &AppHandle) {
        let changed = {
            let mut current = self.status.lock().expect("status poisoned");
            let changed = current.hub != HubHealth::NotAnswering;
            current.hub = HubHealth::NotAnswering;
            changed
        };
        if changed {
            crate::tray::update(app);
        }
    }

    /// Re-reads the hub; updates the tray and the notifications to match.
    pub async fn refresh(&self, app: &AppHandle) -> Result<()> {
        let (sessions, pending, phone) =
            tokio::try_join!(self.hub.sessions(), self.hub.pending_approvals(), self.hub.remote())?;
        let mut status = TrayStatus::new(&sessions, &pending);
        status.phone = phone;
        let changed = {
            let mut current = self.status.lock().expect("status poisoned");
            let changed = *current != status;
            *current = status.clone();
            changed
        };
        if changed {
            crate::tray::update(app);
        }
        let settings = self.settings();
        let pending_ids: HashSet<&str> = pending.iter().map(|a| a.id.as_str()).collect();
        let paused_keys: HashSet<String> = status.paused.iter().map(|p| budget_key(&p.session_id)).collect();
        // Withdraw what was decided elsewhere, cancelled, unpaused, or muted since.
        let mut notified = self.notified.lock().expect("notified poisoned");
        notified.retain(|id| {
            let keep = pending_ids.contains(id.as_str()) || paused_keys.contains(id);
            if !keep {
                self.notifications.withdraw(id);
            }
            keep
        });
        for approval in &pending {
            if !settings.notifies(approval.session_id.as_deref()) {
                self.notifications.withdraw(&approval.id);
                continue;
            }
            if !notified.insert(approval.id.clone()) {
                continue;
            }
            let session = approval
                .session_id
                .as_deref()
                .and_then(|id| sessions.iter().find(|s| s.id == id));
            let (mut title, mut body) = crate::status::describe(approval, session);
            if let Some(reminder) = status.skipping_line() {
                body = format!("{body}\n{reminder}");
            }
            if approval.session_id.is_some() {
                title = crate::status::clip(&title, 120);
            }
            let app = app.clone();
            let id = approval.id.clone();
            let session_id = approval.session_id.clone();
            self.notifications
                .show(&approval.id, Buttons::Decide, title, body, move |action| {
                    on_notification_action(&app, &id, session_id.as_deref(), action)
                });
        }
        // A session its budget paused asks to be raised or stopped, in the window.
        for paused in &status.paused {
            let key = budget_key(&paused.session_id);
            if !settings.notifies(Some(&paused.session_id)) {
                self.notifications.withdraw(&key);
                continue;
            }
            if !notified.insert(key.clone()) {
                continue;
            }
            let Some(session) = sessions.iter().find(|s| s.id == paused.session_id) else {
                continue;
            };
            let title = format!("{} reached its budget", crate::status::session_name(session));
            let body = format!(
                "{}. It is paused: raise its budget or stop it in the window.",
                crate::status::budget_use(session)
            );
            let app = app.clone();
            let session_id = session.id.clone();
            self.notifications
                .show(&key, Buttons::Open, title, body, move |action| {
                    let desk = app.state::<Desktop>();
                    desk.notifications.finished(&budget_key(&session_id));
                    if action == Action::Open
                        && let Err(e) = crate::window::show(&app, Some(&session_id))
                    {
                        tracing::warn!("cannot open the window: {e}");
                    }
                });
        }
        Ok(())
    }

    pub fn desktop_settings(&self, app: &AppHandle) -> DesktopSettings {
        self.settings().to_wire(autostart_enabled(app))
    }

    pub fn set_autostart(&self, app: &AppHandle, enabled: bool) -> Result<DesktopSettings> {
        let launcher = app.autolaunch();
        // The plugin writes ~/.config/autostart/HAPI.desktop but does not create
        // the folder, which a fresh account may not have yet.
        #[cfg(target_os = "linux")]
        if enabled && let Ok(home) = app.path().home_dir() {
            let dir = home.join(".config/autostart");
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        if enabled {
            launcher.enable().context("cannot turn on start on login")?;
        } else {
            launcher.disable().context("cannot turn off start on login")?;
        }
        tracing::info!(enabled, "start on login changed");
        crate::tray::update(app);
        Ok(self.desktop_settings(app))
    }

    pub fn set_notifications(&self, app: &AppHandle, enabled: bool) -> Result<DesktopSettings> {
        self.change_settings(app, |s| s.notifications = enabled)
    }

    pub fn set_session_notifications(
        &self,
        app: &AppHandle,
        session_id: &str,
        enabled: bool,
    ) -> Result<DesktopSettings> {
        self.change_settings(app, |s| s.set_session(session_id, enabled))
    }

    fn change_settings(&self, app: &AppHandle, change: impl FnOnce(&mut Settings)) -> Result<DesktopSettings> {
        {
            let mut settings = self.settings.lock().expect("settings poisoned");
            let mut next = settings.clone();
            change(&mut next);
            next.save(&self.home)?;
            *settings = next;
        }
        // Muting withdraws open notifications; unmuting shows the pending ones
        // that were never notified.
        self.notified
            .lock()
            .expect("notified poisoned")
            .retain(|id| self.notifications.is_open(id));
        self.request_refresh();
        crate::tray::update(app);
        Ok(self.desktop_settings(app))
    }
}

/// The tray's kill switch: every paired device loses access at once and phone
/// access is turned off.
pub fn revoke_all_devices(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let desk = app.state::<Desktop>();
        match desk.hub.revoke_all_devices().await {
            Ok(()) => tracing::warn!("all paired devices revoked and phone access turned off (tray)"),
            Err(e) => tracing::error!("cannot revoke the paired devices: {e:#}"),
        }
        desk.request_refresh();
    });
}

pub fn autostart_enabled(app: &AppHandle) -> bool {
    app.autolaunch().is_enabled().unwrap_or_else(|e| {
        tracing::warn!("cannot read the start-on-login setting: {e}");
        false
    })
}

fn on_notification_action(app: &AppHandle, approval_id: &str, session_id: Option<&str>, action: Action) {
    let desk = app.state::<Desktop>();
    desk.notifications.finished(approval_id);
    let decision = match action {
        Action::Approve => Decision::AllowOnce,
        Action::Deny => Decision::RejectOnce,
        Action::Open => {
            if let Err(e) = crate::window::show(app, session_id) {
                tracing::warn!("cannot open the window: {e}");
            }
            return;
        }
        Action::Closed => return,
    };
    tracing::info!(%approval_id, decision = decision.as_str(), "decided from a notification");
    let hub = desk.hub.clone();
    let approval_id = approval_id.to_owned();
    tauri::async_runtime::spawn(async move {
        if let Err(e) = hub
            .decide(&approval_id, decision, DecisionChannel::DesktopNotification)
            .await
        {
            // Most often: decided elsewhere first (the first decision wins).
            tracing::warn!(%approval_id, "the notification's decision was not taken: {e:#}");
        }
    });
}

/// The notification key of a session's "budget reached" notice (approval ids
/// are the other keys).
fn budget_key(session_id: &str) -> String {
    format!("budget:{session_id}")
}

/// Opens a URL or folder with the desktop's default handler.
pub fn open_externally(target: &str) {
    #[cfg(target_os = "macos")]
    let program = "open";
    #[cfg(target_os = "windows")]
    let program = "explorer";
    #[cfg(not(any(target_os = "macos", target_os = "windows")))]
    let program = "xdg-open";
    match std::process::Command::new(program)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        // Reap it in the background so it leaves no zombie.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => tracing::warn!("cannot run {program} {target}: {e}"),
    }
}
