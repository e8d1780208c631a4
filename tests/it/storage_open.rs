//! Opening databases: what webcare refuses to touch, and how it says so.

use std::time::Duration;

use webcare_storage::{Backend, Db, OpenError, OpenOptions};

fn options() -> OpenOptions {
    OpenOptions { max_connections: 2, connect_retry: Duration::from_millis(600), migrate: true }
}

fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn a_new_sqlite_file_is_created_in_wal_mode_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webcare.db");
    let db = Db::open(&sqlite_url(&path), &options()).await.unwrap();
    assert_eq!(db.backend(), Backend::Sqlite);
    assert_eq!(db.sqlite_journal_mode().await.unwrap().as_deref(), Some("wal"));
    db.close().await;
    assert!(path.exists());
    // A second start on the same file finds its own migrations and opens it.
    let again = Db::open(&sqlite_url(&path), &options()).await.unwrap();
    again.close().await;
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let content = b"these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &content).unwrap();
    let e = Db::open(&sqlite_url(&path), &options()).await.unwrap_err();
    assert!(matches!(e, OpenError::Foreign { .. }), "{e}");
    assert!(e.to_string().contains("notes.db") && e.to_string().contains("left untouched"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert!(!dir.path().join("notes.db-wal").exists());
}

#[tokio::test]
async fn another_applications_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    {
        // One connection: switching the journal mode back needs the only one.
        let other = Db::open(&sqlite_url(&path), &OpenOptions { migrate: false, max_connections: 1, ..options() })
            .await
            .unwrap();
        other.execute_admin("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount INTEGER)").await.unwrap();
        other.execute_admin("PRAGMA journal_mode = DELETE").await.unwrap();
        other.close().await;
    }
    let before = std::fs::read(&path).unwrap();
    let e = Db::open(&sqlite_url(&path), &options()).await.unwrap_err();
    assert!(matches!(e, OpenError::Foreign { .. }), "{e}");
    assert!(e.to_string().contains("invoices"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "not a byte of the foreign file changed");
}

#[tokio::test]
async fn a_directory_that_does_not_exist_or_cannot_be_written_is_named() {
    let e = Db::open("sqlite:///nonexistent-dir/sub/webcare.db", &options()).await.unwrap_err();
    assert!(matches!(e, OpenError::NotWritable { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent-dir/sub/webcare.db"), "{e}");

    // /proc is not writable even by root, so this holds wherever the tests run.
    let e = Db::open("sqlite:///proc/webcare.db", &options()).await.unwrap_err();
    assert!(matches!(e, OpenError::NotWritable { .. }), "{e}");
    assert!(e.to_string().contains("/proc/webcare.db"), "{e}");
}

#[tokio::test]
async fn an_unreachable_server_is_retried_for_a_bounded_time() {
    // A port nothing listens on: bind one, note it, and free it again.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let e = Db::open(&format!("postgres://webcare:secret@127.0.0.1:{port}/webcare"), &options()).await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(e, OpenError::Unreachable { .. }), "{e}");
    assert!(waited >= Duration::from_millis(200), "it retried before giving up ({waited:?})");
    assert!(waited < Duration::from_secs(5), "it gave up after its retry budget ({waited:?})");
    assert!(!e.to_string().contains("secret"), "passwords never appear in messages: {e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let e = Db::open("mysql://root@localhost/x", &options()).await.unwrap_err();
    assert!(matches!(e, OpenError::UnsupportedUrl { .. }), "{e}");
}

/// How many of this process's file descriptors are open on `path` or its WAL and shared-memory files.
fn open_descriptors(path: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with(&*path.to_string_lossy()))
        .count()
}

/// A database whose every handle is dropped without `close` lets its file go too: its background checkpoint task
/// does not keep the pool, and so the file, open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_sqlite_database_closes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webcare.db");
    let db = Db::open(&sqlite_url(&path), &options()).await.unwrap();
    let clone = db.clone();
    webcare_domain::Store::agents(&clone).await.unwrap();
    assert!(open_descriptors(&path) > 0, "open while in use");
    drop(db);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(open_descriptors(&path) > 0, "a clone keeps it open");
    drop(clone);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while open_descriptors(&path) > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open_descriptors(&path), 0, "every handle dropped: the file is closed");
}
