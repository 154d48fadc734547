//! `hapi auth rotate`: replace the owner token of `$HAPI_HOME` with a new one,
//! where it is kept (the OS keychain, else `owner.token`).
//!
//! The hub reads the owner token once, at start, so a rotation cannot reach a
//! running hub: the command refuses while one runs, naming its PID. It holds
//! `hub.lock` during the rotation, so no hub can start half-way through.
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use hapi_credentials::{OWNER_TOKEN, StoreKind, Vault};
use hapi_hub::HubConfig;
use hapi_runner::{LockOutcome, RunnerLock};

/// Where rotations are recorded, one JSON line each, in `$HAPI_HOME/logs/`.
pub const AUDIT_LOG: &str = "audit.log";

/// Runs `hapi auth rotate`; returns the exit code.
pub fn rotate() -> Result<i32> {
    crate::init_logging("warn");
    let config = HubConfig::from_env().context("invalid configuration")?;
    let home = config.home.clone();
    hapi_runner::create_home(&home)?;
    let lock_file = home.join(crate::hub::HUB_LOCK_FILE);
    let lock = match RunnerLock::try_acquire_file(&lock_file)? {
        LockOutcome::Acquired(lock) => lock,
        LockOutcome::Held(holder) => {
            let at = running_hub_url(&home, holder.pid)
                .map(|url| format!(" at {url}"))
                .unwrap_or_default();
            eprintln!(
                "A hub is running for HAPI_HOME={} (PID {}{at}). It keeps the owner token it started with, so a \
                 new token would not reach it. Stop the hub (`hapi hub` with Ctrl-C, or quit HAPI Desktop) first, \
                 then run `hapi auth rotate` again. Nothing was changed.",
                home.display(),
                holder.pid
            );
            return Ok(1);
        }
    };
    let token = hapi_credentials::new_secret();
    let replaced = Vault::open(&home).and_then(|vault| vault.replace(&OWNER_TOKEN, &token));
    if let Ok(credential) = &replaced {
        // Still holding the hub lock: no hub writes meanwhile.
        record_in_audit_table(&config, credential.store);
    }
    lock.release();
    let credential =
        replaced.with_context(|| format!("cannot rotate the owner token of HAPI_HOME={}", home.display()))?;
    let kept_in = match credential.store {
        StoreKind::Keychain => "the OS keychain".to_owned(),
        StoreKind::File => home.join(OWNER_TOKEN.file).display().to_string(),
    };
    record(&home, credential.store);
    eprintln!(
        "Owner token rotated for HAPI_HOME={}; the new token is kept in {kept_in}. The old one no longer opens \
         the hub once it starts again: sign in again with the new token (browsers, phones, scripts). Sessions keep \
         running (they use their own tokens); the runner uses the new token when it reconnects.",
        home.display()
    );
    if let Some(notice) = &credential.notice {
        eprintln!("hapi: {notice}");
    }
    if config.owner_token.is_some() {
        eprintln!(
            "hapi: warning: CLI_API_TOKEN is set in this environment; the hub and CLI commands started with it use \
             that value, not the stored token. Update or unset it."
        );
    }
    println!("{token}");
    Ok(0)
}

/// The URL in `hub.json`, if `pid` wrote it.
fn running_hub_url(home: &Path, pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(home.join(hapi_protocol::HUB_STATE_FILE)).ok()?;
    let state: hapi_protocol::HubStateFile = serde_json::from_str(&text).ok()?;
    (state.pid == pid).then_some(state.url)
}

/// Records the rotation in the hub's audit table (`hapi audit` and the UI's
/// audit view show it), written directly: the hub is stopped and we hold its
/// lock. A home without a database yet has nothing to record it in.
fn record_in_audit_table(config: &hapi_hub::HubConfig, store: StoreKind) {
    let path = config.db_path();
    if !path.exists() {
        return;
    }
    let kept = match store {
        StoreKind::Keychain => "kept in the OS keychain",
        StoreKind::File => "kept in the 0600 token file",
    };
    let written = (|| -> hapi_store::Result<()> {
        let db = hapi_store::Store::open(&path, config.durability)?;
        let mut conn = db.writer()?;
        let tx = conn.transaction()?;
        let mut entry = hapi_protocol::AuditEntry::new(hapi_protocol::AuditKind::Admin);
        entry.actor = Some("owner".into());
        entry.channel = Some(hapi_protocol::DecisionChannel::Cli);
        entry.action = Some("owner_token_rotated".into());
        entry.summary = Some(format!("owner token rotated ({kept})"));
        hapi_store::append_audit(&tx, entry)?;
        tx.commit()?;
        Ok(())
    })();
    if let Err(e) = written {
        eprintln!("hapi: warning: the rotation could not be recorded in the audit log: {e}");
    }
}

/// Records the rotation: a log line, and a JSON line in `logs/audit.log`.
fn record(home: &Path, store: StoreKind) {
    let store = match store {
        StoreKind::Keychain => "keychain",
        StoreKind::File => "file",
    };
    let at = hapi_runner::now_rfc3339();
    tracing::info!(target: "hapi::audit", event = "owner_token_rotated", store, %at, "owner token rotated");
    let line = serde_json::json!({
        "at": at,
        "event": "owner_token_rotated",
        "store": store,
        "pid": std::process::id(),
        "user": std::env::var("USER").unwrap_or_default(),
    });
    let logs = hapi_runner::logs_dir(home);
    let written = std::fs::create_dir_all(&logs).and_then(|()| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(AUDIT_LOG))?;
        writeln!(file, "{line}")
    });
    if let Err(e) = written {
        eprintln!(
            "hapi: warning: the rotation could not be recorded in {}: {e}",
            logs.join(AUDIT_LOG).display()
        );
    }
}
