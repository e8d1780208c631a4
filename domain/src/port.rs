//! The ports platform adapters plug into: [`Intake`] takes what customers send, [`Sender`] delivers what webcare
//! sends. Adapters (Telegram, Discord, the web chat) translate between their platform and these types; the
//! application layer implements `Intake` and drives every `Sender` from the outbox.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Conversation, ConversationKind, OutboxItem, Platform, Timestamp};

/// Something a customer did on a platform, as an adapter reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent {
    pub platform: Platform,
    /// The chat, as the platform names it.
    pub chat_id: String,
    pub chat_kind: ConversationKind,
    pub chat_title: Option<String>,
    /// The person, as the platform names them.
    pub user_id: String,
    pub user_name: String,
    /// Messages from bots (webcare's own included) are ignored; adapters report them so that this is one rule.
    pub from_bot: bool,
    /// Platform-unique message id (Telegram: `<chat id>/<message id>`; a button press: the callback id).
    pub message_id: String,
    pub text: String,
    /// Attachments, stickers and the like, described for the ticket (`photo`, `document: invoice.pdf`).
    pub attachments: Vec<String>,
    pub kind: InboundKind,
    /// A location hint from the platform (a geotag), when it gave one.
    pub place: Option<String>,
    /// The person's language as the platform says it (Telegram's `language_code`, a Discord interaction's
    /// `locale`, the web chat browser's language), as the platform wrote it (`nl-BE`, `en`); see
    /// [`answer_language`]. Answers follow the language a message is written in; this settles the language where
    /// the text shows none (a command, a sticker, a lone "?").
    #[serde(default)]
    pub language: Option<String>,
    /// The company account the message was sent to; deployments with one bot per platform leave it empty.
    pub account: String,
    pub at: Timestamp,
}

/// The language webcare answers in (`nl` or `en`) that a platform's language tag names (`nl`, `nl-BE`, `en-GB`,
/// `EN_us`), or none for another language or no tag.
pub fn answer_language(tag: &str) -> Option<&'static str> {
    let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
    ["nl", "en"].into_iter().find(|l| primary.eq_ignore_ascii_case(l))
}

/// `nl` or `en` as `language` says, both (`nl / en`) where it says neither: for the fixed answers webcare gives
/// where a customer's language may be unknown.
pub fn say(language: Option<&str>, nl: &str, en: &str) -> String {
    match language {
        Some("nl") => nl.to_owned(),
        Some("en") => en.to_owned(),
        _ => format!("{nl} / {en}"),
    }
}

impl InboundEvent {
    /// `/link CODE` written in a private chat with the bot: a team member linking their chat account (see
    /// [`StaffDesk`]), so that the code need not be shown in the staff group. Not a customer's command.
    pub fn is_private_link(&self) -> bool {
        let typed = |t: &str| {
            let t = t.trim_start();
            ["/link ", "!link "]
                .iter()
                .any(|p| t.len() > p.len() && t.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p)))
        };
        self.chat_kind == ConversationKind::Private
            && match &self.kind {
                InboundKind::Command { name, .. } => name.eq_ignore_ascii_case("link"),
                InboundKind::Message => typed(&self.text),
                _ => false,
            }
    }
}

/// What kind of thing the customer did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboundKind {
    Message,
    /// The customer changed a message sent before (`message_id` names it).
    Edited,
    /// The customer deleted a message sent before.
    Deleted,
    /// A command such as `/status`, `/stop`, `/help`, `/ticket` or `/start <payload>`, without the slash.
    Command {
        name: String,
        args: String,
    },
    /// A button press with its callback data (`talk_to_person`).
    Button {
        data: String,
    },
}

/// What the intake did with an event, for the adapter's logs and for tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntakeOutcome {
    /// False when the event had been received before (a redelivery) and nothing was done again.
    pub new: bool,
    /// The action taken: `auto_answer`, `hold_and_subscribe`, `ticket`, `move_private`, `ignore`, or a command's.
    pub action: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The event could not be stored; the adapter must not acknowledge it to the platform, so it comes again.
    #[error("could not store the event: {0}")]
    Unavailable(String),
    #[error("invalid event: {0}")]
    Invalid(String),
}

/// Where adapters deliver what customers send. `receive` returns once the event is durably stored, so an adapter
/// may then acknowledge it (move Telegram's offset, say).
#[async_trait]
pub trait Intake: Send + Sync {
    async fn receive(&self, event: InboundEvent) -> Result<IntakeOutcome, IntakeError>;

    /// Whether this instance decides what happens to messages now; with several instances on one database, one does
    /// at a time and the others only store.
    fn deciding(&self) -> bool {
        true
    }

    /// How the bridge's data loaded now reads `text` (with the platform's location hint `place`): intent,
    /// category, service, region, the kinds of private data and the reasons, in the fields a stored decision has.
    /// Nothing is stored or sent. `None` where this intake has no classifier.
    fn classify(&self, _text: &str, _place: Option<&str>) -> Option<serde_json::Value> {
        None
    }

    /// The lexicons' groups as the data loaded now counts them (the data files with the admins' changes). Empty
    /// where this intake has no classifier.
    fn lexicon(&self) -> Vec<crate::LexiconGroup> {
        Vec::new()
    }

    /// How the data loaded now, and the same data with `change` more, read each of `texts` (with its place hint):
    /// both classifications in a stored decision's fields, for an admin to see what a lexicon change would do
    /// before making it. Nothing is stored. `None` where this intake has no classifier.
    fn read_with_change(
        &self,
        _change: &crate::LexiconChange,
        _texts: &[(&str, Option<&str>)],
    ) -> Option<Vec<(serde_json::Value, serde_json::Value)>> {
        None
    }
}

