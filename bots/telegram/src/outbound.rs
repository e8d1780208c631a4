//! From outbox rows to `sendMessage`: Telegram HTML with every supplied text escaped, inline keyboards, texts over
//! Telegram's length limit split, and Bot API errors mapped to the [`SendError`]s the delivery engine acts on.
//!
//! The outbox body is plain text written by a customer, an agent or the bridge, so it is escaped and sent with
//! `parse_mode=HTML`: markup in it arrives as the characters typed, never as formatting or a broken request.
//! A long text goes out as several messages; which of them went out is remembered per outbox row, so that a retry
//! (after a 429 on the second part, say) sends only the rest and nothing arrives twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, MessageId, ParseMode};
use teloxide::{ApiError, RequestError};
use webcare_domain::{Conversation, LimitScope, OutboxId, OutboxItem, Platform, SendError, Sender, Sent};

use crate::inbound::BotIdentity;

/// Telegram's limit for one message's text, in characters after entity parsing.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Delivers outbox rows to Telegram chats. Cheap to clone; clones share the memory of partly sent rows.
#[derive(Clone)]
pub struct TelegramSender {
    inner: Arc<Inner>,
}

struct Inner {
    bot: Bot,
    me: BotIdentity,
    delete_private_data: bool,
    /// Parts already delivered of rows split into several messages. A std Mutex: nothing async happens while it is
    /// held. Kept in memory only: after a restart a partly sent row starts over, the one duplicate window left.
    progress: Mutex<HashMap<OutboxId, usize>>,
}

impl std::fmt::Debug for TelegramSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSender").field("me", &self.inner.me).finish_non_exhaustive()
    }
}

impl TelegramSender {
    pub(crate) fn new(bot: Bot, me: BotIdentity, delete_private_data: bool) -> Self {
        TelegramSender { inner: Arc::new(Inner { bot, me, delete_private_data, progress: Mutex::new(HashMap::new()) }) }
    }

    fn parts_done(&self, id: OutboxId) -> usize {
        self.inner.progress.lock().expect("never poisoned").get(&id).copied().unwrap_or(0)
    }

    fn set_parts_done(&self, id: OutboxId, done: Option<usize>) {
        let mut progress = self.inner.progress.lock().expect("never poisoned");
        match done {
            Some(n) => progress.insert(id, n),
            None => progress.remove(&id),
        };
    }

    /// Deletes the public message that held private data, when configured; without the right to delete it (not an
    /// administrator with `can_delete_messages`) Telegram refuses, and the answer still goes out.
    async fn delete_public_message(&self, move_private: &serde_json::Value) {
        if !self.inner.delete_private_data {
            return;
        }
        let Some((chat, message)) = move_private["message"].as_str().and_then(|m| m.split_once('/')) else { return };
        let (Ok(chat), Ok(message)) = (chat.parse::<i64>(), message.parse::<i32>()) else { return };
        match self.inner.bot.delete_message(ChatId(chat), MessageId(message)).await {
            Ok(_) => tracing::info!(platform = "telegram", chat, message, "deleted a public message with private data"),
            Err(e) => tracing::info!(platform = "telegram", chat, message, error = %e,
                "could not delete a public message with private data (is the bot an admin that may delete messages?)"),
        }
    }

    fn keyboard(&self, extra: &serde_json::Value) -> Option<InlineKeyboardMarkup> {
        let mut rows: Vec<Vec<InlineKeyboardButton>> = Vec::new();
        if let Some(mp) = extra.get("move_private").filter(|v| v.is_object())
            && let Some(link) = mp["link"].as_str().filter(|l| is_start_payload(l))
        {
            let url = format!("https://t.me/{}?start={link}", self.inner.me.username);
            match reqwest::Url::parse(&url) {
                Ok(url) => rows.push(vec![InlineKeyboardButton::url(private_label(extra), url)]),
                Err(e) => tracing::warn!(platform = "telegram", error = %e, "cannot build the deep link"),
            }
        }
        for button in extra["buttons"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let (Some(text), Some(data)) = (button["text"].as_str(), button["data"].as_str()) else { continue };
            // Telegram takes 1–64 bytes of callback data and refuses the whole message otherwise.
            if data.is_empty() || data.len() > 64 {
                tracing::warn!(platform = "telegram", data, "button data does not fit Telegram's 64 bytes; dropped");
                continue;
            }
            rows.push(vec![InlineKeyboardButton::callback(text, data)]);
        }
        (!rows.is_empty()).then(|| InlineKeyboardMarkup::new(rows))
    }
}

/// Telegram's `start` parameter: 1–64 characters of `A-Za-z0-9_-`.
fn is_start_payload(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn private_label(extra: &serde_json::Value) -> &'static str {
    if extra["language"].as_str() == Some("en") { "Continue in a private chat" } else { "Verder in een privégesprek" }
}

