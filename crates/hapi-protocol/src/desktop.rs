//! What the hub says about itself, and the desktop app's own settings.
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// `GET /api/hub`: facts about this hub an owner's UI shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct HubInfo {
    /// Hub version.
    pub version: String,
    /// This machine's id (see `GET /api/machines`).
    pub machine_id: String,
    /// Where the owner token is kept.
    pub credentials: CredentialInfo,
}

/// Where a long-lived secret (the owner token) is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum CredentialStoreKind {
    /// The OS keychain (Secret Service, macOS Keychain, Windows Credential Manager).
    Keychain,
    /// A 0600 file in `$HAPI_HOME`, because no keychain was reachable.
    File,
    /// `CLI_API_TOKEN` from the environment.
    Environment,
}

/// [`HubInfo::credentials`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct CredentialInfo {
    /// Where the owner token is kept.
    pub store: CredentialStoreKind,
    /// Set when the keychain could not be used: why, and what was done instead.
    /// The UI shows it as a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub notice: Option<String>,
}

/// The desktop app's settings, as its window reads and changes them through the
/// app's commands (`desktop_settings`, `set_autostart`, `set_notifications`,
/// `set_session_notifications`). Kept in `$HAPI_HOME/desktop.json`, except
/// `autostart`, which is the OS's login-item entry itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct DesktopSettings {
    /// Start the app (minimised to the tray) on login.
    pub autostart: bool,
    /// Native notifications for approval requests, for every session.
    pub notifications: bool,
    /// Sessions whose approval requests raise no notification.
    pub muted_sessions: Vec<String>,
}