/// Where adapters deliver what the webcare team writes in its own chats (a Telegram staff group, a Discord staff
/// channel): commands to webcare such as `/claim 12`, never customers' messages.
#[async_trait]
pub trait StaffDesk: Send + Sync {
    /// Carries out a command and queues its answer in the staff chat (or, for `/link` in a private chat with the
    /// bot, there: see [`InboundEvent::is_private_link`]); returns once both are stored, so an adapter may then
    /// acknowledge the event. A redelivered event (the same message id) is carried out once. Anything
    /// that is not a command is the team talking among themselves, and is left alone.
    async fn command(&self, event: InboundEvent) -> Result<(), IntakeError>;

    /// The commands, for a platform's command menu in the staff chats.
    fn commands(&self) -> Vec<StaffCommand>;
}

/// A command of the staff desk, as a platform's command menu shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaffCommand {
    /// Without the slash: `claim`.
    pub name: &'static str,
    /// What follows the name, as a hint (`N TEXT`); empty when nothing does.
    pub args: &'static str,
    /// What it does, in a line.
    pub what: &'static str,
}

/// What the platform said when it accepted a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// The platform's id of the message it created, when there is one.
    pub platform_message_id: Option<String>,
}

/// Which limit a platform's "slow down" applies to, so that only that scope waits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitScope {
    /// Everything this bot sends on the platform.
    Global,
    /// Only this chat (or channel).
    Chat(String),
    /// A platform-defined bucket (Discord's per-route buckets).
    Bucket(String),
}

/// Why a send did not go through, in the terms the delivery engine acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// 429: try again after `retry_after`, and hold back everything in `scope` until then.
    #[error("rate limited for {retry_after:?} ({scope:?})")]
    RateLimited { retry_after: Duration, scope: LimitScope },
    /// The recipient refuses the bot for good (Telegram 403 blocked, Discord 50007): no retries.
    #[error("recipient unreachable: {0}")]
    Unreachable(String),
    /// The chat moved (a Telegram group became a supergroup): send there instead.
    #[error("chat moved to {new_chat_id}")]
    Moved { new_chat_id: String },
    /// The platform refused this message for good (bad request): no retries.
    #[error("rejected: {0}")]
    Rejected(String),
    /// A server error or a network failure: retry with backoff.
    #[error("transient failure: {0}")]
    Transient(String),
}

/// Delivers outbox rows on one platform.
#[async_trait]
pub trait Sender: Send + Sync {
    fn platform(&self) -> Platform;
    async fn send(&self, to: &Conversation, item: &OutboxItem) -> Result<Sent, SendError>;
}

/// Why a webhook did not take a post, in the terms the alert notifier acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// A server error (5xx), 408, 429, a timeout or a network failure: try again, after `retry_after` when the
    /// receiver said how long to wait (`Retry-After`), with backoff otherwise.
    #[error("{reason}")]
    Transient { reason: String, retry_after: Option<Duration> },
    /// Refused for good (another 4xx, a redirect): trying again would not help; an admin must fix the webhook.
    #[error("{0}")]
    Rejected(String),
}

/// Posts spike alerts to one webhook (a Slack, Mattermost or Teams incoming webhook, or a team's own service).
/// The adapter owns the URL and never puts it in an error: errors are shown to admins and logged.
#[async_trait]
pub trait AlertSink: Send + Sync {
    /// The webhook for logs, with any secret in its URL masked.
    fn describe(&self) -> String;
    /// Posts `payload` as JSON with `idempotency_key`, so a receiver can drop a post it already has (a post is
    /// repeated when webcare could not record that the first one arrived).
    async fn post(&self, idempotency_key: &str, payload: &serde_json::Value) -> Result<(), PostError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: ConversationKind, command: InboundKind, text: &str) -> InboundEvent {
        InboundEvent {
            platform: crate::Platform::Discord,
            chat_id: "1".into(),
            chat_kind: kind,
            chat_title: None,
            user_id: "2".into(),
            user_name: "ann".into(),
            from_bot: false,
            message_id: "3".into(),
            text: text.into(),
            attachments: vec![],
            kind: command,
            place: None,
            language: None,
            account: String::new(),
            at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
        }
    }

    #[test]
    fn a_link_is_private_and_names_a_code() {
        use ConversationKind::{Private, Public};
        let link = || InboundKind::Command { name: "link".into(), args: "ABC".into() };
        assert!(event(Private, link(), "/link ABC").is_private_link());
        assert!(!event(Public, link(), "/link ABC").is_private_link(), "in a group it is a staff chat's business");
        for typed in ["/link ABCD", "!LINK abcd", "  /Link x"] {
            assert!(event(Private, InboundKind::Message, typed).is_private_link(), "{typed}");
        }
        for typed in ["/link", "/linked 1", "link ABC", "wat is mijn link?", "/liñk abc", "/lin€ abc"] {
            assert!(!event(Private, InboundKind::Message, typed).is_private_link(), "{typed}");
        }
        let status = InboundKind::Command { name: "status".into(), args: String::new() };
        assert!(!event(Private, status, "/status").is_private_link());
    }

    #[test]
    fn a_language_tag_names_the_answer_language_by_its_primary_part() {
        for (tag, want) in [
            ("nl", Some("nl")),
            ("nl-BE", Some("nl")),
            (" NL ", Some("nl")),
            ("en", Some("en")),
            ("en-GB", Some("en")),
            ("en_US", Some("en")),
            ("fr-BE", None),
            ("de", None),
            ("", None),
            ("nld", None),
            ("english", None),
        ] {
            assert_eq!(answer_language(tag), want, "{tag:?}");
        }
    }
}
