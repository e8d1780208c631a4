//! The ticket lifecycle: new → open (claimed) → pending (waiting on the customer) → solved → closed, with
//! claiming, SLA due times in business hours, and an event for every change.
//!
//! [`Ticketing`] is the service the console, the REST API and the bridge call; it keeps state through the
//! domain's `Store` and decides every change in pure functions ([`lifecycle`]) before writing it with a
//! compare-and-set on the ticket's version, so that concurrent agents and several webcare processes never
//! overwrite each other's changes. Claiming itself is one conditional write in the store.
//!
//! Architecture invariant: pure logic over `webcare-domain`; never sees a serenity, teloxide, axum or sqlx type,
//! and does not depend on `bridge`. Sending a reply is the caller's job: [`Reply`] carries the outbox row.

mod batch;
pub mod lifecycle;
mod service;
pub mod sla;

use serde::{Deserialize, Serialize};
use webcare_domain::{AgentId, StoreError, Ticket, TicketId, TicketState, Timestamp};

pub use batch::{PendingTicket, TicketBatch};
/// The time zone type of [`SlaPolicy::timezone`] (an IANA name such as `Europe/Amsterdam`).
pub use chrono_tz::Tz;
pub use lifecycle::{By, may_transition};
pub use service::{CustomerMessage, Intake, Reply, TicketPatch, Ticketing};
pub use sla::{DayHours, PerPriority, SlaPolicy, WeekHours};

/// Ticket priorities: 1 is the most urgent.
pub const URGENT: i64 = 1;
pub const HIGH: i64 = 2;
pub const NORMAL: i64 = 3;
pub const LOW: i64 = 4;

/// What a ticket operation can fail with. Each variant is something a caller acts on (a status code, a message).
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("ticket {0} not found")]
    NotFound(TicketId),
    /// Assigning to an agent that does not exist.
    #[error("agent {0} not found")]
    UnknownAgent(AgentId),
    /// Another agent holds a live claim; `by` is their name (409 in the API).
    #[error("ticket is claimed by {by}")]
    AlreadyClaimed { by: String, holder: AgentId },
    /// The actor's role or relation to the ticket does not permit this (403).
    #[error("not allowed to {action}: {reason}")]
    NotAllowed { action: &'static str, reason: &'static str },
    /// No one moves a ticket this way by setting its state.
    #[error("a ticket cannot go from {from} to {to}")]
    InvalidTransition { from: TicketState, to: TicketState },
    /// The ticket is closed: it takes no replies or claims; a customer's new message opens a new ticket.
    #[error("ticket {0} is closed")]
    Closed(TicketId),
    /// A value that can never be accepted (an empty reply, priority 7).
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The rules configuration sets: SLA, claim lapse, auto-close, default priority. Every field has a default.
///
/// ```toml
/// claim_lapse_mins = 30
/// auto_close_hours = 72
/// default_priority = 3
/// [sla]
/// timezone = "Europe/Amsterdam"
/// holidays = ["2026-12-25"]
/// hours = { mon = "08:00-20:00", sat = "09:00-17:00", sun = "closed" }
/// first_response_mins = { urgent = 30, high = 60, normal = 240, low = 480 }
/// resolution_mins = { urgent = 240, high = 720, normal = 1440, low = 2880 }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TicketPolicy {
    pub sla: SlaPolicy,
    /// Minutes without an action by the holder after which a claim lapses and others may claim the ticket.
    pub claim_lapse_mins: u32,
    /// Hours a ticket stays solved before the sweep closes it.
    pub auto_close_hours: u32,
    /// The priority of a new ticket when the bridge does not give one (1 urgent … 4 low).
    pub default_priority: i64,
}

impl Default for TicketPolicy {
    fn default() -> Self {
        TicketPolicy { sla: SlaPolicy::default(), claim_lapse_mins: 30, auto_close_hours: 72, default_priority: NORMAL }
    }
}

impl TicketPolicy {
    /// Problems a configuration loader should report, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if check_priority(self.default_priority).is_err() {
            problems.push(format!("default_priority: expected 1 (urgent) to 4 (low), got {}", self.default_priority));
        }
        if self.claim_lapse_mins == 0 {
            problems.push("claim_lapse_mins: must be at least 1".to_owned());
        }
        problems
    }

    pub fn claim_lapse(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.claim_lapse_mins))
    }

    pub fn auto_close_after(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.auto_close_hours))
    }

    /// The agent whose claim on the ticket is live at `now`: claims lapse `claim_lapse_mins` after the holder's
    /// last action. This is what a console shows as the holder.
    pub fn live_holder(&self, ticket: &Ticket, now: Timestamp) -> Option<AgentId> {
        let lapsed_before = now - self.claim_lapse();
        ticket.claimed_by.filter(|_| ticket.last_activity_at.is_none_or(|at| at > lapsed_before))
    }
}

/// Accepts priorities 1 (urgent) to 4 (low).
pub fn check_priority(priority: i64) -> Result<i64, TicketError> {
    if (URGENT..=LOW).contains(&priority) {
        Ok(priority)
    } else {
        Err(TicketError::Invalid {
            field: "priority",
            reason: format!("expected 1 (urgent) to 4 (low), got {priority}"),
        })
    }
}
