//! Opening a database: URL parsing, the checks that keep a foreign or corrupt SQLite file untouched, retries while a
//! PostgreSQL server is unreachable at start, and migrations.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::ConnectOptions;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{Backend, Db, Pool};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Why a database could not be opened. Each message names the database (credentials masked) and what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("database url `{url}` is not supported: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl { url: String },
    #[error("database url `{url}` is invalid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot create the database file {}: {reason}", path.display())]
    NotWritable { path: PathBuf, reason: String },
    #[error(
        "{} is not a webcare database ({reason}); it was left untouched. Point database.url at a new file or at a webcare database",
        path.display()
    )]
    Foreign { path: PathBuf, reason: String },
    #[error("cannot reach the database at {url} after {waited:?}: {reason}")]
    Unreachable { url: String, waited: Duration, reason: String },
    #[error("cannot open the database at {url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("cannot apply migrations to {url}: {reason}")]
    Migrate { url: String, reason: String },
}

/// How to open a database.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub max_connections: u32,
    /// How long to keep retrying an unreachable server before giving up.
    pub connect_retry: Duration,
    /// Whether to apply pending migrations after opening.
    pub migrate: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { max_connections: 8, connect_retry: Duration::from_secs(30), migrate: true }
    }
}

/// The URL with any password replaced, for messages and logs.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// A PostgreSQL URL with its database name replaced (the query string kept): how a test or a benchmark reaches the
/// database it created on the same server.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Db {
    /// Opens the database `url` names, creating an SQLite file on first use, and applies migrations when asked.
    pub async fn open(url: &str, options: &OpenOptions) -> Result<Db, OpenError> {
        let db = if url.starts_with("sqlite:") {
            open_sqlite(url, options).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            open_postgres(url, options).await?
        } else {
            return Err(OpenError::UnsupportedUrl { url: mask_url(url) });
        };
        if options.migrate {
            db.migrate().await?;
        }
        Ok(db)
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), OpenError> {
        let result = match &self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
            Pool::SqliteUnit(_) | Pool::PostgresUnit(_) => return Ok(()),
        };
        result.map_err(|e| OpenError::Migrate { url: self.url.clone(), reason: e.to_string() })
    }
}

async fn open_sqlite(url: &str, options: &OpenOptions) -> Result<Db, OpenError> {
    let masked = mask_url(url);
    let base = SqliteConnectOptions::from_str(url)
        .map_err(|e| OpenError::InvalidUrl { url: masked.clone(), reason: e.to_string() })?;
    let path = base.get_filename().to_path_buf();
    let in_memory = path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:");
    if !in_memory {
        check_sqlite_file(&path).await?;
    }
    let connect = base
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit survives a power cut, not only a crash of the process. Messages must not be lost.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        // Batch statements return hundreds of rows; each waits for room in this channel to the async side.
        .row_buffer_size(1024)
        // Statements of batches differ by their number of rows; keep the usual sizes prepared.
        .statement_cache_capacity(400)
        // Checkpoints run beside the writer (`checkpoint_beside_the_writer`); a commit checkpoints by itself only
        // when the log has grown far beyond that.
        .pragma("wal_autocheckpoint", if in_memory { "1000" } else { "16000" });
    let pool = SqlitePoolOptions::new()
        // An in-memory database lives in one connection; more would each see their own empty database.
        .max_connections(if in_memory { 1 } else { options.max_connections.max(1) })
        .connect_with(connect)
        .await
        .map_err(|e| {
            if in_memory {
                OpenError::Failed { url: masked.clone(), reason: e.to_string() }
            } else {
                OpenError::NotWritable { path: path.clone(), reason: e.to_string() }
            }
        })?;
    // Shared by every handle of this database: its last one dropped ends the checkpoint task, which lets the pool
    // go and the file close, as `Db::close` does.
    let undecided = std::sync::Arc::<crate::Undecided>::default();
    if !in_memory {
        tokio::spawn(checkpoint_beside_the_writer(pool.clone(), std::sync::Arc::downgrade(&undecided)));
    }
    Ok(Db { pool: Pool::Sqlite(pool), backend: Backend::Sqlite, url: masked, undecided })
}

