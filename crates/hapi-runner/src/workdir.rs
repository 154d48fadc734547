//! Where a spawned session may run, and getting that directory ready.
//!
//! The runner only starts sessions inside its workspace roots
//! (`HAPI_WORKSPACE_ROOTS`, default `$HOME`). A requested directory is resolved
//! before it is compared: the part that exists is canonicalized (symlinks
//! followed, `..` applied by the kernel), and the missing rest, which cannot
//! contain symlinks, is applied lexically. So neither `..` nor a symlink can lead
//! out of the roots, and the session runs in the resolved path.
//!
//! Every failure is a [`RunnerError::Directory`] with a stable code and a message
//! that names the path and says the cause in plain words.
use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;

use hapi_protocol::ErrorCode;
use nix::errno::Errno;

use crate::error::{Result, RunnerError};

/// The variable listing the directories sessions may run in.
pub const WORKSPACE_ROOTS_ENV: &str = "HAPI_WORKSPACE_ROOTS";

/// `HAPI_WORKSPACE_ROOTS`: absolute paths separated by `:`; unset or empty means
/// the user's home directory (`$HOME`). A relative entry is an error naming the
/// variable.
pub fn workspace_roots_from_env() -> Result<Vec<PathBuf>> {
    match std::env::var(WORKSPACE_ROOTS_ENV) {
        Ok(value) if !value.trim().is_empty() => parse_roots(&value),
        _ => {
            let home = std::env::var("HOME").unwrap_or_default();
            if home.is_empty() || !Path::new(&home).is_absolute() {
                return Err(RunnerError::InvalidEnv {
                    var: "HOME",
                    value: home,
                    reason: format!(
                        "the default workspace root must be an absolute path; set {WORKSPACE_ROOTS_ENV} instead"
                    ),
                });
            }
            Ok(vec![PathBuf::from(home)])
        }
    }
}

fn parse_roots(value: &str) -> Result<Vec<PathBuf>> {
    let invalid = |reason: String| RunnerError::InvalidEnv {
        var: WORKSPACE_ROOTS_ENV,
        value: value.to_owned(),
        reason,
    };
    let mut roots = Vec::new();
    for part in value.split(':').map(str::trim).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(part);
        if !path.is_absolute() {
            return Err(invalid(format!(
                "`{part}` is not an absolute path (give absolute paths separated by `:`)"
            )));
        }
        roots.push(path);
    }
    if roots.is_empty() {
        return Err(invalid("no directory given".into()));
    }
    Ok(roots)
}

/// A requested path, resolved as far as it exists.
#[derive(Debug)]
struct Resolved {
    /// The canonical existing part plus the missing rest.
    path: PathBuf,
    /// The deepest part that exists (canonical).
    existing: PathBuf,
    /// Whether all of it exists.
    exists: bool,
    /// Why the whole path could not be looked at, if not simply "not found".
    blocked: Option<io::Error>,
}

fn resolve(dir: &Path) -> Resolved {
    let parts: Vec<Component> = dir.components().collect();
    let mut blocked = None;
    for end in (1..=parts.len()).rev() {
        let prefix: PathBuf = parts[..end].iter().collect();
        match prefix.canonicalize() {
            Ok(existing) => {
                let tail = &parts[end..];
                if tail.contains(&Component::ParentDir) {
                    // `missing/../x` may lead back into something that exists:
                    // apply the `..`s, then look again (no `..` is left).
                    let mut path = existing;
                    for part in tail {
                        match part {
                            Component::ParentDir => {
                                path.pop();
                            }
                            Component::Normal(name) => path.push(name),
                            _ => {}
                        }
                    }
                    return resolve(&path);
                }
                let mut path = existing.clone();
                for part in tail {
                    if let Component::Normal(name) = part {
                        path.push(name);
                    }
                }
                return Resolved {
                    path,
                    existing,
                    exists: end == parts.len(),
                    blocked,
                };
            }
            Err(e) => {
                if end == parts.len() && e.kind() != io::ErrorKind::NotFound {
                    blocked = Some(e);
                }
            }
        }
    }
    // Only a relative path gets here; callers check for absolute paths first.
    Resolved {
        path: dir.to_owned(),
        existing: PathBuf::from("/"),
        exists: false,
        blocked,
    }
}

/// A root as compared: canonical if it exists, else as given.
fn canonical_root(root: &Path) -> PathBuf {
    let resolved = resolve(root);
    resolved.path
}

/// The cause of a filesystem error, in words, for the errors a person can fix.
fn cause(errno: Errno) -> Option<&'static str> {
    Some(match errno {
        Errno::EACCES | Errno::EPERM => "permission denied (the runner's user may not access or write there)",
        Errno::ENOTDIR | Errno::EEXIST => "a file exists at that path, where a directory is needed",
        Errno::ENOSPC | Errno::EDQUOT => "disk full (no space left on the device)",
        Errno::EROFS => "read-only filesystem (nothing can be created there)",
        _ => return None,
    })
}

