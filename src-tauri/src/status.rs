//! What the tray and the notifications say, computed from the hub's sessions and
//! pending approvals. Pure, so the wording is unit-tested without a desktop.
use hapi_protocol::{Approval, RemoteAccess, RemoteState, Session, SessionState, TransportSecurity};

/// Most pending requests listed in the tray menu; the status line counts all.
pub const MAX_LISTED: usize = 8;

/// One pending request, as the tray lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingItem {
    pub approval_id: String,
    pub session_id: Option<String>,
    pub label: String,
}

/// Whether the embedded hub answers the tray.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HubHealth {
    /// Before the first answer: the tray exists before the hub's first read.
    #[default]
    Starting,
    Running,
    /// A read failed; the refresher keeps retrying and the log says why.
    NotAnswering,
}

/// The tray's view of the hub.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrayStatus {
    pub hub: HubHealth,
    /// Sessions not ended.
    pub sessions: usize,
    /// Every pending approval.
    pub waiting: usize,
    /// The oldest [`MAX_LISTED`] pending approvals.
    pub pending: Vec<PendingItem>,
    /// Phone access, if the hub reports it.
    pub phone: Option<RemoteAccess>,
    /// Sessions (not ended) whose requests are allowed without asking.
    pub skipping: Vec<String>,
    /// Sessions (not ended) their budget paused.
    pub paused: Vec<PausedSession>,
}

/// A session its budget paused: it takes no prompt until the budget is raised
/// or cleared in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct PausedSession {
    pub session_id: String,
    /// "Budget reached: claude · proj (1,200 of 1,000 tokens)".
    pub label: String,
}

impl TrayStatus {
    /// `approvals` are the pending ones, oldest first.
    pub fn new(sessions: &[Session], approvals: &[Approval]) -> Self {
        let pending = approvals
            .iter()
            .take(MAX_LISTED)
            .map(|a| {
                let session = a
                    .session_id
                    .as_deref()
                    .and_then(|id| sessions.iter().find(|s| s.id == id));
                let (title, body) = describe(a, session);
                PendingItem {
                    approval_id: a.id.clone(),
                    session_id: a.session_id.clone(),
                    label: clip(&format!("{title}: {body}"), 70),
                }
            })
            .collect();
        TrayStatus {
            hub: HubHealth::Running,
            sessions: sessions.iter().filter(|s| s.state != SessionState::Ended).count(),
            waiting: approvals.len(),
            pending,
            phone: None,
            skipping: sessions
                .iter()
                .filter(|s| s.skip_approvals && s.state != SessionState::Ended)
                .map(session_name)
                .collect(),
            paused: sessions
                .iter()
                .filter(|s| s.usage.budget_paused && s.state != SessionState::Ended)
                .map(|s| PausedSession {
                    session_id: s.id.clone(),
                    label: clip(&format!("Budget reached: {} ({})", session_name(s), budget_use(s)), 90),
                })
                .collect(),
        }
    }

    /// The reminder shown in the tray and on every notification while any
    /// session skips approvals: "Skipping approvals: claude · api".
    pub fn skipping_line(&self) -> Option<String> {
        (!self.skipping.is_empty()).then(|| clip(&format!("⚠ Skipping approvals: {}", self.skipping.join(", ")), 90))
    }

    /// "Phone access: on · https://… · encrypted to this machine", or `None`
    /// when the hub has no phone access.
    pub fn phone_line(&self) -> Option<String> {
        let phone = self.phone.as_ref()?;
        let transport = match phone.transport {
            Some(TransportSecurity::TlsAtThisMachine) => " · encrypted to this machine",
            Some(TransportSecurity::TlsAtProvider) => " · encrypted to the provider",
            Some(TransportSecurity::Plaintext) => " · NOT encrypted",
            None => "",
        };
        Some(match phone.state {
            RemoteState::Off => "Phone access: off".into(),
            RemoteState::Starting => "Phone access: starting…".into(),
            RemoteState::Up => format!(
                "Phone access: on · {}{transport}",
                phone.public_url.as_deref().unwrap_or("")
            ),
            RemoteState::Down => format!("Phone access: down, reconnecting ({} failures)", phone.failures),
            RemoteState::Failed => format!(
                "Phone access: failed: {}",
                clip(phone.detail.as_deref().unwrap_or("see the log"), 60)
            ),
        })
    }

    /// "Hub running · 2 sessions · 1 waiting for approval".
    pub fn status_line(&self) -> String {
        match self.hub {
            HubHealth::Starting => return "Hub starting…".into(),
            HubHealth::NotAnswering => return "Hub not answering (see the log)".into(),
            HubHealth::Running => {}
        }
        let sessions = plural(self.sessions, "session", "sessions");
        format!("Hub running · {sessions} · {} waiting for approval", self.waiting)
    }

