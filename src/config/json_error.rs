//! A JSON syntax error in a config file as a human message: line, column, an excerpt of
//! the line with secret values masked, and the likely fix. It has its own small scanner
//! because the text it reads is, by definition, not valid JSON.

/// A serde_json syntax error as a human message: line, column, the line with a caret, and
/// the likely fix where one is recognisable (a missing or a trailing comma).
pub fn describe_json_error(text: &str, e: &serde_json::Error) -> String {
    let (line, col) = (e.line(), e.column());
    let inner = e.to_string();
    // serde_json appends " at line L column C"; we say it our way.
    let what = inner
        .rsplit_once(" at line ")
        .map(|(w, _)| w.to_string())
        .unwrap_or(inner.clone());
    let mut msg = format!("invalid JSON at line {line}, column {col}: {what}");
    if line == 0 {
        return msg;
    }
    // The excerpt must not show a secret that sits near the error.
    let masked = mask_secret_values(text);
    let lines: Vec<&str> = masked.split('\n').collect();
    let Some(this_line) = lines.get(line - 1) else {
        return msg;
    };
    let this_line = this_line.trim_end_matches('\r');
    let chars: Vec<char> = this_line.chars().collect();
    // serde_json's column is 1-based and points at the offending character.
    let at = col.saturating_sub(1).min(chars.len());
    let (snippet, caret) = excerpt(&chars, at);
    msg.push_str(&format!("\n  {line:>4} | {snippet}\n       | {caret}^"));

    if what.starts_with("expected `,`") {
        // The comma belongs right after the last non-blank character before the error.
        let mut l = line - 1;
        let mut prefix: Vec<char> = chars[..at].to_vec();
        loop {
            while prefix.last().is_some_and(|c| c.is_whitespace()) {
                prefix.pop();
            }
            if !prefix.is_empty() || l == 0 {
                break;
            }
            l -= 1;
            prefix = lines[l].trim_end_matches('\r').chars().collect();
        }
        if !prefix.is_empty() {
            let end_col = prefix.len();
            let tail = tail_context(&prefix);
            msg.push_str(&format!(
                "\n  likely fix: missing comma after line {} (column {end_col}, after `{tail}`)?",
                l + 1
            ));
        }
    } else if what.starts_with("trailing comma") {
        msg.push_str("\n  likely fix: remove the comma before the closing bracket");
    } else if what.starts_with("key must be a string") {
        msg.push_str("\n  likely fix: keys need double quotes, and no comma after the last member");
    } else if what.starts_with("expected value") && chars.get(at) == Some(&'<') {
        msg.push_str("\n  likely fix: placeholders like <CLIENT_ID> must be inside double quotes");
    }
    msg
}

/// Key names whose value is (or may be) a secret: the client secret, the UI token, Devo's
/// keys and certificates, and anything a user names like them.
const SECRET_KEY_WORDS: &[&str] = &["secret", "token", "key", "password", "cert", "credential"];

/// Characters an operator's paste may use as quotes: ASCII, typographic (an editor or a
/// chat client "smartened" them) and backticks.
fn is_quote(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | '`'
            | '\u{201c}'
            | '\u{201d}'
            | '\u{2018}'
            | '\u{2019}'
            | '\u{201e}'
            | '\u{00ab}'
            | '\u{00bb}'
    )
}

/// `text` with the value of every secret-looking key (see [`SECRET_KEY_WORDS`]) replaced by
/// `*` of the same length, so lines and columns still match. The text is broken JSON, so
/// this trusts no quoting: a key is a quoted string (any quote characters) or a bare word
/// before a `:`; its value is masked whatever it starts with — up to its closing quote (any
/// quote character), or if unquoted up to the end of the line or a `,` that starts the next
/// quoted member. Object and array values (`{"env": …}`) are scanned on, not masked.
fn mask_secret_values(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = chars.clone();
    let mut i = 0;
    let mut last_word: Option<String> = None;
    // the end (exclusive) of a string or bare word starting at `i`
    let string_end = |i: usize| -> usize {
        let open = chars[i];
        let mut j = i + 1;
        while j < chars.len() && chars[j] != '\n' {
            if open == '"' {
                if chars[j] == '"' {
                    break;
                }
                j += if chars[j] == '\\' { 2 } else { 1 };
            } else if is_quote(chars[j]) {
                break;
            } else {
                j += 1;
            }
        }
        j.min(chars.len())
    };
    while i < chars.len() {
        let c = chars[i];
        if is_quote(c) {
            let end = string_end(i);
            last_word = Some(chars[i + 1..end].iter().collect());
            i = end + 1;
        } else if c == ':' {
            let secret = last_word.take().is_some_and(|k| {
                let k = k.to_lowercase();
                // a date (`client_secret_expires`) is not a secret, and helps to see
                !k.ends_with("expires") && SECRET_KEY_WORDS.iter().any(|w| k.contains(w))
            });
            i += 1;
            if !secret {
                continue;
            }
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            let Some(&v) = chars.get(i) else { break };
            if v == '{' || v == '[' {
                continue;
            }
            let (from, to) = if is_quote(v) {
                (i + 1, string_end(i))
            } else {
                let mut j = i;
                while j < chars.len() && chars[j] != '\n' && !next_member_starts(&chars, j) {
                    j += 1;
                }
                (i, j)
            };
            for m in &mut out[from..to] {
                if !m.is_whitespace() {
                    *m = '*';
                }
            }
            i = if is_quote(v) { to + 1 } else { to };
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' || c == '-' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '-')
            {
                i += 1;
            }
            last_word = Some(chars[start..i].iter().collect());
        } else {
            last_word = None;
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// Whether `chars[j]` is a `,` followed (after blanks) by a quote: the end of an unquoted
/// value on a one-line config.
fn next_member_starts(chars: &[char], j: usize) -> bool {
    chars[j] == ','
        && chars[j + 1..]
            .iter()
            .find(|c| !c.is_whitespace())
            .is_some_and(|&c| is_quote(c))
}

/// At most ~70 characters of a line around `at`, and the caret's indentation.
fn excerpt(chars: &[char], at: usize) -> (String, String) {
    let start = at.saturating_sub(50);
    let end = (at + 20).min(chars.len());
    let mut s: String = chars[start..end].iter().collect();
    let mut pad = at - start;
    if start > 0 {
        s = format!("…{s}");
        pad += 1;
    }
    if end < chars.len() {
        s.push('…');
    }
    (s, " ".repeat(pad))
}

/// The member that ends `prefix` (e.g. `"azure_active_directory": {}`): scan back to the
/// `,` or unmatched opening bracket before it.
fn tail_context(prefix: &[char]) -> String {
    let mut depth = 0i32;
    let mut start = 0;
    for i in (0..prefix.len()).rev() {
        match prefix[i] {
            '}' | ']' => depth += 1,
            '{' | '[' if depth == 0 => {
                start = i + 1;
                break;
            }
            '{' | '[' => depth -= 1,
            ',' if depth == 0 => {
                start = i + 1;
                break;
            }
            _ => {}
        }
    }
    let s: String = prefix[start..].iter().collect();
    let s = s.trim();
    let n = s.chars().count();
    if n > 60 {
        let t: String = s.chars().skip(n - 60).collect();
        format!("…{t}")
    } else {
        s.to_string()
    }
}
