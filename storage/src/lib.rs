//! webcare's storage: the domain's [`Store`] on SQLite (a file, WAL mode, the default) and on PostgreSQL.
//!
//! One implementation serves both backends: queries are written once in SQL both dialects accept (numbered
//! parameters, `ON CONFLICT`, `RETURNING`) and run through [`on_pool!`], which expands each body once per pool type.
//! Where the dialects must differ (claiming outbox rows with `FOR UPDATE SKIP LOCKED`) the backend is matched
//! explicitly. Each backend has its own migrations directory; the contract suite in `tests/it/storage.rs` runs
//! the same cases against both.
//!
//! Architecture invariant: sqlx types stay inside this crate. Callers see `webcare-domain` types and errors only.

mod open;
mod rows;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection as _;
use webcare_domain::{
    Agent, AgentId, ClusterId, ClusterState, Conversation, ConversationId, Customer, CustomerId, DecisionField,
    Inbound, InboundFilter, InboundId, InboundMessage, Inserted, NewAgent, NewCluster, NewConversation, NewCustomer,
    NewInbound, NewNotice, NewOutbox, NewTicket, Notice, NoticeChange, NoticeId, NoticeVersion, OutageCluster,
    OutboxId, OutboxItem, OutboxState, Platform, Priority, Store, StoreError, StoreResult, Subscription,
    SubscriptionTarget, Ticket, TicketEvent, TicketEventKind, TicketId, TicketState, Timestamp,
};

pub use open::{OpenError, OpenOptions, mask_url, with_database};
use rows::{ms, services_json, to_json};

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An open transaction shared by the clones of a unit-of-work [`Db`]; `None` once committed or rolled back.
type Shared<DB> = std::sync::Arc<tokio::sync::Mutex<Option<sqlx::Transaction<'static, DB>>>>;

#[derive(Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    /// A unit of work ([`Db::begin_unit`]): every call runs inside this one transaction.
    SqliteUnit(Shared<sqlx::Sqlite>),
    PostgresUnit(Shared<sqlx::Postgres>),
}

/// An open database. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    backend: Backend,
    /// The URL with credentials masked, for messages.
    url: String,
    /// Wakes [`Store::await_undecided`]: on PostgreSQL a task that listens for the announcements, started on the first
    /// wait, fires it. Shared by every clone (and unit) of one opened database: the listener, and on SQLite the
    /// checkpoint task, end when the last is dropped.
    undecided: std::sync::Arc<Undecided>,
}

/// The PostgreSQL channel on which instances announce undecided messages.
const UNDECIDED_CHANNEL: &str = "webcare_undecided";

#[derive(Default)]
pub(crate) struct Undecided {
    notify: tokio::sync::Notify,
    listening: tokio::sync::OnceCell<()>,
}

/// Listens on [`UNDECIDED_CHANNEL`] and fires `undecided.notify`, until every handle of the database is dropped or its
/// pool closes. `recv` reconnects by itself after a lost connection; a notification sent meanwhile is lost, which
/// costs only the wait until the next timeout.
async fn listen_for_undecided(pool: sqlx::PgPool, undecided: std::sync::Weak<Undecided>) {
    let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
        Ok(l) => l,
        Err(e) => return tracing::warn!(error = %e, "cannot listen for undecided messages; the decider polls"),
    };
    if let Err(e) = listener.listen(UNDECIDED_CHANNEL).await {
        return tracing::warn!(error = %e, "cannot listen for undecided messages; the decider polls");
    }
    loop {
        let received = tokio::time::timeout(std::time::Duration::from_secs(1), listener.recv()).await;
        match (received, undecided.upgrade()) {
            // Every handle of the database is gone, or it was closed.
            (_, None) => return,
            _ if pool.is_closed() => return,
            (Ok(Ok(_)), Some(u)) => u.notify.notify_one(),
            (Ok(Err(e)), Some(_)) => {
                tracing::debug!(error = %e, "listening for undecided messages failed; trying again");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            (Err(_), Some(_)) => {}
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("backend", &self.backend).field("url", &self.url).finish()
    }
}

/// Runs `$body` with `$pool` bound to a connection (`&mut SqliteConnection` or `&mut PgConnection`): a pooled one,
/// or the transaction of a unit of work. The body is compiled once per backend; it passes `&mut *pool` to each
/// query, and `pool.begin()` opens a transaction (a savepoint inside a unit).
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            Pool::Sqlite(p) => {
                let mut conn = p.acquire().await.map_err(err)?;
                let $pool: &mut sqlx::SqliteConnection = &mut conn;
                $body
            }
            Pool::Postgres(p) => {
                let mut conn = p.acquire().await.map_err(err)?;
                let $pool: &mut sqlx::PgConnection = &mut conn;
                $body
            }
            Pool::SqliteUnit(unit) => {
                let mut guard = unit.lock().await;
                let $pool: &mut sqlx::SqliteConnection = guard.as_mut().ok_or_else(unit_over)?;
                $body
            }
            Pool::PostgresUnit(unit) => {
                let mut guard = unit.lock().await;
                let $pool: &mut sqlx::PgConnection = guard.as_mut().ok_or_else(unit_over)?;
                $body
            }
        }
    };
}

fn unit_over() -> StoreError {
    StoreError::Other("this unit of work was already committed or rolled back".into())
}

/// After an upsert that leaves rows already as given alone (and so does not return them): reads those rows of
/// `$given` that `$rows` lacks, by platform and `$key`, into `$rows`. A join on a VALUES list, not a row-value IN,
/// which SQLite answers with a scan of the table.
macro_rules! read_unwritten {
    ($pool:ident, $rows:ident, $given:expr, $table:literal, $key:ident) => {
        if $rows.len() < $given.len() {
            let written: HashSet<(&str, &str)> = $rows.iter().map(|r| (r.platform.as_str(), r.$key.as_str())).collect();
            let rest: Vec<_> =
                $given.iter().filter(|c| !written.contains(&(c.platform.as_str(), c.$key.as_str()))).collect();
            let mut q = sqlx::QueryBuilder::new(concat!("SELECT t.* FROM ", $table, " t JOIN ("));
            q.push_values(&rest, |mut b, c| {
                b.push_bind(c.platform.as_str()).push_bind(c.$key.clone());
            });
            q.push(concat!(") AS v ON t.platform = v.column1 AND t.", stringify!($key), " = v.column2"));
            let mut more = q.build_query_as().fetch_all(&mut *$pool).await.map_err(err)?;
            $rows.append(&mut more);
        }
    };
}

/// Writes a notice's current content as a version row, inside the transaction `$tx`.
macro_rules! insert_version {
    ($tx:expr, $notice:expr, $author:expr, $approved_by:expr) => {{
        let notice: &Notice = $notice;
        sqlx::query(
            "INSERT INTO notice_versions
               (notice_id, version, state, text, texts, services, regions, author_id, approved_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(notice.id.0)
        .bind(notice.version)
        .bind(notice.state.as_str())
        .bind(notice.text.clone())
        .bind(to_json(&notice.texts))
        .bind(services_json(&notice.services))
        .bind(to_json(&notice.regions))
        .bind($author.map(|a: AgentId| a.0))
        .bind($approved_by.map(|a: AgentId| a.0))
        .bind(ms(notice.updated_at))
        .execute(&mut *$tx)
        .await
        .map_err(err)
    }};
}

/// Writes a ticket event inside the transaction `$tx` and returns its row.
macro_rules! insert_event {
    ($tx:expr, $ticket:expr, $kind:expr, $actor:expr, $body:expr, $at:expr) => {{
        let row: Result<rows::TicketEventRow, _> = sqlx::query_as(
            "INSERT INTO ticket_events (ticket_id, kind, actor_id, body, created_at) VALUES ($1, $2, $3, $4, $5)
             RETURNING *",
        )
        .bind($ticket.0)
        .bind(TicketEventKind::as_str($kind))
        .bind($actor.map(|a: AgentId| a.0))
        .bind($body.to_owned())
        .bind(ms($at))
        .fetch_one(&mut *$tx)
        .await
        .map_err(err);
        row
    }};
}

impl Db {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database URL with credentials masked.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Waits for in-flight queries and closes every connection. (On a unit of work: nothing; the unit ends with
    /// its commit or rollback.)
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
            Pool::SqliteUnit(_) | Pool::PostgresUnit(_) => {}
        }
    }

    /// Starts a unit of work: a [`Db`] whose every call runs in one transaction, until [`Db::commit`] makes all of
    /// it durable at once (one disk flush for many writes) or [`Db::rollback`] undoes it. On SQLite the transaction
    /// takes the write lock at once (`BEGIN IMMEDIATE`), so a unit never fails half-way for a lock another writer
    /// holds; keep units short, since other writers wait for them. A unit cannot start another.
    pub async fn begin_unit(&self) -> StoreResult<Db> {
        let pool = match &self.pool {
            Pool::Sqlite(pool) => {
                let tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
                Pool::SqliteUnit(std::sync::Arc::new(tokio::sync::Mutex::new(Some(tx))))
            }
            Pool::Postgres(pool) => {
                let tx = pool.begin().await.map_err(err)?;
                Pool::PostgresUnit(std::sync::Arc::new(tokio::sync::Mutex::new(Some(tx))))
            }
            Pool::SqliteUnit(_) | Pool::PostgresUnit(_) => {
                return Err(StoreError::Other("a unit of work cannot start another".into()));
            }
        };
        Ok(Db { pool, backend: self.backend, url: self.url.clone(), undecided: self.undecided.clone() })
    }

    /// Commits a unit of work; every clone of it is then spent.
    pub async fn commit(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::SqliteUnit(unit) => unit.lock().await.take().ok_or_else(unit_over)?.commit().await.map_err(err),
            Pool::PostgresUnit(unit) => unit.lock().await.take().ok_or_else(unit_over)?.commit().await.map_err(err),
            Pool::Sqlite(_) | Pool::Postgres(_) => Err(StoreError::Other("commit outside a unit of work".into())),
        }
    }

    /// Runs a statement that steers a unit's transaction (a savepoint); an error outside a unit.
    async fn unit_statement(&self, sql: &'static str) -> StoreResult<()> {
        match &self.pool {
            Pool::SqliteUnit(_) | Pool::PostgresUnit(_) => {
                on_pool!(self, |pool| sqlx::query(sql).execute(&mut *pool).await.map(|_| ()).map_err(err))
            }
            Pool::Sqlite(_) | Pool::Postgres(_) => Err(StoreError::Other("a savepoint outside a unit of work".into())),
        }
    }

    /// Undoes a unit of work; every clone of it is then spent. Rolling back a spent unit does nothing.
    pub async fn rollback(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::SqliteUnit(unit) => match unit.lock().await.take() {
                Some(tx) => tx.rollback().await.map_err(err),
                None => Ok(()),
            },
            Pool::PostgresUnit(unit) => match unit.lock().await.take() {
                Some(tx) => tx.rollback().await.map_err(err),
                None => Ok(()),
            },
            Pool::Sqlite(_) | Pool::Postgres(_) => Err(StoreError::Other("rollback outside a unit of work".into())),
        }
    }
}

/// Maps a driver error onto what a caller can act on.
fn err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound { what: "row", id: String::new() },
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(db.message().to_owned()),
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite 5/6 (busy, locked); PostgreSQL 08xxx (connection), 57P0x (shutdown), 40001 (serialisation).
            if code == "5" || code == "6" || code.starts_with("08") || code.starts_with("57P") || code == "40001" {
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Other(e.to_string())
            }
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::ColumnNotFound(_) => {
            StoreError::Invalid(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

fn not_found(what: &'static str, id: impl ToString) -> impl FnOnce(StoreError) -> StoreError {
    move |e| match e {
        StoreError::NotFound { .. } => StoreError::NotFound { what, id: id.to_string() },
        other => other,
    }
}

/// `Ok` when an UPDATE touched a row, `NotFound` naming the row otherwise.
fn found(rows_affected: u64, what: &'static str, id: impl ToString) -> StoreResult<()> {
    if rows_affected == 0 { Err(StoreError::NotFound { what, id: id.to_string() }) } else { Ok(()) }
}

fn optional<T>(r: Result<T, sqlx::Error>) -> StoreResult<Option<T>> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(sqlx::Error::RowNotFound) => Ok(None),
        Err(e) => Err(err(e)),
    }
}

/// The rows a batch statement returned (in no particular order), put in the order of the keys the caller gave;
/// a key given twice gets the same row twice.
/// Rows per multi-row statement: well under both databases' limits on bound parameters (SQLite's 32,766,
/// PostgreSQL's 65,535) at up to 22 parameters per row.
const CHUNK: usize = 500;

fn in_given_order<'k, T: Clone>(
    rows: Vec<T>,
    key_of: impl Fn(&T) -> (Platform, &str),
    wanted: impl Iterator<Item = (Platform, &'k str)>,
    what: &str,
) -> StoreResult<Vec<T>> {
    let stored: HashMap<(Platform, &str), &T> = rows.iter().map(|r| (key_of(r), r)).collect();
    wanted
        .map(|key| {
            stored
                .get(&key)
                .map(|r| (*r).clone())
                .ok_or_else(|| StoreError::Other(format!("{what} {} was not stored", key.1)))
        })
        .collect()
}

/// A LIKE pattern matching every string that starts with `prefix`, with LIKE's own characters escaped.
fn like_prefix(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A LIKE pattern matching every string that contains `part`, with LIKE's own characters escaped.
fn like_contains(part: &str) -> String {
    format!("%{}", like_prefix(part))
}

const TICKET_ORDER: &str = "ORDER BY due_at IS NULL, due_at, created_at, id";

/// Inserts a new ticket; the platform is copied from its conversation so the queue can filter on it.
const INSERT_TICKET: &str = "INSERT INTO tickets
       (conversation_id, customer_id, state, subject, priority, category, created_at, updated_at, due_at,
        platform, tags, first_response_due_at, resolution_due_at)
     VALUES ($1, $2, 'new', $3, $4, $5, $6, $6, $7,
        (SELECT platform FROM conversations WHERE id = $1), $8, $9, $10)
     RETURNING *";

/// Claims due outbox rows. Written out twice because only PostgreSQL has (and needs) row locks: with
/// `FOR UPDATE SKIP LOCKED` concurrent claimers in other processes take disjoint rows without waiting; SQLite has
/// one writer at a time, so the single UPDATE is atomic without it.
///
/// A row waits while an earlier row to the same chat with at least its priority is still unsent (pending, due or
/// not, or being sent by anyone): one chat's messages of one priority go out one at a time and in the order they
/// were queued, whichever instance claims them, while a person's answer still passes a broadcast queued before it.
/// The lookup uses `outbox_conversation (conversation_id, state)`.
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET state = 'sending', claimed_by = $1, lease_until = $2, attempts = attempts + 1
             WHERE id IN (
               SELECT o.id FROM outbox AS o
               WHERE ((o.state = 'pending' AND o.next_attempt_at <= $3) OR (o.state = 'sending' AND o.lease_until <= $3))
                 AND o.priority >= $5 AND o.priority < $6
                 AND NOT EXISTS (
                   SELECT 1 FROM outbox AS e
                   WHERE e.conversation_id = o.conversation_id AND e.state IN ('pending', 'sending')
                     AND e.id < o.id AND e.priority >= o.priority)
               ORDER BY o.priority DESC, o.next_attempt_at, o.id
               LIMIT $4 ",
            $lock,
            ")
             RETURNING *"
        )
    };
}
const CLAIM_POSTGRES: &str = claim_sql!("FOR UPDATE SKIP LOCKED");
const CLAIM_SQLITE: &str = claim_sql!("");

