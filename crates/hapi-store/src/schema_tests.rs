//! Upgrading a database written by an older HAPI.
use rusqlite::{Connection, params};

use super::{MIGRATIONS, SCHEMA_VERSION, migrate};

/// A database as HAPI with schema `version` left it.
fn database_at(version: usize) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("hapi.db")).unwrap();
    for sql in &MIGRATIONS[..version] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", version as i64).unwrap();
    (dir, conn)
}

#[test]
fn v5_usage_is_folded_into_the_v6_aggregate_as_the_unknown_model() {
    let (dir, mut conn) = database_at(5);
    for id in ["with-usage", "without"] {
        conn.execute(
            "INSERT INTO sessions (id, agent, cwd, state, token_hash, created_at, updated_at)
             VALUES (?1, 'claude', '/tmp', 'idle', 'h', 1, 1)",
            [id],
        )
        .unwrap();
    }
    // v5 usage updates: per-turn tokens, and the process's running cost.
    let rows = [
        (
            1,
            r#"{"kind":"usage_update","usage":{"input_tokens":200,"output_tokens":40,"cost_usd":0.0016}}"#,
        ),
        (2, r#"{"kind":"agent_message_chunk","text":"hi"}"#),
        (
            3,
            r#"{"kind":"usage_update","usage":{"input_tokens":100,"output_tokens":20,"cost_usd":0.0024}}"#,
        ),
    ];
    for (seq, body) in rows {
        conn.execute(
            "INSERT INTO events (kind, session_id, session_seq, client_seq, body, created_at)
             VALUES ('message', 'with-usage', ?1, ?1, ?2, 5)",
            params![seq, body],
        )
        .unwrap();
    }

    migrate(&mut conn).unwrap();

    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 6);
    drop(conn);
    let store = crate::Store::open(dir.path().join("hapi.db"), crate::Durability::Normal).unwrap();
    let usage = store.read(|c| crate::session_usage(c, "with-usage")).unwrap();
    assert_eq!(usage.models.len(), 1);
    let m = &usage.models[0];
    assert_eq!(
        (m.model.as_str(), m.input_tokens, m.output_tokens, m.updates, m.cost_usd),
        ("unknown", 300, 60, 2, None)
    );
    assert_eq!(usage.totals.total_tokens, 360);
    assert_eq!((usage.budget, usage.budget_paused), (None, false));
    let session = store.read(|c| crate::session(c, "with-usage")).unwrap();
    assert_eq!(session.usage.total_tokens, 360);
    let none = store.read(|c| crate::session_usage(c, "without")).unwrap();
    assert!(none.models.is_empty());
    assert_eq!(none.totals.total_tokens, 0);
}