#[async_trait]
impl Sender for TelegramSender {
    fn platform(&self) -> Platform {
        Platform::Telegram
    }

    async fn send(&self, to: &Conversation, item: &OutboxItem) -> Result<Sent, SendError> {
        let chat: i64 = to
            .platform_chat_id
            .parse()
            .map_err(|_| SendError::Rejected(format!("`{}` is not a Telegram chat id", to.platform_chat_id)))?;
        let parts = split_text(&item.body, MAX_MESSAGE_LEN);
        if parts.is_empty() {
            return Err(SendError::Rejected("the message is empty".into()));
        }
        let done = self.parts_done(item.id);
        if done == 0
            && let Some(mp) = item.extra.get("move_private").filter(|v| v.is_object())
        {
            // First, so that the private data is gone as soon as possible, even if the answer must wait.
            self.delete_public_message(mp).await;
        }
        let keyboard = self.keyboard(&item.extra);
        let mut last = None;
        for (i, part) in parts.iter().enumerate().skip(done) {
            let mut request = self.inner.bot.send_message(ChatId(chat), escape_html(part)).parse_mode(ParseMode::Html);
            if item.extra["paid_broadcast"].as_bool() == Some(true) {
                // A notice an admin chose to send as a paid broadcast: up to 1,000 messages/s, at a fee per message.
                request = request.allow_paid_broadcast(true);
            }
            if i + 1 == parts.len()
                && let Some(k) = &keyboard
            {
                request = request.reply_markup(k.clone());
            }
            match request.await {
                Ok(message) => {
                    last = Some(message.id);
                    if i + 1 < parts.len() {
                        self.set_parts_done(item.id, Some(i + 1));
                    }
                }
                Err(e) => {
                    let error = map_error(&e, &to.platform_chat_id);
                    if matches!(error, SendError::Rejected(_) | SendError::Unreachable(_)) {
                        // The row is final now; nothing will resume it.
                        self.set_parts_done(item.id, None);
                    }
                    return Err(error);
                }
            }
        }
        self.set_parts_done(item.id, None);
        Ok(Sent { platform_message_id: last.map(|id| format!("{chat}/{}", id.0)) })
    }
}

/// Maps a Bot API failure to what the delivery engine does about it. `chat` is the chat a 429 holds back: Telegram's
/// `retry_after` does not say which limit was hit, and the per-chat limits are the ones a support bot meets.
pub fn map_error(error: &RequestError, chat: &str) -> SendError {
    match error {
        RequestError::RetryAfter(secs) => {
            SendError::RateLimited { retry_after: secs.duration(), scope: LimitScope::Chat(chat.to_owned()) }
        }
        RequestError::MigrateToChatId(new) => SendError::Moved { new_chat_id: new.to_string() },
        RequestError::Network(e) => SendError::Transient(format!("network: {e}")),
        RequestError::InvalidJson { source, .. } => SendError::Transient(format!("unreadable answer: {source}")),
        RequestError::Io(e) => SendError::Transient(format!("i/o: {e}")),
        RequestError::Api(api) => map_api_error(api),
    }
}

fn map_api_error(api: &ApiError) -> SendError {
    let description = match api {
        ApiError::Unknown(text) => text.clone(),
        known => known.to_string(),
    };
    match api {
        ApiError::BotBlocked
        | ApiError::BotKicked
        | ApiError::BotKickedFromSupergroup
        | ApiError::BotKickedFromChannel
        | ApiError::UserDeactivated
        | ApiError::CantInitiateConversation
        | ApiError::CantTalkWithBots
        | ApiError::ChatNotFound
        | ApiError::GroupDeactivated => SendError::Unreachable(description),
        // A revoked token fails every send alike; retrying keeps the rows until the token is fixed.
        ApiError::InvalidToken => SendError::Transient("the bot token was refused (401); check telegram.token".into()),
        _ if description.starts_with("Forbidden") => SendError::Unreachable(description),
        _ if description.starts_with("Bad Request") || description.starts_with("Request Entity Too Large") => {
            SendError::Rejected(description)
        }
        ApiError::Unknown(_) if description.starts_with("Unauthorized") || description.starts_with("Conflict") => {
            SendError::Rejected(description)
        }
        // What is left are the server's own failures ("Internal Server Error", "Bad Gateway", ...): try again.
        _ => SendError::Transient(description),
    }
}

/// Escapes text for `parse_mode=HTML`: the three characters Telegram's HTML parser treats specially.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Splits a text into parts of at most `max` characters (counted in UTF-16 units, as Telegram counts), cutting at
/// the last paragraph break, else line break, else sentence end, else space in the second half of the allowed
/// length; a text without any of those is cut at `max`.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while utf16_len(rest) > max {
        let mut limit = 0;
        let mut units = 0;
        for (i, c) in rest.char_indices() {
            if units + c.len_utf16() > max {
                break;
            }
            units += c.len_utf16();
            limit = i + c.len_utf8();
        }
        let cut = best_cut(&rest[..limit]);
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

