//! The Bot API methods the fake serves, each answering as the Bot API documentation describes, with Telegram's
//! error codes and descriptions: 400 "Bad Request: …", 403 "Forbidden: …", 409 "Conflict: …",
//! 429 "Too Many Requests: retry after N" with `parameters.retry_after`, and 400 with
//! `parameters.migrate_to_chat_id` for a group that became a supergroup.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::html;
use crate::params::Params;
use crate::server::Shared;
use crate::types::{BotEvent, BotMembership, CallbackAnswer, ChatId};
use crate::world::{BotMeta, ChatKind, MsgRec, Webhook, World, unix_now};

/// The methods the fake knows, in their documented spelling; Telegram matches method names case-insensitively.
pub const METHODS: &[&str] = &[
    "getMe",
    "getUpdates",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "sendMessage",
    "editMessageText",
    "deleteMessage",
    "answerCallbackQuery",
    "sendChatAction",
    "getChat",
    "getFile",
    "setMyCommands",
    "getMyCommands",
];

pub const MAX_TEXT_CHARS: usize = 4096;

/// A Bot API error: `{"ok":false,"error_code":…,"description":…,"parameters":…}` with the same HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub description: String,
    pub parameters: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, description: impl Into<String>) -> Self {
        ApiError { code, description: description.into(), parameters: None }
    }
    pub fn bad_request(what: &str) -> Self {
        ApiError::new(400, format!("Bad Request: {what}"))
    }
    pub fn forbidden(what: &str) -> Self {
        ApiError::new(403, format!("Forbidden: {what}"))
    }
    pub fn too_many_requests(retry_after: u64) -> Self {
        ApiError {
            code: 429,
            description: format!("Too Many Requests: retry after {retry_after}"),
            parameters: Some(json!({"retry_after": retry_after})),
        }
    }
    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized")
    }
    pub fn not_found() -> Self {
        ApiError::new(404, "Not Found")
    }
    pub fn server_error(status: u16) -> Self {
        let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Server Error");
        ApiError::new(status, reason)
    }
    fn webhook_conflict() -> Self {
        ApiError::new(
            409,
            "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"ok": false, "error_code": self.code, "description": self.description});
        if let Some(p) = self.parameters {
            body["parameters"] = p;
        }
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(body)).into_response()
    }
}

/// A successful answer: `{"ok":true,"result":…}`, with the `description` some methods add.
#[derive(Debug)]
pub struct ApiOk {
    pub result: Value,
    pub description: Option<&'static str>,
}

impl IntoResponse for ApiOk {
    fn into_response(self) -> Response {
        let mut body = json!({"ok": true, "result": self.result});
        if let Some(d) = self.description {
            body["description"] = json!(d);
        }
        axum::Json(body).into_response()
    }
}

fn ok(result: Value) -> Result<ApiOk, ApiError> {
    Ok(ApiOk { result, description: None })
}

pub async fn call(shared: &Shared, method: &str, p: Params) -> Result<ApiOk, ApiError> {
    match method {
        "getMe" => ok(shared.read(|w| w.get_me_json())),
        "getUpdates" => get_updates(shared, p).await,
        "setWebhook" => shared.write(|w| set_webhook(w, &p)),
        "deleteWebhook" => shared.write(|w| delete_webhook(w, &p)),
        "getWebhookInfo" => ok(shared.read(webhook_info)),
        "sendMessage" => shared.write(|w| send_message(w, &p)),
        "editMessageText" => shared.write(|w| edit_message_text(w, &p)),
        "deleteMessage" => shared.write(|w| delete_message(w, &p)),
        "answerCallbackQuery" => shared.write(|w| answer_callback_query(w, &p)),
        "sendChatAction" => shared.write(|w| send_chat_action(w, &p)),
        "getChat" => shared.read(|w| {
            let chat = chat_id(w, &p)?;
            if !w.chats.contains_key(&chat) {
                return Err(ApiError::bad_request("chat not found"));
            }
            ok(w.chat_full_info_json(chat))
        }),
        "getFile" => shared.read(|w| get_file(w, &p)),
        "setMyCommands" => shared.write(|w| set_my_commands(w, &p)),
        "getMyCommands" => shared.read(|w| {
            let key = (command_scope(w, &p)?, command_language(&p)?);
            let list = w.commands.get(&key).cloned().unwrap_or_default();
            ok(Value::Array(list.into_iter().map(|(c, d)| json!({"command": c, "description": d})).collect()))
        }),
        _ => Err(ApiError::not_found()),
    }
}

