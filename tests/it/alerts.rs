//! Spike alerts posted to a webhook per service: the store's claims on both backends, and the notifier with the
//! real HTTP adapter against a real HTTP receiver (axum on 127.0.0.1) that answers as it is told.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{TimeZone, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use webcare_app::alerts::{AlertNotifier, AlertRoutes, NotifierConfig};
use webcare_domain::{
    AlertId, AlertSink, ConversationKind, InboundEvent, InboundKind, Intake, NewCluster, Platform, Service, SpikeAlert,
    Store, StoreError, Timestamp, WebhookState,
};
use webcare_tests::TestDb;

fn t(secs: i64) -> Timestamp {
    Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
}

/// Stores an alert as the bridge does, on a cluster of its own.
pub(crate) async fn raise(db: &dyn Store, service: Service, region: Option<&str>, at: Timestamp) -> SpikeAlert {
    let cluster = db
        .create_cluster(NewCluster { account: String::new(), service, region: region.map(Into::into), at })
        .await
        .unwrap();
    db.insert_alert(&SpikeAlert {
        id: AlertId(0),
        cluster: cluster.id,
        account: String::new(),
        service,
        region: region.map(Into::into),
        count: 6,
        samples: vec!["Storing? Geen internet, bel [phone]".into()],
        draft: [("nl".to_owned(), "We onderzoeken een storing.".to_owned())].into(),
        first_at: at,
        last_at: at,
        created_at: at,
    })
    .await
    .unwrap()
}

// The store's side, on SQLite and PostgreSQL.

contract!(
    alert_webhooks_start_pending_and_are_claimed_by_one_notifier_at_a_time,
    alert_webhook_retries_wait_and_final_states_keep_their_reason,
    alert_webhook_concurrent_claimers_never_share_an_alert,
    two_notifiers_post_each_alert_once,
    alerts_since_gives_the_recent_ones_newest_first,
);

async fn alerts_since_gives_the_recent_ones_newest_first(t_db: &TestDb) {
    let db = t_db.db();
    let old = raise(db, Service::Tv, Some("Gent"), t(0)).await;
    let mid = raise(db, Service::Internet, Some("Utrecht"), t(100)).await;
    let new = raise(db, Service::Mobile, None, t(200)).await;
    let ids = |alerts: Vec<SpikeAlert>| alerts.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(db.alerts_since(t(100)).await.unwrap()), vec![new.id, mid.id], "from `since` on, newest first");
    assert_eq!(ids(db.alerts_since(t(201)).await.unwrap()), vec![]);
    assert_eq!(ids(db.alerts().await.unwrap()), vec![new.id, mid.id, old.id], "all");
}

async fn alert_webhooks_start_pending_and_are_claimed_by_one_notifier_at_a_time(t_db: &TestDb) {
    let db = t_db.db();
    let a = raise(db, Service::Internet, Some("Utrecht"), t(0)).await;
    let b = raise(db, Service::Tv, None, t(10)).await;
    let fresh = db.alert_webhook(a.id).await.unwrap();
    assert_eq!((fresh.state, fresh.attempts, fresh.route, fresh.last_error), (WebhookState::Pending, 0, None, None));
    let all = db.alert_webhooks().await.unwrap();
    assert_eq!(all.iter().map(|w| w.alert).collect::<Vec<_>>(), vec![b.id, a.id], "in the order of alerts()");

    let lease = Duration::from_secs(30);
    let claimed = db.claim_alert_webhooks("w1", t(20), lease, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|(a, _)| a.id).collect::<Vec<_>>(), vec![a.id, b.id]);
    assert_eq!(claimed[0].0, a, "the alert comes back whole");
    assert_eq!((claimed[0].1.state, claimed[0].1.attempts), (WebhookState::Sending, 1));
    assert!(db.claim_alert_webhooks("w2", t(49), lease, 10).await.unwrap().is_empty(), "claimed until the lease ends");

    // w1 dies holding them; w2 takes them once the lease has run out.
    let again = db.claim_alert_webhooks("w2", t(50), lease, 1).await.unwrap();
    assert_eq!(again.len(), 1, "at most `limit`");
    assert_eq!((again[0].0.id, again[0].1.attempts), (a.id, 2));
    assert!(!db.mark_alert_posted(a.id, "w1", "internet", t(51)).await.unwrap(), "the old claim is void");
    assert!(db.mark_alert_posted(a.id, "w2", "internet", t(51)).await.unwrap());
    assert!(!db.mark_alert_posted(a.id, "w2", "internet", t(52)).await.unwrap(), "posted stays posted");
    let posted = db.alert_webhook(a.id).await.unwrap();
    assert_eq!(
        (posted.state, posted.route.as_deref(), posted.posted_at, posted.attempts),
        (WebhookState::Posted, Some("internet"), Some(t(51)), 2)
    );
    assert!(db.claim_alert_webhooks("w3", t(10_000), lease, 10).await.unwrap().iter().all(|(x, _)| x.id != a.id));
    assert!(matches!(db.alert_webhook(AlertId(999)).await, Err(StoreError::NotFound { .. })));
}

