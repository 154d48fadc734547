//! The files in `$HAPI_HOME`: the lock, 0600 secret files, and markers.
//!
//! Secret files and markers are written to a temporary file (mode 0600 from the
//! start) and renamed into place, so a reader never sees half a secret.
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::{CredentialError, LOCK_FILE, SERVICE, Secret};

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CredentialError {
    let path = path.to_path_buf();
    move |source| CredentialError::Io { what, path, source }
}

/// Creates `home` (mode 0700) if it does not exist and returns its canonical path.
pub(crate) fn ensure_home(home: &Path) -> Result<PathBuf, CredentialError> {
    if !home.is_dir() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(home).map_err(io("create", home))?;
    }
    home.canonicalize().map_err(io("resolve", home))
}

/// Holds `home/credentials.lock` exclusively until dropped.
pub(crate) struct HomeLock {
    _file: File,
}

/// Waits for the exclusive lock of `home` (another process may hold it for a
/// keychain round trip).
pub(crate) fn lock(home: &Path) -> Result<HomeLock, CredentialError> {
    let path = home.join(LOCK_FILE);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path).map_err(io("open", &path))?;
    file.lock().map_err(io("lock", &path))?;
    Ok(HomeLock { _file: file })
}

/// The secret in `path`, `None` if the file does not exist.
pub(crate) fn read_secret(path: &Path, secret: &Secret) -> Result<Option<String>, CredentialError> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
        Ok(_) => Err(CredentialError::EmptyFile {
            name: secret.name,
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", path)(e)),
    }
}

/// Writes `contents` to `path` with mode 0600, atomically.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), CredentialError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("secret");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("write", &tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(io("write", path))
}

/// Removes `path`; a file that is already gone is fine.
pub(crate) fn remove(path: &Path) -> Result<(), CredentialError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Writes the marker that says `secret` is in the keychain under `account`.
pub(crate) fn write_marker(path: &Path, secret: &Secret, account: &str) -> Result<(), CredentialError> {
    let text = format!(
        "The HAPI {name} of this HAPI_HOME is kept in the OS keychain, not in a file.\n\
         service: {SERVICE}\n\
         account: {account}\n\
         A process that cannot reach this keychain refuses to start rather than create a second \
         {name}; give it CLI_API_TOKEN instead. Delete this file only together with the keychain entry.\n",
        name = secret.name,
    );
    write_private(path, &text)
}
