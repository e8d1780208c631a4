//! Private-data detection: phone numbers, e-mail addresses, IBANs, Dutch BSNs, Belgian national register numbers,
//! payment cards, street addresses, postcode + house number, and operator-specific numbers from `pii.toml`.
//!
//! Findings carry the kind and the byte span in the NFKC text, never the value itself, so a finding can be logged
//! and stored with a decision without leaking what it found. Checksums (mod-97, 11-check, Luhn) keep random digit
//! runs from being reported as an IBAN or a BSN. All matching uses the `regex` crate, which runs in linear time.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::data::{DataError, PiiFile};
use crate::wordre::{TextKind, WordRegex, WordRegexSet};

/// One piece of private data found in a message. The value itself is deliberately not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiFinding {
    /// `phone`, `email`, `iban`, `bsn`, `national_id`, `card`, `address`, `postcode_house`, `number`, or a kind
    /// from `pii.toml` (`customer_number`).
    pub kind: String,
    /// Byte range in the NFKC form of the text.
    pub start: usize,
    pub end: usize,
}

/// The compiled detectors.
#[derive(Debug)]
pub struct PiiDetector {
    email: Regex,
    iban: WordRegex,
    number_run: Regex,
    address: WordRegex,
    postcode_house: WordRegex,
    patterns: Vec<CompiledPattern>,
    /// IBAN, the configured patterns, postcode + house number and address, screened in one pass (in that order).
    screen: WordRegexSet,
    /// Lower-cased local parts of role mailboxes, which are no personal data.
    role_mailboxes: Vec<String>,
}

#[derive(Debug)]
struct CompiledPattern {
    kind: String,
    regex: WordRegex,
    group: usize,
    min_digits: usize,
    min_letters: usize,
}

