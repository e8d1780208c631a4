//! Entities that Telegram attaches to what a *user* types: `bot_command`, `mention`, `hashtag` and `url`,
//! with offsets and lengths in UTF-16 code units as the Bot API documents for `MessageEntity`.
//! A bot that slices `text` by those offsets as if they were bytes or chars breaks on emoji; the fake
//! produces them exactly so the adapter's handling of them is tested.

use serde_json::{Value, json};

/// Finds the entities a Telegram client would mark in `text`.
pub fn detect(text: &str) -> Vec<Value> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut pos16 = 0usize;
    let mut i = 0usize;
    while i < chars.len() {
        let at_word_start = i == 0 || !is_word(chars[i - 1]);
        let start16 = pos16;
        let matched = if at_word_start {
            match chars[i] {
                '/' => command_len(&chars[i..]).map(|n| (n, "bot_command")),
                '@' => mention_len(&chars[i..]).map(|n| (n, "mention")),
                '#' => hashtag_len(&chars[i..]).map(|n| (n, "hashtag")),
                'h' => url_len(&chars[i..]).map(|n| (n, "url")),
                _ => None,
            }
        } else {
            None
        };
        match matched {
            Some((n, kind)) => {
                let len16: usize = chars[i..i + n].iter().map(|c| c.len_utf16()).sum();
                out.push(json!({"type": kind, "offset": start16, "length": len16}));
                pos16 += len16;
                i += n;
            }
            None => {
                pos16 += chars[i].len_utf16();
                i += 1;
            }
        }
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `/command` (1–64 identifier characters) with an optional `@botusername`.
fn command_len(s: &[char]) -> Option<usize> {
    let name = s[1..].iter().take_while(|c| is_ident(**c)).count();
    if name == 0 || name > 64 {
        return None;
    }
    let mut n = 1 + name;
    if s.get(n) == Some(&'@') {
        let user = s[n + 1..].iter().take_while(|c| is_ident(**c)).count();
        if (3..=32).contains(&user) {
            n += 1 + user;
        }
    }
    Some(n)
}

/// `@username`: Telegram usernames are 5–32 characters.
fn mention_len(s: &[char]) -> Option<usize> {
    let user = s[1..].iter().take_while(|c| is_ident(**c)).count();
    (5..=32).contains(&user).then_some(1 + user)
}

fn hashtag_len(s: &[char]) -> Option<usize> {
    let tag = s[1..].iter().take_while(|c| is_word(**c)).count();
    (tag > 0 && s[1..=tag].iter().any(|c| !c.is_ascii_digit())).then_some(1 + tag)
}

fn url_len(s: &[char]) -> Option<usize> {
    let text: String = s.iter().take(8).collect();
    let scheme = if text.starts_with("https://") {
        8
    } else if text.starts_with("http://") {
        7
    } else {
        return None;
    };
    let rest = s[scheme..].iter().take_while(|c| !c.is_whitespace()).count();
    let mut n = scheme + rest;
    // Trailing punctuation ends a sentence, not the link.
    while n > scheme && matches!(s[n - 1], '.' | ',' | '!' | '?' | ')' | ';' | ':') {
        n -= 1;
    }
    (n > scheme).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_with_payload_and_bot_suffix() {
        assert_eq!(detect("/start abc"), vec![json!({"type":"bot_command","offset":0,"length":6})]);
        assert_eq!(detect("/help@webcare_bot"), vec![json!({"type":"bot_command","offset":0,"length":17})]);
    }

    #[test]
    fn offsets_count_utf16_units_after_emoji() {
        // "🙂" is one char but two UTF-16 code units; "é" is one of each.
        let e = detect("🙂é /status @webcare_bot #help https://x.nl/a.");
        assert_eq!(
            e,
            vec![
                json!({"type":"bot_command","offset":4,"length":7}),
                json!({"type":"mention","offset":12,"length":12}),
                json!({"type":"hashtag","offset":25,"length":5}),
                json!({"type":"url","offset":31,"length":14}),
            ]
        );
    }

    #[test]
    fn no_command_inside_words_or_paths() {
        assert!(detect("a/b and mail@x").is_empty());
        assert!(detect("#123").is_empty());
    }
}