// ---------------------------------------------------------------- getUpdates and webhooks

async fn get_updates(shared: &Shared, p: Params) -> Result<ApiOk, ApiError> {
    let offset = p.int("offset").map_err(|_| ApiError::bad_request("invalid offset specified"))?.unwrap_or(0);
    // Telegram clamps a limit outside 1–100 rather than refusing it.
    let limit =
        p.int("limit").map_err(|_| ApiError::bad_request("invalid limit specified"))?.unwrap_or(100).clamp(1, 100)
            as usize;
    let timeout = p.int("timeout").map_err(|_| ApiError::bad_request("invalid timeout specified"))?.unwrap_or(0).max(0);
    let allowed = p.json("allowed_updates").map_err(|_| ApiError::bad_request("can't parse allowed updates"))?;
    let allowed: Option<Vec<String>> = match allowed {
        None => None,
        Some(Value::Array(items)) => Some(items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()),
        Some(_) => return Err(ApiError::bad_request("can't parse allowed updates")),
    };

    // Subscribe before looking, so an update queued between the look and the wait still wakes this poll.
    let mut changes = shared.changed.subscribe();
    let (generation, wait) = shared.write(|w| {
        if w.webhook.is_some() {
            return Err(ApiError::webhook_conflict());
        }
        if let Some(list) = allowed {
            w.allowed_updates = Some(list);
        }
        if offset > 0 {
            while w.updates.front().is_some_and(|u| u.id < offset) {
                w.updates.pop_front();
            }
        } else if offset < 0 {
            let keep = offset.unsigned_abs() as usize;
            while w.updates.len() > keep {
                w.updates.pop_front();
            }
        }
        w.poll_generation += 1;
        w.waiting_polls += 1;
        Ok((w.poll_generation, w.config.scaled(Duration::from_secs(timeout as u64))))
    })?;
    let _waiting = WaitingPoll(shared);
    changes.borrow_and_update();
    let deadline = Instant::now() + wait;
    loop {
        let found = shared.read(|w| {
            if w.poll_generation != generation {
                return Err(ApiError::new(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                ));
            }
            if w.webhook.is_some() {
                return Err(ApiError::webhook_conflict());
            }
            Ok(w.updates.iter().take(limit).map(|u| u.json.clone()).collect::<Vec<_>>())
        })?;
        if !found.is_empty() || Instant::now() >= deadline {
            return ok(Value::Array(found));
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return ok(json!([])) },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Counts a getUpdates call as waiting until it answers (or its connection goes), so tests can see a bot polling.
struct WaitingPoll<'a>(&'a Shared);

impl Drop for WaitingPoll<'_> {
    fn drop(&mut self) {
        self.0.write(|w| w.waiting_polls -= 1);
    }
}

