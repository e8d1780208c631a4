//! The fake's state: users, chats, every message in them, the update queue, the webhook, pending callback queries,
//! uploaded files, injected faults, rate-limit windows and counters. It lives behind one mutex that is never held
//! across an await, and every JSON object built here follows the field lists of the Bot API documentation
//! (`User`, `Chat`, `Message`, `Update`, `CallbackQuery`, `ChatMemberUpdated`, `PhotoSize`, `Document`, `Sticker`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::entities;
use crate::ratelimit::Limiter;
use crate::types::{
    BotEvent, BotMembership, BotMessage, CallbackAnswer, ChatId, Content, Fault, NewUser, Posted, Stats, UserId,
    UserMessage,
};

pub(crate) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Update types a bot receives when it subscribed to none in particular ("all except chat_member,
/// message_reaction and message_reaction_count", per the getUpdates documentation).
const NOT_BY_DEFAULT: &[&str] = &["chat_member", "message_reaction", "message_reaction_count"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChatKind {
    Private,
    Group,
    Supergroup,
}

impl ChatKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Private => "private",
            ChatKind::Group => "group",
            ChatKind::Supergroup => "supergroup",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ChatRec {
    pub id: i64,
    pub kind: ChatKind,
    pub title: Option<String>,
    pub bot: BotMembership,
    /// For a group upgraded to a supergroup: the supergroup's id.
    pub migrated_to: Option<i64>,
    /// For a private chat: the user blocked the bot.
    pub blocked: bool,
    pub next_message_id: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct MsgRec {
    pub json: Value,
    pub deleted: bool,
    pub bot: Option<BotMeta>,
}

#[derive(Debug, Clone)]
pub(crate) struct BotMeta {
    pub raw_text: String,
    pub parse_mode: Option<String>,
    pub edits: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct UpdateRec {
    pub id: i64,
    pub json: Value,
}

#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    pub url: String,
    pub secret_token: Option<String>,
    pub max_connections: i64,
    /// Bumped on every setWebhook so a delivery in flight for an old setting is not credited to a new one.
    pub generation: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct CallbackRec {
    pub answered: Option<CallbackAnswer>,
}

#[derive(Debug, Clone)]
pub(crate) struct FileRec {
    pub file_unique_id: String,
    pub path: String,
    pub bytes: Vec<u8>,
}

pub(crate) struct World {
    pub config: Config,
    pub users: BTreeMap<i64, NewUser>,
    pub chats: BTreeMap<i64, ChatRec>,
    pub messages: BTreeMap<(i64, i64), MsgRec>,
    pub updates: VecDeque<UpdateRec>,
    pub next_update_id: i64,
    /// The subscription set by getUpdates or setWebhook; `None` means the default set.
    pub allowed_updates: Option<Vec<String>>,
    pub webhook: Option<Webhook>,
    pub webhook_generation: u64,
    pub webhook_error: Option<(i64, String)>,
    /// Bumped by every getUpdates, so a long poll that a newer one overtook can answer 409 as Telegram does.
    pub poll_generation: u64,
    /// getUpdates calls in progress.
    pub waiting_polls: usize,
    pub callbacks: HashMap<String, CallbackRec>,
    pub files: HashMap<String, FileRec>,
    pub faults: HashMap<String, VecDeque<Fault>>,
    pub limiter: Limiter,
    pub stats: Stats,
    pub events: Vec<BotEvent>,
    /// The bot's command menus (setMyCommands), by scope (`default`, `chat:<id>`, ...) and language code ("" for
    /// all languages), as (command, description).
    pub commands: BTreeMap<(String, String), Vec<(String, String)>>,
    next_user_id: i64,
    next_group_seq: i64,
    next_serial: u64,
}

impl World {
    pub fn new(config: Config) -> World {
        World {
            config,
            users: BTreeMap::new(),
            chats: BTreeMap::new(),
            messages: BTreeMap::new(),
            updates: VecDeque::new(),
            // Telegram's update ids are large and only ever grow; starting high catches code that assumes small ids.
            next_update_id: 861_000_001,
            allowed_updates: None,
            webhook: None,
            webhook_generation: 0,
            webhook_error: None,
            poll_generation: 0,
            waiting_polls: 0,
            callbacks: HashMap::new(),
            files: HashMap::new(),
            faults: HashMap::new(),
            limiter: Limiter::default(),
            stats: Stats::default(),
            commands: BTreeMap::new(),
            events: Vec::new(),
            next_user_id: 100_000_001,
            next_group_seq: 1,
            next_serial: 1,
        }
    }

    fn serial(&mut self) -> u64 {
        let n = self.next_serial;
        self.next_serial += 1;
        n
    }

    // ---------------------------------------------------------------- JSON in the documented shapes

    pub fn bot_user_json(&self) -> Value {
        json!({
            "id": self.config.bot_id,
            "is_bot": true,
            "first_name": self.config.bot_first_name,
            "username": self.config.bot_username,
        })
    }

    /// `getMe`: the bot's `User` with the fields "returned only in getMe".
    pub fn get_me_json(&self) -> Value {
        let mut me = self.bot_user_json();
        let fields = [
            ("can_join_groups", json!(true)),
            ("can_read_all_group_messages", json!(self.config.can_read_all_group_messages)),
            ("supports_inline_queries", json!(false)),
            ("can_connect_to_business", json!(false)),
            ("has_main_web_app", json!(false)),
            ("has_topics_enabled", json!(false)),
            ("allows_users_to_create_topics", json!(false)),
        ];
        for (k, v) in fields {
            me[k] = v;
        }
        me
    }

    pub fn user_json(&self, id: i64) -> Value {
        let u = &self.users[&id];
        let mut v = json!({"id": id, "is_bot": false, "first_name": u.first_name});
        if let Some(x) = &u.last_name {
            v["last_name"] = json!(x);
        }
        if let Some(x) = &u.username {
            v["username"] = json!(x);
        }
        if let Some(x) = &u.language_code {
            v["language_code"] = json!(x);
        }
        v
    }

    pub fn chat_json(&self, id: i64) -> Value {
        let c = &self.chats[&id];
        match c.kind {
            ChatKind::Private => {
                let u = &self.users[&id];
                let mut v = json!({"id": id, "type": "private", "first_name": u.first_name});
                if let Some(x) = &u.last_name {
                    v["last_name"] = json!(x);
                }
                if let Some(x) = &u.username {
                    v["username"] = json!(x);
                }
                v
            }
            kind => json!({"id": id, "type": kind.as_str(), "title": c.title.clone().unwrap_or_default()}),
        }
    }

    /// `getChat`: a `ChatFullInfo`.
    pub fn chat_full_info_json(&self, id: i64) -> Value {
        let mut v = self.chat_json(id);
        v["accent_color_id"] = json!(id.unsigned_abs() % 7);
        v["max_reaction_count"] = json!(11);
        v["accepted_gift_types"] = json!({
            "unlimited_gifts": false,
            "limited_gifts": false,
            "unique_gifts": false,
            "premium_subscription": false,
            "gifts_from_channels": false,
        });
        v
    }

    // ---------------------------------------------------------------- updates

    pub fn subscribed(&self, kind: &str) -> bool {
        match &self.allowed_updates {
            Some(list) if !list.is_empty() => list.iter().any(|k| k == kind),
            _ => !NOT_BY_DEFAULT.contains(&kind),
        }
    }

    /// Queues an update unless the bot is not subscribed to its type; returns its id.
    pub fn enqueue(&mut self, kind: &str, payload: Value) -> Option<i64> {
        if !self.subscribed(kind) {
            return None;
        }
        let id = self.next_update_id;
        self.next_update_id += 1;
        let mut json = Map::new();
        json.insert("update_id".into(), json!(id));
        json.insert(kind.into(), payload);
        self.updates.push_back(UpdateRec { id, json: Value::Object(json) });
        Some(id)
    }

    // ---------------------------------------------------------------- the test side

    pub fn create_user(&mut self, new: NewUser) -> UserId {
        let id = self.next_user_id;
        self.next_user_id += 1;
        self.users.insert(id, new);
        UserId(id)
    }

    pub fn private_chat(&mut self, user: UserId) -> Result<ChatId, String> {
        if !self.users.contains_key(&user.0) {
            return Err(format!("no user {}", user.0));
        }
        self.chats.entry(user.0).or_insert(ChatRec {
            id: user.0,
            kind: ChatKind::Private,
            title: None,
            bot: BotMembership::Member,
            migrated_to: None,
            blocked: false,
            next_message_id: 1,
        });
        Ok(ChatId(user.0))
    }

    pub fn create_group(&mut self, title: &str, kind: ChatKind, bot: BotMembership) -> ChatId {
        let seq = self.next_group_seq;
        self.next_group_seq += 1;
        let id = match kind {
            ChatKind::Supergroup => -1_000_000_000_000 - 2_000_000_000 - seq,
            _ => -4_000_000_000 - seq,
        };
        self.chats.insert(
            id,
            ChatRec { id, kind, title: Some(title.into()), bot, migrated_to: None, blocked: false, next_message_id: 1 },
        );
        ChatId(id)
    }

    fn next_message_id(&mut self, chat: i64) -> i64 {
        let c = self.chats.get_mut(&chat).expect("chat exists");
        let id = c.next_message_id;
        c.next_message_id += 1;
        id
    }

    fn new_file(&mut self, dir: &str, ext: &str, bytes: Vec<u8>) -> (String, String, usize) {
        let n = self.serial();
        let file_id = format!("BQACAgIAAxkBAAIB{n:08}AAFmZmFrZS10ZWxlZ3JhbQ");
        let unique = format!("AgADfake{n:08}");
        let size = bytes.len();
        self.files.insert(
            file_id.clone(),
            FileRec { file_unique_id: unique.clone(), path: format!("{dir}/file_{n}.{ext}"), bytes },
        );
        (file_id, unique, size)
    }

    fn content_json(&mut self, content: &Content) -> Map<String, Value> {
        let mut m = Map::new();
        let caption = |m: &mut Map<String, Value>, caption: &Option<String>| {
            if let Some(c) = caption {
                m.insert("caption".into(), json!(c));
                let e = entities::detect(c);
                if !e.is_empty() {
                    m.insert("caption_entities".into(), json!(e));
                }
            }
        };
        match content {
            Content::Text(text) => {
                m.insert("text".into(), json!(text));
                let e = entities::detect(text);
                if !e.is_empty() {
                    m.insert("entities".into(), json!(e));
                }
            }
            Content::Photo { caption: c } => {
                // Telegram sends every photo in several sizes, smallest first.
                let mut sizes = Vec::new();
                for (w, h) in [(90, 67), (800, 600)] {
                    let bytes = fake_jpeg(w);
                    let (file_id, unique, size) = self.new_file("photos", "jpg", bytes);
                    sizes.push(json!({"file_id": file_id, "file_unique_id": unique, "width": w, "height": h, "file_size": size}));
                }
                m.insert("photo".into(), json!(sizes));
                caption(&mut m, c);
            }
            Content::Document { file_name, mime_type, bytes, caption: c } => {
                let ext = file_name.rsplit_once('.').map(|(_, e)| e.to_string()).unwrap_or_else(|| "bin".into());
                let (file_id, unique, size) = self.new_file("documents", &ext, bytes.clone());
                m.insert(
                    "document".into(),
                    json!({"file_id": file_id, "file_unique_id": unique, "file_name": file_name, "mime_type": mime_type, "file_size": size}),
                );
                caption(&mut m, c);
            }
            Content::Sticker { emoji } => {
                let (file_id, unique, size) = self.new_file("stickers", "webp", b"RIFF\0\0\0\0WEBPVP8 ".to_vec());
                m.insert(
                    "sticker".into(),
                    json!({"file_id": file_id, "file_unique_id": unique, "type": "regular", "width": 512, "height": 512,
                           "is_animated": false, "is_video": false, "emoji": emoji, "file_size": size}),
                );
            }
        }
        m
    }

    /// The `reply_to_message` copy of a message: Telegram never nests a second level of replies.
    pub fn reply_copy(&self, chat: i64, message_id: i64) -> Option<Value> {
        let rec = self.messages.get(&(chat, message_id)).filter(|m| !m.deleted)?;
        let mut v = rec.json.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("reply_to_message");
        }
        Some(v)
    }

    fn check_user_can_write(&self, from: UserId, chat: ChatId) -> Result<&ChatRec, String> {
        if !self.users.contains_key(&from.0) {
            return Err(format!("no user {}", from.0));
        }
        let c = self.chats.get(&chat.0).ok_or_else(|| format!("no chat {}", chat.0))?;
        if c.kind == ChatKind::Private && c.id != from.0 {
            return Err(format!("user {} cannot write in the private chat of user {}", from.0, c.id));
        }
        if c.blocked {
            return Err(format!("user {} blocked the bot; unblock it first", from.0));
        }
        if c.migrated_to.is_some() {
            return Err(format!("group {} was upgraded to a supergroup", chat.0));
        }
        Ok(c)
    }

    /// Whether Telegram would pass this group message to the bot (see `Config::can_read_all_group_messages`).
    fn bot_sees(&self, chat: &ChatRec, msg: &Value) -> bool {
        if chat.kind == ChatKind::Private {
            return true;
        }
        match chat.bot {
            BotMembership::Left | BotMembership::Kicked => return false,
            BotMembership::Administrator { .. } => return true,
            BotMembership::Member => {}
        }
        if self.config.can_read_all_group_messages {
            return true;
        }
        let replies_to_bot = msg["reply_to_message"]["from"]["id"].as_i64() == Some(self.config.bot_id);
        let text = msg["text"].as_str().or(msg["caption"].as_str()).unwrap_or("");
        let ents = msg.get("entities").or(msg.get("caption_entities")).and_then(Value::as_array);
        let me = format!("@{}", self.config.bot_username).to_ascii_lowercase();
        let addressed = ents.into_iter().flatten().any(|e| {
            let piece = utf16_slice(text, e["offset"].as_u64().unwrap_or(0), e["length"].as_u64().unwrap_or(0));
            match e["type"].as_str() {
                Some("mention") => piece.to_ascii_lowercase() == me,
                // A command meant for another bot (`/cmd@other_bot`) is not this bot's.
                Some("bot_command") => match piece.split_once('@') {
                    Some((_, bot)) => format!("@{bot}").to_ascii_lowercase() == me,
                    None => e["offset"].as_u64() == Some(0),
                },
                _ => false,
            }
        });
        replies_to_bot || addressed
    }

    pub fn user_posts(&mut self, from: UserId, chat: ChatId, msg: UserMessage) -> Result<Posted, String> {
        self.check_user_can_write(from, chat)?;
        let reply = match msg.reply_to {
            Some(id) => Some(self.reply_copy(chat.0, id).ok_or_else(|| format!("no message {id} in chat {}", chat.0))?),
            None => None,
        };
        let message_id = self.next_message_id(chat.0);
        let mut m = Map::new();
        m.insert("message_id".into(), json!(message_id));
        m.insert("from".into(), self.user_json(from.0));
        m.insert("chat".into(), self.chat_json(chat.0));
        m.insert("date".into(), json!(unix_now()));
        if let Some(r) = reply {
            m.insert("reply_to_message".into(), r);
        }
        m.extend(self.content_json(&msg.content));
        let json = Value::Object(m);
        self.messages.insert((chat.0, message_id), MsgRec { json: json.clone(), deleted: false, bot: None });
        let update_id = if self.bot_sees(&self.chats[&chat.0], &json) { self.enqueue("message", json) } else { None };
        Ok(Posted { chat_id: chat, message_id, update_id })
    }

    pub fn user_edits(&mut self, from: UserId, chat: ChatId, message_id: i64, text: &str) -> Result<Posted, String> {
        self.check_user_can_write(from, chat)?;
        let rec = self
            .messages
            .get_mut(&(chat.0, message_id))
            .filter(|m| !m.deleted && m.json["from"]["id"].as_i64() == Some(from.0))
            .ok_or_else(|| format!("user {} has no message {message_id} in chat {}", from.0, chat.0))?;
        let key = if rec.json.get("text").is_some() { "text" } else { "caption" };
        rec.json[key] = json!(text);
        let ents_key = if key == "text" { "entities" } else { "caption_entities" };
        let e = entities::detect(text);
        match rec.json.as_object_mut() {
            Some(o) if e.is_empty() => {
                o.remove(ents_key);
            }
            _ => rec.json[ents_key] = json!(e),
        }
        rec.json["edit_date"] = json!(unix_now());
        let json = rec.json.clone();
        let update_id =
            if self.bot_sees(&self.chats[&chat.0], &json) { self.enqueue("edited_message", json) } else { None };
        Ok(Posted { chat_id: chat, message_id, update_id })
    }

    pub fn press_button(&mut self, from: UserId, chat: ChatId, message_id: i64, data: &str) -> Result<String, String> {
        if !self.users.contains_key(&from.0) {
            return Err(format!("no user {}", from.0));
        }
        let rec = self
            .messages
            .get(&(chat.0, message_id))
            .filter(|m| !m.deleted && m.bot.is_some())
            .ok_or_else(|| format!("the bot has no message {message_id} in chat {}", chat.0))?;
        let has_button = rec.json["reply_markup"]["inline_keyboard"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .any(|b| b["callback_data"].as_str() == Some(data));
        if !has_button {
            return Err(format!("message {message_id} has no button with callback_data {data:?}"));
        }
        let message = rec.json.clone();
        let id = format!("{}{:06}", self.config.bot_id % 1_000_000, self.serial());
        let payload = json!({
            "id": id,
            "from": self.user_json(from.0),
            "message": message,
            "chat_instance": format!("{}", (chat.0.wrapping_mul(2_654_435_761)).unsigned_abs()),
            "data": data,
        });
        self.callbacks.insert(id.clone(), CallbackRec { answered: None });
        self.enqueue("callback_query", payload);
        Ok(id)
    }

    pub fn set_blocked(&mut self, user: UserId, blocked: bool) -> Result<(), String> {
        let chat = self.private_chat(user)?;
        let was = std::mem::replace(&mut self.chats.get_mut(&chat.0).expect("chat exists").blocked, blocked);
        if was == blocked {
            return Ok(());
        }
        // Telegram tells the bot with a my_chat_member update: "kicked" when blocked, "member" when unblocked.
        let bot = self.bot_user_json();
        let member = json!({"status": "member", "user": bot});
        let kicked = json!({"status": "kicked", "user": bot, "until_date": 0});
        let (old, new) = if blocked { (member, kicked) } else { (kicked, member) };
        let payload = json!({
            "chat": self.chat_json(chat.0),
            "from": self.user_json(user.0),
            "date": unix_now(),
            "old_chat_member": old,
            "new_chat_member": new,
        });
        self.enqueue("my_chat_member", payload);
        Ok(())
    }

    pub fn migrate(&mut self, group: ChatId, by: UserId) -> Result<ChatId, String> {
        let old = self.chats.get(&group.0).ok_or_else(|| format!("no chat {}", group.0))?.clone();
        if old.kind != ChatKind::Group || old.migrated_to.is_some() {
            return Err(format!("chat {} is not a basic group that can be upgraded", group.0));
        }
        if !self.users.contains_key(&by.0) {
            return Err(format!("no user {}", by.0));
        }
        let new = self.create_group(old.title.as_deref().unwrap_or_default(), ChatKind::Supergroup, old.bot);
        self.chats.get_mut(&group.0).expect("chat exists").migrated_to = Some(new.0);
        let bot_in = matches!(old.bot, BotMembership::Member | BotMembership::Administrator { .. });
        // Both service messages reach the bot whatever its privacy mode, if it is in the group.
        for (chat, field, other) in [(group.0, "migrate_to_chat_id", new.0), (new.0, "migrate_from_chat_id", group.0)] {
            let message_id = self.next_message_id(chat);
            let json = json!({
                "message_id": message_id,
                "from": self.user_json(by.0),
                "chat": self.chat_json(chat),
                "date": unix_now(),
                field: other,
            });
            self.messages.insert((chat, message_id), MsgRec { json: json.clone(), deleted: false, bot: None });
            if bot_in {
                self.enqueue("message", json);
            }
        }
        Ok(new)
    }

    pub fn bot_message(&self, chat: i64, message_id: i64) -> Option<BotMessage> {
        let rec = self.messages.get(&(chat, message_id))?;
        let meta = rec.bot.as_ref()?;
        let j = &rec.json;
        Some(BotMessage {
            chat_id: ChatId(chat),
            message_id,
            text: j["text"].as_str().unwrap_or_default().to_string(),
            raw_text: meta.raw_text.clone(),
            parse_mode: meta.parse_mode.clone(),
            entities: j["entities"].as_array().cloned().unwrap_or_default(),
            reply_markup: j.get("reply_markup").cloned(),
            reply_to_message_id: j["reply_to_message"]["message_id"].as_i64(),
            link_preview_options: j.get("link_preview_options").cloned(),
            date: j["date"].as_i64().unwrap_or_default(),
            edits: meta.edits,
            deleted: rec.deleted,
        })
    }
}

/// The part of `text` at a UTF-16 offset and length, as Telegram entities address it.
pub(crate) fn utf16_slice(text: &str, offset: u64, length: u64) -> String {
    let units: Vec<u16> = text.encode_utf16().collect();
    let start = (offset as usize).min(units.len());
    let end = (start + length as usize).min(units.len());
    String::from_utf16_lossy(&units[start..end])
}

/// A few bytes that start like a JPEG: enough for a download to be checked, never decoded.
fn fake_jpeg(seed: u32) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
    v.extend(seed.to_be_bytes());
    v.extend([0xFF, 0xD9]);
    v
}
