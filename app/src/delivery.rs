//! The delivery engine: sends outbox rows through the platform [`Sender`]s within the platforms' limits.
//!
//! A worker claims due rows (highest priority first, so a person's answer never waits behind a broadcast), sends
//! each through its platform's sender, and records the outcome: sent, retry later (a 429's `retry_after` for exactly
//! the scope it names; backoff with jitter for 5xx and network errors), or failed for good. Rows for one chat are
//! sent in order, one at a time; different chats go out concurrently. Token buckets (governor) hold each platform
//! and each chat below the platform's published limits, so that a 429 is the exception.
//!
//! The step function [`Delivery::step`] is what tests call; [`Delivery::run`] loops it until shutdown.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt as _;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use webcare_domain::{
    Conversation, ConversationKind, LimitScope, OutboxItem, Platform, SendError, Sender, Store, StoreResult, Timestamp,
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
        }
    }

    /// Discord: 50 requests per second per bot, about 5 messages per 5 seconds per channel.
    pub fn discord() -> Self {
        PlatformLimits {
            global: per(50, Duration::from_secs(1)),
            private_chat: per(5, Duration::from_secs(5)),
            group_chat: per(5, Duration::from_secs(5)),
        }
    }

    /// The web chat is webcare's own page: only a guard against runaway loops.
    pub fn webchat() -> Self {
        PlatformLimits {
            global: Quota::per_second(NonZeroU32::new(10_000).unwrap()),
            private_chat: Quota::per_second(NonZeroU32::new(100).unwrap()),
            group_chat: Quota::per_second(NonZeroU32::new(100).unwrap()),
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
    pub limits: BTreeMap<&'static str, PlatformLimits>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            worker: format!("webcare-{}-{}", std::process::id(), rand::random::<u32>()),
            lease: Duration::from_secs(60),
            batch: 64,
            concurrency: 32,
            poll_interval: Duration::from_millis(250),
            max_attempts: 12,
            limits: Platform::ALL.iter().map(|p| (p.as_str(), PlatformLimits::for_platform(*p))).collect(),
        }
    }
}

/// Limits and 429 holds for one platform.
struct PlatformGate {
    global: DefaultDirectRateLimiter,
    private_chats: DefaultKeyedRateLimiter<String>,
    group_chats: DefaultKeyedRateLimiter<String>,
    /// Scopes the platform told us to leave alone, until when.
    held: Mutex<HashMap<LimitScope, Timestamp>>,
}

impl PlatformGate {
    fn new(limits: PlatformLimits) -> Self {
        PlatformGate {
            global: RateLimiter::direct(limits.global),
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

/// What one step did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Step {
    pub claimed: usize,
    pub sent: usize,
    pub deferred: usize,
    pub failed: usize,
}

pub struct Delivery {
    store: Arc<dyn Store>,
    senders: HashMap<Platform, Arc<dyn Sender>>,
    gates: HashMap<Platform, PlatformGate>,
    config: DeliveryConfig,
    wake: Arc<Notify>,
}

impl Delivery {
    pub fn new(store: Arc<dyn Store>, senders: Vec<Arc<dyn Sender>>, config: DeliveryConfig) -> Self {
        let gates = Platform::ALL
            .iter()
            .map(|p| {
                let limits = config.limits.get(p.as_str()).copied().unwrap_or_else(|| PlatformLimits::for_platform(*p));
                (*p, PlatformGate::new(limits))
            })
            .collect();
        Delivery {
            store,
            senders: senders.into_iter().map(|s| (s.platform(), s)).collect(),
            gates,
            config,
            wake: Arc::new(Notify::new()),
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

    /// Loops [`Delivery::step`] until `shutdown`; a step in progress finishes first.
    pub async fn run(&self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let idle = match self.step().await {
                Ok(step) => step.claimed == 0,
                Err(e) => {
                    tracing::warn!(error = %e, "delivery step failed; retrying");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                }
            }
        }
    }

    /// Claims due rows and delivers them.
    pub async fn step(&self) -> StoreResult<Step> {
        let now = Utc::now();
        let items = self.store.claim_outbox(&self.config.worker, now, self.config.lease, self.config.batch).await?;
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
            .map(|(conversation, items)| self.deliver_chat(conversation, items))
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        for r in results {
            let s = r?;
            step.sent += s.sent;
            step.deferred += s.deferred;
            step.failed += s.failed;
        }
        Ok(step)
    }

    async fn deliver_chat(
        &self,
        conversation: webcare_domain::ConversationId,
        items: Vec<OutboxItem>,
    ) -> StoreResult<Step> {
        let mut step = Step::default();
        let mut conv = self.store.conversation(conversation).await?;
        let mut iter = items.into_iter();
        while let Some(item) = iter.next() {
            match self.deliver(&mut conv, &item).await? {
                Outcome::Sent => step.sent += 1,
                Outcome::Failed => step.failed += 1,
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

    async fn deliver(&self, conv: &mut Conversation, item: &OutboxItem) -> StoreResult<Outcome> {
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
        gate.global.until_ready().await;

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