/// Which alerts a notifier may claim at `$1` (now): pending and due, or claimed by a notifier whose lease lapsed.
macro_rules! alert_due {
    () => {
        "((webhook_state = 'pending' AND webhook_next_at <= $1) OR (webhook_state = 'sending' AND webhook_lease_until <= $1))"
    };
}

/// The columns of an alert's webhook state, `FROM spike_alerts`.
macro_rules! alert_webhook_columns {
    () => {
        "id, webhook_state, webhook_attempts, webhook_route, webhook_next_at, webhook_error, webhook_posted_at
         FROM spike_alerts"
    };
}

/// Claims alerts due for their webhook, as [`claim_sql!`] claims outbox rows: `SKIP LOCKED` on PostgreSQL lets
/// notifiers in several processes take disjoint alerts without waiting.
macro_rules! claim_alerts_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE spike_alerts SET webhook_state = 'sending', webhook_claimed_by = $3, webhook_lease_until = $4,
               webhook_attempts = webhook_attempts + 1
             WHERE id IN (SELECT id FROM spike_alerts WHERE ",
            alert_due!(),
            " ORDER BY webhook_next_at, id LIMIT $2 ",
            $lock,
            ")
             RETURNING *"
        )
    };
}
const CLAIM_ALERTS_POSTGRES: &str = claim_alerts_sql!("FOR UPDATE SKIP LOCKED");
const CLAIM_ALERTS_SQLITE: &str = claim_alerts_sql!("");

impl Db {
    /// Ends an alert's webhook post without posting it (`failed` or `skipped`), if `worker` holds its claim.
    async fn finish_alert_webhook(
        &self,
        id: webcare_domain::AlertId,
        worker: &str,
        state: webcare_domain::WebhookState,
        route: Option<&str>,
        error: &str,
    ) -> StoreResult<bool> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE spike_alerts SET webhook_state = $1, webhook_route = $2, webhook_error = $3,
               webhook_lease_until = NULL
             WHERE id = $4 AND webhook_claimed_by = $5 AND webhook_state = 'sending'"
        )
        .bind(state.as_str())
        .bind(route)
        .bind(error)
        .bind(id.0)
        .bind(worker)
        .execute(&mut *pool)
        .await
        .map_err(err)?
        .rows_affected());
        Ok(n > 0)
    }
}

#[async_trait]
impl webcare_domain::Unit for Db {
    async fn commit(&self) -> StoreResult<()> {
        Db::commit(self).await
    }

    async fn rollback(&self) -> StoreResult<()> {
        Db::rollback(self).await
    }

    async fn mark(&self) -> StoreResult<()> {
        self.unit_statement("SAVEPOINT webcare_mark").await
    }

    async fn rollback_to_mark(&self) -> StoreResult<()> {
        self.unit_statement("ROLLBACK TO SAVEPOINT webcare_mark").await
    }
}

#[async_trait]
impl Store for Db {
    async fn begin(&self) -> StoreResult<std::sync::Arc<dyn webcare_domain::Unit>> {
        Ok(std::sync::Arc::new(self.begin_unit().await?))
    }