    /// Text next to the tray icon (where the desktop shows one) and in the
    /// window title: the number waiting, or nothing.
    pub fn badge(&self) -> Option<String> {
        (self.waiting > 0).then(|| self.waiting.to_string())
    }

    pub fn tooltip(&self) -> String {
        format!("HAPI — {}", self.status_line())
    }
}

/// A session's short name: `claude · project-dir`.
/// "1,200 of 1,000 tokens" (or dollars, when only a cost budget is set).
pub fn budget_use(session: &Session) -> String {
    let usage = &session.usage;
    match usage.budget.as_ref() {
        Some(budget) if budget.max_tokens.is_some() || budget.max_cost_usd.is_none() => format!(
            "{} of {} tokens",
            thousands(usage.total_tokens),
            budget.max_tokens.map_or("?".into(), thousands)
        ),
        Some(budget) => format!(
            "${:.2} of ${:.2}",
            usage.cost_usd.unwrap_or(0.0),
            budget.max_cost_usd.unwrap_or(0.0)
        ),
        None => format!("{} tokens", thousands(usage.total_tokens)),
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn session_name(session: &Session) -> String {
    let dir = std::path::Path::new(&session.cwd)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(&session.cwd);
    format!("{} · {dir}", session.agent.as_str())
}

/// A request's (title, body) for a notification: the title names the session and
/// the tool, the body shows the command or the file.
pub fn describe(approval: &Approval, session: Option<&Session>) -> (String, String) {
    let input = &approval.input;
    let text = |key: &str| input.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    if approval.session_id.is_none() && approval.tool == "create_directory" {
        let agent = text("agent").unwrap_or_else(|| "agent".into());
        let cwd = text("cwd").unwrap_or_default();
        return (format!("New {agent} session: create its directory?"), cwd);
    }
    let who = match (session, &approval.session_id) {
        (Some(s), _) => session_name(s),
        (None, Some(id)) => format!("session {}", short_id(id)),
        (None, None) => "this machine".into(),
    };
    let title = format!("{who} wants to use {}", approval.tool);
    let body = text("command")
        .or_else(|| text("file_path"))
        .or_else(|| text("path"))
        .or_else(|| text("url"))
        .or_else(|| text("pattern"))
        .unwrap_or_else(|| compact_json(input));
    (title, clip(&body, 300))
}

fn compact_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        v => v.to_string(),
    }
}

