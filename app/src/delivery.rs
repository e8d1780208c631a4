//! The delivery engine: sends outbox rows through the platform [`Sender`]s within the platforms' limits.
//!
//! A worker claims due rows (highest priority first), sends each through its platform's sender, and records the
//! outcome: sent, retry later (a 429's `retry_after` for exactly the scope it names; backoff with jitter for 5xx and
//! network errors), or failed for good. Rows for one chat are sent in order, one at a time; different chats go out
//! concurrently.
//!
//! Limits come in two layers. Each chat and group has a token bucket (governor) in this process. Each bot's overall
//! limit (Telegram's 30/s, Discord's 50/s) is a budget shared by every instance on the database: a [`Budget`]
//! reserves send slots from the store in small chunks (`Store::reserve_send_slots`) and hands each slot to the
//! waiting send of highest priority, so two instances together stay inside the limit and a person's answer takes
//! the very next slot even while a broadcast fills the rest. People's answers also have a lane of their own
//! ([`Delivery::run`] claims rows of `Priority::AUTOMATIC` and above in one lane, broadcasts in another), so they
//! never wait behind a claimed batch of broadcast rows.
//!
//! Crash safety: a row is marked sent only after the platform accepted it, and a claim older than half its lease
//! is given back instead of sent, so a row whose lease lapsed (and that another worker may have taken) is never
//! sent by the worker that lost it. After `kill -9`, rows in `sending` come back when their lease lapses; the
//! only rows that can go out twice are the requests that were in flight at the kill.
//!
//! The step function [`Delivery::step`] is what tests call; [`Delivery::run`] loops it until shutdown.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt as _;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use webcare_domain::{
    Conversation, ConversationKind, LimitScope, OutboxItem, Platform, Priority, SendError, Sender, Store, StoreError,
    StoreResult, Timestamp,
};

/// A platform's published limits, as token buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformLimits {
    /// Everything the bot sends on the platform.
    pub global: Quota,
    /// One private chat (a DM).
    pub private_chat: Quota,
    /// One group or server channel.
    pub group_chat: Quota,
    /// Telegram's paid broadcasts (`allow_paid_broadcast`): messages of a notice that opted in count against this
    /// budget instead of `global`.
    pub paid_global: Option<Quota>,
    /// Whether `global` (and `paid_global`) is the bot's budget shared with every instance on the database.
    /// True for the platforms' bots; the web chat is webcare's own page and keeps a local guard only.
    pub shared: bool,
}

fn per(n: u32, period: Duration) -> Quota {
    // `period / n` between messages, no burst: a burst allowance would let a window hold more than `n`.
    Quota::with_period(period / n.max(1)).expect("a non-zero period")
}

impl PlatformLimits {
    /// Telegram: about 30 messages per second overall, 1 per second per chat, 20 per minute per group.
    pub fn telegram() -> Self {
        PlatformLimits {
            global: per(30, Duration::from_secs(1)),
            private_chat: per(1, Duration::from_secs(1)),
            group_chat: per(20, Duration::from_secs(60)),
            paid_global: Some(per(1000, Duration::from_secs(1))),
            shared: true,
        }
    }

    /// Discord: 50 requests per second per bot, about 5 messages per 5 seconds per channel.
    pub fn discord() -> Self {
        PlatformLimits {
            global: per(50, Duration::from_secs(1)),
            private_chat: per(5, Duration::from_secs(5)),
            group_chat: per(5, Duration::from_secs(5)),
            paid_global: None,
            shared: true,
        }
    }

    /// The web chat is webcare's own page: only a guard against runaway loops.
    pub fn webchat() -> Self {
        PlatformLimits {
            global: Quota::per_second(NonZeroU32::new(10_000).unwrap()),
            private_chat: Quota::per_second(NonZeroU32::new(100).unwrap()),
            group_chat: Quota::per_second(NonZeroU32::new(100).unwrap()),
            paid_global: None,
            shared: false,
        }
    }

    pub fn for_platform(platform: Platform) -> Self {
        match platform {
            Platform::Telegram => Self::telegram(),
            Platform::Discord => Self::discord(),
            Platform::Webchat => Self::webchat(),
        }
    }

