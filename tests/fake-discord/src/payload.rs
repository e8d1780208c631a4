//! Checking what the bot sends as a message (create, edit, interaction response, follow-up) against the limits
//! of the Message and Message Components documentation, and the errors Discord answers when it breaks them: code
//! 50035 "Invalid Form Body" with an `errors` object that names the field, as in the Reference's "Error Messages"
//! section. Also mention parsing (`<@id>`, `<@&id>`, `@everyone`) and who a message actually pings under
//! `allowed_mentions`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::rest::ApiError;
use crate::types::message_flags;

/// The longest `content` a message may have, in characters.
pub const MAX_CONTENT_CHARS: usize = 2000;

/// The fields of a message body the bot sent; `None` where the field was absent (it matters for edits).
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    pub content: Option<String>,
    pub embeds: Option<Vec<Value>>,
    pub components: Option<Vec<Value>>,
    pub allowed_mentions: Option<Value>,
    pub message_reference: Option<Value>,
    pub flags: Option<u64>,
    pub tts: bool,
    pub nonce: Option<Value>,
    pub enforce_nonce: bool,
}

/// Collects field errors in Discord's nested form: `{"content": {"_errors": [{"code", "message"}]}}`.
#[derive(Debug, Default)]
pub(crate) struct FormErrors(Map<String, Value>);

impl FormErrors {
    pub fn add(&mut self, path: &[&str], code: &str, message: &str) {
        let mut node = &mut self.0;
        for key in path {
            node = node.entry(key.to_string()).or_insert_with(|| json!({})).as_object_mut().expect("object");
        }
        let list = node.entry("_errors").or_insert_with(|| json!([]));
        if let Some(a) = list.as_array_mut() {
            a.push(json!({"code": code, "message": message}));
        }
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::invalid_form(Value::Object(self.0))) }
    }
}

fn max_len(errors: &mut FormErrors, path: &[&str], value: Option<&Value>, max: usize) -> usize {
    let n = value.and_then(Value::as_str).map(|s| s.chars().count()).unwrap_or(0);
    if n > max {
        errors.add(path, "BASE_TYPE_MAX_LENGTH", &format!("Must be {max} or fewer in length."));
    }
    n
}

