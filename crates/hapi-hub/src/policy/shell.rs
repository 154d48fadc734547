//! A small, conservative shell tokenizer for the approval policy.
//!
//! Two readings of a command line:
//!
//! - [`simple_command`] (for `allow`): the line must be exactly one simple
//!   command: words separated by blanks, with `'…'`, `"…"` and `\` quoting,
//!   and nothing else. Anything that could make the shell run something other
//!   than that one argv is refused: `;` `&` `|` newlines (several commands),
//!   `<` `>` (redirections), `$` (expansions: variables, `$(…)`, `$'…'`),
//!   backquotes, `(` `)` (subshells, process substitution), `{` `}` (groups,
//!   brace expansion), unquoted `*` `?` `[` (globs: the argv would be file
//!   names), `!`, a leading `#` (comments), control characters, an
//!   environment assignment before the command (`FOO=1 cmd`), shell keywords
//!   (`if`, `for`, `coproc`, `time`, …), unterminated quotes. A refusal is not an
//!   error: the request is then asked, never allowed.
//! - [`lenient_commands`] (for `deny` and `ask`): every simple command that a
//!   compound line seems to contain, best effort: split at operators outside
//!   quotes, the insides of `$(…)` and backquotes read as commands too,
//!   redirections dropped, leading assignments and wrappers (`sudo`, `env`,
//!   `nohup`, `xargs`, …) skipped. It may find more than the shell would run,
//!   which is the safe direction for a deny rule.
//!
//! Patterns ([`pattern_words`]) are read like [`simple_command`], except that an
//! unquoted `*` is a wildcard (see [`words_match`]).

/// One piece of a pattern word: a literal character or the `*` wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    /// This character.
    Lit(char),
    /// Any sequence of characters within one word (or, as a whole last word,
    /// any remaining words).
    Star,
}

/// A pattern word.
pub(crate) type PatWord = Vec<Piece>;

/// Shell keywords: a command starting with one is not a simple command.
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do", "done", "function",
    "time", "coproc", "in", "[[", "]]",
];

/// Why a line is not one plain simple command (shown in the policy editor for
/// patterns; for requests it only means "ask").
pub(crate) type NotSimple = String;

fn tokenize(text: &str, pattern: bool) -> Result<Vec<PatWord>, NotSimple> {
    let chars: Vec<char> = text.chars().collect();
    let mut words: Vec<PatWord> = Vec::new();
    let mut cur: Option<PatWord> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            '\n' | '\r' => return Err("a line break (more than one command)".into()),
            ';' => return Err("`;` (more than one command)".into()),
            '&' => return Err("`&` (`&&`, or a background job)".into()),
            '|' => return Err("`|` (a pipe, or `||`)".into()),
            '<' | '>' => return Err(format!("`{c}` (a redirection)")),
            '(' | ')' => return Err(format!("`{c}` (a subshell or process substitution)")),
            '`' => return Err("a backquote (command substitution)".into()),
            '$' => return Err("`$` (a variable, `$(…)` or another expansion)".into()),
            '{' | '}' => return Err(format!("`{c}` (a command group or brace expansion)")),
            '!' => return Err("`!`".into()),
            '*' if pattern => cur.get_or_insert_with(Vec::new).push(Piece::Star),
            '*' | '?' | '[' => {
                return Err(format!(
                    "an unquoted `{c}` (a glob the shell would expand to file names)"
                ));
            }
            '#' if cur.is_none() => return Err("`#` (a comment)".into()),
            '\\' => {
                i += 1;
                match chars.get(i) {
                    None => return Err("a trailing backslash".into()),
                    Some('\n' | '\r') => return Err("a line continuation".into()),
                    Some(&next) if next.is_control() => return Err("a control character".into()),
                    Some(&next) => cur.get_or_insert_with(Vec::new).push(Piece::Lit(next)),
                }
            }
            '\'' => {
                let word = cur.get_or_insert_with(Vec::new);
                loop {
                    i += 1;
                    match chars.get(i) {
                        None => return Err("an unterminated `'`".into()),
                        Some('\'') => break,
                        Some(&q) if q.is_control() => return Err("a line break or control character in quotes".into()),
                        Some(&q) => word.push(Piece::Lit(q)),
                    }
                }
            }
            '"' => {
                let word = cur.get_or_insert_with(Vec::new);
                loop {
                    i += 1;
                    match chars.get(i) {
                        None => return Err("an unterminated `\"`".into()),
                        Some('"') => break,
                        Some('$') => return Err("`$` in double quotes (an expansion)".into()),
                        Some('`') => return Err("a backquote in double quotes (command substitution)".into()),
                        Some('!') => return Err("`!` in double quotes".into()),
                        Some('\\') => match chars.get(i + 1) {
                            Some(&e @ ('$' | '`' | '"' | '\\')) => {
                                word.push(Piece::Lit(e));
                                i += 1;
                            }
                            Some('\n' | '\r') => return Err("a line continuation".into()),
                            _ => word.push(Piece::Lit('\\')),
                        },
                        Some(&q) if q.is_control() => return Err("a line break or control character in quotes".into()),
                        Some(&q) => word.push(Piece::Lit(q)),
                    }
                }
            }
            c if c.is_control() => return Err("a control character".into()),
            c => cur.get_or_insert_with(Vec::new).push(Piece::Lit(c)),
        }
        i += 1;
    }
    if let Some(w) = cur.take() {
        words.push(w);
    }
    let Some(first) = words.first() else {
        return Err("an empty command".into());
    };
    let first: String = first
        .iter()
        .map(|p| match p {
            Piece::Lit(c) => *c,
            Piece::Star => '*',
        })
        .collect();
    if is_assignment(&first) {
        return Err(format!("`{first}` (an environment assignment before the command)"));
    }
    if KEYWORDS.contains(&first.as_str()) {
        return Err(format!("`{first}` (a shell keyword)"));
    }
    Ok(words)
}

