//! Cuts a LINQ query into tokens, each with the 1-based character column it starts at, so
//! every later error can point at the place in the text the user typed.
//!
//! It knows nothing of clauses or functions; an operator outside the subset (`+`, `|`, …)
//! is an error here, with its column.

use super::LinqError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A word: keyword, column, function, or a dotted table name (`cloud.office365.management`).
    Ident(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `->` (has)
    Arrow,
    /// `->>` (weakhas)
    WeakArrow,
    /// `-` alone (Devo's `group every -`)
    Minus,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(s) => format!("the string {s:?}"),
            Tok::Num(n) => format!("the number {n}"),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Eq => "`=`".into(),
            Tok::Ne => "`!=`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::Arrow => "`->`".into(),
            Tok::WeakArrow => "`->>`".into(),
            Tok::Minus => "`-`".into(),
        }
    }
}

/// A token and the column (1-based, in characters) where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub col: usize,
    /// Column just past the token's last character.
    pub end: usize,
}

pub fn lex(src: &str) -> Result<Vec<Token>, LinqError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let single = |t: Tok| Token {
            tok: t,
            col,
            end: col + 1,
        };
        match c {
            '(' => out.push(single(Tok::LParen)),
            ')' => out.push(single(Tok::RParen)),
            '[' => out.push(single(Tok::LBracket)),
            ']' => out.push(single(Tok::RBracket)),
            '{' => out.push(single(Tok::LBrace)),
            '}' => out.push(single(Tok::RBrace)),
            ',' => out.push(single(Tok::Comma)),
            '=' => {
                if chars.get(i + 1) == Some(&'=') {
                    return Err(LinqError::at(
                        col,
                        "`==` is not LINQ: write `=` or eq(a, b)",
                    ));
                }
                out.push(single(Tok::Eq))
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Token {
                    tok: Tok::Ne,
                    col,
                    end: col + 2,
                });
                i += 1;
            }
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                let tok = match (c, eq) {
                    ('<', false) => Tok::Lt,
                    ('<', true) => Tok::Le,
                    ('>', false) => Tok::Gt,
                    _ => Tok::Ge,
                };
                out.push(Token {
                    tok,
                    col,
                    end: col + 1 + usize::from(eq),
                });
                i += usize::from(eq);
            }
            '-' => {
                if chars.get(i + 1) == Some(&'>') {
                    if chars.get(i + 2) == Some(&'>') {
                        out.push(Token {
                            tok: Tok::WeakArrow,
                            col,
                            end: col + 3,
                        });
                        i += 2;
                    } else {
                        out.push(Token {
                            tok: Tok::Arrow,
                            col,
                            end: col + 2,
                        });
                        i += 1;
                    }
                } else if chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    let (n, len) = number(&chars[i + 1..]);
                    out.push(Token {
                        tok: Tok::Num(-n),
                        col,
                        end: col + 1 + len,
                    });
                    i += len;
                } else {
                    out.push(single(Tok::Minus))
                }
            }
            '"' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    let Some(&d) = chars.get(j) else {
                        return Err(LinqError::at(
                            col,
                            "this string is never closed (missing `\"`)",
                        ));
                    };
                    match d {
                        '"' => break,
                        '\\' => {
                            let e = chars.get(j + 1).copied();
                            s.push(match e {
                                Some('"') => '"',
                                Some('\\') => '\\',
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                _ => {
                                    return Err(LinqError::at(
                                        j + 1,
                                        "unknown escape in a string: use \\\" \\\\ \\n \\t or \\r",
                                    ));
                                }
                            });
                            j += 2;
                        }
                        _ => {
                            s.push(d);
                            j += 1;
                        }
                    }
                }
                out.push(Token {
                    tok: Tok::Str(s),
                    col,
                    end: j + 2,
                });
                i = j;
            }
            c if c.is_ascii_digit() => {
                let (n, len) = number(&chars[i..]);
                out.push(Token {
                    tok: Tok::Num(n),
                    col,
                    end: col + len,
                });
                i += len - 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut j = i;
                // a dot continues the word only when a letter, digit or `_` follows it:
                // table names are dotted, columns and functions never are
                while j < chars.len()
                    && (chars[j].is_ascii_alphanumeric()
                        || chars[j] == '_'
                        || (chars[j] == '.'
                            && chars
                                .get(j + 1)
                                .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_')))
                {
                    j += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(chars[i..j].iter().collect()),
                    col,
                    end: j + 1,
                });
                i = j - 1;
            }
            '\'' => {
                return Err(LinqError::at(
                    col,
                    "strings are written in double quotes (\"…\") in LINQ",
                ));
            }
            other => {
                return Err(LinqError::at(
                    col,
                    format!("`{other}` is not part of the LINQ subset m365audit runs"),
                ));
            }
        }
        i += 1;
    }
    Ok(out)
}

/// A decimal number at the start of `chars` and how many characters it spans. A number
/// runs into following letters (`1h`) only as far as its digits: the unit is the next token.
fn number(chars: &[char]) -> (f64, usize) {
    let mut j = 0;
    let mut seen_dot = false;
    while j < chars.len() {
        let c = chars[j];
        if c.is_ascii_digit() {
            j += 1;
        } else if c == '.' && !seen_dot && chars.get(j + 1).is_some_and(|d| d.is_ascii_digit()) {
            seen_dot = true;
            j += 1;
        } else {
            break;
        }
    }
    let text: String = chars[..j].iter().collect();
    (text.parse().unwrap_or(0.0), j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_their_columns() {
        let t = lex(r#"from cloud.office365.management where eq(Operation,"X")"#).unwrap();
        assert_eq!(t[0].tok, Tok::Ident("from".into()));
        assert_eq!(t[1].tok, Tok::Ident("cloud.office365.management".into()));
        assert_eq!(t[1].col, 6);
        assert_eq!(t[3].col, 39);
        assert_eq!(t[7].tok, Tok::Str("X".into()));
    }

    #[test]
    fn arrows_durations_and_negative_numbers() {
        let t: Vec<Tok> = lex("a -> b ->> c 1h -1 - <= !=")
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect();
        assert_eq!(
            t,
            vec![
                Tok::Ident("a".into()),
                Tok::Arrow,
                Tok::Ident("b".into()),
                Tok::WeakArrow,
                Tok::Ident("c".into()),
                Tok::Num(1.0),
                Tok::Ident("h".into()),
                Tok::Num(-1.0),
                Tok::Minus,
                Tok::Le,
                Tok::Ne,
            ]
        );
    }

    #[test]
    fn outside_characters_fail_with_their_column() {
        let e = lex("from x where a + b").unwrap_err();
        assert_eq!(e.col, 16);
        assert!(e.msg.contains('+'), "{e}");
        assert_eq!(lex("where \"abc").unwrap_err().col, 7);
        assert!(lex("where a == b").unwrap_err().msg.contains("`=`"));
    }
}
