use serde::{Deserialize, Serialize};

use crate::{ConversationId, CustomerId, Platform, Timestamp, id_type, word_enum};

id_type!(
    /// webcare's id of a stored inbound message.
    InboundId
);

/// A message a customer sent, as stored.
///
/// Unique by `(platform, platform_message_id)`: a platform that redelivers an update (Telegram after a restart,
/// Discord after a gateway resume) finds the stored row instead of creating a second one. Adapters form a
/// platform-unique id where the platform's own is only unique per chat (Telegram: `<chat id>/<message id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub id: InboundId,
    pub platform: Platform,
    pub platform_message_id: String,
    pub conversation: ConversationId,
    pub customer: CustomerId,
    /// The text exactly as the customer wrote it; analysis works on a normalised copy.
    pub text: String,
    /// Attachments, stickers and the like, described for the ticket (`photo`, `document: invoice.pdf`).
    pub attachments: Vec<String>,
    pub received_at: Timestamp,
    pub edited_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
    /// The bridge's decision with its reasons, as JSON, once it has been made.
    pub decision: Option<serde_json::Value>,
    /// The platform's location hint (a geotag), when it gave one: the bridge counts it as the message's region
    /// when the text names none.
    pub place: Option<String>,
    /// The person's language as the platform says it, `nl` or `en` (see [`crate::answer_language`]): answers to
    /// a message whose text shows no language of its own are in it.
    pub language: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewInbound {
    pub platform: Platform,
    pub platform_message_id: String,
    pub conversation: ConversationId,
    pub customer: CustomerId,
    pub text: String,
    pub attachments: Vec<String>,
    pub received_at: Timestamp,
    pub place: Option<String>,
    /// `nl` or `en`, from the platform (see [`InboundMessage::language`]).
    pub language: Option<String>,
}

/// The outcome of storing something that must be stored once.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted<T> {
    /// It was new and is now stored.
    New(T),
    /// It had been stored before; this is the stored one, unchanged.
    Existing(T),
}

impl<T> Inserted<T> {
    pub fn is_new(&self) -> bool {
        matches!(self, Inserted::New(_))
    }

    pub fn into_inner(self) -> T {
        match self {
            Inserted::New(t) | Inserted::Existing(t) => t,
        }
    }

    pub fn get(&self) -> &T {
        match self {
            Inserted::New(t) | Inserted::Existing(t) => t,
        }
    }
}

/// Shorthand for the outcome of storing an inbound message.
pub type Inbound = Inserted<InboundMessage>;

word_enum!(
    /// A field of a stored decision that [`InboundFilter`] can match: the words and ids the bridge records with
    /// every message it decides.
    DecisionField {
        Action => "action",
        Intent => "intent",
        Category => "category",
        Service => "service",
        Notice => "notice",
        Cluster => "cluster",
        Ticket => "ticket",
    }
);

/// Which stored messages to list, newest first, for the admins' "why was this answered so" pages. Every field set
/// narrows the list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundFilter {
    pub platform: Option<Platform>,
    /// Fields of the stored decision, each equal to its value as text (`("action", "auto_answer")`,
    /// `("notice", "7")`).
    pub decision: Vec<(DecisionField, String)>,
    /// Only messages the bridge has not decided yet.
    pub undecided: bool,
    /// Only messages whose text contains this, ignoring case.
    pub text: Option<String>,
    /// Only messages received at or after this time.
    pub since: Option<Timestamp>,
    /// Only messages older than this one (the next page after a page that ended with it).
    pub before: Option<InboundId>,
    /// Only messages on this conversation.
    pub conversation: Option<ConversationId>,
    /// Only messages from this customer.
    pub customer: Option<CustomerId>,
}
