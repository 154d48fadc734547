//! A small tmpfs a test can fill, to see what a full disk does.
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a given size mounted at a directory, unmounted when dropped.
/// Mounting needs root (CAP_SYS_ADMIN), as on CI.
#[derive(Debug)]
pub struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `"8m"`) at `at`,
    /// creating the directory; `Err` says why it could not.
    pub fn mount(at: &Path, size: &str) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(at).map_err(|e| format!("cannot create {}: {e}", at.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mounting a tmpfs needs root (CAP_SYS_ADMIN): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk { at: at.to_owned() })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.at
    }

    /// Fills the disk to its last byte; returns the file that does it
    /// (removing it gives the space back).
    pub fn fill(&self) -> PathBuf {
        let path = self.at.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let buf = vec![0u8; chunk];
            loop {
                match file.write(&buf) {
                    Ok(n) if n == buf.len() => continue,
                    Ok(_) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling {}: {e}", path.display()),
                }
            }
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: a process under test may close its last file a moment later.
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}
