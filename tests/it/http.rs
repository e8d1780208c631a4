//! The HTTP side against a real database: health, readiness and metrics.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt as _;
use webcare_tests::TestDb;

async fn get(router: axum::Router, path: &str) -> (StatusCode, String) {
    let response = router.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn readyz_follows_the_database() {
    let t = TestDb::sqlite().await;
    let router = webcare_web::router(webcare_tests::app_state(t.db()).await);
    assert_eq!(get(router.clone(), "/readyz").await, (StatusCode::OK, "ready\n".to_owned()));
    assert_eq!(get(router.clone(), "/healthz").await.0, StatusCode::OK);
    t.db().close().await;
    let (status, body) = get(router.clone(), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(get(router.clone(), "/healthz").await.0, StatusCode::OK, "liveness does not depend on the database");
    let (status, metrics) = get(router, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("webcare_database_up 0"), "{metrics}");
}

#[tokio::test]
async fn metrics_count_outbox_rows_by_state() {
    use webcare_domain::{ConversationKind, NewConversation, NewOutbox, Platform, Priority, Store as _};
    let t = TestDb::sqlite().await;
    let now = chrono::Utc::now();
    let chat = t
        .db()
        .upsert_conversation(
            NewConversation {
                platform: Platform::Webchat,
                platform_chat_id: "w".into(),
                kind: ConversationKind::Private,
                title: None,
            },
            now,
        )
        .await
        .unwrap();
    for key in ["a", "b"] {
        t.db().enqueue(NewOutbox::message(chat.id, "hi", key, Priority::AUTOMATIC, now), now).await.unwrap();
    }
    let router = webcare_web::router(webcare_tests::app_state(t.db()).await);
    let (_, metrics) = get(router, "/metrics").await;
    assert!(metrics.contains("webcare_outbox_rows{state=\"pending\"} 2"), "{metrics}");
    assert!(metrics.contains("webcare_outbox_rows{state=\"sent\"} 0"), "{metrics}");
    assert!(metrics.contains("\nwebcare_bridge_deciding 1\n"), "the only instance decides: {metrics}");
}
