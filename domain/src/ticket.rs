use serde::{Deserialize, Serialize};

use crate::{Agent, AgentId, ConversationId, CustomerId, Platform, Timestamp, id_type, word_enum};

id_type!(
    /// webcare's id of a ticket.
    TicketId
);

word_enum! {
    /// Where a ticket stands: new → open (claimed) → pending (waiting on the customer) → solved → closed.
    TicketState {
        New => "new",
        Open => "open",
        Pending => "pending",
        Solved => "solved",
        Closed => "closed",
    }
}

impl TicketState {
    /// A ticket in one of these states still takes the customer's messages.
    pub fn is_open(self) -> bool {
        !matches!(self, TicketState::Closed)
    }
}

/// An individual case for a human agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    pub conversation: ConversationId,
    pub customer: CustomerId,
    pub state: TicketState,
    pub subject: String,
    /// 1 (urgent) to 4 (low).
    pub priority: i64,
    pub category: String,
    pub assignee: Option<AgentId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// What is due next, for sorting the queue: the first response until there is one, then the resolution;
    /// `None` once solved.
    pub due_at: Option<Timestamp>,
    /// The platform of the ticket's conversation, kept on the ticket so the queue can filter on it.
    pub platform: Platform,
    /// Lowercase labels agents attach, in the order they were added.
    pub tags: Vec<String>,
    /// The agent working on the ticket now. The claim is a lock: it lapses when its holder has not acted on the
    /// ticket for a configured time (see `last_activity_at`), and only a live claim keeps others out.
    pub claimed_by: Option<AgentId>,
    pub claimed_at: Option<Timestamp>,
    /// The holder's last action on the ticket; the claim lapses measured from here.
    pub last_activity_at: Option<Timestamp>,
    pub first_response_due_at: Option<Timestamp>,
    pub resolution_due_at: Option<Timestamp>,
    pub first_responded_at: Option<Timestamp>,
    pub solved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    /// Incremented by every write, so that a change computed from a stale copy is refused (optimistic locking).
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewTicket {
    pub conversation: ConversationId,
    pub customer: CustomerId,
    pub subject: String,
    pub priority: i64,
    pub category: String,
    pub due_at: Option<Timestamp>,
    pub first_response_due_at: Option<Timestamp>,
    pub resolution_due_at: Option<Timestamp>,
    pub tags: Vec<String>,
    pub at: Timestamp,
}

word_enum! {
    /// What happened to a ticket. The event's body is the text for messages, replies and notes, the subject for
    /// `created`, and otherwise the new value: a state word, a priority, an agent id (empty for nobody), a
    /// category, or the tags as a JSON list; `taken_over` names the previous holder's id.
    TicketEventKind {
        Created => "created",
        CustomerMessage => "customer_message",
        Reply => "reply",
        Note => "note",
        StateChanged => "state_changed",
        Claimed => "claimed",
        Released => "released",
        Assigned => "assigned",
        PriorityChanged => "priority_changed",
        TakenOver => "taken_over",
        TagsChanged => "tags_changed",
        CategoryChanged => "category_changed",
    }
}

/// One entry in a ticket's history: who did what, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketEvent {
    pub id: i64,
    pub ticket: TicketId,
    pub kind: TicketEventKind,
    /// The agent who acted; `None` for the customer or webcare itself.
    pub actor: Option<AgentId>,
    /// Text of a message, reply or note, or a description of the change.
    pub body: String,
    pub at: Timestamp,
}

/// An event to record together with a ticket change.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTicketEvent {
    pub kind: TicketEventKind,
    pub actor: Option<AgentId>,
    pub body: String,
    pub at: Timestamp,
}

/// Whose tickets a queue shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssigneeFilter {
    Nobody,
    Agent(AgentId),
}

/// Which tickets a queue shows. Every field narrows; the default shows every ticket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketFilter {
    /// Any of these states; all states when empty.
    pub states: Vec<TicketState>,
    pub category: Option<String>,
    pub platform: Option<Platform>,
    pub assignee: Option<AssigneeFilter>,
    /// Only this customer's tickets.
    pub customer: Option<crate::CustomerId>,
    /// Only tickets solved at or before this time (the auto-close sweep).
    pub solved_before: Option<Timestamp>,
    /// Only tickets this finds, ignoring case: in the subject, the customer's name, or anything the customer wrote
    /// in the ticket's conversation; a number (`12`, `#12`) also finds the ticket of that number.
    pub text: Option<String>,
    pub limit: Option<u32>,
}

/// An agent's attempt to claim a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketClaim {
    pub ticket: TicketId,
    pub agent: AgentId,
    pub at: Timestamp,
    /// A claim whose holder's last action is at or before this time has lapsed and may be taken.
    pub lapsed_before: Timestamp,
}

/// What a claim attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// The agent holds the claim. `fresh` when it began with this attempt rather than renewing the agent's own.
    Claimed { ticket: Ticket, fresh: bool },
    /// Another agent holds a live claim.
    Held { ticket: Ticket, holder: Agent },
    /// Closed tickets cannot be claimed.
    Closed(Ticket),
}

/// Many tickets' writes at once (a batch of customer messages): new tickets, changed tickets and their events,
/// written by [`crate::Store::write_tickets`] in one go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketWrites {
    /// New tickets. Each gets its `created` event first, like [`crate::Store::create_ticket_unless_open`].
    pub created: Vec<CreatedTicket>,
    /// Changed tickets, each written only if its stored version is still the one read (compare-and-set).
    pub changed: Vec<Ticket>,
    /// Events in the order they happened, on a new ticket (by its index in `created`) or a stored one.
    pub events: Vec<(TicketRef, NewTicketEvent)>,
}

/// A new ticket of a batch. `updated_at` is later than `new.at` when more messages joined it in the same batch.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedTicket {
    pub new: NewTicket,
    pub updated_at: Timestamp,
}

/// Which ticket a batch's event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketRef {
    /// The new ticket at this index of [`TicketWrites::created`].
    Created(usize),
    Stored(TicketId),
}

/// A ticket as written, with the events written with it.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketWrite {
    pub ticket: Ticket,
    pub events: Vec<TicketEvent>,
}
