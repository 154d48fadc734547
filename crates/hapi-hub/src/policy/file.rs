//! The policy in effect and the file it comes from. A hand edit of
//! `policy.toml` takes effect at the next request that consults the policy,
//! without a restart: each consultation compares the file's stamp (size,
//! modification time, inode) with the one it was read at, which costs one
//! `stat`.
//!
//! An edit that does not parse is never half-applied and never falls back to
//! the previous rules: those may allow something the edit meant to take away.
//! Until the file is fixed no rule applies, so every request is asked, and the
//! problem is reported (log, `GET /api/policy`, `hapi doctor`).
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use super::{POLICY_FILE, Policy, home_dir};

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode: meta.ino(),
    })
}

/// What one consultation sees.
#[derive(Debug, Clone)]
pub struct PolicyInEffect {
    /// The rules that apply (none while the file does not parse).
    pub policy: Arc<Policy>,
    /// Why the file on disk is not in effect, if it is not.
    pub problem: Option<String>,
    /// The file's text as it is on disk, when it differs from the policy's
    /// (a file that does not parse), so it can be fixed in the editor.
    pub file_text: Option<String>,
}

struct Loaded {
    stamp: Option<Stamp>,
    in_effect: PolicyInEffect,
}

/// How a consultation found the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// Unchanged since it was last read.
    Unchanged,
    /// Edited, and the new rules apply (their count).
    Applied(usize),
    /// Edited, but it does not parse: the reason (no rule applies).
    Rejected(String),
}

/// `$HAPI_HOME/policy.toml`, followed.
pub struct PolicyFile {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

impl PolicyFile {
    /// Reads the file at start-up; one that does not parse stops the hub with
    /// the line and the reason (a hub should not start with rules it cannot
    /// read).
    pub fn open(hapi_home: &Path) -> Result<PolicyFile, String> {
        let path = hapi_home.join(POLICY_FILE);
        let stamp = stamp(&path);
        let policy = Policy::load(hapi_home)?;
        Ok(PolicyFile {
            path,
            loaded: RwLock::new(Loaded {
                stamp,
                in_effect: PolicyInEffect {
                    policy: Arc::new(policy),
                    problem: None,
                    file_text: None,
                },
            }),
        })
    }

    /// The policy to decide with, re-read first if the file changed since.
    pub fn current(&self) -> (PolicyInEffect, Reload) {
        let now = stamp(&self.path);
        {
            let loaded = self.loaded.read().expect("policy lock poisoned");
            if loaded.stamp == now {
                return (loaded.in_effect.clone(), Reload::Unchanged);
            }
        }
        let mut loaded = self.loaded.write().expect("policy lock poisoned");
        // Another consultation may have re-read it meanwhile.
        let now = stamp(&self.path);
        if loaded.stamp == now {
            return (loaded.in_effect.clone(), Reload::Unchanged);
        }
        let (in_effect, reload) = match self.read(now.is_some()) {
            Ok(policy) => {
                let rules = policy.summary().len();
                let in_effect = PolicyInEffect {
                    policy: Arc::new(policy),
                    problem: None,
                    file_text: None,
                };
                (in_effect, Reload::Applied(rules))
            }
            Err((problem, file_text)) => {
                let in_effect = PolicyInEffect {
                    policy: Arc::new(Policy::default()),
                    problem: Some(problem.clone()),
                    file_text,
                };
                (in_effect, Reload::Rejected(problem))
            }
        };
        *loaded = Loaded {
            stamp: now,
            in_effect: in_effect.clone(),
        };
        (in_effect, reload)
    }

    /// The file's policy (no file: no rules), or why it cannot be used and
    /// its text if it could be read.
    fn read(&self, present: bool) -> Result<Policy, (String, Option<String>)> {
        if !present {
            return Ok(Policy::default());
        }
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| (format!("cannot read {}: {e}", self.path.display()), None))?;
        Policy::parse(&text, home_dir().as_deref()).map_err(|e| (format!("{}: {e}", self.path.display()), Some(text)))
    }

    /// Puts `policy` in effect after it was written to the file (`PUT
    /// /api/policy`), so that write is not taken for a hand edit.
    pub fn replaced(&self, policy: Policy) {
        *self.loaded.write().expect("policy lock poisoned") = Loaded {
            stamp: stamp(&self.path),
            in_effect: PolicyInEffect {
                policy: Arc::new(policy),
                problem: None,
                file_text: None,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW_LS: &str = "[[rule]]\nname = \"ls\"\naction = \"allow\"\ntool = \"Bash\"\ncommand = \"ls\"\n";

    #[test]
    fn a_hand_edit_applies_and_a_broken_one_asks_everything() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join(POLICY_FILE);
        let file = PolicyFile::open(home.path()).unwrap();
        let (first, reload) = file.current();
        assert_eq!(reload, Reload::Unchanged);
        assert!(first.policy.summary().is_empty(), "no file: no rules");

        std::fs::write(&path, ALLOW_LS).unwrap();
        let (edited, reload) = file.current();
        assert_eq!(reload, Reload::Applied(1));
        assert_eq!(edited.policy.summary()[0].name, "ls");
        assert_eq!(file.current().1, Reload::Unchanged, "read once per change");

        std::fs::write(&path, "[[rule]]\nname = \"ls\"\naction = \"perhaps\"\n").unwrap();
        let (broken, reload) = file.current();
        let Reload::Rejected(problem) = reload else {
            panic!("{reload:?}")
        };
        assert!(problem.contains("line 3"), "{problem}");
        assert!(broken.policy.summary().is_empty(), "the old allow rule is gone too");
        assert_eq!(broken.problem.as_deref(), Some(problem.as_str()));
        assert!(broken.file_text.unwrap().contains("perhaps"));

        std::fs::remove_file(&path).unwrap();
        let (removed, reload) = file.current();
        assert_eq!(reload, Reload::Applied(0));
        assert!(removed.problem.is_none());
    }

    #[test]
    fn a_write_through_the_api_is_not_taken_for_an_edit() {
        let home = tempfile::tempdir().unwrap();
        let file = PolicyFile::open(home.path()).unwrap();
        std::fs::write(home.path().join(POLICY_FILE), ALLOW_LS).unwrap();
        file.replaced(Policy::parse(ALLOW_LS, None).unwrap());
        let (now, reload) = file.current();
        assert_eq!(reload, Reload::Unchanged);
        assert_eq!(now.policy.summary().len(), 1);
    }

    #[test]
    fn a_broken_file_at_start_stops_the_hub() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(POLICY_FILE), "[[rule]\n").unwrap();
        let err = PolicyFile::open(home.path()).err().unwrap();
        assert!(err.contains("policy.toml") && err.contains("line 1"), "{err}");
    }
}
