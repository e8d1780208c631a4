use serde::{Deserialize, Serialize};

use crate::{Timestamp, id_type, word_enum};

word_enum! {
    /// Where a customer talks to webcare.
    Platform {
        Discord => "discord",
        Telegram => "telegram",
        Webchat => "webchat",
    }
}

word_enum! {
    /// Whether others can read a conversation. Private data must never be answered in a public one.
    ConversationKind {
        /// A Discord DM, a Telegram private chat, a web chat.
        Private => "private",
        /// A Discord server channel, a Telegram group or supergroup.
        Public => "public",
    }
}

id_type!(
    /// webcare's id of a conversation.
    ConversationId
);
id_type!(
    /// webcare's id of a customer.
    CustomerId
);

/// One chat on one platform: a DM, a server channel, a group, a web chat session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub platform: Platform,
    /// The platform's own id of the chat (Telegram chat id, Discord channel id, web chat session id).
    pub platform_chat_id: String,
    pub kind: ConversationKind,
    pub title: Option<String>,
    /// Set when the platform refuses delivery for good (Telegram 403 "bot was blocked", Discord 50007).
    pub unreachable: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConversation {
    pub platform: Platform,
    pub platform_chat_id: String,
    pub kind: ConversationKind,
    pub title: Option<String>,
}

/// A person on one platform. The same person on Discord and on Telegram is two customers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: CustomerId,
    pub platform: Platform,
    /// The platform's own id of the user.
    pub platform_user_id: String,
    pub display_name: String,
    /// Set when the platform refuses delivery for good (Telegram 403 "bot was blocked", Discord 50007).
    pub unreachable: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCustomer {
    pub platform: Platform,
    pub platform_user_id: String,
    pub display_name: String,
}
