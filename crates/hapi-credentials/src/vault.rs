//! [`Vault`]: the one lookup of a `$HAPI_HOME`'s secrets (keychain first, then a
//! 0600 file), with the migration and marker rules of the crate docs.
use std::path::{Path, PathBuf};

use crate::files::{self, HomeLock};
use crate::keychain::Keychain;
use crate::{Credential, CredentialError, KeychainMode, MARKER_SUFFIX, Secret, StoreKind, new_secret};

/// The long-lived secrets of one `$HAPI_HOME`.
///
/// Open it once per process (the keychain is probed then) and ask it for
/// secrets; every call takes the home's lock for its duration.
#[derive(Debug)]
pub struct Vault {
    home: PathBuf,
    keychain: Result<Keychain, Unreachable>,
}

/// Why this vault does not use a keychain.
#[derive(Debug, Clone)]
struct Unreachable {
    reason: String,
    off: bool,
}

/// Where things are for one secret of one (canonical) home.
struct Place {
    home: PathBuf,
    file: PathBuf,
    marker: PathBuf,
    account: String,
}

/// What the keychain said about one secret.
enum Probe<'a> {
    Reachable(&'a Keychain, Option<String>),
    Unreachable(Unreachable),
}

impl Vault {
    /// The vault of `home`, with the keychain as [`KeychainMode::from_env`] says.
    pub fn open(home: &Path) -> Result<Vault, CredentialError> {
        Self::open_with(home, KeychainMode::from_env()?)
    }

    /// The vault of `home` with an explicit mode ([`KeychainMode::Off`] for
    /// tests and servers that must never touch a keychain).
    pub fn open_with(home: &Path, mode: KeychainMode) -> Result<Vault, CredentialError> {
        let keychain = match mode {
            KeychainMode::Off => Err(Unreachable {
                reason: "HAPI_KEYCHAIN=off".into(),
                off: true,
            }),
            KeychainMode::Auto => Keychain::platform().map_err(|reason| Unreachable { reason, off: false }),
        };
        Ok(Vault {
            home: home.to_path_buf(),
            keychain,
        })
    }

    /// The vault of `home` backed by `keychain` (e.g. an in-memory mock store).
    pub fn with_keychain(home: &Path, keychain: Keychain) -> Vault {
        Vault {
            home: home.to_path_buf(),
            keychain: Ok(keychain),
        }
    }

    /// The `$HAPI_HOME` this vault serves, as given.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Whether this vault tries a keychain at all: `Err` says why not
    /// (`HAPI_KEYCHAIN=off`, or no keychain reachable when it was opened).
    pub fn keychain_status(&self) -> Result<(), &str> {
        self.keychain.as_ref().map(|_| ()).map_err(|u| u.reason.as_str())
    }

    /// Whether the keychain was turned off on purpose (`HAPI_KEYCHAIN=off`), so
    /// a file store is expected rather than a problem.
    pub fn keychain_off(&self) -> bool {
        matches!(&self.keychain, Err(u) if u.off)
    }

    /// The keychain account of `secret` in `home` (which must be canonical):
    /// `<name>:<home>`.
    pub fn account(secret: &Secret, home: &Path) -> String {
        format!("{}:{}", secret.name, home.display())
    }

    /// The secret, if it exists anywhere. Never creates, moves or repairs
    /// anything, so clients of a hub can call it freely.
    pub fn get(&self, secret: &Secret) -> Result<Option<Credential>, CredentialError> {
        if !self.home.is_dir() {
            return Ok(None);
        }
        let place = self.place(secret)?;
        let _lock = files::lock(&place.home)?;
        let from_file = files::read_secret(&place.file, secret)?;
        let marked = place.marker.exists();
        match self.probe(&place) {
            Probe::Unreachable(why) => {
                if marked {
                    return Err(keychain_required(secret, &place, why));
                }
                Ok(from_file.map(|value| in_file(secret, &place, value, &why)))
            }
            Probe::Reachable(_, Some(value)) => {
                check_agree(secret, &place, from_file.as_deref(), &value)?;
                Ok(Some(in_keychain(value)))
            }
            Probe::Reachable(_, None) => match from_file {
                Some(value) => {
                    let notice = format!(
                        "the {} is still in {} (mode 0600); it moves into the OS keychain the next time \
                         the hub or `hapi auth token` runs",
                        secret.name,
                        place.file.display()
                    );
                    Ok(Some(Credential {
                        value,
                        store: StoreKind::File,
                        notice: Some(notice),
                    }))
                }
                None if marked => Err(missing_from_keychain(secret, &place)),
                None => Ok(None),
            },
        }
    }

    /// The secret, created (256 random bits, hex) if it exists nowhere. A secret
    /// found in the file moves into the keychain when one is reachable.
    pub fn get_or_create(&self, secret: &Secret) -> Result<Credential, CredentialError> {
        let place = self.place(secret)?;
        let _lock = files::lock(&place.home)?;
        let from_file = files::read_secret(&place.file, secret)?;
        let marked = place.marker.exists();
        match self.probe(&place) {
            Probe::Unreachable(why) => {
                if marked {
                    return Err(keychain_required(secret, &place, why));
                }
                let value = match from_file {
                    Some(value) => value,
                    None => {
                        let value = new_secret();
                        files::write_private(&place.file, &value)?;
                        value
                    }
                };
                Ok(in_file(secret, &place, value, &why))
            }
            Probe::Reachable(_, Some(value)) => {
                check_agree(secret, &place, from_file.as_deref(), &value)?;
                // Finish a move that stopped half-way, or repair a lost marker.
                if !marked {
                    files::write_marker(&place.marker, secret, &place.account)?;
                }
                if from_file.is_some() {
                    files::remove(&place.file)?;
                }
                Ok(in_keychain(value))
            }
            Probe::Reachable(keychain, None) => {
                let value = match from_file {
                    Some(value) => value,
                    None if marked => return Err(missing_from_keychain(secret, &place)),
                    None => new_secret(),
                };
                store(keychain, secret, &place, value, true)
            }
        }
    }

