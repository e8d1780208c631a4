//! [`Ticketing`]: the ticket operations callers use, over a `Store`.
//!
//! Each operation reads the ticket, decides the change with a pure function from [`crate::lifecycle`], and writes
//! it with `Store::update_ticket`, which refuses the write when the ticket's version moved in between; then it
//! reads and decides again. So a decision is always made on the ticket as it is stored, whichever process wrote
//! last. Claiming uses the store's single conditional write instead, so that it needs no retry.

use std::sync::Arc;

use webcare_domain::{
    Agent, AgentId, ClaimOutcome, ConversationId, CustomerId, Inserted, NewOutbox, Priority, Store, StoreError, Ticket,
    TicketClaim, TicketEvent, TicketEventKind, TicketFilter, TicketId, TicketState, TicketWrite, Timestamp,
};

use crate::lifecycle::{self, Change};
use crate::{TicketError, TicketPolicy, check_priority};

/// How often an operation re-reads and re-decides after losing a race before it gives up. Each lost round means
/// another writer succeeded; between rounds the loser waits a random pause that grows with each loss
/// ([`backoff`]), so a burst of writers to one ticket spreads out instead of colliding again in lockstep.
/// Running out takes a sustained storm of writes to one ticket (seconds of them).
const ATTEMPTS: u32 = 24;

/// The pause after losing round `round` (0-based): uniform in 0..=min(2^round, 64) ms.
async fn backoff(round: u32) {
    use rand::Rng;
    let cap_ms = 1u64 << round.min(6);
    let ms = rand::rng().random_range(0..=cap_ms);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// A customer's message for [`Ticketing::open_or_append`].
#[derive(Debug, Clone, Copy)]
pub struct CustomerMessage<'a> {
    pub conversation: ConversationId,
    pub customer: CustomerId,
    pub text: &'a str,
    /// The bridge's category (`billing`, `technical`, ...).
    pub category: &'a str,
    /// 1 (urgent) to 4 (low); the policy's default when `None`.
    pub priority: Option<i64>,
}

/// Where a customer's message went.
#[derive(Debug, Clone, PartialEq)]
pub struct Intake {
    pub ticket: Ticket,
    /// The `customer_message` event that holds the text.
    pub event: TicketEvent,
    /// A new ticket was opened for it.
    pub created: bool,
    /// It reopened a pending or solved ticket.
    pub reopened: bool,
}

/// A recorded reply. The caller sends it by enqueueing `outbox` (`Store::enqueue`); its idempotency key is
/// derived from the event, so enqueueing twice sends once.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub ticket: Ticket,
    pub event: TicketEvent,
    pub outbox: NewOutbox,
}

/// A change of several fields at once (`PATCH /tickets/{id}`), applied atomically in the order priority, state,
/// assignee. `assignee: Some(None)` unassigns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketPatch {
    pub state: Option<TicketState>,
    pub priority: Option<i64>,
    pub assignee: Option<Option<AgentId>>,
}

/// The ticket service. Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct Ticketing {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) policy: TicketPolicy,
}

