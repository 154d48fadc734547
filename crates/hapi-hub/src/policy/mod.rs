//! The approval policy: rules in `$HAPI_HOME/policy.toml` that allow, deny or
//! ask for a permission request by agent, tool, shell command and path
//! (`docs/operations.md`, "Approval policy").
//!
//! - Precedence does not depend on the order of rules: a matching `deny` rule
//!   wins, then a matching `ask` rule, then a matching `allow` rule; with none,
//!   the request is asked (the default).
//! - `allow` matches a shell command only when it is exactly one plain simple
//!   command ([`shell::simple_command`]); `deny` and `ask` also look inside
//!   compound commands ([`shell::lenient_commands`]).
//! - A policy that does not parse is refused with its line, column and reason;
//!   it never falls back to allowing anything.
mod file;
pub(crate) mod shell;

use std::path::{Path, PathBuf};

use hapi_protocol::{PolicyAction, PolicyRuleSummary};
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

pub use file::{PolicyFile, PolicyInEffect, Reload};
use shell::{PatWord, Piece};

/// File name of the policy inside `$HAPI_HOME`.
pub const POLICY_FILE: &str = "policy.toml";

/// Largest policy text accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;

/// A policy text that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {reason}")]
pub struct PolicyError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// What is wrong.
    pub reason: String,
}

/// A request as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRequest<'a> {
    /// The session's agent (`claude`).
    pub agent: &'a str,
    /// The tool name (`Bash`, `Write`, …).
    pub tool: &'a str,
    /// The tool's input.
    pub input: &'a Value,
    /// The session's working directory.
    pub cwd: &'a str,
}

/// What the policy says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Allow, deny, or ask a person.
    pub action: PolicyAction,
    /// The rule that decided; `None` for the default (ask).
    pub rule: Option<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    action: PolicyAction,
    agent: Option<String>,
    tools: Vec<String>,
    /// Pattern text (for the summary) and its words.
    commands: Vec<(String, Vec<PatWord>)>,
    /// Pattern text and its components (absolute, `~` expanded).
    paths: Vec<(String, Vec<PatWord>)>,
}

/// A parsed policy. The empty policy asks for everything.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    text: String,
    rules: Vec<Rule>,
    /// What `~` means in the requests' paths (the patterns' are expanded already).
    home: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    action: Spanned<PolicyAction>,
    agent: Option<Spanned<String>>,
    tool: Option<Spanned<OneOrMany>>,
    command: Option<Spanned<OneOrMany>>,
    path: Option<Spanned<OneOrMany>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