/// Maps an I/O error on `path` to `DirectoryUnusable` with its cause in words,
/// or to a plain spawn failure (`RunnerFailed`) for causes outside that list.
fn unusable(action: &str, path: &Path, error: &io::Error) -> RunnerError {
    let errno = error.raw_os_error().map(Errno::from_raw);
    match errno.and_then(cause) {
        Some(cause) => RunnerError::directory(
            ErrorCode::DirectoryUnusable,
            format!("{action} {}: {cause}", path.display()),
        ),
        None => RunnerError::Spawn(format!("{action} {}: {error}", path.display())),
    }
}

fn check_roots(requested: &Path, resolved: &Path, roots: &[PathBuf]) -> Result<()> {
    if roots.iter().any(|root| resolved.starts_with(canonical_root(root))) {
        return Ok(());
    }
    let list: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    let via = if resolved == requested {
        String::new()
    } else {
        format!(" (it resolves to {})", resolved.display())
    };
    Err(RunnerError::directory(
        ErrorCode::DirectoryOutsideRoots,
        format!(
            "{}{via} is outside this machine's workspace roots ({}); sessions may only run inside them \
             (set {WORKSPACE_ROOTS_ENV} for the runner to change them)",
            requested.display(),
            list.join(", ")
        ),
    ))
}

/// Checks that `dir` may be used for a session and makes it usable: inside the
/// roots, a directory the runner can enter, created (with its parents) if it is
/// missing and `create` is set. Returns the resolved path to run in.
pub(crate) fn prepare_directory(dir: &Path, create: bool, roots: &[PathBuf]) -> Result<PathBuf> {
    if !dir.is_absolute() {
        return Err(RunnerError::Spawn(format!("{} is not an absolute path", dir.display())));
    }
    let resolved = resolve(dir);
    check_roots(dir, &resolved.path, roots)?;
    if resolved.exists {
        if !resolved.path.is_dir() {
            return Err(RunnerError::directory(
                ErrorCode::DirectoryUnusable,
                format!(
                    "cannot use {}: a file exists at that path, where a directory is needed",
                    dir.display()
                ),
            ));
        }
        // Listing it needs read and search permission, as a session does.
        if let Err(error) = std::fs::read_dir(&resolved.path) {
            return Err(unusable("cannot use", dir, &error));
        }
        return Ok(resolved.path);
    }
    if !resolved.existing.is_dir() {
        return Err(RunnerError::directory(
            ErrorCode::DirectoryUnusable,
            format!(
                "cannot use {}: a file exists at {}, where a directory is needed",
                dir.display(),
                resolved.existing.display()
            ),
        ));
    }
    if let Some(error) = &resolved.blocked {
        return Err(unusable("cannot use", dir, error));
    }
    if !create {
        return Err(RunnerError::directory(
            ErrorCode::DirectoryMissing,
            format!("directory {} does not exist", dir.display()),
        ));
    }
    std::fs::create_dir_all(&resolved.path).map_err(|e| unusable("cannot create", dir, &e))?;
    tracing::info!(dir = %resolved.path.display(), "created the session directory");
    Ok(resolved.path)
}

async fn git(dir: Option<&Path>, args: &[&str]) -> Result<std::process::Output> {
    let mut cmd = tokio::process::Command::new("git");
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.output()
        .await
        .map_err(|e| RunnerError::directory(ErrorCode::WorktreeFailed, format!("cannot run git: {e}")))
}