fn set_webhook(w: &mut World, p: &Params) -> Result<ApiOk, ApiError> {
    let url = p.str("url").unwrap_or_default();
    if url.is_empty() {
        return delete_webhook(w, p);
    }
    check_webhook_url(&url)?;
    let secret = p.str("secret_token").filter(|s| !s.is_empty());
    if let Some(s) = &secret
        && (s.len() > 256 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    {
        return Err(ApiError::bad_request("secret token contains unallowed characters"));
    }
    let max_connections = p
        .int("max_connections")
        .map_err(|_| ApiError::bad_request("invalid max_connections specified"))?
        .unwrap_or(40)
        .clamp(1, 100);
    match p.json("allowed_updates") {
        Ok(None) => {}
        Ok(Some(Value::Array(items))) => {
            w.allowed_updates = Some(items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect());
        }
        _ => return Err(ApiError::bad_request("can't parse allowed updates")),
    }
    if p.bool("drop_pending_updates") {
        w.updates.clear();
    }
    let unchanged = w.webhook.as_ref().is_some_and(|h| h.url == url && h.secret_token == secret);
    w.webhook_generation += 1;
    w.webhook = Some(Webhook { url, secret_token: secret, max_connections, generation: w.webhook_generation });
    if !unchanged {
        w.webhook_error = None;
    }
    // Setting a webhook ends any long poll in progress.
    w.poll_generation += 1;
    Ok(ApiOk {
        result: json!(true),
        description: Some(if unchanged { "Webhook is already set" } else { "Webhook was set" }),
    })
}

/// Telegram wants HTTPS on ports 443, 80, 88 or 8443; the fake also takes plain HTTP to a loopback address,
/// because a test's webhook receiver listens there.
fn check_webhook_url(url: &str) -> Result<(), ApiError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(ApiError::bad_request("invalid webhook URL specified"));
    };
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match host_port.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    };
    if host.is_empty() {
        return Err(ApiError::bad_request("invalid webhook URL specified"));
    }
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(ApiError::bad_request("bad webhook: An HTTPS URL must be provided for webhook")),
    }
}

fn delete_webhook(w: &mut World, p: &Params) -> Result<ApiOk, ApiError> {
    if p.bool("drop_pending_updates") {
        w.updates.clear();
    }
    let was = w.webhook.take().is_some();
    w.webhook_error = None;
    Ok(ApiOk {
        result: json!(true),
        description: Some(if was { "Webhook was deleted" } else { "Webhook is already deleted" }),
    })
}

fn webhook_info(w: &World) -> Value {
    let mut info = json!({
        "url": w.webhook.as_ref().map(|h| h.url.clone()).unwrap_or_default(),
        "has_custom_certificate": false,
        "pending_update_count": w.updates.len(),
    });
    if let Some(h) = &w.webhook {
        info["ip_address"] = json!("127.0.0.1");
        info["max_connections"] = json!(h.max_connections);
        if let Some((date, message)) = &w.webhook_error {
            info["last_error_date"] = json!(date);
            info["last_error_message"] = json!(message);
        }
        if let Some(list) = w.allowed_updates.as_ref().filter(|l| !l.is_empty()) {
            info["allowed_updates"] = json!(list);
        }
    }
    info
}

// ---------------------------------------------------------------- chats

fn chat_id(w: &World, p: &Params) -> Result<i64, ApiError> {
    let raw =
        p.str("chat_id").filter(|s| !s.trim().is_empty()).ok_or_else(|| ApiError::bad_request("chat_id is empty"))?;
    let raw = raw.trim();
    if let Some(name) = raw.strip_prefix('@') {
        // Only public chats are addressable by username, and the fake's groups have none.
        let _ = (w, name);
        return Err(ApiError::bad_request("chat not found"));
    }
    raw.parse::<i64>().map_err(|_| ApiError::bad_request("chat not found"))
}

