//! The lifecycle rules as pure functions: who may move a ticket where, what each action changes, and which events
//! record it. Nothing here reads a clock or a database; [`crate::Ticketing`] loads the ticket, applies one of these
//! to a [`Change`], and writes the result if nobody changed the ticket in between.
//!
//! Claims: an action that works the ticket (a reply, a state change) needs the claim and takes it when nobody
//! holds a live one; an action on its details (priority, category, tags, assignee) is open to the holder, to
//! anyone while the ticket is unclaimed, and to admins; notes are open to every agent. Admins act without taking
//! a held claim away, unless they take over. Every action of the holder renews the claim.

use webcare_domain::{
    Agent, AgentId, NewTicket, NewTicketEvent, Role, Ticket, TicketEventKind, TicketState, Timestamp,
};

use crate::{TicketError, TicketPolicy, check_priority};

/// Who acts, as the transition table sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Agent,
    Admin,
    /// A message from the ticket's customer.
    Customer,
    /// webcare itself: the auto-close sweep.
    System,
}

impl By {
    pub fn staff(agent: &Agent) -> By {
        match agent.role {
            Role::Admin => By::Admin,
            Role::Agent => By::Agent,
        }
    }
}

/// Whether `by` may move a ticket from `from` to `to`. Closed is final for everyone (a customer who writes again
/// gets a new ticket). Agents work between open, pending and solved (a reply or claim opens a new ticket); only
/// admins send a ticket back to the unassigned queue or close it by hand; a customer's message reopens a pending
/// or solved ticket; webcare closes solved tickets.
pub fn may_transition(from: TicketState, to: TicketState, by: By) -> bool {
    use TicketState::*;
    if from == to || from == Closed {
        return false;
    }
    match by {
        By::Agent => matches!(to, Open | Pending | Solved),
        By::Admin => true,
        By::Customer => matches!((from, to), (Pending | Solved, Open | New)),
        By::System => (from, to) == (Solved, Closed),
    }
}

/// `Ok` when allowed or a no-op; `NotAllowed` when only an admin could; `InvalidTransition` otherwise.
pub fn check_transition(from: TicketState, to: TicketState, by: By) -> Result<(), TicketError> {
    if from == to || may_transition(from, to, by) {
        Ok(())
    } else if by == By::Agent && may_transition(from, to, By::Admin) {
        Err(TicketError::NotAllowed { action: "change the state", reason: "only admins can do this" })
    } else {
        Err(TicketError::InvalidTransition { from, to })
    }
}

/// A ticket being changed: its new field values and the events that record the change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub ticket: Ticket,
    pub events: Vec<NewTicketEvent>,
}

/// How an action relates to the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// Works the ticket: needs the claim, and takes it when free.
    Take,
    /// Touches details: allowed to the holder, to admins, and to anyone while the claim is free; takes nothing.
    Respect,
}

impl Change {
    pub fn new(ticket: &Ticket) -> Change {
        Change { ticket: ticket.clone(), events: Vec::new() }
    }

    fn event(&mut self, kind: TicketEventKind, actor: Option<AgentId>, body: impl Into<String>, at: Timestamp) {
        self.events.push(NewTicketEvent { kind, actor, body: body.into(), at });
        self.ticket.updated_at = at;
    }

    fn not_closed(&self) -> Result<(), TicketError> {
        if self.ticket.state == TicketState::Closed { Err(TicketError::Closed(self.ticket.id)) } else { Ok(()) }
    }

    /// Checks the actor against the claim, renews it for the holder, and takes it for `Claim::Take` when free.
    /// A refusal carries the holder's id; the service fills in the name.
    fn act(&mut self, agent: &Agent, claim: Claim, now: Timestamp, policy: &TicketPolicy) -> Result<(), TicketError> {
        active(agent)?;
        match policy.live_holder(&self.ticket, now) {
            Some(holder) if holder == agent.id => self.ticket.last_activity_at = Some(now),
            Some(_) if agent.role == Role::Admin => {}
            Some(holder) => return Err(TicketError::AlreadyClaimed { by: String::new(), holder }),
            None if claim == Claim::Take => self.take_claim(agent.id, TicketEventKind::Claimed, String::new(), now),
            None => {}
        }
        Ok(())
    }

