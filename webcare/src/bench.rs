//! `webcare bench ingest`: inbound messages per second through the whole intake path, with durable commits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use webcare_app::intake::{IntakeConfig, Pipeline};
use webcare_config::Config;
use webcare_domain::{ConversationKind, InboundEvent, InboundKind, Intake as _, Platform, Store};
use webcare_storage::{Db, OpenOptions};

pub async fn ingest(
    config: &Config,
    messages: usize,
    database: Option<String>,
    concurrency: usize,
) -> anyhow::Result<()> {
    if messages == 0 || concurrency == 0 {
        anyhow::bail!("--messages and --concurrency must be at least 1");
    }
    let dir = tempfile::tempdir().context("create a temporary directory")?;
    let url = database.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    // Every run starts empty, as the SQLite file in a new directory does: on PostgreSQL the bench creates a database
    // of its own on the server `url` names, and drops it at the end.
    let fresh = FreshPostgres::create(&url, "ingest").await?;
    let result = measure(config, messages, fresh.as_ref().map_or(&url, |f| &f.url), concurrency).await;
    if let Some(fresh) = fresh {
        fresh.drop_database().await?;
    }
    result
}

async fn measure(config: &Config, messages: usize, url: &str, concurrency: usize) -> anyhow::Result<()> {
    let db = Db::open(url, &OpenOptions { max_connections: 16, ..OpenOptions::default() }).await?;
    let store: Arc<dyn Store> = Arc::new(db.clone());
    let ticketing = webcare_ticketing::Ticketing::new(store.clone(), crate::cli::ticket_policy(config)?);
    let pipeline = Arc::new(
        Pipeline::start(
            store.clone(),
            ticketing,
            Arc::new(crate::cli::classifier(config)?),
            IntakeConfig::default(),
            Arc::new(tokio::sync::Notify::new()),
        )
        .await?,
    );
    let texts = webcare_bridge::sample_corpus(messages.min(10_000));
    // A run id keeps message ids apart from any the database holds already (an SQLite file given with --database).
    let run: u32 = rand::random();
    let customers = (messages / 3).max(1);
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(messages);
    let mut next = 0usize;
    let mut in_flight = tokio::task::JoinSet::new();
    while next < messages || !in_flight.is_empty() {
        while next < messages && in_flight.len() < concurrency {
            let i = next;
            next += 1;
            let user = format!("bench-{run}-{}", i % customers);
            let event = InboundEvent {
                platform: Platform::Telegram,
                chat_id: user.clone(),
                chat_kind: ConversationKind::Private,
                chat_title: None,
                user_id: user.clone(),
                user_name: user,
                from_bot: false,
                message_id: format!("bench-{run}/{i}"),
                // Customers word their messages each in their own way. The corpus repeats its texts, and the same
                // long text from another customer counts as a repost (one customer towards a spike); a word of each
                // customer's own keeps the bench's customers apart, as real ones are.
                text: format!("{} {}", own_word(i % customers), texts[i % texts.len()]),
                attachments: Vec::new(),
                kind: InboundKind::Message,
                place: None,
                language: None,
                account: String::new(),
                at: chrono::Utc::now(),
            };
            let pipeline = pipeline.clone();
            in_flight.spawn(async move {
                let t = Instant::now();
                pipeline.receive(event).await.map(|_| t.elapsed())
            });
        }
        if let Some(done) = in_flight.join_next().await {
            latencies.push(done.context("a message task failed")?.context("a message was not taken in")?);
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    let rate = messages as f64 / elapsed.as_secs_f64();
    let (p50, p99) = (pct(0.50), pct(0.99));
    let backend = format!("{:?}", db.backend()).to_lowercase();
    println!(
        "ingest on {backend}: {messages} messages in {:.2} s: {rate:.0} messages/s; latency p50 {:.2} ms, p99 {:.2} ms (concurrency {concurrency})",
        elapsed.as_secs_f64(),
        ms(p50),
        ms(p99)
    );
    let json = serde_json::json!({
        "bench": "ingest", "backend": backend, "messages": messages, "concurrency": concurrency,
        "seconds": elapsed.as_secs_f64(), "messages_per_sec": rate, "p50_ms": ms(p50), "p99_ms": ms(p99),
    });
    println!("{json}");
    db.close().await;
    Ok(())
}

/// A PostgreSQL database created for one run of a benchmark.
pub(crate) struct FreshPostgres {
    /// The URL the bench was given: its database (`postgres`, say) is where the new one is created and dropped.
    admin: String,
    name: String,
    pub(crate) url: String,
}

impl FreshPostgres {
    /// For a PostgreSQL URL, a new database on that server for the bench `bench`; `None` for SQLite.
    pub(crate) async fn create(url: &str, bench: &str) -> anyhow::Result<Option<FreshPostgres>> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Ok(None);
        }
        let name = format!("webcare_bench_{}_{}", std::process::id(), rand::random::<u32>());
        let admin =
            Db::open(url, &OpenOptions { max_connections: 1, migrate: false, ..OpenOptions::default() }).await?;
        let created = admin.execute_admin(&format!("CREATE DATABASE {name}")).await;
        admin.close().await;
        created.with_context(|| format!("create the bench's database {name} on {}", webcare_storage::mask_url(url)))?;
        println!("{bench} on postgres: in a database of its own, {name}, dropped at the end");
        let fresh = webcare_storage::with_database(url, &name);
        Ok(Some(FreshPostgres { admin: url.to_owned(), name, url: fresh }))
    }

    pub(crate) async fn drop_database(self) -> anyhow::Result<()> {
        let admin =
            Db::open(&self.admin, &OpenOptions { max_connections: 1, migrate: false, ..OpenOptions::default() })
                .await?;
        let dropped = admin.execute_admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await;
        admin.close().await;
        dropped.with_context(|| format!("drop the bench's database {}", self.name))
    }
}

/// A word of letters only, different for every customer (no digits: they would read as numbers, postcodes or
/// phone numbers).
fn own_word(customer: usize) -> String {
    let mut n = customer;
    let mut word = String::from("kl");
    loop {
        word.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            return word;
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