    /// Puts `value` in place of the secret (for rotating it), where the secret
    /// lives: the keychain if reachable, else the file.
    pub fn replace(&self, secret: &Secret, value: &str) -> Result<Credential, CredentialError> {
        let place = self.place(secret)?;
        let _lock: HomeLock = files::lock(&place.home)?;
        match self.probe(&place) {
            Probe::Unreachable(why) => {
                if place.marker.exists() {
                    return Err(keychain_required(secret, &place, why));
                }
                files::write_private(&place.file, value)?;
                Ok(in_file(secret, &place, value.to_owned(), &why))
            }
            // Falling back to the file is safe only if the keychain holds no old value.
            Probe::Reachable(keychain, existing) => {
                store(keychain, secret, &place, value.to_owned(), existing.is_none())
            }
        }
    }

    fn place(&self, secret: &Secret) -> Result<Place, CredentialError> {
        let home = files::ensure_home(&self.home)?;
        Ok(Place {
            file: home.join(secret.file),
            marker: home.join(format!("{}{MARKER_SUFFIX}", secret.file)),
            account: Self::account(secret, &home),
            home,
        })
    }

    /// Reads the keychain entry; a keychain that fails to answer counts as
    /// unreachable, with its error as the reason.
    fn probe(&self, place: &Place) -> Probe<'_> {
        match &self.keychain {
            Err(why) => Probe::Unreachable(why.clone()),
            Ok(keychain) => match keychain.get(&place.account) {
                Ok(found) => Probe::Reachable(keychain, found),
                Err(e) => Probe::Unreachable(Unreachable {
                    reason: format!("the OS keychain ({}) failed to answer: {e}", keychain.vendor()),
                    off: false,
                }),
            },
        }
    }
}

/// Stores `value` in the keychain (marker first, then the entry, read back),
/// then removes the file. If the keychain will not keep it and `may_fall_back`,
/// undoes that and keeps the secret in the file instead, with a notice.
fn store(
    keychain: &Keychain,
    secret: &Secret,
    place: &Place,
    value: String,
    may_fall_back: bool,
) -> Result<Credential, CredentialError> {
    // The marker goes first: a process without a keychain that runs after any
    // later crash refuses instead of minting a second secret.
    files::write_marker(&place.marker, secret, &place.account)?;
    let stored = keychain
        .set(&place.account, &value)
        .and_then(|()| keychain.get(&place.account));
    let reason = match stored {
        Ok(Some(read)) if read == value => {
            files::remove(&place.file)?;
            tracing::info!(secret = secret.name, account = %place.account, "secret kept in the OS keychain");
            return Ok(in_keychain(value));
        }
        Ok(_) => "it read back a different value".to_owned(),
        Err(e) => e.to_string(),
    };
    if !may_fall_back {
        return Err(CredentialError::Keychain {
            what: "store",
            name: secret.name,
            account: place.account.clone(),
            reason,
        });
    }
    // The keychain had no entry before: take out whatever half-stored value it
    // may keep, then make the file the one store again.
    if let Err(e) = keychain.delete(&place.account) {
        tracing::warn!(error = %e, account = %place.account, "cannot remove a half-stored keychain entry");
    }
    if files::read_secret(&place.file, secret)?.is_none() {
        files::write_private(&place.file, &value)?;
    }
    files::remove(&place.marker)?;
    let notice = format!(
        "the OS keychain is reachable but did not keep the {} ({reason}); it is kept in {} (mode 0600) instead",
        secret.name,
        place.file.display()
    );
    tracing::warn!(secret = secret.name, "{notice}");
    Ok(Credential {
        value,
        store: StoreKind::File,
        notice: Some(notice),
    })
}

fn in_keychain(value: String) -> Credential {
    Credential {
        value,
        store: StoreKind::Keychain,
        notice: None,
    }
}

fn in_file(secret: &Secret, place: &Place, value: String, why: &Unreachable) -> Credential {
    let notice = if why.off {
        format!(
            "HAPI_KEYCHAIN=off: the {} is kept in {} (mode 0600), not in the OS keychain",
            secret.name,
            place.file.display()
        )
    } else {
        format!(
            "no OS keychain is reachable ({}); the {} is kept in {} (mode 0600) instead. It moves into the \
             keychain the next time the hub or `hapi auth token` runs where one is reachable; set \
             HAPI_KEYCHAIN=off to use the file on purpose",
            why.reason,
            secret.name,
            place.file.display()
        )
    };
    Credential {
        value,
        store: StoreKind::File,
        notice: Some(notice),
    }
}

fn check_agree(secret: &Secret, place: &Place, from_file: Option<&str>, keychain: &str) -> Result<(), CredentialError> {
    match from_file {
        Some(file) if file != keychain => Err(CredentialError::Conflict {
            name: secret.name,
            file: place.file.clone(),
            account: place.account.clone(),
        }),
        _ => Ok(()),
    }
}

fn keychain_required(secret: &Secret, place: &Place, why: Unreachable) -> CredentialError {
    CredentialError::KeychainRequired {
        name: secret.name,
        marker: place.marker.clone(),
        account: place.account.clone(),
        reason: why.reason,
    }
}

fn missing_from_keychain(secret: &Secret, place: &Place) -> CredentialError {
    CredentialError::MissingFromKeychain {
        name: secret.name,
        marker: place.marker.clone(),
        account: place.account.clone(),
    }
}

#[cfg(test)]
#[path = "vault_tests.rs"]
mod tests;
