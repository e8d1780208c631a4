use serde::{Deserialize, Serialize};

use crate::{Timestamp, id_type, word_enum};

id_type!(
    /// webcare's id of an agent.
    AgentId
);

word_enum! {
    /// What an agent may do. Admins may do everything agents may.
    Role {
        Agent => "agent",
        Admin => "admin",
    }
}

/// A person on the company's side: answers tickets, and as admin manages notices and agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub id: AgentId,
    pub name: String,
    pub role: Role,
    /// An argon2 PHC string, when the agent may log in to the console.
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub active: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgent {
    pub name: String,
    pub role: Role,
    pub password_hash: Option<String>,
    pub at: Timestamp,
}
