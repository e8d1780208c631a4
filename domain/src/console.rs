//! What the agents' web console keeps besides tickets and notices: login sessions and canned replies.
//!
//! A session is stored under the SHA-256 of the cookie's random value, so a leaked table cannot be replayed as a
//! cookie; its CSRF token is the secret every form of that session carries back.

use serde::{Deserialize, Serialize};

use crate::{AgentId, Timestamp, id_type};

/// A logged-in console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// The SHA-256 (hex) of the session cookie's value.
    pub id_hash: String,
    pub agent: AgentId,
    /// The token every form posted in this session must carry.
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

id_type!(
    /// webcare's id of a canned reply.
    CannedReplyId
);

/// An approved answer agents send as it is, with placeholders such as `{name}` filled in for the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CannedReply {
    pub id: CannedReplyId,
    /// Unique: how agents pick it.
    pub title: String,
    pub body: String,
    pub created_by: Option<AgentId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
