//! The lookup rules, with `keyring-core`'s in-memory mock store standing in for
//! the OS keychain (two vaults on one mock store are two processes in one login
//! session) and [`KeychainMode::Off`] or an unreachable vault for headless runs.
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use keyring_core::api::{CredentialApi, CredentialStoreApi};
use keyring_core::{CredentialStore, Entry, Error};

use super::*;
use crate::{OWNER_TOKEN, SERVICE};

fn mock() -> Arc<CredentialStore> {
    keyring_core::mock::Store::new().unwrap()
}

fn keychain_vault(home: &Path, store: &Arc<CredentialStore>) -> Vault {
    Vault::with_keychain(home, Keychain::from_store(store.clone()))
}

fn off_vault(home: &Path) -> Vault {
    Vault::open_with(home, KeychainMode::Off).unwrap()
}

/// A process with keychain support but no reachable session bus.
fn unreachable_vault(home: &Path) -> Vault {
    Vault {
        home: home.to_path_buf(),
        keychain: Err(Unreachable {
            reason: "no D-Bus session bus (test)".into(),
            off: false,
        }),
    }
}

fn account(home: &Path) -> String {
    Vault::account(&OWNER_TOKEN, &home.canonicalize().unwrap())
}

fn in_store(store: &Arc<CredentialStore>, home: &Path) -> Option<String> {
    match Entry::new_in_store(store, SERVICE, &account(home))
        .unwrap()
        .get_password()
    {
        Ok(value) => Some(value),
        Err(Error::NoEntry) => None,
        Err(e) => panic!("mock store failed: {e}"),
    }
}

fn put_in_store(store: &Arc<CredentialStore>, home: &Path, value: &str) {
    Entry::new_in_store(store, SERVICE, &account(home))
        .unwrap()
        .set_password(value)
        .unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn file(home: &Path) -> PathBuf {
    home.join("owner.token")
}

fn marker(home: &Path) -> PathBuf {
    home.join("owner.token.keychain")
}

fn temp_home() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("hapi-home");
    (dir, home)
}

#[test]
fn without_a_keychain_one_private_file_is_created_and_reused() {
    let (_dir, home) = temp_home();
    let first = unreachable_vault(&home).get_or_create(&OWNER_TOKEN).unwrap();
    assert_eq!(first.store, StoreKind::File);
    assert_eq!(first.value.len(), 64);
    let notice = first.notice.clone().unwrap();
    assert!(
        notice.contains("no OS keychain is reachable (no D-Bus session bus (test))"),
        "{notice}"
    );
    assert!(
        notice.contains(&file(&home).canonicalize().unwrap().display().to_string()),
        "{notice}"
    );
    assert_eq!(mode(&file(&home)), 0o600);
    assert_eq!(mode(&home), 0o700);
    assert!(!marker(&home).exists());

    let again = unreachable_vault(&home).get_or_create(&OWNER_TOKEN).unwrap();
    assert_eq!(again, first);
    let off = off_vault(&home).get(&OWNER_TOKEN).unwrap().unwrap();
    assert_eq!(off.value, first.value);
    assert!(off.notice.unwrap().starts_with("HAPI_KEYCHAIN=off"));
}

#[test]
fn with_a_keychain_the_secret_is_only_in_the_keychain_and_a_marker_says_so() {
    let (_dir, home) = temp_home();
    let store = mock();
    let first = keychain_vault(&home, &store).get_or_create(&OWNER_TOKEN).unwrap();
    assert_eq!(first.store, StoreKind::Keychain);
    assert_eq!(first.notice, None);
    assert!(!file(&home).exists(), "no token file");
    assert_eq!(in_store(&store, &home).as_deref(), Some(first.value.as_str()));
    assert_eq!(mode(&marker(&home)), 0o600);
    let text = std::fs::read_to_string(marker(&home)).unwrap();
    assert!(text.contains("service: hapi"), "{text}");
    assert!(text.contains(&format!("account: {}", account(&home))), "{text}");
    assert!(!text.contains(&first.value), "the marker never holds the secret");

    // Another process in the same session: the same token, read or created.
    assert_eq!(
        keychain_vault(&home, &store).get_or_create(&OWNER_TOKEN).unwrap(),
        first
    );
    assert_eq!(keychain_vault(&home, &store).get(&OWNER_TOKEN).unwrap().unwrap(), first);
    assert_eq!(
        owner_token_debug(&first),
        "Credential { value: \"<redacted>\", store: Keychain, notice: None }"
    );
}

