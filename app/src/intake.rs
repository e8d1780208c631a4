//! The intake pipeline: every customer event from every platform goes through [`Pipeline::receive`].
//!
//! An event is stored first (once: a redelivered event finds its stored row and stops there), then the bridge
//! decides, then the decision is carried out — a subscription, an answer in the outbox, a ticket — and stored with
//! its reasons. The bridge's state is snapshotted to the database every `snapshot_every` messages and on shutdown;
//! on start the last snapshot is loaded and the messages after it are replayed, so a restart loses nothing.
//! Messages that were stored but never decided (a crash in between) are decided on replay.
//!
//! Decisions are made one at a time behind one lock: the bridge is a state machine, and its clusters and flood
//! counters must see messages in one order. Storing the message happens under the same lock, so that message ids
//! follow that order and "replay everything after the snapshot" is exact.
//!
//! Plain messages go through in batches (group commit): one task takes every message waiting, stores them all in
//! one unit of work ([`Store::begin`]), marks that point ([`Unit::mark`]), decides them in order, carries out all
//! decisions in the same unit with one statement per kind of write, and commits once, so that a burst of messages
//! costs one durable commit instead of several per message. A caller's answer comes only after the commit. When
//! storing fails, the unit is rolled back and the messages are done one by one; when carrying out fails, the unit
//! goes back to its mark, the stored messages are committed and their decisions carried out one by one, so one bad
//! message costs its batch neighbours nothing. When the commit fails, nothing is stored: the engine, which has seen
//! the batch, is rebuilt from the database before the messages go through again. Commands, edits, deletions and buttons go one by one, in their place
//! in the arrival order. The bridge's classification needs no state, so each caller classifies its own message
//! before handing it to the batching task: callers do that in parallel, on every core.
//!
//! With several instances on one database, one decides at a time: the holder of the [`DECIDER_LEASE`]. The others
//! store what reaches them (adapters acknowledge once it is stored) and leave the deciding to the holder, which
//! picks up undecided messages every `catch_up_every`. An instance that takes the lease over loads the last
//! snapshot and replays the messages after it, as on a restart, so the bridge's clusters, ids and counters stay
//! one state machine. The lease's holder name is the instance's own (`IntakeConfig::instance`), so an instance
//! restarted after a crash holds its lease again at once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use chrono::Utc;
use serde_json::json;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use webcare_bridge::engine::{Action, Decision, Engine, EngineConfig, EngineState, Incoming, LocalDue, Output};
use webcare_bridge::{Classification, Classifier};
use webcare_domain::{
    Conversation, ConversationId, ConversationKind, Customer, CustomerId, InboundEvent, InboundId, InboundKind,
    InboundMessage, Intake, IntakeError, IntakeOutcome, NewConversation, NewCustomer, NewInbound, NewOutbox,
    OutageCluster, Priority, SpikeAlert, Store, StoreError, StoreResult, Subscription, SubscriptionTarget,
    TicketEventKind, TicketId, TicketState, Timestamp, Unit, say,
};
use webcare_ticketing::{CustomerMessage, PendingTicket, TicketBatch, TicketError, Ticketing};

/// The reload request (`Store::request_reload`) that asks every running instance to read the bridge's data files
/// again and hand them to its pipeline ([`Pipeline::reload_classifier`]): `webcare reload` and the console make it.
pub const RELOAD_BRIDGE_DATA: &str = "bridge-data";

/// Callback data of the button under automatic answers; `talk_to_person:nl` (or `:en`) says in which language
/// the button was offered, so that what follows its press speaks that language.
pub const TALK_TO_PERSON: &str = "talk_to_person";

/// The callback data of a "talk to a person" button offered in `language`.
pub fn talk_to_person(language: Option<&str>) -> String {
    match language {
        Some(l @ ("nl" | "en")) => format!("{TALK_TO_PERSON}:{l}"),
        _ => TALK_TO_PERSON.to_owned(),
    }
}

/// Whether a button's callback data is a "talk to a person" press, and in which language it was offered (empty
/// when it does not say one webcare speaks, as a button sent before buttons said it).
fn talk_to_person_pressed(data: &str) -> Option<&str> {
    let rest = data.strip_prefix(TALK_TO_PERSON)?;
    if rest.is_empty() {
        return Some("");
    }
    let language = rest.strip_prefix(':')?;
    Some(if ["nl", "en"].contains(&language) { language } else { "" })
}

/// The lease that says which instance decides.
pub const DECIDER_LEASE: &str = "bridge-decider";

#[derive(Debug, Clone)]
pub struct IntakeConfig {
    pub engine: EngineConfig,
    /// Save the bridge's state after this many decisions, and no more often than `snapshot_interval`: the
    /// state holds every customer active in the last flood window, so during a burst a save costs more than a
    /// batch of messages. A restart replays the messages after the last save.
    pub snapshot_every: u32,
    pub snapshot_interval: std::time::Duration,
    /// This instance's name as the holder of the [`DECIDER_LEASE`]: unique among the instances on one database,
    /// and the same after a restart.
    pub instance: String,
    /// How long the decider's lease holds without a renewal (renewed every third of it): how long messages wait
    /// when the deciding instance dies.
    pub decider_lease: std::time::Duration,
    /// How often the deciding instance looks for messages that others stored.
    pub catch_up_every: std::time::Duration,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            engine: EngineConfig::default(),
            snapshot_every: 200,
            snapshot_interval: std::time::Duration::from_secs(1),
            instance: "webcare".to_owned(),
            decider_lease: std::time::Duration::from_secs(10),
            catch_up_every: std::time::Duration::from_millis(250),
        }
    }
}

struct Decider {
    engine: Engine,
    /// The last message the engine has seen.
    last: InboundId,
    since_snapshot: u32,
    snapshot_at: std::time::Instant,
    /// How long the last save took: saves keep to a small share of the decider's time as the state grows.
    snapshot_cost: std::time::Duration,
}

impl Decider {
    fn new(engine: Engine, last: InboundId) -> Self {
        Decider {
            engine,
            last,
            since_snapshot: 0,
            snapshot_at: std::time::Instant::now(),
            snapshot_cost: std::time::Duration::ZERO,
        }
    }
}

/// The decider's time between two saves of the bridge's state, as a multiple of what the last save took: saving
/// costs at most about 5 % of the decider's time however large the state (a burst's many customers, a large
/// outage's members).
const SNAPSHOT_SPACING: u32 = 20;

/// Messages taken in one batch at most.
const MAX_BATCH: usize = 256;

pub struct Pipeline {
    core: Arc<Core>,
    /// Events on their way to the batching task, in arrival order.
    batches: mpsc::UnboundedSender<Job>,
}

struct Core {
    store: Arc<dyn Store>,
    /// The engine's classifier, for classifying messages before they reach the decider's lock; replaced as a whole
    /// when an admin reloads the bridge's data (`Pipeline::reload_classifier`).
    classifier: std::sync::RwLock<Arc<Classifier>>,
    ticketing: Ticketing,
    decider: Mutex<Decider>,
    config: IntakeConfig,
    /// Wakes the delivery engine when something was queued.
    wake: Arc<Notify>,
    /// Whether this instance holds the decider's lease and its engine is current.
    deciding: AtomicBool,
    /// Until when (Unix milliseconds) the lease holds, as of its last renewal.
    lease_until: AtomicI64,
    /// Set by [`Pipeline::step_down`]: this instance neither decides nor tries for the lease again.
    stepped_down: AtomicBool,
    /// Messages whose deciding failed, with when to try each again: the catch-up retries them with a growing pause
    /// ([`RETRY_FIRST`] doubling up to [`RETRY_MOST`]), so a passing failure heals by itself and one that stays
    /// costs a try now and then instead of every `catch_up_every`.
    retries: std::sync::Mutex<HashMap<InboundId, Retry>>,
}

/// A message whose deciding failed: how often, and when the catch-up tries it again.
#[derive(Clone, Copy, Debug)]
struct Retry {
    failures: u32,
    next: std::time::Instant,
}

/// The pause before a failed message is first tried again.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest pause between two tries of a message that keeps failing.
const RETRY_MOST: std::time::Duration = std::time::Duration::from_secs(300);

/// Where a decision's effects are written: the store itself, or a unit of work on it.
struct Ctx {
    store: Arc<dyn Store>,
    ticketing: Ticketing,
    /// In a batch, the writes kept for one statement each at the batch's end ([`Ctx::flush`]); `None`: each at
    /// once.
    batch: Option<Mutex<Pending>>,
}

/// A batch's writes not yet made, in the order [`Ctx::flush`] makes them (alerts and subscriptions name their
/// clusters, decisions their tickets).
struct Pending {
    clusters: Vec<OutageCluster>,
    alerts: Vec<SpikeAlert>,
    subscriptions: Vec<Subscription>,
    tickets: TicketBatch,
    outbox: Vec<NewOutbox>,
    decisions: Vec<(InboundId, Record, Option<Filed>)>,
}

