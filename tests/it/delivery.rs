//! The delivery engine over a real database, with a scripted sender standing in for a platform. (The platform
//! adapters' own tests drive it against the fake Telegram and Discord servers.)

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use webcare_app::delivery::{Delivery, DeliveryConfig, PlatformLimits};
use webcare_domain::{
    Conversation, ConversationId, ConversationKind, LimitScope, NewConversation, NewOutbox, OutboxItem, OutboxState,
    Platform, Priority, SendError, Sender, Sent, Store,
};
use webcare_tests::TestDb;

/// Answers each send with the next scripted result (success when the script is empty) and records what it sent.
struct Scripted {
    platform: Platform,
    script: Mutex<VecDeque<Result<(), SendError>>>,
    sent: Mutex<Vec<(String, String)>>,
}

impl Scripted {
    fn new(platform: Platform, script: Vec<Result<(), SendError>>) -> Arc<Self> {
        Arc::new(Scripted { platform, script: Mutex::new(script.into()), sent: Mutex::new(Vec::new()) })
    }

    fn sent(&self) -> Vec<(String, String)> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Sender for Scripted {
    fn platform(&self) -> Platform {
        self.platform
    }

    async fn send(&self, to: &Conversation, item: &OutboxItem) -> Result<Sent, SendError> {
        let next = self.script.lock().unwrap().pop_front().unwrap_or(Ok(()));
        next?;
        let mut sent = self.sent.lock().unwrap();
        sent.push((to.platform_chat_id.clone(), item.body.clone()));
        Ok(Sent { platform_message_id: Some(format!("m{}", sent.len())) })
    }
}

async fn chat(db: &dyn Store, platform: Platform, id: &str, kind: ConversationKind) -> ConversationId {
    db.upsert_conversation(NewConversation { platform, platform_chat_id: id.into(), kind, title: None }, Utc::now())
        .await
        .unwrap()
        .id
}

async fn enqueue(db: &dyn Store, c: ConversationId, body: &str, priority: Priority) -> webcare_domain::OutboxId {
    db.enqueue(NewOutbox::message(c, body, body, priority, Utc::now()), Utc::now()).await.unwrap().into_inner().id
}

fn fast() -> DeliveryConfig {
    let mut config = DeliveryConfig::default();
    for p in Platform::ALL {
        config.limits.insert(p.as_str(), PlatformLimits::for_platform(*p).scaled(1000));
    }
    config
}

fn delivery(t: &TestDb, sender: Arc<Scripted>, config: DeliveryConfig) -> Delivery {
    Delivery::new(Arc::new(t.db().clone()), vec![sender], config)
}

#[tokio::test]
async fn rows_go_out_by_priority_and_are_marked_sent() {
    let t = TestDb::sqlite().await;
    let c1 = chat(t.db(), Platform::Telegram, "1", ConversationKind::Private).await;
    let c2 = chat(t.db(), Platform::Telegram, "2", ConversationKind::Private).await;
    let b = enqueue(t.db(), c1, "broadcast", Priority::BROADCAST).await;
    let r = enqueue(t.db(), c2, "agent reply", Priority::AGENT_REPLY).await;
    let sender = Scripted::new(Platform::Telegram, vec![]);
    let mut config = fast();
    config.concurrency = 1;
    let d = delivery(&t, sender.clone(), config);
    let step = d.step().await.unwrap();
    assert_eq!((step.claimed, step.sent), (2, 2));
    assert_eq!(sender.sent(), vec![("2".into(), "agent reply".into()), ("1".into(), "broadcast".into())]);
    for id in [b, r] {
        let item = t.db().outbox_item(id).await.unwrap();
        assert_eq!(item.state, OutboxState::Sent);
        assert!(item.platform_message_id.is_some());
    }
    assert_eq!(d.step().await.unwrap().claimed, 0, "nothing is sent twice");
}

#[tokio::test]
async fn a_429_holds_its_scope_and_the_row_is_sent_once_afterwards() {
    let t = TestDb::sqlite().await;
    let c = chat(t.db(), Platform::Telegram, "9", ConversationKind::Private).await;
    let other = chat(t.db(), Platform::Telegram, "10", ConversationKind::Private).await;
    let id = enqueue(t.db(), c, "hello", Priority::AUTOMATIC).await;
    let sender = Scripted::new(
        Platform::Telegram,
        vec![Err(SendError::RateLimited {
            retry_after: Duration::from_millis(300),
            scope: LimitScope::Chat("9".into()),
        })],
    );
    let d = delivery(&t, sender.clone(), fast());
    let step = d.step().await.unwrap();
    assert_eq!((step.sent, step.deferred), (0, 1));
    let item = t.db().outbox_item(id).await.unwrap();
    assert_eq!(item.state, OutboxState::Pending);
    assert!(item.next_attempt_at >= Utc::now() + chrono::Duration::milliseconds(200));
    // Another chat is not held back by this chat's limit.
    enqueue(t.db(), other, "other chat", Priority::AUTOMATIC).await;
    assert_eq!(d.step().await.unwrap().sent, 1);
    assert_eq!(sender.sent(), vec![("10".into(), "other chat".into())]);
    tokio::time::sleep(Duration::from_millis(320)).await;
    assert_eq!(d.step().await.unwrap().sent, 1);
    assert_eq!(sender.sent().iter().filter(|(chat, _)| chat == "9").count(), 1);
    assert_eq!(t.db().outbox_item(id).await.unwrap().attempts, 2);
}

#[tokio::test]
async fn an_unreachable_recipient_is_not_tried_again() {
    let t = TestDb::sqlite().await;
    let c = chat(t.db(), Platform::Telegram, "5", ConversationKind::Private).await;
    let first = enqueue(t.db(), c, "one", Priority::AUTOMATIC).await;
    let sender = Scripted::new(Platform::Telegram, vec![Err(SendError::Unreachable("403: bot was blocked".into()))]);
    let d = delivery(&t, sender.clone(), fast());
    assert_eq!(d.step().await.unwrap().failed, 1);
    assert_eq!(t.db().outbox_item(first).await.unwrap().state, OutboxState::Failed);
    assert!(t.db().conversation(c).await.unwrap().unreachable);
    let second = enqueue(t.db(), c, "two", Priority::AUTOMATIC).await;
    assert_eq!(d.step().await.unwrap().failed, 1);
    assert_eq!(t.db().outbox_item(second).await.unwrap().state, OutboxState::Failed);
    assert!(sender.sent().is_empty(), "no request reached the platform after it said the bot is blocked");
}

#[tokio::test]
async fn server_errors_back_off_then_succeed_and_give_up_in_the_end() {
    let t = TestDb::sqlite().await;
    let c = chat(t.db(), Platform::Discord, "7", ConversationKind::Public).await;
    let id = enqueue(t.db(), c, "x", Priority::AUTOMATIC).await;
    let sender = Scripted::new(Platform::Discord, vec![Err(SendError::Transient("502".into()))]);
    let d = delivery(&t, sender.clone(), fast());
    assert_eq!(d.step().await.unwrap().deferred, 1);
    let item = t.db().outbox_item(id).await.unwrap();
    let wait = item.next_attempt_at - Utc::now();
    assert!(wait > chrono::Duration::milliseconds(500) && wait <= chrono::Duration::milliseconds(1200), "{wait:?}");
    assert_eq!(d.step().await.unwrap().claimed, 0, "not before the backoff is over");

    let mut config = fast();
    config.max_attempts = 1;
    let give_up = delivery(&t, Scripted::new(Platform::Discord, vec![Err(SendError::Transient("503".into()))]), config);
    let id2 = enqueue(t.db(), c, "y", Priority::AUTOMATIC).await;
    assert_eq!(give_up.step().await.unwrap().failed, 1);
    assert_eq!(t.db().outbox_item(id2).await.unwrap().state, OutboxState::Failed);
    assert!(webcare_app::delivery::backoff(3) >= Duration::from_millis(3200));
    assert!(webcare_app::delivery::backoff(30) <= Duration::from_secs(360));
}

#[tokio::test]
async fn a_moved_chat_is_followed() {
    let t = TestDb::sqlite().await;
    let c = chat(t.db(), Platform::Telegram, "-100", ConversationKind::Public).await;
    enqueue(t.db(), c, "to the group", Priority::AUTOMATIC).await;
    let sender = Scripted::new(Platform::Telegram, vec![Err(SendError::Moved { new_chat_id: "-1001234".into() })]);
    let d = delivery(&t, sender.clone(), fast());
    d.step().await.unwrap();
    d.step().await.unwrap();
    assert_eq!(sender.sent(), vec![("-1001234".into(), "to the group".into())]);
    assert_eq!(t.db().conversation(c).await.unwrap().platform_chat_id, "-1001234");
}

#[tokio::test]
async fn a_chat_gets_no_more_than_its_limit_and_keeps_its_order() {
    let t = TestDb::sqlite().await;
    let c = chat(t.db(), Platform::Telegram, "42", ConversationKind::Private).await;
    for body in ["first", "second", "third"] {
        enqueue(t.db(), c, body, Priority::AUTOMATIC).await;
    }
    let sender = Scripted::new(Platform::Telegram, vec![]);
    // Telegram's real limit: one message per second per chat.
    let d = delivery(&t, sender.clone(), DeliveryConfig::default());
    let step = d.step().await.unwrap();
    assert_eq!((step.sent, step.deferred), (1, 2));
    assert_eq!(sender.sent(), vec![("42".into(), "first".into())]);
    let pending = t
        .db()
        .claim_outbox("peek", Utc::now() + chrono::Duration::seconds(2), Duration::from_secs(1), 10)
        .await
        .unwrap();
    assert_eq!(pending.iter().map(|i| i.body.as_str()).collect::<Vec<_>>(), vec!["second", "third"]);
}

/// Records when each message went out, taking `delay` per send (a slow platform).
struct Recorder {
    delay: Duration,
    sent: Mutex<Vec<(std::time::Instant, String, String)>>,
}

impl Recorder {
    fn new(delay: Duration) -> Arc<Self> {
        Arc::new(Recorder { delay, sent: Mutex::new(Vec::new()) })
    }

