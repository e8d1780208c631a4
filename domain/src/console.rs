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

id_type!(
    /// webcare's id of an admin's change to a lexicon.
    LexiconChangeId
);

crate::word_enum!(
    /// What a lexicon change does to its term.
    TermEdit {
        /// The term counts for the group, as if the data file listed it.
        Add => "add",
        /// The term no longer counts for the group, although the data file lists it.
        Remove => "remove",
    }
);

/// An admin's change to one group of a lexicon, kept in the database and applied over the data files on every
/// instance, so that tuning the bridge needs neither a file on each server nor a restart. One change per language,
/// group and term: a new one for the same term replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LexiconChange {
    pub id: LexiconChangeId,
    /// The lexicon's language code (`nl`, `en`).
    pub language: String,
    /// The group's name in that lexicon (`outage`, `billing`, ...).
    pub group: String,
    /// The term as written in a data file: words, a final `*` for any ending, ` .. ` for a few words between.
    pub term: String,
    pub edit: TermEdit,
    pub author: Option<AgentId>,
    pub created_at: Timestamp,
}

impl LexiconChange {
    /// What the change does, as admins read it: add “glasvezel is kapot” to nl outage.
    pub fn describe(&self) -> String {
        let to = if self.edit == TermEdit::Add { "to" } else { "from" };
        format!("{} “{}” {to} {} {}", self.edit, self.term, self.language, self.group)
    }
}

/// One group of a lexicon as the running classifier counts it (the data files with the admins' changes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LexiconGroup {
    /// The lexicon's language code (`nl`, `en`).
    pub language: String,
    pub name: String,
    /// `outage`, `case` or `other`.
    pub intent: String,
    /// `outage`, `billing`, `technical`, `contract`, `moving` or `other`.
    pub category: String,
    /// What each term found adds to its intent's score (negative: takes away).
    pub weight: f32,
    /// The terms as written, in the order they are listed.
    pub terms: Vec<String>,
}
