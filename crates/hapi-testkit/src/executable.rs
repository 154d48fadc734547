//! Putting executables in place for a test without "Text file busy".
//!
//! A file written by this process is open for writing while it is written. If
//! another test thread forks meanwhile, its child holds that descriptor until
//! it execs, and for that moment executing the file fails with `ETXTBSY`
//! (seen in CI when tests run in parallel). So the bytes are written by a
//! child process (`install`), whose descriptors no test thread inherits.
use std::path::Path;
use std::process::Command;

/// Copies the executable `src` to `dst` (mode 0755), creating `dst`'s folder.
pub fn install_executable(src: &Path, dst: &Path) {
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    }
    let status = Command::new("install")
        .args(["-m", "0755"])
        .arg(src)
        .arg(dst)
        .status()
        .unwrap_or_else(|e| panic!("cannot run install: {e}"));
    assert!(
        status.success(),
        "install {} {} failed: {status}",
        src.display(),
        dst.display()
    );
}

/// Writes `text` (a script) as the executable `dst`.
pub fn write_executable(dst: &Path, text: &str) {
    // The draft is never executed, so its write descriptor does not matter.
    let draft = dst.with_extension("draft");
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    }
    std::fs::write(&draft, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", draft.display()));
    install_executable(&draft, dst);
    std::fs::remove_file(&draft).ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installed_script_runs_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("bin/hello");
        write_executable(&script, "#!/bin/sh\necho hello \"$1\"\n");
        let out = Command::new(&script).arg("there").output().unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "hello there\n");
        let copy = dir.path().join("bin/hello2");
        install_executable(&script, &copy);
        assert!(Command::new(&copy).status().unwrap().success());
        assert!(!dir.path().join("bin/hello.draft").exists());
    }
}