fn short_id(id: &str) -> &str {
    // UUID v7 ids share their time prefix; the tail tells sessions apart.
    &id[id.len().saturating_sub(8)..]
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// At most `max` characters, with an ellipsis when cut, on one line.
pub fn clip(s: &str, max: usize) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapi_protocol::{AgentKind, ApprovalState};
    use serde_json::json;

    fn session(id: &str, cwd: &str, state: SessionState) -> Session {
        Session {
            id: id.into(),
            agent: AgentKind::Claude,
            cwd: cwd.into(),
            state,
            pending_approvals: 0,
            last_seq: 0,
            skip_approvals: false,
            usage: Default::default(),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn sessions_their_budget_paused_are_listed_with_how_far() {
        let mut paused = session("s1", "/w/api", SessionState::Idle);
        paused.usage.total_tokens = 1200;
        paused.usage.budget = Some(hapi_protocol::Budget {
            max_tokens: Some(1000),
            max_cost_usd: None,
        });
        paused.usage.budget_paused = true;
        let mut ended = paused.clone();
        ended.id = "s2".into();
        ended.state = SessionState::Ended;
        let mut by_cost = paused.clone();
        by_cost.id = "s3".into();
        by_cost.cwd = "/w/web".into();
        by_cost.usage.cost_usd = Some(2.5);
        by_cost.usage.budget = Some(hapi_protocol::Budget {
            max_tokens: None,
            max_cost_usd: Some(2.0),
        });
        let status = TrayStatus::new(&[paused, ended, by_cost], &[]);
        let labels: Vec<_> = status
            .paused
            .iter()
            .map(|p| (p.session_id.as_str(), p.label.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("s1", "Budget reached: claude · api (1,200 of 1,000 tokens)"),
                ("s3", "Budget reached: claude · web ($2.50 of $2.00)")
            ]
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }

    fn approval(id: &str, session: Option<&str>, tool: &str, input: serde_json::Value) -> Approval {
        Approval {
            id: id.into(),
            session_id: session.map(Into::into),
            machine_id: None,
            tool: tool.into(),
            input,
            options: vec![],
            state: ApprovalState::Pending,
            decision: None,
            decided_by: None,
            message: None,
            created_at: String::new(),
            decided_at: None,
        }
    }

    #[test]
    fn counts_and_status_line() {
        let sessions = [
            session("s1", "/home/me/proj", SessionState::Working),
            session("s2", "/home/me/other", SessionState::Idle),
            session("s3", "/home/me/old", SessionState::Ended),
        ];
        let approvals = [approval("a1", Some("s1"), "Bash", json!({"command": "rm -rf build"}))];
        let status = TrayStatus::new(&sessions, &approvals);
        assert_eq!(
            status.status_line(),
            "Hub running · 2 sessions · 1 waiting for approval"
        );
        assert_eq!(status.badge().as_deref(), Some("1"));
        assert_eq!(status.pending[0].label, "claude · proj wants to use Bash: rm -rf build");
        let idle = TrayStatus::new(&sessions[..1], &[]);
        assert_eq!(idle.status_line(), "Hub running · 1 session · 0 waiting for approval");
        assert_eq!(idle.badge(), None);
        assert_eq!(TrayStatus::default().status_line(), "Hub starting…");
        let failed = TrayStatus {
            hub: HubHealth::NotAnswering,
            ..idle
        };
        assert_eq!(failed.status_line(), "Hub not answering (see the log)");
    }

    #[test]
    fn phone_line_says_state_and_who_can_read_the_traffic() {
        let mut status = TrayStatus::default();
        assert_eq!(status.phone_line(), None);
        let mut phone = RemoteAccess {
            state: RemoteState::Off,
            provider: None,
            public_url: None,
            transport: None,
            sse: true,
            failures: 0,
            detail: None,
        };
        status.phone = Some(phone.clone());
        assert_eq!(status.phone_line().unwrap(), "Phone access: off");
        phone.state = RemoteState::Up;
        phone.public_url = Some("http://192.168.1.5:3007".into());
        phone.transport = Some(TransportSecurity::Plaintext);
        status.phone = Some(phone.clone());
        assert_eq!(
            status.phone_line().unwrap(),
            "Phone access: on · http://192.168.1.5:3007 · NOT encrypted"
        );
        phone.state = RemoteState::Down;
        phone.failures = 3;
        status.phone = Some(phone);
        assert_eq!(
            status.phone_line().unwrap(),
            "Phone access: down, reconnecting (3 failures)"
        );
    }

    #[test]
    fn sessions_skipping_approvals_are_named() {
        let mut on = session("s1", "/w/api", SessionState::Idle);
        on.skip_approvals = true;
        let mut ended = session("s2", "/w/old", SessionState::Ended);
        ended.skip_approvals = true;
        let status = TrayStatus::new(&[on, ended, session("s3", "/w/web", SessionState::Idle)], &[]);
        assert_eq!(status.skipping_line().unwrap(), "⚠ Skipping approvals: claude · api");
        assert_eq!(TrayStatus::new(&[], &[]).skipping_line(), None);
    }

    #[test]
    fn lists_at_most_max_listed() {
        let approvals: Vec<_> = (0..12)
            .map(|i| approval(&format!("a{i}"), None, "Bash", json!({})))
            .collect();
        let status = TrayStatus::new(&[], &approvals);
        assert_eq!(status.waiting, 12);
        assert_eq!(status.pending.len(), MAX_LISTED);
        assert_eq!(status.pending[0].approval_id, "a0");
    }

    #[test]
    fn describes_commands_files_and_directories() {
        let s = session("s1", "/w/app", SessionState::Working);
        let (title, body) = describe(
            &approval(
                "a",
                Some("s1"),
                "Write",
                json!({"file_path": "/w/app/x.txt", "content": "hi"}),
            ),
            Some(&s),
        );
        assert_eq!(
            (title.as_str(), body.as_str()),
            ("claude · app wants to use Write", "/w/app/x.txt")
        );
        let (title, body) = describe(
            &approval(
                "a",
                None,
                "create_directory",
                json!({"agent": "claude", "cwd": "/w/new"}),
            ),
            None,
        );
        assert_eq!(title, "New claude session: create its directory?");
        assert_eq!(body, "/w/new");
        let (title, body) = describe(&approval("a", Some("0190-abcdef12"), "WebFetch", json!({"x": 1})), None);
        assert_eq!(title, "session abcdef12 wants to use WebFetch");
        assert_eq!(body, r#"{"x":1}"#);
    }

    #[test]
    fn clip_cuts_on_characters() {
        assert_eq!(clip("a\n b", 10), "a b");
        assert_eq!(clip("ééééé", 3), "éé…");
    }
}