/// A decision to store with its message; its ticket is added when the decision is stored.
enum Record {
    /// The bridge's decision as JSON text without its closing brace (and without the ticket, which a batch knows
    /// only once its tickets are written): serialised once, straight from the decision, with no `Value` in between.
    Decision(String),
    Other(serde_json::Value),
}

/// The fields of a bridge decision that are stored with the message, borrowed from the decision.
#[derive(serde::Serialize)]
struct DecisionRecord<'a> {
    action: Action,
    intent: webcare_bridge::Intent,
    category: webcare_bridge::Category,
    service: webcare_domain::Service,
    region: &'a Option<String>,
    pii: &'a [String],
    cluster: Option<webcare_domain::ClusterId>,
    notice: Option<webcare_domain::NoticeId>,
    merged: bool,
    reasons: &'a [webcare_bridge::Reason],
}

impl Record {
    fn decision(d: &Decision) -> Record {
        let record = DecisionRecord {
            action: d.action,
            intent: d.intent,
            category: d.category,
            service: d.service,
            region: &d.region,
            pii: &d.pii,
            cluster: d.cluster,
            notice: d.notice,
            merged: d.merged,
            reasons: &d.reasons,
        };
        let mut text = serde_json::to_string(&record).expect("a decision serialises");
        // An object's text ends with its closing brace; the ticket goes in before it.
        text.pop();
        Record::Decision(text)
    }

    /// The record as JSON text, with its ticket.
    fn text(self, ticket: Option<TicketId>) -> String {
        match self {
            Record::Decision(mut text) => {
                text.push_str(",\"ticket\":");
                match ticket {
                    Some(id) => text.push_str(&id.0.to_string()),
                    None => text.push_str("null"),
                }
                text.push('}');
                text
            }
            Record::Other(mut value) => {
                if let Some(id) = ticket {
                    value["ticket"] = json!(id);
                }
                value.to_string()
            }
        }
    }
}

/// Where a message was filed: a ticket, or (in a batch) a ticket whose id is known once the batch is written.
#[derive(Debug, Clone, Copy)]
enum Filed {
    /// `opened`: when the first answer is due, if the message opened the ticket.
    Ticket {
        id: TicketId,
        opened: Option<Timestamp>,
    },
    Pending(PendingTicket),
}

impl Filed {
    /// When the message opened the ticket, rather than joining the customer's open one: when its first answer is
    /// due.
    fn opened(self) -> Option<Timestamp> {
        match self {
            Filed::Ticket { opened, .. } => opened,
            Filed::Pending(handle) => handle.opened(),
        }
    }
}

impl Ctx {
    fn plain(store: Arc<dyn Store>, ticketing: Ticketing) -> Ctx {
        Ctx { store, ticketing, batch: None }
    }

    /// A batch on the unit of work `unit`, with the open tickets of `pairs` read at once.
    async fn batch(
        unit: Arc<dyn Store>,
        ticketing: &Ticketing,
        pairs: &[(ConversationId, CustomerId)],
    ) -> StoreResult<Ctx> {
        let ticketing = ticketing.on(unit.clone());
        let tickets = ticketing.batch(pairs).await.map_err(ticket_error)?;
        let pending = Pending {
            clusters: Vec::new(),
            alerts: Vec::new(),
            subscriptions: Vec::new(),
            tickets,
            outbox: Vec::new(),
            decisions: Vec::new(),
        };
        Ok(Ctx { store: unit, ticketing, batch: Some(Mutex::new(pending)) })
    }

    /// In a batch, hands `value` to `keep` for [`Ctx::flush`] and answers `None`; outside one, gives it back to be
    /// written now.
    async fn kept<T>(&self, value: T, keep: impl FnOnce(&mut Pending, T)) -> Option<T> {
        match &self.batch {
            Some(p) => {
                keep(&mut *p.lock().await, value);
                None
            }
            None => Some(value),
        }
    }

    async fn save_cluster(&self, cluster: OutageCluster) -> StoreResult<()> {
        match self.kept(cluster, |p, c| p.clusters.push(c)).await {
            Some(cluster) => self.store.save_cluster(&cluster).await,
            None => Ok(()),
        }
    }

    async fn insert_alert(&self, alert: SpikeAlert) -> StoreResult<()> {
        if let Some(alert) = self.kept(alert, |p, a| p.alerts.push(a)).await {
            log_alert(&self.store.insert_alert(&alert).await?);
        }
        Ok(())
    }

    async fn subscribe(&self, subscription: Subscription) -> StoreResult<()> {
        match self.kept(subscription, |p, s| p.subscriptions.push(s)).await {
            Some(s) => self.store.subscribe(&s).await.map(|_| ()),
            None => Ok(()),
        }
    }

    async fn enqueue(&self, new: NewOutbox) -> StoreResult<()> {
        match self.kept(new, |p, n| p.outbox.push(n)).await {
            Some(new) => {
                let at = new.not_before;
                self.store.enqueue(new, at).await.map(|_| ())
            }
            None => Ok(()),
        }
    }

    /// The state of the customer's ticket on this conversation that is not closed, if any.
    async fn open_ticket_state(
        &self,
        conversation: &Conversation,
        customer: &Customer,
    ) -> StoreResult<Option<TicketState>> {
        match &self.batch {
            Some(p) => p.lock().await.tickets.open_state(conversation.id, customer.id).await.map_err(ticket_error),
            None => Ok(self.store.open_ticket(conversation.id, customer.id).await?.map(|t| t.state)),
        }
    }

    async fn file(&self, msg: CustomerMessage<'_>, at: Timestamp) -> StoreResult<Filed> {
        match &self.batch {
            Some(p) => {
                Ok(Filed::Pending(p.lock().await.tickets.customer_message(msg, at).await.map_err(ticket_error)?))
            }
            None => {
                let filed = self.ticketing.open_or_append(msg, at).await.map_err(ticket_error)?;
                let opened = filed.ticket.first_response_due_at.filter(|_| filed.created);
                Ok(Filed::Ticket { id: filed.ticket.id, opened })
            }
        }
    }

    /// The id of the ticket a message was filed to; in a batch, its tickets are written first.
    async fn ticket_id(&self, filed: Filed) -> StoreResult<TicketId> {
        match (filed, &self.batch) {
            (Filed::Ticket { id, .. }, _) => Ok(id),
            (Filed::Pending(handle), Some(p)) => {
                let mut p = p.lock().await;
                p.tickets.write().await.map_err(ticket_error)?;
                p.tickets.id(handle).ok_or_else(|| StoreError::Other("a batch's ticket was not written".into()))
            }
            (Filed::Pending(_), None) => Err(StoreError::Other("a pending ticket outside a batch".into())),
        }
    }

    async fn set_decision(&self, id: InboundId, record: Record, ticket: Option<Filed>) -> StoreResult<()> {
        let Some((id, record, ticket)) = self.kept((id, record, ticket), |p, d| p.decisions.push(d)).await else {
            return Ok(());
        };
        let ticket = match ticket {
            Some(filed) => Some(self.ticket_id(filed).await?),
            None => None,
        };
        self.store.set_decisions(&[(id, record.text(ticket))]).await
    }

    /// Makes a batch's pending writes, one statement for each kind (the tickets' take a few); nothing outside a
    /// batch.
    async fn flush(&self) -> StoreResult<()> {
        let Some(p) = &self.batch else { return Ok(()) };
        let mut p = p.lock().await;
        let p = &mut *p;
        self.store.save_clusters(&std::mem::take(&mut p.clusters)).await?;
        for alert in std::mem::take(&mut p.alerts) {
            log_alert(&self.store.insert_alert(&alert).await?);
        }
        self.store.subscribe_many(&std::mem::take(&mut p.subscriptions)).await?;
        p.tickets.write().await.map_err(ticket_error)?;
        let outbox = std::mem::take(&mut p.outbox);
        if let Some(at) = outbox.iter().map(|o| o.not_before).min() {
            self.store.enqueue_many(&outbox, at).await?;
        }
        let mut decisions = Vec::with_capacity(p.decisions.len());
        for (id, record, filed) in std::mem::take(&mut p.decisions) {
            let ticket = match filed {
                Some(Filed::Ticket { id, .. }) => Some(id),
                Some(Filed::Pending(handle)) => p.tickets.id(handle),
                None => None,
            };
            decisions.push((id, record.text(ticket)));
        }
        self.store.set_decisions(&decisions).await
    }
}

fn ticket_error(e: TicketError) -> StoreError {
    match e {
        TicketError::Store(e) => e,
        // Only store failures are expected here; anything else is a bug worth seeing in the logs as one.
        e => StoreError::Other(format!("open or append a ticket: {e}")),
    }
}

fn log_alert(alert: &SpikeAlert) {
    tracing::warn!(alert = %alert.id, cluster = %alert.cluster, service = %alert.service,
        region = alert.region.as_deref().unwrap_or("-"), count = alert.count, "spike alert");
}

/// An event waiting for the batching task, and where its outcome goes.
struct Job {
    event: InboundEvent,
    /// The event's text classified by the caller's task, in parallel with the batching task (`None`: not a plain
    /// message).
    class: Option<Classification>,
    done: oneshot::Sender<Result<IntakeOutcome, IntakeError>>,
}