    fn sent(&self) -> Vec<(std::time::Instant, String, String)> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Sender for Recorder {
    fn platform(&self) -> Platform {
        Platform::Telegram
    }

    async fn send(&self, to: &Conversation, item: &OutboxItem) -> Result<Sent, SendError> {
        tokio::time::sleep(self.delay).await;
        self.sent.lock().unwrap().push((std::time::Instant::now(), to.platform_chat_id.clone(), item.body.clone()));
        Ok(Sent { platform_message_id: None })
    }
}

/// Telegram's limits with the overall one at `per_second`, and no margin, so that timings are exact.
fn telegram_at(per_second: f64) -> DeliveryConfig {
    let mut config = fast();
    config.headroom = 1.0;
    config.limits.insert("telegram", PlatformLimits::telegram().with_rates(per_second, 1000.0, 60_000.0, None));
    config
}

contract!(two_engines_on_one_database_keep_to_one_budget, an_answer_takes_the_next_slot_during_a_broadcast);

async fn two_engines_on_one_database_keep_to_one_budget(t: &TestDb) {
    const ROWS: usize = 60;
    for i in 0..ROWS {
        let c = chat(t.db(), Platform::Telegram, &format!("{i}"), ConversationKind::Private).await;
        enqueue(t.db(), c, &format!("notice {i}"), Priority::BROADCAST).await;
    }
    // Two engines on two pools, as two webcare processes; each alone would go at 100/s.
    let (a, b) = (Recorder::new(Duration::ZERO), Recorder::new(Duration::ZERO));
    let engine = |db: webcare_storage::Db, sender: Arc<Recorder>, name: &str| {
        let config = DeliveryConfig { worker: name.into(), batch: 10, ..telegram_at(100.0) };
        Arc::new(Delivery::new(Arc::new(db), vec![sender], config))
    };
    let engines = [engine(t.another().await, a.clone(), "a"), engine(t.another().await, b.clone(), "b")];
    let shutdown = tokio_util::sync::CancellationToken::new();
    let runs: Vec<_> = engines
        .iter()
        .map(|e| {
            let (e, shutdown) = (e.clone(), shutdown.clone());
            tokio::spawn(async move { e.run(shutdown).await })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while a.sent().len() + b.sent().len() < ROWS && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    for r in runs {
        r.await.unwrap();
    }
    let (a, b) = (a.sent(), b.sent());
    assert!(!a.is_empty() && !b.is_empty(), "both engines share the work: {} and {}", a.len(), b.len());
    let mut all: Vec<_> = a.iter().chain(&b).collect();
    assert_eq!(all.len(), ROWS, "every row once");
    all.sort_by_key(|(at, _, _)| *at);
    let chats: std::collections::BTreeSet<_> = all.iter().map(|(_, chat, _)| chat.clone()).collect();
    assert_eq!(chats.len(), ROWS, "no chat twice");
    // 60 sends at 100/s together take at least 59 intervals of 10 ms; two separate budgets would take half.
    let span = all.last().unwrap().0 - all.first().unwrap().0;
    assert!(span >= Duration::from_millis(540), "60 sends took {span:?}: the engines did not share the budget");
    // And in no second-long window... here, no 100 ms window holds more than 10 (+1 for timer jitter).
    for (i, (start, _, _)) in all.iter().enumerate() {
        let within = all[i..].iter().take_while(|(at, _, _)| *at - *start < Duration::from_millis(100)).count();
        assert!(within <= 11, "{within} sends within 100 ms from send {i}");
    }
}

async fn an_answer_takes_the_next_slot_during_a_broadcast(t: &TestDb) {
    for i in 0..400 {
        let c = chat(t.db(), Platform::Telegram, &format!("b{i}"), ConversationKind::Private).await;
        enqueue(t.db(), c, "notice", Priority::BROADCAST).await;
    }
    let sender = Recorder::new(Duration::ZERO);
    let config = DeliveryConfig { batch: 200, concurrency: 200, ..telegram_at(50.0) };
    let d = Arc::new(Delivery::new(Arc::new(t.db().clone()), vec![sender.clone()], config));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let run = {
        let (d, shutdown) = (d.clone(), shutdown.clone());
        tokio::spawn(async move { d.run(shutdown).await })
    };
    // The broadcast fills the budget (400 rows at 50/s: 8 s); an agent answers someone meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let customer = chat(t.db(), Platform::Telegram, "customer", ConversationKind::Private).await;
    let asked = std::time::Instant::now();
    enqueue(t.db(), customer, "an agent's answer", Priority::AGENT_REPLY).await;
    d.waker().notify_one();
    let deadline = asked + Duration::from_secs(5);
    let answered = loop {
        if let Some((at, _, _)) = sender.sent().into_iter().find(|(_, chat, _)| chat == "customer") {
            break at;
        }
        assert!(std::time::Instant::now() < deadline, "the answer waited more than 5 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let broadcast_sent = sender.sent().len();
    shutdown.cancel();
    run.await.unwrap();
    let waited = answered - asked;
    assert!(waited < Duration::from_millis(400), "the answer waited {waited:?} behind the broadcast");
    assert!(broadcast_sent < 200, "the broadcast was still under way ({broadcast_sent} sent)");
}

#[tokio::test]
async fn a_claim_older_than_half_its_lease_is_given_back_unsent() {
    let t = TestDb::sqlite().await;
    let c = chat(t.db(), Platform::Telegram, "slow", ConversationKind::Private).await;
    enqueue(t.db(), c, "first", Priority::AUTOMATIC).await;
    let second = enqueue(t.db(), c, "second", Priority::AUTOMATIC).await;
    // The platform takes 1.2 s for the first message; the claim's lease is 2 s, so the second is not sent on it.
    let sender = Recorder::new(Duration::from_millis(1200));
    let mut config = telegram_at(1000.0);
    config.lease = Duration::from_secs(2);
    let d = Delivery::new(Arc::new(t.db().clone()), vec![sender.clone()], config);
    let step = d.step().await.unwrap();
    assert_eq!((step.sent, step.deferred), (1, 1));
    assert_eq!(sender.sent().len(), 1);
    let item = t.db().outbox_item(second).await.unwrap();
    assert_eq!(item.state, OutboxState::Pending);
    assert_eq!(item.last_error.as_deref(), Some("claim too old to send safely"));
    assert_eq!(d.step().await.unwrap().sent, 1, "a fresh claim sends it");
}
