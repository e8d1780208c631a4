//! Telegram's HTML parse mode: turns `parse_mode=HTML` text into the plain text a chat shows and the
//! `MessageEntity` list Telegram returns, and rejects what Telegram rejects with its own
//! "can't parse entities" descriptions. Offsets and lengths are in UTF-16 code units, as the Bot API counts them.
//!
//! The rules follow the Bot API "HTML style" section: only the documented tags, only the named entities
//! `&lt; &gt; &amp; &quot;` plus numeric ones, an `&` that starts no entity stays literal, and every `<` must start a
//! supported tag. The byte offsets in error texts are byte offsets into the text as sent, like Telegram's.

use serde_json::{Value, json};

/// The result of parsing: the text as a chat shows it and its entities (already JSON, in Bot API shape).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub text: String,
    pub entities: Vec<Value>,
}

struct Open {
    tag: String,
    begin_utf16: usize,
    attrs: Vec<(String, String)>,
    /// Set on a `<pre>` when a nested `<code class="language-…">` names the language.
    language: Option<String>,
}

/// Parses `text` as Telegram HTML; `Err` holds the part after "Bad Request: can't parse entities: ".
pub fn parse(text: &str) -> Result<Parsed, String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut pos16 = 0usize;
    let mut stack: Vec<Open> = Vec::new();
    let mut entities: Vec<(usize, usize, Value)> = Vec::new();
    let mut i = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'&' => {
                if let Some((ch, len)) = decode_entity(&text[i..]) {
                    out.push(ch);
                    pos16 += ch.len_utf16();
                    i += len;
                } else {
                    // An ampersand that starts no known entity is kept as text, as Telegram does.
                    out.push('&');
                    pos16 += 1;
                    i += 1;
                }
            }
            b'<' => {
                let begin = i;
                i += 1;
                if i < bytes.len() && bytes[i] == b'/' {
                    i += 1;
                    let name_start = i;
                    while i < bytes.len() && is_tag_char(bytes[i]) {
                        i += 1;
                    }
                    let name = text[name_start..i].to_ascii_lowercase();
                    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    if i >= bytes.len() || bytes[i] != b'>' {
                        return Err(format!("Unclosed end tag at byte offset {begin}"));
                    }
                    i += 1;
                    let Some(open) = stack.pop() else {
                        return Err(format!("Unexpected end tag at byte offset {begin}"));
                    };
                    if open.tag != name {
                        return Err(format!(
                            "Unmatched end tag at byte offset {begin}, expected \"</{}>\", found \"</{name}>\"",
                            open.tag
                        ));
                    }
                    close(open, pos16, &mut stack, &mut entities);
                } else {
                    let name_start = i;
                    while i < bytes.len() && is_tag_char(bytes[i]) {
                        i += 1;
                    }
                    let name = text[name_start..i].to_ascii_lowercase();
                    if !SUPPORTED.contains(&name.as_str()) {
                        return Err(format!("Unsupported start tag \"{name}\" at byte offset {begin}"));
                    }
                    let mut attrs = Vec::new();
                    loop {
                        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                            i += 1;
                        }
                        if i >= bytes.len() {
                            return Err(format!("Unclosed start tag at byte offset {begin}"));
                        }
                        if bytes[i] == b'>' {
                            i += 1;
                            break;
                        }
                        let attr_start = i;
                        while i < bytes.len() && (is_tag_char(bytes[i]) || bytes[i] == b'_') {
                            i += 1;
                        }
                        if i == attr_start {
                            return Err(format!("Empty attribute name in the tag \"{name}\" at byte offset {begin}"));
                        }
                        let attr = text[attr_start..i].to_ascii_lowercase();
                        let mut value = String::new();
                        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                            i += 1;
                        }
                        if i < bytes.len() && bytes[i] == b'=' {
                            i += 1;
                            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                                i += 1;
                            }
                            if i >= bytes.len() {
                                return Err(format!("Unclosed start tag at byte offset {begin}"));
                            }
                            let raw = if bytes[i] == b'"' || bytes[i] == b'\'' {
                                let quote = bytes[i];
                                i += 1;
                                let v_start = i;
                                while i < bytes.len() && bytes[i] != quote {
                                    i += 1;
                                }
                                if i >= bytes.len() {
                                    return Err(format!("Unclosed start tag at byte offset {begin}"));
                                }
                                let raw = &text[v_start..i];
                                i += 1;
                                raw
                            } else {
                                let v_start = i;
                                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                                    i += 1;
                                }
                                &text[v_start..i]
                            };
                            value = decode_all(raw);
                        }
                        attrs.push((attr, value));
                    }
                    check_start_tag(&name, &attrs, &mut stack)?;
                    stack.push(Open { tag: name, begin_utf16: pos16, attrs, language: None });
                }
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
                out.push(ch);
                pos16 += ch.len_utf16();
                i += ch.len_utf8();
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("Can't find end tag corresponding to start tag \"{}\"", open.tag));
    }
    Ok(finish(out, entities))
}

const SUPPORTED: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
];

