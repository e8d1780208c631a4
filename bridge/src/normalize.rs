//! Text normalisation for analysis: Unicode NFKC, case folding, accents folded to their base letters, URLs,
//! @mentions and emoji stripped, hashtags split into words, and the result cut into tokens.
//!
//! The original text is never changed; classification works on the [`Normalized`] copy. Everything here is one pass
//! over the input (NFKC, then a character walk), so the cost is linear in the input whatever it holds.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// The analysis copy of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalized {
    /// The NFKC form of the original text. Private-data detection runs on it, so full-width digits count as digits.
    pub nfkc: String,
    /// Folded tokens joined by single spaces, without leading or trailing space. Lexicons match against this.
    pub folded: String,
    /// Byte ranges of the tokens in `folded`.
    pub tokens: Vec<(usize, usize)>,
    /// Whether the message asks something (a question mark outside URLs).
    pub question: bool,
    /// How many characters were stripped as emoji or pictographs.
    pub emoji: usize,
}

impl Normalized {
    /// The tokens as string slices.
    pub fn token_strs(&self) -> impl Iterator<Item = &str> {
        self.tokens.iter().map(|&(s, e)| &self.folded[s..e])
    }
}

/// Normalises a text for analysis. Never fails and never panics, whatever the input.
pub fn normalize(text: &str) -> Normalized {
    // Most texts are in NFKC already (all ASCII text is); the quick check says so without building a copy char by char.
    let nfkc: String = if text.is_ascii() || is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        text.to_owned()
    } else {
        text.nfkc().collect()
    };
    let mut out = Normalized { folded: String::with_capacity(nfkc.len()), ..Normalized::default() };
    let mut walker = Walker { out: &mut out, token_start: None };
    let chars: Vec<char> = nfkc.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at_word_start = i == 0 || !is_word_char(chars[i - 1]);
        // A URL or a mention is skipped to the next whitespace: its letters are not the customer's words.
        if at_word_start && matches!(c, 'h' | 'H' | 'w' | 'W') && starts_url(&chars[i..]) {
            walker.end_token();
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            continue;
        }
        if c == '@' && at_word_start && chars.get(i + 1).is_some_and(|n| is_word_char(*n)) {
            walker.end_token();
            i += 1;
            while i < chars.len() && (is_word_char(chars[i]) || chars[i] == '.' && next_is_word(&chars, i)) {
                i += 1;
            }
            continue;
        }
        if c == '#' && chars.get(i + 1).is_some_and(|n| is_word_char(*n)) {
            // A hashtag is words written together: #StoringUtrecht, #SpectranetDown. Split at case changes so its
            // words reach the lexicon, and split a trailing "down"/"storing" off a lowercase tag (#verizondown).
            walker.end_token();
            let start = i + 1;
            let mut end = start;
            while end < chars.len() && is_word_char(chars[end]) {
                end += 1;
            }
            emit_hashtag(&mut walker, &chars[start..end]);
            i = end;
            continue;
        }
        if c == '?' {
            walker.out.question = true;
        }
        if is_apostrophe(c)
            && walker.token_start.is_some()
            && chars.get(i + 1).is_some_and(|n| n.is_alphabetic())
            && i > 0
            && chars[i - 1].is_alphabetic()
        {
            // "can't" and "auto's" fold to "cant" and "autos", so lexicons need one spelling only.
            i += 1;
            continue;
        }
        if c.is_alphanumeric() {
            walker.push_char(c);
        } else {
            if is_emoji(c) {
                walker.out.emoji += 1;
            }
            walker.end_token();
        }
        i += 1;
    }
    walker.end_token();
    out.nfkc = nfkc;
    out
}

/// Folds a lexicon term or place name exactly as message text is folded, so both sides compare equal.
pub fn fold_term(term: &str) -> String {
    normalize(term).folded
}

struct Walker<'a> {
    out: &'a mut Normalized,
    token_start: Option<usize>,
}