impl PiiDetector {
    pub fn new(file: &PiiFile, file_name: &std::path::Path) -> Result<PiiDetector, DataError> {
        let mut patterns = Vec::new();
        for (i, p) in file.patterns.iter().enumerate() {
            let regex = WordRegex::new(&p.regex).map_err(|e| DataError::Invalid {
                file: file_name.to_owned(),
                key: format!("pattern[{i}].regex"),
                message: e.to_string(),
            })?;
            if p.group >= regex.exact().captures_len() {
                return Err(DataError::Invalid {
                    file: file_name.to_owned(),
                    key: format!("pattern[{i}].group"),
                    message: format!("the regex has {} capture groups", regex.exact().captures_len() - 1),
                });
            }
            patterns.push(CompiledPattern {
                kind: p.kind.clone(),
                regex,
                group: p.group,
                min_digits: p.min_digits,
                min_letters: p.min_letters,
            });
        }
        let iban = WordRegex::new(r"\b[A-Za-z]{2}[0-9]{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,3})?\b")
            .expect("valid");
        let address = WordRegex::new(
            r"(?x)
            \b[A-Z][\p{L}\-]+(?:straat|laan|weg|plein|gracht|kade|dijk|singel|steenweg|lei|dreef|hof|pad|park|plantsoen|markt|baan|plaats|kaai|veld|vest|wal|ring)\s+[0-9]{1,5}[a-zA-Z]?\b
            | \b[a-z][\p{L}\-]+(?:straat|laan|plein|gracht|kade|singel|steenweg|dreef|plaats|kaai)\s+[0-9]{1,5}[a-zA-Z]?\b
            | \b[0-9]{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Road|Rd|Avenue|Ave|Drive|Dr|Lane|Ln|Boulevard|Blvd|Court|Ct|Way|Place|Pl|Terrace|Circle|Cir|Highway|Hwy)\b",
        )
        .expect("valid");
        let postcode_house = WordRegex::new(
            r"\b[1-9][0-9]{3}\s?[A-Z]{2}\s*,?\s*(?:nr\.?\s*)?[0-9]{1,5}[a-z]?\b|\b[0-9]{1,5}[a-z]?\s*,\s*[1-9][0-9]{3}\s?[A-Z]{2}\b",
        )
        .expect("valid");
        let screen = WordRegexSet::new(
            std::iter::once(&iban).chain(patterns.iter().map(|p| &p.regex)).chain([&postcode_house, &address]),
        )
        .map_err(|e| DataError::Invalid {
            file: file_name.to_owned(),
            key: "pattern".into(),
            message: e.to_string(),
        })?;
        Ok(PiiDetector {
            email: Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}").expect("valid"),
            iban,
            // Digits joined by at most two separators: "06-12345678", "735 923  4304", "+32 470 12 34 56".
            number_run: Regex::new(r"\+?\(?[0-9](?:[ \t.\-/()]{0,2}[0-9])+").expect("valid"),
            address,
            postcode_house,
            patterns,
            screen,
            role_mailboxes: file.role_mailboxes.iter().map(|m| m.trim().to_lowercase()).collect(),
        })
    }

    /// Finds private data in the NFKC form of a message. Findings do not overlap; the first detector to claim a
    /// span keeps it (e-mail before IBAN before configured numbers before bare digit runs).
    pub fn find(&self, nfkc: &str) -> Vec<PiiFinding> {
        let mut found = Claims::default();
        let has_digit = nfkc.bytes().any(|b| b.is_ascii_digit());
        if nfkc.contains('@') {
            for m in self.email.find_iter(nfkc) {
                let local = m.as_str().split('@').next().unwrap_or("").to_lowercase();
                if !self.role_mailboxes.contains(&local) {
                    found.push("email", m.start(), m.end());
                }
            }
        }
        if !has_digit {
            return found.found;
        }
        let kind = TextKind::of(nfkc);
        let screened = self.screen.matches(nfkc, kind);
        let n = self.patterns.len();
        if screened.matched(0) {
            for m in self.iban.for_text(kind).find_iter(nfkc) {
                // The pattern may take in the word after a spaced IBAN ("BE80 3634 8219 0777 gehaald"): try it whole,
                // then without its last group, down to the shortest IBAN.
                let text = m.as_str();
                let mut end = text.len();
                loop {
                    if valid_iban(&text[..end]) {
                        found.push("iban", m.start(), m.start() + end);
                        break;
                    }
                    match text[..end].rfind(' ') {
                        Some(space) if space >= 15 => end = space,
                        _ => break,
                    }
                }
            }
        }
        for (i, p) in self.patterns.iter().enumerate() {
            if !screened.matched(1 + i) {
                continue;
            }
            for caps in p.regex.for_text(kind).captures_iter(nfkc) {
                let Some(m) = caps.get(p.group) else { continue };
                let value = m.as_str().trim_end();
                let digits = value.chars().filter(char::is_ascii_digit).count();
                let letters = value.chars().filter(|c| c.is_alphabetic()).count();
                if digits >= p.min_digits && letters >= p.min_letters {
                    found.push(&p.kind, m.start(), m.start() + value.len());
                }
            }
        }
        if screened.matched(1 + n) {
            for m in self.postcode_house.for_text(kind).find_iter(nfkc) {
                found.push("postcode_house", m.start(), m.end());
            }
        }
        if screened.matched(2 + n) {
            for m in self.address.for_text(kind).find_iter(nfkc) {
                found.push("address", m.start(), m.end());
            }
        }
        for m in self.number_run.find_iter(nfkc) {
            let (start, end) = trim_run(nfkc, m.start(), m.end());
            if start >= end || touches_word(nfkc, start, end) {
                continue;
            }
            if let Some(kind) = classify_number(&nfkc[start..end]) {
                found.push(kind, start, end);
            }
        }
        let mut found = found.found;
        found.sort_by_key(|f| f.start);
        found
    }
}

/// The findings so far, with their spans in order, so that a text with thousands of numbers is checked in
/// `O(n log n)`, not `O(n²)`.
#[derive(Default)]
struct Claims {
    found: Vec<PiiFinding>,
    /// start → end of every claimed span; claimed spans never overlap.
    spans: std::collections::BTreeMap<usize, usize>,
}