async fn alert_webhook_retries_wait_and_final_states_keep_their_reason(t_db: &TestDb) {
    let db = t_db.db();
    let a = raise(db, Service::Internet, Some("Utrecht"), t(0)).await;
    let b = raise(db, Service::Tv, None, t(0)).await;
    let c = raise(db, Service::Mobile, None, t(0)).await;
    let lease = Duration::from_secs(3600);
    assert_eq!(db.claim_alert_webhooks("w", t(1), lease, 10).await.unwrap().len(), 3);

    assert!(!db.mark_alert_retry(a.id, "intruder", "internet", t(60), "HTTP 503").await.unwrap());
    assert!(db.mark_alert_retry(a.id, "w", "internet", t(60), "HTTP 503 Service Unavailable").await.unwrap());
    let waiting = db.alert_webhook(a.id).await.unwrap();
    assert_eq!((waiting.state, waiting.next_attempt_at), (WebhookState::Pending, t(60)));
    assert_eq!(waiting.last_error.as_deref(), Some("HTTP 503 Service Unavailable"));
    assert!(db.claim_alert_webhooks("w", t(59), lease, 10).await.unwrap().is_empty(), "not before it is due");
    let due = db.claim_alert_webhooks("w", t(60), lease, 10).await.unwrap();
    assert_eq!((due.len(), due[0].1.attempts), (1, 2));

    assert!(db.mark_alert_failed(b.id, "w", "tv", "HTTP 404 Not Found: no_service").await.unwrap());
    let failed = db.alert_webhook(b.id).await.unwrap();
    assert_eq!((failed.state, failed.route.as_deref()), (WebhookState::Failed, Some("tv")));
    assert_eq!(failed.last_error.as_deref(), Some("HTTP 404 Not Found: no_service"));
    assert!(db.mark_alert_skipped(c.id, "w", "no webhook for mobile alerts is configured").await.unwrap());
    let skipped = db.alert_webhook(c.id).await.unwrap();
    assert_eq!((skipped.state, skipped.route), (WebhookState::Skipped, None));
    assert!(!db.mark_alert_posted(c.id, "w", "mobile", t(70)).await.unwrap(), "a final state stays");
    assert!(
        db.claim_alert_webhooks("w", t(3000), lease, 10).await.unwrap().is_empty(),
        "only `a` is left, and it is claimed"
    );
    let states: HashMap<AlertId, WebhookState> =
        db.alert_webhooks().await.unwrap().into_iter().map(|w| (w.alert, w.state)).collect();
    assert_eq!(
        states,
        HashMap::from([(a.id, WebhookState::Sending), (b.id, WebhookState::Failed), (c.id, WebhookState::Skipped)])
    );
}

async fn alert_webhook_concurrent_claimers_never_share_an_alert(t_db: &TestDb) {
    let db = t_db.db();
    const ALERTS: usize = 60;
    for i in 0..ALERTS {
        raise(db, Service::Internet, None, t(i as i64)).await;
    }
    // Two pools on one database, as two webcare processes would have, with several claimers each.
    let pools = [t_db.another().await, t_db.another().await];
    let mut tasks = Vec::new();
    for (p, pool) in pools.iter().enumerate() {
        for w in 0..3 {
            let pool = pool.clone();
            let worker = format!("p{p}w{w}");
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    match pool.claim_alert_webhooks(&worker, t(1000), Duration::from_secs(300), 4).await {
                        Ok(batch) if batch.is_empty() => return mine,
                        Ok(batch) => {
                            for (alert, _) in batch {
                                assert!(pool.mark_alert_posted(alert.id, &worker, "internet", t(1001)).await.unwrap());
                                mine.push(alert.id);
                            }
                        }
                        Err(e) if e.is_transient() => tokio::task::yield_now().await,
                        Err(e) => panic!("{e}"),
                    }
                }
            }));
        }
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (ALERTS, ALERTS), "every alert claimed once, none twice");
    assert!(db.alert_webhooks().await.unwrap().iter().all(|w| w.state == WebhookState::Posted));
}