fn owner_token_debug(c: &Credential) -> String {
    format!("{c:?}")
}

#[test]
fn a_file_from_a_headless_run_moves_into_the_keychain() {
    let (_dir, home) = temp_home();
    let headless = off_vault(&home).get_or_create(&OWNER_TOKEN).unwrap();
    let store = mock();

    // A plain read changes nothing.
    let read = keychain_vault(&home, &store).get(&OWNER_TOKEN).unwrap().unwrap();
    assert_eq!(
        (read.value.as_str(), read.store),
        (headless.value.as_str(), StoreKind::File)
    );
    assert!(read.notice.unwrap().contains("moves into the OS keychain"));
    assert!(file(&home).exists() && !marker(&home).exists() && in_store(&store, &home).is_none());

    let moved = keychain_vault(&home, &store).get_or_create(&OWNER_TOKEN).unwrap();
    assert_eq!(moved.value, headless.value, "the same token, now in the keychain");
    assert_eq!(moved.store, StoreKind::Keychain);
    assert!(!file(&home).exists(), "the file is removed");
    assert!(marker(&home).exists(), "the marker is left");
    assert_eq!(in_store(&store, &home), Some(headless.value));
}

#[test]
fn with_the_marker_and_no_keychain_nothing_is_created() {
    let (_dir, home) = temp_home();
    let store = mock();
    let token = keychain_vault(&home, &store).get_or_create(&OWNER_TOKEN).unwrap();
    for vault in [unreachable_vault(&home), off_vault(&home)] {
        let err = vault.get_or_create(&OWNER_TOKEN).unwrap_err();
        assert!(matches!(err, CredentialError::KeychainRequired { .. }), "{err:?}");
        let message = err.to_string();
        for part in [
            "is kept in the OS keychain (service `hapi`, account `owner-token:",
            "no keychain is reachable from this process",
            "inside the desktop session",
            "CLI_API_TOKEN",
            "No new token was created",
        ] {
            assert!(message.contains(part), "{part:?} not in {message}");
        }
        assert!(matches!(
            vault.get(&OWNER_TOKEN),
            Err(CredentialError::KeychainRequired { .. })
        ));
        assert!(matches!(
            vault.replace(&OWNER_TOKEN, "x"),
            Err(CredentialError::KeychainRequired { .. })
        ));
        assert!(!file(&home).exists(), "no second token");
    }
    assert_eq!(
        keychain_vault(&home, &store).get_or_create(&OWNER_TOKEN).unwrap(),
        token
    );
}

#[test]
fn with_the_marker_and_an_empty_keychain_nothing_is_created() {
    let (_dir, home) = temp_home();
    keychain_vault(&home, &mock()).get_or_create(&OWNER_TOKEN).unwrap();
    // Another login session's keychain (or the entry was deleted).
    let other = mock();
    let err = keychain_vault(&home, &other).get_or_create(&OWNER_TOKEN).unwrap_err();
    assert!(matches!(err, CredentialError::MissingFromKeychain { .. }), "{err:?}");
    assert!(err.to_string().contains("delete"), "{err}");
    assert!(matches!(
        keychain_vault(&home, &other).get(&OWNER_TOKEN),
        Err(CredentialError::MissingFromKeychain { .. })
    ));
    assert!(in_store(&other, &home).is_none() && !file(&home).exists());

    // Deleting the marker on purpose allows a new token.
    std::fs::remove_file(marker(&home)).unwrap();
    let fresh = keychain_vault(&home, &other).get_or_create(&OWNER_TOKEN).unwrap();
    assert_eq!(fresh.store, StoreKind::Keychain);
}

