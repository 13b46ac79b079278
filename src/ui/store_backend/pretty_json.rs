//! The record view's JSON: the stored text re-indented, not re-serialized.

/// Re-indents valid JSON text two spaces per level, keeping its key order and every
/// value's exact text (a parse + re-serialize would sort keys and reformat numbers).
pub fn pretty_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    let mut chars = raw.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // Keep empty containers on one line.
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}') | Some(']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn pretty_json_keeps_order_and_text() {
        let raw = r#"{"Id":"a","B":[1,2.50,{}],"A":{"x":"q\"uo,te:{"},"E":[]}"#;
        let p = pretty_json(raw);
        assert_eq!(
            p,
            "{\n  \"Id\": \"a\",\n  \"B\": [\n    1,\n    2.50,\n    {}\n  ],\n  \"A\": {\n    \"x\": \"q\\\"uo,te:{\"\n  },\n  \"E\": []\n}"
        );
        let back: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(raw).unwrap());
    }
}
