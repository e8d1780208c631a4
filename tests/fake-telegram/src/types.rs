//! The public vocabulary of the fake's test side: ids of users and chats, how the bot sits in a chat, what a user
//! sends, what the bot sent as a test reads it back, injected faults, and the counters that let a test or a
//! benchmark show that the bot stayed inside Telegram's limits and sent nothing twice.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// A Telegram user (never the bot itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

/// A chat id as the Bot API uses it: a user's id for a private chat, negative for groups, `-100…` for supergroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChatId(pub i64);

/// A user to create; only the first name is required, as in Telegram.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

impl NewUser {
    pub fn named(first_name: &str) -> Self {
        NewUser { first_name: first_name.into(), ..NewUser::default() }
    }
    pub fn username(mut self, username: &str) -> Self {
        self.username = Some(username.into());
        self
    }
    pub fn last_name(mut self, last_name: &str) -> Self {
        self.last_name = Some(last_name.into());
        self
    }
    pub fn language(mut self, code: &str) -> Self {
        self.language_code = Some(code.into());
        self
    }
}

/// Where the bot stands in a group or supergroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotMembership {
    Member,
    Administrator {
        can_delete_messages: bool,
    },
    /// Never joined or left: sends answer 403 "bot is not a member of the … chat".
    Left,
    /// Removed by an admin: sends answer 403 "bot was kicked from the … chat".
    Kicked,
}

/// What a user posts.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    Photo { caption: Option<String> },
    Document { file_name: String, mime_type: String, bytes: Vec<u8>, caption: Option<String> },
    Sticker { emoji: String },
}

/// A message a user writes, optionally as a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct UserMessage {
    pub content: Content,
    pub reply_to: Option<i64>,
}

impl UserMessage {
    pub fn text(text: &str) -> Self {
        UserMessage { content: Content::Text(text.into()), reply_to: None }
    }
    pub fn photo(caption: Option<&str>) -> Self {
        UserMessage { content: Content::Photo { caption: caption.map(str::to_string) }, reply_to: None }
    }
    pub fn document(file_name: &str, mime_type: &str, bytes: &[u8]) -> Self {
        UserMessage {
            content: Content::Document {
                file_name: file_name.into(),
                mime_type: mime_type.into(),
                bytes: bytes.to_vec(),
                caption: None,
            },
            reply_to: None,
        }
    }
    pub fn sticker(emoji: &str) -> Self {
        UserMessage { content: Content::Sticker { emoji: emoji.into() }, reply_to: None }
    }
    pub fn reply_to(mut self, message_id: i64) -> Self {
        self.reply_to = Some(message_id);
        self
    }
}

/// What became of something a user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    pub chat_id: ChatId,
    pub message_id: i64,
    /// The update the bot will receive, or `None` when Telegram would not tell the bot
    /// (privacy mode, the bot not in the chat, or the update type not subscribed to).
    pub update_id: Option<i64>,
}

/// A message the bot sent, in its current state, as a test reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct BotMessage {
    pub chat_id: ChatId,
    pub message_id: i64,
    /// The text as the chat shows it (after parse_mode).
    pub text: String,
    /// The text exactly as the bot sent it.
    pub raw_text: String,
    pub parse_mode: Option<String>,
    pub entities: Vec<Value>,
    /// The inline keyboard, as Telegram returns it in `Message.reply_markup`.
    pub reply_markup: Option<Value>,
    pub reply_to_message_id: Option<i64>,
    pub link_preview_options: Option<Value>,
    pub date: i64,
    /// How often the bot edited it.
    pub edits: u32,
    pub deleted: bool,
}

impl BotMessage {
    /// The `callback_data` of every inline button, row by row.
    pub fn callback_data(&self) -> Vec<String> {
        let rows =
            self.reply_markup.as_ref().and_then(|m| m["inline_keyboard"].as_array()).cloned().unwrap_or_default();
        rows.iter()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|b| b["callback_data"].as_str().map(str::to_string))
            .collect()
    }
}

/// Everything the bot did to the world, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum BotEvent {
    Sent { chat_id: ChatId, message_id: i64 },
    Edited { chat_id: ChatId, message_id: i64 },
    Deleted { chat_id: ChatId, message_id: i64 },
    ChatAction { chat_id: ChatId, action: String },
    CallbackAnswered { callback_query_id: String, answer: CallbackAnswer },
}

/// The bot's answer to a button press.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallbackAnswer {
    pub text: Option<String>,
    pub show_alert: bool,
    pub url: Option<String>,
    pub cache_time: i64,
}

/// A fault to answer instead of the real result, for the next N calls of a method.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 "Too Many Requests: retry after N" with `parameters.retry_after`.
    TooManyRequests { retry_after: u64 },
    /// A 5xx answer with Telegram's JSON error body.
    ServerError { status: u16 },
    /// Answer normally, but only after this (unscaled) delay.
    Delay(Duration),
    /// Close the connection without answering.
    DropConnection,
    /// Any other Bot API error, e.g. `(403, "Forbidden: bot was blocked by the user")`.
    Error { code: u16, description: String },
}

/// Counters kept by the fake.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    /// Calls per method (canonical spelling, e.g. `sendMessage`), including refused ones.
    pub calls: BTreeMap<String, u64>,
    /// Messages the bot delivered (accepted `sendMessage` calls).
    pub sends: u64,
    /// Of those, messages sent as paid broadcasts (`allow_paid_broadcast`), 0.1 Star each on Telegram.
    pub paid_sends: u64,
    /// `sendMessage` calls refused with 429 because a rate limit was full.
    pub rate_limited: u64,
    /// Calls answered by an injected fault.
    pub faults: u64,
    /// Delivered messages per chat.
    pub deliveries_per_chat: BTreeMap<i64, u64>,
    pub edits: u64,
    pub deletions: u64,
    /// Updates the webhook receiver accepted, and failed webhook attempts.
    pub webhook_deliveries: u64,
    pub webhook_failures: u64,
}