/// `NAME=…` with a valid variable name.
fn is_assignment(word: &str) -> bool {
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The argv of `text` if it is exactly one plain simple command (see the module
/// documentation), else why not.
pub(crate) fn simple_command(text: &str) -> Result<Vec<String>, NotSimple> {
    Ok(tokenize(text, false)?
        .into_iter()
        .map(|w| {
            w.into_iter()
                .map(|p| match p {
                    Piece::Lit(c) => c,
                    Piece::Star => unreachable!("no wildcards outside patterns"),
                })
                .collect()
        })
        .collect())
}

/// A command pattern's words: like [`simple_command`], with unquoted `*` as the
/// wildcard.
pub(crate) fn pattern_words(text: &str) -> Result<Vec<PatWord>, NotSimple> {
    tokenize(text, true)
}

/// Glob match within one word (or one path component): `Star` matches any run
/// of characters, including none.
pub(crate) fn glob_match(pattern: &[Piece], text: &[char]) -> bool {
    // Iterative matching with backtracking to the last star: linear in practice.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Piece::Lit(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(Piece::Star) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|piece| *piece == Piece::Star)
}

fn is_bare_star(word: &PatWord) -> bool {
    word.as_slice() == [Piece::Star]
}

/// Whether `argv` matches the pattern words: word by word, where a word that is
/// just `*` matches any one word, `*` inside a word matches any characters
/// within that word, and a last word that is just `*` matches any remaining
/// words (none included). Otherwise the counts must be equal.
pub(crate) fn words_match(pattern: &[PatWord], argv: &[String]) -> bool {
    let (fixed, rest_any) = match pattern.split_last() {
        Some((last, init)) if is_bare_star(last) => (init, true),
        _ => (pattern, false),
    };
    if argv.len() < fixed.len() || (!rest_any && argv.len() != fixed.len()) {
        return false;
    }
    fixed.iter().zip(argv).all(|(p, a)| {
        let chars: Vec<char> = a.chars().collect();
        glob_match(p, &chars)
    })
}

/// Wrappers that run their arguments as a command, and their options that take
/// a value (skipped with it when looking for the command they run).
const WRAPPERS: &[(&str, &[&str])] = &[
    (
        "sudo",
        &["-u", "-g", "-h", "-p", "-C", "-r", "-t", "-U", "-D", "-R", "-T"],
    ),
    ("doas", &["-u", "-C"]),
    ("env", &["-u", "-C", "-S", "--unset", "--chdir"]),
    ("command", &[]),
    ("builtin", &[]),
    ("exec", &["-a"]),
    ("nohup", &[]),
    ("time", &["-f", "-o"]),
    ("nice", &["-n", "--adjustment"]),
    ("ionice", &["-c", "-n", "-p"]),
    ("stdbuf", &["-i", "-o", "-e"]),
    ("timeout", &["-s", "-k", "--signal", "--kill-after"]),
    (
        "xargs",
        &[
            "-I",
            "-n",
            "-L",
            "-P",
            "-d",
            "-E",
            "-s",
            "-a",
            "--max-args",
            "--max-procs",
            "--delimiter",
        ],
    ),
    ("chroot", &[]),
    ("setsid", &[]),
    ("unbuffer", &[]),
];

/// The basename of a command word (`/usr/bin/rm` → `rm`).
pub(crate) fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// Skips leading assignments and wrappers (`sudo -u root env X=1 rm …` → `rm …`).
fn unwrap_command(mut argv: Vec<String>) -> Vec<String> {
    loop {
        let skip = argv.iter().take_while(|w| is_assignment(w)).count();
        argv.drain(..skip);
        let Some(first) = argv.first() else {
            return argv;
        };
        let Some((_, with_value)) = WRAPPERS.iter().find(|(name, _)| *name == basename(first)) else {
            return argv;
        };
        let wrapper = basename(first).to_owned();
        let mut i = 1;
        while let Some(w) = argv.get(i) {
            if w == "--" {
                i += 1;
                break;
            }
            if w.starts_with('-') && w.len() > 1 {
                i += if with_value.contains(&w.as_str()) { 2 } else { 1 };
                continue;
            }
            if is_assignment(w) {
                i += 1;
                continue;
            }
            // `timeout 10s cmd`, `nice 5 cmd`: a leading duration or number.
            if matches!(wrapper.as_str(), "timeout" | "nice") && w.starts_with(|c: char| c.is_ascii_digit()) {
                i += 1;
                continue;
            }
            // `chroot DIR cmd`
            if wrapper == "chroot" && i == 1 {
                i += 1;
                continue;
            }
            break;
        }
        argv.drain(..i.min(argv.len()));
    }
}

/// Every simple command a (possibly compound) line seems to contain, as argv
/// lists with assignments and wrappers skipped; best effort, see the module
/// documentation.
pub(crate) fn lenient_commands(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    lenient_into(text, &mut out, 0);
    out
}

fn lenient_into(text: &str, out: &mut Vec<Vec<String>>, depth: usize) {
    if depth > 16 {
        return;
    }
    let chars: Vec<char> = text.chars().collect();
    let mut segment = String::new();
    let mut nested: Vec<String> = Vec::new();
    let mut i = 0;
    #[derive(PartialEq)]
    enum Q {
        None,
        Single,
        Double,
    }
    let mut q = Q::None;
    let flush = |segment: &mut String, out: &mut Vec<Vec<String>>| {
        let argv = unwrap_command(lenient_words(segment));
        if !argv.is_empty() {
            out.push(argv);
        }
        segment.clear();
    };
    while i < chars.len() {
        let c = chars[i];
        match q {
            Q::Single => {
                if c == '\'' {
                    q = Q::None;
                }
                segment.push(c);
            }
            _ if c == '\\' => {
                segment.push(c);
                if let Some(&n) = chars.get(i + 1) {
                    segment.push(n);
                    i += 1;
                }
            }
            _ if c == '`' => {
                // Backquoted command substitution: read its inside as commands.
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j] != '`' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
                nested.push(chars[start..j.min(chars.len())].iter().collect());
                i = j;
            }
            _ if c == '$' && chars.get(i + 1) == Some(&'(') => {
                let start = i + 2;
                let mut depth_paren = 1;
                let mut j = start;
                while j < chars.len() {
                    match chars[j] {
                        '(' => depth_paren += 1,
                        ')' => {
                            depth_paren -= 1;
                            if depth_paren == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                nested.push(chars[start..j.min(chars.len())].iter().collect());
                i = j;
            }
            Q::Double => {
                if c == '"' {
                    q = Q::None;
                }
                segment.push(c);
            }
            Q::None => match c {
                '\'' => {
                    q = Q::Single;
                    segment.push(c);
                }
                '"' => {
                    q = Q::Double;
                    segment.push(c);
                }
                ';' | '&' | '|' | '\n' | '\r' | '(' | ')' | '{' | '}' => flush(&mut segment, out),
                c => segment.push(c),
            },
        }
        i += 1;
    }
    flush(&mut segment, out);
    for inner in nested {
        lenient_into(&inner, out, depth + 1);
    }
}

/// The words of one segment, quotes removed, redirections (and their targets)
/// dropped; expansions are kept as text.
fn lenient_words(segment: &str) -> Vec<String> {
    let chars: Vec<char> = segment.chars().collect();
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut drop_next = false;
    let mut i = 0;
    let end_word = |cur: &mut Option<String>, words: &mut Vec<String>, drop_next: &mut bool| {
        if let Some(w) = cur.take() {
            if *drop_next {
                *drop_next = false;
            } else {
                words.push(w);
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => end_word(&mut cur, &mut words, &mut drop_next),
            '<' | '>' => {
                // `2>`: the digits before it are the file descriptor, not a word.
                if cur.as_deref().is_some_and(|w| w.chars().all(|d| d.is_ascii_digit())) {
                    cur = None;
                } else {
                    end_word(&mut cur, &mut words, &mut drop_next);
                }
                while matches!(chars.get(i + 1), Some('<' | '>' | '&')) {
                    i += 1;
                }
                drop_next = true;
            }
            '\\' => {
                i += 1;
                if let Some(&n) = chars.get(i) {
                    cur.get_or_insert_with(String::new).push(n);
                }
            }
            '\'' => {
                let w = cur.get_or_insert_with(String::new);
                i += 1;
                while let Some(&n) = chars.get(i) {
                    if n == '\'' {
                        break;
                    }
                    w.push(n);
                    i += 1;
                }
            }
            '"' => {
                let w = cur.get_or_insert_with(String::new);
                i += 1;
                while let Some(&n) = chars.get(i) {
                    if n == '"' {
                        break;
                    }
                    if n == '\\' && matches!(chars.get(i + 1), Some('$' | '`' | '"' | '\\')) {
                        i += 1;
                        w.push(chars[i]);
                    } else {
                        w.push(n);
                    }
                    i += 1;
                }
            }
            c => cur.get_or_insert_with(String::new).push(c),
        }
        i += 1;
    }
    end_word(&mut cur, &mut words, &mut drop_next);
    words
}
