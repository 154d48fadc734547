//! The checks that ask the running hub: is it there (`hub.lock`, `hub.json`,
//! `/health`), does it accept the owner token, what `/ready` says about the
//! database, and, through the owner token, phone access (`/api/remote`),
//! pending approvals against the event followers of `/metrics`, and the
//! sessions the runner tracks against the ones the hub knows.
use std::path::Path;
use std::time::Duration;

use hapi_protocol::{HUB_STATE_FILE, Health, HubStateFile, RemoteAccess, RemoteProvider, RemoteState};
use reqwest::StatusCode;
use serde_json::Value;

use super::judge::{self, human_bytes, human_duration};
use super::{Doctor, Finding, Level, runbook};

/// A WAL bigger than this means checkpoints cannot keep up (the suggested alert
/// in `docs/operations.md`).
const WAL_ALERT_BYTES: f64 = 256e6;
/// At most this many of the runner's sessions are looked up in the hub.
const SESSIONS_LOOKED_UP: usize = 50;

/// The hub that answered.
pub(crate) struct HubView {
    pub url: String,
    pub uptime: Duration,
    /// The body of `GET /ready` (the same for `200` and `503`).
    pub ready: Option<Value>,
}

impl HubView {
    /// `/ready`'s entry for `component` (`database`, `runner`, `tunnel`):
    /// its `status` and `detail`.
    pub(crate) fn component(&self, component: &str) -> Option<(String, String)> {
        let c = self.ready.as_ref()?.get("components")?.get(component)?;
        Some((
            c["status"].as_str().unwrap_or("?").to_owned(),
            c["detail"].as_str().unwrap_or_default().to_owned(),
        ))
    }
}

fn read_hub_json(home: &Path) -> Option<HubStateFile> {
    serde_json::from_str(&std::fs::read_to_string(home.join(HUB_STATE_FILE)).ok()?).ok()
}

/// Is a hub running for this `$HAPI_HOME` (or at `HAPI_HUB_URL`), and does it answer?
pub(crate) async fn hub(d: &mut Doctor) -> Finding {
    const CHECK: &str = "hub";
    let start = "start it: `hapi hub` (or open HAPI Desktop, which runs one)";
    let (url, pid) = match std::env::var("HAPI_HUB_URL").ok().filter(|v| !v.trim().is_empty()) {
        Some(url) => (url.trim().trim_end_matches('/').to_owned(), None),
        None => {
            let lock = hapi_runner::RunnerLock::holder_of_file(&d.home.join(crate::hub::HUB_LOCK_FILE))
                .ok()
                .flatten();
            match (lock, read_hub_json(&d.home)) {
                (Some(holder), Some(state)) if state.pid == holder.pid => (state.url, Some(holder.pid)),
                (Some(holder), _) => {
                    return Finding::new(
                        CHECK,
                        Level::Problem,
                        format!(
                            "PID {} holds hub.lock but has not recorded its address in hub.json (still opening the database, or stuck)",
                            holder.pid
                        ),
                    )
                    .fix(
                        format!("wait a few seconds and run `hapi doctor` again; if it stays so, stop PID {} (`kill {}`) and {start}", holder.pid, holder.pid),
                        runbook::SESSIONS,
                    );
                }
                (None, Some(stale)) => {
                    return Finding::new(
                        CHECK,
                        Level::Problem,
                        format!(
                            "no hub is running: hub.json names PID {} (started {}), which is gone without cleaning up: it crashed or was killed",
                            stale.pid, stale.started_at
                        ),
                    )
                    .fix(format!("{start}; if it refuses, its error says why"), runbook::SESSIONS);
                }
                (None, None) => {
                    return Finding::new(CHECK, Level::Problem, "no hub is running for this HAPI_HOME")
                        .fix(start, runbook::SESSIONS);
                }
            }
        }
    };
    let who = pid.map_or_else(
        || format!("the hub at {url} (HAPI_HUB_URL)"),
        |p| format!("the hub (PID {p}) at {url}"),
    );
    let health = match d.http.get(format!("{url}/health")).send().await {
        Ok(r) if r.status().is_success() => r.json::<Health>().await.ok(),
        Ok(r) => {
            return Finding::new(
                CHECK,
                Level::Problem,
                format!("{who} answers /health with {}", r.status()),
            )
            .fix("check that HAPI_HUB_URL names a HAPI hub", runbook::SESSIONS);
        }
        Err(e) => {
            let fix = match pid {
                Some(p) => format!(
                    "the process runs but does not answer: stop it (`kill {p}`, then `kill -9 {p}` if it stays) and {start}"
                ),
                None => "check HAPI_HUB_URL and that the hub there runs".into(),
            };
            return Finding::new(CHECK, Level::Problem, format!("{who} does not answer /health: {e}"))
                .fix(fix, runbook::SESSIONS);
        }
    };
    let Some(health) = health else {
        return Finding::new(
            CHECK,
            Level::Problem,
            format!("{who} answers /health with something that is not a HAPI hub"),
        )
        .fix(
            "check HAPI_HUB_URL, or what listens on that port (`ss -ltnp`)",
            runbook::SESSIONS,
        );
    };
    let ready = match d.http.get(format!("{url}/ready")).send().await {
        Ok(r) => r.json::<Value>().await.ok(),
        Err(_) => None,
    };
    let uptime = Duration::from_secs(health.uptime_s);
    let found = format!(
        "{who} answers (version {}, up {})",
        health.version,
        human_duration(uptime)
    );
    d.hub = Some(HubView { url, uptime, ready });
    if health.version != hapi_protocol::VERSION {
        return Finding::new(
            CHECK,
            Level::Warning,
            format!("{found}; this hapi is {}", hapi_protocol::VERSION),
        )
        .fix(
            "restart the hub from the same hapi you run (stop it, then `hapi hub`)",
            runbook::INDEX,
        );
    }
    Finding::ok(CHECK, found)
}