/// Reads and checks a message body. `allowed_flags` are the flags this route lets a bot set.
pub(crate) fn parse_outgoing(body: &Value, allowed_flags: u64) -> Result<Outgoing, ApiError> {
    let empty = serde_json::Map::new();
    // No body at all reads as an empty message, which the handlers refuse as Discord does (50006).
    let obj = match body {
        Value::Null => &empty,
        Value::Object(o) => o,
        _ => return Err(ApiError::invalid_json()),
    };
    let mut errors = FormErrors::default();
    let mut out = Outgoing::default();
    match obj.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if s.chars().count() > MAX_CONTENT_CHARS {
                errors.add(
                    &["content"],
                    "BASE_TYPE_MAX_LENGTH",
                    &format!("Must be {MAX_CONTENT_CHARS} or fewer in length."),
                );
            }
            out.content = Some(s.clone());
        }
        Some(other) => {
            errors.add(&["content"], "BASE_TYPE_BAD_TYPE", &format!("Could not interpret \"{other}\" as string."))
        }
    }
    if let Some(e) = obj.get("embeds").filter(|v| !v.is_null()) {
        out.embeds = Some(check_embeds(e, &mut errors));
    }
    if let Some(c) = obj.get("components").filter(|v| !v.is_null()) {
        out.components = Some(check_components(c, &mut errors));
    }
    if let Some(a) = obj.get("allowed_mentions").filter(|v| !v.is_null()) {
        check_allowed_mentions(a, &mut errors);
        out.allowed_mentions = Some(a.clone());
    }
    if let Some(r) = obj.get("message_reference").filter(|v| !v.is_null()) {
        if r.get("message_id").and_then(snowflake).is_none() {
            errors.add(&["message_reference", "message_id"], "BASE_TYPE_REQUIRED", "This field is required");
        }
        out.message_reference = Some(r.clone());
    }
    if let Some(f) = obj.get("flags").filter(|v| !v.is_null()) {
        match f.as_u64() {
            Some(bits) if bits & !allowed_flags == 0 => out.flags = Some(bits),
            _ => errors.add(&["flags"], "MESSAGE_FLAGS_INVALID", "Invalid flags"),
        }
    }
    out.tts = obj.get("tts").and_then(Value::as_bool).unwrap_or(false);
    out.nonce = obj.get("nonce").filter(|v| !v.is_null()).cloned();
    out.enforce_nonce = obj.get("enforce_nonce").and_then(Value::as_bool).unwrap_or(false);
    if let Some(n) = &out.nonce {
        let ok = match n {
            Value::String(s) => s.chars().count() <= 25,
            Value::Number(_) => true,
            _ => false,
        };
        if !ok {
            errors.add(&["nonce"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.");
        }
    }
    errors.into_result()?;
    Ok(out)
}

/// Flags a bot may set when creating a message.
pub(crate) const CREATE_FLAGS: u64 = message_flags::SUPPRESS_EMBEDS
    | message_flags::SUPPRESS_NOTIFICATIONS
    | message_flags::IS_VOICE_MESSAGE
    | message_flags::IS_COMPONENTS_V2;
/// Interaction responses may also be ephemeral.
pub(crate) const RESPONSE_FLAGS: u64 = CREATE_FLAGS | message_flags::EPHEMERAL;

fn check_embeds(e: &Value, errors: &mut FormErrors) -> Vec<Value> {
    let Some(list) = e.as_array() else {
        errors.add(&["embeds"], "BASE_TYPE_BAD_TYPE", "Must be an array.");
        return vec![];
    };
    if list.len() > 10 {
        errors.add(&["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.");
    }
    let mut total = 0;
    let mut out = Vec::new();
    for (i, embed) in list.iter().enumerate() {
        let i = i.to_string();
        let Some(obj) = embed.as_object() else {
            errors.add(&["embeds", &i], "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType");
            continue;
        };
        total += max_len(errors, &["embeds", &i, "title"], obj.get("title"), 256);
        total += max_len(errors, &["embeds", &i, "description"], obj.get("description"), 4096);
        total +=
            max_len(errors, &["embeds", &i, "footer", "text"], obj.get("footer").and_then(|f| f.get("text")), 2048);
        total += max_len(errors, &["embeds", &i, "author", "name"], obj.get("author").and_then(|a| a.get("name")), 256);
        if let Some(fields) = obj.get("fields").and_then(Value::as_array) {
            if fields.len() > 25 {
                errors.add(&["embeds", &i, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.");
            }
            for (j, f) in fields.iter().enumerate() {
                let j = j.to_string();
                for (key, max) in [("name", 256), ("value", 1024)] {
                    if f.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
                        errors.add(&["embeds", &i, "fields", &j, key], "BASE_TYPE_REQUIRED", "This field is required");
                    }
                    total += max_len(errors, &["embeds", &i, "fields", &j, key], f.get(key), max);
                }
            }
        }
        // Discord drops null fields and marks what a bot sends as a rich embed.
        let mut normalized: Map<String, Value> =
            obj.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect();
        normalized.entry("type").or_insert_with(|| json!("rich"));
        out.push(Value::Object(normalized));
    }
    if total > 6000 {
        errors.add(&["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000");
    }
    out
}

/// Action rows of buttons and select menus (components v1), returned with the `id`s Discord assigns.
fn check_components(c: &Value, errors: &mut FormErrors) -> Vec<Value> {
    let Some(rows) = c.as_array() else {
        errors.add(&["components"], "BASE_TYPE_BAD_TYPE", "Must be an array.");
        return vec![];
    };
    if rows.len() > 5 {
        errors.add(&["components"], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.");
    }
    let mut seen = BTreeSet::new();
    let mut next_id = 1;
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let i = i.to_string();
        if row["type"] != json!(1) {
            errors.add(
                &["components", &i, "type"],
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "Top-level components must be action rows",
            );
            continue;
        }
        let children = row["components"].as_array().cloned().unwrap_or_default();
        if children.is_empty() || children.len() > 5 {
            errors.add(&["components", &i, "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.");
        }
        let mut row_out = row.as_object().cloned().unwrap_or_default();
        row_out.insert("id".into(), json!(next_id));
        next_id += 1;
        let mut children_out = Vec::new();
        for (j, child) in children.iter().enumerate() {
            let j = j.to_string();
            let path = ["components", i.as_str(), "components", j.as_str()];
            let kind = child["type"].as_u64().unwrap_or(0);
            match kind {
                2 => {
                    let style = child["style"].as_u64().unwrap_or(0);
                    let custom_id = child.get("custom_id").and_then(Value::as_str);
                    match style {
                        1..=4 if custom_id.is_none() => errors.add(
                            &[&path[..], &["custom_id"]].concat(),
                            "BASE_TYPE_REQUIRED",
                            "This field is required",
                        ),
                        5 if child.get("url").and_then(Value::as_str).is_none() || custom_id.is_some() => errors.add(
                            &path,
                            "BUTTON_COMPONENT_URL_REQUIRED",
                            "A link button requires a url and no custom_id",
                        ),
                        1..=6 => {}
                        _ => errors.add(
                            &[&path[..], &["style"]].concat(),
                            "BASE_TYPE_CHOICES",
                            "Value must be one of {1, 2, 3, 4, 5, 6}.",
                        ),
                    }
                    max_len(errors, &[&path[..], &["label"]].concat(), child.get("label"), 80);
                    if children.len() > 5 {
                        errors.add(
                            &path,
                            "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                            "The specified component exceeds the maximum width",
                        );
                    }
                }
                3 | 5..=8 => {
                    if children.len() > 1 {
                        errors.add(
                            &path,
                            "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                            "The specified component exceeds the maximum width",
                        );
                    }
                    if child.get("custom_id").and_then(Value::as_str).is_none() {
                        errors.add(
                            &[&path[..], &["custom_id"]].concat(),
                            "BASE_TYPE_REQUIRED",
                            "This field is required",
                        );
                    }
                }
                _ => errors.add(
                    &[&path[..], &["type"]].concat(),
                    "UNION_TYPE_CHOICES",
                    "Value of field \"type\" must be one of (2, 3, 5, 6, 7, 8).",
                ),
            }
            if let Some(id) = child.get("custom_id").and_then(Value::as_str) {
                max_len(errors, &[&path[..], &["custom_id"]].concat(), child.get("custom_id"), 100);
                if !seen.insert(id.to_string()) {
                    errors.add(
                        &[&path[..], &["custom_id"]].concat(),
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    );
                }
            }
            let mut c = child.as_object().cloned().unwrap_or_default();
            c.retain(|_, v| !v.is_null());
            c.insert("id".into(), json!(next_id));
            next_id += 1;
            children_out.push(Value::Object(c));
        }
        row_out.insert("components".into(), Value::Array(children_out));
        out.push(Value::Object(row_out));
    }
    out
}

fn check_allowed_mentions(a: &Value, errors: &mut FormErrors) {
    let Some(obj) = a.as_object() else {
        errors.add(&["allowed_mentions"], "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType");
        return;
    };
    let parse: Vec<&str> = obj
        .get("parse")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for p in &parse {
        if !["roles", "users", "everyone"].contains(p) {
            errors.add(
                &["allowed_mentions", "parse"],
                "BASE_TYPE_CHOICES",
                "Value must be one of ('roles', 'users', 'everyone').",
            );
        }
    }
    for (key, parse_key) in [("users", "users"), ("roles", "roles")] {
        let n = obj.get(key).and_then(Value::as_array).map(Vec::len).unwrap_or(0);
        if n > 100 {
            errors.add(&["allowed_mentions", key], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.");
        }
        if n > 0 && parse.contains(&parse_key) {
            errors.add(
                &["allowed_mentions"],
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                &format!("parse:[\"{key}\"] and {key}: [ids] are mutually exclusive."),
            );
        }
    }
}

pub(crate) fn snowflake(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Mentions written in a message's text: user ids (`<@id>`, `<@!id>`), role ids (`<@&id>`), and whether it has
/// `@everyone` or `@here`.
pub(crate) fn parse_mentions(content: &str) -> (Vec<u64>, Vec<u64>, bool) {
    let mut users = Vec::new();
    let mut roles = Vec::new();
    let mut rest = content;
    while let Some(i) = rest.find("<@") {
        rest = &rest[i + 2..];
        let (is_role, body) = match rest.as_bytes().first() {
            Some(b'&') => (true, &rest[1..]),
            Some(b'!') => (false, &rest[1..]),
            _ => (false, rest),
        };
        let digits: String = body.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && body[digits.len()..].starts_with('>') {
            let id: u64 = digits.parse().unwrap_or_default();
            let list = if is_role { &mut roles } else { &mut users };
            if !list.contains(&id) {
                list.push(id);
            }
        }
    }
    let everyone = content.contains("@everyone") || content.contains("@here");
    (users, roles, everyone)
}

/// Whether `allowed_mentions` (absent: Discord's default, everything) lets a kind of mention ping.
pub(crate) struct Allowed<'a>(pub Option<&'a Value>);

impl Allowed<'_> {
    fn parses(&self, kind: &str) -> bool {
        match self.0 {
            None => true,
            Some(a) => a["parse"].as_array().is_some_and(|p| p.iter().any(|x| x == kind)),
        }
    }
    fn listed(&self, key: &str, id: u64) -> bool {
        self.0.and_then(|a| a[key].as_array()).is_some_and(|l| l.iter().any(|x| snowflake(x) == Some(id)))
    }
    pub fn user(&self, id: u64) -> bool {
        self.parses("users") || self.listed("users", id)
    }
    pub fn role(&self, id: u64) -> bool {
        self.parses("roles") || self.listed("roles", id)
    }
    pub fn everyone(&self) -> bool {
        self.parses("everyone")
    }
    pub fn replied_user(&self) -> bool {
        match self.0 {
            None => true,
            Some(a) => a["replied_user"].as_bool().unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_in_text() {
        let (u, r, e) = parse_mentions("hi <@12> and <@!34>, <@&56> <@x> <@12> @everyone");
        assert_eq!((u, r, e), (vec![12, 34], vec![56], true));
        assert!(parse_mentions("@here: storing").2);
        assert!(!parse_mentions("no mentions").2);
    }

    #[test]
    fn empty_allowed_mentions_allow_nothing() {
        let none = json!({"parse": []});
        let a = Allowed(Some(&none));
        assert!(!a.user(1) && !a.role(1) && !a.everyone() && !a.replied_user());
        let d = Allowed(None);
        assert!(d.user(1) && d.role(1) && d.everyone() && d.replied_user());
        let listed = json!({"users": ["7"]});
        assert!(Allowed(Some(&listed)).user(7) && !Allowed(Some(&listed)).user(8));
    }

    #[test]
    fn form_errors_name_the_field() {
        let long = "x".repeat(2001);
        let err = parse_outgoing(&json!({"content": long}), CREATE_FLAGS).unwrap_err();
        assert_eq!(err.code, 50035);
        assert_eq!(err.errors.unwrap()["content"]["_errors"][0]["code"], "BASE_TYPE_MAX_LENGTH");
        let dup = json!({"components": [{"type": 1, "components": [
            {"type": 2, "style": 1, "label": "a", "custom_id": "x"},
            {"type": 2, "style": 1, "label": "b", "custom_id": "x"}]}]});
        let err = parse_outgoing(&dup, CREATE_FLAGS).unwrap_err();
        assert_eq!(
            err.errors.unwrap()["components"]["0"]["components"]["1"]["custom_id"]["_errors"][0]["code"],
            "COMPONENT_CUSTOM_ID_DUPLICATED"
        );
        let both = json!({"content": "x", "allowed_mentions": {"parse": ["users"], "users": ["1"]}});
        assert!(parse_outgoing(&both, CREATE_FLAGS).is_err());
    }
}
