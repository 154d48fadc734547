//! What a tool does, in one place: which tool calls are *mutating* (audited,
//! see `docs/operations.md`), which input field holds the command or the path
//! (audit summaries, the approval policy), for Claude Code's tool names and for
//! ACP's tool kinds.
use serde_json::Value;

/// What a tool call can do, as far as HAPI is concerned. The names are ACP's
/// tool kinds (`execute`, `edit`, `delete`, `move`, `fetch`; `read`, `search`,
/// `think`, `switch_mode` are read-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolClass {
    /// Runs commands (Claude's `Bash`, ACP `execute`).
    Execute,
    /// Edits or writes files (`Write`, `Edit`, `MultiEdit`, `NotebookEdit`, ACP `edit`).
    Edit,
    /// Deletes files (ACP `delete`).
    Delete,
    /// Moves or renames files (ACP `move`).
    Move,
    /// Touches the network (`WebFetch`, `WebSearch`, ACP `fetch`).
    Fetch,
    /// Reads, searches, plans: changes nothing (`Read`, `Glob`, `Grep`, …).
    ReadOnly,
    /// Unknown to HAPI (MCP tools, new tools): its effects are unknown, so it
    /// counts as mutating.
    Other,
}

impl ToolClass {
    /// Whether calls of this class are recorded in the audit log: everything
    /// that runs commands, changes files or reaches the network, and anything
    /// HAPI does not know.
    pub fn is_mutating(self) -> bool {
        !matches!(self, ToolClass::ReadOnly)
    }
}

/// Claude Code's tools that change nothing.
const CLAUDE_READ_ONLY: &[&str] = &[
    "Read",
    "Glob",
    "Grep",
    "LS",
    "NotebookRead",
    "TodoRead",
    "TodoWrite",
    "Task",
    "ExitPlanMode",
    "BashOutput",
    "ListMcpResourcesTool",
    "ReadMcpResourceTool",
];

/// The class of a tool: from its ACP kind when the agent gives one, else from
/// its name (Claude Code's tools; a name that is itself an ACP kind counts as
/// that kind).
pub fn classify_tool(name: &str, acp_kind: Option<&str>) -> ToolClass {
    if let Some(class) = acp_kind.and_then(classify_acp_kind) {
        return class;
    }
    match name {
        "Bash" | "KillShell" | "KillBash" => ToolClass::Execute,
        "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => ToolClass::Edit,
        "WebFetch" | "WebSearch" => ToolClass::Fetch,
        _ if CLAUDE_READ_ONLY.contains(&name) => ToolClass::ReadOnly,
        other => classify_acp_kind(other).unwrap_or(ToolClass::Other),
    }
}

/// ACP's `ToolKind` names.
pub fn classify_acp_kind(kind: &str) -> Option<ToolClass> {
    Some(match kind {
        "execute" => ToolClass::Execute,
        "edit" => ToolClass::Edit,
        "delete" => ToolClass::Delete,
        "move" => ToolClass::Move,
        "fetch" => ToolClass::Fetch,
        "read" | "search" | "think" | "switch_mode" => ToolClass::ReadOnly,
        "other" => ToolClass::Other,
        _ => return None,
    })
}

/// Whether a call of the tool `name` is recorded in the audit log.
pub fn is_mutating_tool(name: &str) -> bool {
    classify_tool(name, None).is_mutating()
}

fn str_field<'a>(input: &'a Value, fields: &[&str]) -> Option<&'a str> {
    fields.iter().find_map(|f| input.get(*f).and_then(Value::as_str))
}

/// The shell command of a command tool's input (`Bash`'s `command`).
pub fn tool_command<'a>(name: &str, input: &'a Value) -> Option<&'a str> {
    match classify_tool(name, None) {
        ToolClass::Execute => str_field(input, &["command", "cmd"]),
        _ => None,
    }
}

/// The file (or directory) a tool's input names: `file_path`, `notebook_path`
/// or `path`. Commands have none (the session's directory stands in for them
/// in the policy).
pub fn tool_path<'a>(name: &str, input: &'a Value) -> Option<&'a str> {
    match classify_tool(name, None) {
        ToolClass::Execute | ToolClass::Fetch => None,
        _ => str_field(input, &["file_path", "notebook_path", "path"]),
    }
}

/// Longest summary kept in the audit log, in characters.
pub const SUMMARY_MAX: usize = 500;

/// A short summary of a tool call's input for the audit log: the command, the
/// path, the URL or the search query, else the input as compact JSON; at most
/// [`SUMMARY_MAX`] characters.
pub fn tool_summary(name: &str, input: &Value) -> String {
    let text = tool_command(name, input)
        .or_else(|| tool_path(name, input))
        .or_else(|| str_field(input, &["url", "query", "pattern", "directory", "cwd"]))
        .map(str::to_owned)
        .unwrap_or_else(|| match input {
            Value::Null => String::new(),
            other => other.to_string(),
        });
    truncate(&text, SUMMARY_MAX)
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claude_tools_and_acp_kinds_are_classified() {
        for name in [
            "Bash",
            "Write",
            "Edit",
            "MultiEdit",
            "NotebookEdit",
            "WebFetch",
            "WebSearch",
        ] {
            assert!(is_mutating_tool(name), "{name}");
        }
        for name in ["Read", "Glob", "Grep", "LS", "TodoWrite", "Task"] {
            assert!(!is_mutating_tool(name), "{name}");
        }
        assert!(
            is_mutating_tool("mcp__github__create_issue"),
            "unknown tools count as mutating"
        );
        for kind in ["execute", "edit", "delete", "move", "fetch"] {
            assert!(classify_tool("Something", Some(kind)).is_mutating(), "{kind}");
            assert!(is_mutating_tool(kind), "a name that is an ACP kind: {kind}");
        }
        for kind in ["read", "search", "think"] {
            assert!(!classify_tool("Something", Some(kind)).is_mutating(), "{kind}");
        }
        assert_eq!(
            classify_tool("Read", Some("execute")),
            ToolClass::Execute,
            "the kind wins"
        );
    }

    #[test]
    fn summaries_name_the_command_or_the_path() {
        assert_eq!(
            tool_summary("Bash", &json!({"command": "ls -la", "description": "x"})),
            "ls -la"
        );
        assert_eq!(
            tool_summary("Write", &json!({"file_path": "/a/b", "content": "…"})),
            "/a/b"
        );
        assert_eq!(
            tool_summary("NotebookEdit", &json!({"notebook_path": "/n.ipynb"})),
            "/n.ipynb"
        );
        assert_eq!(
            tool_summary("WebFetch", &json!({"url": "https://x", "prompt": "p"})),
            "https://x"
        );
        assert_eq!(tool_summary("mcp__x", &json!({"a": 1})), r#"{"a":1}"#);
        let long = "x".repeat(SUMMARY_MAX + 10);
        assert_eq!(
            tool_summary("Bash", &json!({"command": long})).chars().count(),
            SUMMARY_MAX + 1
        );
        assert_eq!(tool_command("Write", &json!({"command": "x"})), None);
        assert_eq!(tool_path("Bash", &json!({"path": "x"})), None);
    }
}
