//! Where HAPI keeps its long-lived secrets: one lookup for every binary.
//!
//! The desktop app, `hapi hub`, `hapi auth token`, the runner and `hapi claude`
//! all find a secret (today only the owner token) the same way, through a
//! [`Vault`] for one `$HAPI_HOME`:
//!
//! 1. the **OS keychain** (Secret Service on Linux, Keychain on macOS, Credential
//!    Manager on Windows), entry service [`SERVICE`], account
//!    `<secret>:<canonical $HAPI_HOME>` (so each home has its own secret);
//! 2. else a **0600 file** in `$HAPI_HOME` (e.g. `owner.token`), with a notice
//!    saying why the keychain was not used.
//!
//! Invariants:
//! - Every step that reads or writes a secret holds `$HAPI_HOME/credentials.lock`,
//!   so concurrent first starts (app and CLI) agree on one secret.
//! - While a secret is in the keychain, a small 0600 **marker** file
//!   (`owner.token.keychain`) says so. A process that cannot reach the keychain
//!   and finds the marker fails with [`CredentialError::KeychainRequired`]; it
//!   never mints a second secret.
//! - A file left by a headless run moves into the keychain the next time a
//!   creating lookup ([`Vault::get_or_create`]) reaches one: stored, read back,
//!   then the file is removed and the marker written. Plain reads
//!   ([`Vault::get`]) never change anything.
//! - `HAPI_KEYCHAIN=off` ([`KeychainMode::Off`]) never touches the keychain: for
//!   servers and tests.
#![deny(missing_docs)]

mod files;
mod keychain;
mod vault;

use std::path::PathBuf;

pub use keychain::Keychain;
pub use vault::Vault;

/// The keychain service name of every HAPI secret.
pub const SERVICE: &str = "hapi";

/// The environment variable that turns the keychain off (`off`) or leaves the
/// choice automatic (`auto`, or unset).
pub const KEYCHAIN_ENV: &str = "HAPI_KEYCHAIN";

/// File in `$HAPI_HOME` held locked while a secret is looked up or stored.
pub const LOCK_FILE: &str = "credentials.lock";

/// Suffix of the marker file that says a secret is in the keychain.
pub const MARKER_SUFFIX: &str = ".keychain";

/// Which long-lived secret of a `$HAPI_HOME`: its keychain account prefix and
/// its file name when kept in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secret {
    /// Names the secret in messages and in the keychain account
    /// (`<name>:<canonical $HAPI_HOME>`).
    pub name: &'static str,
    /// The file in `$HAPI_HOME` that holds it when no keychain is used; the
    /// marker is this name plus [`MARKER_SUFFIX`].
    pub file: &'static str,
}

/// The owner token: opens every `/api` route of the hub.
pub const OWNER_TOKEN: Secret = Secret {
    name: "owner-token",
    file: "owner.token",
};

/// Where a secret was found or put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The OS keychain.
    Keychain,
    /// A 0600 file in `$HAPI_HOME`.
    File,
}

/// A secret and where it is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The secret itself.
    pub value: String,
    /// Where it is kept.
    pub store: StoreKind,
    /// Set when the keychain was not used: why, and where the secret is instead.
    /// Show it to the person (log, stderr, UI).
    pub notice: Option<String>,
}

impl std::fmt::Debug for Credential {
    // Hand-written so a secret never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("value", &"<redacted>")
            .field("store", &self.store)
            .field("notice", &self.notice)
            .finish()
    }
}

/// Whether to try the keychain at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeychainMode {
    /// Use the keychain when one is reachable, else the file (with a notice).
    Auto,
    /// Never touch the keychain: the file only (`HAPI_KEYCHAIN=off`).
    Off,
}

impl KeychainMode {
    /// Reads [`KEYCHAIN_ENV`]: unset, empty or `auto` is [`KeychainMode::Auto`],
    /// `off` is [`KeychainMode::Off`].
    pub fn from_env() -> Result<Self, CredentialError> {
        Self::parse(std::env::var(KEYCHAIN_ENV).ok().as_deref())
    }