    /// The same limits `factor` times faster, for tests and benchmarks against fakes whose limits are scaled alike.
    pub fn scaled(self, factor: u32) -> Self {
        let scale = |q: Quota| {
            Quota::with_period(q.replenish_interval() / factor.max(1))
                .expect("a non-zero period")
                .allow_burst(q.burst_size())
        };
        PlatformLimits {
            global: scale(self.global),
            private_chat: scale(self.private_chat),
            group_chat: scale(self.group_chat),
            paid_global: self.paid_global.map(scale),
            shared: self.shared,
        }
    }

    /// The same limits with these rates (messages per second overall and per chat, per minute per group).
    pub fn with_rates(self, global: f64, private_chat: f64, group_per_minute: f64, paid: Option<f64>) -> Self {
        let every = |per_second: f64| {
            Quota::with_period(Duration::from_secs_f64(1.0 / per_second.max(1e-6))).expect("a non-zero period")
        };
        PlatformLimits {
            global: every(global),
            private_chat: every(private_chat),
            group_chat: every(group_per_minute / 60.0),
            paid_global: paid.map(every),
            shared: self.shared,
        }
    }
}

/// How the engine behaves; the defaults suit production.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// This worker's name in claims; unique per process.
    pub worker: String,
    /// How long a claim holds before another worker may take the row (a crashed worker's rows come back then).
    pub lease: Duration,
    /// Rows claimed per step.
    pub batch: u32,
    /// Chats sent to at once.
    pub concurrency: usize,
    /// How often to look for due rows when nobody says there is new work.
    pub poll_interval: Duration,
    /// Transient failures before a row is given up.
    pub max_attempts: i64,
    /// The share of each overall limit to use (0.97): slots a little wider than the limit allows, so that the
    /// jitter of scheduling and of the network never lets a window of the platform's count hold one too many.
    pub headroom: f64,
    pub limits: BTreeMap<&'static str, PlatformLimits>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            worker: format!("webcare-{}-{}", std::process::id(), rand::random::<u32>()),
            lease: Duration::from_secs(30),
            batch: 64,
            concurrency: 64,
            poll_interval: Duration::from_millis(250),
            max_attempts: 12,
            headroom: 0.97,
            limits: Platform::ALL.iter().map(|p| (p.as_str(), PlatformLimits::for_platform(*p))).collect(),
        }
    }
}

/// Limits and 429 holds for one platform.
struct PlatformGate {
    /// The overall limit, when it is this process's alone (the web chat).
    local: Option<DefaultDirectRateLimiter>,
    /// The bot's overall budget shared across instances, and the paid one where the platform has it.
    shared: Option<Arc<Budget>>,
    paid: Option<Arc<Budget>>,
    private_chats: DefaultKeyedRateLimiter<String>,
    group_chats: DefaultKeyedRateLimiter<String>,
    /// Scopes the platform told us to leave alone, until when.
    held: Mutex<HashMap<LimitScope, Timestamp>>,
}

impl PlatformGate {
    fn new(platform: Platform, limits: PlatformLimits, headroom: f64) -> Self {
        let budget = |name: &str, q: Quota| {
            let interval = q.replenish_interval().div_f64(headroom.clamp(0.1, 1.0));
            Arc::new(Budget::new(format!("{platform}:{name}"), interval))
        };
        PlatformGate {
            local: (!limits.shared).then(|| RateLimiter::direct(limits.global)),
            shared: limits.shared.then(|| budget("global", limits.global)),
            paid: limits.paid_global.filter(|_| limits.shared).map(|q| budget("paid", q)),
            private_chats: RateLimiter::keyed(limits.private_chat),
            group_chats: RateLimiter::keyed(limits.group_chat),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// When this chat may be sent to again, if it is held back by a 429.
    fn held_until(&self, chat: &str, now: Timestamp) -> Option<Timestamp> {
        let held = self.held.lock().expect("the hold map is never poisoned");
        [LimitScope::Global, LimitScope::Chat(chat.to_owned())]
            .iter()
            .filter_map(|s| held.get(s).copied())
            .filter(|until| *until > now)
            .max()
    }

    fn hold(&self, scope: LimitScope, until: Timestamp) {
        let mut held = self.held.lock().expect("the hold map is never poisoned");
        let entry = held.entry(scope).or_insert(until);
        *entry = (*entry).max(until);
    }
}

/// A bot's overall budget, shared with the other instances through the store.
///
/// Sends that want a slot wait in a priority queue; a dispatcher task (started when the first one waits, ended
/// when nobody does) reserves slots from the store a few at a time, sleeps until each, and hands it to the waiting
/// send of highest priority (first come, first served within a priority). A slot nobody takes in time is dropped,
/// never used late: using it late could put two sends closer than the limit allows.
pub struct Budget {
    bucket: String,
    interval: Duration,
    /// Slots reserved at once at most: about a quarter of a second's worth.
    max_chunk: u32,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: BinaryHeap<Waiter>,
    seq: u64,
    dispatching: bool,
}

struct Waiter {
    priority: i64,
    seq: Reverse<u64>,
    go: oneshot::Sender<Timestamp>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.priority, self.seq).cmp(&(other.priority, other.seq))
    }
}