async fn two_notifiers_post_each_alert_once(t_db: &TestDb) {
    let receiver = Receiver::start().await;
    let db = t_db.db();
    const ALERTS: usize = 24;
    for i in 0..ALERTS {
        raise(db, if i % 2 == 0 { Service::Internet } else { Service::Tv }, None, Utc::now()).await;
    }
    let routes = AlertRoutes::new()
        .with(Service::Internet, sink(&receiver.url("network")))
        .with_default(sink(&receiver.url("noc")));
    let stop = CancellationToken::new();
    let mut running = Vec::new();
    for n in 0..2 {
        let store: Arc<dyn Store> = Arc::new(t_db.another().await);
        let config = NotifierConfig { worker: format!("instance-{n}"), batch: 3, ..fast() };
        let notifier = AlertNotifier::new(store, routes.clone(), config);
        let stop = stop.clone();
        running.push(tokio::spawn(async move { notifier.run(stop).await }));
    }
    until("every alert is posted", || async {
        db.alert_webhooks().await.unwrap().iter().all(|w| w.state == WebhookState::Posted)
    })
    .await;
    stop.cancel();
    for r in running {
        tokio::time::timeout(Duration::from_secs(10), r).await.expect("the notifier stops").unwrap();
    }
    let posts = receiver.posts();
    let ids: Vec<i64> = posts.iter().map(|p| p.body["id"].as_i64().unwrap()).collect();
    let distinct: HashSet<_> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (ALERTS, ALERTS), "each alert posted exactly once: {ids:?}");
    assert!(posts.iter().all(|p| (p.hook == "network") == (p.body["service"] == "internet")), "routed by service");
}

// The notifier with the real HTTP adapter against a real receiver.

/// How the receiver answers one post.
#[derive(Clone, Copy)]
struct Reply {
    status: u16,
    retry_after: Option<&'static str>,
    body: &'static str,
}

const OK: Reply = Reply { status: 200, retry_after: None, body: "ok" };

fn reply(status: u16, body: &'static str) -> Reply {
    Reply { status, retry_after: None, body }
}

/// One post the receiver got, and what it answered.
#[derive(Clone, Debug)]
struct Post {
    hook: String,
    key: Option<String>,
    content_type: Option<String>,
    body: Value,
    status: u16,
    at: Instant,
}

#[derive(Default)]
struct Received {
    posts: Vec<Post>,
    /// Answers per hook, in order; 200 once they run out.
    script: HashMap<String, VecDeque<Reply>>,
}

/// An HTTP server on 127.0.0.1 that takes webhook posts at `/hooks/{name}`.
struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<Received>>,
    stop: CancellationToken,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn take(
    State(state): State<Arc<Mutex<Received>>>,
    Path(hook): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&state, hook, &headers, &body)
}

/// A post to a Discord-shaped URL, recorded as the hook `discord/{id}`.
async fn take_discord(
    State(state): State<Arc<Mutex<Received>>>,
    Path((id, _token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&state, format!("discord/{id}"), &headers, &body)
}

fn record(state: &Mutex<Received>, hook: String, headers: &HeaderMap, body: &Bytes) -> Response {
    let mut s = state.lock().unwrap();
    let reply = s.script.get_mut(&hook).and_then(VecDeque::pop_front).unwrap_or(OK);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    s.posts.push(Post {
        hook,
        key: header("idempotency-key"),
        content_type: header("content-type"),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        status: reply.status,
        at: Instant::now(),
    });
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    if let Some(after) = reply.retry_after {
        response.headers_mut().insert("retry-after", after.parse().unwrap());
    }
    response
}

impl Receiver {
    async fn start() -> Receiver {
        Receiver::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    async fn start_on(addr: SocketAddr) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the receiver");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(Received::default()));
        let router = axum::Router::new()
            .route("/hooks/{hook}", axum::routing::post(take))
            .route("/api/webhooks/{id}/{token}", axum::routing::post(take_discord))
            .with_state(state.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router).with_graceful_shutdown(stopped.cancelled_owned()).await.unwrap();
        });
        Receiver { addr, state, stop }
    }

    fn url(&self, hook: &str) -> String {
        format!("http://{}/hooks/{hook}", self.addr)
    }

    fn script(&self, hook: &str, replies: &[Reply]) {
        self.state.lock().unwrap().script.insert(hook.to_owned(), replies.iter().copied().collect());
    }

    fn posts(&self) -> Vec<Post> {
        self.state.lock().unwrap().posts.clone()
    }
}

