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
//! Broadcasts go at the platforms' own limits without a 429: each lane claims its next rows while the last half of
//! the previous claim still goes out, so a slot never passes for want of a send; what needs the store (the
//! conversation, whether a notice message was cancelled) happens before the slot, so the request leaves right at
//! it; and a [`Pacer`] per budget holds back the odd request that would make one of the platform's windows hold one
//! too many after the network or the scheduler bunched the requests before it.
//!
//! The step function [`Delivery::step`] claims one batch and delivers it, for tests; [`Delivery::run`] runs the
//! lanes until shutdown.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
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
    /// The span over which the platform counts `global` and `paid_global` (a second): at most `window / interval`
    /// requests may reach it within any such span, however the network bunched them on the way.
    pub window: Duration,
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
            window: Duration::from_secs(1),
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
            window: Duration::from_secs(1),
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
            window: Duration::from_secs(1),
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
            window: self.window / factor.max(1),
        }
    }

    /// The same limits with these rates (messages per second overall and per chat, per minute per group).
    /// The platform's count per window stays: 30 per second at 300/s (a rate scaled ten times) is 30 per 100 ms.
    pub fn with_rates(self, global: f64, private_chat: f64, group_per_minute: f64, paid: Option<f64>) -> Self {
        let every = |per_second: f64| {
            Quota::with_period(Duration::from_secs_f64(1.0 / per_second.max(1e-6))).expect("a non-zero period")
        };
        let global = every(global);
        PlatformLimits {
            window: global.replenish_interval().mul_f64(self.per_window(self.global) as f64),
            global,
            private_chat: every(private_chat),
            group_chat: every(group_per_minute / 60.0),
            paid_global: paid.map(every),
            shared: self.shared,
        }
    }

    /// How many requests at the rate of `quota` the platform allows within one `window`.
    fn per_window(&self, quota: Quota) -> usize {
        let n = self.window.as_secs_f64() / quota.replenish_interval().as_secs_f64().max(1e-9);
        (n.round() as usize).max(1)
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
    /// The spacing of private chats' and groups' limits.
    spacing: (Duration, Duration),
    /// When the latest request to a chat was answered, for the chats sent to within the last spacing or so.
    answered: Mutex<HashMap<String, Instant>>,
    /// Scopes the platform told us to leave alone, until when.
    held: Mutex<HashMap<LimitScope, Timestamp>>,
}