impl Claims {
    /// Adds a finding unless an earlier detector already claimed part of its span. The spans are disjoint, so the
    /// only one that can overlap `start..end` is the last one that starts before `end`.
    fn push(&mut self, kind: &str, start: usize, end: usize) {
        if self.spans.range(..end).next_back().is_some_and(|(_, &e)| start < e) {
            return;
        }
        self.spans.insert(start, end);
        self.found.push(PiiFinding { kind: kind.to_owned(), start, end });
    }
}

/// Drops separators the run regex took at its edges ("(020) 123" keeps its bracket, a trailing dot goes).
fn trim_run(text: &str, start: usize, end: usize) -> (usize, usize) {
    let s = &text[start..end];
    let trimmed = s.trim_end_matches(|c: char| !c.is_ascii_digit());
    (start, start + trimmed.len())
}

/// A digit run glued to letters ("MD0023", "4g") is a code or a word, one after a currency sign is an amount, and
/// one that starts inside a handle ("@987654", "@u_4200913377") names an account on the platform, not a person's
/// number.
fn touches_word(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    before.is_some_and(|c| c.is_alphanumeric() || matches!(c, '$' | '€' | '£' | '@' | '_'))
        || after.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Decides what a digit run is, by its digit count, its shape and its checksum; `None` for ordinary numbers.
fn classify_number(run: &str) -> Option<&'static str> {
    let digits: Vec<u8> = run.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
    let n = digits.len();
    if n < 8 {
        return None;
    }
    let groups: Vec<&str> = run.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()).collect();
    // An IP address ("192.168.1.1") and a date ("31-10-2017", "2017/10/31") are not private data.
    if run.contains('.') && !run.contains(' ') && groups.len() == 4 && groups.iter().all(|g| g.len() <= 3) {
        return None;
    }
    if groups.len() == 3 && (is_date(groups[0], groups[1], groups[2]) || is_date(groups[2], groups[1], groups[0])) {
        return None;
    }
    let plus = run.starts_with('+') || run.starts_with("00");
    if plus && (9..=15).contains(&n) {
        return Some("phone");
    }
    if n == 9 && digits[0] != 0 && valid_bsn(&digits) && groups.len() == 1 {
        return Some("bsn");
    }
    if n == 11 && valid_be_national_number(&digits) {
        return Some("national_id");
    }
    if (13..=19).contains(&n) && luhn(&digits) && (groups.len() == 1 || groups.iter().all(|g| g.len() >= 4)) {
        return Some("card");
    }
    if digits[0] == 0 && (n == 9 || n == 10) {
        return Some("phone");
    }
    if n == 10 && digits[0] >= 2 && digits[3] >= 2 {
        return Some("phone");
    }
    if n == 11 && digits[0] == 1 && digits[1] >= 2 && digits[4] >= 2 && groups.len() > 1 {
        return Some("phone");
    }
    // Any other run of eight or more digits: an account, customer, SIM or device number.
    Some("number")
}

fn is_date(d: &str, m: &str, y: &str) -> bool {
    let (Ok(d), Ok(m)) = (d.parse::<u32>(), m.parse::<u32>()) else { return false };
    (y.len() == 4 || y.len() == 2) && (1..=31).contains(&d) && (1..=12).contains(&m)
}