/// The owner token, found the way `hapi auth token` and the runner find it
/// (`CLI_API_TOKEN`, else the keychain, else `$HAPI_HOME/owner.token`), without
/// creating one; and whether the running hub accepts it.
pub(crate) async fn owner_token(d: &mut Doctor) -> Finding {
    const CHECK: &str = "owner token";
    let (token, store) = match super::local::find_owner_token(d) {
        Ok(found) => found,
        Err(finding) => return finding,
    };
    let Some(hub) = &d.hub else {
        d.token = Some(token);
        return Finding::ok(CHECK, format!("{store} (no hub to try it on)"));
    };
    match d.http.get(format!("{}/api/hub", hub.url)).bearer_auth(&token).send().await {
        Ok(r) if r.status().is_success() => {
            let info: Value = r.json().await.unwrap_or_default();
            let notice = info["credentials"]["notice"].as_str().map(str::to_owned);
            d.token = Some(token);
            match notice {
                // The hub itself keeps the token in a file because no keychain was
                // reachable when it started: worth knowing, not broken.
                Some(notice) if !keychain_off() && info["credentials"]["store"] == "file" => Finding::new(
                    CHECK,
                    Level::Warning,
                    format!("{store}; the hub accepts it, and says: {notice}"),
                )
                .fix(
                    "start a Secret Service (GNOME Keyring, KWallet) and restart the hub, or keep the 0600 file (set HAPI_KEYCHAIN=off to say so)",
                    runbook::AUTH,
                ),
                _ => Finding::ok(CHECK, format!("{store}; the hub accepts it")),
            }
        }
        Ok(r) if r.status() == StatusCode::UNAUTHORIZED => Finding::new(
            CHECK,
            Level::Problem,
            format!("{store}, but the hub at {} rejects it (401): it runs with another owner token", hub.url),
        )
        .fix(
            "if CLI_API_TOKEN is set, unset it or set it to the hub's token; after `hapi auth rotate`, restart the hub so it reads the new one",
            runbook::AUTH,
        ),
        Ok(r) => Finding::new(CHECK, Level::Warning, format!("{store}; the hub answered {} when asked to check it", r.status()))
            .fix("run `hapi doctor` again; if it persists, read the hub's log", runbook::AUTH),
        Err(e) => Finding::new(CHECK, Level::Warning, format!("{store}; the hub did not answer when asked to check it: {e}"))
            .fix("run `hapi doctor` again", runbook::AUTH),
    }
}

fn keychain_off() -> bool {
    matches!(
        hapi_credentials::KeychainMode::from_env(),
        Ok(hapi_credentials::KeychainMode::Off)
    )
}

