//! `hapi runbook [NAME]`: the runbooks of `docs/runbooks/`, built into the
//! binary, so `hapi doctor`'s "read:" hints work on a machine that has only the
//! binary (a `.deb`, a server).
use anyhow::{Result, bail};
use clap::Args;

/// Every runbook: its name (the file name without `.md`) and its text.
const RUNBOOKS: &[(&str, &str)] = &[
    ("README", include_str!("../../../docs/runbooks/README.md")),
    (
        "tunnel-or-relay-down",
        include_str!("../../../docs/runbooks/tunnel-or-relay-down.md"),
    ),
    (
        "auth-failures-or-lost-phone",
        include_str!("../../../docs/runbooks/auth-failures-or-lost-phone.md"),
    ),
    (
        "database-corruption-and-restore",
        include_str!("../../../docs/runbooks/database-corruption-and-restore.md"),
    ),
    (
        "runner-wont-start",
        include_str!("../../../docs/runbooks/runner-wont-start.md"),
    ),
    (
        "sessions-not-appearing",
        include_str!("../../../docs/runbooks/sessions-not-appearing.md"),
    ),
    (
        "approvals-not-arriving",
        include_str!("../../../docs/runbooks/approvals-not-arriving.md"),
    ),
];

#[derive(Args)]
pub struct RunbookArgs {
    /// The runbook (e.g. `tunnel-or-relay-down`, or the path `hapi doctor`
    /// prints); without one, the list.
    name: Option<String>,
}

/// The name `hapi runbook` takes for a runbook's path (`docs/runbooks/x.md`).
pub(crate) fn name_of(path: &str) -> &str {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.strip_suffix(".md").unwrap_or(file)
}

fn find(name: &str) -> Option<&'static str> {
    let name = name_of(name.trim());
    RUNBOOKS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name) || (name.eq_ignore_ascii_case("index") && *n == "README"))
        .map(|(_, text)| *text)
}

fn title(text: &str) -> &str {
    text.lines().find_map(|l| l.strip_prefix("# ")).unwrap_or_default()
}

pub fn run(args: RunbookArgs) -> Result<i32> {
    match args.name {
        None => {
            println!("Runbooks (`hapi runbook NAME` prints one; start with `hapi doctor`):");
            for (name, text) in RUNBOOKS.iter().filter(|(n, _)| *n != "README") {
                println!("  {name:<33} {}", title(text));
            }
            Ok(0)
        }
        Some(name) => match find(&name) {
            Some(text) => {
                print!("{text}");
                Ok(0)
            }
            None => {
                let names: Vec<&str> = RUNBOOKS.iter().map(|(n, _)| *n).collect();
                bail!("no runbook `{name}`; there are: {}", names.join(", "))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runbook added to docs/runbooks/ must be built in too.
    #[test]
    fn every_runbook_file_is_built_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/runbooks");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".md"))
            .map(|f| name_of(&f).to_owned())
            .collect();
        files.sort();
        let mut built_in: Vec<String> = RUNBOOKS.iter().map(|(n, _)| (*n).to_owned()).collect();
        built_in.sort();
        assert_eq!(files, built_in);
    }

    #[test]
    fn a_runbook_is_found_by_name_or_by_the_path_doctor_prints() {
        let by_path = find(crate::doctor::runbook::TUNNEL).unwrap();
        assert_eq!(find("tunnel-or-relay-down"), Some(by_path));
        assert!(title(by_path).starts_with("Tunnel or relay down"));
        assert_eq!(find("index"), find("README"));
        assert_eq!(find("nonsense"), None);
    }
}