/// Where to end a part within `head` (a byte index just after the boundary).
fn best_cut(head: &str) -> usize {
    // A boundary in the first half would make many short parts; only a later one is taken.
    let floor = head.len() / 2;
    let after = |found: Option<usize>, len: usize| found.map(|i| i + len).filter(|&i| i > floor);
    if let Some(i) = after(head.rfind("\n\n"), 2) {
        return i;
    }
    if let Some(i) = after(head.rfind('\n'), 1) {
        return i;
    }
    let sentence_end = head.char_indices().rev().find_map(|(i, c)| {
        let next = head[i + c.len_utf8()..].chars().next();
        (matches!(c, '.' | '!' | '?' | '…') && next.is_some_and(char::is_whitespace)).then_some(i + c.len_utf8())
    });
    if let Some(i) = sentence_end.filter(|&i| i > floor) {
        return i;
    }
    if let Some(i) = after(head.rfind(char::is_whitespace), 0) {
        return i;
    }
    head.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use teloxide::types::Seconds;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape_html("<b>hi</b> & <script>x</script>"),
            "&lt;b&gt;hi&lt;/b&gt; &amp; &lt;script&gt;x&lt;/script&gt;"
        );
        assert_eq!(escape_html("a&amp;b"), "a&amp;amp;b");
    }

    #[test]
    fn short_texts_are_one_part() {
        assert_eq!(split_text("  hallo  ", 4096), vec!["hallo"]);
        assert!(split_text("   ", 4096).is_empty());
    }

    #[test]
    fn long_texts_split_on_paragraphs_then_sentences_then_words() {
        let para = "Eerste alinea. ".repeat(20);
        let text = format!("{}\n\n{}", para.trim(), para.trim());
        let parts = split_text(&text, 400);
        assert_eq!(parts, vec![para.trim().to_owned(), para.trim().to_owned()]);

        let sentences = "Dit is een zin. ".repeat(40);
        let parts = split_text(&sentences, 100);
        assert!(parts.iter().all(|p| p.ends_with('.') && p.chars().count() <= 100), "{parts:?}");
        assert_eq!(parts.join(" "), sentences.trim());

        let words = "woord ".repeat(100);
        let parts = split_text(&words, 50);
        assert!(parts.iter().all(|p| p.chars().count() <= 50 && !p.ends_with(' ')));
        assert_eq!(parts.join(" "), words.trim());

        let solid = "x".repeat(250);
        assert_eq!(split_text(&solid, 100).iter().map(String::len).collect::<Vec<_>>(), vec![100, 100, 50]);
    }

    #[test]
    fn length_is_counted_as_telegram_counts_it() {
        // An emoji outside the BMP is two UTF-16 units.
        let text = "😀".repeat(60);
        let parts = split_text(&text, 100);
        assert_eq!(parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(), vec![50, 10]);
        // Escaping does not count: Telegram measures the text after parsing.
        let text = "<".repeat(4096);
        assert_eq!(split_text(&text, MAX_MESSAGE_LEN).len(), 1);
    }

    #[test]
    fn errors_map_to_what_delivery_does() {
        let chat = "42";
        assert_eq!(
            map_error(&RequestError::RetryAfter(Seconds::from_seconds(3)), chat),
            SendError::RateLimited {
                retry_after: std::time::Duration::from_secs(3),
                scope: LimitScope::Chat("42".into())
            }
        );
        assert_eq!(
            map_error(&RequestError::MigrateToChatId(ChatId(-100123)), chat),
            SendError::Moved { new_chat_id: "-100123".into() }
        );
        assert!(matches!(map_error(&RequestError::Api(ApiError::BotBlocked), chat), SendError::Unreachable(_)));
        let kicked = ApiError::Unknown("Forbidden: bot was kicked from the group chat".into());
        assert!(matches!(map_error(&RequestError::Api(kicked), chat), SendError::Unreachable(_)));
        assert!(matches!(map_error(&RequestError::Api(ApiError::MessageIsTooLong), chat), SendError::Rejected(_)));
        let odd = ApiError::Unknown("Bad Request: can't parse entities: unsupported start tag".into());
        assert!(matches!(map_error(&RequestError::Api(odd), chat), SendError::Rejected(_)));
        let server = ApiError::Unknown("Internal Server Error".into());
        assert!(matches!(map_error(&RequestError::Api(server), chat), SendError::Transient(_)));
        let gateway = ApiError::Unknown("Bad Gateway".into());
        assert!(matches!(map_error(&RequestError::Api(gateway), chat), SendError::Transient(_)));
    }
}
