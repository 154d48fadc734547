//! `GET`/`PUT /api/policy` (owner only): the approval policy's text and rules.
//! A new text is validated first; only a valid one is written (temporary
//! file, fsync, rename) and put in effect, and the change is audited.
use std::io::Write as _;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hapi_protocol::{AuditEntry, AuditKind, ErrorCode, PolicyDocument, SetPolicy};

use crate::AppState;
use crate::error::{ApiError, ApiJson};
use crate::policy::{POLICY_FILE, Policy, home_dir};

fn document(state: &AppState, policy: &Policy) -> PolicyDocument {
    PolicyDocument {
        path: state.config().home.join(POLICY_FILE).display().to_string(),
        text: policy.text().to_owned(),
        rules: policy.summary(),
        problem: None,
    }
}

pub(super) async fn get(State(state): State<AppState>) -> Json<PolicyDocument> {
    let in_effect = state.policy_in_effect();
    let mut doc = document(&state, &in_effect.policy);
    if let Some(text) = in_effect.file_text {
        doc.text = text;
    }
    doc.problem = in_effect.problem;
    Json(doc)
}

pub(super) async fn put(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SetPolicy>,
) -> Result<Json<PolicyDocument>, ApiError> {
    let policy = Policy::parse(&body.text, home_dir().as_deref())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidPolicy, e.to_string()))?;
    let _one_at_a_time = state.policy_update().lock().await;
    let path = state.config().home.join(POLICY_FILE);
    let text = body.text.clone();
    tokio::task::spawn_blocking(move || write_atomically(&path, &text))
        .await
        .map_err(|e| ApiError::internal(format!("policy write task failed: {e}")))?
        .map_err(|e| ApiError::internal(format!("cannot write the policy file: {e}")))?;
    let rules = policy.summary().len();
    let document = document(&state, &policy);
    state.set_policy(policy);
    tracing::info!(rules, "approval policy replaced");
    state
        .writer()
        .write(move |tx| {
            hapi_store::append_audit(
                tx,
                AuditEntry {
                    actor: Some("owner".into()),
                    action: Some("policy_updated".into()),
                    summary: Some(format!("{rules} rule{}", if rules == 1 { "" } else { "s" })),
                    ..AuditEntry::new(AuditKind::Admin)
                },
            )?;
            Ok(((), Vec::new()))
        })
        .await?;
    Ok(Json(document))
}

/// Writes `text` to a temporary file beside `path`, syncs it and renames it
/// over `path`, so a reader (or a crash) sees the old file or the new one.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("toml.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            // The rename itself reaches the disk with the directory.
            std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