/// Whether the bot may write in the chat, with Telegram's answer if not.
fn check_writable(w: &World, chat: i64) -> Result<(), ApiError> {
    let Some(c) = w.chats.get(&chat) else {
        // A known user who never opened a private chat with the bot.
        if w.users.contains_key(&chat) {
            return Err(ApiError::forbidden("bot can't initiate conversation with a user"));
        }
        return Err(ApiError::bad_request("chat not found"));
    };
    if let Some(to) = c.migrated_to {
        return Err(ApiError {
            code: 400,
            description: "Bad Request: group chat was upgraded to a supergroup chat".into(),
            parameters: Some(json!({"migrate_to_chat_id": to})),
        });
    }
    let kind = if c.kind == ChatKind::Supergroup { "supergroup" } else { "group" };
    match (c.kind, c.bot) {
        (ChatKind::Private, _) if c.blocked => Err(ApiError::forbidden("bot was blocked by the user")),
        (ChatKind::Private, _) => Ok(()),
        (_, BotMembership::Left) => Err(ApiError::forbidden(&format!("bot is not a member of the {kind} chat"))),
        (_, BotMembership::Kicked) => Err(ApiError::forbidden(&format!("bot was kicked from the {kind} chat"))),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------- messages

/// `text` and `parse_mode` (or explicit `entities`) turned into what the chat shows.
fn message_text(p: &Params) -> Result<(String, Vec<Value>, String, Option<String>), ApiError> {
    let raw = p.str("text").unwrap_or_default();
    let parse_mode = p.str("parse_mode").filter(|s| !s.is_empty());
    let explicit = p.json("entities").map_err(|_| ApiError::bad_request("can't parse entities JSON object"))?;
    let (text, entities) = match (&explicit, parse_mode.as_deref().map(str::to_ascii_lowercase).as_deref()) {
        (Some(Value::Array(list)), _) => (raw.clone(), list.clone()),
        (Some(_), _) => return Err(ApiError::bad_request("can't parse entities JSON object")),
        (None, None) => (raw.trim().to_string(), Vec::new()),
        (None, Some("html")) => {
            let parsed = html::parse(&raw).map_err(|e| ApiError::bad_request(&format!("can't parse entities: {e}")))?;
            (parsed.text, parsed.entities)
        }
        // Markdown modes are accepted but not interpreted: the text is kept as sent, without entities.
        (None, Some("markdown" | "markdownv2")) => (raw.trim().to_string(), Vec::new()),
        (None, Some(_)) => return Err(ApiError::bad_request("unsupported parse_mode")),
    };
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("message text is empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::bad_request("message is too long"));
    }
    Ok((text, entities, raw, parse_mode))
}

const BUTTON_ACTIONS: &[&str] = &[
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
];

/// Validates `reply_markup`; returns the inline keyboard to show in the message (the only kind Telegram returns).
fn reply_markup(p: &Params) -> Result<Option<Value>, ApiError> {
    let markup =
        p.json("reply_markup").map_err(|_| ApiError::bad_request("can't parse reply keyboard markup JSON object"))?;
    let Some(markup) = markup else { return Ok(None) };
    if !markup.is_object() {
        return Err(ApiError::bad_request("can't parse reply keyboard markup JSON object"));
    }
    let Some(keyboard) = markup.get("inline_keyboard") else {
        // Reply keyboards, keyboard removal and force-reply are accepted and not shown in Message.
        return Ok(None);
    };
    let rows = keyboard.as_array().filter(|rows| rows.iter().all(Value::is_array)).ok_or_else(|| {
        ApiError::bad_request("field \"inline_keyboard\" of the InlineKeyboardMarkup should be an Array of Arrays")
    })?;
    for button in rows.iter().filter_map(Value::as_array).flatten() {
        let Some(obj) = button.as_object() else {
            return Err(ApiError::bad_request(
                "can't parse inline keyboard button: InlineKeyboardButton should be an Object",
            ));
        };
        if !obj.get("text").is_some_and(Value::is_string) {
            return Err(ApiError::bad_request(
                "can't parse inline keyboard button: Field \"text\" must be of type String",
            ));
        }
        if !BUTTON_ACTIONS.iter().any(|k| obj.contains_key(*k)) {
            return Err(ApiError::bad_request(
                "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
            ));
        }
        if let Some(data) = obj.get("callback_data") {
            let len = data.as_str().map_or(0, str::len);
            if !(1..=64).contains(&len) {
                return Err(ApiError::bad_request("BUTTON_DATA_INVALID"));
            }
        }
        if let Some(url) = obj.get("url") {
            let url = url.as_str().unwrap_or_default();
            let scheme_ok = ["http://", "https://", "tg://"].iter().any(|s| url.to_ascii_lowercase().starts_with(s));
            if !scheme_ok || url.len() < 8 {
                return Err(ApiError::bad_request(&format!(
                    "inline keyboard button URL '{url}' is invalid: Unsupported URL protocol"
                )));
            }
        }
    }
    Ok(Some(json!({"inline_keyboard": rows})))
}

fn link_preview_options(p: &Params) -> Result<Option<Value>, ApiError> {
    match p.json("link_preview_options") {
        Ok(Some(v)) if v.is_object() => Ok(Some(v)),
        Ok(Some(_)) | Err(_) => Err(ApiError::bad_request("can't parse link preview options JSON object")),
        Ok(None) if p.bool("disable_web_page_preview") => Ok(Some(json!({"is_disabled": true}))),
        Ok(None) => Ok(None),
    }
}

/// The message a send replies to, from `reply_parameters` or the older `reply_to_message_id`.
fn reply_target(w: &World, p: &Params, chat: i64) -> Result<Option<Value>, ApiError> {
    let (id, reply_chat, lenient) = match p.json("reply_parameters") {
        Err(_) => return Err(ApiError::bad_request("can't parse reply parameters JSON object")),
        Ok(Some(rp)) => {
            let id =
                rp["message_id"].as_i64().ok_or_else(|| ApiError::bad_request("message to be replied not found"))?;
            let reply_chat = rp["chat_id"].as_i64().unwrap_or(chat);
            (id, reply_chat, rp["allow_sending_without_reply"].as_bool().unwrap_or(false))
        }
        Ok(None) => match p.int("reply_to_message_id") {
            Ok(Some(id)) => (id, chat, p.bool("allow_sending_without_reply")),
            Ok(None) => return Ok(None),
            Err(_) => return Err(ApiError::bad_request("message to be replied not found")),
        },
    };
    match w.reply_copy(reply_chat, id) {
        Some(v) => Ok(Some(v)),
        None if lenient => Ok(None),
        None => Err(ApiError::bad_request("message to be replied not found")),
    }
}

fn send_message(w: &mut World, p: &Params) -> Result<ApiOk, ApiError> {
    let chat = chat_id(w, p)?;
    check_writable(w, chat)?;
    let (text, entities, raw, parse_mode) = message_text(p)?;
    let markup = reply_markup(p)?;
    let preview = link_preview_options(p)?;
    let reply = reply_target(w, p, chat)?;
    let is_group = w.chats[&chat].kind != ChatKind::Private;
    let paid = p.bool("allow_paid_broadcast");
    let config = &w.config;
    if let Err(retry_after) =
        w.limiter.try_send(&config.rate_limits, |d| config.scaled(d), chat, is_group, paid, Instant::now())
    {
        w.stats.rate_limited += 1;
        return Err(ApiError::too_many_requests(retry_after));
    }
    let c = w.chats.get_mut(&chat).expect("checked above");
    let message_id = c.next_message_id;
    c.next_message_id += 1;
    let mut m = Map::new();
    m.insert("message_id".into(), json!(message_id));
    m.insert("from".into(), w.bot_user_json());
    m.insert("chat".into(), w.chat_json(chat));
    m.insert("date".into(), json!(unix_now()));
    if let Some(r) = reply {
        m.insert("reply_to_message".into(), r);
    }
    m.insert("text".into(), json!(text));
    if !entities.is_empty() {
        m.insert("entities".into(), json!(entities));
    }
    if let Some(v) = preview {
        m.insert("link_preview_options".into(), v);
    }
    if let Some(v) = markup {
        m.insert("reply_markup".into(), v);
    }
    let json = Value::Object(m);
    w.messages.insert(
        (chat, message_id),
        MsgRec { json: json.clone(), deleted: false, bot: Some(BotMeta { raw_text: raw, parse_mode, edits: 0 }) },
    );
    w.stats.sends += 1;
    w.stats.paid_sends += u64::from(paid);
    *w.stats.deliveries_per_chat.entry(chat).or_default() += 1;
    w.events.push(BotEvent::Sent { chat_id: ChatId(chat), message_id });
    ok(json)
}

fn message_id(p: &Params, missing: &str) -> Result<i64, ApiError> {
    p.int("message_id").ok().flatten().ok_or_else(|| ApiError::bad_request(missing))
}

fn edit_message_text(w: &mut World, p: &Params) -> Result<ApiOk, ApiError> {
    if p.has("inline_message_id") {
        // The fake sends no inline messages, so no inline message id can be valid.
        return Err(ApiError::bad_request("MESSAGE_ID_INVALID"));
    }
    let chat = chat_id(w, p)?;
    check_writable(w, chat)?;
    let id = message_id(p, "message to edit not found")?;
    let (text, entities, raw, parse_mode) = message_text(p)?;
    let markup = reply_markup(p)?;
    let preview = link_preview_options(p)?;
    let rec = w
        .messages
        .get_mut(&(chat, id))
        .filter(|m| !m.deleted)
        .ok_or_else(|| ApiError::bad_request("message to edit not found"))?;
    let Some(meta) = rec.bot.as_mut() else {
        return Err(ApiError::bad_request("message can't be edited"));
    };
    let old_entities = rec.json.get("entities").cloned().unwrap_or(json!([]));
    if rec.json["text"].as_str() == Some(text.as_str())
        && old_entities == json!(entities)
        && rec.json.get("reply_markup") == markup.as_ref()
    {
        return Err(ApiError::bad_request(
            "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        ));
    }
    meta.raw_text = raw;
    meta.parse_mode = parse_mode;
    meta.edits += 1;
    let o = rec.json.as_object_mut().expect("messages are objects");
    o.insert("text".into(), json!(text));
    o.insert("edit_date".into(), json!(unix_now()));
    if entities.is_empty() {
        o.remove("entities");
    } else {
        o.insert("entities".into(), json!(entities));
    }
    // An edit without reply_markup removes the inline keyboard, as on Telegram.
    match markup {
        Some(v) => o.insert("reply_markup".into(), v),
        None => o.remove("reply_markup"),
    };
    if let Some(v) = preview {
        o.insert("link_preview_options".into(), v);
    }
    let json = rec.json.clone();
    w.stats.edits += 1;
    w.events.push(BotEvent::Edited { chat_id: ChatId(chat), message_id: id });
    ok(json)
}

fn delete_message(w: &mut World, p: &Params) -> Result<ApiOk, ApiError> {
    let chat = chat_id(w, p)?;
    check_writable(w, chat)?;
    let id = message_id(p, "message to delete not found")?;
    let kind = w.chats[&chat].kind;
    let bot_may_delete_others = kind == ChatKind::Private
        || matches!(w.chats[&chat].bot, BotMembership::Administrator { can_delete_messages: true });
    let rec = w
        .messages
        .get_mut(&(chat, id))
        .filter(|m| !m.deleted)
        .ok_or_else(|| ApiError::bad_request("message to delete not found"))?;
    if rec.bot.is_none() && !bot_may_delete_others {
        return Err(ApiError::bad_request("message can't be deleted"));
    }
    rec.deleted = true;
    w.stats.deletions += 1;
    w.events.push(BotEvent::Deleted { chat_id: ChatId(chat), message_id: id });
    ok(json!(true))
}

fn answer_callback_query(w: &mut World, p: &Params) -> Result<ApiOk, ApiError> {
    let invalid = || ApiError::bad_request("query is too old and response timeout expired or query ID is invalid");
    let id = p.str("callback_query_id").ok_or_else(invalid)?;
    let rec = w.callbacks.get_mut(&id).filter(|c| c.answered.is_none()).ok_or_else(invalid)?;
    let answer = CallbackAnswer {
        text: p.str("text").filter(|s| !s.is_empty()),
        show_alert: p.bool("show_alert"),
        url: p.str("url").filter(|s| !s.is_empty()),
        cache_time: p.int("cache_time").ok().flatten().unwrap_or(0),
    };
    if answer.text.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(ApiError::bad_request("MESSAGE_TOO_LONG"));
    }
    rec.answered = Some(answer.clone());
    w.events.push(BotEvent::CallbackAnswered { callback_query_id: id, answer });
    ok(json!(true))
}

const CHAT_ACTIONS: &[&str] = &[
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

fn send_chat_action(w: &mut World, p: &Params) -> Result<ApiOk, ApiError> {
    let chat = chat_id(w, p)?;
    check_writable(w, chat)?;
    let action = p.str("action").unwrap_or_default();
    if !CHAT_ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::bad_request("wrong parameter action in request"));
    }
    w.events.push(BotEvent::ChatAction { chat_id: ChatId(chat), action });
    ok(json!(true))
}

fn get_file(w: &World, p: &Params) -> Result<ApiOk, ApiError> {
    let id = p.str("file_id").filter(|s| !s.is_empty()).ok_or_else(|| ApiError::bad_request("invalid file_id"))?;
    let f = w.files.get(&id).ok_or_else(|| ApiError::bad_request("invalid file_id"))?;
    ok(json!({
        "file_id": id,
        "file_unique_id": f.file_unique_id,
        "file_size": f.bytes.len(),
        "file_path": f.path,
    }))
}

// ---------------------------------------------------------------- command menus

/// The scope of a command menu as the fake keys it: `default`, `all_private_chats`, `all_group_chats`,
/// `all_chat_administrators`, `chat:<id>`, `chat_administrators:<id>`, `chat_member:<chat>:<user>`.
fn command_scope(w: &World, p: &Params) -> Result<String, ApiError> {
    let scope = p.json("scope").map_err(|_| ApiError::bad_request("can't parse BotCommandScope JSON object"))?;
    let Some(scope) = scope else { return Ok("default".to_owned()) };
    let kind = scope.get("type").and_then(Value::as_str).unwrap_or_default();
    let chat = || -> Result<i64, ApiError> {
        let id = match scope.get("chat_id") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        id.filter(|id| w.chats.contains_key(id)).ok_or_else(|| ApiError::bad_request("chat not found"))
    };
    match kind {
        "default" | "all_private_chats" | "all_group_chats" | "all_chat_administrators" => Ok(kind.to_owned()),
        "chat" | "chat_administrators" => Ok(format!("{kind}:{}", chat()?)),
        "chat_member" => {
            let user =
                scope.get("user_id").and_then(Value::as_i64).ok_or_else(|| ApiError::bad_request("user not found"))?;
            Ok(format!("chat_member:{}:{user}", chat()?))
        }
        _ => Err(ApiError::bad_request("unsupported bot command scope type")),
    }
}

/// "" (every language without a menu of its own) or a two-letter ISO 639-1 code.
fn command_language(p: &Params) -> Result<String, ApiError> {
    let code = p.str("language_code").unwrap_or_default();
    if code.is_empty() || (code.len() == 2 && code.bytes().all(|b| b.is_ascii_lowercase())) {
        Ok(code)
    } else {
        Err(ApiError::bad_request("invalid language code specified"))
    }
}

/// setMyCommands: at most 100 commands, each 1–32 of `a-z0-9_`, with a description of 1–256 characters; an empty
/// list deletes the menu of that scope and language.
fn set_my_commands(w: &mut World, p: &Params) -> Result<ApiOk, ApiError> {
    let commands = match p.json("commands") {
        Ok(Some(Value::Array(items))) => items,
        _ => return Err(ApiError::bad_request("can't parse commands JSON object")),
    };
    if commands.len() > 100 {
        return Err(ApiError::bad_request("too many commands specified"));
    }
    let mut list = Vec::new();
    for c in &commands {
        let (Some(command), Some(description)) =
            (c.get("command").and_then(Value::as_str), c.get("description").and_then(Value::as_str))
        else {
            return Err(ApiError::bad_request("can't parse BotCommand"));
        };
        let command = command.trim();
        if command.is_empty()
            || command.len() > 32
            || !command.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(ApiError::bad_request("BOT_COMMAND_INVALID"));
        }
        let description = description.trim();
        if description.is_empty() {
            return Err(ApiError::bad_request("command description must be non-empty"));
        }
        // Over 256 characters: the documented limit; the wording of Telegram's refusal is the fake's own.
        if description.chars().count() > 256 {
            return Err(ApiError::bad_request("command description is too long"));
        }
        list.push((command.to_owned(), description.to_owned()));
    }
    let key = (command_scope(w, p)?, command_language(p)?);
    if list.is_empty() {
        w.commands.remove(&key);
    } else {
        w.commands.insert(key, list);
    }
    ok(json!(true))
}
