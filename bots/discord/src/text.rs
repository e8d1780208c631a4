//! Text as Discord will show it: markdown in what customers and agents wrote is escaped so it shows as typed, mass
//! mentions are broken so that no text can ping even if `allowed_mentions` were ever lost, and content longer than
//! Discord's 2000 characters is split on paragraph, line, sentence or word boundaries.

/// Discord's limit on a message's `content`, in characters.
pub const MAX_CONTENT: usize = 2000;

/// Characters that format text anywhere in a line.
const INLINE: &[char] = &['\\', '*', '_', '~', '`', '|', '[', ']', '<'];

/// Escapes Discord markdown so the text shows exactly as written. URLs are left alone (an escape inside one would
/// break the link), and `@everyone` / `@here` get a zero-width space after the `@`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        escape_line(line, &mut out);
    }
    out
}

fn escape_line(line: &str, out: &mut String) {
    let indent = line.len() - line.trim_start().len();
    out.push_str(&line[..indent]);
    let rest = &line[indent..];
    // Block syntax only counts at the start of a line: headings, quotes, lists, subtext (`-#`).
    if rest.starts_with(['#', '>', '-', '+']) {
        out.push('\\');
    } else if let Some(dot) = ordered_list_marker(rest) {
        // `1. item`: escaping the dot keeps the number as written.
        out.push_str(&rest[..dot]);
        out.push('\\');
        escape_words(&rest[dot..], out);
        return;
    }
    escape_words(rest, out);
}

/// The index of the `.` in a leading `12. `.
fn ordered_list_marker(s: &str) -> Option<usize> {
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    (digits > 0 && s[digits..].starts_with(". ")).then_some(digits)
}

fn escape_words(s: &str, out: &mut String) {
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("https://") || rest.starts_with("http://") {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        if let Some(mention) = ["@everyone", "@here"].into_iter().find(|m| rest.starts_with(m)) {
            out.push('@');
            out.push('\u{200B}');
            out.push_str(&mention[1..]);
            rest = &rest[mention.len()..];
            continue;
        }
        if INLINE.contains(&c) {
            out.push('\\');
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
}

/// Splits content into messages of at most `max` characters, preferring to end a part at a blank line, then a line
/// break, then the end of a sentence, then a space. A part never ends inside an escape (`\*`).
pub fn split(text: &str, max: usize) -> Vec<String> {
    let max = max.max(2);
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while rest.chars().count() > max {
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..limit];
        let cut = window
            .rfind("\n\n")
            .map(|i| i + 2)
            .or_else(|| window.rfind('\n').map(|i| i + 1))
            .or_else(|| [". ", "! ", "? ", ".\n"].iter().filter_map(|p| window.rfind(p)).max().map(|i| i + 1))
            .or_else(|| window.rfind(' ').map(|i| i + 1))
            .filter(|i| *i > 0)
            .unwrap_or(limit);
        let cut = not_inside_escape(rest, cut);
        let part = rest[..cut].trim_end();
        if !part.is_empty() {
            parts.push(part.to_owned());
        }
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

/// Moves a cut back by one when the text before it ends in an odd number of backslashes.
fn not_inside_escape(s: &str, cut: usize) -> usize {
    let backslashes = s[..cut].chars().rev().take_while(|c| *c == '\\').count();
    if backslashes % 2 == 1 && cut > 1 { cut - 1 } else { cut }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_shows_as_typed() {
        let cases = [
            ("**vet** en _schuin_", r"\*\*vet\*\* en \_schuin\_"),
            ("~~weg~~ `code` ||spoiler||", r"\~\~weg\~\~ \`code\` \|\|spoiler\|\|"),
            ("# kop\n> citaat\n- lijst\n-# klein", "\\# kop\n\\> citaat\n\\- lijst\n\\-# klein"),
            ("1. eerste", r"1\. eerste"),
            (r"C:\pad", r"C:\\pad"),
            ("[klik](https://evil.example)", r"\[klik\](https://evil.example)"),
            ("zie https://example.com/a_b_c nu", "zie https://example.com/a_b_c nu"),
            ("<@123> en <@&456>", r"\<@123> en \<@&456>"),
            ("e-mail, 3 > 2", "e-mail, 3 > 2"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input}");
        }
    }

    #[test]
    fn mass_mentions_are_broken() {
        let out = escape("hallo @everyone en @here!");
        assert!(!out.contains("@everyone") && !out.contains("@here"), "{out}");
        assert_eq!(out.replace('\u{200B}', ""), "hallo @everyone en @here!");
    }

    #[test]
    fn long_content_splits_on_paragraphs_then_sentences() {
        let para = "a".repeat(1500);
        let text = format!("{para}\n\n{para}");
        assert_eq!(split(&text, MAX_CONTENT), vec![para.clone(), para.clone()]);

        let sentence = format!("{}. ", "b".repeat(998));
        let text = sentence.repeat(3);
        let parts = split(&text, MAX_CONTENT);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].ends_with('.') && parts[0].chars().count() == 1999, "{}", parts[0].len());

        let word = "c".repeat(4500);
        let parts = split(&word, MAX_CONTENT);
        assert_eq!(parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(), vec![2000, 2000, 500]);

        let escaped = format!("{}\\*", "d".repeat(1999));
        let parts = split(&escaped, MAX_CONTENT);
        assert_eq!(parts[0].chars().count(), 1999, "the escape stays whole");
        assert_eq!(parts[1], "\\*");
        assert!(split("  ", MAX_CONTENT).is_empty());
    }
}
