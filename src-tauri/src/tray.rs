//! The tray icon and its menu: the status line, the requests waiting for an
//! answer (each opens its session), Open window, Start on login, notifications,
//! Open logs folder and Quit. The icon gains a dot and a count while requests
//! wait.
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, IsMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager as _, Wry};

use crate::Desktop;
use crate::status::TrayStatus;

pub const ID: &str = "hapi";

const ICON: &[u8] = include_bytes!("../../icons/tray.png");
const ICON_ATTENTION: &[u8] = include_bytes!("../../icons/tray-attention.png");

const OPEN: &str = "open";
const AUTOSTART: &str = "autostart";
const NOTIFICATIONS: &str = "notifications";
const LOGS: &str = "logs";
const PAIR: &str = "pair";
const REVOKE_ALL: &str = "revoke-all";
const QUIT: &str = "quit";
const APPROVAL_PREFIX: &str = "approval:";
/// A session its budget paused; clicking opens it (to raise or stop).
const PAUSED_PREFIX: &str = "paused:";

pub fn create(app: &AppHandle) -> tauri::Result<()> {
    let menu = menu(app)?;
    TrayIconBuilder::with_id(ID)
        .icon(Image::from_bytes(ICON)?)
        .tooltip("HAPI")
        .title("HAPI")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(on_menu_event)
        .build(app)?;
    Ok(())
}

/// Rebuilds the menu and the icon from the current status and settings.
pub fn update(app: &AppHandle) {
    if let Err(e) = try_update(app) {
        tracing::warn!("cannot update the tray: {e}");
    }
}

/// What the menu shows; the menu is rebuilt only when this changes, so that an
/// open menu is not replaced under the pointer for nothing.
static SHOWN: std::sync::Mutex<Option<(TrayStatus, bool, bool)>> = std::sync::Mutex::new(None);

fn try_update(app: &AppHandle) -> tauri::Result<()> {
    let Some(tray) = app.tray_by_id(ID) else { return Ok(()) };
    let desk = app.state::<Desktop>();
    let status = desk.status();
    let shown = (
        status.clone(),
        crate::desktop::autostart_enabled(app),
        desk.settings().notifications,
    );
    {
        let mut last = SHOWN.lock().expect("tray state poisoned");
        if last.as_ref() == Some(&shown) {
            return Ok(());
        }
        *last = Some(shown);
    }
    tray.set_menu(Some(menu(app)?))?;
    let icon = if status.waiting > 0 { ICON_ATTENTION } else { ICON };
    tray.set_icon(Some(Image::from_bytes(icon)?))?;
    tray.set_tooltip(Some(status.tooltip()))?;
    // Shown next to the icon where the desktop supports labels (AppIndicator).
    tray.set_title(status.badge())?;
    if let Some(window) = app.get_webview_window(crate::window::LABEL) {
        let title = status
            .badge()
            .map_or("HAPI".to_owned(), |n| format!("HAPI ({n} waiting)"));
        window.set_title(&title)?;
    }
    Ok(())
}

