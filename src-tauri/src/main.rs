//! HAPI Desktop: a tray app that embeds the hub and the runner in-process and
//! shows the hub's web UI in a window.
//!
//! The same executable is also the `hapi` CLI: run with a `hapi` subcommand
//! (`hapi-desktop claude …`, `hapi-desktop runner status`, …) it behaves exactly
//! like `hapi`. That is how the embedded runner spawns sessions: with this very
//! binary, as detached processes that outlive the app.
//!
//! This crate is a thin shell: everything that is not tray, window,
//! notifications, keychain or autostart lives in the core crates.
// No console window on Windows release builds.
#![cfg_attr(all(not(debug_assertions), target_os = "windows"), windows_subsystem = "windows")]

mod commands;
mod desktop;
mod hub;
mod logging;
mod notification;
mod settings;
mod status;
mod tray;
mod window;

use std::ffi::OsString;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tauri::{AppHandle, Manager as _, RunEvent};

pub use desktop::Desktop;

/// The argument autostart adds: start in the tray, without the window.
const MINIMIZED: &str = "--minimized";

fn main() -> Result<()> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if hapi_cli::is_cli_invocation(&args) {
        let code = hapi_cli::main_from(args)?;
        std::process::exit(code);
    }
    let minimized = args.iter().skip(1).any(|a| a == MINIMIZED);
    run(minimized)
}

fn run(minimized: bool) -> Result<()> {
    let home = hapi_hub::HubConfig::from_env().context("invalid configuration")?.home;
    hapi_runner::create_home(&home)?;
    let log = logging::init(&home)?;
    tracing::info!(version = hapi_protocol::VERSION, log = %log.display(), home = %home.display(), "HAPI Desktop starting");
    let app = tauri::Builder::default()
        // First, so that a second launch hands over to this one before it
        // starts anything: the first instance shows its window.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            tracing::info!("second launch: showing the window");
            if let Err(e) = window::show(app, None) {
                tracing::warn!("cannot show the window: {e}");
            }
        }))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec![MINIMIZED]),
        ))
        .invoke_handler(tauri::generate_handler![
            commands::desktop_settings,
            commands::set_autostart,
            commands::set_notifications,
            commands::set_session_notifications,
        ])
        .setup(move |app| {
            let desk = match Desktop::start(log.clone()) {
                Ok(desk) => desk,
                Err(e) => {
                    tracing::error!("cannot start: {e:#}");
                    startup_failed(&format!("{e:#}"));
                    return Err(e.into());
                }
            };
            tracing::info!(url = desk.hub.url(), "embedded hub and runner started");
            app.add_capability(window::capability(desk.hub.url()))?;
            app.manage(desk);
            notification::check_server();
            tray::create(app.handle())?;
            follow_hub(app.handle().clone());
            handle_signals(app.handle().clone());
            if !minimized {
                window::show(app.handle(), None)?;
            }
            Ok(())
        })
        .build(tauri::generate_context!())
        .context("cannot start the desktop app")?;
    app.run(|_app, event| {
        // Closing the last window keeps the app in the tray; only Quit exits.
        if let RunEvent::ExitRequested { code: None, api, .. } = event {
            api.prevent_exit();
        }
    });
    Ok(())
}

/// Quits: withdraws notifications, stops the runner and the hub (sessions keep
/// running), then exits.
pub fn quit(app: &AppHandle) {
    let app = app.clone();
    std::thread::spawn(move || {
        tracing::info!("quitting");
        let desk = app.state::<Desktop>();
        desk.notifications.withdraw_all();
        desk.stop_services();
        app.exit(0);
    });
}

/// Keeps the tray and notifications in step with the hub: every session or
/// approval event asks for a refresh; refreshes are coalesced.
fn follow_hub(app: AppHandle) {
    let desk = app.state::<Desktop>();
    let mut follower = desk.follow_events();
    let mut remote = desk.remote_changes();
    desk.request_refresh();
    let refresher = app.clone();
    tauri::async_runtime::spawn(async move {
        let desk = refresher.state::<Desktop>();
        loop {
            // Everything the tray shows is announced (events, phone access);
            // the timeout is only a safety net.
            let _ = tokio::time::timeout(Duration::from_secs(60), desk.refresh_requested()).await;
            // A burst of events (a turn ending cancels its requests) is one refresh.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Err(e) = desk.refresh(&refresher).await {
                tracing::warn!("cannot read the hub's state: {e:#}");
                desk.hub_not_answering(&refresher);
                tokio::time::sleep(Duration::from_secs(1)).await;
                desk.request_refresh();
            }
        }
    });
    let watcher = app.clone();
    tauri::async_runtime::spawn(async move {
        let desk = watcher.state::<Desktop>();
        while remote.changed().await.is_ok() {
            desk.request_refresh();
        }
    });
    tauri::async_runtime::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        let desk = app.state::<Desktop>();
        loop {
            match follower.recv().await {
                Ok(event) => {
                    // Message events are the bulk and change nothing the tray shows.
                    if !event.json.contains("\"type\":\"message\"") {
                        desk.request_refresh();
                    }
                }
                Err(RecvError::Lagged(_)) => desk.request_refresh(),
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// SIGTERM and SIGINT quit as the menu does.
fn handle_signals(app: AppHandle) {
    tauri::async_runtime::spawn(async move {
        hapi_cli::shutdown_signal().await;
        quit(&app);
    });
}

/// Tells the person why the app could not start: the log has the details, but a
/// tray app started from a menu has no terminal.
fn startup_failed(message: &str) {
    eprintln!("HAPI Desktop cannot start: {message}");
    let _ = notify_rust::Notification::new()
        .appname("HAPI")
        .summary("HAPI Desktop cannot start")
        .body(message)
        .show();
}
