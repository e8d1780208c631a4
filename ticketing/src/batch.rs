//! [`TicketBatch`]: many customers' messages filed at once, by the same rules as [`Ticketing::open_or_append`]
//! called once per message, and written with one [`Store::write_tickets`] instead of several statements each.
//!
//! The batch reads the open tickets of the conversations it will touch in one statement, decides every message
//! in memory with the pure rules of [`crate::lifecycle`], and writes the new tickets, the changed ones
//! (compare-and-set on their versions) and all their events together. Call it inside a unit of work
//! (`Store::begin`): a write that finds a ticket changed by someone else fails as contended, and the caller rolls
//! the unit back and files the messages one by one.

use std::collections::{BTreeSet, HashMap};

use webcare_domain::{
    ConversationId, CreatedTicket, CustomerId, NewTicket, NewTicketEvent, Ticket, TicketEventKind, TicketId, TicketRef,
    TicketState, TicketWrites, Timestamp,
};

use crate::lifecycle::{self, Change};
use crate::service::contended;
use crate::{CustomerMessage, TicketError, Ticketing, check_priority};

/// A handle to the ticket a message of the batch went to; its id is known once the batch is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PendingTicket {
    index: usize,
    /// When the first answer is due, if this message opened the ticket.
    opened: Option<Timestamp>,
}

impl PendingTicket {
    /// When this message opened the ticket (rather than joining one that was open, or opened earlier in the batch):
    /// when its first answer is due.
    pub fn opened(self) -> Option<Timestamp> {
        self.opened
    }
}

enum Entry {
    /// A stored open ticket, as read and as changed since.
    Stored { read: Box<Ticket>, change: Change },
    /// A ticket the batch opens.
    Created { new: NewTicket, updated_at: Timestamp, events: Vec<NewTicketEvent> },
}

/// Customer messages to file together; see the module documentation.
pub struct TicketBatch {
    ticketing: Ticketing,
    /// Every pair looked up so far: the entry of its open ticket, or `None` when it has none.
    open: HashMap<(ConversationId, CustomerId), Option<usize>>,
    entries: Vec<Entry>,
    /// The ids of the entries of earlier writes, by handle.
    written: Vec<TicketId>,
}

impl Ticketing {
    /// A batch over this service's store, with the open tickets of `pairs` read in one statement (others are
    /// read when first needed).
    pub async fn batch(&self, pairs: &[(ConversationId, CustomerId)]) -> Result<TicketBatch, TicketError> {
        let mut batch =
            TicketBatch { ticketing: self.clone(), open: HashMap::new(), entries: Vec::new(), written: Vec::new() };
        batch.load(pairs).await?;
        Ok(batch)
    }
}

impl TicketBatch {
    async fn load(&mut self, pairs: &[(ConversationId, CustomerId)]) -> Result<(), TicketError> {
        let missing: BTreeSet<(ConversationId, CustomerId)> =
            pairs.iter().copied().filter(|p| !self.open.contains_key(p)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let missing: Vec<_> = missing.into_iter().collect();
        let found = self.ticketing.store.open_tickets(&missing).await?;
        for pair in missing {
            self.open.insert(pair, None);
        }
        for ticket in found {
            self.open.insert((ticket.conversation, ticket.customer), Some(self.entries.len()));
            self.entries.push(Entry::Stored { change: Change::new(&ticket), read: Box::new(ticket) });
        }
        Ok(())
    }

    /// The state of the customer's ticket on this conversation that is not closed, if any, counting the batch's
    /// own (which are `new`) and its changes so far.
    pub async fn open_state(
        &mut self,
        conversation: ConversationId,
        customer: CustomerId,
    ) -> Result<Option<TicketState>, TicketError> {
        self.load(&[(conversation, customer)]).await?;
        Ok(self.open.get(&(conversation, customer)).copied().flatten().map(|i| match &self.entries[i] {
            Entry::Stored { change, .. } => change.ticket.state,
            Entry::Created { .. } => TicketState::New,
        }))
    }

    /// Files a customer's message as [`Ticketing::open_or_append`] does: it joins the open ticket (reopening a
    /// pending or solved one), or opens a new one. Nothing is written until [`TicketBatch::write`].
    pub async fn customer_message(
        &mut self,
        msg: CustomerMessage<'_>,
        now: Timestamp,
    ) -> Result<PendingTicket, TicketError> {
        if let Some(p) = msg.priority {
            check_priority(p)?;
        }
        let key = (msg.conversation, msg.customer);
        self.load(&[key]).await?;
        let mut opened = None;
        let at = match self.open.get(&key).copied().flatten() {
            Some(i) => {
                match &mut self.entries[i] {
                    Entry::Stored { change, .. } => {
                        lifecycle::customer_message(change, msg.text, now, &self.ticketing.policy)?
                    }
                    // A ticket opened in this batch is still `new`, so a message only adds itself, as
                    // `lifecycle::customer_message` does for a new ticket.
                    Entry::Created { updated_at, events, .. } => {
                        events.push(NewTicketEvent {
                            kind: TicketEventKind::CustomerMessage,
                            actor: None,
                            body: msg.text.to_owned(),
                            at: now,
                        });
                        *updated_at = now;
                    }
                }
                i
            }
            None => {
                let (new, events) = lifecycle::new_ticket(&msg, now, &self.ticketing.policy)?;
                let i = self.entries.len();
                opened = new.first_response_due_at;
                self.entries.push(Entry::Created { updated_at: new.at, new, events });
                self.open.insert(key, Some(i));
                i
            }
        };
        Ok(PendingTicket { index: self.written.len() + at, opened })
    }

    /// Writes everything filed since the last write. Afterwards [`TicketBatch::id`] knows every handle given so
    /// far, and the batch reads the tickets again when next needed.
    pub async fn write(&mut self) -> Result<(), TicketError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let mut writes = TicketWrites::default();
        // Each entry's id: known (a stored ticket), or the index of a new one among `writes.created`.
        let mut ids_of: Vec<Result<TicketId, usize>> = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            match entry {
                Entry::Stored { read, change } => {
                    ids_of.push(Ok(read.id));
                    if change.ticket != **read || !change.events.is_empty() {
                        writes.changed.push(change.ticket.clone());
                        writes.events.extend(change.events.iter().map(|e| (TicketRef::Stored(read.id), e.clone())));
                    }
                }
                Entry::Created { new, updated_at, events } => {
                    let c = writes.created.len();
                    ids_of.push(Err(c));
                    writes.created.push(CreatedTicket { new: new.clone(), updated_at: *updated_at });
                    writes.events.extend(events.iter().map(|e| (TicketRef::Created(c), e.clone())));
                }
            }
        }
        let Some(ids) = self.ticketing.store.write_tickets(&writes).await? else {
            return Err(contended(None));
        };
        self.written.extend(ids_of.into_iter().map(|id| id.unwrap_or_else(|c| ids[c])));
        self.entries.clear();
        self.open.clear();
        Ok(())
    }

    /// The id of the ticket behind `handle`, once written.
    pub fn id(&self, handle: PendingTicket) -> Option<TicketId> {
        self.written.get(handle.index).copied()
    }
}
