use serde::{Deserialize, Serialize};

use crate::{ConversationId, Timestamp, id_type, word_enum};

id_type!(
    /// webcare's id of an outbox row.
    OutboxId
);

word_enum! {
    /// Where an outbox row stands.
    OutboxState {
        /// Waiting for its next attempt time.
        Pending => "pending",
        /// Claimed by a worker until its lease ends; a lease that ends unmarked makes it claimable again.
        Sending => "sending",
        /// The platform accepted it. Final.
        Sent => "sent",
        /// The platform refused it for good, or attempts ran out. Final.
        Failed => "failed",
        /// Superseded or withdrawn before it was sent. Final.
        Cancelled => "cancelled",
    }
}

/// How urgent an outbox row is. Higher goes first, so a person's answer never waits behind a broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Priority(pub i64);

impl Priority {
    pub const BROADCAST: Priority = Priority(10);
    pub const AUTOMATIC: Priority = Priority(50);
    pub const AGENT_REPLY: Priority = Priority(100);
}

/// Something webcare will send. Everything webcare sends goes through here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub id: OutboxId,
    pub conversation: ConversationId,
    /// What to do: `message` for now; later issues add edits, deletions and callbacks.
    pub kind: String,
    pub body: String,
    /// Platform-specific extras as JSON (buttons, the message replied to).
    pub extra: serde_json::Value,
    /// Unique: the second enqueue of the same key is a no-op. A notice version uses `notice:<id>:v<n>:conv:<id>`.
    pub idempotency_key: String,
    pub priority: Priority,
    pub state: OutboxState,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub claimed_by: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub last_error: Option<String>,
    /// The platform's id of the sent message, once sent.
    pub platform_message_id: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewOutbox {
    pub conversation: ConversationId,
    pub kind: String,
    pub body: String,
    pub extra: serde_json::Value,
    pub idempotency_key: String,
    pub priority: Priority,
    pub not_before: Timestamp,
}

impl NewOutbox {
    /// A plain message to a conversation, to be sent as soon as the limits allow.
    pub fn message(
        conversation: ConversationId,
        body: impl Into<String>,
        idempotency_key: impl Into<String>,
        priority: Priority,
        at: Timestamp,
    ) -> Self {
        NewOutbox {
            conversation,
            kind: "message".to_owned(),
            body: body.into(),
            extra: serde_json::Value::Object(Default::default()),
            idempotency_key: idempotency_key.into(),
            priority,
            not_before: at,
        }
    }
}