impl Policy {
    /// Parses and checks a policy text; `home` expands `~` in path patterns.
    pub fn parse(text: &str, home: Option<&Path>) -> Result<Policy, PolicyError> {
        let at = |span: std::ops::Range<usize>, reason: String| {
            let (line, column) = line_col(text, span.start);
            PolicyError { line, column, reason }
        };
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError {
                line: 1,
                column: 1,
                reason: format!("the policy is larger than {MAX_POLICY_BYTES} bytes"),
            });
        }
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let reason = e.message().trim().to_owned();
            match e.span() {
                Some(span) => at(span, reason),
                None => PolicyError {
                    line: 1,
                    column: 1,
                    reason,
                },
            }
        })?;
        let mut rules: Vec<Rule> = Vec::with_capacity(raw.rule.len());
        for raw_rule in raw.rule {
            let rule_span = raw_rule.span();
            let r = raw_rule.into_inner();
            let name = r.name.get_ref().trim().to_owned();
            if name.is_empty() {
                return Err(at(r.name.span(), "a rule's `name` must not be empty".into()));
            }
            if rules.iter().any(|other| other.name == name) {
                return Err(at(
                    r.name.span(),
                    format!("a second rule named `{name}` (names must be unique)"),
                ));
            }
            let agent = match r.agent {
                Some(agent) => {
                    let span = agent.span();
                    let value = agent.into_inner();
                    value.parse::<hapi_protocol::AgentKind>().map_err(|e| at(span, e))?;
                    Some(value)
                }
                None => None,
            };
            let list = |field: &str,
                        value: Option<Spanned<OneOrMany>>|
             -> Result<(Vec<String>, std::ops::Range<usize>), PolicyError> {
                match value {
                    None => Ok((Vec::new(), rule_span.clone())),
                    Some(v) => {
                        let span = v.span();
                        let items = v.into_inner().into_vec();
                        if items.is_empty() {
                            return Err(at(
                                span,
                                format!("`{field}` is an empty list (leave it out to match any)"),
                            ));
                        }
                        if items.iter().any(|i| i.trim().is_empty()) {
                            return Err(at(span, format!("`{field}` holds an empty string")));
                        }
                        Ok((items, span))
                    }
                }
            };
            let (tools, _) = list("tool", r.tool)?;
            let (command_texts, command_span) = list("command", r.command)?;
            let (path_texts, path_span) = list("path", r.path)?;
            if !command_texts.is_empty() {
                let is_shell =
                    |t: &String| hapi_store::tools::classify_tool(t, None) == hapi_store::tools::ToolClass::Execute;
                if let Some(other) = tools.iter().find(|t| !is_shell(t)) {
                    return Err(at(
                        command_span,
                        format!(
                            "`command` applies to Bash only (shell commands), but this rule's `tool` includes `{other}`"
                        ),
                    ));
                }
            }
            let mut commands = Vec::with_capacity(command_texts.len());
            for pattern in command_texts {
                let words = shell::pattern_words(&pattern).map_err(|why| {
                    at(
                        command_span.clone(),
                        format!("command pattern `{pattern}` is not one simple command: {why}"),
                    )
                })?;
                commands.push((pattern, words));
            }
            let mut paths = Vec::with_capacity(path_texts.len());
            for pattern in path_texts {
                let components = path_pattern(&pattern, home).map_err(|why| at(path_span.clone(), why))?;
                paths.push((pattern, components));
            }
            rules.push(Rule {
                name,
                action: *r.action.get_ref(),
                agent,
                tools,
                commands,
                paths,
            });
        }
        Ok(Policy {
            text: text.to_owned(),
            rules,
            home: home.map(Path::to_path_buf),
        })
    }

    /// Reads `hapi_home/policy.toml`; a missing file is the empty policy. `~`
    /// is the user's home (`$HOME`).
    pub fn load(hapi_home: &Path) -> Result<Policy, String> {
        let path = hapi_home.join(POLICY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Policy::parse(&text, home_dir().as_deref()).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Policy::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its rules, for `GET /api/policy`.
    pub fn summary(&self) -> Vec<PolicyRuleSummary> {
        self.rules
            .iter()
            .map(|r| PolicyRuleSummary {
                name: r.name.clone(),
                action: r.action,
                agent: r.agent.clone(),
                tools: r.tools.clone(),
                commands: r.commands.iter().map(|(t, _)| t.clone()).collect(),
                paths: r.paths.iter().map(|(t, _)| t.clone()).collect(),
            })
            .collect()
    }

    /// What the policy says about `req`: `deny` if a deny rule matches, else
    /// `ask` if an ask rule matches, else `allow` if an allow rule matches, else
    /// `ask` (no rule).
    pub fn evaluate(&self, req: &PolicyRequest) -> Verdict {
        let home = self.home.as_deref();
        for action in [PolicyAction::Deny, PolicyAction::Ask, PolicyAction::Allow] {
            if let Some(rule) = self.rules.iter().find(|r| r.action == action && r.matches(req, home)) {
                return Verdict {
                    action,
                    rule: Some(rule.name.clone()),
                };
            }
        }
        Verdict {
            action: PolicyAction::Ask,
            rule: None,
        }
    }
}

impl Rule {
    fn matches(&self, req: &PolicyRequest, home: Option<&Path>) -> bool {
        if self.agent.as_deref().is_some_and(|a| a != req.agent) {
            return false;
        }
        if !self.tools.is_empty() && !self.tools.iter().any(|t| t == req.tool) {
            return false;
        }
        if !self.commands.is_empty() {
            let Some(command) = hapi_store::tools::tool_command(req.tool, req.input) else {
                return false;
            };
            let matched = if self.action == PolicyAction::Allow {
                // Exactly one plain simple command, or no match (then: ask).
                match shell::simple_command(command) {
                    Ok(argv) => self.commands.iter().any(|(_, p)| shell::words_match(p, &argv)),
                    Err(_) => false,
                }
            } else {
                // Any simple command anywhere in the line; the command name
                // by its basename unless the pattern names a path.
                shell::lenient_commands(command).iter().any(|argv| {
                    self.commands.iter().any(|(_, p)| {
                        let by_basename = p.first().is_some_and(|w| !w.contains(&Piece::Lit('/')));
                        let mut argv = argv.clone();
                        if by_basename && let Some(first) = argv.first_mut() {
                            *first = shell::basename(first).to_owned();
                        }
                        shell::words_match(p, &argv)
                    })
                })
            };
            if !matched {
                return false;
            }
        }
        if !self.paths.is_empty() {
            let target = hapi_store::tools::tool_path(req.tool, req.input).unwrap_or(req.cwd);
            let Some(components) = normalize(target, req.cwd, home) else {
                return false;
            };
            if !self.paths.iter().any(|(_, p)| path_match(p, &components)) {
                return false;
            }
        }
        true
    }
}

/// `$HOME`, what `~` means in policy paths.
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// A path pattern's components: absolute (or `~/…`), no `.` or `..`.
fn path_pattern(pattern: &str, home: Option<&Path>) -> Result<Vec<PatWord>, String> {
    let expanded = expand_tilde(pattern, home)
        .ok_or_else(|| format!("path pattern `{pattern}`: `~` needs HOME to be set, and `~user` is not supported"))?;
    if !expanded.starts_with('/') {
        return Err(format!("path pattern `{pattern}` must start with `/` or `~/`"));
    }
    let mut out = Vec::new();
    for component in expanded.split('/').filter(|c| !c.is_empty()) {
        if component == "." || component == ".." {
            return Err(format!("path pattern `{pattern}` must not contain `.` or `..`"));
        }
        out.push(
            component
                .chars()
                .map(|c| if c == '*' { Piece::Star } else { Piece::Lit(c) })
                .collect(),
        );
    }
    Ok(out)
}

fn expand_tilde(path: &str, home: Option<&Path>) -> Option<String> {
    if path == "~" || path.starts_with("~/") {
        let home = home?.to_str()?.trim_end_matches('/');
        Some(format!("{home}{}", &path[1..]))
    } else if path.starts_with('~') {
        None
    } else {
        Some(path.to_owned())
    }
}

/// The components of a request's path: `~` expanded, relative to `cwd`, `.`
/// and `..` resolved lexically (symbolic links are not followed).
fn normalize(path: &str, cwd: &str, home: Option<&Path>) -> Option<Vec<String>> {
    let expanded = expand_tilde(path, home)?;
    let full = if expanded.starts_with('/') {
        expanded
    } else {
        let base = expand_tilde(cwd, home)?;
        if !base.starts_with('/') {
            return None;
        }
        format!("{base}/{expanded}")
    };
    let mut out: Vec<String> = Vec::new();
    for component in full.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_owned()),
        }
    }
    Some(out)
}

/// `**` matches any number of components (none included); `*` any characters
/// within one component.
fn path_match(pattern: &[PatWord], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first.as_slice() == [Piece::Star, Piece::Star] => {
            (0..=path.len()).any(|skip| path_match(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((component, more)) => {
                let chars: Vec<char> = component.chars().collect();
                shell::glob_match(first, &chars) && path_match(rest, more)
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests;
