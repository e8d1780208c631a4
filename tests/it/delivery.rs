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
    // Another chat: a row to `c` waits behind "x".
    let c2 = chat(t.db(), Platform::Discord, "8", ConversationKind::Public).await;
    let id2 = enqueue(t.db(), c2, "y", Priority::AUTOMATIC).await;
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
    assert_eq!((step.claimed, step.sent), (1, 1), "one row of a chat at a time");
    assert_eq!(sender.sent(), vec![("42".into(), "first".into())]);
    let step = d.step().await.unwrap();
    assert_eq!((step.sent, step.deferred), (0, 1), "the second waits for the chat's limit");
    let pending = t
        .db()
        .claim_outbox("peek", Utc::now() + chrono::Duration::seconds(2), Duration::from_secs(1), 10)
        .await
        .unwrap();
    assert_eq!(pending.iter().map(|i| i.body.as_str()).collect::<Vec<_>>(), vec!["second"], "the third after it");
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

    fn sent(&self) -> SentLog {
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

/// What one engine's recorder saw go out: when, to which chat, what.
type SentLog = Vec<(std::time::Instant, String, String)>;

/// Two engines on two pools of `t`'s database, as two webcare processes ("a" and "b", with `config` otherwise),
/// sending through `senders` until `rows` messages went out or `limit` passed; what each sent.
async fn two_engines_until(
    t: &TestDb,
    senders: &(Arc<Recorder>, Arc<Recorder>),
    config: DeliveryConfig,
    rows: usize,
    limit: Duration,
) -> (SentLog, SentLog) {
    let engine = |db: webcare_storage::Db, sender: Arc<Recorder>, name: &str| {
        let config = DeliveryConfig { worker: name.into(), ..config.clone() };
        Arc::new(Delivery::new(Arc::new(db), vec![sender], config))
    };
    let (a, b) = senders;
    let engines = [engine(t.another().await, a.clone(), "a"), engine(t.another().await, b.clone(), "b")];
    let runs: Vec<_> = engines.iter().map(Running::start).collect();
    let deadline = std::time::Instant::now() + limit;
    while a.sent().len() + b.sent().len() < rows && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for r in runs {
        r.stop().await;
    }
    (a.sent(), b.sent())
}

/// A delivery engine running in the background until `stop`.
struct Running {
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(delivery: &Arc<Delivery>) -> Running {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (d, s) = (delivery.clone(), shutdown.clone());
        Running { shutdown, task: tokio::spawn(async move { d.run(s).await }) }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

contract!(
    two_engines_on_one_database_keep_to_one_budget,
    an_answer_takes_the_next_slot_during_a_broadcast,
    a_429_for_the_whole_bot_on_one_engine_holds_the_other_too,
    two_engines_send_each_chats_messages_in_the_order_they_were_written
);

async fn two_engines_on_one_database_keep_to_one_budget(t: &TestDb) {
    const ROWS: usize = 60;
    for i in 0..ROWS {
        let c = chat(t.db(), Platform::Telegram, &format!("{i}"), ConversationKind::Private).await;
        enqueue(t.db(), c, &format!("notice {i}"), Priority::BROADCAST).await;
    }
    // Two engines on two pools, as two webcare processes; each alone would go at 100/s.
    let senders = (Recorder::new(Duration::ZERO), Recorder::new(Duration::ZERO));
    let config = DeliveryConfig { batch: 10, ..telegram_at(100.0) };
    let (a, b) = two_engines_until(t, &senders, config, ROWS, Duration::from_secs(20)).await;
    assert!(!a.is_empty() && !b.is_empty(), "both engines share the work: {} and {}", a.len(), b.len());
    let mut all: Vec<_> = a.iter().chain(&b).collect();
    assert_eq!(all.len(), ROWS, "every row once");
    all.sort_by_key(|(at, _, _)| *at);
    let chats: std::collections::BTreeSet<_> = all.iter().map(|(_, chat, _)| chat.clone()).collect();
    assert_eq!(chats.len(), ROWS, "no chat twice");
    // 60 sends at 100/s together take at least 59 intervals of 10 ms; two separate budgets would take half.
    let span = all.last().unwrap().0 - all.first().unwrap().0;
    assert!(span >= Duration::from_millis(540), "60 sends took {span:?}: the engines did not share the budget");
    // And no 100 ms window holds more than 10, where two budgets would allow 20. The recorder stamps a send when its
    // task runs, which on a loaded 2-core machine can be more than a 10 ms interval after its slot (CI saw a window
    // of 12 that began at a late send): two sends of slack for that.
    for (i, (start, _, _)) in all.iter().enumerate() {
        let within = all[i..].iter().take_while(|(at, _, _)| *at - *start < Duration::from_millis(100)).count();
        assert!(within <= 12, "{within} sends within 100 ms from send {i}");
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
    let run = Running::start(&d);
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
    run.stop().await;
    let waited = answered - asked;
    assert!(waited < Duration::from_millis(400), "the answer waited {waited:?} behind the broadcast");
    assert!(broadcast_sent < 200, "the broadcast was still under way ({broadcast_sent} sent)");
}

#[tokio::test]
async fn a_claim_older_than_half_its_lease_is_given_back_unsent() {
    let t = TestDb::sqlite().await;
    let c = chat(t.db(), Platform::Telegram, "slow", ConversationKind::Private).await;
    enqueue(t.db(), c, "first", Priority::AUTOMATIC).await;
    let c2 = chat(t.db(), Platform::Telegram, "next", ConversationKind::Private).await;
    let second = enqueue(t.db(), c2, "second", Priority::AUTOMATIC).await;
    // The platform takes 1.2 s for the first message, and one chat goes at a time; the claim's lease is 2 s, so the
    // second is not sent on it.
    let sender = Recorder::new(Duration::from_millis(1200));
    let mut config = telegram_at(1000.0);
    config.lease = Duration::from_secs(2);
    config.concurrency = 1;
    let d = Delivery::new(Arc::new(t.db().clone()), vec![sender.clone()], config);
    let step = d.step().await.unwrap();
    assert_eq!((step.sent, step.deferred), (1, 1));
    assert_eq!(sender.sent().len(), 1);
    let item = t.db().outbox_item(second).await.unwrap();
    assert_eq!(item.state, OutboxState::Pending);
    assert_eq!(item.last_error.as_deref(), Some("claim too old to send safely"));
    assert_eq!(d.step().await.unwrap().sent, 1, "a fresh claim sends it");
}

/// A notice with `n` Telegram subscribers, the app around it, and an engine at `per_second` sending to `sender`.
async fn broadcast_setup(
    t: &TestDb,
    n: usize,
    per_second: f64,
    sender: Arc<dyn Sender>,
) -> (webcare_tests::App, webcare_domain::Notice, Vec<ConversationId>, Arc<Delivery>) {
    let app = webcare_tests::app(t.db()).await;
    let notice = app
        .notices
        .create(
            webcare_app::notices::NoticeInput {
                title: "Storing Utrecht".into(),
                text: "v1: we onderzoeken het".into(),
                texts: Default::default(),
                services: vec![webcare_domain::Service::Internet],
                regions: vec!["Utrecht".into()],
                state: webcare_domain::NoticeState::Investigating,
                draft: false,
                paid_broadcast: false,
            },
            &admin(t.db()).await,
            Utc::now(),
        )
        .await
        .unwrap();
    let chats: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let conversations = t.db().seed_subscribers(notice.id, Platform::Telegram, &chats, Utc::now()).await.unwrap();
    app.notices.broadcast(&notice, Utc::now()).await.unwrap();
    let config = DeliveryConfig { poll_interval: Duration::from_millis(20), ..telegram_at(per_second) };
    let delivery = Arc::new(Delivery::new(app.store.clone(), vec![sender], config).with_waker(app.wake.clone()));
    (app, notice, conversations, delivery)
}

async fn admin(db: &webcare_storage::Db) -> webcare_domain::Agent {
    let new = webcare_domain::NewAgent {
        name: format!("admin-{}", rand_suffix()),
        role: webcare_domain::Role::Admin,
        password_hash: None,
        at: Utc::now(),
    };
    db.create_agent(new).await.unwrap()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Runs `delivery` until `done` holds (at most 30 s), then stops it.
async fn run_until(delivery: &Arc<Delivery>, mut done: impl FnMut() -> bool) {
    let run = Running::start(delivery);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.stop().await;
}

fn per_chat(sent: &[(std::time::Instant, String, String)]) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut map = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (_, chat, body) in sent {
        map.entry(chat.clone()).or_default().push(body.clone());
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_version_replaces_the_older_one_not_yet_sent() {
    let t = TestDb::sqlite().await;
    let sender = Recorder::new(Duration::ZERO);
    let (app, notice, _, delivery) = broadcast_setup(&t, 150, 100.0, sender.clone()).await;
    // Version 1 is under way (150 at 100/s) when version 2 comes.
    let run = Running::start(&delivery);
    while sender.sent().len() < 30 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let change = webcare_domain::NoticeChange { text: Some("v2: hersteld om 14:00".into()), ..Default::default() };
    app.notices.update(notice.id, change, &admin(t.db()).await, Utc::now()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while per_chat(&sender.sent()).values().filter(|b| b.iter().any(|t| t.contains("v2"))).count() < 150 {
        assert!(std::time::Instant::now() < deadline, "not every subscriber got version 2");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.stop().await;
    let chats = per_chat(&sender.sent());
    let v1 = chats.values().filter(|b| b.iter().any(|t| t.contains("v1"))).count();
    for (chat, bodies) in &chats {
        let v2 = bodies.iter().filter(|t| t.contains("v2")).count();
        assert_eq!(v2, 1, "{chat} got version 2 once: {bodies:?}");
        assert!(bodies.last().unwrap().contains("v2"), "{chat} got version 1 after version 2: {bodies:?}");
        assert!(bodies.len() <= 2, "{chat}: {bodies:?}");
    }
    // Those that had not had version 1 when version 2 came get only version 2 (a few were in flight).
    assert!(v1 <= 40, "{v1} subscribers still got version 1 after it was superseded at 30");
    let p = app.notices.progress(notice.id).await.unwrap();
    assert_eq!((p.version, p.sent, p.pending), (2, 150, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_a_broadcast_ends_it_for_that_chat() {
    let t = TestDb::sqlite().await;
    let sender = Recorder::new(Duration::ZERO);
    let (_app, _, conversations, delivery) = broadcast_setup(&t, 150, 100.0, sender.clone()).await;
    let run = Running::start(&delivery);
    while sender.sent().len() < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The last 50 (by id, sent last) say /stop while the broadcast runs.
    for c in &conversations[100..] {
        t.db().unsubscribe_all(*c).await.unwrap();
    }
    let stopped: std::collections::BTreeSet<String> = (100..150).map(|i| format!("s{i}")).collect();
    // Until no row of the broadcast is left to send (sent, or cancelled by /stop).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let counts = t.db().outbox_counts().await.unwrap();
        if !counts.iter().any(|(s, n)| *n > 0 && matches!(s, OutboxState::Pending | OutboxState::Sending)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the broadcast did not settle: {counts:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.stop().await;
    let chats = per_chat(&sender.sent());
    let after_stop = chats.keys().filter(|c| stopped.contains(*c)).count();
    assert!(after_stop <= 8, "{after_stop} chats got the notice after /stop (only those in flight may)");
    assert!(chats.len() >= 100 - 1, "the others all got it: {}", chats.len());
    assert!(chats.values().all(|b| b.len() == 1), "nobody twice");
}

/// A platform that answers 429 (for the whole bot, 100 ms) to every third send during its first second.
struct Storm {
    started: std::time::Instant,
    calls: Mutex<u64>,
    inner: Arc<Recorder>,
}

#[async_trait]
impl Sender for Storm {
    fn platform(&self) -> Platform {
        Platform::Telegram
    }

    async fn send(&self, to: &Conversation, item: &OutboxItem) -> Result<Sent, SendError> {
        let call = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        if self.started.elapsed() < Duration::from_secs(1) && call % 3 == 0 {
            return Err(SendError::RateLimited { retry_after: Duration::from_millis(100), scope: LimitScope::Global });
        }
        self.inner.send(to, item).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_delays_the_broadcast_but_loses_and_repeats_nothing() {
    let t = TestDb::sqlite().await;
    let inner = Recorder::new(Duration::ZERO);
    let storm = Arc::new(Storm { started: std::time::Instant::now(), calls: Mutex::new(0), inner: inner.clone() });
    let (app, notice, _, delivery) = broadcast_setup(&t, 120, 200.0, storm.clone()).await;
    run_until(&delivery, || inner.sent().len() >= 120).await;
    let chats = per_chat(&inner.sent());
    assert_eq!(chats.len(), 120, "everyone reached");
    assert!(chats.values().all(|b| b.len() == 1), "nobody twice");
    let refused = *storm.calls.lock().unwrap() - 120;
    assert!(refused >= 3, "the storm happened ({refused} refused)");
    let p = app.notices.progress(notice.id).await.unwrap();
    assert_eq!((p.sent, p.failed, p.pending), (120, 0, 0), "a 429 is never a failure");
}

/// Answers the first send with a 429 for the whole bot and records when; records every send after it.
struct LimitedOnce {
    retry_after: Duration,
    limited_at: Mutex<Option<std::time::Instant>>,
    sent: Mutex<Vec<std::time::Instant>>,
}

#[async_trait]
impl Sender for LimitedOnce {
    fn platform(&self) -> Platform {
        Platform::Telegram
    }

    async fn send(&self, _to: &Conversation, _item: &OutboxItem) -> Result<Sent, SendError> {
        let mut limited = self.limited_at.lock().unwrap();
        if limited.is_none() {
            *limited = Some(std::time::Instant::now());
            return Err(SendError::RateLimited { retry_after: self.retry_after, scope: LimitScope::Global });
        }
        self.sent.lock().unwrap().push(std::time::Instant::now());
        Ok(Sent { platform_message_id: None })
    }
}

/// Telegram answers one instance's send with a 429 for the whole bot: the other instance, which was not told,
/// sends nothing either until `retry_after` is over (beyond the slots it had already reserved, a quarter second's
/// worth), because the hold is written into the budget they share. Nothing is lost or sent twice.
async fn a_429_for_the_whole_bot_on_one_engine_holds_the_other_too(t: &TestDb) {
    const ROWS: usize = 30;
    for i in 0..ROWS {
        let c = chat(t.db(), Platform::Telegram, &format!("h{i}"), ConversationKind::Private).await;
        enqueue(t.db(), c, &format!("notice {i}"), Priority::BROADCAST).await;
    }
    let retry_after = Duration::from_secs(2);
    let limited = Arc::new(LimitedOnce { retry_after, limited_at: Mutex::new(None), sent: Mutex::new(Vec::new()) });
    let other = Recorder::new(Duration::ZERO);
    let config = |name: &str| DeliveryConfig { worker: name.into(), batch: 5, ..telegram_at(20.0) };
    let a = Arc::new(Delivery::new(Arc::new(t.another().await), vec![limited.clone()], config("a")));
    let b = Arc::new(Delivery::new(Arc::new(t.another().await), vec![other.clone()], config("b")));
    let runs = [Running::start(&a), Running::start(&b)];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while limited.sent.lock().unwrap().len() + other.sent().len() < ROWS && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for r in runs {
        r.stop().await;
    }
    let at = limited.limited_at.lock().unwrap().expect("engine a met the 429");
    let b_sent: Vec<std::time::Instant> = other.sent().iter().map(|(at, _, _)| *at).collect();
    assert_eq!(limited.sent.lock().unwrap().len() + b_sent.len(), ROWS, "every row once, the limited one too");
    // At 20/s a reservation holds at most 5 slots (a quarter second); after those, nothing until the hold ends.
    let during: Vec<Duration> = b_sent
        .iter()
        .filter(|s| **s > at)
        .map(|s| s.duration_since(at))
        .filter(|d| *d > Duration::from_millis(400) && *d < retry_after - Duration::from_millis(100))
        .collect();
    assert!(during.is_empty(), "engine b sent during the hold, at {during:?} after the 429");
    assert!(b_sent.iter().any(|s| *s > at + retry_after), "engine b went on after the hold");
}

/// An agent writes several messages to each of a few customers while two instances deliver: each customer reads
/// them in the order they were written, and each once, although either instance may send any of them.
async fn two_engines_send_each_chats_messages_in_the_order_they_were_written(t: &TestDb) {
    const CHATS: usize = 4;
    const PER_CHAT: usize = 12;
    let mut chats = Vec::new();
    for n in 0..CHATS {
        chats.push(chat(t.db(), Platform::Telegram, &format!("w{n}"), ConversationKind::Private).await);
    }
    // One chat's messages one after the other, as an agent writes them.
    for c in &chats {
        for i in 0..PER_CHAT {
            let new = NewOutbox::message(*c, format!("{i:02}"), format!("{c}:{i}"), Priority::AGENT_REPLY, Utc::now());
            t.db().enqueue(new, Utc::now()).await.unwrap();
        }
    }
    // A slow platform and one row per claim, so that both engines are busy at once and would take the next rows of
    // one chat together; one engine faster than the other, so that a later row would overtake.
    let senders = (Recorder::new(Duration::from_millis(15)), Recorder::new(Duration::from_millis(5)));
    let config = DeliveryConfig { batch: 1, ..telegram_at(1000.0) };
    let (a, b) = two_engines_until(t, &senders, config, CHATS * PER_CHAT, Duration::from_secs(30)).await;
    assert!(!a.is_empty() && !b.is_empty(), "both engines send: {} and {}", a.len(), b.len());
    let mut all: Vec<_> = a.iter().chain(&b).collect();
    assert_eq!(all.len(), CHATS * PER_CHAT, "every message once");
    all.sort_by_key(|(at, _, _)| *at);
    for n in 0..CHATS {
        let read: Vec<&str> =
            all.iter().filter(|(_, chat, _)| *chat == format!("w{n}")).map(|(_, _, body)| body.as_str()).collect();
        let written: Vec<String> = (0..PER_CHAT).map(|i| format!("{i:02}")).collect();
        assert_eq!(read, written, "chat w{n} reads its messages in order");
    }
}
