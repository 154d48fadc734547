//! The OS keychain, as a `keyring-core` store.
//!
//! [`Keychain::platform`] asks the `keyring` crate (v1 API) for the platform's
//! store. That choice is made once per process: if no session bus is reachable
//! at the first attempt, this process never gets a keychain, and says so.
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry, Error};

use crate::SERVICE;

/// A credential store HAPI can keep secrets in: the OS keychain, or any other
/// `keyring-core` store (the in-memory mock in tests).
#[derive(Clone)]
pub struct Keychain {
    store: Arc<CredentialStore>,
}

impl std::fmt::Debug for Keychain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keychain")
            .field("vendor", &self.store.vendor())
            .finish()
    }
}

impl Keychain {
    /// The OS keychain of this process, or why there is none.
    pub fn platform() -> Result<Keychain, String> {
        if let Err(e) = keyring::Entry::store_status() {
            return Err(unreachable_reason(e));
        }
        keyring_core::get_default_store()
            .map(Keychain::from_store)
            .ok_or_else(|| "no keychain store was set up".to_owned())
    }

    /// Any `keyring-core` store, e.g. `keyring_core::mock::Store::new()?`.
    pub fn from_store(store: Arc<CredentialStore>) -> Keychain {
        Keychain { store }
    }

    /// Who provides the store (for messages).
    pub fn vendor(&self) -> String {
        self.store.vendor()
    }

    fn entry(&self, account: &str) -> Result<Entry, Error> {
        Entry::new_in_store(&self.store, SERVICE, account)
    }

    /// The secret under `account`, `None` if there is no entry.
    pub(crate) fn get(&self, account: &str) -> Result<Option<String>, Error> {
        match self.entry(account)?.get_password() {
            Ok(value) => Ok(Some(value)),
            Err(Error::NoEntry) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn set(&self, account: &str, value: &str) -> Result<(), Error> {
        self.entry(account)?.set_password(value)
    }

    pub(crate) fn delete(&self, account: &str) -> Result<(), Error> {
        match self.entry(account)?.delete_credential() {
            Err(Error::NoEntry) => Ok(()),
            other => other,
        }
    }
}

/// Why the platform store is missing, in words a person can act on.
fn unreachable_reason(e: &Error) -> String {
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        let bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default();
        if bus.is_empty() {
            format!("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset) for the Secret Service: {e}")
        } else {
            format!("the Secret Service on the D-Bus session bus {bus} cannot be used: {e}")
        }
    }
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    {
        format!("the OS keychain cannot be used: {e}")
    }
}