fn worktree_failed(message: String) -> RunnerError {
    RunnerError::directory(ErrorCode::WorktreeFailed, message)
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

/// Where the worktree for `branch` of the repository whose top level is `top`
/// goes: `<top>-worktrees/<branch>`, next to the repository.
pub fn worktree_path(top: &Path, branch: &str) -> Option<PathBuf> {
    let name = top.file_name()?.to_str()?;
    Some(top.with_file_name(format!("{name}-worktrees")).join(branch))
}

/// Creates a git worktree of the repository containing `dir` on a new branch
/// `branch` (`git worktree add -b`), at [`worktree_path`], and returns the
/// directory to run in: the worktree's counterpart of `dir`.
pub(crate) async fn create_worktree(dir: &Path, branch: &str, roots: &[PathBuf]) -> Result<PathBuf> {
    if branch.is_empty() || branch.starts_with('-') {
        return Err(worktree_failed(format!("`{branch}` is not a valid branch name")));
    }
    let out = git(None, &["check-ref-format", "--branch", branch]).await?;
    if !out.status.success() {
        return Err(worktree_failed(format!(
            "`{branch}` is not a valid branch name: {}",
            stderr_of(&out)
        )));
    }
    let out = git(Some(dir), &["rev-parse", "--show-toplevel", "--show-prefix"]).await?;
    if !out.status.success() {
        return Err(worktree_failed(format!(
            "{} is not inside a git repository: {}",
            dir.display(),
            stderr_of(&out)
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = stdout.lines();
    let top = PathBuf::from(lines.next().unwrap_or_default().trim());
    let prefix = lines.next().unwrap_or_default().trim().to_owned();
    let path = worktree_path(&top, branch)
        .ok_or_else(|| worktree_failed(format!("cannot place a worktree next to {}", top.display())))?;
    let resolved = resolve(&path);
    check_roots(&path, &resolved.path, roots)?;
    if resolved.exists {
        return Err(worktree_failed(format!(
            "cannot create the worktree for branch `{branch}`: {} already exists",
            path.display()
        )));
    }
    let mut args = vec!["worktree", "add", "-b", branch, "--"];
    let path_str = path.to_string_lossy().into_owned();
    args.push(&path_str);
    let out = git(Some(&top), &args).await?;
    if !out.status.success() {
        return Err(worktree_failed(format!(
            "git worktree add for branch `{branch}` at {} failed: {}",
            path.display(),
            stderr_of(&out)
        )));
    }
    tracing::info!(branch, worktree = %path.display(), "created a git worktree");
    Ok(path.join(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: &RunnerError) -> ErrorCode {
        e.code()
    }

    #[test]
    fn roots_must_be_absolute() {
        assert_eq!(
            parse_roots("/a:/b").unwrap(),
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(parse_roots("/a::").unwrap(), vec![PathBuf::from("/a")]);
        let err = parse_roots("/a:relative").unwrap_err().to_string();
        assert!(err.contains(WORKSPACE_ROOTS_ENV) && err.contains("relative"), "{err}");
        assert!(parse_roots(" : ").is_err());
    }

    #[test]
    fn causes_are_in_words() {
        let msg = |errno: Errno| unusable("cannot create", Path::new("/x/y"), &io::Error::from(errno)).to_string();
        assert!(msg(Errno::EACCES).contains("/x/y: permission denied"));
        assert!(msg(Errno::ENOTDIR).contains("a file exists at that path"));
        assert!(msg(Errno::ENOSPC).contains("disk full"));
        assert!(msg(Errno::EROFS).contains("read-only filesystem"));
        for errno in [Errno::EACCES, Errno::ENOTDIR, Errno::ENOSPC, Errno::EROFS] {
            let e = unusable("cannot create", Path::new("/x"), &io::Error::from(errno));
            assert_eq!(code(&e), ErrorCode::DirectoryUnusable);
        }
        let other = unusable("cannot create", Path::new("/x"), &io::Error::from(Errno::ENAMETOOLONG));
        assert_eq!(code(&other), ErrorCode::RunnerFailed);
    }

    #[test]
    fn directories_are_checked_against_the_roots() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("ok")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::fs::write(root.join("file"), "x").unwrap();
        let roots = vec![root.clone()];

        assert_eq!(
            prepare_directory(&root.join("ok"), false, &roots).unwrap(),
            root.join("ok").canonicalize().unwrap()
        );
        let missing = prepare_directory(&root.join("new/deeper"), false, &roots).unwrap_err();
        assert_eq!(code(&missing), ErrorCode::DirectoryMissing);
        assert!(missing.to_string().contains("new/deeper"), "{missing}");
        let made = prepare_directory(&root.join("new/deeper"), true, &roots).unwrap();
        assert!(made.is_dir());
        // `..` after a missing part may lead back to something that exists.
        assert_eq!(
            prepare_directory(&root.join("nothing/../ok"), false, &roots).unwrap(),
            root.join("ok").canonicalize().unwrap()
        );
        assert!(!root.join("nothing").exists());

        for escape in [
            root.join("../outside"),
            root.join("ok/../../outside/x"),
            root.join("link"),
            root.join("link/sub"),
            root.join("missing/../../outside"),
        ] {
            let e = prepare_directory(&escape, true, &roots).unwrap_err();
            assert_eq!(code(&e), ErrorCode::DirectoryOutsideRoots, "{}: {e}", escape.display());
            assert!(e.to_string().contains(&root.display().to_string()), "{e}");
        }
        assert!(!outside.join("x").exists() && !outside.join("sub").exists());

        for file in [root.join("file"), root.join("file/sub")] {
            let e = prepare_directory(&file, true, &roots).unwrap_err();
            assert_eq!(code(&e), ErrorCode::DirectoryUnusable, "{e}");
            assert!(e.to_string().contains("a file exists"), "{e}");
        }
    }
}
