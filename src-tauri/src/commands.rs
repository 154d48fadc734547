//! Commands the window calls (through `window.__TAURI__.core.invoke`). Only the
//! hub-served page in the window `main` may call them (see `window::capability`).
use hapi_protocol::DesktopSettings;
use tauri::{AppHandle, State};

use crate::Desktop;

type Answer = Result<DesktopSettings, String>;

fn answer(result: anyhow::Result<DesktopSettings>) -> Answer {
    result.map_err(|e| format!("{e:#}"))
}

#[tauri::command]
pub fn desktop_settings(app: AppHandle, desk: State<'_, Desktop>) -> Answer {
    Ok(desk.desktop_settings(&app))
}

#[tauri::command]
pub fn set_autostart(app: AppHandle, desk: State<'_, Desktop>, enabled: bool) -> Answer {
    answer(desk.set_autostart(&app, enabled))
}

#[tauri::command]
pub fn set_notifications(app: AppHandle, desk: State<'_, Desktop>, enabled: bool) -> Answer {
    answer(desk.set_notifications(&app, enabled))
}

#[tauri::command]
pub fn set_session_notifications(
    app: AppHandle,
    desk: State<'_, Desktop>,
    session_id: String,
    enabled: bool,
) -> Answer {
    answer(desk.set_session_notifications(&app, &session_id, enabled))
}