impl Budget {
    fn new(bucket: String, interval: Duration) -> Budget {
        let per_second = 1.0 / interval.as_secs_f64().max(1e-6);
        let max_chunk = (per_second / 4.0).clamp(1.0, 1000.0) as u32;
        Budget { bucket, interval, max_chunk, queue: Mutex::new(Queue::default()) }
    }

    /// How late a send may use its slot: half an interval, at least 2 ms.
    fn tolerance(&self) -> chrono::Duration {
        (chrono::Duration::from_std(self.interval).unwrap_or_default() / 2).max(chrono::Duration::milliseconds(2))
    }

    /// Waits for this process's next slot; of several waiting sends the one of highest priority goes first.
    /// A send whose task ran late (a busy CPU) waits for another slot rather than go out late, because late
    /// sends bunch up with the punctual ones that follow and so overrun a window of the platform's count.
    async fn acquire(self: &Arc<Self>, store: &Arc<dyn Store>, priority: Priority) -> StoreResult<()> {
        loop {
            let at = self.acquire_once(store, priority).await?;
            if Utc::now() <= at + self.tolerance() {
                return Ok(());
            }
        }
    }

    async fn acquire_once(self: &Arc<Self>, store: &Arc<dyn Store>, priority: Priority) -> StoreResult<Timestamp> {
        let (go, wait) = oneshot::channel();
        {
            let mut q = self.queue.lock().expect("the budget queue is never poisoned");
            q.seq += 1;
            let seq = Reverse(q.seq);
            q.waiting.push(Waiter { priority: priority.0, seq, go });
            if !q.dispatching {
                q.dispatching = true;
                tokio::spawn(self.clone().dispatch(store.clone()));
            }
        }
        wait.await.map_err(|_| StoreError::Unavailable(format!("send budget {} stopped", self.bucket)))
    }