fn sink(url: &str) -> Arc<dyn AlertSink> {
    let client = webcare_webhook::client(Duration::from_secs(5)).unwrap();
    Arc::new(webcare_webhook::WebhookSink::new(client, url, "the test webhook").unwrap())
}

/// A notifier that looks often and retries soon, so the tests take milliseconds, not minutes.
fn fast() -> NotifierConfig {
    NotifierConfig {
        poll_interval: Duration::from_millis(20),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..NotifierConfig::default()
    }
}

async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `notifier` until `stop` is cancelled.
fn run(notifier: AlertNotifier, stop: &CancellationToken) -> tokio::task::JoinHandle<()> {
    let stop = stop.clone();
    tokio::spawn(async move { notifier.run(stop).await })
}

#[tokio::test]
async fn alerts_go_to_their_services_webhook_with_their_fields_and_a_key() {
    let db = TestDb::sqlite().await;
    let store: Arc<dyn Store> = Arc::new(db.db().clone());
    let receiver = Receiver::start().await;
    let internet = raise(store.as_ref(), Service::Internet, Some("Utrecht"), Utc::now()).await;
    let tv = raise(store.as_ref(), Service::Tv, Some("Gent"), Utc::now()).await;
    let mobile = raise(store.as_ref(), Service::Mobile, None, Utc::now()).await;
    let routes = AlertRoutes::new()
        .with(Service::Internet, sink(&receiver.url("network")))
        .with(Service::Tv, sink(&receiver.url("tv")));
    let notifier = AlertNotifier::new(store.clone(), routes, fast());
    let step = notifier.step().await.unwrap();
    assert_eq!((step.claimed, step.posted, step.skipped), (3, 2, 1), "{step:?}");

    let posts = receiver.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    let to = |hook: &str| posts.iter().find(|p| p.hook == hook).unwrap_or_else(|| panic!("nothing for {hook}"));
    let (network, tv_team) = (to("network"), to("tv"));
    assert_eq!(network.body["id"], internet.id.0);
    assert_eq!(tv_team.body["id"], tv.id.0);
    assert_eq!(network.key.as_deref(), Some(format!("alert:{}", internet.id).as_str()), "the id is the key");
    assert_eq!(network.content_type.as_deref(), Some("application/json"));
    let body = &network.body;
    assert_eq!(
        (body["service"].as_str(), body["region"].as_str(), body["count"].as_i64()),
        (Some("internet"), Some("Utrecht"), Some(6))
    );
    assert_eq!(body["samples"][0], "Storing? Geen internet, bel [phone]");
    assert_eq!(body["draft"]["nl"], "We onderzoeken een storing.");
    for field in ["account", "first_at", "last_at", "cluster"] {
        assert!(body.get(field).is_some(), "{field} missing: {body}");
    }
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("Spike alert: 6 customers report internet trouble in Utrecht"), "{text}");

    let w = store.alert_webhook(internet.id).await.unwrap();
    assert_eq!((w.state, w.route.as_deref(), w.attempts), (WebhookState::Posted, Some("internet"), 1));
    assert_eq!(store.alert_webhook(tv.id).await.unwrap().route.as_deref(), Some("tv"));
    let skipped = store.alert_webhook(mobile.id).await.unwrap();
    assert_eq!(skipped.state, WebhookState::Skipped);
    assert_eq!(skipped.last_error.as_deref(), Some("no webhook for mobile alerts is configured"));
    assert_eq!(notifier.step().await.unwrap().claimed, 0, "nothing is posted twice");
}