    /// Parses a value of [`KEYCHAIN_ENV`].
    pub fn parse(value: Option<&str>) -> Result<Self, CredentialError> {
        match value.map(str::trim) {
            None | Some("" | "auto") => Ok(KeychainMode::Auto),
            Some("off") => Ok(KeychainMode::Off),
            Some(other) => Err(CredentialError::InvalidMode(other.to_owned())),
        }
    }
}

/// Why a secret could not be read or stored. Every message says what happened
/// and what to do.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// `HAPI_KEYCHAIN` holds something else than `auto` or `off`.
    #[error("HAPI_KEYCHAIN={0:?} is invalid: expected `auto` (the default) or `off`")]
    InvalidMode(String),
    /// A file in `$HAPI_HOME` could not be used.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create", …).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A secret file exists but is empty.
    #[error("{} is empty; delete it to create a new {name}", path.display())]
    EmptyFile {
        /// The secret.
        name: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The marker says the secret is in the keychain, and no keychain is
    /// reachable here: refusing rather than creating a second secret.
    #[error(
        "the {name} of HAPI_HOME={} is kept in the OS keychain (service `{SERVICE}`, account `{account}`; \
         see {}), but no keychain is reachable from this process: {reason}. \
         Run this inside the desktop session that holds the keychain, or set CLI_API_TOKEN to the token \
         (`hapi auth token` inside that session prints it). No new token was created.",
        home_of(marker).display(),
        marker.display()
    )]
    KeychainRequired {
        /// The secret.
        name: &'static str,
        /// The marker file (in the canonical `$HAPI_HOME`).
        marker: PathBuf,
        /// Keychain account (service [`SERVICE`]).
        account: String,
        /// Why no keychain is reachable.
        reason: String,
    },
    /// The marker says the secret is in the keychain, but the reachable keychain
    /// has no such entry (a different keychain, or the entry was deleted).
    #[error(
        "the {name} of HAPI_HOME={} should be in the OS keychain (service `{SERVICE}`, account `{account}`; \
         see {}), but this keychain has no such entry. If this is the keychain of another login session, \
         run from that session or set CLI_API_TOKEN. If the entry was deleted on purpose, delete {} too \
         and a new token will be created.",
        home_of(marker).display(),
        marker.display(),
        marker.display()
    )]
    MissingFromKeychain {
        /// The secret.
        name: &'static str,
        /// The marker file (in the canonical `$HAPI_HOME`).
        marker: PathBuf,
        /// Keychain account (service [`SERVICE`]).
        account: String,
    },
    /// The keychain and the file hold different secrets: which one is right
    /// cannot be known.
    #[error(
        "the {name} in the OS keychain (service `{SERVICE}`, account `{account}`) differs from the one in {}. \
         Keep one: delete the file to use the keychain's, or delete the keychain entry (e.g. \
         `secret-tool clear service {SERVICE} username '{account}'`) to move the file's into the keychain.",
        file.display()
    )]
    Conflict {
        /// The secret.
        name: &'static str,
        /// The file.
        file: PathBuf,
        /// Keychain account (service [`SERVICE`]).
        account: String,
    },
    /// The keychain failed while replacing a secret it holds.
    #[error("the OS keychain could not {what} the {name} (service `{SERVICE}`, account `{account}`): {reason}")]
    Keychain {
        /// What was being done ("store", …).
        what: &'static str,
        /// The secret.
        name: &'static str,
        /// Keychain account (service [`SERVICE`]).
        account: String,
        /// The keychain's error.
        reason: String,
    },
}

fn home_of(marker: &std::path::Path) -> &std::path::Path {
    marker.parent().unwrap_or(marker)
}

/// The owner token of `home`, created on first use: [`Vault::open`] then
/// [`Vault::get_or_create`].
pub fn owner_token(home: &std::path::Path) -> Result<Credential, CredentialError> {
    Vault::open(home)?.get_or_create(&OWNER_TOKEN)
}

/// The owner token of `home` if one exists, never creating or moving anything:
/// for clients of a hub (the runner, `hapi claude`).
pub fn find_owner_token(home: &std::path::Path) -> Result<Option<Credential>, CredentialError> {
    Vault::open(home)?.get(&OWNER_TOKEN)
}

/// A fresh random secret: 256 bits, hex.
pub fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}