/// Copies the write-ahead log into the database file every 100 ms on a connection of its own (a passive checkpoint:
/// it neither waits for the writer nor holds it up). Otherwise the commit that crosses SQLite's threshold does it,
/// on the writer's time; here it runs on another core while the writer goes on. Ends when the pool is closed
/// ([`Db::close`]) or every handle of the database is dropped (`handles` is gone).
async fn checkpoint_beside_the_writer(pool: sqlx::SqlitePool, handles: std::sync::Weak<crate::Undecided>) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if pool.is_closed() || handles.strong_count() == 0 {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            if pool.is_closed() {
                return;
            }
            tracing::debug!(error = %e, "a background checkpoint failed; the next one tries again");
        }
    }
}

/// Refuses, before anything writes to it, a file that is not SQLite or holds another application's tables, and a
/// path whose directory cannot take a new file.
async fn check_sqlite_file(path: &Path) -> Result<(), OpenError> {
    if !path.exists() {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(OpenError::NotWritable {
                path: path.to_path_buf(),
                reason: format!("directory {} does not exist", dir.display()),
            });
        }
        // Probe with a file of our own: permission bits alone do not tell (root, read-only mounts, ACLs).
        let probe = dir.join(format!(".webcare-write-probe-{}", std::process::id()));
        return match std::fs::File::create(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
                Ok(())
            }
            Err(e) => Err(OpenError::NotWritable {
                path: path.to_path_buf(),
                reason: format!("directory {} is not writable: {e}", dir.display()),
            }),
        };
    }
    let foreign = |reason: String| OpenError::Foreign { path: path.to_path_buf(), reason };
    // Read-only and without any journal-mode pragma, so that nothing in the file changes while we look.
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| foreign(e.to_string()))?;
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| foreign(e.to_string()))?;
    let _ = conn.close().await;
    let has_migrations = tables.iter().any(|(t,)| t == "_sqlx_migrations");
    if !tables.is_empty() && !has_migrations {
        let names: Vec<_> = tables.iter().take(5).map(|(t,)| t.as_str()).collect();
        return Err(foreign(format!("it holds other tables: {}", names.join(", "))));
    }
    Ok(())
}

async fn open_postgres(url: &str, options: &OpenOptions) -> Result<Db, OpenError> {
    let masked = mask_url(url);
    let connect = PgConnectOptions::from_str(url)
        .map_err(|e| OpenError::InvalidUrl { url: masked.clone(), reason: e.to_string() })?;
    let started = Instant::now();
    let mut backoff = Duration::from_millis(200);
    loop {
        // Probe with one plain connection: the pool's own connect retries internally until its acquire timeout and
        // then reports only "timed out", which hides the reason (connection refused, no route) from the operator.
        match sqlx::PgConnection::connect_with(&connect).await {
            Ok(probe) => {
                let _ = probe.close().await;
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(connect.clone())
                    .await
                    .map_err(|e| OpenError::Failed { url: masked.clone(), reason: e.to_string() })?;
                return Ok(Db {
                    pool: Pool::Postgres(pool),
                    backend: Backend::Postgres,
                    url: masked,
                    undecided: Default::default(),
                });
            }
            Err(e) if is_unreachable(&e) => {
                let waited = started.elapsed();
                if waited + backoff > options.connect_retry {
                    return Err(OpenError::Unreachable { url: masked, waited, reason: e.to_string() });
                }
                tracing::warn!(url = %masked, error = %e, retry_in = ?backoff, "database unreachable, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(OpenError::Failed { url: masked, reason: e.to_string() }),
        }
    }
}

/// Errors that a server coming up, or a network coming back, would cure. Refusals (a wrong password, a missing
/// database) are not retried: waiting would not change them.
fn is_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        // 57P03: the server is starting up; 08xxx: connection exceptions.
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c == "57P03" || c.starts_with("08")),
        _ => false,
    }
}
