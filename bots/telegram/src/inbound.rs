//! From Bot API updates to webcare inbound events, and the one place that hands them to the intake.
//!
//! Translation is a pure function ([`translate`]) so that it is tested without a server. It decides which updates
//! concern webcare: everything in a private chat; in groups and supergroups only commands (for this bot), messages
//! that mention the bot and replies to the bot's messages — the same set Telegram delivers in privacy mode, so a
//! bot that is an administrator (and therefore sees every message) behaves the same. Service messages (a group
//! becoming a supergroup, members joining) and channel posts are confirmed and dropped.

use std::sync::Arc;

use chrono::Utc;
use teloxide::prelude::*;
use teloxide::types::{
    CallbackQuery, Chat, MediaKind, Message, MessageEntityKind, MessageKind, Update, UpdateKind, User,
};
use webcare_domain::{ConversationKind, InboundEvent, InboundKind, Intake, IntakeError, Platform, StaffDesk};

/// Who the bot is, from `getMe`: needed to tell mentions of it, replies to it and commands for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub id: u64,
    /// Without the `@`.
    pub username: String,
}

/// What an update means for webcare.
#[derive(Debug, Clone, PartialEq)]
pub enum Translated {
    /// Hand this to the intake.
    Event(InboundEvent),
    /// A button press: hand the event to the intake, then answer the callback query so the button stops spinning.
    Button { event: InboundEvent, callback_id: String },
    /// A button press webcare cannot place (an inline message): only answer it.
    AnswerOnly { callback_id: String },
    /// Nothing for webcare; confirm the update and move on.
    Ignore(&'static str),
}

/// Translates one update.
pub fn translate(update: &Update, me: &BotIdentity) -> Translated {
    match &update.kind {
        UpdateKind::Message(m) => message(m, me, false),
        UpdateKind::EditedMessage(m) => message(m, me, true),
        UpdateKind::CallbackQuery(q) => callback(q),
        _ => Translated::Ignore("an update kind webcare does not use"),
    }
}

fn conversation_kind(chat: &Chat) -> ConversationKind {
    if chat.is_private() { ConversationKind::Private } else { ConversationKind::Public }
}

fn display_name(user: &User) -> String {
    let name = user.full_name();
    if name.trim().is_empty() { user.username.clone().unwrap_or_else(|| user.id.to_string()) } else { name }
}

fn message(m: &Message, me: &BotIdentity, edited: bool) -> Translated {
    if m.chat.is_channel() {
        return Translated::Ignore("a channel post");
    }
    let service = match &m.kind {
        MessageKind::Common(c) => matches!(c.media_kind, MediaKind::Migration(_)),
        _ => true,
    };
    if service {
        // Service messages: members joining, a title change, the group moving to a supergroup (delivery follows
        // that move when a send answers `migrate_to_chat_id`).
        return Translated::Ignore("a service message");
    }
    // An anonymous group admin writes "as the group": `from` is then Telegram's GroupAnonymousBot, and the person
    // is the sender chat.
    // With the language of the person's Telegram app (`nl`, `en-GB`); none for a group writing as itself.
    let (user_id, user_name, from_bot, language) = match (&m.sender_chat, &m.from) {
        (Some(chat), _) => (chat.id.to_string(), chat.title().unwrap_or("anonymous").to_owned(), false, None),
        (None, Some(user)) => (user.id.to_string(), display_name(user), user.is_bot, user.language_code.clone()),
        (None, None) => return Translated::Ignore("a message without a sender"),
    };
    let raw = m.text().or_else(|| m.caption()).unwrap_or_default();
    let command = parse_command(raw, me);
    let public = !m.chat.is_private();
    if public {
        let addressed = match &command {
            Some(Command::Ours { .. }) => true,
            Some(Command::OtherBot) => false,
            None => mentions(m, me) || replies_to_bot(m, me),
        };
        if !addressed {
            return Translated::Ignore("a group message not addressed to the bot");
        }
    }
    let text = if public { strip_mention(raw, me) } else { raw.trim().to_owned() };
    let kind = match (edited, command) {
        (true, _) => InboundKind::Edited,
        (false, Some(Command::Ours { name, args })) => InboundKind::Command { name, args },
        (false, _) => InboundKind::Message,
    };
    let at = if edited { m.edit_date().copied().unwrap_or(m.date) } else { m.date };
    Translated::Event(InboundEvent {
        platform: Platform::Telegram,
        chat_id: m.chat.id.to_string(),
        chat_kind: conversation_kind(&m.chat),
        chat_title: m.chat.title().map(str::to_owned),
        user_id,
        user_name,
        from_bot,
        message_id: format!("{}/{}", m.chat.id, m.id.0),
        text,
        attachments: attachments(m),
        kind,
        place: place(m),
        language,
        account: String::new(),
        at,
    })
}

fn callback(q: &CallbackQuery) -> Translated {
    let callback_id = q.id.0.clone();
    let (Some(message), Some(data)) = (&q.message, &q.data) else {
        return Translated::AnswerOnly { callback_id };
    };
    let chat = message.chat();
    let event = InboundEvent {
        platform: Platform::Telegram,
        chat_id: chat.id.to_string(),
        chat_kind: conversation_kind(chat),
        chat_title: chat.title().map(str::to_owned),
        user_id: q.from.id.to_string(),
        user_name: display_name(&q.from),
        from_bot: q.from.is_bot,
        message_id: format!("cb/{callback_id}"),
        text: data.clone(),
        attachments: Vec::new(),
        kind: InboundKind::Button { data: data.clone() },
        place: None,
        language: q.from.language_code.clone(),
        account: String::new(),
        at: Utc::now(),
    };
    Translated::Button { event, callback_id }
}

#[derive(Debug, PartialEq)]
enum Command {
    Ours {
        name: String,
        args: String,
    },
    /// `/start@other_bot`: meant for another bot in the same group.
    OtherBot,
}

/// `/name`, `/name args`, `/name@this_bot args`; names are what Telegram allows (letters, digits, underscore).
fn parse_command(text: &str, me: &BotIdentity) -> Option<Command> {
    let rest = text.trim_start().strip_prefix('/')?;
    let (head, args) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    let (name, addressee) = match head.split_once('@') {
        Some((name, to)) => (name, Some(to)),
        None => (head, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    if addressee.is_some_and(|to| !to.eq_ignore_ascii_case(&me.username)) {
        return Some(Command::OtherBot);
    }
    Some(Command::Ours { name: name.to_ascii_lowercase(), args: args.to_owned() })
}

fn mentions(m: &Message, me: &BotIdentity) -> bool {
    let entities = m.parse_entities().or_else(|| m.parse_caption_entities()).unwrap_or_default();
    entities.iter().any(|e| match e.kind() {
        MessageEntityKind::Mention => e.text().trim_start_matches('@').eq_ignore_ascii_case(&me.username),
        MessageEntityKind::TextMention { user } => user.id.0 == me.id,
        _ => false,
    })
}

fn replies_to_bot(m: &Message, me: &BotIdentity) -> bool {
    m.reply_to_message().and_then(|r| r.from.as_ref()).is_some_and(|u| u.id.0 == me.id)
}

/// The text without `@this_bot`, which says whom it is for and would only confuse classification.
fn strip_mention(text: &str, me: &BotIdentity) -> String {
    let handle = format!("@{}", me.username.to_ascii_lowercase());
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // ASCII lowercasing keeps byte offsets, so positions in `lower` are positions in `text`.
    while let Some(found) = lower[i..].find(&handle) {
        let start = i + found;
        let end = start + handle.len();
        let word_ends = text[end..].chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        out.push_str(&text[i..start]);
        if !word_ends {
            out.push_str(&text[start..end]);
        }
        i = end;
    }
    out.push_str(&text[i..]);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What the message carries besides text, described for the ticket.
fn attachments(m: &Message) -> Vec<String> {
    let MessageKind::Common(common) = &m.kind else { return Vec::new() };
    let described = match &common.media_kind {
        MediaKind::Text(_) | MediaKind::Migration(_) => return Vec::new(),
        MediaKind::Photo(_) => "photo".to_owned(),
        MediaKind::Document(d) => match &d.document.file_name {
            Some(name) => format!("document: {name}"),
            None => "document".to_owned(),
        },
        MediaKind::Sticker(s) => match &s.sticker.emoji {
            Some(emoji) => format!("sticker {emoji}"),
            None => "sticker".to_owned(),
        },
        MediaKind::Video(_) => "video".to_owned(),
        MediaKind::VideoNote(_) => "video note".to_owned(),
        MediaKind::Voice(_) => "voice message".to_owned(),
        MediaKind::Audio(a) => match &a.audio.file_name {
            Some(name) => format!("audio: {name}"),
            None => "audio".to_owned(),
        },
        MediaKind::Animation(_) => "animation".to_owned(),
        MediaKind::Contact(_) => "contact".to_owned(),
        MediaKind::Location(_) => "location".to_owned(),
        MediaKind::Venue(v) => format!("venue: {}", v.venue.title),
        MediaKind::Poll(_) => "poll".to_owned(),
        _ => "attachment".to_owned(),
    };
    vec![described]
}

/// A location the customer shared, as a hint for the outage region.
fn place(m: &Message) -> Option<String> {
    if let Some(v) = m.venue() {
        return Some(format!("{} {}", v.title, v.address).trim().to_owned());
    }
    m.location().map(|l| format!("{:.5},{:.5}", l.latitude, l.longitude))
}

/// Hands translated updates to the intake: shared by the polling loop and the webhook.
pub(crate) struct Handler {
    bot: Bot,
    me: BotIdentity,
    intake: Arc<dyn Intake>,
    /// The webcare team's groups, as chat ids in events: nothing from them is a customer's.
    staff: std::collections::HashSet<String>,
    /// Where the team's commands in those groups go.
    desk: Option<Arc<dyn StaffDesk>>,
}

impl Handler {
    pub(crate) fn new(
        bot: Bot,
        me: BotIdentity,
        intake: Arc<dyn Intake>,
        staff_chats: &[i64],
        desk: Option<Arc<dyn StaffDesk>>,
    ) -> Self {
        Handler { bot, me, intake, staff: staff_chats.iter().map(i64::to_string).collect(), desk }
    }

    /// What the team writes in a staff chat: a command goes to the desk; the rest is their own conversation.
    async fn staff_event(&self, event: InboundEvent) -> Result<(), IntakeError> {
        let Some(desk) = &self.desk else {
            tracing::debug!(platform = "telegram", "a staff chat message ignored: no staff desk");
            return Ok(());
        };
        let message = event.message_id.clone();
        match desk.command(event).await {
            Ok(()) => Ok(()),
            Err(IntakeError::Invalid(why)) => {
                tracing::warn!(platform = "telegram", %message, %why, "staff command refused; dropped");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Ok once the update is stored (or needs nothing); `Err` only when the intake could not store it, so that the
    /// caller does not confirm it and Telegram delivers it again.
    pub(crate) async fn handle(&self, update: &Update) -> Result<(), IntakeError> {
        let translated = match translate(update, &self.me) {
            Translated::Event(e) if self.staff.contains(&e.chat_id) => return self.staff_event(e).await,
            // A team member linking their account in a private chat with the bot, away from the group.
            Translated::Event(e) if self.desk.is_some() && e.is_private_link() => return self.staff_event(e).await,
            Translated::Button { event: e, .. } if self.staff.contains(&e.chat_id) => {
                Translated::Ignore("a button in a staff chat")
            }
            t => t,
        };
        let (event, callback_id) = match translated {
            Translated::Event(event) => (Some(event), None),
            Translated::Button { event, callback_id } => (Some(event), Some(callback_id)),
            Translated::AnswerOnly { callback_id } => (None, Some(callback_id)),
            Translated::Ignore(why) => {
                tracing::debug!(platform = "telegram", update = update.id.0, why, "update ignored");
                (None, None)
            }
        };
        if let Some(event) = event {
            let message = event.message_id.clone();
            match self.intake.receive(event).await {
                Ok(outcome) => {
                    tracing::debug!(platform = "telegram", %message, new = outcome.new, action = %outcome.action,
                        "update received")
                }
                // An event the intake can never take would block the queue forever if it were not confirmed.
                Err(IntakeError::Invalid(why)) => {
                    tracing::warn!(platform = "telegram", %message, %why, "update refused by the intake; dropped")
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(id) = callback_id {
            // Only stops the client's spinner; the answer to the press comes as a message from the outbox. A query
            // redelivered after a restart may be too old to answer, which is harmless.
            if let Err(e) = self.bot.answer_callback_query(teloxide::types::CallbackQueryId(id)).await {
                tracing::debug!(platform = "telegram", error = %e, "could not answer a callback query");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn me() -> BotIdentity {
        BotIdentity { id: 7_000_000_001, username: "webcare_test_bot".into() }
    }

    fn update(kind: &str, message: serde_json::Value) -> Update {
        // From text, as updates arrive: teloxide's update parsing does not work from a `serde_json::Value`.
        let json = json!({"update_id": 10, kind: message}).to_string();
        let update: Update = serde_json::from_str(&json).expect("a valid update");
        if let UpdateKind::Error(v) = &update.kind {
            panic!("teloxide did not parse {v}");
        }
        update
    }

    fn msg(chat: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
        let mut m = json!({
            "message_id": 5,
            "date": 1_790_000_000,
            "chat": chat,
            "from": {"id": 42, "is_bot": false, "first_name": "Anna", "last_name": "de Vries"},
        });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    }

    fn private() -> serde_json::Value {
        json!({"id": 42, "type": "private", "first_name": "Anna"})
    }

    fn group() -> serde_json::Value {
        json!({"id": -100123, "type": "supergroup", "title": "Klanten"})
    }

    fn event(t: Translated) -> InboundEvent {
        match t {
            Translated::Event(e) => e,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    #[test]
    fn a_private_text_becomes_a_message_with_chat_and_message_ids() {
        let e = event(translate(&update("message", msg(private(), json!({"text": "Geen internet"}))), &me()));
        assert_eq!(e.message_id, "42/5");
        assert_eq!((e.chat_id.as_str(), e.chat_kind), ("42", ConversationKind::Private));
        assert_eq!((e.user_id.as_str(), e.user_name.as_str()), ("42", "Anna de Vries"));
        assert_eq!((e.text.as_str(), e.kind.clone()), ("Geen internet", InboundKind::Message));
        assert!(!e.from_bot);
    }

    #[test]
    fn the_language_of_the_persons_app_comes_with_the_message() {
        let from = json!({"id": 42, "is_bot": false, "first_name": "Anna", "language_code": "en-GB"});
        let e = event(translate(&update("message", msg(private(), json!({"text": "?", "from": from}))), &me()));
        assert_eq!(e.language.as_deref(), Some("en-GB"));
        let e = event(translate(&update("message", msg(private(), json!({"text": "?"}))), &me()));
        assert_eq!(e.language, None, "Telegram leaves language_code out for some users");
    }

    #[test]
    fn commands_carry_their_name_and_arguments() {
        let text = json!({"text": "/start abc123", "entities": [{"type": "bot_command", "offset": 0, "length": 6}]});
        let e = event(translate(&update("message", msg(private(), text)), &me()));
        assert_eq!(e.kind, InboundKind::Command { name: "start".into(), args: "abc123".into() });
        let e =
            event(translate(&update("message", msg(private(), json!({"text": "/Status@webcare_test_bot"}))), &me()));
        assert_eq!(e.kind, InboundKind::Command { name: "status".into(), args: String::new() });
        let e = event(translate(&update("message", msg(private(), json!({"text": "/frobnicate"}))), &me()));
        assert_eq!(e.kind, InboundKind::Command { name: "frobnicate".into(), args: String::new() });
    }

    #[test]
    fn in_groups_only_what_is_addressed_to_the_bot_counts() {
        let plain = msg(group(), json!({"text": "weet iemand of er storing is?"}));
        assert!(matches!(translate(&update("message", plain), &me()), Translated::Ignore(_)));
        let other_bot = msg(group(), json!({"text": "/status@other_bot"}));
        assert!(matches!(translate(&update("message", other_bot), &me()), Translated::Ignore(_)));

        let mention = msg(
            group(),
            json!({"text": "@webcare_test_bot mijn IBAN is NL91ABNA0417164300",
                   "entities": [{"type": "mention", "offset": 0, "length": 17}]}),
        );
        let e = event(translate(&update("message", mention), &me()));
        assert_eq!(e.text, "mijn IBAN is NL91ABNA0417164300");
        assert_eq!((e.chat_kind, e.chat_title.as_deref()), (ConversationKind::Public, Some("Klanten")));

        let reply = msg(
            group(),
            json!({"text": "dank je", "reply_to_message": {
                "message_id": 3, "date": 1_790_000_000, "chat": group(), "text": "hallo",
                "from": {"id": 7_000_000_001u64, "is_bot": true, "first_name": "webcare", "username": "webcare_test_bot"}}}),
        );
        assert_eq!(event(translate(&update("message", reply), &me())).text, "dank je");

        let command = msg(group(), json!({"text": "/help"}));
        assert_eq!(
            event(translate(&update("message", command), &me())).kind,
            InboundKind::Command { name: "help".into(), args: String::new() }
        );
    }

    #[test]
    fn edits_keep_the_id_of_the_message_they_change() {
        let edited = msg(private(), json!({"text": "Geen tv", "edit_date": 1_790_000_100}));
        let e = event(translate(&update("edited_message", edited), &me()));
        assert_eq!((e.message_id.as_str(), e.kind.clone()), ("42/5", InboundKind::Edited));
        assert_eq!(e.at.timestamp(), 1_790_000_100);
    }

    #[test]
    fn attachments_are_described() {
        let photo = msg(
            private(),
            json!({"caption": "zie foto", "photo": [{"file_id": "f", "file_unique_id": "u", "width": 90, "height": 90}]}),
        );
        let e = event(translate(&update("message", photo), &me()));
        assert_eq!((e.text.as_str(), e.attachments.clone()), ("zie foto", vec!["photo".to_owned()]));

        let doc = msg(
            private(),
            json!({"document": {"file_id": "f", "file_unique_id": "u", "file_name": "invoice.pdf", "mime_type": "application/pdf"}}),
        );
        assert_eq!(event(translate(&update("message", doc), &me())).attachments, vec!["document: invoice.pdf"]);

        let sticker = msg(
            private(),
            json!({"sticker": {"file_id": "f", "file_unique_id": "u", "type": "regular", "width": 512, "height": 512,
                               "is_animated": false, "is_video": false, "emoji": "👍"}}),
        );
        assert_eq!(event(translate(&update("message", sticker), &me())).attachments, vec!["sticker 👍"]);
    }

    #[test]
    fn messages_from_bots_are_reported_as_such() {
        let mut m = msg(private(), json!({"text": "beep"}));
        m["from"]["is_bot"] = json!(true);
        assert!(event(translate(&update("message", m), &me())).from_bot);
    }

    #[test]
    fn a_button_press_becomes_a_button_event_with_the_callback_id() {
        let q = json!({
            "id": "9001", "chat_instance": "ci", "data": "talk_to_person",
            "from": {"id": 42, "is_bot": false, "first_name": "Anna"},
            "message": {"message_id": 8, "date": 1_790_000_000, "chat": private(), "text": "Er is een storing",
                        "from": {"id": 7_000_000_001u64, "is_bot": true, "first_name": "webcare"}},
        });
        match translate(&update("callback_query", q), &me()) {
            Translated::Button { event, callback_id } => {
                assert_eq!(callback_id, "9001");
                assert_eq!(event.message_id, "cb/9001");
                assert_eq!(event.kind, InboundKind::Button { data: "talk_to_person".into() });
                assert_eq!(event.chat_id, "42");
            }
            other => panic!("expected a button, got {other:?}"),
        }
    }

    #[test]
    fn service_messages_are_ignored() {
        let migrated =
            msg(json!({"id": -123, "type": "group", "title": "Klanten"}), json!({"migrate_to_chat_id": -100123}));
        assert!(matches!(translate(&update("message", migrated), &me()), Translated::Ignore(_)));
    }

    #[test]
    fn the_mention_is_removed_only_as_a_whole_word() {
        assert_eq!(strip_mention("hoi @Webcare_Test_Bot, help", &me()), "hoi , help");
        assert_eq!(strip_mention("@webcare_test_bot_2 hoi", &me()), "@webcare_test_bot_2 hoi");
    }
}