    fn take_claim(&mut self, agent: AgentId, kind: TicketEventKind, body: String, now: Timestamp) {
        let t = &mut self.ticket;
        t.claimed_by = Some(agent);
        t.claimed_at = Some(now);
        t.last_activity_at = Some(now);
        t.assignee = Some(agent);
        self.event(kind, Some(agent), body, now);
        if self.ticket.state == TicketState::New {
            self.enter(TicketState::Open, Some(agent), now, None);
        }
    }

    fn clear_claim(&mut self) {
        self.ticket.claimed_by = None;
        self.ticket.claimed_at = None;
        self.ticket.last_activity_at = None;
    }

    /// Moves to `to` with its side effects and a `state_changed` event. `policy` is needed only to give a
    /// reopened ticket a fresh resolution window.
    fn enter(&mut self, to: TicketState, actor: Option<AgentId>, now: Timestamp, policy: Option<&TicketPolicy>) {
        let from = self.ticket.state;
        self.ticket.state = to;
        // Leaving solved other than by closing reopens the case: it gets a fresh resolution window.
        if from == TicketState::Solved && to != TicketState::Closed {
            self.ticket.solved_at = None;
            if let Some(policy) = policy {
                self.ticket.resolution_due_at = Some(policy.sla.resolution_due(now, self.ticket.priority));
            }
        }
        match to {
            TicketState::New => {
                self.ticket.assignee = None;
                self.clear_claim();
            }
            TicketState::Open | TicketState::Pending => {}
            // Nobody works on a solved or closed ticket, so its claim ends; the assignee stays for a reopening.
            TicketState::Solved => {
                self.ticket.solved_at = Some(now);
                self.clear_claim();
            }
            TicketState::Closed => {
                self.ticket.closed_at = Some(now);
                self.clear_claim();
            }
        }
        refresh_due(&mut self.ticket);
        self.event(TicketEventKind::StateChanged, actor, to.as_str(), now);
    }
}

/// What is due next: the first response until there is one, then the resolution; nothing once solved.
fn refresh_due(t: &mut Ticket) {
    t.due_at = match t.state {
        TicketState::Solved | TicketState::Closed => None,
        _ if t.first_responded_at.is_none() => t.first_response_due_at,
        _ => t.resolution_due_at,
    };
}

fn active(agent: &Agent) -> Result<(), TicketError> {
    if agent.active {
        Ok(())
    } else {
        Err(TicketError::NotAllowed { action: "act on tickets", reason: "the agent is deactivated" })
    }
}

fn text(field: &'static str, s: &str) -> Result<String, TicketError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(TicketError::Invalid { field, reason: "must not be empty".to_owned() });
    }
    Ok(s.to_owned())
}

/// The longest subject taken from a first message, in characters.
const SUBJECT_CHARS: usize = 80;

/// A subject from the customer's first message: its first line, cut at a character boundary.
pub fn subject(message: &str) -> String {
    let line = message.trim().lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return "(no text)".to_owned();
    }
    let mut chars = line.chars();
    let cut: String = chars.by_ref().take(SUBJECT_CHARS).collect();
    if chars.next().is_some() { format!("{cut}…") } else { cut }
}

/// A tag as stored: trimmed, lowercase, inner whitespace as `-`, at most 40 characters.
pub fn normalise_tag(tag: &str) -> Result<String, TicketError> {
    let tag = tag.split_whitespace().collect::<Vec<_>>().join("-").to_lowercase();
    if tag.is_empty() || tag.chars().count() > 40 {
        return Err(TicketError::Invalid { field: "tags", reason: format!("`{tag}` must be 1 to 40 characters") });
    }
    Ok(tag)
}

/// The ticket and events for a customer's first message on a conversation.
pub fn new_ticket(
    msg: &crate::CustomerMessage<'_>,
    now: Timestamp,
    policy: &TicketPolicy,
) -> Result<(NewTicket, Vec<NewTicketEvent>), TicketError> {
    let priority = check_priority(msg.priority.unwrap_or(policy.default_priority))?;
    let first_response_due_at = policy.sla.first_response_due(now, priority);
    let new = NewTicket {
        conversation: msg.conversation,
        customer: msg.customer,
        subject: subject(msg.text),
        priority,
        category: msg.category.to_owned(),
        due_at: Some(first_response_due_at),
        first_response_due_at: Some(first_response_due_at),
        resolution_due_at: Some(policy.sla.resolution_due(now, priority)),
        tags: Vec::new(),
        at: now,
    };
    let event =
        NewTicketEvent { kind: TicketEventKind::CustomerMessage, actor: None, body: msg.text.to_owned(), at: now };
    Ok((new, vec![event]))
}