fn menu(app: &AppHandle) -> tauri::Result<Menu<Wry>> {
    let desk = app.state::<Desktop>();
    let status = desk.status();
    let settings = desk.settings();
    let mut items: Vec<Box<dyn IsMenuItem<Wry>>> = Vec::new();
    items.push(Box::new(MenuItem::with_id(
        app,
        "status",
        status.status_line(),
        false,
        None::<&str>,
    )?));
    if !status.pending.is_empty() {
        items.push(Box::new(PredefinedMenuItem::separator(app)?));
        for item in &status.pending {
            let id = format!("{APPROVAL_PREFIX}{}", item.approval_id);
            items.push(Box::new(MenuItem::with_id(app, id, &item.label, true, None::<&str>)?));
        }
        let more = status.waiting - status.pending.len();
        if more > 0 {
            let label = format!("… and {more} more in the window");
            items.push(Box::new(MenuItem::with_id(app, OPEN, label, true, None::<&str>)?));
        }
    }
    if let Some(line) = status.skipping_line() {
        items.push(Box::new(MenuItem::with_id(app, "skipping", line, false, None::<&str>)?));
    }
    for paused in &status.paused {
        let id = format!("{PAUSED_PREFIX}{}", paused.session_id);
        items.push(Box::new(MenuItem::with_id(app, id, &paused.label, true, None::<&str>)?));
    }
    if let Some(line) = status.phone_line() {
        items.push(Box::new(PredefinedMenuItem::separator(app)?));
        items.push(Box::new(MenuItem::with_id(app, "phone", line, false, None::<&str>)?));
        items.push(Box::new(MenuItem::with_id(
            app,
            PAIR,
            "Pair phone…",
            true,
            None::<&str>,
        )?));
        items.push(Box::new(MenuItem::with_id(
            app,
            REVOKE_ALL,
            "Revoke all phones and stop phone access",
            true,
            None::<&str>,
        )?));
    }
    items.push(Box::new(PredefinedMenuItem::separator(app)?));
    items.push(Box::new(MenuItem::with_id(
        app,
        OPEN,
        "Open window",
        true,
        None::<&str>,
    )?));
    let autostart = crate::desktop::autostart_enabled(app);
    items.push(Box::new(CheckMenuItem::with_id(
        app,
        AUTOSTART,
        "Start on login",
        true,
        autostart,
        None::<&str>,
    )?));
    items.push(Box::new(CheckMenuItem::with_id(
        app,
        NOTIFICATIONS,
        "Approval notifications",
        true,
        settings.notifications,
        None::<&str>,
    )?));
    items.push(Box::new(MenuItem::with_id(
        app,
        LOGS,
        "Open logs folder",
        true,
        None::<&str>,
    )?));
    items.push(Box::new(PredefinedMenuItem::separator(app)?));
    items.push(Box::new(MenuItem::with_id(app, QUIT, "Quit HAPI", true, None::<&str>)?));
    let refs: Vec<&dyn IsMenuItem<Wry>> = items.iter().map(|i| i.as_ref()).collect();
    Menu::with_items(app, &refs)
}

fn on_menu_event(app: &AppHandle, event: MenuEvent) {
    let id = event.id().as_ref();
    let desk = app.state::<Desktop>();
    let result = match id {
        OPEN => crate::window::show(app, None).map_err(anyhow::Error::from),
        AUTOSTART => desk
            .set_autostart(app, !crate::desktop::autostart_enabled(app))
            .map(drop),
        NOTIFICATIONS => desk.set_notifications(app, !desk.settings().notifications).map(drop),
        LOGS => {
            crate::desktop::open_externally(&hapi_runner::logs_dir(&desk.home).to_string_lossy());
            Ok(())
        }
        PAIR => crate::window::show_route(app, "#/pair-phone").map_err(anyhow::Error::from),
        REVOKE_ALL => {
            crate::desktop::revoke_all_devices(app);
            Ok(())
        }
        QUIT => {
            crate::quit(app);
            Ok(())
        }
        other => match other.strip_prefix(APPROVAL_PREFIX) {
            Some(approval_id) => {
                let session = desk
                    .status()
                    .pending
                    .iter()
                    .find(|p| p.approval_id == approval_id)
                    .and_then(|p| p.session_id.clone());
                crate::window::show(app, session.as_deref()).map_err(anyhow::Error::from)
            }
            None => match other.strip_prefix(PAUSED_PREFIX) {
                Some(session_id) => crate::window::show(app, Some(session_id)).map_err(anyhow::Error::from),
                None => Ok(()),
            },
        },
    };
    if let Err(e) = result {
        tracing::warn!(item = id, "tray action failed: {e:#}");
        // The check mark may have flipped in the menu; put it back to the truth.
        *SHOWN.lock().expect("tray state poisoned") = None;
        update(app);
    }
}
