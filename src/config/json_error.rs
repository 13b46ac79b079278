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

/// `text` with the value of every secret-looking key (`*secret*`, `*token*`, `*key*`,
/// `*password*`) replaced by `*` of the same length, so lines and columns still match.
/// Tolerates broken JSON: it only tracks strings and colons.
fn mask_secret_values(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = chars.clone();
    let mut i = 0;
    let mut mask_next_string = false;
    let mut last_string: Option<String> = None;
    while i < chars.len() {
        match chars[i] {
            '"' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j] != '"' && chars[j] != '\n' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
                let end = j.min(chars.len());
                if mask_next_string {
                    for c in &mut out[start..end] {
                        *c = '*';
                    }
                    mask_next_string = false;
                    last_string = None;
                } else {
                    last_string = Some(chars[start..end].iter().collect());
                }
                i = end + 1;
            }
            ':' => {
                mask_next_string = last_string.take().is_some_and(|k| {
                    let k = k.to_ascii_lowercase();
                    ["secret", "token", "key", "password"]
                        .iter()
                        .any(|w| k.contains(w))
                });
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            _ => {
                mask_next_string = false;
                last_string = None;
                i += 1;
            }
        }
    }
    out.into_iter().collect()
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
