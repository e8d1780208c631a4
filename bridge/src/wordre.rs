//! Regexes with word boundaries that stay fast on text holding emoji, curly quotes and other non-ASCII symbols.
//!
//! The `regex` crate's fast engine (a lazy DFA) cannot evaluate a Unicode `\b` once the text holds a non-ASCII
//! byte, and falls back to a much slower engine for the whole search. Most messages hold such bytes (an emoji, a
//! curly apostrophe), so a pattern with `\b` cost several times what it should. A [`WordRegex`] keeps two
//! compilations of one pattern: as written, and with every `\b`/`\B` made ASCII-only. The two agree exactly on any
//! text in which no non-ASCII character is a word character (letters with accents, non-Latin digits), because
//! there every character is a word character under both definitions or under neither; everything else in the
//! pattern is the same. [`TextKind`] tells which case a text is, once per text, and the search picks the fast
//! compilation whenever the results cannot differ.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// Whether the fast (ASCII word boundary) compilation gives the same results as the pattern as written on a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextKind {
    unicode_words: bool,
}

impl TextKind {
    /// Looks at the text once: does it hold a non-ASCII character that Unicode counts as a word character?
    pub fn of(text: &str) -> TextKind {
        static NON_ASCII_WORD: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"[\w&&[^\x00-\x7F]]").expect("a valid pattern"));
        TextKind { unicode_words: !text.is_ascii() && NON_ASCII_WORD.is_match(text) }
    }
}

/// One pattern, compiled as written and with ASCII-only word boundaries.
#[derive(Debug, Clone)]
pub struct WordRegex {
    exact: Regex,
    fast: Regex,
}

impl WordRegex {
    pub fn new(pattern: &str) -> Result<WordRegex, regex::Error> {
        let exact = Regex::new(pattern)?;
        let ascii = ascii_boundaries(pattern);
        let fast = if ascii == pattern { exact.clone() } else { Regex::new(&ascii)? };
        Ok(WordRegex { exact, fast })
    }

    /// The compilation to search `text` with, given its [`TextKind`].
    pub fn for_text(&self, kind: TextKind) -> &Regex {
        if kind.unicode_words { &self.exact } else { &self.fast }
    }

    /// The pattern as written.
    pub fn exact(&self) -> &Regex {
        &self.exact
    }
}

/// Several patterns screened in one pass: which of them match a text at all. Patterns that do not match need no
/// search of their own, and most messages hold no private data, so one pass replaces many.
#[derive(Debug, Clone)]
pub struct WordRegexSet {
    exact: RegexSet,
    fast: RegexSet,
}

impl WordRegexSet {
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a WordRegex>) -> Result<WordRegexSet, regex::Error> {
        let patterns: Vec<&WordRegex> = patterns.into_iter().collect();
        Ok(WordRegexSet {
            exact: RegexSet::new(patterns.iter().map(|p| p.exact.as_str()))?,
            fast: RegexSet::new(patterns.iter().map(|p| p.fast.as_str()))?,
        })
    }

    /// For each pattern in order, whether it matches somewhere in `text`.
    pub fn matches(&self, text: &str, kind: TextKind) -> regex::SetMatches {
        if kind.unicode_words { self.exact.matches(text) } else { self.fast.matches(text) }
    }
}

/// Rewrites `\b` and `\B` outside character classes as `(?-u:\b)` and `(?-u:\B)`; every other escape is kept.
fn ascii_boundaries(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut class_depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(b @ ('b' | 'B')) if class_depth == 0 => {
                    out.push_str("(?-u:\\");
                    out.push(b);
                    out.push(')');
                }
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            '[' => {
                class_depth += 1;
                out.push(c);
                // A `]` right after the opening `[` or `[^` is a literal, not the end of the class.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push(']');
                    chars.next();
                }
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_boundaries_but_not_escaped_backslashes_or_classes() {
        assert_eq!(ascii_boundaries(r"\b[0-9]+\B"), r"(?-u:\b)[0-9]+(?-u:\B)");
        assert_eq!(ascii_boundaries(r"\\b\d"), r"\\b\d");
        assert_eq!(ascii_boundaries(r"[\]b]\b"), r"[\]b](?-u:\b)");
        assert_eq!(ascii_boundaries(r"[^]\b]\b"), r"[^]\b](?-u:\b)");
    }

    #[test]
    fn accented_letters_next_to_a_match_keep_unicode_semantics() {
        let re = WordRegex::new(r"\b[0-9]{4}\b").unwrap();
        for text in ["code 1234 ok", "😀1234😀", "é1234", "1234ë", "“1234”"] {
            let kind = TextKind::of(text);
            assert_eq!(re.for_text(kind).find(text).map(|m| m.range()), re.exact().find(text).map(|m| m.range()));
        }
        assert!(TextKind::of("é1234").unicode_words);
        assert!(!TextKind::of("😀 “quoted” 1234").unicode_words);
    }
}