    async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query("SELECT 1").execute(&mut *pool).await.map(|_| ()).map_err(err))
    }

    async fn request_reload(&self, name: &str, by: &str, at: Timestamp) -> StoreResult<i64> {
        on_pool!(self, |pool| sqlx::query_scalar(
            "INSERT INTO reloads (name, generation, requested_by, requested_at) VALUES ($1, 1, $2, $3)
             ON CONFLICT (name) DO UPDATE
               SET generation = reloads.generation + 1, requested_by = $2, requested_at = $3
             RETURNING generation"
        )
        .bind(name)
        .bind(by)
        .bind(ms(at))
        .fetch_one(&mut *pool)
        .await
        .map_err(err))
    }

    async fn reload_generation(&self, name: &str) -> StoreResult<i64> {
        let found: Option<i64> = on_pool!(self, |pool| optional(
            sqlx::query_scalar("SELECT generation FROM reloads WHERE name = $1").bind(name).fetch_one(&mut *pool).await
        )?);
        Ok(found.unwrap_or(0))
    }

    async fn acquire_lease(&self, name: &str, holder: &str, now: Timestamp, until: Timestamp) -> StoreResult<bool> {
        // One statement: insert, or take over a lease that ran out, or renew our own. The row lock (PostgreSQL) or
        // the write lock (SQLite) makes two contenders see each other's result.
        let n = on_pool!(self, |pool| sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4"
        )
        .bind(name)
        .bind(holder)
        .bind(ms(until))
        .bind(ms(now))
        .execute(&mut *pool)
        .await
        .map_err(err)?
        .rows_affected());
        Ok(n > 0)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&mut *pool)
            .await
            .map(|_| ())
            .map_err(err))
    }

    async fn upsert_customer(&self, new: NewCustomer, at: Timestamp) -> StoreResult<Customer> {
        let row: rows::CustomerRow = on_pool!(self, |pool| sqlx::query_as(
            "INSERT INTO customers (platform, platform_user_id, display_name, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (platform, platform_user_id) DO UPDATE SET display_name = excluded.display_name
             RETURNING *"
        )
        .bind(new.platform.as_str())
        .bind(&new.platform_user_id)
        .bind(&new.display_name)
        .bind(ms(at))
        .fetch_one(&mut *pool)
        .await
        .map_err(err)?);
        row.try_into()
    }

    async fn upsert_customers(&self, new: &[NewCustomer], at: Timestamp) -> StoreResult<Vec<Customer>> {
        // One row per user: a statement may not update the same row twice (PostgreSQL refuses).
        let mut unique: Vec<&NewCustomer> = Vec::new();
        let mut index: HashMap<(Platform, &str), usize> = HashMap::new();
        for c in new {
            match index.get(&(c.platform, c.platform_user_id.as_str())) {
                Some(&i) => unique[i] = c,
                None => {
                    index.insert((c.platform, c.platform_user_id.as_str()), unique.len());
                    unique.push(c);
                }
            }
        }
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<rows::CustomerRow> = on_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO customers (platform, platform_user_id, display_name, created_at) ",
            );
            q.push_values(&unique, |mut b, c| {
                b.push_bind(c.platform.as_str())
                    .push_bind(c.platform_user_id.clone())
                    .push_bind(c.display_name.clone())
                    .push_bind(ms(at));
            });
            // A row that is already as given is not written again (no page rewritten for a returning customer);
            // such rows are read after.
            q.push(
                " ON CONFLICT (platform, platform_user_id) DO UPDATE SET display_name = excluded.display_name
                  WHERE customers.display_name IS DISTINCT FROM excluded.display_name
                  RETURNING *",
            );
            let mut rows: Vec<rows::CustomerRow> = q.build_query_as().fetch_all(&mut *pool).await.map_err(err)?;
            read_unwritten!(pool, rows, unique, "customers", platform_user_id);
            rows
        });
        in_given_order(
            rows::all::<_, Customer>(rows)?,
            |c| (c.platform, c.platform_user_id.as_str()),
            new.iter().map(|c| (c.platform, c.platform_user_id.as_str())),
            "customer",
        )
    }

    async fn customer(&self, id: CustomerId) -> StoreResult<Customer> {
        let row: rows::CustomerRow = on_pool!(self, |pool| sqlx::query_as("SELECT * FROM customers WHERE id = $1")
            .bind(id.0)
            .fetch_one(&mut *pool)
            .await
            .map_err(err)
            .map_err(not_found("customer", id))?);
        row.try_into()
    }

    async fn set_customer_unreachable(&self, id: CustomerId, unreachable: bool) -> StoreResult<()> {
        let done = on_pool!(self, |pool| sqlx::query("UPDATE customers SET unreachable = $1 WHERE id = $2")
            .bind(unreachable)
            .bind(id.0)
            .execute(&mut *pool)
            .await
            .map_err(err)?
            .rows_affected());
        found(done, "customer", id)
    }

    async fn upsert_conversation(&self, new: NewConversation, at: Timestamp) -> StoreResult<Conversation> {
        let row: rows::ConversationRow = on_pool!(self, |pool| {
            sqlx::query_as(
            "INSERT INTO conversations (platform, platform_chat_id, kind, title, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (platform, platform_chat_id) DO UPDATE SET title = COALESCE(excluded.title, conversations.title)
             RETURNING *"
        )
        .bind(new.platform.as_str())
        .bind(&new.platform_chat_id)
        .bind(new.kind.as_str())
        .bind(&new.title)
        .bind(ms(at))
        .fetch_one(&mut *pool)
        .await
        .map_err(err)?
        });
        row.try_into()
    }

    async fn upsert_conversations(&self, new: &[NewConversation], at: Timestamp) -> StoreResult<Vec<Conversation>> {
        // One row per chat, with the last title given (as one call after another would leave it).
        let mut unique: Vec<NewConversation> = Vec::new();
        let mut index: HashMap<(Platform, &str), usize> = HashMap::new();
        for c in new {
            match index.get(&(c.platform, c.platform_chat_id.as_str())) {
                Some(&i) => {
                    if c.title.is_some() {
                        unique[i].title = c.title.clone();
                    }
                }
                None => {
                    index.insert((c.platform, c.platform_chat_id.as_str()), unique.len());
                    unique.push(c.clone());
                }
            }
        }
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<rows::ConversationRow> = on_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO conversations (platform, platform_chat_id, kind, title, created_at) ",
            );
            q.push_values(&unique, |mut b, c| {
                b.push_bind(c.platform.as_str())
                    .push_bind(c.platform_chat_id.clone())
                    .push_bind(c.kind.as_str())
                    .push_bind(c.title.clone())
                    .push_bind(ms(at));
            });
            // As for customers: a chat whose title is as given is not written again, and is read after.
            q.push(
                " ON CONFLICT (platform, platform_chat_id) DO UPDATE SET title = excluded.title
                  WHERE excluded.title IS NOT NULL AND conversations.title IS DISTINCT FROM excluded.title
                  RETURNING *",
            );
            let mut rows: Vec<rows::ConversationRow> = q.build_query_as().fetch_all(&mut *pool).await.map_err(err)?;
            read_unwritten!(pool, rows, unique, "conversations", platform_chat_id);
            rows
        });
        in_given_order(
            rows::all::<_, Conversation>(rows)?,
            |c| (c.platform, c.platform_chat_id.as_str()),
            new.iter().map(|c| (c.platform, c.platform_chat_id.as_str())),
            "conversation",
        )
    }

    async fn conversation(&self, id: ConversationId) -> StoreResult<Conversation> {
        let row: rows::ConversationRow =
            on_pool!(self, |pool| sqlx::query_as("SELECT * FROM conversations WHERE id = $1")
                .bind(id.0)
                .fetch_one(&mut *pool)
                .await
                .map_err(err)
                .map_err(not_found("conversation", id))?);
        row.try_into()
    }

    async fn conversation_by_chat(
        &self,
        platform: Platform,
        platform_chat_id: &str,
    ) -> StoreResult<Option<Conversation>> {
        let row: Option<rows::ConversationRow> = on_pool!(self, |pool| optional(
            sqlx::query_as("SELECT * FROM conversations WHERE platform = $1 AND platform_chat_id = $2")
                .bind(platform.as_str())
                .bind(platform_chat_id)
                .fetch_one(&mut *pool)
                .await
        )?);
        row.map(TryInto::try_into).transpose()
    }

    async fn create_private_link(&self, ticket: TicketId, token: &str, at: Timestamp) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO private_links (token, ticket_id, created_at) VALUES ($1, $2, $3)"
        )
        .bind(token)
        .bind(ticket.0)
        .bind(ms(at))
        .execute(&mut *pool)
        .await
        .map(|_| ())
        .map_err(err))
    }

    async fn resolve_private_link(&self, token: &str) -> StoreResult<Option<TicketId>> {
        let row: Option<(i64,)> = on_pool!(self, |pool| optional(
            sqlx::query_as("SELECT ticket_id FROM private_links WHERE token = $1")
                .bind(token)
                .fetch_one(&mut *pool)
                .await
        )?);
        Ok(row.map(|(id,)| TicketId(id)))
    }

    async fn move_ticket(&self, ticket: TicketId, conversation: ConversationId) -> StoreResult<()> {
        let n = on_pool!(self, |pool| sqlx::query("UPDATE tickets SET conversation_id = $1 WHERE id = $2")
            .bind(conversation.0)
            .bind(ticket.0)
            .execute(&mut *pool)
            .await
            .map_err(err)?
            .rows_affected());
        found(n, "ticket", ticket)
    }

    async fn set_conversation_unreachable(&self, id: ConversationId, unreachable: bool) -> StoreResult<()> {
        let n = on_pool!(self, |pool| sqlx::query("UPDATE conversations SET unreachable = $1 WHERE id = $2")
            .bind(unreachable)
            .bind(id.0)
            .execute(&mut *pool)
            .await
            .map_err(err)?
            .rows_affected());
        found(n, "conversation", id)
    }

    async fn move_conversation(&self, id: ConversationId, new_platform_chat_id: &str) -> StoreResult<()> {
        let n = on_pool!(self, |pool| sqlx::query("UPDATE conversations SET platform_chat_id = $1 WHERE id = $2")
            .bind(new_platform_chat_id)
            .bind(id.0)
            .execute(&mut *pool)
            .await
            .map_err(err)?
            .rows_affected());
        found(n, "conversation", id)
    }

    async fn transcript(&self, id: ConversationId) -> StoreResult<(Vec<InboundMessage>, Vec<OutboxItem>)> {
        let (inbound, outbound): (Vec<rows::InboundRow>, Vec<rows::OutboxRow>) = on_pool!(self, |pool| {
            let inbound =
                sqlx::query_as("SELECT * FROM inbound_messages WHERE conversation_id = $1 ORDER BY received_at, id")
                    .bind(id.0)
                    .fetch_all(&mut *pool)
                    .await
                    .map_err(err)?;
            let outbound = sqlx::query_as(
                "SELECT * FROM outbox WHERE conversation_id = $1 AND kind = 'message' ORDER BY created_at, id",
            )
            .bind(id.0)
            .fetch_all(&mut *pool)
            .await
            .map_err(err)?;
            (inbound, outbound)
        });
        Ok((rows::all(inbound)?, rows::all(outbound)?))
    }

    async fn insert_inbound(&self, new: NewInbound) -> StoreResult<Inbound> {
        let attachments = to_json(&new.attachments);
        let inserted: Option<rows::InboundRow> = on_pool!(self, |pool| optional(
            sqlx::query_as(
                "INSERT INTO inbound_messages
                   (platform, platform_message_id, conversation_id, customer_id, text, attachments, received_at, place,
                    language)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (platform, platform_message_id) DO NOTHING
                 RETURNING *"
            )
            .bind(new.platform.as_str())
            .bind(&new.platform_message_id)
            .bind(new.conversation.0)
            .bind(new.customer.0)
            .bind(&new.text)
            .bind(&attachments)
            .bind(ms(new.received_at))
            .bind(&new.place)
            .bind(&new.language)
            .fetch_one(&mut *pool)
            .await
        )?);
        if let Some(row) = inserted {
            return Ok(Inserted::New(row.try_into()?));
        }
        let row: rows::InboundRow = on_pool!(self, |pool| sqlx::query_as(
            "SELECT * FROM inbound_messages WHERE platform = $1 AND platform_message_id = $2"
        )
        .bind(new.platform.as_str())
        .bind(&new.platform_message_id)
        .fetch_one(&mut *pool)
        .await
        .map_err(err)?);
        Ok(Inserted::Existing(row.try_into()?))
    }

    async fn insert_inbound_many(&self, new: &[NewInbound]) -> StoreResult<Vec<Inbound>> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        // Messages already stored (redelivered) are skipped by the insert and read afterwards. A new row is built
        // from what was given (with the time as stored, to the millisecond), so only its id comes back.
        let inserted: Vec<(i64, String, String)> = on_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO inbound_messages
                   (platform, platform_message_id, conversation_id, customer_id, text, attachments, received_at,
                    place, language) ",
            );
            q.push_values(new, |mut b, m| {
                b.push_bind(m.platform.as_str())
                    .push_bind(m.platform_message_id.clone())
                    .push_bind(m.conversation.0)
                    .push_bind(m.customer.0)
                    .push_bind(m.text.clone())
                    .push_bind(to_json(&m.attachments))
                    .push_bind(ms(m.received_at))
                    .push_bind(m.place.clone())
                    .push_bind(m.language.clone());
            });
            q.push(
                " ON CONFLICT (platform, platform_message_id) DO NOTHING RETURNING id, platform, platform_message_id",
            );
            q.build_query_as().fetch_all(&mut *pool).await.map_err(err)?
        });
        let mut fresh: HashMap<(&str, &str), i64> =
            inserted.iter().map(|(id, platform, key)| ((platform.as_str(), key.as_str()), *id)).collect();
        let mut out: Vec<Inserted<InboundMessage>> = Vec::with_capacity(new.len());
        // Where each message given is in `out`, for a message given twice.
        let mut seen: HashMap<(Platform, &str), usize> = HashMap::new();
        for m in new {
            let key = (m.platform, m.platform_message_id.as_str());
            if let Some(&at) = seen.get(&key) {
                let (Inserted::Existing(message) | Inserted::New(message)) = &out[at];
                out.push(Inserted::Existing(message.clone()));
            } else if let Some(id) = fresh.remove(&(m.platform.as_str(), m.platform_message_id.as_str())) {
                seen.insert(key, out.len());
                out.push(Inserted::New(InboundMessage {
                    id: InboundId(id),
                    platform: m.platform,
                    platform_message_id: m.platform_message_id.clone(),
                    conversation: m.conversation,
                    customer: m.customer,
                    text: m.text.clone(),
                    attachments: m.attachments.clone(),
                    received_at: rows::time(ms(m.received_at))?,
                    edited_at: None,
                    deleted_at: None,
                    decision: None,
                    place: m.place.clone(),
                    language: m.language.clone(),
                }));
            } else {
                // Stored before this batch (rare: a redelivery): the single-message path finds it.
                let (Inserted::Existing(message) | Inserted::New(message)) = self.insert_inbound(m.clone()).await?;
                seen.insert(key, out.len());
                out.push(Inserted::Existing(message));
            }
        }
        Ok(out)
    }

    async fn edit_inbound(
        &self,
        platform: Platform,
        platform_message_id: &str,
        text: &str,
        at: Timestamp,
    ) -> StoreResult<Option<InboundMessage>> {
        let row: Option<rows::InboundRow> = on_pool!(self, |pool| optional(
            sqlx::query_as(
                "UPDATE inbound_messages SET text = $1, edited_at = $2
                 WHERE platform = $3 AND platform_message_id = $4 RETURNING *"
            )
            .bind(text)
            .bind(ms(at))
            .bind(platform.as_str())
            .bind(platform_message_id)
            .fetch_one(&mut *pool)
            .await
        )?);
        row.map(TryInto::try_into).transpose()
    }

    async fn delete_inbound(&self, platform: Platform, platform_message_id: &str, at: Timestamp) -> StoreResult<bool> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE inbound_messages SET deleted_at = $1 WHERE platform = $2 AND platform_message_id = $3"
        )
        .bind(ms(at))
        .bind(platform.as_str())
        .bind(platform_message_id)
        .execute(&mut *pool)
        .await
        .map_err(err)?
        .rows_affected());
        Ok(n > 0)
    }

    async fn set_decision(&self, id: InboundId, decision: &serde_json::Value) -> StoreResult<()> {
        let decision = to_json(decision);
        let n = on_pool!(self, |pool| sqlx::query("UPDATE inbound_messages SET decision = $1 WHERE id = $2")
            .bind(&decision)
            .bind(id.0)
            .execute(&mut *pool)
            .await
            .map_err(err)?
            .rows_affected());
        found(n, "message", id)
    }

    async fn set_decisions(&self, decisions: &[(InboundId, String)]) -> StoreResult<()> {
        if decisions.is_empty() {
            return Ok(());
        }
        let n = on_pool!(self, |pool| {
            // `column1`, `column2`: the names both databases give a VALUES list's columns. The `IN` makes SQLite
            // look the rows up by id: for a plain UPDATE … FROM, SQLite 3.51 scans the whole table and probes the list.
            let mut q = sqlx::QueryBuilder::new("WITH v AS (");
            q.push_values(decisions, |mut b, (id, decision)| {
                b.push("CAST(")
                    .push_bind_unseparated(id.0)
                    .push_unseparated(" AS BIGINT)")
                    .push_bind(decision.as_str());
            });
            q.push(
                ") UPDATE inbound_messages SET decision = v.column2 FROM v
                 WHERE inbound_messages.id = v.column1 AND inbound_messages.id IN (SELECT column1 FROM v)",
            );
            q.build().execute(&mut *pool).await.map_err(err)?.rows_affected()
        });
        let distinct: std::collections::HashSet<InboundId> = decisions.iter().map(|(id, _)| *id).collect();
        if n < distinct.len() as u64 {
            return Err(StoreError::NotFound {
                what: "message",
                id: format!("{} of {}", distinct.len() as u64 - n, distinct.len()),
            });
        }
        Ok(())
    }

    async fn inbound(&self, id: InboundId) -> StoreResult<InboundMessage> {
        let row: rows::InboundRow =
            on_pool!(self, |pool| sqlx::query_as("SELECT * FROM inbound_messages WHERE id = $1")
                .bind(id.0)
                .fetch_one(&mut *pool)
                .await
                .map_err(err)
                .map_err(not_found("message", id))?);
        row.try_into()
    }

    async fn inbound_after(&self, after: InboundId, limit: u32) -> StoreResult<Vec<InboundMessage>> {
        let rows: Vec<rows::InboundRow> =
            on_pool!(self, |pool| sqlx::query_as("SELECT * FROM inbound_messages WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after.0)
                .bind(i64::from(limit))
                .fetch_all(&mut *pool)
                .await
                .map_err(err)?);
        rows::all(rows)
    }

    async fn inbound_undecided(&self, after: InboundId, limit: u32) -> StoreResult<Vec<InboundMessage>> {
        let rows: Vec<rows::InboundRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT * FROM inbound_messages WHERE decision IS NULL AND id > $1 ORDER BY id LIMIT $2"
        )
        .bind(after.0)
        .bind(i64::from(limit))
        .fetch_all(&mut *pool)
        .await
        .map_err(err)?);
        rows::all(rows)
    }

    async fn announce_undecided(&self) -> StoreResult<()> {
        match self.backend {
            Backend::Sqlite => Ok(()),
            Backend::Postgres => on_pool!(self, |pool| sqlx::query("SELECT pg_notify($1, '')")
                .bind(UNDECIDED_CHANNEL)
                .execute(&mut *pool)
                .await
                .map(|_| ())
                .map_err(err)),
        }
    }

    async fn await_undecided(&self, timeout: std::time::Duration) {
        if let Pool::Postgres(pool) = &self.pool {
            let (pool, undecided) = (pool.clone(), std::sync::Arc::downgrade(&self.undecided));
            self.undecided
                .listening
                .get_or_init(|| async move {
                    tokio::spawn(listen_for_undecided(pool, undecided));
                })
                .await;
        }
        let _ = tokio::time::timeout(timeout, self.undecided.notify.notified()).await;
    }

    async fn save_engine_snapshot(&self, state: &str, last: InboundId, at: Timestamp) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO engine_snapshots (id, state, last_inbound_id, taken_at) VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, last_inbound_id = excluded.last_inbound_id,
               taken_at = excluded.taken_at"
        )
        .bind(state)
        .bind(last.0)
        .bind(ms(at))
        .execute(&mut *pool)
        .await
        .map(|_| ())
        .map_err(err))
    }

    async fn engine_snapshot(&self) -> StoreResult<Option<(String, InboundId)>> {
        let row: Option<(String, i64)> = on_pool!(self, |pool| optional(
            sqlx::query_as("SELECT state, last_inbound_id FROM engine_snapshots WHERE id = 1")
                .fetch_one(&mut *pool)
                .await
        )?);
        Ok(row.map(|(s, id)| (s, InboundId(id))))
    }

    async fn create_notice(&self, new: NewNotice) -> StoreResult<Notice> {
        let services = services_json(&new.services);
        let regions = to_json(&new.regions);
        let texts = to_json(&new.texts);
        let row: Notice = on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            let row: rows::NoticeRow = sqlx::query_as(
                "INSERT INTO notices
                   (title, state, services, regions, text, texts, version, draft, cluster_id, created_at, updated_at,
                    paid_broadcast)
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $9, $10)
                 RETURNING *",
            )
            .bind(&new.title)
            .bind(new.state.as_str())
            .bind(&services)
            .bind(&regions)
            .bind(&new.text)
            .bind(&texts)
            .bind(new.draft)
            .bind(new.cluster.map(|c| c.0))
            .bind(ms(new.at))
            .bind(new.paid_broadcast)
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
            let notice: Notice = row.try_into()?;
            insert_version!(tx, &notice, new.author, new.approved_by)?;
            tx.commit().await.map_err(err)?;
            notice
        });
        Ok(row)
    }

    async fn update_notice(&self, id: NoticeId, change: NoticeChange, at: Timestamp) -> StoreResult<Notice> {
        let services = change.services.as_deref().map(services_json);
        let regions = change.regions.as_ref().map(to_json);
        let texts = change.texts.as_ref().map(to_json);
        let row: Notice = on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            // One UPDATE computes the new version from the stored row, so that two concurrent changes get
            // consecutive version numbers on both backends (the row lock or SQLite's write lock orders them).
            let row: rows::NoticeRow = sqlx::query_as(
                "UPDATE notices SET
                   text = COALESCE($1, text), texts = COALESCE($2, texts), state = COALESCE($3, state),
                   services = COALESCE($4, services), regions = COALESCE($5, regions), draft = COALESCE($6, draft),
                   version = version + 1, updated_at = $7, paid_broadcast = COALESCE($9, paid_broadcast)
                 WHERE id = $8 RETURNING *",
            )
            .bind(change.text.as_deref())
            .bind(texts.as_deref())
            .bind(change.state.map(|s| s.as_str()))
            .bind(services.as_deref())
            .bind(regions.as_deref())
            .bind(change.draft)
            .bind(ms(at))
            .bind(id.0)
            .bind(change.paid_broadcast)
            .fetch_one(&mut *tx)
            .await
            .map_err(err)
            .map_err(not_found("notice", id))?;
            let notice: Notice = row.try_into()?;
            insert_version!(tx, &notice, change.author, change.approved_by)?;
            tx.commit().await.map_err(err)?;
            notice
        });
        Ok(row)
    }

    async fn notice(&self, id: NoticeId) -> StoreResult<Notice> {
        let row: rows::NoticeRow = on_pool!(self, |pool| sqlx::query_as("SELECT * FROM notices WHERE id = $1")
            .bind(id.0)
            .fetch_one(&mut *pool)
            .await
            .map_err(err)
            .map_err(not_found("notice", id))?);
        row.try_into()
    }

    async fn notices(&self, active_only: bool) -> StoreResult<Vec<Notice>> {
        let sql = if active_only {
            "SELECT * FROM notices WHERE draft = FALSE AND state <> 'resolved' ORDER BY id DESC"
        } else {
            "SELECT * FROM notices ORDER BY id DESC"
        };
        let rows: Vec<rows::NoticeRow> =
            on_pool!(self, |pool| sqlx::query_as(sql).fetch_all(&mut *pool).await.map_err(err)?);
        rows::all(rows)
    }

    async fn notice_versions(&self, id: NoticeId) -> StoreResult<Vec<NoticeVersion>> {
        let rows: Vec<rows::NoticeVersionRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT * FROM notice_versions WHERE notice_id = $1 ORDER BY version"
        )
        .bind(id.0)
        .fetch_all(&mut *pool)
        .await
        .map_err(err)?);
        rows::all(rows)
    }

    async fn propose_notice_change(&self, p: &webcare_domain::NoticeProposal) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO notice_proposals (notice_id, author_id, change, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (notice_id) DO UPDATE
             SET author_id = excluded.author_id, change = excluded.change, created_at = excluded.created_at"
        )
        .bind(p.notice.0)
        .bind(p.author.0)
        .bind(to_json(&p.change))
        .bind(ms(p.created_at))
        .execute(&mut *pool)
        .await
        .map(|_| ())
        .map_err(err))
    }

    async fn notice_proposal(&self, id: NoticeId) -> StoreResult<Option<webcare_domain::NoticeProposal>> {
        let row: Option<(i64, String, i64)> = on_pool!(self, |pool| optional(
            sqlx::query_as("SELECT author_id, change, created_at FROM notice_proposals WHERE notice_id = $1")
                .bind(id.0)
                .fetch_one(&mut *pool)
                .await
        )?);
        row.map(|(author, change, at)| {
            Ok(webcare_domain::NoticeProposal {
                notice: id,
                author: AgentId(author),
                change: rows::json("notice_proposals.change", &change)?,
                created_at: rows::time(at)?,
            })
        })
        .transpose()
    }

    async fn drop_notice_proposal(&self, id: NoticeId) -> StoreResult<bool> {
        on_pool!(self, |pool| sqlx::query("DELETE FROM notice_proposals WHERE notice_id = $1")
            .bind(id.0)
            .execute(&mut *pool)
            .await
            .map(|done| done.rows_affected() > 0)
            .map_err(err))
    }

    async fn create_cluster(&self, new: NewCluster) -> StoreResult<OutageCluster> {
        let row: rows::ClusterRow = on_pool!(self, |pool| sqlx::query_as(
            "INSERT INTO outage_clusters (account, service, region, state, members, first_at, last_at)
             VALUES ($1, $2, $3, 'open', 0, $4, $4) RETURNING *"
        )
        .bind(&new.account)
        .bind(new.service.as_str())
        .bind(&new.region)
        .bind(ms(new.at))
        .fetch_one(&mut *pool)
        .await
        .map_err(err)?);
        row.try_into()
    }

    async fn cluster(&self, id: ClusterId) -> StoreResult<OutageCluster> {
        let row: rows::ClusterRow =
            on_pool!(self, |pool| sqlx::query_as("SELECT * FROM outage_clusters WHERE id = $1")
                .bind(id.0)
                .fetch_one(&mut *pool)
                .await
                .map_err(err)
                .map_err(not_found("cluster", id))?);
        row.try_into()
    }

    async fn open_clusters(&self) -> StoreResult<Vec<OutageCluster>> {
        let rows: Vec<rows::ClusterRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT * FROM outage_clusters WHERE state = 'open' ORDER BY first_at, id"
        )
        .fetch_all(&mut *pool)
        .await
        .map_err(err)?);
        rows::all(rows)
    }

    async fn touch_cluster(&self, id: ClusterId, members: i64, at: Timestamp) -> StoreResult<()> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE outage_clusters SET members = $1, last_at = CASE WHEN last_at > $2 THEN last_at ELSE $2 END
             WHERE id = $3"
        )
        .bind(members)
        .bind(ms(at))
        .bind(id.0)
        .execute(&mut *pool)
        .await
        .map_err(err)?
        .rows_affected());
        found(n, "cluster", id)
    }

    async fn set_cluster_alerted(&self, id: ClusterId, members: i64) -> StoreResult<()> {
        let n = on_pool!(self, |pool| sqlx::query("UPDATE outage_clusters SET alerted_at_members = $1 WHERE id = $2")
            .bind(members)
            .bind(id.0)
            .execute(&mut *pool)
            .await
            .map_err(err)?
            .rows_affected());
        found(n, "cluster", id)
    }

    async fn save_cluster(&self, c: &OutageCluster) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
            "INSERT INTO outage_clusters
               (id, account, service, region, state, members, alerted_at_members, notice_id, first_at, last_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET service = excluded.service, region = excluded.region, state = excluded.state,
               members = excluded.members, alerted_at_members = excluded.alerted_at_members,
               notice_id = excluded.notice_id, last_at = excluded.last_at"
        )
        .bind(c.id.0)
        .bind(&c.account)
        .bind(c.service.as_str())
        .bind(&c.region)
        .bind(c.state.as_str())
        .bind(c.members)
        .bind(c.alerted_at_members)
        .bind(c.notice.map(|n| n.0))
        .bind(ms(c.first_at))
        .bind(ms(c.last_at))
        .execute(&mut *pool)
        .await
        .map(|_| ())
        .map_err(err)
        })
    }

    async fn save_clusters(&self, clusters: &[OutageCluster]) -> StoreResult<()> {
        // One row per cluster, its last state: an upsert may not touch a row twice in one statement.
        let mut last: Vec<&OutageCluster> = Vec::with_capacity(clusters.len());
        let mut at: HashMap<ClusterId, usize> = HashMap::new();
        for c in clusters {
            match at.get(&c.id) {
                Some(&i) => last[i] = c,
                None => {
                    at.insert(c.id, last.len());
                    last.push(c);
                }
            }
        }
        for chunk in last.chunks(CHUNK) {
            on_pool!(self, |pool| {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO outage_clusters
                       (id, account, service, region, state, members, alerted_at_members, notice_id, first_at, last_at) ",
                );
                q.push_values(chunk, |mut b, c| {
                    b.push_bind(c.id.0)
                        .push_bind(c.account.clone())
                        .push_bind(c.service.as_str())
                        .push_bind(c.region.clone())
                        .push_bind(c.state.as_str())
                        .push_bind(c.members)
                        .push_bind(c.alerted_at_members)
                        .push_bind(c.notice.map(|n| n.0))
                        .push_bind(ms(c.first_at))
                        .push_bind(ms(c.last_at));
                });
                q.push(
                    " ON CONFLICT (id) DO UPDATE SET service = excluded.service, region = excluded.region, state = excluded.state,
                       members = excluded.members, alerted_at_members = excluded.alerted_at_members,
                       notice_id = excluded.notice_id, last_at = excluded.last_at",
                );
                q.build().execute(&mut *pool).await.map_err(err)?;
            });
        }
        Ok(())
    }

    async fn insert_alert(&self, a: &webcare_domain::SpikeAlert) -> StoreResult<webcare_domain::SpikeAlert> {
        let row: rows::AlertRow = on_pool!(self, |pool| sqlx::query_as(
            "INSERT INTO spike_alerts
               (cluster_id, account, service, region, count, samples, draft, first_at, last_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *"
        )
        .bind(a.cluster.0)
        .bind(&a.account)
        .bind(a.service.as_str())
        .bind(&a.region)
        .bind(a.count)
        .bind(to_json(&a.samples))
        .bind(to_json(&a.draft))
        .bind(ms(a.first_at))
        .bind(ms(a.last_at))
        .bind(ms(a.created_at))
        .fetch_one(&mut *pool)
        .await
        .map_err(err)?);
        row.try_into()
    }

    async fn alert(&self, id: webcare_domain::AlertId) -> StoreResult<webcare_domain::SpikeAlert> {
        let row: rows::AlertRow = on_pool!(self, |pool| sqlx::query_as("SELECT * FROM spike_alerts WHERE id = $1")
            .bind(id.0)
            .fetch_one(&mut *pool)
            .await
            .map_err(err)
            .map_err(not_found("alert", id))?);
        row.try_into()
    }

    async fn alerts_since(&self, since: Timestamp) -> StoreResult<Vec<webcare_domain::SpikeAlert>> {
        let rows: Vec<rows::AlertRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT * FROM spike_alerts WHERE created_at >= $1 ORDER BY created_at DESC, id DESC"
        )
        .bind(ms(since))
        .fetch_all(&mut *pool)
        .await
        .map_err(err)?);
        rows::all(rows)
    }

    async fn claim_alert_webhooks(
        &self,
        worker: &str,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> StoreResult<Vec<(webcare_domain::SpikeAlert, webcare_domain::AlertWebhook)>> {
        // Asked every second by every instance: a read first, so that nothing takes SQLite's write lock when no
        // alert is due (nearly always).
        let due: Option<(i64,)> = on_pool!(self, |pool| optional(
            sqlx::query_as(concat!("SELECT id FROM spike_alerts WHERE ", alert_due!(), " LIMIT 1"))
                .bind(ms(now))
                .fetch_one(&mut *pool)
                .await
        ))?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let lease_until = ms(now) + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let sql = match self.backend {
            Backend::Postgres => CLAIM_ALERTS_POSTGRES,
            Backend::Sqlite => CLAIM_ALERTS_SQLITE,
        };
        let rows: Vec<rows::ClaimedAlertRow> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(ms(now))
            .bind(i64::from(limit))
            .bind(worker)
            .bind(lease_until)
            .fetch_all(&mut *pool)
            .await
            .map_err(err)?);
        let mut claimed: Vec<(webcare_domain::SpikeAlert, webcare_domain::AlertWebhook)> = rows::all(rows)?;
        // RETURNING gives no order; alerts go out in the order they became due.
        claimed.sort_by_key(|(a, w)| (w.next_attempt_at, a.id));
        Ok(claimed)
    }

    async fn mark_alert_posted(
        &self,
        id: webcare_domain::AlertId,
        worker: &str,
        route: &str,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE spike_alerts SET webhook_state = 'posted', webhook_route = $1, webhook_posted_at = $2,
               webhook_error = NULL, webhook_lease_until = NULL
             WHERE id = $3 AND webhook_claimed_by = $4 AND webhook_state = 'sending'"
        )
        .bind(route)
        .bind(ms(at))
        .bind(id.0)
        .bind(worker)
        .execute(&mut *pool)
        .await
        .map_err(err)?
        .rows_affected());
        Ok(n > 0)
    }

    async fn mark_alert_retry(
        &self,
        id: webcare_domain::AlertId,
        worker: &str,
        route: &str,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> StoreResult<bool> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE spike_alerts SET webhook_state = 'pending', webhook_route = $1, webhook_next_at = $2,
               webhook_error = $3, webhook_claimed_by = NULL, webhook_lease_until = NULL
             WHERE id = $4 AND webhook_claimed_by = $5 AND webhook_state = 'sending'"
        )
        .bind(route)
        .bind(ms(next_attempt_at))
        .bind(error)
        .bind(id.0)
        .bind(worker)
        .execute(&mut *pool)
        .await
        .map_err(err)?
        .rows_affected());
        Ok(n > 0)
    }

    async fn mark_alert_failed(
        &self,
        id: webcare_domain::AlertId,
        worker: &str,
        route: &str,
        error: &str,
    ) -> StoreResult<bool> {
        self.finish_alert_webhook(id, worker, webcare_domain::WebhookState::Failed, Some(route), error).await
    }

    async fn mark_alert_skipped(&self, id: webcare_domain::AlertId, worker: &str, reason: &str) -> StoreResult<bool> {
        self.finish_alert_webhook(id, worker, webcare_domain::WebhookState::Skipped, None, reason).await
    }

    async fn alert_webhook(&self, id: webcare_domain::AlertId) -> StoreResult<webcare_domain::AlertWebhook> {
        let row: rows::AlertWebhookRow =
            on_pool!(self, |pool| sqlx::query_as(concat!("SELECT ", alert_webhook_columns!(), " WHERE id = $1"))
                .bind(id.0)
                .fetch_one(&mut *pool)
                .await
                .map_err(err)
                .map_err(not_found("alert", id))?);
        row.try_into()
    }

    async fn alert_webhooks(&self) -> StoreResult<Vec<webcare_domain::AlertWebhook>> {
        let rows: Vec<rows::AlertWebhookRow> = on_pool!(self, |pool| sqlx::query_as(concat!(
            "SELECT ",
            alert_webhook_columns!(),
            " ORDER BY created_at DESC, id DESC"
        ))
        .fetch_all(&mut *pool)
        .await
        .map_err(err)?);
        rows::all(rows)
    }

    async fn close_cluster(&self, id: ClusterId, notice: Option<NoticeId>, at: Timestamp) -> StoreResult<()> {
        let state = if notice.is_some() { ClusterState::Noticed } else { ClusterState::Expired };
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            let n = sqlx::query(
                "UPDATE outage_clusters SET state = $1, notice_id = $2, last_at = $3 WHERE id = $4 AND state = 'open'",
            )
            .bind(state.as_str())
            .bind(notice.map(|n| n.0))
            .bind(ms(at))
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound { what: "open cluster", id: id.to_string() });
            }
            if let Some(notice) = notice {
                // The cluster's members become the notice's subscribers: one broadcast answers them all.
                sqlx::query(
                    "INSERT INTO subscriptions (conversation_id, customer_id, notice_id, created_at, language)
                     SELECT conversation_id, customer_id, $1, $2, language FROM subscriptions WHERE cluster_id = $3
                     ON CONFLICT DO NOTHING",
                )
                .bind(notice.0)
                .bind(ms(at))
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            }
            sqlx::query("DELETE FROM subscriptions WHERE cluster_id = $1")
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            tx.commit().await.map_err(err)
        })
    }

    async fn subscribe(&self, subscription: &Subscription) -> StoreResult<bool> {
        Ok(self.subscribe_many(std::slice::from_ref(subscription)).await? > 0)
    }

    async fn subscribe_many(&self, subscriptions: &[Subscription]) -> StoreResult<u64> {
        let mut new = 0;
        for chunk in subscriptions.chunks(CHUNK) {
            new += on_pool!(self, |pool| {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO subscriptions (conversation_id, customer_id, notice_id, cluster_id, created_at, language) ",
                );
                q.push_values(chunk, |mut b, s| {
                    let (notice, cluster) = match s.target {
                        SubscriptionTarget::Notice(n) => (Some(n.0), None),
                        SubscriptionTarget::Cluster(c) => (None, Some(c.0)),
                    };
                    b.push_bind(s.conversation.0)
                        .push_bind(s.customer.map(|c| c.0))
                        .push_bind(notice)
                        .push_bind(cluster)
                        .push_bind(ms(s.created_at))
                        .push_bind(s.language.as_deref());
                });
                q.push(" ON CONFLICT DO NOTHING");
                q.build().execute(&mut *pool).await.map_err(err)?.rows_affected()
            });
        }
        Ok(new)
    }

    async fn unsubscribe_all(&self, conversation: ConversationId) -> StoreResult<u64> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            let n = sqlx::query("DELETE FROM subscriptions WHERE conversation_id = $1")
                .bind(conversation.0)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            sqlx::query(
                "UPDATE outbox SET state = 'cancelled'
                 WHERE conversation_id = $1 AND state IN ('pending', 'sending') AND idempotency_key LIKE 'notice:%'",
            )
            .bind(conversation.0)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            Ok(n)
        })
    }

    async fn subscribers(&self, target: SubscriptionTarget) -> StoreResult<Vec<Subscription>> {
        let (sql, id) = match target {
            SubscriptionTarget::Notice(n) => {
                ("SELECT * FROM subscriptions WHERE notice_id = $1 ORDER BY conversation_id", n.0)
            }
            SubscriptionTarget::Cluster(c) => {
                ("SELECT * FROM subscriptions WHERE cluster_id = $1 ORDER BY conversation_id", c.0)
            }
        };
        let rows: Vec<rows::SubscriptionRow> =
            on_pool!(self, |pool| sqlx::query_as(sql).bind(id).fetch_all(&mut *pool).await.map_err(err)?);
        rows::all(rows)
    }

    async fn subscriber_counts(&self, target: SubscriptionTarget) -> StoreResult<Vec<(Platform, i64)>> {
        let (sql, id) = match target {
            SubscriptionTarget::Notice(n) => (
                "SELECT c.platform, COUNT(*) FROM subscriptions s JOIN conversations c ON c.id = s.conversation_id
                 WHERE s.notice_id = $1 GROUP BY c.platform ORDER BY c.platform",
                n.0,
            ),
            SubscriptionTarget::Cluster(c) => (
                "SELECT c.platform, COUNT(*) FROM subscriptions s JOIN conversations c ON c.id = s.conversation_id
                 WHERE s.cluster_id = $1 GROUP BY c.platform ORDER BY c.platform",
                c.0,
            ),
        };
        let rows: Vec<(String, i64)> =
            on_pool!(self, |pool| sqlx::query_as(sql).bind(id).fetch_all(&mut *pool).await.map_err(err)?);
        rows.into_iter()
            .map(|(p, n)| {
                p.parse::<Platform>()
                    .map(|p| (p, n))
                    .map_err(|_| StoreError::Other(format!("unknown platform {p:?} in conversations")))
            })
            .collect()
    }

    async fn subscriptions_of(&self, conversation: ConversationId) -> StoreResult<Vec<Subscription>> {
        let rows: Vec<rows::SubscriptionRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT * FROM subscriptions WHERE conversation_id = $1 ORDER BY created_at"
        )
        .bind(conversation.0)
        .fetch_all(&mut *pool)
        .await
        .map_err(err)?);
        rows::all(rows)
    }

    async fn create_ticket(&self, new: NewTicket) -> StoreResult<Ticket> {
        let row: Ticket = on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            let row: rows::TicketRow = sqlx::query_as(INSERT_TICKET)
                .bind(new.conversation.0)
                .bind(new.customer.0)
                .bind(&new.subject)
                .bind(new.priority)
                .bind(&new.category)
                .bind(ms(new.at))
                .bind(new.due_at.map(ms))
                .bind(to_json(&new.tags))
                .bind(new.first_response_due_at.map(ms))
                .bind(new.resolution_due_at.map(ms))
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
            let ticket: Ticket = row.try_into()?;
            insert_event!(tx, ticket.id, TicketEventKind::Created, None::<AgentId>, new.subject, new.at)?;
            tx.commit().await.map_err(err)?;
            ticket
        });
        Ok(row)
    }

    async fn ticket(&self, id: TicketId) -> StoreResult<Ticket> {
        let row: rows::TicketRow = on_pool!(self, |pool| sqlx::query_as("SELECT * FROM tickets WHERE id = $1")
            .bind(id.0)
            .fetch_one(&mut *pool)
            .await
            .map_err(err)
            .map_err(not_found("ticket", id))?);
        row.try_into()
    }

    async fn tickets(&self, states: &[TicketState]) -> StoreResult<Vec<Ticket>> {
        let sql = if states.is_empty() {
            format!("SELECT * FROM tickets {TICKET_ORDER}")
        } else {
            let params: Vec<String> = (1..=states.len()).map(|i| format!("${i}")).collect();
            format!("SELECT * FROM tickets WHERE state IN ({}) {TICKET_ORDER}", params.join(", "))
        };
        let rows: Vec<rows::TicketRow> = on_pool!(self, |pool| {
            // Only numbered placeholders are formatted into the text; the states themselves are bound.
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            for s in states {
                q = q.bind(s.as_str());
            }
            q.fetch_all(&mut *pool).await.map_err(err)?
        });
        rows::all(rows)
    }

    async fn open_ticket(&self, conversation: ConversationId, customer: CustomerId) -> StoreResult<Option<Ticket>> {
        let row: Option<rows::TicketRow> = on_pool!(self, |pool| optional(
            sqlx::query_as(
                "SELECT * FROM tickets WHERE conversation_id = $1 AND customer_id = $2 AND state <> 'closed'
                 ORDER BY id DESC LIMIT 1"
            )
            .bind(conversation.0)
            .bind(customer.0)
            .fetch_one(&mut *pool)
            .await
        )?);
        row.map(TryInto::try_into).transpose()
    }

    async fn open_tickets(&self, pairs: &[(ConversationId, CustomerId)]) -> StoreResult<Vec<Ticket>> {
        let wanted: std::collections::HashSet<(i64, i64)> = pairs.iter().map(|(c, u)| (c.0, u.0)).collect();
        let conversations: std::collections::BTreeSet<i64> = wanted.iter().map(|(c, _)| *c).collect();
        let conversations: Vec<i64> = conversations.into_iter().collect();
        let mut newest: HashMap<(i64, i64), Ticket> = HashMap::new();
        for chunk in conversations.chunks(CHUNK) {
            // By conversation (the index's first column); the customers are picked out below.
            let found: Vec<rows::TicketRow> = on_pool!(self, |pool| {
                let mut q =
                    sqlx::QueryBuilder::new("SELECT * FROM tickets WHERE state <> 'closed' AND conversation_id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                q.push(")");
                q.build_query_as().fetch_all(&mut *pool).await.map_err(err)?
            });
            for ticket in rows::all::<_, Ticket>(found)? {
                let key = (ticket.conversation.0, ticket.customer.0);
                // The newest, as `open_ticket` has it.
                if wanted.contains(&key) && newest.get(&key).is_none_or(|seen| seen.id < ticket.id) {
                    newest.insert(key, ticket);
                }
            }
        }
        Ok(newest.into_values().collect())
    }

    async fn write_tickets(&self, w: &webcare_domain::TicketWrites) -> StoreResult<Option<Vec<TicketId>>> {
        use webcare_domain::TicketRef;
        let mut created_ids: Vec<TicketId> = Vec::with_capacity(w.created.len());
        if !w.created.is_empty() {
            let conversations: std::collections::BTreeSet<i64> =
                w.created.iter().map(|c| c.new.conversation.0).collect();
            let conversations: Vec<i64> = conversations.into_iter().collect();
            let mut platforms: HashMap<i64, String> = HashMap::new();
            for chunk in conversations.chunks(CHUNK) {
                // A no-op write on the conversations first, as in `create_ticket_unless_open`: it serialises
                // creators on one conversation until commit (a row lock on PostgreSQL, the write lock on SQLite).
                let locked: Vec<(i64, String)> = on_pool!(self, |pool| {
                    let mut q = sqlx::QueryBuilder::new("UPDATE conversations SET title = title WHERE id IN (");
                    let mut list = q.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    q.push(") RETURNING id, platform");
                    q.build_query_as().fetch_all(&mut *pool).await.map_err(err)?
                });
                platforms.extend(locked);
            }
            if let Some(missing) = conversations.iter().find(|c| !platforms.contains_key(c)) {
                return Err(StoreError::NotFound { what: "conversation", id: missing.to_string() });
            }
            let pairs: Vec<(ConversationId, CustomerId)> =
                w.created.iter().map(|c| (c.new.conversation, c.new.customer)).collect();
            if !self.open_tickets(&pairs).await?.is_empty() {
                // Opened by another writer since the caller looked.
                return Ok(None);
            }
            let mut by_pair: HashMap<(i64, i64), i64> = HashMap::new();
            for chunk in w.created.chunks(CHUNK) {
                let ids: Vec<(i64, i64, i64)> = on_pool!(self, |pool| {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO tickets
                           (conversation_id, customer_id, state, subject, priority, category, created_at, updated_at,
                            due_at, platform, tags, first_response_due_at, resolution_due_at) ",
                    );
                    q.push_values(chunk, |mut b, c| {
                        let new = &c.new;
                        b.push_bind(new.conversation.0)
                            .push_bind(new.customer.0)
                            .push_bind("new")
                            .push_bind(new.subject.clone())
                            .push_bind(new.priority)
                            .push_bind(new.category.clone())
                            .push_bind(ms(new.at))
                            .push_bind(ms(c.updated_at))
                            .push_bind(new.due_at.map(ms))
                            .push_bind(platforms[&new.conversation.0].clone())
                            .push_bind(to_json(&new.tags))
                            .push_bind(new.first_response_due_at.map(ms))
                            .push_bind(new.resolution_due_at.map(ms));
                    });
                    q.push(" RETURNING id, conversation_id, customer_id");
                    q.build_query_as().fetch_all(&mut *pool).await.map_err(err)?
                });
                by_pair.extend(ids.into_iter().map(|(id, conversation, customer)| ((conversation, customer), id)));
            }
            for c in &w.created {
                match by_pair.get(&(c.new.conversation.0, c.new.customer.0)) {
                    Some(id) => created_ids.push(TicketId(*id)),
                    None => {
                        return Err(StoreError::Other(format!(
                            "a ticket for conversation {} was not stored",
                            c.new.conversation
                        )));
                    }
                }
            }
        }
        for chunk in w.changed.chunks(CHUNK) {
            let n = on_pool!(self, |pool| {
                // `column1`, `column2`, …: the names both databases give a VALUES list's columns. The `IN` makes
                // SQLite look the rows up by id, as in `set_decisions`.
                let mut q = sqlx::QueryBuilder::new("WITH v AS (");
                q.push_values(chunk, |mut b, t| {
                    b.push("CAST(")
                        .push_bind_unseparated(t.id.0)
                        .push_unseparated(" AS BIGINT)")
                        .push("CAST(")
                        .push_bind_unseparated(t.version)
                        .push_unseparated(" AS BIGINT)")
                        .push_bind(t.state.as_str())
                        .push_bind(t.subject.clone())
                        .push_bind(t.priority)
                        .push_bind(t.category.clone())
                        .push_bind(to_json(&t.tags))
                        .push_bind(t.assignee.map(|a| a.0))
                        .push_bind(t.claimed_by.map(|a| a.0))
                        .push_bind(t.claimed_at.map(ms))
                        .push_bind(t.last_activity_at.map(ms))
                        .push_bind(t.due_at.map(ms))
                        .push_bind(t.first_response_due_at.map(ms))
                        .push_bind(t.resolution_due_at.map(ms))
                        .push_bind(t.first_responded_at.map(ms))
                        .push_bind(t.solved_at.map(ms))
                        .push_bind(t.closed_at.map(ms))
                        .push_bind(ms(t.updated_at));
                });
                q.push(
                    ") UPDATE tickets SET state = v.column3, subject = v.column4, priority = v.column5,
                       category = v.column6, tags = v.column7, assignee_id = v.column8, claimed_by = v.column9,
                       claimed_at = v.column10, last_activity_at = v.column11, due_at = v.column12,
                       first_response_due_at = v.column13, resolution_due_at = v.column14,
                       first_responded_at = v.column15, solved_at = v.column16, closed_at = v.column17,
                       updated_at = v.column18, version = tickets.version + 1
                     FROM v
                     WHERE tickets.id = v.column1 AND tickets.version = v.column2
                       AND tickets.id IN (SELECT column1 FROM v)",
                );
                q.build().execute(&mut *pool).await.map_err(err)?.rows_affected()
            });
            if n < chunk.len() as u64 {
                // A ticket changed since it was read (or is gone): the caller rolls back and decides again.
                return Ok(None);
            }
        }
        let mut events: Vec<(i64, &str, Option<i64>, &str, i64)> = Vec::with_capacity(w.events.len() + w.created.len());
        for (c, id) in w.created.iter().zip(&created_ids) {
            events.push((id.0, TicketEventKind::Created.as_str(), None, &c.new.subject, ms(c.new.at)));
        }
        for (target, e) in &w.events {
            let id = match *target {
                TicketRef::Created(i) => match created_ids.get(i) {
                    Some(id) => id.0,
                    None => {
                        return Err(StoreError::Other(format!(
                            "an event names new ticket {i}, which is not in the batch"
                        )));
                    }
                },
                TicketRef::Stored(id) => id.0,
            };
            events.push((id, e.kind.as_str(), e.actor.map(|a| a.0), &e.body, ms(e.at)));
        }
        for chunk in events.chunks(CHUNK) {
            on_pool!(self, |pool| {
                let mut q =
                    sqlx::QueryBuilder::new("INSERT INTO ticket_events (ticket_id, kind, actor_id, body, created_at) ");
                q.push_values(chunk, |mut b, (ticket, kind, actor, body, at)| {
                    b.push_bind(*ticket).push_bind(*kind).push_bind(*actor).push_bind(body.to_string()).push_bind(*at);
                });
                q.build().execute(&mut *pool).await.map_err(err)?;
            });
        }
        Ok(Some(created_ids))
    }

    async fn add_ticket_event(
        &self,
        ticket: TicketId,
        kind: TicketEventKind,
        actor: Option<AgentId>,
        body: &str,
        at: Timestamp,
    ) -> StoreResult<TicketEvent> {
        let row: rows::TicketEventRow = on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            let row = insert_event!(tx, ticket, kind, actor, body, at)?;
            sqlx::query("UPDATE tickets SET updated_at = $1 WHERE id = $2")
                .bind(ms(at))
                .bind(ticket.0)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            tx.commit().await.map_err(err)?;
            row
        });
        row.try_into()
    }

    async fn ticket_events(&self, ticket: TicketId) -> StoreResult<Vec<TicketEvent>> {
        let rows: Vec<rows::TicketEventRow> =
            on_pool!(self, |pool| sqlx::query_as("SELECT * FROM ticket_events WHERE ticket_id = $1 ORDER BY id")
                .bind(ticket.0)
                .fetch_all(&mut *pool)
                .await
                .map_err(err)?);
        rows::all(rows)
    }

    async fn set_ticket_state(
        &self,
        ticket: TicketId,
        state: TicketState,
        actor: Option<AgentId>,
        at: Timestamp,
    ) -> StoreResult<Ticket> {
        let row: rows::TicketRow = on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            let row: rows::TicketRow = sqlx::query_as(
                "UPDATE tickets SET state = $1, updated_at = $2, version = version + 1 WHERE id = $3 RETURNING *",
            )
            .bind(state.as_str())
            .bind(ms(at))
            .bind(ticket.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(err)
            .map_err(not_found("ticket", ticket))?;
            insert_event!(tx, ticket, TicketEventKind::StateChanged, actor, state.as_str(), at)?;
            tx.commit().await.map_err(err)?;
            row
        });
        row.try_into()
    }

    async fn create_agent(&self, new: NewAgent) -> StoreResult<Agent> {
        let row: rows::AgentRow = on_pool!(self, |pool| sqlx::query_as(
            "INSERT INTO agents (name, role, password_hash, active, created_at) VALUES ($1, $2, $3, TRUE, $4)
             RETURNING *"
        )
        .bind(&new.name)
        .bind(new.role.as_str())
        .bind(&new.password_hash)
        .bind(ms(new.at))
        .fetch_one(&mut *pool)
        .await
        .map_err(|e| match err(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("an agent named `{}` exists already", new.name)),
            other => other,
        })?);
        row.try_into()
    }

    async fn agent(&self, id: AgentId) -> StoreResult<Agent> {
        let row: rows::AgentRow = on_pool!(self, |pool| sqlx::query_as("SELECT * FROM agents WHERE id = $1")
            .bind(id.0)
            .fetch_one(&mut *pool)
            .await
            .map_err(err)
            .map_err(not_found("agent", id))?);
        row.try_into()
    }

    async fn agent_by_name(&self, name: &str) -> StoreResult<Option<Agent>> {
        let row: Option<rows::AgentRow> = on_pool!(self, |pool| optional(
            sqlx::query_as("SELECT * FROM agents WHERE name = $1").bind(name).fetch_one(&mut *pool).await
        )?);
        row.map(TryInto::try_into).transpose()
    }

    async fn agents(&self) -> StoreResult<Vec<Agent>> {
        let rows: Vec<rows::AgentRow> = on_pool!(self, |pool| sqlx::query_as("SELECT * FROM agents ORDER BY name")
            .fetch_all(&mut *pool)
            .await
            .map_err(err)?);
        rows::all(rows)
    }

    async fn add_api_token(&self, agent: AgentId, token_hash: &str, at: Timestamp) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO api_tokens (agent_id, token_hash, created_at) VALUES ($1, $2, $3)"
        )
        .bind(agent.0)
        .bind(token_hash)
        .bind(ms(at))
        .execute(&mut *pool)
        .await
        .map(|_| ())
        .map_err(err))
    }

    async fn agent_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Agent>> {
        let row: Option<rows::AgentRow> = on_pool!(self, |pool| optional(
            sqlx::query_as(
                "SELECT agents.* FROM agents JOIN api_tokens ON api_tokens.agent_id = agents.id
                 WHERE api_tokens.token_hash = $1 AND agents.active = TRUE"
            )
            .bind(token_hash)
            .fetch_one(&mut *pool)
            .await
        )?);
        row.map(TryInto::try_into).transpose()
    }

    async fn add_chat_link_code(
        &self,
        agent: AgentId,
        code_hash: &str,
        expires_at: Timestamp,
        at: Timestamp,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            // Expired codes of anyone go as new ones come, so the table holds only what may still be redeemed.
            sqlx::query("DELETE FROM chat_link_codes WHERE expires_at <= $1")
                .bind(ms(at))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            sqlx::query(
                "INSERT INTO chat_link_codes (code_hash, agent_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(code_hash)
            .bind(agent.0)
            .bind(ms(expires_at))
            .bind(ms(at))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)
        })
    }

    async fn redeem_chat_link_code(
        &self,
        code_hash: &str,
        platform: Platform,
        user_id: &str,
        at: Timestamp,
    ) -> StoreResult<Option<AgentId>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            let agent: Option<(i64,)> = optional(
                sqlx::query_as(
                    "DELETE FROM chat_link_codes WHERE code_hash = $1 AND expires_at > $2 RETURNING agent_id",
                )
                .bind(code_hash)
                .bind(ms(at))
                .fetch_one(&mut *tx)
                .await,
            )?;
            if let Some((agent,)) = agent {
                sqlx::query(
                    "INSERT INTO agent_chat_accounts (platform, user_id, agent_id, linked_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (platform, user_id) DO UPDATE SET agent_id = excluded.agent_id,
                                                                   linked_at = excluded.linked_at",
                )
                .bind(platform.as_str())
                .bind(user_id)
                .bind(agent)
                .bind(ms(at))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            }
            tx.commit().await.map_err(err)?;
            Ok(agent.map(|(a,)| AgentId(a)))
        })
    }

    async fn agent_by_chat_account(&self, platform: Platform, user_id: &str) -> StoreResult<Option<Agent>> {
        let row: Option<rows::AgentRow> = on_pool!(self, |pool| optional(
            sqlx::query_as(
                "SELECT agents.* FROM agents JOIN agent_chat_accounts a ON a.agent_id = agents.id
                 WHERE a.platform = $1 AND a.user_id = $2 AND agents.active = TRUE"
            )
            .bind(platform.as_str())
            .bind(user_id)
            .fetch_one(&mut *pool)
            .await
        )?);
        row.map(TryInto::try_into).transpose()
    }

    async fn chat_accounts(&self, agent: AgentId) -> StoreResult<Vec<(Platform, String)>> {
        let rows: Vec<(String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT platform, user_id FROM agent_chat_accounts WHERE agent_id = $1 ORDER BY linked_at, platform, user_id"
        )
        .bind(agent.0)
        .fetch_all(&mut *pool)
        .await
        .map_err(err)
        })?;
        rows.into_iter()
            .map(|(p, u)| {
                Ok((p.parse().map_err(|e: webcare_domain::UnknownWord| StoreError::Invalid(e.to_string()))?, u))
            })
            .collect()
    }

    async fn enqueue(&self, new: NewOutbox, at: Timestamp) -> StoreResult<Inserted<OutboxItem>> {
        let extra = to_json(&new.extra);
        let inserted: Option<rows::OutboxRow> = on_pool!(self, |pool| optional(
            sqlx::query_as(
                "INSERT INTO outbox
                   (conversation_id, kind, body, extra, idempotency_key, priority, state, attempts, next_attempt_at,
                    created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8)
                 ON CONFLICT (idempotency_key) DO NOTHING
                 RETURNING *"
            )
            .bind(new.conversation.0)
            .bind(&new.kind)
            .bind(&new.body)
            .bind(&extra)
            .bind(&new.idempotency_key)
            .bind(new.priority.0)
            .bind(ms(new.not_before))
            .bind(ms(at))
            .fetch_one(&mut *pool)
            .await
        )?);
        if let Some(row) = inserted {
            return Ok(Inserted::New(row.try_into()?));
        }
        let row: rows::OutboxRow =
            on_pool!(self, |pool| sqlx::query_as("SELECT * FROM outbox WHERE idempotency_key = $1")
                .bind(&new.idempotency_key)
                .fetch_one(&mut *pool)
                .await
                .map_err(err)?);
        Ok(Inserted::Existing(row.try_into()?))
    }

    async fn enqueue_many(&self, rows: &[NewOutbox], at: Timestamp) -> StoreResult<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        // One transaction for the whole batch (one durable commit instead of one per recipient), a few hundred
        // rows per statement.
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            let mut new = 0;
            for chunk in rows.chunks(CHUNK) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO outbox
                       (conversation_id, kind, body, extra, idempotency_key, priority, state, attempts, next_attempt_at,
                        created_at) ",
                );
                q.push_values(chunk, |mut b, row| {
                    b.push_bind(row.conversation.0)
                        .push_bind(row.kind.clone())
                        .push_bind(row.body.clone())
                        .push_bind(to_json(&row.extra))
                        .push_bind(row.idempotency_key.clone())
                        .push_bind(row.priority.0)
                        .push_bind("pending")
                        .push_bind(0i64)
                        .push_bind(ms(row.not_before))
                        .push_bind(ms(at));
                });
                q.push(" ON CONFLICT (idempotency_key) DO NOTHING");
                new += q.build().execute(&mut *tx).await.map_err(err)?.rows_affected();
            }
            tx.commit().await.map_err(err)?;
            Ok(new)
        })
    }

    async fn outbox_item(&self, id: OutboxId) -> StoreResult<OutboxItem> {
        let row: rows::OutboxRow = on_pool!(self, |pool| sqlx::query_as("SELECT * FROM outbox WHERE id = $1")
            .bind(id.0)
            .fetch_one(&mut *pool)
            .await
            .map_err(err)
            .map_err(not_found("outbox row", id))?);
        row.try_into()
    }

    async fn unlink_chat_account(&self, agent: AgentId, platform: Platform, user_id: &str) -> StoreResult<bool> {
        on_pool!(self, |pool| sqlx::query(
            "DELETE FROM agent_chat_accounts WHERE agent_id = $1 AND platform = $2 AND user_id = $3"
        )
        .bind(agent.0)
        .bind(platform.as_str())
        .bind(user_id)
        .execute(&mut *pool)
        .await
        .map(|done| done.rows_affected() > 0)
        .map_err(err))
    }

    async fn outbox_by_key(&self, key: &str) -> StoreResult<Option<OutboxItem>> {
        let row: Option<rows::OutboxRow> = on_pool!(self, |pool| optional(
            sqlx::query_as("SELECT * FROM outbox WHERE idempotency_key = $1").bind(key).fetch_one(&mut *pool).await
        )?);
        row.map(TryInto::try_into).transpose()
    }

    async fn claim_outbox_from(
        &self,
        worker: &str,
        now: Timestamp,
        lease: Duration,
        limit: u32,
        min_priority: Priority,
        below_priority: Priority,
    ) -> StoreResult<Vec<OutboxItem>> {
        let lease_until = ms(now) + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let sql = match self.backend {
            Backend::Postgres => CLAIM_POSTGRES,
            Backend::Sqlite => CLAIM_SQLITE,
        };
        let rows: Vec<rows::OutboxRow> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(worker)
            .bind(lease_until)
            .bind(ms(now))
            .bind(i64::from(limit))
            .bind(min_priority.0)
            .bind(below_priority.0)
            .fetch_all(&mut *pool)
            .await
            .map_err(err)?);
        let mut items: Vec<OutboxItem> = rows::all(rows)?;
        // RETURNING gives no order; callers send in priority order.
        items.sort_by(|a, b| {
            b.priority.cmp(&a.priority).then(a.next_attempt_at.cmp(&b.next_attempt_at)).then(a.id.cmp(&b.id))
        });
        Ok(items)
    }

    async fn mark_sent(
        &self,
        id: OutboxId,
        worker: &str,
        platform_message_id: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE outbox SET state = 'sent', sent_at = $1, platform_message_id = $2, lease_until = NULL
             WHERE id = $3 AND claimed_by = $4 AND state = 'sending'"
        )
        .bind(ms(at))
        .bind(platform_message_id)
        .bind(id.0)
        .bind(worker)
        .execute(&mut *pool)
        .await
        .map_err(err)?
        .rows_affected());
        Ok(n > 0)
    }

    async fn mark_retry(
        &self,
        id: OutboxId,
        worker: &str,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> StoreResult<bool> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE outbox SET state = 'pending', next_attempt_at = $1, last_error = $2, claimed_by = NULL,
               lease_until = NULL
             WHERE id = $3 AND claimed_by = $4 AND state = 'sending'"
        )
        .bind(ms(next_attempt_at))
        .bind(error)
        .bind(id.0)
        .bind(worker)
        .execute(&mut *pool)
        .await
        .map_err(err)?
        .rows_affected());
        Ok(n > 0)
    }

    async fn mark_failed(&self, id: OutboxId, worker: &str, error: &str) -> StoreResult<bool> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE outbox SET state = 'failed', last_error = $1, lease_until = NULL
             WHERE id = $2 AND claimed_by = $3 AND state = 'sending'"
        )
        .bind(error)
        .bind(id.0)
        .bind(worker)
        .execute(&mut *pool)
        .await
        .map_err(err)?
        .rows_affected());
        Ok(n > 0)
    }

    async fn outbox_progress(
        &self,
        prefix: &str,
        sent_since: Timestamp,
    ) -> StoreResult<(Vec<(OutboxState, i64)>, i64)> {
        let pattern = like_prefix(prefix);
        let (rows, recent): (Vec<(String, i64)>, (i64,)) = on_pool!(self, |pool| {
            let rows = sqlx::query_as(
                "SELECT state, COUNT(*) FROM outbox WHERE idempotency_key LIKE $1 ESCAPE '\\' GROUP BY state ORDER BY state",
            )
            .bind(&pattern)
            .fetch_all(&mut *pool)
            .await
            .map_err(err)?;
            let recent = sqlx::query_as(
                "SELECT COUNT(*) FROM outbox WHERE idempotency_key LIKE $1 ESCAPE '\\' AND state = 'sent' AND sent_at >= $2",
            )
            .bind(&pattern)
            .bind(ms(sent_since))
            .fetch_one(&mut *pool)
            .await
            .map_err(err)?;
            (rows, recent)
        });
        let counts = rows
            .into_iter()
            .map(|(s, n)| {
                s.parse().map(|s| (s, n)).map_err(|e: webcare_domain::UnknownWord| StoreError::Invalid(e.to_string()))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((counts, recent.0))
    }

    async fn reserve_send_slots(
        &self,
        bucket: &str,
        count: u32,
        interval: Duration,
        now: Timestamp,
    ) -> StoreResult<Timestamp> {
        let span = i64::try_from(interval.as_micros()).unwrap_or(i64::MAX / 4).saturating_mul(i64::from(count));
        let now_us = now.timestamp_micros();
        // One statement, so the row lock (PostgreSQL) or the write lock (SQLite) orders concurrent reservations:
        // each starts where the previous one ended, or now when the budget was idle.
        let sql = match self.backend {
            Backend::Postgres => {
                "INSERT INTO send_budget (bucket, next_at) VALUES ($1, $2 + $3)
                 ON CONFLICT (bucket) DO UPDATE SET next_at = GREATEST(send_budget.next_at, $2) + $3
                 RETURNING next_at"
            }
            Backend::Sqlite => {
                "INSERT INTO send_budget (bucket, next_at) VALUES ($1, $2 + $3)
                 ON CONFLICT (bucket) DO UPDATE SET next_at = MAX(send_budget.next_at, $2) + $3
                 RETURNING next_at"
            }
        };
        let end: i64 = on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(bucket)
            .bind(now_us)
            .bind(span)
            .fetch_one(&mut *pool)
            .await
            .map_err(err)?);
        chrono::DateTime::from_timestamp_micros(end - span)
            .ok_or_else(|| StoreError::Other(format!("send budget {bucket}: slot {end} out of range")))
    }

    async fn hold_send_budget(&self, bucket: &str, until: Timestamp) -> StoreResult<()> {
        let sql = match self.backend {
            Backend::Postgres => {
                "INSERT INTO send_budget (bucket, next_at) VALUES ($1, $2)
                 ON CONFLICT (bucket) DO UPDATE SET next_at = GREATEST(send_budget.next_at, $2)"
            }
            Backend::Sqlite => {
                "INSERT INTO send_budget (bucket, next_at) VALUES ($1, $2)
                 ON CONFLICT (bucket) DO UPDATE SET next_at = MAX(send_budget.next_at, $2)"
            }
        };
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(bucket)
            .bind(until.timestamp_micros())
            .execute(&mut *pool)
            .await
            .map_err(err)?
            .rows_affected());
        Ok(())
    }

    async fn cancel_outbox_prefix(&self, prefix: &str, keep: &str) -> StoreResult<u64> {
        let (prefix, keep) = (like_prefix(prefix), like_prefix(keep));
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE outbox SET state = 'cancelled'
             WHERE state IN ('pending', 'sending')
               AND idempotency_key LIKE $1 ESCAPE '\\' AND idempotency_key NOT LIKE $2 ESCAPE '\\'",
            )
            .bind(&prefix)
            .bind(&keep)
            .execute(&mut *pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(err)
        })
    }

    async fn cancel_outbox(&self, id: OutboxId) -> StoreResult<bool> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE outbox SET state = 'cancelled' WHERE id = $1 AND state = 'pending'"
        )
        .bind(id.0)
        .execute(&mut *pool)
        .await
        .map_err(err)?
        .rows_affected());
        Ok(n > 0)
    }

    async fn outbox_counts(&self) -> StoreResult<Vec<(OutboxState, i64)>> {
        let rows: Vec<(String, i64)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")
                .fetch_all(&mut *pool)
                .await
                .map_err(err)?);
        rows.into_iter()
            .map(|(s, n)| {
                s.parse().map(|s| (s, n)).map_err(|e: webcare_domain::UnknownWord| StoreError::Invalid(e.to_string()))
            })
            .collect()
    }

    async fn work_counts(&self, now: Timestamp) -> StoreResult<webcare_domain::WorkCounts> {
        let (undecided, overdue, active_notices, open_clusters): (i64, i64, i64, i64) =
            on_pool!(self, |pool| sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM inbound_messages WHERE decision IS NULL),
                        (SELECT COUNT(*) FROM tickets
                          WHERE state IN ('new', 'open') AND due_at IS NOT NULL AND due_at < $1),
                        (SELECT COUNT(*) FROM notices WHERE draft = FALSE AND state <> 'resolved'),
                        (SELECT COUNT(*) FROM outage_clusters WHERE state = 'open')"
            )
            .bind(ms(now))
            .fetch_one(&mut *pool)
            .await
            .map_err(err)?);
        let rows: Vec<(String, i64)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT state, COUNT(*) FROM tickets GROUP BY state")
                .fetch_all(&mut *pool)
                .await
                .map_err(err)?);
        let mut tickets: Vec<(TicketState, i64)> = TicketState::ALL.iter().map(|s| (*s, 0)).collect();
        for (state, n) in rows {
            let state: TicketState =
                state.parse().map_err(|e: webcare_domain::UnknownWord| StoreError::Invalid(e.to_string()))?;
            if let Some(slot) = tickets.iter_mut().find(|(s, _)| *s == state) {
                slot.1 = n;
            }
        }
        Ok(webcare_domain::WorkCounts { undecided, tickets, overdue, active_notices, open_clusters })
    }

    // Ticketing (lifecycle, claims, SLA).

    async fn create_ticket_unless_open(
        &self,
        new: NewTicket,
        events: &[webcare_domain::NewTicketEvent],
    ) -> StoreResult<Inserted<webcare_domain::TicketWrite>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            // A no-op write on the conversation comes first: it serialises creators on one conversation (a row
            // lock on PostgreSQL, the database write lock on SQLite) until commit, so that the check for an open
            // ticket and the insert below cannot interleave with another creator's.
            let locked = sqlx::query("UPDATE conversations SET title = title WHERE id = $1")
                .bind(new.conversation.0)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            if locked == 0 {
                return Err(StoreError::NotFound { what: "conversation", id: new.conversation.to_string() });
            }
            let existing: Option<rows::TicketRow> = optional(
                sqlx::query_as(
                    "SELECT * FROM tickets WHERE conversation_id = $1 AND customer_id = $2 AND state <> 'closed'
                     ORDER BY id DESC LIMIT 1",
                )
                .bind(new.conversation.0)
                .bind(new.customer.0)
                .fetch_one(&mut *tx)
                .await,
            )?;
            if let Some(row) = existing {
                tx.rollback().await.map_err(err)?;
                return Ok(Inserted::Existing(webcare_domain::TicketWrite { ticket: row.try_into()?, events: vec![] }));
            }
            let row: rows::TicketRow = sqlx::query_as(INSERT_TICKET)
                .bind(new.conversation.0)
                .bind(new.customer.0)
                .bind(&new.subject)
                .bind(new.priority)
                .bind(&new.category)
                .bind(ms(new.at))
                .bind(new.due_at.map(ms))
                .bind(to_json(&new.tags))
                .bind(new.first_response_due_at.map(ms))
                .bind(new.resolution_due_at.map(ms))
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
            let ticket: Ticket = row.try_into()?;
            let mut written: Vec<TicketEvent> = vec![
                insert_event!(tx, ticket.id, TicketEventKind::Created, None::<AgentId>, new.subject, new.at)?
                    .try_into()?,
            ];
            for e in events {
                written.push(insert_event!(tx, ticket.id, e.kind, e.actor, e.body, e.at)?.try_into()?);
            }
            tx.commit().await.map_err(err)?;
            Ok(Inserted::New(webcare_domain::TicketWrite { ticket, events: written }))
        })
    }

    async fn update_ticket(
        &self,
        ticket: &Ticket,
        events: &[webcare_domain::NewTicketEvent],
    ) -> StoreResult<Option<webcare_domain::TicketWrite>> {
        let tags = to_json(&ticket.tags);
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            // Compare-and-set on the version: of two writers that read the same version only the first matches;
            // on PostgreSQL the second waits for the first's row lock and then finds the version moved on.
            let row: Option<rows::TicketRow> = optional(
                sqlx::query_as(
                    "UPDATE tickets SET state = $1, subject = $2, priority = $3, category = $4, tags = $5,
                       assignee_id = $6, claimed_by = $7, claimed_at = $8, last_activity_at = $9, due_at = $10,
                       first_response_due_at = $11, resolution_due_at = $12, first_responded_at = $13,
                       solved_at = $14, closed_at = $15, updated_at = $16, version = version + 1
                     WHERE id = $17 AND version = $18
                     RETURNING *",
                )
                .bind(ticket.state.as_str())
                .bind(&ticket.subject)
                .bind(ticket.priority)
                .bind(&ticket.category)
                .bind(&tags)
                .bind(ticket.assignee.map(|a| a.0))
                .bind(ticket.claimed_by.map(|a| a.0))
                .bind(ticket.claimed_at.map(ms))
                .bind(ticket.last_activity_at.map(ms))
                .bind(ticket.due_at.map(ms))
                .bind(ticket.first_response_due_at.map(ms))
                .bind(ticket.resolution_due_at.map(ms))
                .bind(ticket.first_responded_at.map(ms))
                .bind(ticket.solved_at.map(ms))
                .bind(ticket.closed_at.map(ms))
                .bind(ms(ticket.updated_at))
                .bind(ticket.id.0)
                .bind(ticket.version)
                .fetch_one(&mut *tx)
                .await,
            )?;
            let Some(row) = row else {
                tx.rollback().await.map_err(err)?;
                let exists: Option<(i64,)> = optional(
                    sqlx::query_as("SELECT id FROM tickets WHERE id = $1")
                        .bind(ticket.id.0)
                        .fetch_one(&mut *pool)
                        .await,
                )?;
                return match exists {
                    Some(_) => Ok(None),
                    None => Err(StoreError::NotFound { what: "ticket", id: ticket.id.to_string() }),
                };
            };
            let mut written = Vec::with_capacity(events.len());
            for e in events {
                written.push(insert_event!(tx, ticket.id, e.kind, e.actor, e.body, e.at)?.try_into()?);
            }
            tx.commit().await.map_err(err)?;
            Ok(Some(webcare_domain::TicketWrite { ticket: row.try_into()?, events: written }))
        })
    }

    async fn claim_ticket(&self, claim: &webcare_domain::TicketClaim) -> StoreResult<webcare_domain::ClaimOutcome> {
        use webcare_domain::ClaimOutcome;
        // One conditional UPDATE decides: it matches only while nobody holds a live claim (or the claimer does),
        // and concurrent claimers are ordered by the row lock (PostgreSQL re-checks the condition on the row the
        // winner wrote) or by SQLite's single writer. `claimed_at` is kept when the holder merely renews.
        const CLAIM: &str = "UPDATE tickets SET
               claimed_by = $1,
               claimed_at = CASE WHEN claimed_by = $1 AND last_activity_at > $3 THEN claimed_at ELSE $2 END,
               last_activity_at = $2, assignee_id = $1, updated_at = $2, version = version + 1
             WHERE id = $4 AND state <> 'closed' AND (claimed_by IS NULL OR claimed_by = $1 OR last_activity_at <= $3)
             RETURNING *";
        // A loser that finds the ticket free again (its holder released it in between) tries again; each retry
        // needs another writer to have changed the ticket, so a few suffice.
        for _ in 0..5 {
            let won: Option<Ticket> = on_pool!(self, |pool| {
                let mut tx = pool.begin().await.map_err(err)?;
                let row: Option<rows::TicketRow> = optional(
                    sqlx::query_as(CLAIM)
                        .bind(claim.agent.0)
                        .bind(ms(claim.at))
                        .bind(ms(claim.lapsed_before))
                        .bind(claim.ticket.0)
                        .fetch_one(&mut *tx)
                        .await,
                )?;
                match row {
                    None => {
                        tx.rollback().await.map_err(err)?;
                        None
                    }
                    Some(row) => {
                        let mut ticket: Ticket = row.try_into()?;
                        let fresh = ticket.claimed_at == Some(webcare_domain::millis(claim.at));
                        if fresh {
                            insert_event!(tx, ticket.id, TicketEventKind::Claimed, Some(claim.agent), "", claim.at)?;
                        }
                        // Claiming opens a new ticket, in the same transaction as the claim.
                        let opened: Option<rows::TicketRow> = optional(
                            sqlx::query_as(
                                "UPDATE tickets SET state = 'open' WHERE id = $1 AND state = 'new' RETURNING *",
                            )
                            .bind(claim.ticket.0)
                            .fetch_one(&mut *tx)
                            .await,
                        )?;
                        if let Some(opened) = opened {
                            ticket = opened.try_into()?;
                            let open = TicketState::Open.as_str();
                            insert_event!(
                                tx,
                                ticket.id,
                                TicketEventKind::StateChanged,
                                Some(claim.agent),
                                open,
                                claim.at
                            )?;
                        }
                        tx.commit().await.map_err(err)?;
                        Some(ticket)
                    }
                }
            });
            if let Some(ticket) = won {
                let fresh = ticket.claimed_at == Some(webcare_domain::millis(claim.at));
                return Ok(ClaimOutcome::Claimed { ticket, fresh });
            }
            let ticket = self.ticket(claim.ticket).await?;
            if ticket.state == TicketState::Closed {
                return Ok(ClaimOutcome::Closed(ticket));
            }
            let live = ticket.last_activity_at.is_none_or(|a| a > claim.lapsed_before);
            if let Some(holder) = ticket.claimed_by.filter(|h| *h != claim.agent && live) {
                let holder = self.agent(holder).await?;
                return Ok(ClaimOutcome::Held { ticket, holder });
            }
        }
        Err(StoreError::Unavailable(format!("ticket {} kept changing while being claimed", claim.ticket)))
    }

    async fn find_tickets(&self, filter: &webcare_domain::TicketFilter) -> StoreResult<Vec<Ticket>> {
        use webcare_domain::AssigneeFilter;
        enum Arg {
            Text(String),
            Int(i64),
        }
        let mut args: Vec<Arg> = Vec::new();
        let mut param = |a: Arg| {
            args.push(a);
            format!("${}", args.len())
        };
        let mut clauses: Vec<String> = Vec::new();
        if !filter.states.is_empty() {
            let states: Vec<String> = filter.states.iter().map(|s| param(Arg::Text(s.as_str().to_owned()))).collect();
            clauses.push(format!("state IN ({})", states.join(", ")));
        }
        if let Some(category) = &filter.category {
            clauses.push(format!("category = {}", param(Arg::Text(category.clone()))));
        }
        if let Some(platform) = filter.platform {
            clauses.push(format!("platform = {}", param(Arg::Text(platform.as_str().to_owned()))));
        }
        match filter.assignee {
            None => {}
            Some(AssigneeFilter::Nobody) => clauses.push("assignee_id IS NULL".to_owned()),
            Some(AssigneeFilter::Agent(a)) => clauses.push(format!("assignee_id = {}", param(Arg::Int(a.0)))),
        }
        if let Some(customer) = filter.customer {
            clauses.push(format!("customer_id = {}", param(Arg::Int(customer.0))));
        }
        if let Some(before) = filter.solved_before {
            clauses.push(format!("solved_at <= {}", param(Arg::Int(ms(before)))));
        }
        if let Some(text) = filter.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let like = param(Arg::Text(like_contains(&text.to_lowercase())));
            let mut any = vec![
                format!("lower(subject) LIKE {like} ESCAPE '\\'"),
                format!("customer_id IN (SELECT id FROM customers WHERE lower(display_name) LIKE {like} ESCAPE '\\')"),
                format!(
                    "EXISTS (SELECT 1 FROM inbound_messages m WHERE m.conversation_id = tickets.conversation_id \
                     AND m.customer_id = tickets.customer_id AND lower(m.text) LIKE {like} ESCAPE '\\')"
                ),
            ];
            if let Ok(number) = text.trim_start_matches('#').parse::<i64>() {
                any.push(format!("id = {}", param(Arg::Int(number))));
            }
            clauses.push(format!("({})", any.join(" OR ")));
        }
        let limit = filter.limit.map(|n| format!(" LIMIT {}", param(Arg::Int(i64::from(n))))).unwrap_or_default();
        let filter_sql = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        // Only numbered placeholders are formatted into the text; every value is bound.
        let sql = format!("SELECT * FROM tickets {filter_sql} {TICKET_ORDER}{limit}");
        let rows: Vec<rows::TicketRow> = on_pool!(self, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            for a in &args {
                q = match a {
                    Arg::Text(s) => q.bind(s.clone()),
                    Arg::Int(i) => q.bind(*i),
                };
            }
            q.fetch_all(&mut *pool).await.map_err(err)?
        });
        rows::all(rows)
    }

    // Console sessions.

    async fn create_session(&self, session: &webcare_domain::ConsoleSession) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO sessions (id_hash, agent_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(&session.id_hash)
        .bind(session.agent.0)
        .bind(&session.csrf)
        .bind(ms(session.created_at))
        .bind(ms(session.expires_at))
        .execute(&mut *pool)
        .await
        .map(|_| ())
        .map_err(err))
    }

    async fn session(&self, id_hash: &str, now: Timestamp) -> StoreResult<Option<webcare_domain::ConsoleSession>> {
        let row: Option<SessionRow> = on_pool!(self, |pool| optional(
            sqlx::query_as(
                "SELECT id_hash, agent_id, csrf, created_at, expires_at FROM sessions
                 WHERE id_hash = $1 AND expires_at > $2"
            )
            .bind(id_hash)
            .bind(ms(now))
            .fetch_one(&mut *pool)
            .await
        )?);
        row.map(session_of).transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&mut *pool)
            .await
            .map(|_| ())
            .map_err(err))
    }

    async fn delete_agent_sessions(&self, agent: AgentId) -> StoreResult<u64> {
        on_pool!(self, |pool| sqlx::query("DELETE FROM sessions WHERE agent_id = $1")
            .bind(agent.0)
            .execute(&mut *pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(err))
    }

    async fn delete_expired_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        on_pool!(self, |pool| sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(ms(now))
            .execute(&mut *pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(err))
    }

    async fn login_failures(&self, key: &str, since: Timestamp) -> StoreResult<(u64, Option<Timestamp>)> {
        let (n, oldest): (i64, Option<i64>) = on_pool!(self, |pool| sqlx::query_as(
            "SELECT COUNT(*), MIN(at) FROM login_failures WHERE key = $1 AND at >= $2"
        )
        .bind(key)
        .bind(ms(since))
        .fetch_one(&mut *pool)
        .await
        .map_err(err)?);
        Ok((u64::try_from(n).unwrap_or(0), oldest.map(rows::time).transpose()?))
    }

    async fn record_login_failure(&self, key: &str, at: Timestamp, forget_before: Timestamp) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            sqlx::query("DELETE FROM login_failures WHERE at < $1")
                .bind(ms(forget_before))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
                .bind(key)
                .bind(ms(at))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            tx.commit().await.map_err(err)
        })
    }

    async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(&mut *pool)
            .await
            .map(|_| ())
            .map_err(err))
    }

    async fn set_agent_role(&self, id: AgentId, role: webcare_domain::Role) -> StoreResult<Agent> {
        let row: rows::AgentRow =
            on_pool!(self, |pool| sqlx::query_as("UPDATE agents SET role = $2 WHERE id = $1 RETURNING *")
                .bind(id.0)
                .bind(role.as_str())
                .fetch_one(&mut *pool)
                .await
                .map_err(err)
                .map_err(not_found("agent", id))?);
        row.try_into()
    }

    async fn set_agent_active(&self, id: AgentId, active: bool) -> StoreResult<Agent> {
        let row: rows::AgentRow =
            on_pool!(self, |pool| sqlx::query_as("UPDATE agents SET active = $2 WHERE id = $1 RETURNING *")
                .bind(id.0)
                .bind(active)
                .fetch_one(&mut *pool)
                .await
                .map_err(err)
                .map_err(not_found("agent", id))?);
        row.try_into()
    }

    async fn set_agent_password(&self, id: AgentId, password_hash: &str) -> StoreResult<Agent> {
        let row: rows::AgentRow =
            on_pool!(self, |pool| sqlx::query_as("UPDATE agents SET password_hash = $2 WHERE id = $1 RETURNING *")
                .bind(id.0)
                .bind(password_hash)
                .fetch_one(&mut *pool)
                .await
                .map_err(err)
                .map_err(not_found("agent", id))?);
        row.try_into()
    }

    async fn create_canned_reply(
        &self,
        title: &str,
        body: &str,
        by: Option<AgentId>,
        at: Timestamp,
    ) -> StoreResult<webcare_domain::CannedReply> {
        let row: CannedRow = on_pool!(self, |pool| {
            sqlx::query_as(
            "INSERT INTO canned_replies (title, body, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
             RETURNING id, title, body, created_by, created_at, updated_at"
        )
        .bind(title)
        .bind(body)
        .bind(by.map(|a| a.0))
        .bind(ms(at))
        .fetch_one(&mut *pool)
        .await
        .map_err(|e| match err(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("a canned reply titled `{title}` exists already")),
            other => other,
        })?
        });
        canned_of(row)
    }

    async fn update_canned_reply(
        &self,
        id: webcare_domain::CannedReplyId,
        title: &str,
        body: &str,
        at: Timestamp,
    ) -> StoreResult<webcare_domain::CannedReply> {
        let row: CannedRow = on_pool!(self, |pool| sqlx::query_as(
            "UPDATE canned_replies SET title = $2, body = $3, updated_at = $4 WHERE id = $1
             RETURNING id, title, body, created_by, created_at, updated_at"
        )
        .bind(id.0)
        .bind(title)
        .bind(body)
        .bind(ms(at))
        .fetch_one(&mut *pool)
        .await
        .map_err(|e| match err(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("a canned reply titled `{title}` exists already")),
            other => other,
        })
        .map_err(not_found("canned reply", id))?);
        canned_of(row)
    }

    async fn delete_canned_reply(&self, id: webcare_domain::CannedReplyId) -> StoreResult<()> {
        let deleted = on_pool!(self, |pool| sqlx::query("DELETE FROM canned_replies WHERE id = $1")
            .bind(id.0)
            .execute(&mut *pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(err)?);
        if deleted == 0 {
            return Err(StoreError::NotFound { what: "canned reply", id: id.to_string() });
        }
        Ok(())
    }

    async fn canned_reply(&self, id: webcare_domain::CannedReplyId) -> StoreResult<webcare_domain::CannedReply> {
        let row: CannedRow = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, title, body, created_by, created_at, updated_at FROM canned_replies WHERE id = $1"
        )
        .bind(id.0)
        .fetch_one(&mut *pool)
        .await
        .map_err(err)
        .map_err(not_found("canned reply", id))?);
        canned_of(row)
    }

    async fn canned_replies(&self) -> StoreResult<Vec<webcare_domain::CannedReply>> {
        let rows: Vec<CannedRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, title, body, created_by, created_at, updated_at FROM canned_replies ORDER BY title, id"
        )
        .fetch_all(&mut *pool)
        .await
        .map_err(err)?);
        rows.into_iter().map(canned_of).collect()
    }

    async fn put_lexicon_change(
        &self,
        language: &str,
        group: &str,
        term: &str,
        edit: webcare_domain::TermEdit,
        author: Option<AgentId>,
        at: Timestamp,
    ) -> StoreResult<webcare_domain::LexiconChange> {
        let row: LexiconRow = on_pool!(self, |pool| sqlx::query_as(
            "INSERT INTO lexicon_changes (language, group_name, term, edit, author_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (language, group_name, term)
             DO UPDATE SET edit = excluded.edit, author_id = excluded.author_id, created_at = excluded.created_at
             RETURNING id, language, group_name, term, edit, author_id, created_at"
        )
        .bind(language)
        .bind(group)
        .bind(term)
        .bind(edit.as_str())
        .bind(author.map(|a| a.0))
        .bind(ms(at))
        .fetch_one(&mut *pool)
        .await
        .map_err(err)?);
        lexicon_of(row)
    }

    async fn delete_lexicon_change(&self, id: webcare_domain::LexiconChangeId) -> StoreResult<bool> {
        let n = on_pool!(self, |pool| sqlx::query("DELETE FROM lexicon_changes WHERE id = $1")
            .bind(id.0)
            .execute(&mut *pool)
            .await
            .map_err(err)?
            .rows_affected());
        Ok(n > 0)
    }

    async fn lexicon_changes(&self) -> StoreResult<Vec<webcare_domain::LexiconChange>> {
        let rows: Vec<LexiconRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, language, group_name, term, edit, author_id, created_at FROM lexicon_changes
             ORDER BY created_at, id"
        )
        .fetch_all(&mut *pool)
        .await
        .map_err(err)?);
        rows.into_iter().map(lexicon_of).collect()
    }

    async fn inbound_since(&self, since: Timestamp, limit: u32) -> StoreResult<Vec<InboundMessage>> {
        let rows: Vec<rows::InboundRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT * FROM inbound_messages WHERE received_at >= $1 ORDER BY received_at, id LIMIT $2"
        )
        .bind(ms(since))
        .bind(i64::from(limit))
        .fetch_all(&mut *pool)
        .await
        .map_err(err)?);
        rows::all(rows)
    }

    async fn inbound_page(&self, filter: &InboundFilter, limit: u32) -> StoreResult<Vec<InboundMessage>> {
        // A decision is JSON text on both backends; each reads one of its fields as text its own way. The field
        // names come from `DecisionField`, never from input; the values are bound.
        let field = |f: DecisionField| match self.backend {
            Backend::Sqlite => format!("CAST(json_extract(decision, '$.{}') AS TEXT)", f.as_str()),
            Backend::Postgres => format!("(decision::jsonb ->> '{}')", f.as_str()),
        };
        let text = filter.text.as_deref().map(|t| like_contains(&t.to_lowercase()));
        let rows: Vec<rows::InboundRow> = on_pool!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new("SELECT * FROM inbound_messages WHERE TRUE");
            if let Some(platform) = filter.platform {
                q.push(" AND platform = ").push_bind(platform.as_str());
            }
            if filter.undecided {
                q.push(" AND decision IS NULL");
            }
            for (f, value) in &filter.decision {
                q.push(" AND ").push(field(*f)).push(" = ").push_bind(value.clone());
            }
            if let Some(pattern) = &text {
                q.push(" AND lower(text) LIKE ").push_bind(pattern.clone()).push(" ESCAPE '\\'");
            }
            if let Some(since) = filter.since {
                q.push(" AND received_at >= ").push_bind(ms(since));
            }
            if let Some(before) = filter.before {
                q.push(" AND id < ").push_bind(before.0);
            }
            if let Some(conversation) = filter.conversation {
                q.push(" AND conversation_id = ").push_bind(conversation.0);
            }
            if let Some(customer) = filter.customer {
                q.push(" AND customer_id = ").push_bind(customer.0);
            }
            q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
            q.build_query_as().fetch_all(&mut *pool).await.map_err(err)?
        });
        rows::all(rows)
    }
}

