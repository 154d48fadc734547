//! `hapi audit [--session ID] [--since WHEN] [--limit N] [--json]`: the audit
//! log, newest first.
//!
//! Through the running hub's API (`GET /api/audit`, found like every other
//! command: `HAPI_HUB_URL` + `CLI_API_TOKEN`, else `$HAPI_HOME/hub.json` and
//! the owner token). With no hub running (no `hub.json`, or nothing answers
//! there), it reads `$HAPI_HOME/hapi.db` directly, read-only: the log is there
//! whether or not a hub runs.
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use clap::Args;
use hapi_hub::HubConfig;
use hapi_protocol::{AuditEntry, AuditKind, AuditList, ErrorResponse};

/// Largest page the API gives; longer listings are read page by page.
const PAGE: u32 = 1000;

#[derive(Args)]
pub struct AuditArgs {
    /// Only this session's entries.
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// Only entries since then: a date (2026-11-01, UTC), an RFC 3339 time,
    /// or a span back from now (90m, 24h, 7d, 2w).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// At most this many entries (newest first).
    #[arg(long, default_value_t = 50, value_name = "N")]
    limit: u32,
    /// Print the entries as a JSON array (the API's `AuditEntry` objects).
    #[arg(long)]
    json: bool,
}

/// Runs `hapi audit`; returns the exit code.
pub fn run(args: AuditArgs, runtime: &tokio::runtime::Runtime) -> Result<i32> {
    if args.limit == 0 {
        bail!("--limit must be at least 1");
    }
    let since = args.since.as_deref().map(|s| parse_since(s, Utc::now())).transpose()?;
    let home = HubConfig::from_env().context("invalid configuration")?.home;
    let entries = match hapi_runner::HubTarget::discover(&home) {
        Ok(target) => match runtime.block_on(from_hub(&target, &args, since)) {
            Ok(entries) => entries,
            Err(Fetch::Unreachable(why)) => {
                eprintln!(
                    "No hub answers at {} ({why}); reading the database directly.",
                    target.url
                );
                from_database(&home, &args, since)?
            }
            // A hub that answers but refuses is an error, not a reason to go around it.
            Err(Fetch::Refused(why)) => bail!("the hub refused to list the audit log: {why}"),
        },
        Err(_) => from_database(&home, &args, since)?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else if entries.is_empty() {
        println!("No audit entries.");
    } else {
        for entry in &entries {
            println!("{}", line(entry));
        }
    }
    Ok(0)
}

/// Why the hub did not give the log.
enum Fetch {
    /// Nothing answers at its address.
    Unreachable(String),
    /// It answered with an error.
    Refused(String),
}

async fn from_hub(
    target: &hapi_runner::HubTarget,
    args: &AuditArgs,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<AuditEntry>, Fetch> {
    let http = reqwest::Client::new();
    let mut entries: Vec<AuditEntry> = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let want = (args.limit as usize - entries.len()).min(PAGE as usize);
        let mut query: Vec<(&str, String)> = vec![("limit", want.to_string())];
        if let Some(session) = &args.session {
            query.push(("session_id", session.clone()));
        }
        if let Some(since) = since {
            query.push(("since", since.to_rfc3339_opts(SecondsFormat::Millis, true)));
        }
        if let Some(before) = before {
            query.push(("before", before.to_string()));
        }
        let response = http
            .get(format!("{}/api/audit", target.url))
            .bearer_auth(&target.token)
            .query(&query)
            .send()
            .await
            .map_err(|e| Fetch::Unreachable(e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let detail = match response.json::<ErrorResponse>().await {
                Ok(e) => e.error.message,
                Err(_) => status.to_string(),
            };
            return Err(Fetch::Refused(format!("{status}: {detail}")));
        }
        let page: AuditList = response
            .json()
            .await
            .map_err(|e| Fetch::Refused(format!("unexpected answer: {e}")))?;
        before = page.entries.last().map(|e| e.id);
        entries.extend(page.entries);
        if !page.has_more || entries.len() >= args.limit as usize || before.is_none() {
            return Ok(entries);
        }
    }
}

fn from_database(home: &Path, args: &AuditArgs, since: Option<DateTime<Utc>>) -> Result<Vec<AuditEntry>> {
    use hapi_store::rusqlite::{Connection, OpenFlags};
    let path = home.join("hapi.db");
    if !path.exists() {
        bail!(
            "no hub is running and there is no database at {} (start one with `hapi hub`)",
            path.display()
        );
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {} read-only", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > hapi_store::SCHEMA_VERSION {
        bail!(
            "{} was written by a newer hapi (schema {version}, this one knows {}); upgrade hapi",
            path.display(),
            hapi_store::SCHEMA_VERSION
        );
    }
    let has_audit: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit')",
        [],
        |r| r.get(0),
    )?;
    if !has_audit {
        return Ok(Vec::new());
    }
    let query = hapi_store::AuditQuery {
        session_id: args.session.clone(),
        since_ms: since.map(|t| t.timestamp_millis()),
        before_id: None,
        limit: args.limit,
    };
    Ok(hapi_store::list_audit(&conn, &query)
        .with_context(|| format!("cannot read the audit log in {}", path.display()))?
        .0)
}

/// `--since`: a date (UTC midnight), an RFC 3339 time, or a span back from `now`.
fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(t) {
        return Ok(time.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => 0,
    };
    match number.parse::<i64>() {
        Ok(n) if seconds > 0 && !number.is_empty() => Ok(now - chrono::Duration::seconds(n.saturating_mul(seconds))),
        _ => bail!("--since {text:?}: give a date (2026-11-01), an RFC 3339 time, or a span such as 24h, 7d, 90m, 2w"),
    }
}

/// One entry as a line for a person.
fn line(e: &AuditEntry) -> String {
    let at = DateTime::parse_from_rfc3339(&e.at)
        .map(|t| t.with_timezone(&Utc).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| e.at.clone());
    let session = e
        .session_id
        .as_deref()
        .map(|s| format!("  session {s}"))
        .unwrap_or_default();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let what = match e.kind {
        AuditKind::Decision => format!(
            "decision   {:<13} by {}{} after {} ms: {} {}",
            e.decision.map(|d| d.as_str()).unwrap_or("?"),
            opt(&e.actor),
            e.channel.map(|c| format!(" ({})", c.as_str())).unwrap_or_default(),
            e.latency_ms.unwrap_or(0),
            opt(&e.tool),
            opt(&e.summary),
        ),
        AuditKind::ToolCall => format!(
            "tool call  {:<13} {} {}",
            opt(&e.outcome),
            opt(&e.tool),
            opt(&e.summary)
        ),
        AuditKind::Admin => format!(
            "admin      {:<13} by {} {}",
            opt(&e.action),
            opt(&e.actor),
            opt(&e.summary)
        ),
    };
    format!("{at}  {}{session}", what.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_dates_times_and_spans() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| parse_since(s, now).unwrap().to_rfc3339_opts(SecondsFormat::Secs, true);
        assert_eq!(at("2026-11-01"), "2026-11-01T00:00:00Z");
        assert_eq!(at("2026-11-20T08:30:00+01:00"), "2026-11-20T07:30:00Z");
        assert_eq!(at("24h"), "2026-11-24T12:00:00Z");
        assert_eq!(at("7d"), "2026-11-18T12:00:00Z");
        assert_eq!(at("90m"), "2026-11-25T10:30:00Z");
        assert_eq!(at("2w"), "2026-11-11T12:00:00Z");
        for bad in ["yesterday", "h", "24", "-1d", "2026-13-01"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }
}