/// `GET /metrics` with the owner token, if it opens it.
pub(crate) async fn metrics(http: &reqwest::Client, url: &str, token: &str) -> Option<String> {
    let r = http
        .get(format!("{url}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

/// The database while a hub runs: `/ready`'s probe (a write through the hub's
/// own writer) rather than opening the file here. A second process scanning
/// every page would hold a read snapshot that keeps the hub's WAL from being
/// checkpointed, and the hub already ran `PRAGMA quick_check` when it opened the
/// file; what can break while it runs (a held write lock, a full disk, an I/O
/// error) is exactly what its probe write finds.
pub(crate) fn database(hub: &HubView, metrics: Option<&str>) -> Finding {
    const CHECK: &str = "database";
    let Some((status, detail)) = hub.component("database") else {
        return Finding::new(
            CHECK,
            Level::Warning,
            "the hub's /ready did not answer, so the database was not checked",
        )
        .fix(
            "run `hapi doctor` again; `curl -s URL/ready` shows each component",
            runbook::DATABASE,
        );
    };
    let sizes = metrics.map(|m| {
        (
            judge::metric(m, "hapi_db_size_bytes", &[]).unwrap_or(0.0),
            judge::metric(m, "hapi_db_wal_size_bytes", &[]).unwrap_or(0.0),
        )
    });
    let size_note = sizes.map_or_else(String::new, |(db, wal)| {
        format!(" (hapi.db {}, WAL {})", human_bytes(db as u64), human_bytes(wal as u64))
    });
    match status.as_str() {
        "ok" => match sizes {
            Some((_, wal)) if wal > WAL_ALERT_BYTES => Finding::new(
                CHECK,
                Level::Warning,
                format!("writes commit ({detail}), but the WAL keeps growing{size_note}: checkpoints cannot keep up"),
            )
            .fix(
                "look for a long-running reader of hapi.db (`fuser -v hapi.db` in HAPI_HOME, a sqlite3 shell, a backup tool) and end it",
                runbook::DATABASE,
            ),
            _ => Finding::ok(CHECK, format!("/ready: {detail}{size_note}")),
        },
        "timeout" => Finding::new(CHECK, Level::Problem, format!("/ready: {detail}")).fix(
            "find the other process holding the write lock (`fuser -v hapi.db` in HAPI_HOME; a sqlite3 shell left in a transaction) and end it",
            runbook::DATABASE,
        ),
        _ => Finding::new(CHECK, Level::Problem, format!("/ready: {status}: {detail}")).fix(
            "free disk space (`df -h` on HAPI_HOME) or fix the file's permissions; if SQLite says the file is malformed, restore a backup",
            runbook::DATABASE,
        ),
    }
}

/// The runner's sessions (its control server's `list`) against the hub's.
pub(crate) async fn sessions(d: &Doctor) -> Finding {
    const CHECK: &str = "sessions";
    if d.runner.is_none() {
        return Finding::skipped(CHECK, "no runner to ask (see runner)");
    }
    let (Some(hub), Some(token)) = (&d.hub, &d.token) else {
        return Finding::skipped(CHECK, "no hub to compare with (see hub and owner token)");
    };
    let listed = match hapi_runner::ControlClient::connect(&d.home, Duration::from_secs(5)) {
        Ok((client, _)) => client.list().await,
        Err(e) => Err(e),
    };
    let children = match listed {
        Ok(list) => list.children,
        Err(e) => {
            return Finding::new(
                CHECK,
                Level::Problem,
                format!("the runner's control server did not list its sessions: {e}"),
            )
            .fix(
                "restart the runner: `hapi runner stop && hapi runner start` (sessions keep running)",
                runbook::RUNNER,
            );
        }
    };
    let mut unknown = Vec::new();
    let mut disconnected = Vec::new();
    for s in children.iter().take(SESSIONS_LOOKED_UP) {
        let r = d
            .http
            .get(format!("{}/api/sessions/{}", hub.url, s.session_id))
            .bearer_auth(token)
            .send()
            .await;
        match r {
            Ok(r) if r.status() == StatusCode::NOT_FOUND => unknown.push(s.session_id.clone()),
            Ok(r) if r.status().is_success() => {
                let body: Value = r.json().await.unwrap_or_default();
                let state = body["session"]["state"].as_str().unwrap_or_default().to_owned();
                if state == "disconnected" || state == "ended" {
                    disconnected.push(format!("{} ({state})", s.session_id));
                }
            }
            _ => {}
        }
    }
    let tracked = match children.len() {
        0 => "the runner tracks no live session".to_owned(),
        n => format!("the runner tracks {n} live session(s)"),
    };
    if !unknown.is_empty() {
        return Finding::new(
            CHECK,
            Level::Problem,
            format!(
                "{tracked}; the hub does not know {}: {} (they registered with another hub: another HAPI_HOME or HAPI_HUB_URL, or a database restored from an older backup)",
                unknown.len(),
                unknown.join(", ")
            ),
        )
        .fix(
            "`hapi runner list` shows them; stop them with `hapi runner stop-session ID` and start new ones from this hub",
            runbook::SESSIONS,
        );
    }
    if !disconnected.is_empty() {
        return Finding::new(
            CHECK,
            Level::Warning,
            format!(
                "{tracked}; their processes run, but the hub shows {} without a linked wrapper: {}",
                disconnected.len(),
                disconnected.join(", ")
            ),
        )
        .fix(
            "they reconnect by themselves within seconds; if not, read `logs/session-<id>.log` in HAPI_HOME for why",
            runbook::SESSIONS,
        );
    }
    if children.is_empty() {
        return Finding::ok(CHECK, tracked);
    }
    Finding::ok(CHECK, format!("{tracked}; the hub knows each of them"))
}

/// Phone access: `GET /api/remote` (owner), or `/ready`'s `tunnel` without a token.
pub(crate) async fn phone_access(d: &Doctor) -> Finding {
    const CHECK: &str = "phone access";
    let Some(hub) = &d.hub else {
        return Finding::skipped(CHECK, "no hub (see hub)");
    };
    let remote = match &d.token {
        Some(token) => match d
            .http
            .get(format!("{}/api/remote", hub.url))
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json::<RemoteAccess>().await.ok(),
            _ => None,
        },
        None => None,
    };
    let Some(remote) = remote else {
        // Without the owner token, /ready still says whether a tunnel is up.
        return match hub.component("tunnel") {
            None => Finding::ok(CHECK, "off (from /ready; the owner token would show more)"),
            Some((status, detail)) if status == "ok" => Finding::ok(CHECK, format!("up: {detail}")),
            Some((status, detail)) => Finding::new(CHECK, Level::Problem, format!("{status}: {detail}")).fix(
                "see the Phone panel; turn phone access off and on once the cause is fixed",
                runbook::TUNNEL,
            ),
        };
    };
    let provider = remote.provider.as_ref().map_or("?".to_owned(), provider_name);
    let failures = format!("{} failure(s) since it was turned on", remote.failures);
    let detail = remote.detail.clone().unwrap_or_default();
    match remote.state {
        RemoteState::Off => Finding::ok(CHECK, "off"),
        RemoteState::Up => Finding::ok(
            CHECK,
            format!(
                "up through {provider} at {} ({failures})",
                remote.public_url.as_deref().unwrap_or("?")
            ),
        ),
        // The hub does not say how long it has been starting, nor its failures
        // while starting; a start gives up after 45 s and then shows as failed.
        RemoteState::Starting => Finding::new(CHECK, Level::Warning, format!("{provider} is starting"))
            .fix("run `hapi doctor` again in a minute", runbook::TUNNEL),
        RemoteState::Down => Finding::new(
            CHECK,
            Level::Problem,
            format!("{provider} tunnel is down, reconnecting by itself: {detail} ({failures})"),
        )
        .fix(provider_fix(remote.provider.as_ref(), false), runbook::TUNNEL),
        RemoteState::Failed => Finding::new(
            CHECK,
            Level::Problem,
            format!("{provider} could not start and is not retried: {detail} ({failures})"),
        )
        .fix(provider_fix(remote.provider.as_ref(), true), runbook::TUNNEL),
    }
}

fn provider_name(p: &RemoteProvider) -> String {
    match p {
        RemoteProvider::Lan { bind, port } if *port == 0 => format!("LAN ({bind})"),
        RemoteProvider::Lan { bind, port } => format!("LAN ({bind}:{port})"),
        RemoteProvider::Bore { host, .. } => format!("bore (server {host})"),
        RemoteProvider::Tailscale => "Tailscale Serve".into(),
        RemoteProvider::Cloudflared => "cloudflared".into(),
    }
}

/// What to do about a tunnel that is down (`failed`: will not be retried).
fn provider_fix(p: Option<&RemoteProvider>, failed: bool) -> String {
    let cause = match p {
        Some(RemoteProvider::Lan { bind, port }) => format!(
            "check that {bind} is this machine's address on the phone's network (`ip -4 addr`), that port {port} is free (`ss -ltnp | grep :{port}`; 0 picks any) and that a firewall lets it through"
        ),
        Some(RemoteProvider::Bore { host, .. }) => format!(
            // 7835: bore's fixed control port.
            "check the bore server: `nc -vz {host} 7835` must connect (is `bore server` running there, its port 7835 open?), and its secret in the Phone panel"
        ),
        Some(RemoteProvider::Tailscale) => {
            "`tailscale status` (logged out: `tailscale up`; access denied: `sudo tailscale set --operator=$USER` once)".into()
        }
        Some(RemoteProvider::Cloudflared) => {
            "`cloudflared --version` must run, and this machine must reach Cloudflare; a new quick tunnel has a new URL, so pair the phone again".into()
        }
        None => "see the Phone panel".into(),
    };
    if failed {
        format!("{cause}; then turn phone access off and on again (Phone panel)")
    } else {
        format!(
            "{cause}; it retries with backoff (1 s up to 60 s): watch `hapi_tunnel_up` and `hapi_tunnel_failures_total`"
        )
    }
}

/// Pending approvals against who follows the hub's events: an approval nobody is
/// shown is one that "does not arrive".
pub(crate) async fn approvals(d: &Doctor) -> Finding {
    const CHECK: &str = "approvals";
    let (Some(hub), Some(token)) = (&d.hub, &d.token) else {
        return Finding::skipped(CHECK, "no hub, or no owner token for it (see above)");
    };
    let pending = match d
        .http
        .get(format!("{}/api/approvals?state=pending", hub.url))
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
        _ => None,
    };
    let Some(pending) = pending.and_then(|v| v["approvals"].as_array().cloned()) else {
        return Finding::new(CHECK, Level::Warning, "the hub did not list its pending approvals")
            .fix("run `hapi doctor` again", runbook::APPROVALS);
    };
    let now = chrono::Utc::now();
    let oldest = pending
        .iter()
        .filter_map(|a| judge::age_of(a["created_at"].as_str()?, now))
        .max();
    let metrics = d.metrics.as_deref();
    let followers = metrics
        .and_then(|m| judge::metric_sum(m, "hapi_event_clients"))
        .map(|n| n as u64);
    let relayed_late = metrics
        .and_then(|m| {
            judge::metric(
                m,
                "hapi_relay_failures_total",
                &[("target", "session"), ("reason", "wrapper_disconnected")],
            )
        })
        .unwrap_or(0.0) as u64;
    let following = match followers {
        Some(n) => format!("{n} event follower(s) connected (hapi_event_clients)"),
        None => "event followers unknown (/metrics not readable)".into(),
    };
    let waiting = match oldest {
        Some(age) => format!("{} pending, the oldest for {}", pending.len(), human_duration(age)),
        None => "none pending".into(),
    };
    let late = if relayed_late > 0 {
        format!("; {relayed_late} decision(s) or prompt(s) waited for a disconnected wrapper since the hub started")
    } else {
        String::new()
    };
    let found = format!("{waiting}; {following}{late}");
    let limit = human_duration(d.approval_wait);
    match judge::approvals(oldest, d.approval_wait, followers) {
        Level::Problem => Finding::new(
            CHECK,
            Level::Problem,
            format!("{found}: approvals older than {limit} reach nobody (no UI window, desktop app or phone follows the hub)"),
        )
        .fix(
            format!(
                "open {}/ (or HAPI Desktop) and answer them, or pair a phone; each waiting approval blocks its agent",
                hub.url
            ),
            runbook::APPROVALS,
        ),
        Level::Warning => Finding::new(CHECK, Level::Warning, format!("{found}: older than {limit}"))
            .fix(
                "someone is connected but has not answered: look at the UI's approvals; if they are not shown there, reload it",
                runbook::APPROVALS,
            ),
        level => Finding::new(CHECK, level, found),
    }
}