impl Db {
    /// Runs one statement that returns no rows (`CREATE DATABASE`, `VACUUM`), for tests and administration.
    /// The text is run as given: never build it from input.
    pub async fn execute_admin(&self, statement: &str) -> StoreResult<()> {
        let statement = sqlx::AssertSqlSafe(statement.to_owned());
        on_pool!(self, |pool| sqlx::query(statement).execute(&mut *pool).await.map(|_| ()).map_err(err))
    }

    /// Registers many private conversations on `platform` at once and subscribes them to `notice`, a thousand per
    /// transaction: how benchmarks and crash tests set up 100,000 subscribers in seconds (one by one, as customers
    /// arrive, each is a transaction of its own). Chats registered before are reused. Returns the conversations.
    pub async fn seed_subscribers(
        &self,
        notice: NoticeId,
        platform: Platform,
        chats: &[String],
        at: Timestamp,
    ) -> StoreResult<Vec<ConversationId>> {
        let mut ids = Vec::with_capacity(chats.len());
        for batch in chats.chunks(1000) {
            on_pool!(self, |pool| {
                let mut tx = pool.begin().await.map_err(err)?;
                for chat in batch {
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO conversations (platform, platform_chat_id, kind, created_at)
                         VALUES ($1, $2, 'private', $3)
                         ON CONFLICT (platform, platform_chat_id) DO UPDATE SET kind = conversations.kind
                         RETURNING id",
                    )
                    .bind(platform.as_str())
                    .bind(chat)
                    .bind(ms(at))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err)?;
                    sqlx::query(
                        "INSERT INTO subscriptions (conversation_id, notice_id, created_at) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(notice.0)
                    .bind(ms(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    ids.push(ConversationId(id));
                }
                tx.commit().await.map_err(err)?;
            });
        }
        Ok(ids)
    }

    /// The SQLite journal mode (`wal` once opened by webcare); `None` on PostgreSQL.
    pub async fn sqlite_journal_mode(&self) -> StoreResult<Option<String>> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(pool).await.map_err(err)?;
                Ok(Some(mode))
            }
            _ => Ok(None),
        }
    }
}