    async fn dispatch(self: Arc<Self>, store: Arc<dyn Store>) {
        let mut next = Utc::now();
        let mut left = 0u32;
        loop {
            let waiting = {
                let mut q = self.queue.lock().expect("the budget queue is never poisoned");
                q.waiting.retain(|w| !w.go.is_closed());
                if q.waiting.is_empty() {
                    q.dispatching = false;
                    return;
                }
                q.waiting.len()
            };
            let interval = chrono::Duration::from_std(self.interval).unwrap_or_default();
            // Slots left over that passed while nobody waited are gone; a little lateness is the scheduler's.
            let tolerance = self.tolerance();
            let now = Utc::now();
            while left > 0 && next + tolerance < now {
                next += interval;
                left -= 1;
            }
            if left == 0 {
                // A fresh reservation's first slot is used even if the round trip made it a little late: it was
                // `now` when reserved, and dropping it would only reserve again, for ever on a slow database.
                let count = u32::try_from(waiting).unwrap_or(u32::MAX).clamp(1, self.max_chunk);
                match store.reserve_send_slots(&self.bucket, count, self.interval, now).await {
                    Ok(first) => (next, left) = (first, count),
                    Err(e) => {
                        tracing::warn!(bucket = %self.bucket, error = %e, "could not reserve send slots; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            let at = next;
            next += interval;
            left -= 1;
            if let Ok(wait) = (at - Utc::now()).to_std() {
                tokio::time::sleep(wait).await;
            }
            let mut q = self.queue.lock().expect("the budget queue is never poisoned");
            while let Some(w) = q.waiting.pop() {
                if w.go.send(at).is_ok() {
                    break;
                }
            }
        }
    }
}

/// What one step did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Step {
    pub claimed: usize,
    pub sent: usize,
    pub deferred: usize,
    pub failed: usize,
    pub cancelled: usize,
}

pub struct Delivery {
    store: Arc<dyn Store>,
    senders: HashMap<Platform, Arc<dyn Sender>>,
    gates: HashMap<Platform, PlatformGate>,
    config: DeliveryConfig,
    wake: Arc<Notify>,
    /// Chats a lane of this process is sending to; the other lanes leave them alone meanwhile, so a chat's
    /// messages keep their order and its limit.
    busy: Mutex<std::collections::HashSet<webcare_domain::ConversationId>>,
}

/// The chats a step is sending to, released when the step ends however it ends.
struct BusyGuard<'a> {
    busy: &'a Mutex<std::collections::HashSet<webcare_domain::ConversationId>>,
    conversation: webcare_domain::ConversationId,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.busy.lock().expect("the busy set is never poisoned").remove(&self.conversation);
    }
}

impl Delivery {
    pub fn new(store: Arc<dyn Store>, senders: Vec<Arc<dyn Sender>>, config: DeliveryConfig) -> Self {
        let gates = Platform::ALL
            .iter()
            .map(|p| {
                let limits = config.limits.get(p.as_str()).copied().unwrap_or_else(|| PlatformLimits::for_platform(*p));
                (*p, PlatformGate::new(*p, limits, config.headroom))
            })
            .collect();
        Delivery {
            store,
            senders: senders.into_iter().map(|s| (s.platform(), s)).collect(),
            gates,
            config,
            wake: Arc::new(Notify::new()),
            busy: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Shares a waker created before this engine (the intake needs one before the bots, and the bots' senders are
    /// needed here).
    pub fn with_waker(mut self, wake: Arc<Notify>) -> Self {
        self.wake = wake;
        self
    }

    /// A handle that wakes the worker at once, for code that just enqueued something.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs both lanes until `shutdown`: the express lane for people's answers (`Priority::AUTOMATIC` and above)
    /// and the main lane for broadcasts (below it). A step in progress finishes first.
    pub async fn run(&self, shutdown: CancellationToken) {
        // People's answers (`Priority::AUTOMATIC` and up) go through the express lane only, in order per chat;
        // broadcasts through the main lane. A wake-up (something was enqueued) reaches the express lane, which
        // passes it on to the main lane. (A second main-lane worker, to claim while the other sends, gained 1 % of
        // rate in `bench broadcast` and cost six times the 429s: more requests in flight, more jitter.)
        let main = Notify::new();
        let (express, bulk) = ((Priority::AUTOMATIC, Priority(i64::MAX)), (Priority(i64::MIN), Priority::AUTOMATIC));
        tokio::join!(
            self.lane(&shutdown, express, self.config.batch.min(16), &self.wake, Some(&main)),
            self.lane(&shutdown, bulk, self.config.batch, &main, None),
        );
    }

    async fn lane(
        &self,
        shutdown: &CancellationToken,
        priorities: (Priority, Priority),
        batch: u32,
        woken_by: &Notify,
        pass_on: Option<&Notify>,
    ) {
        while !shutdown.is_cancelled() {
            let idle = match self.step_lane(batch, priorities).await {
                Ok(step) => step.claimed == 0,
                Err(e) => {
                    tracing::warn!(error = %e, "delivery step failed; retrying");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = woken_by.notified() => {
                        if let Some(next) = pass_on {
                            next.notify_one();
                        }
                    }
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                }
            }
        }
    }

    /// Claims due rows of any priority and delivers them.
    pub async fn step(&self) -> StoreResult<Step> {
        self.step_lane(self.config.batch, (Priority(i64::MIN), Priority(i64::MAX))).await
    }

    async fn step_lane(&self, batch: u32, (min, below): (Priority, Priority)) -> StoreResult<Step> {
        let now = Utc::now();
        let claimed_at = Instant::now();
        let items =
            self.store.claim_outbox_from(&self.config.worker, now, self.config.lease, batch, min, below).await?;
        let mut step = Step { claimed: items.len(), ..Step::default() };
        if items.is_empty() {
            return Ok(step);
        }
        // Per chat in claim order (priority first), so that one chat's messages keep their order.
        let mut chats: Vec<(webcare_domain::ConversationId, Vec<OutboxItem>)> = Vec::new();
        for item in items {
            match chats.iter_mut().find(|(c, _)| *c == item.conversation) {
                Some((_, list)) => list.push(item),
                None => chats.push((item.conversation, vec![item])),
            }
        }
        let results: Vec<StoreResult<Step>> = futures_util::stream::iter(chats)
            .map(|(conversation, items)| self.deliver_chat(conversation, items, claimed_at))
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        for r in results {
            let s = r?;
            step.sent += s.sent;
            step.deferred += s.deferred;
            step.failed += s.failed;
            step.cancelled += s.cancelled;
        }
        Ok(step)
    }

    async fn deliver_chat(
        &self,
        conversation: webcare_domain::ConversationId,
        items: Vec<OutboxItem>,
        claimed_at: Instant,
    ) -> StoreResult<Step> {
        let mut step = Step::default();
        // Held until this chat's rows are done; released on every path.
        let busy = {
            let mut busy = self.busy.lock().expect("the busy set is never poisoned");
            busy.insert(conversation).then(|| BusyGuard { busy: &self.busy, conversation })
        };
        if busy.is_none() {
            // Another lane is sending to this chat: these wait a moment rather than overtake it.
            let until = Utc::now() + chrono::Duration::milliseconds(100);
            for item in &items {
                self.store.mark_retry(item.id, &self.config.worker, until, "waiting behind an earlier message").await?;
                step.deferred += 1;
            }
            return Ok(step);
        }
        let mut conv = self.store.conversation(conversation).await?;
        let mut iter = items.into_iter();
        while let Some(item) = iter.next() {
            match self.deliver(&mut conv, &item, claimed_at).await? {
                Outcome::Sent => step.sent += 1,
                Outcome::Failed => step.failed += 1,
                Outcome::Cancelled => step.cancelled += 1,
                Outcome::Deferred(until) => {
                    // Keep the chat's order: everything after a deferred row waits with it.
                    step.deferred += 1;
                    for later in iter.by_ref() {
                        self.store
                            .mark_retry(later.id, &self.config.worker, until, "waiting behind an earlier message")
                            .await?;
                        step.deferred += 1;
                    }
                }
            }
        }
        Ok(step)
    }

    async fn deliver(&self, conv: &mut Conversation, item: &OutboxItem, claimed_at: Instant) -> StoreResult<Outcome> {
        let worker = &self.config.worker;
        let now = Utc::now();
        if conv.unreachable {
            self.store.mark_failed(item.id, worker, "the recipient refuses messages from the bot").await?;
            return Ok(Outcome::Failed);
        }
        let Some(sender) = self.senders.get(&conv.platform) else {
            // This process does not run that platform; another instance may, or this one after a restart.
            let until = now + chrono::Duration::seconds(30);
            self.store
                .mark_retry(item.id, worker, until, &format!("no {} sender in this process", conv.platform))
                .await?;
            return Ok(Outcome::Deferred(until));
        };
        let gate = &self.gates[&conv.platform];
        if let Some(until) = gate.held_until(&conv.platform_chat_id, now) {
            self.store.mark_retry(item.id, worker, until, "held back by the platform's rate limit").await?;
            return Ok(Outcome::Deferred(until));
        }
        let chats = match conv.kind {
            ConversationKind::Private => &gate.private_chats,
            ConversationKind::Public => &gate.group_chats,
        };
        if let Err(not_until) = chats.check_key(&conv.platform_chat_id) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            if wait > Duration::from_millis(200) {
                let until = now + chrono::Duration::from_std(wait).unwrap_or_default();
                self.store.mark_retry(item.id, worker, until, "chat rate limit").await?;
                return Ok(Outcome::Deferred(until));
            }
            tokio::time::sleep(wait).await;
            let _ = chats.check_key(&conv.platform_chat_id);
        }
        let paid = item.extra["paid_broadcast"].as_bool() == Some(true);
        match (&gate.local, paid.then_some(gate.paid.as_ref()).flatten().or(gate.shared.as_ref())) {
            (_, Some(budget)) => budget.acquire(&self.store, item.priority).await?,
            (Some(local), None) => local.until_ready().await,
            (None, None) => {}
        }
        // A claim this old may have lapsed meanwhile and be another worker's now: give it back unsent.
        if claimed_at.elapsed() > self.config.lease / 2 {
            let now = Utc::now();
            self.store.mark_retry(item.id, worker, now, "claim too old to send safely").await?;
            return Ok(Outcome::Deferred(now));
        }
        // A notice message may have been superseded by a newer version, or its chat may have said /stop, while it
        // waited for its slot: one read by primary key, so that only the newest version goes out.
        if item.idempotency_key.starts_with("notice:") {
            let now = self.store.outbox_item(item.id).await?;
            if now.state != webcare_domain::OutboxState::Sending || now.claimed_by.as_deref() != Some(worker) {
                return Ok(Outcome::Cancelled);
            }
        }

        match sender.send(conv, item).await {
            Ok(sent) => {
                self.store.mark_sent(item.id, worker, sent.platform_message_id.as_deref(), Utc::now()).await?;
                Ok(Outcome::Sent)
            }
            Err(SendError::RateLimited { retry_after, scope }) => {
                let until = Utc::now() + chrono::Duration::from_std(retry_after).unwrap_or_default();
                tracing::info!(platform = %conv.platform, ?scope, ?retry_after, "platform asked to slow down");
                gate.hold(scope, until);
                self.store.mark_retry(item.id, worker, until, &format!("429: retry after {retry_after:?}")).await?;
                Ok(Outcome::Deferred(until))
            }
            Err(SendError::Unreachable(why)) => {
                tracing::info!(platform = %conv.platform, conversation = %conv.id, %why, "recipient unreachable");
                self.store.set_conversation_unreachable(conv.id, true).await?;
                conv.unreachable = true;
                self.store.mark_failed(item.id, worker, &why).await?;
                Ok(Outcome::Failed)
            }
            Err(SendError::Moved { new_chat_id }) => {
                tracing::info!(conversation = %conv.id, %new_chat_id, "chat moved; following it");
                self.store.move_conversation(conv.id, &new_chat_id).await?;
                conv.platform_chat_id = new_chat_id;
                let now = Utc::now();
                self.store.mark_retry(item.id, worker, now, "chat moved").await?;
                Ok(Outcome::Deferred(now))
            }
            Err(SendError::Rejected(why)) => {
                tracing::warn!(platform = %conv.platform, outbox = %item.id, %why, "message rejected");
                self.store.mark_failed(item.id, worker, &why).await?;
                Ok(Outcome::Failed)
            }
            Err(SendError::Transient(why)) => {
                if item.attempts >= self.config.max_attempts {
                    self.store
                        .mark_failed(item.id, worker, &format!("gave up after {} attempts: {why}", item.attempts))
                        .await?;
                    return Ok(Outcome::Failed);
                }
                let until = Utc::now() + chrono::Duration::from_std(backoff(item.attempts)).unwrap_or_default();
                self.store.mark_retry(item.id, worker, until, &why).await?;
                Ok(Outcome::Deferred(until))
            }
        }
    }
}

enum Outcome {
    Sent,
    /// Cancelled while it waited (superseded, or the chat stopped its updates): not sent.
    Cancelled,
    Failed,
    Deferred(Timestamp),
}

/// Exponential backoff from 1 s, capped at 5 minutes, with ±20 % jitter so that many rows that failed together do
/// not all come back in the same instant.
pub fn backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 20) - 1;
    let base = Duration::from_secs(1).saturating_mul(1u32 << exp.min(9)).min(Duration::from_secs(300));
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    base.mul_f64(jitter)
}