#[tokio::test]
async fn a_discord_webhook_gets_a_discord_message_that_notifies_nobody() {
    let db = TestDb::sqlite().await;
    let store: Arc<dyn Store> = Arc::new(db.db().clone());
    let receiver = Receiver::start().await;
    let cluster = store
        .create_cluster(NewCluster { account: String::new(), service: Service::Tv, region: None, at: Utc::now() })
        .await
        .unwrap();
    let alert = store
        .insert_alert(&SpikeAlert {
            id: AlertId(0),
            cluster: cluster.id,
            account: String::new(),
            service: Service::Tv,
            region: Some("Gent".into()),
            count: 7,
            samples: vec!["@everyone tv weg? [klik hier](https://evil.example) <b>nu</b>".into()],
            draft: [("nl".to_owned(), "We onderzoeken een tv-storing in Gent.".to_owned())].into(),
            first_at: Utc::now(),
            last_at: Utc::now(),
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    let url = format!("http://{}/api/webhooks/1234567890/tok-en_1", receiver.addr);
    let routes = AlertRoutes::new().with(Service::Tv, sink(&url));
    let notifier = AlertNotifier::new(store.clone(), routes, fast());
    assert_eq!(notifier.step().await.unwrap().posted, 1);

    let posts = receiver.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].hook, "discord/1234567890");
    assert_eq!(posts[0].key.as_deref(), Some(format!("alert:{}", alert.id).as_str()));
    let body = &posts[0].body;
    assert_eq!(body["allowed_mentions"], serde_json::json!({"parse": []}), "{body}");
    assert!(body.get("samples").is_none(), "Discord gets a message, not webcare's JSON: {body}");
    let content = body["content"].as_str().unwrap();
    assert!(content.starts_with("Spike alert: 7 customers report tv trouble in Gent"), "{content}");
    assert!(content.contains("\\[klik hier\\](https://evil.example)"), "no masked link: {content}");
    assert!(content.contains("\\<b\\>nu"), "{content}");
    assert!(!content.contains("&lt;") && !content.contains("@everyone"), "{content}");
    assert_eq!(store.alert_webhook(alert.id).await.unwrap().state, WebhookState::Posted);
}

#[tokio::test]
async fn a_webhook_answering_500_then_200_gets_the_alert_once() {
    let db = TestDb::sqlite().await;
    let store: Arc<dyn Store> = Arc::new(db.db().clone());
    let receiver = Receiver::start().await;
    receiver.script("noc", &[reply(500, "oops"), reply(502, "bad gateway"), OK]);
    let alert = raise(store.as_ref(), Service::Internet, None, Utc::now()).await;
    let stop = CancellationToken::new();
    let task = run(
        AlertNotifier::new(store.clone(), AlertRoutes::new().with_default(sink(&receiver.url("noc"))), fast()),
        &stop,
    );
    until("the alert is posted", || async {
        store.alert_webhook(alert.id).await.unwrap().state == WebhookState::Posted
    })
    .await;
    // Long enough for a wrong second post to arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    task.await.unwrap();
    let statuses: Vec<u16> = receiver.posts().iter().map(|p| p.status).collect();
    assert_eq!(statuses, vec![500, 502, 200], "retried after each 5xx, accepted exactly once");
    assert!(receiver.posts().iter().all(|p| p.key.as_deref() == Some(format!("alert:{}", alert.id).as_str())));
    let w = store.alert_webhook(alert.id).await.unwrap();
    assert_eq!((w.state, w.attempts, w.route.as_deref()), (WebhookState::Posted, 3, Some("default")));
}

