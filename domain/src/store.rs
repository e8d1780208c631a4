//! The storage port: everything webcare keeps, as one trait over domain types.
//!
//! `webcare-storage` implements it on SQLite and PostgreSQL and one contract suite checks both. The logic crates
//! take a `&dyn Store` and never see how it is kept.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    Agent, AgentId, ClusterId, Conversation, ConversationId, Customer, CustomerId, Inbound, InboundId, Inserted,
    NewAgent, NewCluster, NewConversation, NewCustomer, NewInbound, NewNotice, NewOutbox, NewTicket, Notice,
    NoticeChange, NoticeId, NoticeVersion, OutageCluster, OutboxId, OutboxItem, OutboxState, Platform, Priority,
    Ticket, TicketEvent, TicketEventKind, TicketId, TicketState, Timestamp,
};

/// What a storage call can fail with. Callers act on the variant.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// A uniqueness rule refused the write (an agent name taken, say).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database could not be reached or answered with a transient error; retrying later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Stored data that cannot be read back as a domain value (an unknown state word, bad JSON).
    #[error("stored data is invalid: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    /// Whether the same call may succeed when tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a conversation is subscribed to: a notice's updates, or an outage cluster until it becomes a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionTarget {
    Notice(NoticeId),
    Cluster(ClusterId),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub conversation: ConversationId,
    pub customer: Option<CustomerId>,
    pub target: SubscriptionTarget,
    pub created_at: Timestamp,
    /// The language the subscriber asked in (`nl`, `en`): a notice's updates reach them in it where the notice has
    /// a text in it. `None` gets the notice's default text.
    pub language: Option<String>,
}

impl Subscription {
    /// A subscription in no particular language.
    pub fn new(
        conversation: ConversationId,
        customer: Option<CustomerId>,
        target: SubscriptionTarget,
        created_at: Timestamp,
    ) -> Self {
        Subscription { conversation, customer, target, created_at, language: None }
    }