/// A customer wrote on their ticket: recorded, and a pending or solved ticket reopens (to its assignee, or to
/// the queue when it has none).
pub fn customer_message(c: &mut Change, body: &str, now: Timestamp, policy: &TicketPolicy) -> Result<(), TicketError> {
    c.not_closed()?;
    c.event(TicketEventKind::CustomerMessage, None, body, now);
    if matches!(c.ticket.state, TicketState::Pending | TicketState::Solved) {
        let to = if c.ticket.assignee.is_some() { TicketState::Open } else { TicketState::New };
        check_transition(c.ticket.state, to, By::Customer)?;
        c.enter(to, None, now, Some(policy));
    }
    Ok(())
}

/// An agent's reply to the customer: takes the claim when free and records the first response.
pub fn reply(
    c: &mut Change,
    agent: &Agent,
    body: &str,
    now: Timestamp,
    policy: &TicketPolicy,
) -> Result<(), TicketError> {
    let body = text("text", body)?;
    c.not_closed()?;
    c.act(agent, Claim::Take, now, policy)?;
    if c.ticket.first_responded_at.is_none() {
        c.ticket.first_responded_at = Some(now);
        refresh_due(&mut c.ticket);
    }
    c.event(TicketEventKind::Reply, Some(agent.id), body, now);
    Ok(())
}

/// An internal note: any agent may write one, on any ticket; it never reaches the customer.
pub fn note(
    c: &mut Change,
    agent: &Agent,
    body: &str,
    now: Timestamp,
    policy: &TicketPolicy,
) -> Result<(), TicketError> {
    let body = text("text", body)?;
    active(agent)?;
    if policy.live_holder(&c.ticket, now) == Some(agent.id) {
        c.ticket.last_activity_at = Some(now);
    }
    c.event(TicketEventKind::Note, Some(agent.id), body, now);
    Ok(())
}

/// Sets the state by hand, within the transition table.
pub fn set_state(
    c: &mut Change,
    agent: &Agent,
    to: TicketState,
    now: Timestamp,
    policy: &TicketPolicy,
) -> Result<(), TicketError> {
    check_transition(c.ticket.state, to, By::staff(agent))?;
    if c.ticket.state == to {
        return Ok(());
    }
    // Closing or returning to the queue (admins only) does not take a claim that is about to end.
    let claim = if matches!(to, TicketState::Closed | TicketState::New) { Claim::Respect } else { Claim::Take };
    c.act(agent, claim, now, policy)?;
    // Taking the claim may already have opened a new ticket.
    if c.ticket.state != to {
        c.enter(to, Some(agent.id), now, Some(policy));
    }
    Ok(())
}

/// An admin takes the claim from whoever holds it.
pub fn take_over(c: &mut Change, admin: &Agent, now: Timestamp, policy: &TicketPolicy) -> Result<(), TicketError> {
    active(admin)?;
    if admin.role != Role::Admin {
        return Err(TicketError::NotAllowed { action: "take over", reason: "only admins can take over a ticket" });
    }
    c.not_closed()?;
    if policy.live_holder(&c.ticket, now) == Some(admin.id) {
        c.ticket.last_activity_at = Some(now);
        return Ok(());
    }
    let previous = c.ticket.claimed_by.map(|a| a.to_string()).unwrap_or_default();
    c.take_claim(admin.id, TicketEventKind::TakenOver, previous, now);
    Ok(())
}

/// The holder (or an admin) gives the ticket back: unclaimed and unassigned, and an open ticket returns to `new`.
pub fn release(c: &mut Change, agent: &Agent, now: Timestamp, policy: &TicketPolicy) -> Result<(), TicketError> {
    active(agent)?;
    c.not_closed()?;
    let t = &c.ticket;
    if t.claimed_by.is_none() && t.assignee.is_none() {
        return Ok(());
    }
    let own = t.claimed_by == Some(agent.id) || t.assignee == Some(agent.id);
    if agent.role != Role::Admin && !own {
        if let Some(holder) = policy.live_holder(t, now) {
            return Err(TicketError::AlreadyClaimed { by: String::new(), holder });
        }
        return Err(TicketError::NotAllowed { action: "release", reason: "only its holder or an admin can" });
    }
    c.clear_claim();
    c.ticket.assignee = None;
    c.event(TicketEventKind::Released, Some(agent.id), "", now);
    if c.ticket.state == TicketState::Open {
        c.enter(TicketState::New, Some(agent.id), now, Some(policy));
    }
    Ok(())
}