#[tokio::test]
async fn a_webhook_that_is_down_gets_the_alert_when_it_is_back() {
    let db = TestDb::sqlite().await;
    let store: Arc<dyn Store> = Arc::new(db.db().clone());
    // A port with nothing behind it, for now.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{addr}/hooks/network");
    let alert = raise(store.as_ref(), Service::Internet, None, Utc::now()).await;
    let notifier = AlertNotifier::new(store.clone(), AlertRoutes::new().with(Service::Internet, sink(&url)), fast());
    let step = notifier.step().await.unwrap();
    assert_eq!(step.retried, 1, "{step:?}");
    let w = store.alert_webhook(alert.id).await.unwrap();
    assert_eq!(w.state, WebhookState::Pending);
    let error = w.last_error.unwrap();
    assert!(error.starts_with("cannot connect"), "{error}");
    assert!(!error.contains("/hooks/network"), "the URL may be a secret: {error}");

    let stop = CancellationToken::new();
    let task = run(notifier, &stop);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let receiver = Receiver::start_on(addr).await;
    until("the alert is posted", || async {
        store.alert_webhook(alert.id).await.unwrap().state == WebhookState::Posted
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(receiver.posts().len(), 1);
    assert_eq!(receiver.posts()[0].body["id"], alert.id.0);
    assert!(store.alert_webhook(alert.id).await.unwrap().attempts >= 2);
}

#[tokio::test]
async fn a_webhook_refusing_with_a_4xx_fails_the_alert_with_its_answer() {
    let db = TestDb::sqlite().await;
    let store: Arc<dyn Store> = Arc::new(db.db().clone());
    let receiver = Receiver::start().await;
    receiver.script("tv", &[reply(404, "no_service")]);
    receiver.script("network", &[reply(301, "")]);
    let tv = raise(store.as_ref(), Service::Tv, None, Utc::now()).await;
    let internet = raise(store.as_ref(), Service::Internet, None, Utc::now()).await;
    let routes = AlertRoutes::new()
        .with(Service::Tv, sink(&receiver.url("tv")))
        .with(Service::Internet, sink(&receiver.url("network")));
    let notifier = AlertNotifier::new(store.clone(), routes, fast());
    assert_eq!(notifier.step().await.unwrap().failed, 2);
    let w = store.alert_webhook(tv.id).await.unwrap();
    assert_eq!((w.state, w.route.as_deref()), (WebhookState::Failed, Some("tv")));
    assert_eq!(w.last_error.as_deref(), Some("HTTP 404 Not Found: no_service"));
    let w = store.alert_webhook(internet.id).await.unwrap();
    assert!(w.last_error.unwrap().contains("redirects are not followed"), "a redirect is a wrong URL");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(notifier.step().await.unwrap().claimed, 0, "a refusal is not retried");
    assert_eq!(receiver.posts().len(), 2);
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_retries_end_at_the_deadline() {
    let db = TestDb::sqlite().await;
    let store: Arc<dyn Store> = Arc::new(db.db().clone());
    let receiver = Receiver::start().await;
    receiver.script("noc", &[Reply { status: 429, retry_after: Some("1"), body: "slow down" }, OK]);
    let alert = raise(store.as_ref(), Service::Landline, None, Utc::now()).await;
    let stop = CancellationToken::new();
    let task = run(
        AlertNotifier::new(store.clone(), AlertRoutes::new().with_default(sink(&receiver.url("noc"))), fast()),
        &stop,
    );
    until("the alert is posted", || async {
        store.alert_webhook(alert.id).await.unwrap().state == WebhookState::Posted
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    let posts = receiver.posts();
    assert_eq!(posts.iter().map(|p| p.status).collect::<Vec<_>>(), vec![429, 200]);
    let waited = posts[1].at - posts[0].at;
    assert!(waited >= Duration::from_millis(950), "Retry-After: 1 is honoured (backoff alone is 50 ms): {waited:?}");

    // A receiver that keeps failing: retries stop once the next would come after `give_up_after`.
    receiver.script("noc", &[reply(503, "down"); 100]);
    let doomed = raise(store.as_ref(), Service::Landline, None, Utc::now()).await;
    let config = NotifierConfig { give_up_after: Duration::from_millis(500), ..fast() };
    let stop = CancellationToken::new();
    let task = run(
        AlertNotifier::new(store.clone(), AlertRoutes::new().with_default(sink(&receiver.url("noc"))), config),
        &stop,
    );
    until("the alert is given up", || async {
        store.alert_webhook(doomed.id).await.unwrap().state == WebhookState::Failed
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    let w = store.alert_webhook(doomed.id).await.unwrap();
    let error = w.last_error.clone().unwrap();
    assert!(error.starts_with(&format!("gave up after {} attempts", w.attempts)), "{error}");
    assert!(error.ends_with("HTTP 503 Service Unavailable: down"), "{error}");
    assert!(w.attempts >= 2, "it was retried before giving up: {w:?}");
}

/// Customer messages into the intake pipeline raise a spike; the notifier, reading stored alerts only, posts it.
#[tokio::test]
async fn a_spike_from_customer_messages_reaches_the_network_teams_webhook() {
    let db = TestDb::sqlite().await;
    let app = webcare_tests::app(db.db()).await;
    let receiver = Receiver::start().await;
    let stop = CancellationToken::new();
    let routes = AlertRoutes::new()
        .with(Service::Internet, sink(&receiver.url("network")))
        .with(Service::Tv, sink(&receiver.url("tv")));
    let task = run(AlertNotifier::new(app.store.clone(), routes, fast()), &stop);
    for (i, text) in [
        "Storing in Eindhoven? Geen internet, bel me op 0612345678",
        "Eindhoven internet ligt eruit",
        "Geen internet in Eindhoven sinds vanochtend",
        "Is er een internetstoring in Eindhoven?",
        "Eindhoven: internet werkt niet, storing?",
        "Ook geen internet hier in Eindhoven",
    ]
    .iter()
    .enumerate()
    {
        let user = format!("c{i}");
        let event = InboundEvent {
            platform: Platform::Telegram,
            chat_id: user.clone(),
            chat_kind: ConversationKind::Private,
            chat_title: None,
            user_id: user.clone(),
            user_name: format!("customer {i}"),
            from_bot: false,
            message_id: format!("{user}/1"),
            text: (*text).into(),
            attachments: Vec::new(),
            kind: InboundKind::Message,
            place: None,
            language: None,
            account: String::new(),
            at: Utc::now(),
        };
        app.pipeline.receive(event).await.unwrap();
    }
    until("the network team has the alert", || async { !receiver.posts().is_empty() }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    task.await.unwrap();
    let posts = receiver.posts();
    assert_eq!(posts.len(), 1, "one spike, one post: {posts:?}");
    let post = &posts[0];
    assert_eq!(post.hook, "network");
    let alerts = app.store.alerts().await.unwrap();
    assert_eq!(post.body["id"], alerts[0].id.0);
    assert_eq!(post.body["service"], "internet");
    assert!(post.body["region"].as_str().unwrap_or_default().contains("Eindhoven"), "{}", post.body);
    assert!(post.body["count"].as_i64().unwrap() >= 5);
    let raw = post.body.to_string();
    assert!(!raw.contains("0612345678"), "private data never leaves masked: {raw}");
    assert!(post.body["samples"].as_array().unwrap().iter().any(|s| s.as_str().unwrap().contains("[phone")), "{raw}");
}

/// Staff chats get each recent alert once, whatever the number of instances or rounds; old alerts stay out.
#[tokio::test]
async fn staff_chats_get_each_recent_alert_once() {
    let db = TestDb::sqlite().await;
    let store: Arc<dyn Store> = Arc::new(db.db().clone());
    let mut chats = Vec::new();
    for (platform, chat) in [(Platform::Telegram, "-100777"), (Platform::Discord, "555")] {
        let c = store
            .upsert_conversation(
                webcare_domain::NewConversation {
                    platform,
                    platform_chat_id: chat.into(),
                    kind: ConversationKind::Public,
                    title: Some("staff".into()),
                },
                t(0),
            )
            .await
            .unwrap();
        chats.push(c.id);
    }
    let now = t(7200);
    let old = raise(store.as_ref(), Service::Tv, Some("Gent"), now - chrono::TimeDelta::hours(2)).await;
    let recent = raise(store.as_ref(), Service::Internet, Some("Utrecht"), now - chrono::TimeDelta::minutes(5)).await;
    let wake = Arc::new(tokio::sync::Notify::new());
    let staff = |chats: Vec<webcare_domain::ConversationId>| {
        webcare_app::alerts::StaffAlerts::new(store.clone(), chats, wake.clone())
    };
    // Two instances, each with its own poster: one message per alert and chat.
    assert_eq!(staff(chats.clone()).step(now).await.unwrap(), 2);
    assert_eq!(staff(chats.clone()).step(now).await.unwrap(), 0, "once");
    assert_eq!(staff(Vec::new()).step(now).await.unwrap(), 0, "no staff chats, nothing to do");
    let rows = webcare_tests::drain_outbox(store.as_ref(), now).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert!(row.body.starts_with("Spike alert: 6 customers report internet trouble in Utrecht"), "{}", row.body);
        assert_eq!(row.idempotency_key, format!("alert:{}:staff:{}", recent.id, row.conversation));
        assert!(!row.body.contains("Gent"), "alert {} is too old to post: {}", old.id, row.body);
    }
    let mut to: Vec<_> = rows.iter().map(|r| r.conversation).collect();
    to.sort();
    assert_eq!(to, chats);
}
