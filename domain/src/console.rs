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

impl CannedReply {
    /// The text for one ticket: `{name}` the customer, `{agent}` the agent, `{ticket}` the number; other braces stay.
    pub fn fill(&self, customer: &str, agent: &str, ticket: crate::TicketId) -> String {
        self.body.replace("{name}", customer).replace("{agent}", agent).replace("{ticket}", &ticket.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled() {
        let at = chrono::DateTime::from_timestamp(0, 0).unwrap();
        let canned = CannedReply {
            id: CannedReplyId(1),
            title: "hoi".into(),
            body: "Hoi {name}, ik ben {agent} (zaak {ticket}). {unknown}".into(),
            created_by: None,
            created_at: at,
            updated_at: at,
        };
        assert_eq!(canned.fill("Ada", "Bo", crate::TicketId(7)), "Hoi Ada, ik ben Bo (zaak 7). {unknown}");
    }
}
