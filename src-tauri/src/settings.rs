//! The app's own settings, in `$HAPI_HOME/desktop.json`: whether approval
//! notifications are on, and which sessions are muted. (Start-on-login is not
//! stored here: the OS's login item is the truth, read through the plugin.)
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

/// File name inside `$HAPI_HOME`.
pub const SETTINGS_FILE: &str = "desktop.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Native notifications for approval requests.
    pub notifications: bool,
    /// Sessions whose requests raise no notification.
    pub muted_sessions: BTreeSet<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            notifications: true,
            muted_sessions: BTreeSet::new(),
        }
    }
}

impl Settings {
    pub fn path(home: &Path) -> PathBuf {
        home.join(SETTINGS_FILE)
    }

    /// Reads the settings; a missing file gives the defaults. A malformed file is
    /// an error that names it, rather than silently reset settings.
    pub fn load(home: &Path) -> Result<Self> {
        let path = Self::path(home);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes atomically (temp file, then rename).
    pub fn save(&self, home: &Path) -> Result<()> {
        let path = Self::path(home);
        hapi_runner::write_atomically(&path, &serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Whether a request of `session_id` (None: a machine-scoped request) notifies.
    pub fn notifies(&self, session_id: Option<&str>) -> bool {
        self.notifications && session_id.is_none_or(|id| !self.muted_sessions.contains(id))
    }

    pub fn set_session(&mut self, session_id: &str, enabled: bool) {
        if enabled {
            self.muted_sessions.remove(session_id);
        } else {
            self.muted_sessions.insert(session_id.to_owned());
        }
    }

    /// The wire form the window reads.
    pub fn to_wire(&self, autostart: bool) -> hapi_protocol::DesktopSettings {
        hapi_protocol::DesktopSettings {
            autostart,
            notifications: self.notifications,
            muted_sessions: self.muted_sessions.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_save_load_and_muting() {
        let home = std::env::temp_dir().join(format!("hapi-desktop-settings-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        assert_eq!(Settings::load(&home).unwrap(), Settings::default());
        let mut s = Settings::default();
        assert!(s.notifies(Some("a")) && s.notifies(None));
        s.set_session("a", false);
        assert!(!s.notifies(Some("a")) && s.notifies(Some("b")));
        s.save(&home).unwrap();
        assert_eq!(Settings::load(&home).unwrap(), s);
        s.set_session("a", true);
        s.notifications = false;
        assert!(!s.notifies(Some("a")) && !s.notifies(None));
        std::fs::write(Settings::path(&home), "{\"notifications\": \"yes\"}").unwrap();
        let err = format!("{:#}", Settings::load(&home).unwrap_err());
        assert!(err.contains("desktop.json is not valid"), "{err}");
        std::fs::remove_dir_all(&home).unwrap();
    }
}