/// A message of a batch once stored and still to be decided (`None` in a batch's list: seen and decided before).
struct Stored {
    message: InboundMessage,
    conversation: Conversation,
    customer: Customer,
}

/// A stored message with the bridge's output for it, until the output is carried out.
struct Decided {
    index: usize,
    message: InboundMessage,
    conversation: Conversation,
    customer: Customer,
    /// `None`: nothing to decide (no text and no attachment).
    output: Option<Output>,
}

fn unavailable(e: StoreError) -> IntakeError {
    IntakeError::Unavailable(e.to_string())
}

impl Pipeline {
    /// Loads the bridge's last snapshot and replays the messages stored after it.
    pub async fn start(
        store: Arc<dyn Store>,
        ticketing: Ticketing,
        classifier: Arc<Classifier>,
        config: IntakeConfig,
        wake: Arc<Notify>,
    ) -> StoreResult<Pipeline> {
        let engine = Engine::with_state(config.engine.clone(), classifier.clone(), EngineState::default());
        let core = Arc::new(Core {
            store,
            classifier: std::sync::RwLock::new(classifier),
            ticketing,
            decider: Mutex::new(Decider::new(engine, InboundId(0))),
            config,
            wake,
            deciding: AtomicBool::new(false),
            lease_until: AtomicI64::new(0),
            stepped_down: AtomicBool::new(false),
            retries: Default::default(),
        });
        if core.renew_lease().await? {
            if let Err(e) = core.take_over().await {
                // A message that cannot be decided must not keep webcare from starting: it is put off, and the lease
                // loop takes over again without it.
                tracing::warn!(error = %e, "could not restore the bridge; trying again");
                core.deciding.store(false, Ordering::Release);
            }
        } else {
            tracing::info!("another instance decides; this one stores what reaches it and leaves the deciding to it");
        }
        let (batches, jobs) = mpsc::unbounded_channel();
        // Ends when the pipeline is dropped (its sender with it) and the last batch is done.
        tokio::spawn(batcher(core.clone(), jobs));
        // Ends when the batching task has ended.
        tokio::spawn(lead(Arc::downgrade(&core)));
        Ok(Pipeline { core, batches })
    }

    /// Decides now what other instances stored (the deciding instance also does so every `catch_up_every`); how many
    /// messages it decided. Does nothing on an instance that does not decide.
    pub async fn catch_up(&self) -> StoreResult<usize> {
        self.core.catch_up().await
    }

    /// Gives the decider's lease up for good (on shutdown, after the last snapshot), so another instance takes over
    /// at once; from then on this instance only stores what reaches it.
    pub async fn step_down(&self) -> StoreResult<()> {
        self.core.stepped_down.store(true, Ordering::Release);
        let _d = self.core.decider.lock().await;
        if self.core.deciding.swap(false, Ordering::AcqRel) {
            self.core.store.release_lease(DECIDER_LEASE, &self.core.config.instance).await?;
        }
        Ok(())
    }

    /// Saves the bridge's state now.
    pub async fn snapshot(&self) -> StoreResult<()> {
        self.core.snapshot().await
    }

    /// Advances the bridge's clock: clusters whose grace period ended become tickets.
    pub async fn tick(&self, now: Timestamp) -> StoreResult<usize> {
        self.core.tick(now).await
    }

    /// A notice was published from a cluster: the cluster closes and its members are the notice's subscribers.
    pub async fn publish_from_cluster(
        &self,
        cluster: webcare_domain::ClusterId,
        notice: webcare_domain::NoticeId,
    ) -> StoreResult<()> {
        self.core.publish_from_cluster(cluster, notice).await
    }

    /// Classifies every later message with `classifier` (the bridge's data files read again): the messages waiting
    /// for the decider and those after them. Clusters, notices, flood counters and what was decided stay as they are.
    pub async fn reload_classifier(&self, classifier: Arc<Classifier>) {
        let mut d = self.core.decider.lock().await;
        *self.core.classifier.write().expect("not poisoned") = classifier.clone();
        d.engine.set_classifier(classifier);
    }

    /// The open clusters an active notice covers close into it; see `Core::adopt_clusters`.
    pub async fn adopt_clusters(&self, notice: &webcare_domain::Notice, now: Timestamp) -> StoreResult<usize> {
        self.core.adopt_clusters(notice, now).await
    }
}

/// Keeps the decider's lease (or waits for it) and, while this instance decides, decides what other instances
/// stored.
async fn lead(core: Weak<Core>) {
    let (renew_every, catch_up_every, mut wait) = match core.upgrade() {
        Some(core) => {
            (core.config.decider_lease / 3, core.config.catch_up_every, core.holds_lease().then(|| core.store.clone()))
        }
        None => return,
    };
    let mut renewed = tokio::time::Instant::now();
    loop {
        // The decider wakes early when another instance announces a message it stored (PostgreSQL's NOTIFY).
        match wait.take() {
            Some(store) => store.await_undecided(catch_up_every.min(renew_every)).await,
            None => tokio::time::sleep(catch_up_every.min(renew_every)).await,
        }
        let Some(core) = core.upgrade() else { return };
        if core.stepped_down.load(Ordering::Acquire) {
            return;
        }
        if renewed.elapsed() >= renew_every {
            renewed = tokio::time::Instant::now();
            match core.renew_lease().await {
                Ok(true) if !core.deciding.load(Ordering::Acquire) => {
                    tracing::info!(instance = %core.config.instance, "this instance takes over deciding");
                    if let Err(e) = core.take_over().await {
                        tracing::warn!(error = %e, "could not take over deciding; trying again");
                    }
                }
                Ok(true) => {}
                Ok(false) => {
                    if core.deciding.swap(false, Ordering::AcqRel) {
                        tracing::warn!("another instance took the decider's lease; this one only stores now");
                    }
                }
                // Without a renewal the lease runs out by itself (`holds_lease`), before another may take it.
                Err(e) => tracing::warn!(error = %e, "could not renew the decider's lease"),
            }
        }
        if core.holds_lease() {
            if let Err(e) = core.catch_up().await {
                tracing::warn!(error = %e, "could not decide the messages other instances stored");
            }
            wait = Some(core.store.clone());
        }
    }
}

/// Takes every event waiting (up to [`MAX_BATCH`]) and puts them through in arrival order: runs of plain messages
/// together, anything else (a command, a button, an edit) on its own between them.
async fn batcher(core: Arc<Core>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut waiting = vec![first];
        while waiting.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => waiting.push(job),
                Err(_) => break,
            }
        }
        let mut run: Vec<Job> = Vec::new();
        for job in waiting {
            if job.event.kind == InboundKind::Message {
                run.push(job);
                continue;
            }
            receive_run(&core, std::mem::take(&mut run)).await;
            let outcome = core.receive_one(job.event).await;
            // The caller may have gone (a cancelled request); its event is stored and decided all the same.
            let _ = job.done.send(outcome);
        }
        receive_run(&core, run).await;
    }
}

async fn receive_run(core: &Core, run: Vec<Job>) {
    if run.is_empty() {
        return;
    }
    let mut events = Vec::with_capacity(run.len());
    let mut classes = Vec::with_capacity(run.len());
    let mut done = Vec::with_capacity(run.len());
    for job in run {
        events.push(job.event);
        classes.push(job.class);
        done.push(job.done);
    }
    let outcomes = core.receive_batch(events, classes).await;
    for (done, outcome) in done.into_iter().zip(outcomes) {
        let _ = done.send(outcome);
    }
}

impl Core {
    fn plain(&self) -> Ctx {
        Ctx::plain(self.store.clone(), self.ticketing.clone())
    }

    /// Takes or renews the decider's lease; true when this instance holds it now.
    async fn renew_lease(&self) -> StoreResult<bool> {
        let now = Utc::now();
        let until = now + self.config.decider_lease;
        let held = self.store.acquire_lease(DECIDER_LEASE, &self.config.instance, now, until).await?;
        if held {
            self.lease_until.store(until.timestamp_millis(), Ordering::Release);
        }
        Ok(held)
    }

    /// Whether this instance may decide: it holds the lease, with a fifth of the lease period to spare, so that it
    /// stops before another instance can take the lease over.
    fn holds_lease(&self) -> bool {
        let spare = i64::try_from((self.config.decider_lease / 5).as_millis()).unwrap_or(i64::MAX);
        self.deciding.load(Ordering::Acquire)
            && Utc::now().timestamp_millis().saturating_add(spare) < self.lease_until.load(Ordering::Acquire)
    }

    /// The classifier now (an admin may reload it).
    fn core_classifier(&self) -> Arc<Classifier> {
        self.classifier.read().expect("not poisoned").clone()
    }

    /// Makes this instance's engine current, as on a restart: the last snapshot, then the messages after it (those
    /// still undecided are decided), then what other instances stored before it.
    async fn take_over(&self) -> StoreResult<()> {
        {
            let mut d = self.decider.lock().await;
            self.restore(&mut d).await?;
            self.deciding.store(true, Ordering::Release);
        }
        self.catch_up().await?;
        Ok(())
    }