/// A `sessions` row: hash, agent, CSRF token, created, expires.
type SessionRow = (String, i64, String, i64, i64);

fn session_of(
    (id_hash, agent, csrf, created_at, expires_at): SessionRow,
) -> StoreResult<webcare_domain::ConsoleSession> {
    Ok(webcare_domain::ConsoleSession {
        id_hash,
        agent: AgentId(agent),
        csrf,
        created_at: rows::time(created_at)?,
        expires_at: rows::time(expires_at)?,
    })
}

/// A `canned_replies` row: id, title, body, author, created, updated.
type LexiconRow = (i64, String, String, String, String, Option<i64>, i64);

fn lexicon_of(
    (id, language, group, term, edit, author, created_at): LexiconRow,
) -> StoreResult<webcare_domain::LexiconChange> {
    Ok(webcare_domain::LexiconChange {
        id: webcare_domain::LexiconChangeId(id),
        language,
        group,
        term,
        edit: edit.parse().map_err(|e: webcare_domain::UnknownWord| StoreError::Invalid(e.to_string()))?,
        author: author.map(AgentId),
        created_at: rows::time(created_at)?,
    })
}

type CannedRow = (i64, String, String, Option<i64>, i64, i64);

fn canned_of((id, title, body, by, created_at, updated_at): CannedRow) -> StoreResult<webcare_domain::CannedReply> {
    Ok(webcare_domain::CannedReply {
        id: webcare_domain::CannedReplyId(id),
        title,
        body,
        created_by: by.map(AgentId),
        created_at: rows::time(created_at)?,
        updated_at: rows::time(updated_at)?,
    })
}