    pub fn in_language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Answers when the database does; used by `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// Starts a unit of work: a store whose every call is part of one transaction until [`Unit::commit`] makes all
    /// of it durable at once, so that many messages' writes cost one commit. Other writers may wait while a unit is
    /// open: keep it short. A unit cannot start another.
    async fn begin(&self) -> StoreResult<Arc<dyn Unit>>;

    /// Asks every running instance to do `name` again (`bridge-data`: read the bridge's data files); `by` says who
    /// asked. Returns the request's generation, one more than the last.
    async fn request_reload(&self, name: &str, by: &str, at: Timestamp) -> StoreResult<i64>;
    /// The generation of the latest request to do `name` again, 0 when none was made; an instance that saw a
    /// lower one does it.
    async fn reload_generation(&self, name: &str) -> StoreResult<i64>;
    /// Takes or renews the lease `name` for `holder` until `until`; true when `holder` has it now. A lease held by
    /// another holder is taken only once it has run out, so one process at a time does the job, and another takes
    /// over within one lease period when the holder dies.
    async fn acquire_lease(&self, name: &str, holder: &str, now: Timestamp, until: Timestamp) -> StoreResult<bool>;
    /// Gives the lease up at once (on a clean shutdown), so another process need not wait for it to run out.
    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()>;

    // Customers and conversations.

    /// Stores a customer once per platform user; a later call updates the display name.
    async fn upsert_customer(&self, new: NewCustomer, at: Timestamp) -> StoreResult<Customer>;
    /// [`Store::upsert_customer`] for many at once, in one statement; the customers in the order given (the same
    /// user twice gets the same customer, with the last display name).
    async fn upsert_customers(&self, new: &[NewCustomer], at: Timestamp) -> StoreResult<Vec<Customer>>;
    async fn customer(&self, id: CustomerId) -> StoreResult<Customer>;
    async fn set_customer_unreachable(&self, id: CustomerId, unreachable: bool) -> StoreResult<()>;
    /// Stores a conversation once per platform chat; a later call updates the title.
    async fn upsert_conversation(&self, new: NewConversation, at: Timestamp) -> StoreResult<Conversation>;
    /// [`Store::upsert_conversation`] for many at once, in one statement; the conversations in the order given.
    async fn upsert_conversations(&self, new: &[NewConversation], at: Timestamp) -> StoreResult<Vec<Conversation>>;
    async fn conversation(&self, id: ConversationId) -> StoreResult<Conversation>;
    async fn conversation_by_chat(
        &self,
        platform: Platform,
        platform_chat_id: &str,
    ) -> StoreResult<Option<Conversation>>;
    /// Marks a conversation as refusing delivery for good, or as reachable again when the customer writes.
    /// A new unguessable token that stands for `ticket`, for a link that continues the case in a private chat.
    async fn create_private_link(&self, ticket: crate::TicketId, token: &str, at: Timestamp) -> StoreResult<()>;
    /// The ticket a private-link token stands for.
    async fn resolve_private_link(&self, token: &str) -> StoreResult<Option<crate::TicketId>>;
    /// Moves a ticket to another conversation (the private chat its customer continued in); replies go there.
    async fn move_ticket(&self, ticket: crate::TicketId, conversation: ConversationId) -> StoreResult<()>;
    async fn set_conversation_unreachable(&self, id: ConversationId, unreachable: bool) -> StoreResult<()>;
    /// Follows a chat that moved (a Telegram group that became a supergroup) to its new platform id.
    async fn move_conversation(&self, id: ConversationId, new_platform_chat_id: &str) -> StoreResult<()>;
    /// The conversation's messages both ways in time order: inbound messages and outbox rows (sent or not).
    async fn transcript(&self, id: ConversationId) -> StoreResult<(Vec<crate::InboundMessage>, Vec<OutboxItem>)>;

    // Inbound messages.

    /// Stores a message once: a second call with the same platform and platform message id returns the stored one.
    async fn insert_inbound(&self, new: NewInbound) -> StoreResult<Inbound>;
    /// [`Store::insert_inbound`] for many at once; ids follow the order given. A message given twice is `New` the
    /// first time and `Existing` the second.
    async fn insert_inbound_many(&self, new: &[NewInbound]) -> StoreResult<Vec<Inbound>>;
    /// Applies an edit; returns the updated message, or `None` when the message is not stored.
    async fn edit_inbound(
        &self,
        platform: Platform,
        platform_message_id: &str,
        text: &str,
        at: Timestamp,
    ) -> StoreResult<Option<crate::InboundMessage>>;
    /// Marks a message deleted (its text is kept for the ticket's history); false when it is not stored.
    async fn delete_inbound(&self, platform: Platform, platform_message_id: &str, at: Timestamp) -> StoreResult<bool>;
    async fn set_decision(&self, id: InboundId, decision: &serde_json::Value) -> StoreResult<()>;
    /// [`Store::set_decision`] for many messages at once, in one statement; each decision as JSON text (a batch
    /// serialises its decisions straight to text, without building a `serde_json::Value` first).
    async fn set_decisions(&self, decisions: &[(InboundId, String)]) -> StoreResult<()>;
    async fn inbound(&self, id: InboundId) -> StoreResult<crate::InboundMessage>;
    /// Messages stored after `after`, oldest first, at most `limit`: what a restart replays into the bridge.
    async fn inbound_after(&self, after: InboundId, limit: u32) -> StoreResult<Vec<crate::InboundMessage>>;
    /// Messages stored without a decision yet, after `after`, oldest first: what an instance that does not decide
    /// left to the one that does.
    async fn inbound_undecided(&self, after: InboundId, limit: u32) -> StoreResult<Vec<crate::InboundMessage>>;
    /// Tells every instance on the database that a message was stored undecided (PostgreSQL's `NOTIFY`; nothing on
    /// SQLite).
    async fn announce_undecided(&self) -> StoreResult<()>;
    /// Waits until some instance announces an undecided message, or for `timeout`; returns early on PostgreSQL only.
    async fn await_undecided(&self, timeout: std::time::Duration);
    /// Saves the bridge's state as of the message `last`, replacing the previous snapshot.
    async fn save_engine_snapshot(&self, state: &str, last: InboundId, at: Timestamp) -> StoreResult<()>;
    /// The latest snapshot of the bridge's state and the message it ends with.
    async fn engine_snapshot(&self) -> StoreResult<Option<(String, InboundId)>>;

    // Notices.

    /// Creates a notice with its first version.
    async fn create_notice(&self, new: NewNotice) -> StoreResult<Notice>;
    /// Applies a change as a new version and returns the notice as it now stands.
    async fn update_notice(&self, id: NoticeId, change: NoticeChange, at: Timestamp) -> StoreResult<Notice>;
    async fn notice(&self, id: NoticeId) -> StoreResult<Notice>;
    /// Every notice, newest first; only the active ones (not draft, not resolved) when `active_only`.
    async fn notices(&self, active_only: bool) -> StoreResult<Vec<Notice>>;
    /// A notice's versions, oldest first.
    async fn notice_versions(&self, id: NoticeId) -> StoreResult<Vec<NoticeVersion>>;
    /// Stores a change that waits for approval, replacing the notice's earlier one.
    async fn propose_notice_change(&self, proposal: &crate::NoticeProposal) -> StoreResult<()>;
    /// The change that waits for approval, if any.
    async fn notice_proposal(&self, id: NoticeId) -> StoreResult<Option<crate::NoticeProposal>>;
    /// Drops the waiting change (approved, or withdrawn); false when there was none.
    async fn drop_notice_proposal(&self, id: NoticeId) -> StoreResult<bool>;

    // Outage clusters and subscriptions.

    async fn create_cluster(&self, new: NewCluster) -> StoreResult<OutageCluster>;
    async fn cluster(&self, id: ClusterId) -> StoreResult<OutageCluster>;
    /// Open clusters, oldest first.
    async fn open_clusters(&self) -> StoreResult<Vec<OutageCluster>>;
    /// Records the cluster's member count and latest activity.
    async fn touch_cluster(&self, id: ClusterId, members: i64, at: Timestamp) -> StoreResult<()>;
    async fn set_cluster_alerted(&self, id: ClusterId, members: i64) -> StoreResult<()>;
    /// Stores a cluster under the id the bridge gave it, or updates its members, times and state.
    async fn save_cluster(&self, cluster: &OutageCluster) -> StoreResult<()>;
    /// [`Store::save_cluster`] for many clusters in one statement; a cluster given twice is saved as its last.
    async fn save_clusters(&self, clusters: &[OutageCluster]) -> StoreResult<()>;
    async fn insert_alert(&self, alert: &crate::SpikeAlert) -> StoreResult<crate::SpikeAlert>;
    async fn alert(&self, id: crate::AlertId) -> StoreResult<crate::SpikeAlert>;
    /// Spike alerts, newest first.
    async fn alerts(&self) -> StoreResult<Vec<crate::SpikeAlert>> {
        self.alerts_since(chrono::DateTime::<chrono::Utc>::MIN_UTC).await
    }
    /// Spike alerts raised at or after `since`, newest first.
    async fn alerts_since(&self, since: Timestamp) -> StoreResult<Vec<crate::SpikeAlert>>;
    /// Claims up to `limit` alerts whose webhook post is due (pending with `next_attempt_at <= now`, or sending
    /// with a lapsed lease), oldest due first, for `worker` until `now + lease`, and counts an attempt. Alerts
    /// claimed by one caller are not returned to another until the lease lapses, on either backend and across
    /// processes. Every alert starts pending: the notifier posts it, or marks it skipped when no webhook serves
    /// its service.
    async fn claim_alert_webhooks(
        &self,
        worker: &str,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> StoreResult<Vec<(crate::SpikeAlert, crate::AlertWebhook)>>;
    /// Records that the webhook `route` accepted the alert. Only the worker holding the claim can; false otherwise.
    async fn mark_alert_posted(
        &self,
        id: crate::AlertId,
        worker: &str,
        route: &str,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Gives the alert back for another attempt at `next_attempt_at`, recording why this one failed.
    async fn mark_alert_retry(
        &self,
        id: crate::AlertId,
        worker: &str,
        route: &str,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> StoreResult<bool>;
    /// Records that the alert will not be posted: refused for good, or retried until webcare gave up.
    async fn mark_alert_failed(&self, id: crate::AlertId, worker: &str, route: &str, error: &str) -> StoreResult<bool>;
    /// Records that no webhook serves the alert's service (`reason` says so); admins see it in the console only.
    async fn mark_alert_skipped(&self, id: crate::AlertId, worker: &str, reason: &str) -> StoreResult<bool>;
    /// Where the alert's webhook post stands.
    async fn alert_webhook(&self, id: crate::AlertId) -> StoreResult<crate::AlertWebhook>;
    /// Every alert's webhook state, in the order of [`Store::alerts`].
    async fn alert_webhooks(&self) -> StoreResult<Vec<crate::AlertWebhook>>;
    /// Ends a cluster: `Noticed` with the notice it became (its subscribers move to the notice), or `Expired`.
    async fn close_cluster(&self, id: ClusterId, notice: Option<NoticeId>, at: Timestamp) -> StoreResult<()>;

    /// Subscribes a conversation; false when it already was (its first subscription's language stays).
    async fn subscribe(&self, subscription: &Subscription) -> StoreResult<bool>;
    /// [`Store::subscribe`] for many in one statement; returns how many were new.
    async fn subscribe_many(&self, subscriptions: &[Subscription]) -> StoreResult<u64>;
    /// Ends every subscription of a conversation (`/stop`) and, in the same transaction, cancels the notice
    /// messages not yet sent to it (pending, or claimed by a worker that has not sent them: the worker checks a
    /// notice row again just before sending), so a broadcast under way sends it nothing more. Returns how many
    /// subscriptions there were.
    async fn unsubscribe_all(&self, conversation: ConversationId) -> StoreResult<u64>;
    async fn subscribers(&self, target: SubscriptionTarget) -> StoreResult<Vec<Subscription>>;
    async fn subscriptions_of(&self, conversation: ConversationId) -> StoreResult<Vec<Subscription>>;
    /// How many conversations follow `target`, per platform (for a paid broadcast's cost estimate).
    async fn subscriber_counts(&self, target: SubscriptionTarget) -> StoreResult<Vec<(Platform, i64)>>;

    // Tickets.

    /// Creates a ticket with its `created` event.
    async fn create_ticket(&self, new: NewTicket) -> StoreResult<Ticket>;
    async fn ticket(&self, id: TicketId) -> StoreResult<Ticket>;
    /// Tickets in the given states (all when empty), by due time then age.
    async fn tickets(&self, states: &[TicketState]) -> StoreResult<Vec<Ticket>>;
    /// The customer's ticket on this conversation that is not closed, if any.
    async fn open_ticket(&self, conversation: ConversationId, customer: CustomerId) -> StoreResult<Option<Ticket>>;
    /// [`Store::open_ticket`] for many conversation and customer pairs in one statement (pairs without an open
    /// ticket are left out).
    async fn open_tickets(&self, pairs: &[(ConversationId, CustomerId)]) -> StoreResult<Vec<Ticket>>;
    async fn add_ticket_event(
        &self,
        ticket: TicketId,
        kind: TicketEventKind,
        actor: Option<AgentId>,
        body: &str,
        at: Timestamp,
    ) -> StoreResult<TicketEvent>;
    async fn ticket_events(&self, ticket: TicketId) -> StoreResult<Vec<TicketEvent>>;
    /// Changes the state (a new version, like every change to a ticket) and records a `state_changed` event in the
    /// same transaction.
    async fn set_ticket_state(
        &self,
        ticket: TicketId,
        state: TicketState,
        actor: Option<AgentId>,
        at: Timestamp,
    ) -> StoreResult<Ticket>;

    // Agents.

    async fn create_agent(&self, new: NewAgent) -> StoreResult<Agent>;
    async fn agent(&self, id: AgentId) -> StoreResult<Agent>;
    async fn agent_by_name(&self, name: &str) -> StoreResult<Option<Agent>>;
    async fn agents(&self) -> StoreResult<Vec<Agent>>;
    /// Stores the hash of an API token for an agent. The token itself is never stored.
    async fn add_api_token(&self, agent: AgentId, token_hash: &str, at: Timestamp) -> StoreResult<()>;
    /// The active agent a token hash belongs to.
    async fn agent_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Agent>>;
    /// Stores the hash of a code with which `agent` may link a chat account (Telegram, Discord) until
    /// `expires_at`. The code itself is never stored.
    async fn add_chat_link_code(
        &self,
        agent: AgentId,
        code_hash: &str,
        expires_at: Timestamp,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Redeems a code that is still valid at `at`, at most once: deletes it and links the chat account (`platform`,
    /// `user_id`) to its agent, in place of any agent the account was linked to. `None` when no valid code has that
    /// hash.
    async fn redeem_chat_link_code(
        &self,
        code_hash: &str,
        platform: crate::Platform,
        user_id: &str,
        at: Timestamp,
    ) -> StoreResult<Option<AgentId>>;
    /// The active agent a chat account is linked to.
    async fn agent_by_chat_account(&self, platform: crate::Platform, user_id: &str) -> StoreResult<Option<Agent>>;
    /// The chat accounts linked to an agent, as (platform, user id), the first linked first.
    async fn chat_accounts(&self, agent: AgentId) -> StoreResult<Vec<(crate::Platform, String)>>;
    /// Unlinks a chat account from `agent`; false when it was not linked to that agent.
    async fn unlink_chat_account(&self, agent: AgentId, platform: crate::Platform, user_id: &str) -> StoreResult<bool>;

    // The outbox.

    /// Queues something to send. A key queued before returns the existing row unchanged.
    async fn enqueue(&self, new: NewOutbox, at: Timestamp) -> StoreResult<Inserted<OutboxItem>>;
    /// Queues many rows in one transaction (a broadcast's fan-out); keys queued before are skipped. Returns how
    /// many rows were new.
    async fn enqueue_many(&self, rows: &[NewOutbox], at: Timestamp) -> StoreResult<u64>;
    async fn outbox_item(&self, id: OutboxId) -> StoreResult<OutboxItem>;
    /// The row queued under an idempotency key, if any.
    async fn outbox_by_key(&self, key: &str) -> StoreResult<Option<OutboxItem>>;
    /// Claims up to `limit` rows that are due (pending with `next_attempt_at <= now`, or sending with a lapsed
    /// lease), highest priority first, for `worker` until `now + lease`. Rows claimed by one caller are not
    /// returned to another until the lease lapses, on either backend and across processes.
    async fn claim_outbox(
        &self,
        worker: &str,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>> {
        self.claim_outbox_from(worker, now, lease, limit, Priority(i64::MIN), Priority(i64::MAX)).await
    }
    /// [`Store::claim_outbox`] for rows with `min_priority <= priority < below_priority` only: the express lane
    /// sends people's answers while the main lane sends broadcasts.
    async fn claim_outbox_from(
        &self,
        worker: &str,
        now: Timestamp,
        lease: Duration,
        limit: u32,
        min_priority: Priority,
        below_priority: Priority,
    ) -> StoreResult<Vec<OutboxItem>>;
    /// Records that the platform accepted the row. Only the worker holding the claim can; false otherwise.
    async fn mark_sent(
        &self,
        id: OutboxId,
        worker: &str,
        platform_message_id: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Gives the row back for another attempt at `next_attempt_at`, recording why this one failed.
    async fn mark_retry(
        &self,
        id: OutboxId,
        worker: &str,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> StoreResult<bool>;
    /// Records that the row will never be sent (refused for good).
    async fn mark_failed(&self, id: OutboxId, worker: &str, error: &str) -> StoreResult<bool>;
    /// Cancels a row that has not been claimed yet; false when it is already claimed or final.
    async fn cancel_outbox(&self, id: OutboxId) -> StoreResult<bool>;
    /// How many rows are in each state.
    async fn outbox_counts(&self) -> StoreResult<Vec<(OutboxState, i64)>>;
    /// The work waiting in the database (`/metrics`), the same from every instance: see [`WorkCounts`].
    async fn work_counts(&self, now: Timestamp) -> StoreResult<WorkCounts>;
    /// How many rows whose idempotency key starts with `prefix` are in each state, and how many of them were sent
    /// at or after `sent_since` (a broadcast's progress and rate).
    async fn outbox_progress(&self, prefix: &str, sent_since: Timestamp)
    -> StoreResult<(Vec<(OutboxState, i64)>, i64)>;
    /// Reserves `count` consecutive send slots, `interval` apart, in the budget `bucket` that every instance on
    /// this database shares (one per bot and limit, such as `telegram:global`); returns when the first slot is.
    /// The slots are the caller's alone: however many instances reserve at once, the reserved slots of a bucket
    /// never come closer than `interval`, so the bot stays within its limit in total.
    async fn reserve_send_slots(
        &self,
        bucket: &str,
        count: u32,
        interval: Duration,
        now: Timestamp,
    ) -> StoreResult<Timestamp>;
    /// Reserves no slot of the budget `bucket` before `until`, for every instance: the platform answered one with
    /// a 429 for the whole bot, so none may send before its `retry_after` is over. An earlier `until` than the
    /// budget's next free slot changes nothing.
    async fn hold_send_budget(&self, bucket: &str, until: Timestamp) -> StoreResult<()>;
    /// Cancels the rows not yet sent (pending, or claimed and not yet sent) whose key starts with `prefix` but not
    /// with `keep` (older notice versions that a newer one supersedes); returns how many.
    async fn cancel_outbox_prefix(&self, prefix: &str, keep: &str) -> StoreResult<u64>;

    // Ticketing (lifecycle, claims, SLA).

    /// Creates a ticket with its `created` event and `events`, unless the customer already has a ticket on this
    /// conversation that is not closed: then that one is returned unchanged and nothing is written. Two calls at
    /// once for the same customer and conversation create one ticket, across processes.
    async fn create_ticket_unless_open(
        &self,
        new: NewTicket,
        events: &[crate::NewTicketEvent],
    ) -> StoreResult<Inserted<crate::TicketWrite>>;
    /// Writes every changeable field of `ticket` and records `events`, in one transaction, if the stored
    /// version is still `ticket.version`; the written ticket has the next version. `None` when the stored
    /// ticket changed since it was read (read it again and decide again); `NotFound` when there is none.
    async fn update_ticket(
        &self,
        ticket: &Ticket,
        events: &[crate::NewTicketEvent],
    ) -> StoreResult<Option<crate::TicketWrite>>;
    /// Writes a batch of ticket changes: the new tickets, the changed ones (compare-and-set on their versions,
    /// as [`Store::update_ticket`]) and the events. Returns the new tickets' ids in the order of
    /// `writes.created`, or `None` when a changed ticket's version moved on or a new ticket's customer has an open
    /// ticket on that conversation by now; then part of the batch may be written, so call it inside a unit of
    /// work ([`Store::begin`]) and roll the unit back on `None`.
    async fn write_tickets(&self, writes: &crate::TicketWrites) -> StoreResult<Option<Vec<TicketId>>>;
    /// Claims a ticket in one conditional write: it succeeds when nobody holds the claim, the agent holds it
    /// already, or the holder's claim has lapsed. A `new` ticket becomes `open` and the claimer its assignee.
    /// Of any number of concurrent claimers, on either backend and across processes, exactly one succeeds
    /// and the others learn who holds it.
    async fn claim_ticket(&self, claim: &crate::TicketClaim) -> StoreResult<crate::ClaimOutcome>;
    /// Tickets matching the filter, by due time (undated last), then age.
    async fn find_tickets(&self, filter: &crate::TicketFilter) -> StoreResult<Vec<Ticket>>;

    // Console sessions.

    /// Stores a console login session (under the hash of its cookie value).
    async fn create_session(&self, session: &crate::ConsoleSession) -> StoreResult<()>;
    /// The session stored under `id_hash`, unless it expired at or before `now`.
    async fn session(&self, id_hash: &str, now: Timestamp) -> StoreResult<Option<crate::ConsoleSession>>;
    /// Ends one session (logout); ending one that is gone is no error.
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Ends every session of an agent (deactivated, role or password changed); returns how many.
    async fn delete_agent_sessions(&self, agent: AgentId) -> StoreResult<u64>;
    /// Removes the sessions that expired at or before `now`; returns how many.
    async fn delete_expired_sessions(&self, now: Timestamp) -> StoreResult<u64>;
    /// Failed console logins under `key` at or after `since`, counted over every instance: how many, and when the
    /// oldest of them was.
    async fn login_failures(&self, key: &str, since: Timestamp) -> StoreResult<(u64, Option<Timestamp>)>;
    /// Records a failed login under `key`, and forgets every key's failures before `forget_before`.
    async fn record_login_failure(&self, key: &str, at: Timestamp, forget_before: Timestamp) -> StoreResult<()>;
    /// Forgets the failed logins under `key` (after a login that succeeded).
    async fn clear_login_failures(&self, key: &str) -> StoreResult<()>;
    async fn set_agent_role(&self, id: AgentId, role: crate::Role) -> StoreResult<Agent>;
    async fn set_agent_active(&self, id: AgentId, active: bool) -> StoreResult<Agent>;
    async fn set_agent_password(&self, id: AgentId, password_hash: &str) -> StoreResult<Agent>;
    /// Creates a canned reply; `Conflict` when its title is taken.
    async fn create_canned_reply(
        &self,
        title: &str,
        body: &str,
        by: Option<AgentId>,
        at: Timestamp,
    ) -> StoreResult<crate::CannedReply>;
    async fn update_canned_reply(
        &self,
        id: crate::CannedReplyId,
        title: &str,
        body: &str,
        at: Timestamp,
    ) -> StoreResult<crate::CannedReply>;
    async fn delete_canned_reply(&self, id: crate::CannedReplyId) -> StoreResult<()>;
    async fn canned_reply(&self, id: crate::CannedReplyId) -> StoreResult<crate::CannedReply>;
    /// Every canned reply, by title.
    async fn canned_replies(&self) -> StoreResult<Vec<crate::CannedReply>>;
    /// Records an admin's change to a lexicon term; one for the same language, group and term is replaced (its id
    /// stays). Returns the stored change.
    async fn put_lexicon_change(
        &self,
        language: &str,
        group: &str,
        term: &str,
        edit: crate::TermEdit,
        author: Option<AgentId>,
        at: Timestamp,
    ) -> StoreResult<crate::LexiconChange>;
    /// Forgets a change (the data files' word holds again); false when there was none.
    async fn delete_lexicon_change(&self, id: crate::LexiconChangeId) -> StoreResult<bool>;
    /// Every lexicon change, oldest first: the order they are applied in.
    async fn lexicon_changes(&self) -> StoreResult<Vec<crate::LexiconChange>>;
    /// Messages received at or after `since`, oldest first, at most `limit`: what the reports count.
    async fn inbound_since(&self, since: Timestamp, limit: u32) -> StoreResult<Vec<crate::InboundMessage>>;
    /// The messages `filter` lets through, newest first, at most `limit`: the admins' list of what webcare decided
    /// and why.
    async fn inbound_page(&self, filter: &crate::InboundFilter, limit: u32) -> StoreResult<Vec<crate::InboundMessage>>;
}

/// A unit of work from [`Store::begin`]. Use it as a [`Store`] (an `Arc<dyn Unit>` coerces to `Arc<dyn Store>`),
/// then commit it or roll it back; dropped without either, it rolls back.
#[async_trait]
pub trait Unit: Store {
    /// Makes everything done through this unit durable, at once.
    async fn commit(&self) -> StoreResult<()>;
    /// Undoes everything done through this unit.
    async fn rollback(&self) -> StoreResult<()>;
    /// Marks the point [`Unit::rollback_to_mark`] goes back to (a savepoint); a later mark replaces it.
    async fn mark(&self) -> StoreResult<()>;
    /// Undoes what was done through this unit since its mark and keeps the unit open, with the work before the
    /// mark in it and the mark still set. Also the way out of a statement that failed inside the unit: on
    /// PostgreSQL a failed statement spoils the rest of its transaction, up to the last savepoint.
    async fn rollback_to_mark(&self) -> StoreResult<()>;
}

/// The work waiting in the database, as `/metrics` reports it for alerting (a decider that stopped, a queue past its
/// due times).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkCounts {
    /// Messages stored and not decided yet: near 0 while an instance decides.
    pub undecided: i64,
    /// Tickets per state, every state listed.
    pub tickets: Vec<(crate::TicketState, i64)>,
    /// New and open tickets whose due time has passed.
    pub overdue: i64,
    /// Notices that customers are answered from now (published, not resolved).
    pub active_notices: i64,
    /// Outage clusters still waiting for a notice.
    pub open_clusters: i64,
}
