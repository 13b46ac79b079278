//! The search index's word splitter for record text: tantivy's simple tokenizer (runs of
//! letters and digits), except that a GUID (`8-4-4-4-12` hex digits) is one token.
//!
//! Audit records carry several unique GUIDs each (Id, session, correlation and request
//! ids). Split at every `-`, each GUID became five terms, most of them seen once in the
//! whole index: the term dictionary — built again at every segment flush and merge — was
//! the most expensive part of a backfill. As one token, a GUID is one term, and searching
//! for it is a term query instead of a five-word phrase. The cost: a fragment of a GUID no
//! longer matches on its own. This file owns only the splitting; lower-casing and the
//! long-token limit are the analyzer's (`index.rs`).

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Length of a GUID in its 8-4-4-4-12 form.
const GUID_LEN: usize = 36;

#[derive(Clone, Default)]
pub struct RecordTokenizer {
    token: Token,
}

pub struct RecordTokenStream<'a> {
    text: &'a str,
    /// Byte offset where the search for the next token starts.
    pos: usize,
    token: &'a mut Token,
}

impl Tokenizer for RecordTokenizer {
    type TokenStream<'a> = RecordTokenStream<'a>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> RecordTokenStream<'a> {
        self.token.reset();
        RecordTokenStream {
            text,
            pos: 0,
            token: &mut self.token,
        }
    }
}

/// True when `s` starts with a GUID that is not followed by another letter or digit.
fn starts_with_guid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < GUID_LEN {
        return false;
    }
    let shape_ok = b[..GUID_LEN].iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    });
    shape_ok
        && s[GUID_LEN..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric())
}

impl TokenStream for RecordTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.token.text.clear();
        self.token.position = self.token.position.wrapping_add(1);
        let rest = &self.text[self.pos..];
        let Some((start_rel, _)) = rest.char_indices().find(|(_, c)| c.is_alphanumeric()) else {
            self.pos = self.text.len();
            return false;
        };
        let start = self.pos + start_rel;
        let word = &self.text[start..];
        let len = if starts_with_guid(word) {
            GUID_LEN
        } else {
            word.char_indices()
                .find(|(_, c)| !c.is_alphanumeric())
                .map_or(word.len(), |(i, _)| i)
        };
        let end = start + len;
        self.token.offset_from = start;
        self.token.offset_to = end;
        self.token.text.push_str(&self.text[start..end]);
        self.pos = end;
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut t = RecordTokenizer::default();
        let mut s = t.token_stream(text);
        let mut out = Vec::new();
        while s.advance() {
            let k = s.token();
            out.push((k.text.clone(), k.position, k.offset_from, k.offset_to));
        }
        out
    }

    #[test]
    fn words_split_like_the_simple_tokenizer() {
        let got: Vec<String> = tokens("Hello, sofia.garcia@fabrikam.com — Ünïcode 42x!")
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(
            got,
            [
                "Hello",
                "sofia",
                "garcia",
                "fabrikam",
                "com",
                "Ünïcode",
                "42x"
            ]
        );
        assert!(tokens("").is_empty());
        assert!(tokens(" -- ").is_empty());
    }

    #[test]
    fn a_guid_is_one_token_with_positions_and_offsets() {
        let t = tokens("session {A2D2E0AD-b397-4067-a915-453238d4d2fe} ok");
        assert_eq!(
            t,
            vec![
                ("session".into(), 0, 0, 7),
                ("A2D2E0AD-b397-4067-a915-453238d4d2fe".into(), 1, 9, 45),
                ("ok".into(), 2, 47, 49),
            ]
        );
    }

    #[test]
    fn near_guids_split_as_words() {
        // one hex digit short, a non-hex letter, or glued to more letters: plain words
        for s in [
            "a2d2e0a-b397-4067-a915-453238d4d2fe",
            "g2d2e0ad-b397-4067-a915-453238d4d2fe",
            "a2d2e0ad-b397-4067-a915-453238d4d2fex",
        ] {
            assert_eq!(tokens(s).len(), 5, "{s}");
        }
        // a GUID followed by punctuation or a newline is still one token
        assert_eq!(tokens("a2d2e0ad-b397-4067-a915-453238d4d2fe.\nx").len(), 2);
    }
}