#[test]
fn a_move_that_stopped_half_way_is_finished() {
    let (_dir, home) = temp_home();
    let store = mock();
    // Crash after storing, before removing the file and writing the marker.
    let token = off_vault(&home).get_or_create(&OWNER_TOKEN).unwrap().value;
    put_in_store(&store, &home, &token);
    let found = keychain_vault(&home, &store).get_or_create(&OWNER_TOKEN).unwrap();
    assert_eq!(
        (found.value.as_str(), found.store),
        (token.as_str(), StoreKind::Keychain)
    );
    assert!(!file(&home).exists() && marker(&home).exists());

    // Crash after the marker, before storing: the file is still the token.
    let (_dir2, home2) = temp_home();
    let token2 = off_vault(&home2).get_or_create(&OWNER_TOKEN).unwrap().value;
    files::write_marker(&marker(&home2), &OWNER_TOKEN, "x").unwrap();
    let found = keychain_vault(&home2, &store).get_or_create(&OWNER_TOKEN).unwrap();
    assert_eq!(
        (found.value.as_str(), found.store),
        (token2.as_str(), StoreKind::Keychain)
    );
    assert!(!file(&home2).exists());
}

#[test]
fn a_keychain_and_a_file_that_disagree_are_an_error_not_a_guess() {
    let (_dir, home) = temp_home();
    let store = mock();
    off_vault(&home).get_or_create(&OWNER_TOKEN).unwrap();
    put_in_store(&store, &home, "another-token");
    for result in [
        keychain_vault(&home, &store).get_or_create(&OWNER_TOKEN).map(Some),
        keychain_vault(&home, &store).get(&OWNER_TOKEN),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, CredentialError::Conflict { .. }), "{err:?}");
        assert!(
            err.to_string().contains("secret-tool clear service hapi username"),
            "{err}"
        );
    }
    assert!(file(&home).exists(), "nothing is deleted");
    assert_eq!(in_store(&store, &home).as_deref(), Some("another-token"));
}

/// A Secret Service whose collection is locked: reads find `existing` (or
/// nothing), writes fail.
#[derive(Debug)]
struct LockedStore(Option<String>);

#[derive(Debug)]
struct LockedCred {
    specifiers: (String, String),
    existing: Option<String>,
}