impl std::fmt::Debug for Ticketing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticketing").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Ticketing {
    pub fn new(store: Arc<dyn Store>, policy: TicketPolicy) -> Ticketing {
        Ticketing { store, policy }
    }

    /// The same service over another store: a unit of work (`Store::begin`), so that its changes commit with the
    /// caller's.
    pub fn on(&self, store: Arc<dyn Store>) -> Ticketing {
        Ticketing { store, policy: self.policy.clone() }
    }

    pub fn policy(&self) -> &TicketPolicy {
        &self.policy
    }

    /// Files a customer's message: it joins the customer's ticket on the same conversation that is not closed
    /// (reopening it when pending or solved), or opens a new ticket with its SLA due times.
    pub async fn open_or_append(&self, msg: CustomerMessage<'_>, now: Timestamp) -> Result<Intake, TicketError> {
        if let Some(p) = msg.priority {
            check_priority(p)?;
        }
        for round in 0..ATTEMPTS {
            if round > 0 {
                backoff(round - 1).await;
            }
            if let Some(open) = self.store.open_ticket(msg.conversation, msg.customer).await? {
                match self.customer_message(open.id, msg.text, now).await {
                    Ok(intake) => return Ok(intake),
                    // Closed by the sweep in between: the message opens a new ticket instead.
                    Err(TicketError::Closed(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let (new, events) = lifecycle::new_ticket(&msg, now, &self.policy)?;
            match self.store.create_ticket_unless_open(new, &events).await? {
                Inserted::New(w) => return intake(w, true, false),
                // Another process opened one first; join it on the next round.
                Inserted::Existing(_) => {}
            }
        }
        Err(contended(None))
    }

    /// A customer wrote on a known ticket: recorded, and a pending or solved ticket reopens. A closed ticket
    /// refuses with `Closed`; [`Ticketing::open_or_append`] then opens a new one.
    pub async fn customer_message(&self, ticket: TicketId, text: &str, now: Timestamp) -> Result<Intake, TicketError> {
        let mut before = TicketState::New;
        let w = self
            .change(ticket, |c| {
                before = c.ticket.state;
                lifecycle::customer_message(c, text, now, &self.policy)
            })
            .await?;
        let reopened = before != w.ticket.state;
        intake(w, false, reopened)
    }

    /// Claims the ticket for `agent` in one atomic step: of agents claiming at once exactly one wins; the others
    /// get `AlreadyClaimed` with the winner's name. Claiming a ticket one holds renews the claim.
    pub async fn claim(&self, ticket: TicketId, agent: &Agent, now: Timestamp) -> Result<Ticket, TicketError> {
        if !agent.active {
            return Err(TicketError::NotAllowed { action: "claim", reason: "the agent is deactivated" });
        }
        let claim = TicketClaim { ticket, agent: agent.id, at: now, lapsed_before: now - self.policy.claim_lapse() };
        match self.store.claim_ticket(&claim).await.map_err(|e| not_found(e, ticket))? {
            ClaimOutcome::Claimed { ticket, .. } => Ok(ticket),
            ClaimOutcome::Held { holder, .. } => {
                Err(TicketError::AlreadyClaimed { by: holder.name, holder: holder.id })
            }
            ClaimOutcome::Closed(t) => Err(TicketError::Closed(t.id)),
        }
    }

    /// The holder (or an admin) gives the ticket back to the queue.
    pub async fn release(&self, ticket: TicketId, agent: &Agent, now: Timestamp) -> Result<Ticket, TicketError> {
        Ok(self.change(ticket, |c| lifecycle::release(c, agent, now, &self.policy)).await?.ticket)
    }

    /// An admin takes the claim, whoever holds it.
    pub async fn take_over(&self, ticket: TicketId, admin: &Agent, now: Timestamp) -> Result<Ticket, TicketError> {
        Ok(self.change(ticket, |c| lifecycle::take_over(c, admin, now, &self.policy)).await?.ticket)
    }

    pub async fn set_state(
        &self,
        ticket: TicketId,
        agent: &Agent,
        to: TicketState,
        now: Timestamp,
    ) -> Result<Ticket, TicketError> {
        Ok(self.change(ticket, |c| lifecycle::set_state(c, agent, to, now, &self.policy)).await?.ticket)
    }

    pub async fn set_priority(
        &self,
        ticket: TicketId,
        agent: &Agent,
        priority: i64,
        now: Timestamp,
    ) -> Result<Ticket, TicketError> {
        Ok(self.change(ticket, |c| lifecycle::set_priority(c, agent, priority, now, &self.policy)).await?.ticket)
    }

    pub async fn set_category(
        &self,
        ticket: TicketId,
        agent: &Agent,
        category: &str,
        now: Timestamp,
    ) -> Result<Ticket, TicketError> {
        Ok(self.change(ticket, |c| lifecycle::set_category(c, agent, category, now, &self.policy)).await?.ticket)
    }

    /// Transfers the ticket to another agent (who gets the claim), or unassigns it with `None`.
    pub async fn assign(
        &self,
        ticket: TicketId,
        agent: &Agent,
        to: Option<AgentId>,
        now: Timestamp,
    ) -> Result<Ticket, TicketError> {
        let to = self.assignee(to).await?;
        Ok(self.change(ticket, |c| lifecycle::assign(c, agent, to.as_ref(), now, &self.policy)).await?.ticket)
    }

    pub async fn add_tags(
        &self,
        ticket: TicketId,
        agent: &Agent,
        tags: &[&str],
        now: Timestamp,
    ) -> Result<Ticket, TicketError> {
        Ok(self.change(ticket, |c| lifecycle::change_tags(c, agent, tags, &[], now, &self.policy)).await?.ticket)
    }

    pub async fn remove_tags(
        &self,
        ticket: TicketId,
        agent: &Agent,
        tags: &[&str],
        now: Timestamp,
    ) -> Result<Ticket, TicketError> {
        Ok(self.change(ticket, |c| lifecycle::change_tags(c, agent, &[], tags, now, &self.policy)).await?.ticket)
    }

    /// `PATCH /tickets/{id}`: all of the patch or none of it.
    pub async fn update(
        &self,
        ticket: TicketId,
        agent: &Agent,
        patch: &TicketPatch,
        now: Timestamp,
    ) -> Result<Ticket, TicketError> {
        let to = match patch.assignee {
            Some(to) => Some(self.assignee(to).await?),
            None => None,
        };
        let w = self
            .change(ticket, |c| {
                if let Some(p) = patch.priority {
                    lifecycle::set_priority(c, agent, p, now, &self.policy)?;
                }
                if let Some(state) = patch.state {
                    lifecycle::set_state(c, agent, state, now, &self.policy)?;
                }
                if let Some(to) = &to {
                    lifecycle::assign(c, agent, to.as_ref(), now, &self.policy)?;
                }
                Ok(())
            })
            .await?;
        Ok(w.ticket)
    }

    /// An internal note; it never leaves webcare.
    pub async fn note(
        &self,
        ticket: TicketId,
        agent: &Agent,
        text: &str,
        now: Timestamp,
    ) -> Result<TicketEvent, TicketError> {
        let w = self.change(ticket, |c| lifecycle::note(c, agent, text, now, &self.policy)).await?;
        event_of(w, TicketEventKind::Note).map(|(_, e)| e)
    }

    /// Records an agent's reply (taking the claim when free, and the first-response time) and returns the outbox
    /// row that sends it to the customer's conversation. Enqueueing it is the caller's step.
    pub async fn record_reply(
        &self,
        ticket: TicketId,
        agent: &Agent,
        text: &str,
        now: Timestamp,
    ) -> Result<Reply, TicketError> {
        let w = self.change(ticket, |c| lifecycle::reply(c, agent, text, now, &self.policy)).await?;
        let (ticket, event) = event_of(w, TicketEventKind::Reply)?;
        let key = format!("ticket:{}:reply:{}", ticket.id, event.id);
        let outbox = NewOutbox::message(ticket.conversation, event.body.clone(), key, Priority::AGENT_REPLY, now);
        Ok(Reply { ticket, event, outbox })
    }

    /// The auto-close sweep: closes every ticket solved at least `auto_close_hours` ago and returns them. Safe to
    /// run from several processes at once: each ticket is closed once.
    pub async fn close_solved(&self, now: Timestamp) -> Result<Vec<Ticket>, TicketError> {
        let filter = TicketFilter {
            states: vec![TicketState::Solved],
            solved_before: Some(now - self.policy.auto_close_after()),
            ..TicketFilter::default()
        };
        let mut closed = Vec::new();
        for t in self.store.find_tickets(&filter).await? {
            let w = self
                .change(t.id, |c| {
                    lifecycle::auto_close(c, now, &self.policy);
                    Ok(())
                })
                .await?;
            if !w.events.is_empty() {
                closed.push(w.ticket);
            }
        }
        Ok(closed)
    }

    /// The queue: tickets matching the filter, by due time, undated last.
    pub async fn queue(&self, filter: &TicketFilter) -> Result<Vec<Ticket>, TicketError> {
        Ok(self.store.find_tickets(filter).await?)
    }

    pub async fn ticket(&self, id: TicketId) -> Result<Ticket, TicketError> {
        self.store.ticket(id).await.map_err(|e| not_found(e, id))
    }

    /// The ticket's history, oldest first.
    pub async fn events(&self, id: TicketId) -> Result<Vec<TicketEvent>, TicketError> {
        self.ticket(id).await?;
        Ok(self.store.ticket_events(id).await?)
    }

    /// The agent whose claim is live now, to show on the ticket.
    pub async fn holder(&self, ticket: &Ticket, now: Timestamp) -> Result<Option<Agent>, TicketError> {
        match self.policy.live_holder(ticket, now) {
            Some(id) => Ok(Some(self.store.agent(id).await?)),
            None => Ok(None),
        }
    }

    async fn assignee(&self, to: Option<AgentId>) -> Result<Option<Agent>, TicketError> {
        match to {
            None => Ok(None),
            Some(id) => match self.store.agent(id).await {
                Ok(a) => Ok(Some(a)),
                Err(StoreError::NotFound { .. }) => Err(TicketError::UnknownAgent(id)),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Reads, decides with `decide`, and writes if the ticket did not change in between; otherwise again.
    /// A decision that changes nothing writes nothing.
    async fn change(
        &self,
        id: TicketId,
        mut decide: impl FnMut(&mut Change) -> Result<(), TicketError>,
    ) -> Result<TicketWrite, TicketError> {
        for round in 0..ATTEMPTS {
            if round > 0 {
                backoff(round - 1).await;
            }
            let stored = self.ticket(id).await?;
            let mut change = Change::new(&stored);
            if let Err(e) = decide(&mut change) {
                return Err(self.name_holder(e).await);
            }
            // Nothing to write only when nothing happened: an event at the ticket's own `updated_at` (two messages
            // in the same second, as Telegram's one-second dates make common) leaves the row equal but must be kept.
            if change.ticket == stored && change.events.is_empty() {
                return Ok(TicketWrite { ticket: stored, events: Vec::new() });
            }
            match self.store.update_ticket(&change.ticket, &change.events).await {
                Ok(Some(written)) => return Ok(written),
                Ok(None) => continue,
                Err(e) => return Err(not_found(e, id)),
            }
        }
        Err(contended(Some(id)))
    }

    /// Fills in the holder's name, which the pure rules do not know.
    async fn name_holder(&self, e: TicketError) -> TicketError {
        match e {
            TicketError::AlreadyClaimed { holder, .. } => match self.store.agent(holder).await {
                Ok(agent) => TicketError::AlreadyClaimed { by: agent.name, holder },
                Err(e) => e.into(),
            },
            other => other,
        }
    }
}

fn intake(w: TicketWrite, created: bool, reopened: bool) -> Result<Intake, TicketError> {
    let (ticket, event) = event_of(w, TicketEventKind::CustomerMessage)?;
    Ok(Intake { ticket, event, created, reopened })
}

/// The written ticket and its event of `kind`, which the decision always records.
fn event_of(w: TicketWrite, kind: TicketEventKind) -> Result<(Ticket, TicketEvent), TicketError> {
    match w.events.into_iter().find(|e| e.kind == kind) {
        Some(e) => Ok((w.ticket, e)),
        None => Err(StoreError::Other(format!("ticket {}: the {kind} event was not written", w.ticket.id)).into()),
    }
}

fn not_found(e: StoreError, id: TicketId) -> TicketError {
    match e {
        StoreError::NotFound { what: "ticket", .. } => TicketError::NotFound(id),
        other => other.into(),
    }
}

pub(crate) fn contended(id: Option<TicketId>) -> TicketError {
    let what = id.map(|id| format!("ticket {id}")).unwrap_or_else(|| "the conversation's ticket".to_owned());
    TicketError::Store(StoreError::Unavailable(format!("{what} kept changing; try again")))
}
