//! Support code for webcare's integration tests: fresh databases on both backends, and (with later issues) the
//! platform fakes.
//!
//! PostgreSQL tests need a real server. Where none answers they fail, with a message saying how to start one; only
//! outside CI, and only when `WEBCARE_TEST_SKIP_POSTGRES=1` is set, are they skipped instead. Under `CI=true` they
//! always fail without a server: a green CI run must mean the PostgreSQL half ran.

use std::sync::atomic::{AtomicU32, Ordering};

use webcare_domain::{OutboxItem, Store, Timestamp};
use webcare_storage::{Db, OpenOptions};

/// The server tests create their databases on. Override with `WEBCARE_TEST_POSTGRES_URL`.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn postgres_admin_url() -> String {
    std::env::var("WEBCARE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Whether a missing PostgreSQL server may skip a test rather than fail it.
pub fn may_skip_postgres() -> bool {
    !in_ci() && std::env::var("WEBCARE_TEST_SKIP_POSTGRES").is_ok_and(|v| v == "1")
}

/// A database of its own for one test, removed when the test ends.
pub struct TestDb {
    db: Db,
    url: String,
    // Kept so the SQLite file's directory lives as long as the test.
    _dir: Option<tempfile::TempDir>,
    postgres_name: Option<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn options() -> OpenOptions {
    OpenOptions { max_connections: 8, connect_retry: std::time::Duration::from_secs(2), migrate: true }
}

impl TestDb {
    /// A new SQLite file in a temporary directory, migrated.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("webcare.db").display());
        let db = Db::open(&url, &options()).await.expect("open a new SQLite database");
        TestDb { db, url, _dir: Some(dir), postgres_name: None }
    }

    /// A new PostgreSQL database on the test server, migrated; `None` only when skipping is allowed.
    pub async fn postgres() -> Option<TestDb> {
        let admin = postgres_admin_url();
        let admin_db = match Db::open(&admin, &OpenOptions { migrate: false, ..options() }).await {
            Ok(db) => db,
            Err(e) if may_skip_postgres() => {
                eprintln!("skipping a PostgreSQL test (WEBCARE_TEST_SKIP_POSTGRES=1): {e}");
                return None;
            }
            Err(e) => panic!(
                "PostgreSQL is needed for this test and did not answer at {}: {e}\n\
                 Start it (scripts/test does), or set WEBCARE_TEST_POSTGRES_URL to a server where databases may be \
                 created. Outside CI, WEBCARE_TEST_SKIP_POSTGRES=1 skips these tests.",
                webcare_storage::mask_url(&admin)
            ),
        };
        let name = format!(
            "webcare_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_micros() % 1_000_000
        );
        admin_db.execute_admin(&format!("CREATE DATABASE {name}")).await.expect("create a test database");
        admin_db.close().await;
        let url = webcare_storage::with_database(&admin, &name);
        let db = Db::open(&url, &options()).await.expect("open the new PostgreSQL database");
        Some(TestDb { db, url, _dir: None, postgres_name: Some(name) })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The URL of this test's database, for a second connection pool or a child process.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Another handle on the same database with its own pool, as a second webcare process would have.
    pub async fn another(&self) -> Db {
        Db::open(&self.url, &options()).await.expect("open the test database again")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else { return };
        // Drop cannot await, and the test's runtime may be single-threaded and blocked right here: a thread with a
        // runtime of its own drops the database. It must not touch this test's pool (its connections belong to the
        // blocked runtime); FORCE ends them instead.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            rt.block_on(async move {
                if let Ok(admin) = Db::open(&postgres_admin_url(), &OpenOptions { migrate: false, ..options() }).await {
                    let _ = admin.execute_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// The application's services over a test database, wired as `serve` wires them.
pub struct App {
    pub store: std::sync::Arc<dyn webcare_domain::Store>,
    pub ticketing: webcare_ticketing::Ticketing,
    pub pipeline: std::sync::Arc<webcare_app::intake::Pipeline>,
    pub notices: std::sync::Arc<webcare_app::notices::Notices>,
    pub wake: std::sync::Arc<tokio::sync::Notify>,
}

pub async fn app(db: &Db) -> App {
    let store: std::sync::Arc<dyn webcare_domain::Store> = std::sync::Arc::new(db.clone());
    let ticketing = webcare_ticketing::Ticketing::new(store.clone(), Default::default());
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let pipeline = std::sync::Arc::new(
        webcare_app::intake::Pipeline::start(
            store.clone(),
            ticketing.clone(),
            std::sync::Arc::new(webcare_bridge::Classifier::default()),
            webcare_app::intake::IntakeConfig::default(),
            wake.clone(),
        )
        .await
        .expect("start the intake pipeline"),
    );
    let notices =
        std::sync::Arc::new(webcare_app::notices::Notices::new(store.clone(), pipeline.clone(), wake.clone(), false));
    App { store, ticketing, pipeline, notices, wake }
}

/// The web side's state over a test database, with the real intake pipeline behind it.
pub async fn app_state(db: &Db) -> webcare_web::AppState {
    state_of(app(db).await)
}

/// The web side's state over these services.
pub fn state_of(app: App) -> webcare_web::AppState {
    webcare_web::AppState {
        store: app.store,
        intake: app.pipeline,
        ticketing: app.ticketing,
        notices: app.notices,
        webchat: webcare_web::webchat::WebchatHub::default(),
        shutdown: tokio_util::sync::CancellationToken::new(),
    }
}

/// Every outbox row due at `at`, oldest first, as delivery would send them: claimed and marked sent in turn (a
/// chat's next row can be claimed only once the one before it is done), so a later call returns only what was
/// queued since.
pub async fn drain_outbox(db: &dyn Store, at: Timestamp) -> Vec<OutboxItem> {
    let mut all = Vec::new();
    loop {
        let batch = db.claim_outbox("drain", at, std::time::Duration::from_secs(60), 1000).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for item in &batch {
            assert!(db.mark_sent(item.id, "drain", None, at).await.unwrap(), "row {} is the drain's", item.id);
        }
        all.extend(batch);
    }
    all.sort_by_key(|item| item.id);
    all
}