impl Walker<'_> {
    fn push_char(&mut self, c: char) {
        if self.token_start.is_none() {
            if !self.out.folded.is_empty() {
                self.out.folded.push(' ');
            }
            self.token_start = Some(self.out.folded.len());
        }
        if c.is_ascii() {
            self.out.folded.push(c.to_ascii_lowercase());
            return;
        }
        for lower in c.to_lowercase() {
            fold_accent(lower, &mut self.out.folded);
        }
    }

    fn end_token(&mut self) {
        if let Some(start) = self.token_start.take() {
            let end = self.out.folded.len();
            if end > start {
                self.out.tokens.push((start, end));
            }
        }
    }
}

/// Pushes a character without its accents: "geïnstalleerd" and "geinstalleerd" are the same word to us.
fn fold_accent(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c);
        return;
    }
    let mut pushed = false;
    decompose_canonical(c, |d| {
        if !is_combining_mark(d) {
            out.push(d);
            pushed = true;
        }
    });
    if !pushed {
        out.push(c);
    }
}

fn emit_hashtag(walker: &mut Walker<'_>, tag: &[char]) {
    const SUFFIXES: [&str; 4] = ["down", "outage", "storing", "storingen"];
    let all_lower = tag.iter().all(|c| !c.is_uppercase());
    if all_lower {
        let lowered: String = tag.iter().collect();
        for suffix in SUFFIXES {
            if lowered.len() > suffix.len() + 2
                && lowered.ends_with(suffix)
                && lowered.is_char_boundary(lowered.len() - suffix.len())
            {
                let head = &lowered[..lowered.len() - suffix.len()];
                for c in head.chars() {
                    walker.push_char(c);
                }
                walker.end_token();
                for c in suffix.chars() {
                    walker.push_char(c);
                }
                walker.end_token();
                return;
            }
        }
    }
    for (k, &c) in tag.iter().enumerate() {
        if c == '_' {
            walker.end_token();
            continue;
        }
        if k > 0 && c.is_uppercase() && tag[k - 1].is_lowercase() {
            walker.end_token();
        }
        if c.is_alphanumeric() {
            walker.push_char(c);
        } else {
            walker.end_token();
        }
    }
    walker.end_token();
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn next_is_word(chars: &[char], i: usize) -> bool {
    chars.get(i + 1).is_some_and(|c| is_word_char(*c))
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '`')
}

fn starts_url(rest: &[char]) -> bool {
    const PREFIXES: [&str; 3] = ["https://", "http://", "www."];
    PREFIXES.iter().any(|p| {
        let n = p.chars().count();
        rest.len() > n && rest.iter().take(n).map(|c| c.to_ascii_lowercase()).eq(p.chars())
    })
}

/// Emoji and pictographs: the main emoji blocks, dingbats, and the joiners and selectors that glue them together.
fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0xFE00..=0xFE0F | 0x200D | 0xE0020..=0xE007F)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        normalize(text).token_strs().map(str::to_owned).collect()
    }

    #[test]
    fn folds_case_accents_and_apostrophes() {
        assert_eq!(tokens("Geïnstalleerd, CAN'T ＳＴＯＲＩＮＧ"), ["geinstalleerd", "cant", "storing"]);
        assert_eq!(tokens("auto’s"), ["autos"]);
    }

    #[test]
    fn strips_urls_mentions_and_emoji() {
        let n = normalize("@KPNwebcare storing? https://t.co/abc 😡 www.x.nl/y ok");
        assert_eq!(n.folded, "storing ok");
        assert!(n.question);
        assert_eq!(n.emoji, 1);
    }

    #[test]
    fn splits_hashtags() {
        assert_eq!(tokens("#StoringUtrecht"), ["storing", "utrecht"]);
        assert_eq!(tokens("#verizondown"), ["verizon", "down"]);
        assert_eq!(tokens("#geen_internet"), ["geen", "internet"]);
    }

    #[test]
    fn keeps_email_local_part_out_of_mentions() {
        // An e-mail address is not a mention: its parts stay tokens (private data is found on the NFKC text).
        assert_eq!(tokens("mail a.b@c.nl"), ["mail", "a", "b", "c", "nl"]);
    }

    #[test]
    fn empty_and_symbol_only() {
        assert_eq!(normalize("").folded, "");
        assert!(normalize("🙂🙂 !!").tokens.is_empty());
    }
}