/// IBAN check: move the first four characters to the end, letters to numbers (A = 10), the result mod 97 is 1.
pub fn valid_iban(text: &str) -> bool {
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
    if chars.len() < 15 || chars.len() > 34 || !chars.iter().all(char::is_ascii_alphanumeric) {
        return false;
    }
    if !chars[0].is_ascii_alphabetic() || !chars[1].is_ascii_alphabetic() {
        return false;
    }
    if !chars[2].is_ascii_digit() || !chars[3].is_ascii_digit() {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in chars[4..].iter().chain(chars[..4].iter()) {
        let v = c.to_digit(36).unwrap_or(0);
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// Dutch BSN 11-check: 9·d1 + 8·d2 + … + 2·d8 − 1·d9 is a multiple of 11 (and not 0).
pub fn valid_bsn(digits: &[u8]) -> bool {
    if digits.len() != 9 {
        return false;
    }
    let sum: i64 =
        digits[..8].iter().zip((2..=9).rev()).map(|(&d, w)| i64::from(d) * w).sum::<i64>() - i64::from(digits[8]);
    sum != 0 && sum % 11 == 0
}

/// Belgian national register number: the last two digits are 97 − (the first nine mod 97); for people born from
/// 2000 on, the first nine are prefixed with a 2 first. Either variant makes the number valid.
pub fn valid_be_national_number(digits: &[u8]) -> bool {
    if digits.len() != 11 {
        return false;
    }
    let base = digits[..9].iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d));
    let check = u64::from(digits[9]) * 10 + u64::from(digits[10]);
    let month = digits[2] * 10 + digits[3];
    // The month is 1-12, or 0 when unknown; bis numbers add 20 or 40 to it.
    if month % 20 > 12 || month > 52 {
        return false;
    }
    97 - base % 97 == check || 97 - (2_000_000_000 + base) % 97 == check
}

/// Luhn check for payment card numbers.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Replaces every finding in the text by its kind in brackets, so a sample can be shown without the data.
pub fn mask(nfkc: &str, findings: &[PiiFinding]) -> String {
    let mut out = String::with_capacity(nfkc.len());
    let mut at = 0;
    for f in findings {
        if f.start < at || f.end > nfkc.len() {
            continue;
        }
        out.push_str(&nfkc[at..f.start]);
        out.push('[');
        out.push_str(&f.kind);
        out.push(']');
        at = f.end;
    }
    out.push_str(&nfkc[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(s: &str) -> Vec<u8> {
        s.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect()
    }

    #[test]
    fn iban_mod97() {
        assert!(valid_iban("NL91ABNA0417164300"));
        assert!(valid_iban("NL91 ABNA 0417 1643 00"));
        assert!(valid_iban("BE68539007547034"));
        assert!(valid_iban("DE89370400440532013000"));
        assert!(!valid_iban("NL91ABNA0417164301"));
        assert!(!valid_iban("BE68539007547035"));
        assert!(!valid_iban("NL91"));
    }

    #[test]
    fn bsn_eleven_check() {
        assert!(valid_bsn(&digits("111222333")));
        assert!(valid_bsn(&digits("123456782")));
        assert!(!valid_bsn(&digits("123456789")));
        assert!(!valid_bsn(&digits("111222334")));
        assert!(!valid_bsn(&digits("000000000")));
        assert!(!valid_bsn(&digits("12345678")));
    }

    #[test]
    fn belgian_national_number_both_centuries() {
        // Born 1985-07-30, serial 033: 97 - (850730033 mod 97) = 28.
        assert!(valid_be_national_number(&digits("85073003328")));
        assert!(!valid_be_national_number(&digits("85073003327")));
        // Born 2001-01-01, serial 001: 97 - (2010101001 mod 97) = 9 (the pre-2000 rule would give 29... not it).
        let base = 10101001u64;
        let check = 97 - (2_000_000_000 + base) % 97;
        let n = format!("{base:09}{check:02}");
        assert!(valid_be_national_number(&digits(&n)), "{n}");
        let wrong = format!("{base:09}{:02}", (check + 1) % 100);
        assert!(!valid_be_national_number(&digits(&wrong)), "{wrong}");
        // A month of 13 is no date.
        assert!(!valid_be_national_number(&digits("85133003300")));
    }

    #[test]
    fn luhn_cards() {
        assert!(luhn(&digits("4111111111111111")));
        assert!(luhn(&digits("5500 0000 0000 0004")));
        assert!(!luhn(&digits("4111111111111112")));
    }

    #[test]
    fn masking_hides_values() {
        let findings = vec![PiiFinding { kind: "phone".into(), start: 7, end: 17 }];
        assert_eq!(mask("bel me 0612345678 aub", &findings), "bel me [phone] aub");
    }
}