    /// Rebuilds the engine from what the database holds: the last snapshot and the messages stored after it. Returns
    /// the snapshot's position (the last message it counts).
    async fn restore(&self, d: &mut Decider) -> StoreResult<InboundId> {
        let (state, last) = match self.store.engine_snapshot().await? {
            Some((json, last)) => match serde_json::from_str::<EngineState>(&json) {
                Ok(state) => (state, last),
                Err(e) => {
                    // A snapshot from an older version that no longer reads: rebuild from all messages.
                    tracing::warn!(error = %e, "the bridge snapshot does not read; rebuilding from every message");
                    (EngineState::default(), InboundId(0))
                }
            },
            None => (EngineState::default(), InboundId(0)),
        };
        let engine = Engine::with_state(self.config.engine.clone(), self.core_classifier(), state);
        *d = Decider::new(engine, last);
        self.replay_after(d, last).await?;
        Ok(last)
    }

    /// After deciding `failed` went wrong: the engine has counted the messages, but their decisions are not stored.
    /// They are put off for the catch-up to try again, and the engine is rebuilt from the database without them, so
    /// that a retried question is not a repost of itself (and gets its holding answer). Until it is rebuilt, this
    /// instance only stores; the lease loop rebuilds it as a take-over.
    ///
    /// Returns the rebuilt engine's snapshot position, or `None` when the rebuild failed.
    async fn recover(
        &self,
        d: &mut Decider,
        failed: &[InboundId],
        error: &(dyn std::fmt::Display + Sync),
    ) -> Option<InboundId> {
        for &id in failed {
            let pause = self.put_off(id);
            tracing::warn!(%error, message = %id, ?pause, "could not decide a message; it is tried again later");
        }
        match self.restore(d).await {
            Ok(snapshot) => Some(snapshot),
            Err(e) => {
                tracing::warn!(error = %e, "could not rebuild the bridge after a failed decision");
                self.deciding.store(false, Ordering::Release);
                None
            }
        }
    }

    /// Puts a message whose deciding failed off: the pause before its next try, doubled with every failure.
    fn put_off(&self, id: InboundId) -> std::time::Duration {
        let mut retries = self.retries.lock().expect("not poisoned");
        let failures = retries.get(&id).map_or(0, |r| r.failures).saturating_add(1);
        let pause = RETRY_FIRST.saturating_mul(1 << (failures - 1).min(16)).min(RETRY_MOST);
        retries.insert(id, Retry { failures, next: std::time::Instant::now() + pause });
        pause
    }

    /// Whether a message was put off ([`Core::put_off`]) and its next try is not due.
    fn put_off_now(&self, id: InboundId) -> bool {
        self.retries.lock().expect("not poisoned").get(&id).is_some_and(|r| r.next > std::time::Instant::now())
    }

    /// A message was decided: a pause it had is forgotten.
    fn decided(&self, id: InboundId) {
        let mut retries = self.retries.lock().expect("not poisoned");
        if !retries.is_empty() {
            retries.remove(&id);
        }
    }

    /// Decides the messages stored without a decision: by other instances, or by this one when deciding failed.
    async fn catch_up(&self) -> StoreResult<usize> {
        let mut decided = 0;
        let mut after = InboundId(0);
        // The put-off messages this pass saw still undecided.
        let mut waiting = HashSet::new();
        loop {
            let mut d = self.decider.lock().await;
            if !self.holds_lease() {
                return Ok(decided);
            }
            let page = self.store.inbound_undecided(after, 500).await?;
            let Some(last) = page.last() else {
                // The pass saw every undecided message: a pause kept for one decided otherwise (a redelivery's
                // batch) is dropped.
                self.retries.lock().expect("not poisoned").retain(|id, _| waiting.contains(id));
                return Ok(decided);
            };
            after = last.id;
            // A message stored by another instance may be older than what this one decided last: the snapshot's "the
            // messages after it" would leave it out on a restart, so a snapshot follows at once.
            let mut behind = Vec::new();
            for message in page {
                // A message whose deciding failed waits for its next try.
                if left_to_its_instance(&message) {
                    continue;
                }
                if self.put_off_now(message.id) {
                    waiting.insert(message.id);
                    continue;
                }
                let outcome: StoreResult<_> = async {
                    let conversation = self.store.conversation(message.conversation).await?;
                    let customer = self.store.customer(message.customer).await?;
                    if message.text.trim().is_empty() && message.attachments.is_empty() {
                        let record = Record::Other(json!({"action": "ignore", "reasons": ["empty"]}));
                        self.plain().set_decision(message.id, record, None).await?;
                    } else {
                        self.decide(&self.plain(), &mut d, &message, &conversation, &customer, "").await?;
                    }
                    Ok((conversation, customer))
                }
                .await;
                match outcome {
                    Ok((conversation, customer)) => {
                        self.decided(message.id);
                        decided += 1;
                        if message.id < d.last {
                            behind.push((message, conversation, customer));
                        }
                    }
                    Err(e) => {
                        waiting.insert(message.id);
                        if let Some(snapshot) = self.recover(&mut d, &[message.id], &e).await {
                            // The rebuild starts from the snapshot, which does not count the messages this page
                            // decided out of order: they are counted again, and saved in the snapshot below.
                            let notices = self.store.notices(true).await?;
                            for (m, conversation, customer) in behind.iter().filter(|(m, ..)| m.id <= snapshot) {
                                if !m.text.trim().is_empty() || !m.attachments.is_empty() {
                                    d.engine.process(&incoming(m, conversation, customer, ""), &notices);
                                }
                            }
                        }
                        // The rebuild may have decided later messages of this page (those after the snapshot): the
                        // next page starts after the failed message, from what is still undecided.
                        after = message.id;
                        break;
                    }
                }
            }
            if !behind.is_empty() && self.holds_lease() {
                self.snapshot_locked(self.store.as_ref(), &mut d).await?;
            }
            drop(d);
            self.wake.notify_one();
        }
    }

    /// Replays the messages after `after` into the engine (those still undecided are decided), with the decider
    /// held throughout, so that nothing is decided on a half-rebuilt state.
    async fn replay_after(&self, d: &mut Decider, mut after: InboundId) -> StoreResult<()> {
        let mut replayed = 0usize;
        let mut decided = 0usize;
        loop {
            let batch = self.store.inbound_after(after, 500).await?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            // Notices change rarely; one read serves a whole batch of replayed messages.
            let notices = self.store.notices(true).await?;
            for message in batch {
                // A message whose deciding failed is tried by the catch-up, when its pause is over.
                let put_off = || self.retries.lock().expect("not poisoned").contains_key(&message.id);
                if message.decision.is_none() && (left_to_its_instance(&message) || put_off()) {
                    continue;
                }
                let conversation = self.store.conversation(message.conversation).await?;
                let customer = self.store.customer(message.customer).await?;
                if message.decision.is_some() {
                    // Decided before the restart: only rebuild the engine's state.
                    let incoming = incoming(&message, &conversation, &customer, "");
                    d.engine.process(&incoming, &notices);
                    d.last = message.id;
                    replayed += 1;
                } else {
                    if let Err(e) = self.decide(&self.plain(), d, &message, &conversation, &customer, "").await {
                        // Left out of the next rebuild, which the caller's retry makes.
                        self.put_off(message.id);
                        return Err(e);
                    }
                    decided += 1;
                }
            }
        }
        if replayed + decided > 0 {
            tracing::info!(replayed, decided, "bridge state restored from the messages after its snapshot");
        }
        Ok(())
    }

    /// Saves the bridge's state now.
    pub async fn snapshot(&self) -> StoreResult<()> {
        let mut d = self.decider.lock().await;
        if !self.holds_lease() {
            // Another instance's engine is the current one; this one's would overwrite its snapshot.
            return Ok(());
        }
        self.snapshot_locked(self.store.as_ref(), &mut d).await
    }

    fn snapshot_due(&self, d: &Decider) -> bool {
        d.since_snapshot >= self.config.snapshot_every
            && d.snapshot_at.elapsed() >= self.config.snapshot_interval.max(d.snapshot_cost * SNAPSHOT_SPACING)
    }

    async fn snapshot_locked(&self, store: &dyn Store, d: &mut Decider) -> StoreResult<()> {
        let started = std::time::Instant::now();
        let state = serde_json::to_string(d.engine.state()).expect("the bridge state serialises");
        store.save_engine_snapshot(&state, d.last, Utc::now()).await?;
        d.since_snapshot = 0;
        d.snapshot_at = std::time::Instant::now();
        d.snapshot_cost = started.elapsed();
        Ok(())
    }

    /// Advances the bridge's clock: clusters whose grace period ended become tickets.
    pub async fn tick(&self, now: Timestamp) -> StoreResult<usize> {
        let mut d = self.decider.lock().await;
        if !self.holds_lease() {
            return Ok(0);
        }
        let expired = d.engine.tick(now);
        let n = expired.len();
        self.expire(&self.plain(), &expired).await?;
        Ok(n)
    }