impl PlatformGate {
    fn new(platform: Platform, limits: PlatformLimits, headroom: f64) -> Self {
        let budget = |name: &str, q: Quota| {
            let interval = q.replenish_interval().div_f64(headroom.clamp(0.1, 1.0));
            Arc::new(Budget::new(format!("{platform}:{name}"), interval, limits.per_window(q), limits.window))
        };
        PlatformGate {
            local: (!limits.shared).then(|| RateLimiter::direct(limits.global)),
            shared: limits.shared.then(|| budget("global", limits.global)),
            paid: limits.paid_global.filter(|_| limits.shared).map(|q| budget("paid", q)),
            private_chats: RateLimiter::keyed(limits.private_chat),
            group_chats: RateLimiter::keyed(limits.group_chat),
            spacing: (limits.private_chat.replenish_interval(), limits.group_chat.replenish_interval()),
            answered: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// How long a request to this chat must still wait so that it reaches the platform no sooner than `spacing`
    /// after the previous one, which was answered at the latest when it was recorded. (A chat's requests go one
    /// after another; the token buckets space when they are checked, this when they can reach the platform.)
    fn since_answered(&self, chat: &str, spacing: Duration) -> Option<Duration> {
        let answered = self.answered.lock().expect("the answer map is never poisoned");
        let wait = (*answered.get(chat)? + spacing).checked_duration_since(Instant::now())?;
        (!wait.is_zero()).then_some(wait)
    }

    fn record_answer(&self, chat: &str) {
        let now = Instant::now();
        let mut answered = self.answered.lock().expect("the answer map is never poisoned");
        answered.insert(chat.to_owned(), now);
        if answered.len() > 4096 {
            let longest = self.spacing.0.max(self.spacing.1);
            answered.retain(|_, at| now.duration_since(*at) < longest);
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
///
/// The dispatcher reserves the next slots while the last few of the current reservation are still ahead, so that
/// the round trip to the store never holds up a slot, and as many as the sends on their way to this budget need
/// (at most a quarter of a second's worth). Of the bulk sends (broadcasts) only a few wait in the queue at once
/// (about 30 ms worth of slots): the others wait before their checks against the store, so that a send whose
/// row was cancelled meanwhile is found out shortly before its slot rather than long before it.
///
/// A [`Pacer`] is the last guard before the request: it never lets one request follow the request `n` back (the
/// platform's count per window) by less than the window, counted from when the earlier one was answered.
pub struct Budget {
    bucket: String,
    interval: Duration,
    /// Slots reserved at once at most: about a quarter of a second's worth.
    max_chunk: u32,
    /// Reserve the next slots when this many of the current reservation are left (about 30 ms worth).
    reserve_ahead: u32,
    /// Places in the queue for bulk sends (below `Priority::AUTOMATIC`).
    ready: tokio::sync::Semaphore,
    /// Sends on their way to a slot (holding a [`Ticket`]): what the dispatcher reserves slots for.
    demand: AtomicUsize,
    pacer: Pacer,
    queue: Mutex<Queue>,
}

/// How long the bulk sends waiting in a budget's queue take to go out: that many slots' worth of them wait there.
const READY_SPAN: Duration = Duration::from_millis(30);
/// A send that waited this long for its slot after its checks against the store makes them again.
const RECHECK_AFTER: Duration = Duration::from_millis(50);

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

/// A send on its way to a slot of a [`Budget`]: counted in the budget's demand until it has its slot or gives
/// up, and for a bulk send, one of the few places in the budget's queue.
struct Ticket<'a> {
    budget: &'a Arc<Budget>,
    priority: Priority,
    _place: Option<tokio::sync::SemaphorePermit<'a>>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.budget.demand.fetch_sub(1, AtomicOrdering::Relaxed);
    }
}

impl Ticket<'_> {
    /// Waits for the slot; see [`Budget::acquire`].
    async fn slot(self, store: &Arc<dyn Store>) -> StoreResult<()> {
        self.budget.acquire(store, self.priority).await
    }
}

impl Budget {
    fn new(bucket: String, interval: Duration, per_window: usize, window: Duration) -> Budget {
        let per_second = 1.0 / interval.as_secs_f64().max(1e-6);
        let max_chunk = (per_second / 4.0).clamp(1.0, 1000.0) as u32;
        let worth = |span: Duration| (span.as_secs_f64() / interval.as_secs_f64().max(1e-9)).ceil();
        Budget {
            bucket,
            interval,
            max_chunk,
            reserve_ahead: (worth(READY_SPAN) as u32).clamp(1, max_chunk),
            ready: tokio::sync::Semaphore::new(worth(READY_SPAN).clamp(2.0, 256.0) as usize),
            demand: AtomicUsize::new(0),
            pacer: Pacer::new(per_window, window),
            queue: Mutex::new(Queue::default()),
        }
    }

    /// How late a send may use its slot: half an interval, at least 2 ms.
    fn tolerance(&self) -> chrono::Duration {
        (chrono::Duration::from_std(self.interval).unwrap_or_default() / 2).max(chrono::Duration::milliseconds(2))
    }

    /// Joins the sends on their way to a slot; a bulk send waits here until it has a place in the queue.
    async fn enter(self: &Arc<Self>, priority: Priority) -> Ticket<'_> {
        self.demand.fetch_add(1, AtomicOrdering::Relaxed);
        let ticket = Ticket { budget: self, priority, _place: None };
        if priority >= Priority::AUTOMATIC {
            return ticket;
        }
        let place = self.ready.acquire().await.expect("the queue's places are never closed");
        Ticket { _place: Some(place), ..ticket }
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
        let interval = chrono::Duration::from_std(self.interval).unwrap_or_default();
        // Slots left over that passed while nobody waited are gone; a little lateness is the scheduler's.
        let tolerance = self.tolerance();
        let (mut next, mut left) = (Utc::now(), 0u32);
        // The next reservation, made while the current one still has slots ahead.
        let mut ahead: Option<tokio::task::JoinHandle<(u32, StoreResult<Timestamp>)>> = None;
        loop {
            let now = Utc::now();
            while left > 0 && next + tolerance < now {
                next += interval;
                left -= 1;
            }
            if left == 0
                && let Some(reserved) = ahead.take()
            {
                match reserved.await {
                    Ok((count, Ok(first))) => (next, left) = (first, count),
                    Ok((_, Err(e))) => {
                        tracing::warn!(bucket = %self.bucket, error = %e, "could not reserve send slots")
                    }
                    Err(e) => tracing::warn!(bucket = %self.bucket, error = %e, "could not reserve send slots"),
                }
                continue;
            }
            let (waiting, demand) = {
                let mut q = self.queue.lock().expect("the budget queue is never poisoned");
                q.waiting.retain(|w| !w.go.is_closed());
                let demand = self.demand.load(AtomicOrdering::Relaxed);
                // Nobody waits, and nobody is on the way or there is no slot left to keep for them.
                if q.waiting.is_empty() && (demand == 0 || left == 0) {
                    q.dispatching = false;
                    return;
                }
                (q.waiting.len(), demand.max(q.waiting.len()))
            };
            let wanted =
                |left: u32| u32::try_from(demand).unwrap_or(u32::MAX).saturating_sub(left).clamp(1, self.max_chunk);
            if left == 0 {
                // A fresh reservation's first slot is used even if the round trip made it a little late: it was
                // `now` when reserved, and dropping it would only reserve again, for ever on a slow database.
                let count = wanted(0);
                match store.reserve_send_slots(&self.bucket, count, self.interval, now).await {
                    Ok(first) => (next, left) = (first, count),
                    Err(e) => {
                        tracing::warn!(bucket = %self.bucket, error = %e, "could not reserve send slots; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            } else if ahead.is_none() && left <= self.reserve_ahead && demand > left as usize && waiting > 0 {
                let count = wanted(left);
                let (store, bucket, span) = (store.clone(), self.bucket.clone(), self.interval);
                ahead = Some(tokio::spawn(async move {
                    (count, store.reserve_send_slots(&bucket, count, span, Utc::now()).await)
                }));
            }
            let at = next;
            next += interval;
            left -= 1;
            sleep_precisely_until(at).await;
            let mut q = self.queue.lock().expect("the budget queue is never poisoned");
            while let Some(w) = q.waiting.pop() {
                if w.go.send(at).is_ok() {
                    break;
                }
            }
        }
    }
}

/// Sleeps until `at`, to a tenth of a millisecond rather than the timer's millisecond or two: a slot handed out
/// late is of no use (see [`Budget::acquire`]). The last two milliseconds are slept on a blocking thread.
async fn sleep_precisely_until(at: Timestamp) {
    const FINE: Duration = Duration::from_millis(2);
    let Ok(wait) = (at - Utc::now()).to_std() else { return };
    if wait > FINE {
        tokio::time::sleep(wait - FINE).await;
    }
    if let Ok(rest) = (at - Utc::now()).to_std() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// The last guard before a request: of any `n + 1` requests (the platform's count per window, plus one), the
/// last leaves no sooner than a window after the first was answered. The platform counts a request at some moment
/// between its sending and its answer, so however the network and the scheduler bunched the requests on the way,
/// no window of the platform's holds more than `n` of this process's. The slots keep the requests that far apart
/// already; this only holds back the odd request whose predecessors were late.
struct Pacer {
    per_window: usize,
    window: Duration,
    state: Mutex<PacerState>,
    answered: Notify,
}

#[derive(Default)]
struct PacerState {
    /// The latest requests in the order they passed, oldest first: when each was sent and, once, answered.
    recent: std::collections::VecDeque<(u64, Instant, Option<Instant>)>,
    seq: u64,
    /// The latest answer among the requests no longer in `recent`.
    answered_before: Option<Instant>,
}

/// A request let through by the [`Pacer`]; dropped when its answer came (or it failed).
struct Paced<'a> {
    pacer: &'a Pacer,
    seq: u64,
}

impl Drop for Paced<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut s = self.pacer.state.lock().expect("the pacer is never poisoned");
        if let Some(front) = s.recent.front().map(|r| r.0)
            && let Some(entry) = s.recent.get_mut((self.seq - front) as usize)
        {
            entry.2 = Some(now);
        }
        drop(s);
        self.pacer.answered.notify_waiters();
    }
}

impl Pacer {
    fn new(per_window: usize, window: Duration) -> Pacer {
        Pacer {
            per_window: per_window.max(1),
            window,
            state: Mutex::new(PacerState::default()),
            answered: Notify::new(),
        }
    }

    /// Waits until one more request cannot make a window of the platform's hold too many.
    async fn pass(&self) -> Paced<'_> {
        loop {
            let answered = self.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            let now = Instant::now();
            let until = {
                let mut s = self.state.lock().expect("the pacer is never poisoned");
                // Forget what no later request needs: answered requests more than `n` back.
                while s.recent.len() > self.per_window && s.recent.front().is_some_and(|r| r.2.is_some()) {
                    let (_, _, at) = s.recent.pop_front().expect("not empty");
                    s.answered_before = s.answered_before.max(at);
                }
                // The new one goes no sooner than a window after every request `n` or more back was answered; one
                // still unanswered after a window is taken as arrived by then, so that a hung request stalls
                // nothing for long.
                let older = (s.recent.len() + 1).saturating_sub(self.per_window);
                let mut ready = s.answered_before.map(|a| a + self.window);
                for &(_, sent, answered) in s.recent.iter().take(older) {
                    ready = ready.max(Some(answered.unwrap_or(sent + self.window) + self.window));
                }
                match ready.filter(|r| *r > now) {
                    None => {
                        s.seq += 1;
                        let seq = s.seq;
                        s.recent.push_back((seq, now, None));
                        return Paced { pacer: self, seq };
                    }
                    Some(ready) => ready,
                }
            };
            tokio::select! {
                _ = answered => {}
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(until)) => {}
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
        // passes it on to the main lane. Each lane claims its next rows while it still sends the last ones (a second
        // main-lane worker did that too, but with twice the requests in flight, and cost six times the 429s).
        let main = Notify::new();
        let (express, bulk) = ((Priority::AUTOMATIC, Priority(i64::MAX)), (Priority(i64::MIN), Priority::AUTOMATIC));
        tokio::join!(
            self.lane(&shutdown, express, self.config.batch.min(16), &self.wake, Some(&main)),
            self.lane(&shutdown, bulk, self.config.batch, &main, None),
        );
    }

    /// Claims rows of `priorities` and delivers them, one chat at a time per chat and up to `concurrency` chats at
    /// once, until `shutdown`; then finishes what it claimed. The next rows are claimed while the last half of
    /// the previous claim is still going out, so that the budget always has sends waiting for its slots.
    async fn lane(
        &self,
        shutdown: &CancellationToken,
        (min, below): (Priority, Priority),
        batch: u32,
        woken_by: &Notify,
        pass_on: Option<&Notify>,
    ) {
        type Claim<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<Vec<OutboxItem>>> + Send + 'a>>;
        let batch = batch.max(1) as usize;
        let mut queued: std::collections::VecDeque<(webcare_domain::ConversationId, Vec<OutboxItem>, Instant)> =
            std::collections::VecDeque::new();
        let mut running = futures_util::stream::FuturesUnordered::new();
        let mut active = std::collections::HashSet::new();
        // Rows claimed and not yet done with.
        let mut outstanding = 0usize;
        let mut claim: Option<(Claim<'_>, Instant)> = None;
        // After a claim found nothing due, the next waits for a wake-up or the poll interval.
        let mut claim_at = tokio::time::Instant::now();
        loop {
            let stopping = shutdown.is_cancelled();
            if stopping && claim.is_none() && queued.is_empty() && running.is_empty() {
                return;
            }
            if !stopping && claim.is_none() && outstanding <= batch / 2 && tokio::time::Instant::now() >= claim_at {
                let limit = u32::try_from(batch - outstanding).unwrap_or(u32::MAX);
                let store = &self.store;
                let worker = &self.config.worker;
                let lease = self.config.lease;
                let claimed_at = Instant::now();
                let claiming: Claim<'_> =
                    Box::pin(
                        async move { store.claim_outbox_from(worker, Utc::now(), lease, limit, min, below).await },
                    );
                claim = Some((claiming, claimed_at));
            }
            // A chat this lane is still sending to keeps its later rows here until it is done, in claim order.
            let mut i = 0;
            while running.len() < self.config.concurrency.max(1) && i < queued.len() {
                if active.contains(&queued[i].0) {
                    i += 1;
                    continue;
                }
                let (conversation, items, claimed_at) = queued.remove(i).expect("within the queue");
                active.insert(conversation);
                running.push(async move {
                    let rows = items.len();
                    (conversation, rows, self.deliver_chat(conversation, items, claimed_at).await)
                });
            }
            tokio::select! {
                Some((conversation, rows, result)) = running.next(), if !running.is_empty() => {
                    active.remove(&conversation);
                    outstanding -= rows;
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "delivery failed; the rows come back when their claim lapses");
                    }
                }
                claimed = async { (&mut claim.as_mut().expect("claiming").0).await }, if claim.is_some() => {
                    let (_, claimed_at) = claim.take().expect("claiming");
                    match claimed {
                        Ok(items) if !items.is_empty() => {
                            outstanding += items.len();
                            queued.extend(by_chat(items).into_iter().map(|(c, items)| (c, items, claimed_at)));
                        }
                        Ok(_) => claim_at = tokio::time::Instant::now() + self.config.poll_interval,
                        Err(e) => {
                            tracing::warn!(error = %e, "claiming rows to deliver failed; retrying");
                            claim_at = tokio::time::Instant::now() + self.config.poll_interval;
                        }
                    }
                }
                _ = woken_by.notified(), if !stopping && claim.is_none() => {
                    if let Some(next) = pass_on {
                        next.notify_one();
                    }
                    claim_at = tokio::time::Instant::now();
                }
                _ = tokio::time::sleep_until(claim_at), if !stopping && claim.is_none() && claim_at > tokio::time::Instant::now() => {}
                _ = shutdown.cancelled(), if !stopping => {}
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
        let chats = by_chat(items);
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
        let spacing = match conv.kind {
            ConversationKind::Private => gate.spacing.0,
            ConversationKind::Public => gate.spacing.1,
        };
        if let Some(wait) = gate.since_answered(&conv.platform_chat_id, spacing) {
            if wait > Duration::from_millis(200) {
                let until = now + chrono::Duration::from_std(wait).unwrap_or_default();
                self.store.mark_retry(item.id, worker, until, "chat rate limit").await?;
                return Ok(Outcome::Deferred(until));
            }
            tokio::time::sleep(wait).await;
        }
        let paid = item.extra["paid_broadcast"].as_bool() == Some(true);
        let budget = paid.then_some(gate.paid.as_ref()).flatten().or(gate.shared.as_ref());
        // What needs the store happens before the slot, so that the request leaves right at its slot. A bulk send
        // first waits for its place in the budget's queue, so its check is only about `READY_SPAN` older than it.
        let ticket = match budget {
            Some(budget) => Some(budget.enter(item.priority).await),
            None => None,
        };
        if self.cancelled(item).await? {
            return Ok(Outcome::Cancelled);
        }
        let checked = Instant::now();
        match (&gate.local, ticket) {
            (_, Some(ticket)) => ticket.slot(&self.store).await?,
            (Some(local), None) => local.until_ready().await,
            (None, None) => {}
        }
        // The slot was long in coming (answers took the slots before it, or the machine was busy): check again.
        if checked.elapsed() > RECHECK_AFTER && self.cancelled(item).await? {
            return Ok(Outcome::Cancelled);
        }
        let paced = match budget {
            Some(budget) => Some(budget.pacer.pass().await),
            None => None,
        };
        // A claim this old may have lapsed meanwhile and be another worker's now: give it back unsent.
        if claimed_at.elapsed() > self.config.lease / 2 {
            let now = Utc::now();
            self.store.mark_retry(item.id, worker, now, "claim too old to send safely").await?;
            return Ok(Outcome::Deferred(now));
        }

        let result = sender.send(conv, item).await;
        drop(paced);
        gate.record_answer(&conv.platform_chat_id);
        match result {
            Ok(sent) => {
                self.store.mark_sent(item.id, worker, sent.platform_message_id.as_deref(), Utc::now()).await?;
                Ok(Outcome::Sent)
            }
            Err(SendError::RateLimited { retry_after, scope }) => {
                let until = Utc::now() + chrono::Duration::from_std(retry_after).unwrap_or_default();
                tracing::info!(platform = %conv.platform, ?scope, ?retry_after, "platform asked to slow down");
                // A hold of the whole bot holds every instance: the budgets they draw slots from start after it.
                if scope == LimitScope::Global {
                    for b in [&gate.shared, &gate.paid].into_iter().flatten() {
                        if let Err(e) = self.store.hold_send_budget(&b.bucket, until).await {
                            tracing::warn!(bucket = %b.bucket, error = %e, "could not hold the shared send budget");
                        }
                    }
                }
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

    /// Whether a notice message was superseded by a newer version, or its chat said /stop, since it was claimed:
    /// one read by primary key, so that only the newest version goes out.
    async fn cancelled(&self, item: &OutboxItem) -> StoreResult<bool> {
        if !item.idempotency_key.starts_with("notice:") {
            return Ok(false);
        }
        let now = self.store.outbox_item(item.id).await?;
        Ok(now.state != webcare_domain::OutboxState::Sending || now.claimed_by.as_deref() != Some(&self.config.worker))
    }
}

/// Claimed rows per chat in claim order (priority first), so that one chat's messages keep their order.
fn by_chat(items: Vec<OutboxItem>) -> Vec<(webcare_domain::ConversationId, Vec<OutboxItem>)> {
    let mut chats: Vec<(webcare_domain::ConversationId, Vec<OutboxItem>)> = Vec::new();
    let mut index: HashMap<webcare_domain::ConversationId, usize> = HashMap::new();
    for item in items {
        match index.get(&item.conversation) {
            Some(&i) => chats[i].1.push(item),
            None => {
                index.insert(item.conversation, chats.len());
                chats.push((item.conversation, vec![item]));
            }
        }
    }
    chats
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_rates_keep_the_count_per_window() {
        let limits = PlatformLimits::telegram().with_rates(300.0, 10.0, 200.0, Some(10_000.0));
        assert!(limits.window.abs_diff(Duration::from_millis(100)) < Duration::from_micros(1), "{:?}", limits.window);
        assert_eq!(limits.per_window(limits.global), 30);
        assert_eq!(limits.per_window(limits.paid_global.unwrap()), 1000);
        let discord = PlatformLimits::discord().scaled(10);
        assert_eq!((discord.window, discord.per_window(discord.global)), (Duration::from_millis(100), 50));
    }

    /// Requests answered after 0 to 8 ms, as fast as the pacer lets them go: of any four, the last leaves a
    /// window after the first was answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pacer_keeps_every_window_to_its_count() {
        let pacer = Arc::new(Pacer::new(3, Duration::from_millis(40)));
        let log = Arc::new(Mutex::new(Vec::new()));
        let sends = (0..16u64).map(|i| {
            let (pacer, log) = (pacer.clone(), log.clone());
            tokio::spawn(async move {
                let paced = pacer.pass().await;
                let passed = Instant::now();
                tokio::time::sleep(Duration::from_millis(i * 5 % 9)).await;
                let seq = paced.seq;
                // The answer's time is read before the pass is given back: read after, a task descheduled in
                // between would record it later than the pacer saw it, and the test would fail on a correct pacer.
                let answered = Instant::now();
                drop(paced);
                log.lock().unwrap().push((seq, passed, answered));
            })
        });
        for send in sends.collect::<Vec<_>>() {
            send.await.unwrap();
        }
        let mut log = log.lock().unwrap().clone();
        log.sort();
        for k in 3..log.len() {
            let answered = log[..=k - 3].iter().map(|(_, _, a)| *a).max().unwrap();
            assert!(log[k].1 >= answered + Duration::from_millis(40), "request {k} left too early");
        }
    }

    #[tokio::test]
    async fn the_pacer_holds_nothing_back_while_requests_are_spread_out() {
        let pacer = Pacer::new(3, Duration::from_millis(30));
        let started = Instant::now();
        for _ in 0..6 {
            drop(pacer.pass().await);
        }
        assert!(started.elapsed() >= Duration::from_millis(30), "the fourth waited a window");
        // A request that never answers holds the ones after it back by two windows at most.
        let pacer = Pacer::new(1, Duration::from_millis(20));
        let hung = pacer.pass().await;
        let started = Instant::now();
        drop(pacer.pass().await);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(39) && waited < Duration::from_millis(200), "waited {waited:?}");
        drop(hung);
    }
}