/// Transfers the ticket: the new assignee also gets the claim (with a fresh lapse window); `None` unassigns.
/// `to` must be an active agent; the service looks it up.
pub fn assign(
    c: &mut Change,
    agent: &Agent,
    to: Option<&Agent>,
    now: Timestamp,
    policy: &TicketPolicy,
) -> Result<(), TicketError> {
    c.not_closed()?;
    c.act(agent, Claim::Respect, now, policy)?;
    match to {
        Some(to) => {
            if !to.active {
                return Err(TicketError::NotAllowed { action: "assign", reason: "the agent is deactivated" });
            }
            if c.ticket.assignee == Some(to.id) && policy.live_holder(&c.ticket, now) == Some(to.id) {
                return Ok(());
            }
            let t = &mut c.ticket;
            t.assignee = Some(to.id);
            t.claimed_by = Some(to.id);
            t.claimed_at = Some(now);
            t.last_activity_at = Some(now);
            c.event(TicketEventKind::Assigned, Some(agent.id), to.id.to_string(), now);
            if c.ticket.state == TicketState::New {
                c.enter(TicketState::Open, Some(agent.id), now, Some(policy));
            }
        }
        None => {
            if c.ticket.assignee.is_none() && c.ticket.claimed_by.is_none() {
                return Ok(());
            }
            c.ticket.assignee = None;
            c.clear_claim();
            c.event(TicketEventKind::Assigned, Some(agent.id), "", now);
            if c.ticket.state == TicketState::Open {
                c.enter(TicketState::New, Some(agent.id), now, Some(policy));
            }
        }
    }
    Ok(())
}

/// Changes the priority; the due times follow from the ticket's creation at the new priority.
pub fn set_priority(
    c: &mut Change,
    agent: &Agent,
    priority: i64,
    now: Timestamp,
    policy: &TicketPolicy,
) -> Result<(), TicketError> {
    let priority = check_priority(priority)?;
    c.not_closed()?;
    c.act(agent, Claim::Respect, now, policy)?;
    if c.ticket.priority == priority {
        return Ok(());
    }
    let t = &mut c.ticket;
    t.priority = priority;
    t.first_response_due_at = Some(policy.sla.first_response_due(t.created_at, priority));
    t.resolution_due_at = Some(policy.sla.resolution_due(t.created_at, priority));
    refresh_due(t);
    c.event(TicketEventKind::PriorityChanged, Some(agent.id), priority.to_string(), now);
    Ok(())
}

pub fn set_category(
    c: &mut Change,
    agent: &Agent,
    category: &str,
    now: Timestamp,
    policy: &TicketPolicy,
) -> Result<(), TicketError> {
    let category = text("category", category)?.to_lowercase();
    c.not_closed()?;
    c.act(agent, Claim::Respect, now, policy)?;
    if c.ticket.category != category {
        c.ticket.category = category.clone();
        c.event(TicketEventKind::CategoryChanged, Some(agent.id), category, now);
    }
    Ok(())
}

/// Adds and removes tags (normalised; adding one already there or removing one that is not is a no-op).
pub fn change_tags(
    c: &mut Change,
    agent: &Agent,
    add: &[&str],
    remove: &[&str],
    now: Timestamp,
    policy: &TicketPolicy,
) -> Result<(), TicketError> {
    let add: Vec<String> = add.iter().map(|t| normalise_tag(t)).collect::<Result<_, _>>()?;
    let remove: Vec<String> = remove.iter().map(|t| normalise_tag(t)).collect::<Result<_, _>>()?;
    c.not_closed()?;
    c.act(agent, Claim::Respect, now, policy)?;
    let mut tags = c.ticket.tags.clone();
    tags.retain(|t| !remove.contains(t));
    for tag in add {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags != c.ticket.tags {
        c.ticket.tags = tags;
        let body = serde_json::to_string(&c.ticket.tags).expect("a list of strings serialises");
        c.event(TicketEventKind::TagsChanged, Some(agent.id), body, now);
    }
    Ok(())
}

/// The sweep's step for one ticket: closes it when it has been solved for the configured time.
pub fn auto_close(c: &mut Change, now: Timestamp, policy: &TicketPolicy) {
    let due = c.ticket.solved_at.is_some_and(|at| at + policy.auto_close_after() <= now);
    if c.ticket.state == TicketState::Solved && due {
        c.enter(TicketState::Closed, None, now, None);
    }
}

#[cfg(test)]
mod tests;