impl CredentialStoreApi for LockedStore {
    fn vendor(&self) -> String {
        "locked test store".into()
    }
    fn id(&self) -> String {
        "locked".into()
    }
    fn build(&self, service: &str, user: &str, _: Option<&HashMap<&str, &str>>) -> keyring_core::Result<Entry> {
        Ok(Entry::new_with_credential(Arc::new(LockedCred {
            specifiers: (service.into(), user.into()),
            existing: self.0.clone(),
        })))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl CredentialApi for LockedCred {
    fn set_secret(&self, _: &[u8]) -> keyring_core::Result<()> {
        Err(Error::NoStorageAccess("collection is locked".into()))
    }
    fn get_secret(&self) -> keyring_core::Result<Vec<u8>> {
        self.existing.clone().map(String::into_bytes).ok_or(Error::NoEntry)
    }
    fn delete_credential(&self) -> keyring_core::Result<()> {
        Err(Error::NoStorageAccess("collection is locked".into()))
    }
    fn get_credential(&self) -> keyring_core::Result<Option<Arc<keyring_core::Credential>>> {
        Ok(None)
    }
    fn get_specifiers(&self) -> Option<(String, String)> {
        Some(self.specifiers.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn locked(existing: Option<&str>) -> Keychain {
    Keychain::from_store(Arc::new(LockedStore(existing.map(str::to_owned))))
}

#[test]
fn a_keychain_that_will_not_keep_the_secret_leaves_it_in_the_file() {
    let (_dir, home) = temp_home();
    let first = Vault::with_keychain(&home, locked(None))
        .get_or_create(&OWNER_TOKEN)
        .unwrap();
    assert_eq!(first.store, StoreKind::File);
    let notice = first.notice.clone().unwrap();
    assert!(
        notice.contains("reachable but did not keep") && notice.contains("locked"),
        "{notice}"
    );
    assert_eq!(mode(&file(&home)), 0o600);
    assert!(!marker(&home).exists(), "no marker when the keychain holds nothing");
    // Headless processes still find it; the next start tries the keychain again.
    assert_eq!(off_vault(&home).get(&OWNER_TOKEN).unwrap().unwrap().value, first.value);
    let again = Vault::with_keychain(&home, locked(None))
        .get_or_create(&OWNER_TOKEN)
        .unwrap();
    assert_eq!(again.value, first.value);
}

#[test]
fn a_keychain_that_fails_to_answer_counts_as_unreachable() {
    let (_dir, home) = temp_home();
    let store = mock();
    let fail_next = || {
        let entry = Entry::new_in_store(&store, SERVICE, &account(&home)).unwrap();
        let cred: &keyring_core::mock::Cred = entry.as_any().downcast_ref().unwrap();
        cred.set_error(Error::PlatformFailure("bus went away".into()));
    };
    std::fs::create_dir_all(&home).unwrap();
    fail_next();
    let found = keychain_vault(&home, &store).get_or_create(&OWNER_TOKEN).unwrap();
    assert_eq!(found.store, StoreKind::File);
    assert!(found.notice.unwrap().contains("failed to answer"));

    // Once the token is in the keychain, a failing keychain means refusal.
    keychain_vault(&home, &store).get_or_create(&OWNER_TOKEN).unwrap();
    fail_next();
    let err = keychain_vault(&home, &store).get_or_create(&OWNER_TOKEN).unwrap_err();
    assert!(err.to_string().contains("bus went away"), "{err}");
}

#[test]
fn each_home_has_its_own_secret_and_a_symlink_is_the_same_home() {
    let dir = tempfile::tempdir().unwrap();
    let store = mock();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let token_a = keychain_vault(&a, &store).get_or_create(&OWNER_TOKEN).unwrap().value;
    let token_b = keychain_vault(&b, &store).get_or_create(&OWNER_TOKEN).unwrap().value;
    assert_ne!(token_a, token_b);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    assert_eq!(
        keychain_vault(&link, &store).get_or_create(&OWNER_TOKEN).unwrap().value,
        token_a
    );
    assert!(account(&link).starts_with("owner-token:/") && account(&link).ends_with("/a"));
}

/// Runs `n` first starts at once; returns each one's result.
fn race(n: usize, vault: impl Fn(usize) -> Vault + Sync) -> Vec<Result<Credential, CredentialError>> {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, vault) = (&barrier, &vault);
                s.spawn(move || {
                    let v = vault(i);
                    barrier.wait();
                    v.get_or_create(&OWNER_TOKEN)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn concurrent_first_starts_agree_on_one_secret() {
    for round in 0..5 {
        let (_dir, home) = temp_home();
        let store = mock();
        let results = race(8, |_| keychain_vault(&home, &store));
        let values: std::collections::HashSet<_> = results.into_iter().map(|r| r.unwrap().value).collect();
        assert_eq!(values.len(), 1, "round {round}: keychain starts agree");

        let (_dir, home) = temp_home();
        let results = race(8, |_| off_vault(&home));
        let values: std::collections::HashSet<_> = results.into_iter().map(|r| r.unwrap().value).collect();
        assert_eq!(values.len(), 1, "round {round}: file starts agree");

        // App (keychain) and headless CLIs at once: whoever succeeds has the same
        // token; the others refuse because the token is already in the keychain.
        let (_dir, home) = temp_home();
        let store = mock();
        let results = race(8, |i| {
            if i % 2 == 0 {
                keychain_vault(&home, &store)
            } else {
                unreachable_vault(&home)
            }
        });
        let mut values = std::collections::HashSet::new();
        for result in results {
            match result {
                Ok(c) => {
                    values.insert(c.value);
                }
                Err(CredentialError::KeychainRequired { .. }) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(values.len(), 1, "round {round}: mixed starts agree");
        assert_eq!(in_store(&store, &home).as_ref(), values.iter().next());
        assert!(!file(&home).exists(), "the file (if any) moved into the keychain");
    }
}

#[test]
fn replace_puts_the_new_secret_where_the_old_one_lives() {
    let (_dir, home) = temp_home();
    let store = mock();
    keychain_vault(&home, &store).get_or_create(&OWNER_TOKEN).unwrap();
    let replaced = keychain_vault(&home, &store).replace(&OWNER_TOKEN, "rotated").unwrap();
    assert_eq!(
        (replaced.value.as_str(), replaced.store),
        ("rotated", StoreKind::Keychain)
    );
    assert_eq!(
        keychain_vault(&home, &store).get_or_create(&OWNER_TOKEN).unwrap().value,
        "rotated"
    );
    assert!(!file(&home).exists());

    let (_dir, home) = temp_home();
    off_vault(&home).get_or_create(&OWNER_TOKEN).unwrap();
    let replaced = off_vault(&home).replace(&OWNER_TOKEN, "rotated").unwrap();
    assert_eq!(replaced.store, StoreKind::File);
    assert_eq!(std::fs::read_to_string(file(&home)).unwrap(), "rotated");
    assert_eq!(mode(&file(&home)), 0o600);

    // A keychain holding the old value that will not take the new one: an error,
    // never a second copy in the file.
    let (_dir, home) = temp_home();
    let old = off_vault(&home).get_or_create(&OWNER_TOKEN).unwrap().value;
    std::fs::remove_file(file(&home)).unwrap();
    files::write_marker(&marker(&home), &OWNER_TOKEN, "x").unwrap();
    let vault = Vault::with_keychain(&home, locked(Some(&old)));
    let err = vault.replace(&OWNER_TOKEN, "rotated").unwrap_err();
    assert!(
        matches!(err, CredentialError::Keychain { what: "store", .. }),
        "{err:?}"
    );
    assert!(!file(&home).exists() && marker(&home).exists());
    assert_eq!(vault.get(&OWNER_TOKEN).unwrap().unwrap().value, old);
}

#[test]
fn other_secrets_share_the_store_under_their_own_names() {
    let (_dir, home) = temp_home();
    let store = mock();
    const OTHER: Secret = Secret {
        name: "relay-key",
        file: "relay.key",
    };
    let vault = keychain_vault(&home, &store);
    let owner = vault.get_or_create(&OWNER_TOKEN).unwrap().value;
    let other = vault.get_or_create(&OTHER).unwrap().value;
    assert_ne!(owner, other);
    assert!(home.join("relay.key.keychain").exists());
    assert_eq!(vault.get(&OTHER).unwrap().unwrap().value, other);
}

#[test]
fn an_empty_file_is_an_error_and_a_missing_home_is_no_secret() {
    let (_dir, home) = temp_home();
    assert_eq!(off_vault(&home).get(&OWNER_TOKEN).unwrap(), None);
    assert!(!home.exists(), "a read creates nothing");
    std::fs::create_dir_all(&home).unwrap();
    assert_eq!(keychain_vault(&home, &mock()).get(&OWNER_TOKEN).unwrap(), None);
    std::fs::write(file(&home), "\n").unwrap();
    let err = off_vault(&home).get_or_create(&OWNER_TOKEN).unwrap_err();
    assert!(matches!(err, CredentialError::EmptyFile { .. }), "{err:?}");
    assert!(err.to_string().contains("delete it"), "{err}");
}

#[test]
fn the_mode_comes_from_hapi_keychain() {
    assert_eq!(KeychainMode::parse(None).unwrap(), KeychainMode::Auto);
    assert_eq!(KeychainMode::parse(Some("")).unwrap(), KeychainMode::Auto);
    assert_eq!(KeychainMode::parse(Some("auto")).unwrap(), KeychainMode::Auto);
    assert_eq!(KeychainMode::parse(Some("off")).unwrap(), KeychainMode::Off);
    let err = KeychainMode::parse(Some("no")).unwrap_err();
    assert!(err.to_string().contains("HAPI_KEYCHAIN=\"no\" is invalid"), "{err}");
    assert!(off_vault(Path::new("/x")).keychain_off());
    assert_eq!(off_vault(Path::new("/x")).keychain_status(), Err("HAPI_KEYCHAIN=off"));
}