    /// A notice was published from a cluster: the cluster closes and its members are the notice's subscribers.
    /// The store first: when closing fails, the bridge still has the cluster, which then expires into tickets as
    /// usual rather than leaving its members waiting.
    pub async fn publish_from_cluster(
        &self,
        cluster: webcare_domain::ClusterId,
        notice: webcare_domain::NoticeId,
    ) -> StoreResult<()> {
        let mut d = self.decider.lock().await;
        let closed = self.store.close_cluster(cluster, Some(notice), Utc::now()).await;
        if matches!(closed, Ok(()) | Err(StoreError::NotFound { .. })) {
            d.engine.publish_notice(cluster, notice);
        }
        closed
    }

    /// A notice became active (created, approved, or its scope changed): the open clusters it covers close into
    /// it, and their members become its subscribers, as when it is published from a cluster. Only the decider
    /// knows the open clusters; on another instance this does nothing, and the decider's clock does it (see
    /// `Notices::adopt_waiting`). Returns how many clusters closed into the notice.
    pub async fn adopt_clusters(&self, notice: &webcare_domain::Notice, now: Timestamp) -> StoreResult<usize> {
        let mut d = self.decider.lock().await;
        if !self.holds_lease() {
            return Ok(0);
        }
        let mut adopted = 0;
        for cluster in d.engine.clusters_covered_by(notice) {
            match self.store.close_cluster(cluster, Some(notice.id), now).await {
                Ok(()) => adopted += 1,
                // Closed already (into another notice, or expired after a restart from an older snapshot).
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            d.engine.publish_notice(cluster, notice.id);
        }
        Ok(adopted)
    }

    /// Decides one message and carries the decision out through `ctx`, saving a snapshot when one is due.
    async fn decide(
        &self,
        ctx: &Ctx,
        d: &mut Decider,
        message: &InboundMessage,
        conversation: &Conversation,
        customer: &Customer,
        account: &str,
    ) -> StoreResult<Action> {
        let notices = ctx.store.notices(true).await?;
        let output = d.engine.process(&incoming(message, conversation, customer, account), &notices);
        let action = self.carry_out(ctx, d, message, conversation, customer, &output).await?;
        if self.snapshot_due(d) {
            self.snapshot_locked(ctx.store.as_ref(), d).await?;
        }
        Ok(action)
    }

    /// Carries out what the bridge decided for `message` — subscription, ticket, answer, alerts — and stores the
    /// decision with its reasons.
    async fn carry_out(
        &self,
        ctx: &Ctx,
        d: &mut Decider,
        message: &InboundMessage,
        conversation: &Conversation,
        customer: &Customer,
        output: &Output,
    ) -> StoreResult<Action> {
        self.expire(ctx, &output.expired).await?;
        let decision = &output.decision;

        if let Some(cluster_id) = decision.cluster
            && let Some(members) = d.engine.cluster_customers(cluster_id)
            && let Some(cluster) = d.engine.cluster(cluster_id)
        {
            ctx.save_cluster(stored_cluster(cluster, members)).await?;
        }
        if let Some(target) = decision.subscribe {
            let customer = Some(customer.id);
            ctx.subscribe(Subscription {
                conversation: conversation.id,
                customer,
                target,
                created_at: message.received_at,
                // The language of the answer they got: updates follow in it.
                language: decision.reply.as_ref().map(|r| r.language.clone()),
            })
            .await?;
        }
        let mut ticket = None;
        if matches!(decision.action, Action::Ticket | Action::MovePrivate) {
            let filed = self.open_or_append(ctx, conversation, customer, message, decision.category.as_str()).await?;
            ticket = Some(filed);
            // A new case is acknowledged, so the customer knows a person will answer here; a message that joins
            // an open case is part of a conversation with an agent and gets no automatic answer.
            if decision.action == Action::Ticket
                && decision.reply.is_none()
                && let Some(due) = filed.opened()
            {
                // With when a person is expected to answer, on the team's clock (the SLA's time zone).
                let zone = self.ticketing.policy().sla.timezone;
                let due = LocalDue {
                    at: due.with_timezone(&zone).naive_local(),
                    today: message.received_at.with_timezone(&zone).date_naive(),
                };
                let ack = d.engine.case_opened(decision, Some(due));
                let extra = json!({"language": ack.language});
                self.enqueue(
                    ctx,
                    conversation,
                    &format!("reply:{}", message.id),
                    &ack.text,
                    extra,
                    Priority::AUTOMATIC,
                )
                .await?;
            }
        } else if decision.action == Action::Ignore && !message.attachments.is_empty() {
            // A photo, document or sticker on its own (a broken modem, an invoice) is for a person: it is referenced
            // in the customer's ticket and acknowledged.
            ticket = Some(self.open_or_append(ctx, conversation, customer, message, "other").await?);
            if decision.reply.is_none() {
                // A file shows no language: in the platform's for the customer, where it gives one. (Not the one
                // they last wrote in, as a command's answer is: in a burst taken together, the decisions of their
                // earlier messages are not stored yet, and the burst must be answered as one by one.)
                let text = say(
                    message.language.as_deref(),
                    "We hebben je bestand ontvangen; een medewerker bekijkt het.",
                    "We received your file; a person will look at it.",
                );
                self.enqueue(
                    ctx,
                    conversation,
                    &format!("reply:{}", message.id),
                    &text,
                    json!({}),
                    Priority::AUTOMATIC,
                )
                .await?;
            }
        } else if decision.action == Action::Ignore && ctx.open_ticket_state(conversation, customer).await?.is_some() {
            // "Thanks, I'll wait" to an agent is part of the case, not chit-chat: it joins the open ticket (and
            // reopens it when it was pending or solved).
            ticket = Some(self.open_or_append(ctx, conversation, customer, message, decision.category.as_str()).await?);
        } else if matches!(decision.action, Action::AutoAnswer | Action::HoldAndSubscribe)
            && ctx.open_ticket_state(conversation, customer).await?.is_some_and(|s| s != TicketState::Solved)
        {
            // A customer who is talking to a person is heard by that person: an outage question (or a customer
            // number given beside one) in the middle of a case joins the case too, and a pending case opens again.
            // The notice or the cluster answers it as it answers anyone. A solved case stays solved: an outage
            // answered automatically is no reason to reopen it.
            ticket = Some(self.open_or_append(ctx, conversation, customer, message, decision.category.as_str()).await?);
        }
        if let Some(reply) = &decision.reply {
            let mut extra = json!({"language": reply.language});
            // "Something else? Talk to a person" only for someone who is not talking to one already.
            if matches!(decision.action, Action::AutoAnswer | Action::HoldAndSubscribe) && ticket.is_none() {
                let data = talk_to_person(Some(&reply.language));
                extra["buttons"] = json!([{"text": talk_to_person_label(&reply.language), "data": data}]);
            }
            if decision.action == Action::MovePrivate
                && let Some(filed) = ticket
            {
                // The adapter continues in private (a Telegram deep link, a Discord DM) with this link token, and
                // may delete the public message; the answer itself never repeats what the customer wrote.
                let ticket = ctx.ticket_id(filed).await?;
                let link = new_link_token();
                ctx.store.create_private_link(ticket, &link, message.received_at).await?;
                extra["move_private"] = json!({
                    "ticket": ticket,
                    "link": link,
                    "user": customer.platform_user_id,
                    "message": message.platform_message_id,
                });
            }
            self.enqueue(ctx, conversation, &format!("reply:{}", message.id), &reply.text, extra, Priority::AUTOMATIC)
                .await?;
        }
        // An alert is always about the decision's own cluster, saved above with its new alert count.
        for alert in &output.alerts {
            ctx.insert_alert(SpikeAlert {
                id: webcare_domain::AlertId(0),
                cluster: alert.cluster,
                account: alert.account.clone(),
                service: alert.service,
                region: alert.region.clone(),
                count: alert.count as i64,
                samples: alert.samples.clone(),
                draft: alert.draft.clone(),
                first_at: alert.first_at,
                last_at: alert.last_at,
                created_at: alert.at,
            })
            .await?;
        }
        ctx.set_decision(message.id, Record::decision(decision), ticket).await?;
        d.last = d.last.max(message.id);
        d.since_snapshot += 1;
        Ok(decision.action)
    }

    /// Expired clusters: each member's latest question becomes a ticket, so nobody is left waiting.
    async fn expire(&self, ctx: &Ctx, expired: &[Decision]) -> StoreResult<()> {
        if expired.is_empty() {
            return Ok(());
        }
        // A batch's clusters are written first, so that closing one finds it and no later save reopens it.
        ctx.flush().await?;
        let mut closed = BTreeSet::new();
        let mut noticed = BTreeSet::new();
        for decision in expired {
            let Ok(id) = decision.message.parse::<i64>() else { continue };
            if let Some(cluster) = decision.cluster
                && closed.insert(cluster)
            {
                match ctx.store.close_cluster(cluster, None, decision.at).await {
                    Ok(()) => {}
                    Err(StoreError::NotFound { .. }) => {
                        // Closed already: a notice published from it (perhaps through another instance) answers
                        // its members, who need no ticket.
                        if matches!(ctx.store.cluster(cluster).await, Ok(c) if c.notice.is_some()) {
                            noticed.insert(cluster);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            if decision.cluster.is_some_and(|c| noticed.contains(&c)) {
                continue;
            }
            let message = ctx.store.inbound(InboundId(id)).await?;
            if message.decision.as_ref().is_some_and(|d| d.get("ticket").is_some_and(|t| !t.is_null())) {
                // It joined the customer's case when it came in: a person has it already.
                continue;
            }
            let conversation = ctx.store.conversation(message.conversation).await?;
            let customer = ctx.store.customer(message.customer).await?;
            self.open_or_append(ctx, &conversation, &customer, &message, "outage").await?;
        }
        Ok(())
    }

    /// The customer's open ticket on this conversation gets the message (reopening it when it was pending or
    /// solved); otherwise a new ticket starts with it, with its SLA due times.
    async fn open_or_append(
        &self,
        ctx: &Ctx,
        conversation: &Conversation,
        customer: &Customer,
        message: &InboundMessage,
        category: &str,
    ) -> StoreResult<Filed> {
        let body = with_attachments(message);
        let msg = CustomerMessage {
            conversation: conversation.id,
            customer: customer.id,
            text: &body,
            category,
            priority: None,
        };
        ctx.file(msg, message.received_at).await
    }

    async fn enqueue(
        &self,
        ctx: &Ctx,
        conversation: &Conversation,
        key: &str,
        text: &str,
        extra: serde_json::Value,
        priority: Priority,
    ) -> StoreResult<()> {
        let mut new = NewOutbox::message(conversation.id, text, key, priority, Utc::now());
        new.extra = extra;
        ctx.enqueue(new).await?;
        if ctx.batch.is_none() {
            self.wake.notify_one();
        }
        Ok(())
    }

    async fn command(
        &self,
        ctx: &Ctx,
        conversation: &Conversation,
        customer: &Customer,
        message: &InboundMessage,
        name: &str,
        args: &str,
    ) -> StoreResult<String> {
        // A typed command says no language of its own. The answer is in the language the customer last wrote in
        // here, else the one they were answered in (the outages they follow were answered in it), else the one the
        // platform gives for them; where none is known, in both.
        let followed = ctx.store.subscriptions_of(conversation.id).await?;
        let theirs = crate::messages::language_of(ctx.store.as_ref(), conversation.id, customer.id).await?;
        let known = theirs
            .filter(|l| l.from_text)
            .map(|l| l.language)
            .or_else(|| {
                followed.iter().rev().find_map(|s| s.language.as_deref().and_then(webcare_domain::answer_language))
            })
            .or(message.language.as_deref());
        // A "talk to a person" button says the language it was offered in, which comes first for what its press
        // brings (`/ticket nl`).
        let offered = Some(args.trim()).filter(|l| name == "ticket" && ["nl", "en"].contains(l)).or(known);
        let (action, text) = match name {
            "stop" => {
                let n = ctx.store.unsubscribe_all(conversation.id).await?;
                let text = if n == 0 {
                    say(known, "Je ontvangt geen updates van ons.", "You are not receiving updates from us.")
                } else {
                    say(known, "Je ontvangt geen updates meer.", "You will receive no more updates.")
                };
                ("stop", text)
            }
            "status" => ("status", self.status(ctx, conversation, customer, &followed, known).await?),
            "start" if !args.is_empty() => match ctx.store.resolve_private_link(args.trim()).await? {
                // Only the customer whose case it is continues it: a link seen in a group is no key for others.
                Some(ticket)
                    if conversation.kind == ConversationKind::Private
                        && ctx.store.ticket(ticket).await?.customer == customer.id =>
                {
                    ctx.store.move_ticket(ticket, conversation.id).await?;
                    let note = format!("The customer continued in private chat {}", conversation.platform_chat_id);
                    ctx.store.add_ticket_event(ticket, TicketEventKind::Note, None, &note, message.received_at).await?;
                    (
                        "continue_private",
                        say(
                            known,
                            &format!("We gaan hier verder met je zaak {ticket}."),
                            &format!("We continue your case {ticket} here."),
                        ),
                    )
                }
                _ => ("help", help_text("start", known)),
            },
            "ticket" if conversation.kind == ConversationKind::Public => {
                // A personal case asked for in a group or server channel continues in private, like private data:
                // the adapter opens the private chat (a Telegram deep link, a Discord DM) on the same ticket.
                let filed = self.open_or_append(ctx, conversation, customer, message, "other").await?;
                let ticket = ctx.ticket_id(filed).await?;
                let link = new_link_token();
                ctx.store.create_private_link(ticket, &link, message.received_at).await?;
                let extra = json!({"language": offered, "move_private": {
                    "ticket": ticket,
                    "link": link,
                    "user": customer.platform_user_id,
                    "message": message.platform_message_id,
                }});
                let text = say(
                    offered,
                    "We helpen je verder in een privégesprek.",
                    "We'll help you further in a private chat.",
                );
                self.enqueue(ctx, conversation, &format!("reply:{}", message.id), &text, extra, Priority::AUTOMATIC)
                    .await?;
                return Ok("move_private".to_owned());
            }
            "ticket" => {
                let filed = self.open_or_append(ctx, conversation, customer, message, "other").await?;
                let ticket = ctx.ticket_id(filed).await?;
                let text = say(
                    offered,
                    &format!("Een medewerker neemt je vraag op (zaak {ticket})."),
                    &format!("A person will pick up your question (case {ticket})."),
                );
                ("ticket", text)
            }
            _ => ("help", help_text(name, known)),
        };
        self.enqueue(ctx, conversation, &format!("reply:{}", message.id), &text, json!({}), Priority::AUTOMATIC)
            .await?;
        Ok(action.to_owned())
    }

    /// `/status`: the customer's case and the outages they follow (`followed`), in `language` where known.
    async fn status(
        &self,
        ctx: &Ctx,
        conversation: &Conversation,
        customer: &Customer,
        followed: &[Subscription],
        language: Option<&str>,
    ) -> StoreResult<String> {
        let mut lines = Vec::new();
        match ctx.store.open_ticket(conversation.id, customer.id).await? {
            Some(t) => lines.push(say(
                language,
                &format!("Zaak {}: {}", t.id, t.state),
                &format!("Case {}: {}", t.id, t.state),
            )),
            None => lines.push(say(language, "Geen open zaak.", "No open case.")),
        }
        for sub in followed {
            match sub.target {
                SubscriptionTarget::Notice(id) => {
                    let n = ctx.store.notice(id).await?;
                    lines.push(format!("{} — {}", n.title, n.state));
                }
                SubscriptionTarget::Cluster(_) => lines.push(say(
                    language,
                    "We onderzoeken een mogelijke storing.",
                    "We are looking into a possible outage.",
                )),
            }
        }
        Ok(lines.join("\n"))
    }
}

/// The answer to `/help`, `/start` and an unknown command, in `language` where known (else in both).
fn help_text(name: &str, language: Option<&str>) -> String {
    let mut lines = Vec::new();
    if !["help", "start"].contains(&name) {
        lines.push(say(language, &format!("Onbekend commando /{name}."), &format!("Unknown command /{name}.")));
    }
    lines.push(say(language, "Stel je vraag gewoon in een bericht.", "Just ask your question in a message."));
    for (command, nl, en) in [
        ("status", "je zaak en storingen die je volgt", "your case and the outages you follow"),
        ("stop", "geen updates meer", "no more updates"),
        ("ticket", "een medewerker spreken", "talk to a person"),
    ] {
        lines.push(format!("/{command} — {}", say(language, nl, en)));
    }
    lines.join("\n")
}

/// 128 random bits as 32 hex characters: fits Telegram's `start` parameter (at most 64 of `A-Za-z0-9_-`).
fn new_link_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn talk_to_person_label(language: &str) -> &'static str {
    if language == "en" { "Something else? Talk to a person" } else { "Iets anders? Praat met een medewerker" }
}

fn with_attachments(message: &InboundMessage) -> String {
    if message.attachments.is_empty() {
        message.text.clone()
    } else {
        format!("{}\n[{}]", message.text, message.attachments.join(", ")).trim_start().to_owned()
    }
}

/// The answer language (`nl`, `en`) the platform's language tag for the person names, if any.
fn platform_language(event: &InboundEvent) -> Option<String> {
    event.language.as_deref().and_then(webcare_domain::answer_language).map(str::to_owned)
}

fn incoming(message: &InboundMessage, conversation: &Conversation, customer: &Customer, account: &str) -> Incoming {
    Incoming {
        id: message.id.to_string(),
        customer: customer.id.to_string(),
        conversation: conversation.id.to_string(),
        account: account.to_owned(),
        public: conversation.kind == ConversationKind::Public,
        at: message.received_at,
        text: message.text.clone(),
        // Stored with the message, so that a restart's replay sees what the live decision saw.
        place: message.place.clone(),
        language: message.language.clone(),
    }
}

fn stored_cluster(c: &webcare_bridge::engine::Cluster, members: usize) -> OutageCluster {
    OutageCluster {
        id: c.id,
        account: c.account.clone(),
        service: c.service,
        region: c.region.as_ref().map(|r| r.name.clone()),
        state: c.state,
        members: members as i64,
        alerted_at_members: c.alerted_at_members as i64,
        notice: c.notice,
        first_at: c.first_at,
        last_at: c.last_at,
    }
}

#[async_trait]
impl Intake for Pipeline {
    async fn receive(&self, event: InboundEvent) -> Result<IntakeOutcome, IntakeError> {
        if event.from_bot {
            return Ok(IntakeOutcome { new: false, action: "ignore".into() });
        }
        if event.chat_id.is_empty() || event.user_id.is_empty() || event.message_id.is_empty() {
            return Err(IntakeError::Invalid("chat, user and message ids are required".into()));
        }
        // Classifying is the bridge's costliest step and needs no state: it is done here, on the caller's task, so
        // that callers classify in parallel while the batching task holds the decider. The same call as in
        // `Engine::process`.
        let class = (event.kind == InboundKind::Message)
            .then(|| self.core.core_classifier().classify(&event.text, event.place.as_deref()));
        let (done, outcome) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.batches.send(Job { event, class, done }) {
            // The batching task is gone (the runtime is shutting down): this message goes on its own.
            return self.core.receive_one(job.event).await;
        }
        outcome
            .await
            .map_err(|_| IntakeError::Unavailable("the intake stopped before this message was stored".into()))?
    }

    fn deciding(&self) -> bool {
        self.core.holds_lease()
    }

    fn classify(&self, text: &str, place: Option<&str>) -> Option<serde_json::Value> {
        let class = self.core.core_classifier().classify(text, place);
        Some(crate::messages::classification_record(&class))
    }

    fn lexicon(&self) -> Vec<webcare_domain::LexiconGroup> {
        self.core.core_classifier().lexicon()
    }

    fn read_with_change(
        &self,
        change: &webcare_domain::LexiconChange,
        texts: &[(&str, Option<&str>)],
    ) -> Option<Vec<(serde_json::Value, serde_json::Value)>> {
        let current = self.core.core_classifier();
        crate::lexicon::read_with_change(&current, change, texts)
    }
}

impl Core {
    /// The batch path: one unit of work stores every message, then (after a mark) carries out the decisions made
    /// in order, and commits once. Outcomes come back in the order of `events`.
    async fn receive_batch(
        &self,
        events: Vec<InboundEvent>,
        mut classes: Vec<Option<Classification>>,
    ) -> Vec<Result<IntakeOutcome, IntakeError>> {
        let mut d = self.decider.lock().await;
        if !self.holds_lease() {
            drop(d);
            return self.store_only(&events).await;
        }
        let (unit, stored) = match self.store_batch(&events).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(error = %e, messages = events.len(), "storing a batch failed; taking its messages one by one");
                drop(d);
                return self.one_by_one(events).await;
            }
        };
        let mut outcomes: Vec<Result<IntakeOutcome, IntakeError>> =
            (0..events.len()).map(|_| Ok(IntakeOutcome { new: false, action: "duplicate".into() })).collect();
        let notices = match unit.notices(true).await {
            Ok(notices) => notices,
            Err(e) => {
                // Stored but undecided: decided on redelivery, or by the decider's next catch-up.
                let why = match keep_stored(&*unit).await {
                    Ok(()) => e.to_string(),
                    Err(lost) => format!("{e}; the batch was not stored either: {lost}"),
                };
                return outcomes.iter().map(|_| Err(IntakeError::Unavailable(why.clone()))).collect();
            }
        };
        let mut decided = Vec::new();
        for (index, stored) in stored.into_iter().enumerate() {
            let Some(Stored { message, conversation, customer }) = stored else { continue };
            let output = (!message.text.trim().is_empty() || !message.attachments.is_empty()).then(|| {
                let incoming = incoming(&message, &conversation, &customer, &events[index].account);
                // The caller classified the event's text; a redelivered message keeps what was first stored.
                let event = &events[index];
                match classes[index].take().filter(|_| message.text == event.text && message.place == event.place) {
                    Some(class) => d.engine.handle(&incoming, &class, &notices),
                    None => d.engine.process(&incoming, &notices),
                }
            });
            decided.push(Decided { index, message, conversation, customer, output });
        }
        let carried = self.carry_out_batch(unit.clone(), &mut d, &decided).await;
        let failed = match carried {
            Ok(actions) => match unit.commit().await {
                Ok(()) => {
                    for (item, action) in decided.iter().zip(actions) {
                        outcomes[item.index] = Ok(IntakeOutcome { new: true, action });
                    }
                    self.wake.notify_one();
                    return outcomes;
                }
                Err(e) => {
                    // Nothing of the batch is stored: its messages go through again, one by one, to an engine that
                    // has not seen them (it had decided them all, and would count each twice).
                    tracing::warn!(error = %e, messages = events.len(), "committing a batch failed; taking its messages one by one");
                    if let Err(e) = self.restore(&mut d).await {
                        // Until it is rebuilt, this instance only stores; the lease loop rebuilds it as a take-over.
                        tracing::warn!(error = %e, "could not rebuild the bridge after a failed commit");
                        self.deciding.store(false, Ordering::Release);
                    }
                    drop(d);
                    return self.one_by_one(events).await;
                }
            },
            Err(e) => e,
        };
        // The decisions' writes are undone; the messages stay, and are carried out one by one, so that one bad
        // message costs its neighbours nothing.
        tracing::warn!(error = %failed, messages = decided.len(), "a batch's decisions failed; carrying them out one by one");
        if let Err(e) = keep_stored(&*unit).await {
            tracing::warn!(error = %e, messages = events.len(), "storing a batch failed; taking its messages one by one");
            let _ = unit.rollback().await;
            drop(d);
            return self.one_by_one(events).await;
        }
        let ctx = self.plain();
        let (mut failed, mut error) = (Vec::new(), None);
        for item in &decided {
            let outcome = self.carry_out_one(&ctx, &mut d, item).await;
            if let Err(e) = &outcome {
                failed.push(item.message.id);
                error.get_or_insert_with(|| e.to_string());
            }
            outcomes[item.index] = outcome.map_err(unavailable);
        }
        if let Some(error) = error {
            self.recover(&mut d, &failed, &error).await;
        }
        if self.snapshot_due(&d)
            && let Err(e) = self.snapshot_locked(self.store.as_ref(), &mut d).await
        {
            tracing::warn!(error = %e, "could not save the bridge snapshot");
        }
        self.wake.notify_one();
        outcomes
    }

    /// Another instance decides: the messages are stored, undecided, for it to pick up.
    async fn store_only(&self, events: &[InboundEvent]) -> Vec<Result<IntakeOutcome, IntakeError>> {
        let stored = async {
            let unit = self.store.begin().await?;
            match store_all(&*unit, events).await {
                Ok(stored) => {
                    unit.commit().await?;
                    announce(self.store.as_ref()).await;
                    Ok(stored)
                }
                Err(e) => {
                    let _ = unit.rollback().await;
                    Err(e)
                }
            }
        }
        .await;
        match stored {
            Ok(stored) => stored
                .iter()
                .map(|s| {
                    let (new, action) = if s.is_some() { (true, "stored") } else { (false, "duplicate") };
                    Ok(IntakeOutcome { new, action: action.into() })
                })
                .collect(),
            Err(e) => {
                let why = e.to_string();
                events.iter().map(|_| Err(IntakeError::Unavailable(why.clone()))).collect()
            }
        }
    }

    async fn one_by_one(&self, events: Vec<InboundEvent>) -> Vec<Result<IntakeOutcome, IntakeError>> {
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            outcomes.push(self.receive_one(event).await);
        }
        outcomes
    }

    /// Starts a batch's unit of work with its customers, conversations and messages stored, and marks the point
    /// its decisions' writes can be undone to.
    async fn store_batch(&self, events: &[InboundEvent]) -> StoreResult<(Arc<dyn Unit>, Vec<Option<Stored>>)> {
        let unit = self.store.begin().await?;
        let stored = match store_all(&*unit, events).await {
            Ok(stored) => unit.mark().await.map(|()| stored),
            Err(e) => Err(e),
        };
        match stored {
            Ok(stored) => Ok((unit, stored)),
            Err(e) => {
                let _ = unit.rollback().await;
                Err(e)
            }
        }
    }

    /// Carries out a batch's decisions on `unit`, with the snapshot when one is due; the actions in order. The
    /// caller commits, or rolls back to the mark.
    async fn carry_out_batch(
        &self,
        unit: Arc<dyn Unit>,
        d: &mut Decider,
        decided: &[Decided],
    ) -> StoreResult<Vec<String>> {
        if decided.is_empty() {
            return Ok(Vec::new());
        }
        let actions = self.carry_out_in(unit.clone(), d, decided).await?;
        if self.snapshot_due(d) {
            self.snapshot_locked(&*unit, d).await?;
        }
        Ok(actions)
    }

    /// Carries out a batch's decisions on the unit `unit` and makes their writes; the actions in order.
    async fn carry_out_in(
        &self,
        unit: Arc<dyn Store>,
        d: &mut Decider,
        decided: &[Decided],
    ) -> StoreResult<Vec<String>> {
        let pairs: Vec<_> = decided.iter().map(|item| (item.conversation.id, item.customer.id)).collect();
        let ctx = Ctx::batch(unit, &self.ticketing, &pairs).await?;
        let mut actions = Vec::with_capacity(decided.len());
        for item in decided {
            actions.push(self.carry_out_one(&ctx, d, item).await?.action);
        }
        ctx.flush().await?;
        Ok(actions)
    }

    async fn carry_out_one(&self, ctx: &Ctx, d: &mut Decider, item: &Decided) -> StoreResult<IntakeOutcome> {
        let action = match &item.output {
            Some(output) => {
                let action = self.carry_out(ctx, d, &item.message, &item.conversation, &item.customer, output).await?;
                action.as_str().to_owned()
            }
            None => {
                let record = Record::Other(json!({"action": "ignore", "reasons": ["empty"]}));
                ctx.set_decision(item.message.id, record, None).await?;
                "ignore".to_owned()
            }
        };
        Ok(IntakeOutcome { new: true, action })
    }

    /// The one-by-one path: commands, buttons, edits and deletions, and plain messages whose batch failed.
    async fn receive_one(&self, event: InboundEvent) -> Result<IntakeOutcome, IntakeError> {
        let at = event.at;
        let ctx = self.plain();
        let (customer, conversation) = upsert_sender(self.store.as_ref(), &event).await.map_err(unavailable)?;
        match &event.kind {
            InboundKind::Edited => {
                let edited = self
                    .store
                    .edit_inbound(event.platform, &event.message_id, &event.text, at)
                    .await
                    .map_err(unavailable)?;
                if let Some(m) = edited
                    && let Some(ticket) =
                        self.store.open_ticket(m.conversation, m.customer).await.map_err(unavailable)?
                {
                    let body = format!("(edited) {}", m.text);
                    self.store
                        .add_ticket_event(ticket.id, TicketEventKind::CustomerMessage, None, &body, at)
                        .await
                        .map_err(unavailable)?;
                }
                return Ok(IntakeOutcome { new: true, action: "edited".into() });
            }
            InboundKind::Deleted => {
                self.store.delete_inbound(event.platform, &event.message_id, at).await.map_err(unavailable)?;
                return Ok(IntakeOutcome { new: true, action: "deleted".into() });
            }
            _ => {}
        }

        let text = match &event.kind {
            InboundKind::Command { name, args } => format!("/{name} {args}").trim_end().to_owned(),
            InboundKind::Button { data } if talk_to_person_pressed(data).is_some() => "/ticket".to_owned(),
            InboundKind::Button { data } => format!("[button {data}]"),
            _ => event.text.clone(),
        };
        let mut d = self.decider.lock().await;
        let stored = self
            .store
            .insert_inbound(NewInbound {
                platform: event.platform,
                platform_message_id: event.message_id.clone(),
                conversation: conversation.id,
                customer: customer.id,
                text,
                attachments: event.attachments.clone(),
                received_at: at,
                place: event.place.clone(),
                language: platform_language(&event),
            })
            .await
            .map_err(unavailable)?;
        let message = match stored {
            webcare_domain::Inserted::Existing(m) if m.decision.is_some() => {
                return Ok(IntakeOutcome { new: false, action: "duplicate".into() });
            }
            webcare_domain::Inserted::Existing(m) | webcare_domain::Inserted::New(m) => m,
        };
        let command = match &event.kind {
            InboundKind::Command { name, args } => Some((name.to_ascii_lowercase(), args.clone())),
            InboundKind::Button { data } => {
                talk_to_person_pressed(data).map(|language| ("ticket".to_owned(), language.to_owned()))
            }
            _ => None,
        };
        let action = if let Some((name, args)) = command {
            let action =
                self.command(&ctx, &conversation, &customer, &message, &name, &args).await.map_err(unavailable)?;
            self.store
                .set_decision(message.id, &json!({"command": name, "action": action}))
                .await
                .map_err(unavailable)?;
            action
        } else if message.text.trim().is_empty() && message.attachments.is_empty() {
            self.store
                .set_decision(message.id, &json!({"action": "ignore", "reasons": ["empty"]}))
                .await
                .map_err(unavailable)?;
            "ignore".to_owned()
        } else if !self.holds_lease() {
            // Another instance decides it.
            announce(self.store.as_ref()).await;
            "stored".to_owned()
        } else {
            match self.decide(&ctx, &mut d, &message, &conversation, &customer, &event.account).await {
                Ok(action) => {
                    self.decided(message.id);
                    action.as_str().to_owned()
                }
                Err(e) => {
                    self.recover(&mut d, &[message.id], &e).await;
                    return Err(unavailable(e));
                }
            }
        };
        Ok(IntakeOutcome { new: true, action })
    }
}

/// Tells the deciding instance that messages wait for it; without that, it finds them at its next catch-up.
async fn announce(store: &dyn Store) {
    if let Err(e) = store.announce_undecided().await {
        tracing::debug!(error = %e, "could not announce stored messages; the decider finds them at its next look");
    }
}

/// Whether an undecided message is a command that the instance it reached is carrying out: it stores the command's
/// decision right after the command, so a recent one is left to it. (A plain message that only looks like a command,
/// `/name args` or `[button data]` as `receive_one` stores them, waits half a minute.)
fn left_to_its_instance(message: &InboundMessage) -> bool {
    let command = message.text.starts_with('/') || message.text.starts_with("[button ");
    command && Utc::now() - message.received_at < chrono::TimeDelta::seconds(30)
}

/// Undoes a batch's decisions and commits what came before its mark: the messages, stored and undecided.
async fn keep_stored(unit: &dyn Unit) -> StoreResult<()> {
    unit.rollback_to_mark().await?;
    unit.commit().await
}

/// Stores the event's customer and conversation (or finds them); a chat that was unreachable works again, since
/// the customer writes on it.
async fn upsert_sender(store: &dyn Store, event: &InboundEvent) -> StoreResult<(Customer, Conversation)> {
    let customer = store.upsert_customer(new_customer(event), event.at).await?;
    let mut conversation = store.upsert_conversation(new_conversation(event), event.at).await?;
    if conversation.unreachable {
        store.set_conversation_unreachable(conversation.id, false).await?;
        conversation.unreachable = false;
    }
    Ok((customer, conversation))
}

/// Stores a batch's customers, conversations and messages with one statement each.
async fn store_all(store: &dyn Store, events: &[InboundEvent]) -> StoreResult<Vec<Option<Stored>>> {
    let Some(at) = events.iter().map(|e| e.at).min() else { return Ok(Vec::new()) };
    let customers = store.upsert_customers(&events.iter().map(new_customer).collect::<Vec<_>>(), at).await?;
    let mut conversations =
        store.upsert_conversations(&events.iter().map(new_conversation).collect::<Vec<_>>(), at).await?;
    for conversation in conversations.iter_mut().filter(|c| c.unreachable) {
        // The customer writes again, so the chat works again (unblocked, DMs reopened).
        store.set_conversation_unreachable(conversation.id, false).await?;
        conversation.unreachable = false;
    }
    let new: Vec<NewInbound> = events
        .iter()
        .zip(customers.iter().zip(&conversations))
        .map(|(event, (customer, conversation))| NewInbound {
            platform: event.platform,
            platform_message_id: event.message_id.clone(),
            conversation: conversation.id,
            customer: customer.id,
            text: event.text.clone(),
            attachments: event.attachments.clone(),
            received_at: event.at,
            place: event.place.clone(),
            language: platform_language(event),
        })
        .collect();
    let inserted = store.insert_inbound_many(&new).await?;
    let mut seen = std::collections::HashSet::new();
    Ok(inserted
        .into_iter()
        .zip(customers.into_iter().zip(conversations))
        .map(|(inserted, (customer, conversation))| match inserted {
            webcare_domain::Inserted::Existing(m) if m.decision.is_some() => None,
            // The same message twice in one batch (a platform's quick redelivery): decided once.
            webcare_domain::Inserted::Existing(m) | webcare_domain::Inserted::New(m) if !seen.insert(m.id) => None,
            webcare_domain::Inserted::Existing(message) | webcare_domain::Inserted::New(message) => {
                Some(Stored { message, conversation, customer })
            }
        })
        .collect())
}

fn new_customer(event: &InboundEvent) -> NewCustomer {
    NewCustomer {
        platform: event.platform,
        platform_user_id: event.user_id.clone(),
        display_name: event.user_name.clone(),
    }
}

fn new_conversation(event: &InboundEvent) -> NewConversation {
    NewConversation {
        platform: event.platform,
        platform_chat_id: event.chat_id.clone(),
        kind: event.chat_kind,
        title: event.chat_title.clone(),
    }
}
