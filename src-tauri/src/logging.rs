//! The app's log: `$HAPI_HOME/logs/app-YYYYMMDD-HHMMSS.log`, one file per start,
//! holding the embedded hub's and runner's lines too (they run in this process).
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// App logs kept; older ones are deleted at start.
const KEEP: usize = 10;

/// Opens a new log file and routes `tracing` to it (and to stderr, for a
/// terminal launch). Returns the file's path.
pub fn init(home: &Path) -> Result<PathBuf> {
    let dir = hapi_runner::logs_dir(home);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    prune(&dir);
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let mut path = dir.join(format!("app-{stamp}.log"));
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("app-{stamp}-{n}.log"));
        n += 1;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("HAPI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file)),
        )
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    Ok(path)
}

/// Deletes all but the newest [`KEEP`] - 1 app logs (the new one makes `KEEP`).
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut logs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("app-") && n.ends_with(".log"))
        })
        .collect();
    // The names embed the start time, so name order is age order.
    logs.sort();
    let excess = logs.len().saturating_sub(KEEP - 1);
    for old in &logs[..excess] {
        let _ = std::fs::remove_file(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest() {
        let dir = std::env::temp_dir().join(format!("hapi-desktop-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..15 {
            std::fs::write(dir.join(format!("app-20260101-0000{i:02}.log")), "x").unwrap();
        }
        std::fs::write(dir.join("runner-20250101-000000.log"), "x").unwrap();
        prune(&dir);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left.len(), KEEP, "{left:?}"); // 9 app logs + the runner's
        assert!(left.contains(&"runner-20250101-000000.log".to_owned()));
        assert!(left.contains(&"app-20260101-000014.log".to_owned()));
        assert!(!left.contains(&"app-20260101-000005.log".to_owned()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