fn is_tag_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn check_start_tag(name: &str, attrs: &[(String, String)], stack: &mut [Open]) -> Result<(), String> {
    let attr = |key: &str| attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    match name {
        "span" if attr("class") != Some("tg-spoiler") => Err("Tag \"span\" must have class \"tg-spoiler\"".into()),
        "tg-emoji" if attr("emoji-id").is_none_or(str::is_empty) => {
            Err("Custom emoji identifier must be non-empty".into())
        }
        "code" => {
            if let Some(lang) = attr("class").and_then(|c| c.strip_prefix("language-")) {
                // A language on <code> only counts directly inside <pre>; it then belongs to the pre entity.
                if let Some(pre) = stack.last_mut().filter(|o| o.tag == "pre") {
                    pre.language = Some(lang.to_string());
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn close(open: Open, end16: usize, stack: &mut [Open], entities: &mut Vec<(usize, usize, Value)>) {
    let offset = open.begin_utf16;
    let length = end16 - offset;
    let attr = |key: &str| open.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let entity = match open.tag.as_str() {
        "b" | "strong" => json!({"type": "bold"}),
        "i" | "em" => json!({"type": "italic"}),
        "u" | "ins" => json!({"type": "underline"}),
        "s" | "strike" | "del" => json!({"type": "strikethrough"}),
        "span" | "tg-spoiler" => json!({"type": "spoiler"}),
        "a" => match attr("href") {
            Some(href) if !href.is_empty() => json!({"type": "text_link", "url": href}),
            // Telegram drops a link without a target and keeps the text.
            _ => return,
        },
        "code" => {
            // The inner code of <pre><code class="language-x"> is not an entity of its own.
            let in_pre = stack.last().is_some_and(|o| o.tag == "pre");
            if in_pre && attr("class").is_some_and(|c| c.starts_with("language-")) {
                return;
            }
            json!({"type": "code"})
        }
        "pre" => match open.language {
            Some(lang) => json!({"type": "pre", "language": lang}),
            None => json!({"type": "pre"}),
        },
        "blockquote" => {
            if attr("expandable").is_some() {
                json!({"type": "expandable_blockquote"})
            } else {
                json!({"type": "blockquote"})
            }
        }
        "tg-emoji" => json!({"type": "custom_emoji", "custom_emoji_id": attr("emoji-id").unwrap_or_default()}),
        _ => return,
    };
    if length > 0 {
        entities.push((offset, length, entity));
    }
}

/// Strips leading and trailing whitespace as Telegram does, moving and clipping the entities with it.
fn finish(text: String, entities: Vec<(usize, usize, Value)>) -> Parsed {
    let trimmed_start = text.trim_start();
    let lead16: usize = text[..text.len() - trimmed_start.len()].encode_utf16().count();
    let trimmed = trimmed_start.trim_end().to_string();
    let total16 = trimmed.encode_utf16().count();
    let mut kept: Vec<(usize, usize, Value)> = entities
        .into_iter()
        .filter_map(|(offset, length, entity)| {
            let start = offset.saturating_sub(lead16);
            let end = (offset + length).saturating_sub(lead16).min(total16);
            (end > start).then_some((start, end - start, entity))
        })
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let entities = kept
        .into_iter()
        .map(|(offset, length, mut entity)| {
            entity["offset"] = json!(offset);
            entity["length"] = json!(length);
            entity
        })
        .collect();
    Parsed { text: trimmed, entities }
}

fn decode_entity(s: &str) -> Option<(char, usize)> {
    let end = s.find(';')?;
    if end > 12 {
        return None;
    }
    let name = &s[1..end];
    let ch = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse::<u32>().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((ch, end + 1))
}

fn decode_all(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s.as_bytes()[i] == b'&'
            && let Some((ch, len)) = decode_entity(&s[i..])
        {
            out.push(ch);
            i += len;
            continue;
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_passes_through_and_is_trimmed() {
        let p = parse("  hello  ").unwrap();
        assert_eq!(p.text, "hello");
        assert!(p.entities.is_empty());
    }

    #[test]
    fn nested_tags_become_entities_with_utf16_offsets() {
        let p = parse("😀 <b>bold <i>both</i></b> &lt;x&gt; &amp; &#65;").unwrap();
        assert_eq!(p.text, "😀 bold both <x> & A");
        assert_eq!(
            p.entities,
            vec![json!({"type":"bold","offset":3,"length":9}), json!({"type":"italic","offset":8,"length":4}),]
        );
    }

    #[test]
    fn links_pre_with_language_spoilers_and_blockquotes() {
        let p = parse(
            "<a href=\"https://e.x/?a=1&amp;b=2\">l</a><pre><code class=\"language-rust\">fn</code></pre>\
             <span class=\"tg-spoiler\">s</span><blockquote expandable>q</blockquote>",
        )
        .unwrap();
        assert_eq!(p.text, "lfnsq");
        assert_eq!(
            p.entities,
            vec![
                json!({"type":"text_link","url":"https://e.x/?a=1&b=2","offset":0,"length":1}),
                json!({"type":"pre","language":"rust","offset":1,"length":2}),
                json!({"type":"spoiler","offset":3,"length":1}),
                json!({"type":"expandable_blockquote","offset":4,"length":1}),
            ]
        );
    }

    #[test]
    fn bare_ampersand_is_text_but_bare_less_than_is_an_error() {
        assert_eq!(parse("a & b").unwrap().text, "a & b");
        assert_eq!(parse("a < b").unwrap_err(), "Unsupported start tag \"\" at byte offset 2");
    }

    #[test]
    fn errors_use_telegram_wording() {
        assert_eq!(parse("<script>x</script>").unwrap_err(), "Unsupported start tag \"script\" at byte offset 0");
        assert_eq!(parse("<b>x").unwrap_err(), "Can't find end tag corresponding to start tag \"b\"");
        assert_eq!(
            parse("<b><i>x</b></i>").unwrap_err(),
            "Unmatched end tag at byte offset 7, expected \"</i>\", found \"</b>\""
        );
        assert_eq!(parse("x</b>").unwrap_err(), "Unexpected end tag at byte offset 1");
        assert_eq!(parse("<a href=\"x").unwrap_err(), "Unclosed start tag at byte offset 0");
        assert_eq!(parse("<span>x</span>").unwrap_err(), "Tag \"span\" must have class \"tg-spoiler\"");
    }
}
