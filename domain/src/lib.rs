//! webcare's shared vocabulary.
//!
//! Every other crate speaks in these types: the platforms a customer can use, conversations and customers on them,
//! inbound messages, notices and their versions, outage clusters, subscriptions, tickets with their events, agents,
//! and the outbox through which everything webcare sends leaves the process. The [`store::Store`] trait is the port
//! the logic crates (`bridge`, `ticketing`) use to keep state; `webcare-storage` implements it on SQLite and PostgreSQL.
//!
//! Architecture invariant: this crate knows nothing about serenity, teloxide, axum or sqlx. It depends on serde,
//! chrono and thiserror only, so every crate can depend on it without pulling in an SDK or a database driver.

mod agent;
mod cluster;
mod console;
mod conversation;
mod message;
mod notice;
mod outbox;
pub mod port;
pub mod store;
mod ticket;

pub use agent::{Agent, AgentId, NewAgent, Role};
pub use cluster::{
    AlertId, AlertWebhook, ClusterId, ClusterState, NewCluster, OutageCluster, SpikeAlert, WebhookState,
};
pub use console::{CannedReply, CannedReplyId, ConsoleSession, LexiconChange, LexiconChangeId, LexiconGroup, TermEdit};
pub use conversation::{
    Conversation, ConversationId, ConversationKind, Customer, CustomerId, NewConversation, NewCustomer, Platform,
};
pub use message::{DecisionField, Inbound, InboundFilter, InboundId, InboundMessage, Inserted, NewInbound};
pub use notice::{
    NewNotice, Notice, NoticeChange, NoticeId, NoticeProposal, NoticeState, NoticeVersion, Service, notice_title,
};
pub use outbox::{NewOutbox, OutboxId, OutboxItem, OutboxState, Priority};
pub use port::{
    AlertSink, InboundEvent, InboundKind, Intake, IntakeError, IntakeOutcome, LimitScope, PostError, SendError, Sender,
    Sent, StaffCommand, StaffDesk, answer_language, say,
};
pub use store::{Store, StoreError, StoreResult, Subscription, SubscriptionTarget, Unit, WorkCounts};
pub use ticket::{
    AssigneeFilter, ClaimOutcome, CreatedTicket, NewTicket, NewTicketEvent, Ticket, TicketClaim, TicketEvent,
    TicketEventKind, TicketFilter, TicketId, TicketRef, TicketState, TicketWrite, TicketWrites,
};

/// A point in time. webcare stores every time as UTC with millisecond precision.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Truncates a time to the millisecond precision the databases keep, so a value survives a round trip unchanged.
pub fn millis(t: Timestamp) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Defines an `i64` newtype id with the conversions every id needs.
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}
pub(crate) use id_type;

/// Defines a fieldless enum stored and serialised as a lowercase word, with `as_str` and `FromStr`.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word used in the database, the API and configuration.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::UnknownWord;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err($crate::UnknownWord {
                        kind: stringify!($name),
                        word: s.to_owned(),
                        expected: &[$($word),+],
                    }),
                }
            }
        }
    };
}
pub(crate) use word_enum;

/// A word that names none of an enum's values, as found in a database row, a request or a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{word}`, expected one of: {}", expected.join(", "))]
pub struct UnknownWord {
    pub kind: &'static str,
    pub word: String,
    pub expected: &'static [&'static str],
}
