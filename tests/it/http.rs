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

/// `/metrics` reports the work waiting in the database: undecided messages, tickets by state and overdue, active
/// notices, open clusters.
#[tokio::test]
async fn metrics_report_the_work_waiting() {
    use webcare_domain::NewTicket;
    let t = TestDb::sqlite().await;
    let state = webcare_tests::app_state(t.db()).await;
    let router = webcare_web::router(state.clone());
    let chat = |body: &str, id: &'static str| {
        let state = state.clone();
        let body = body.to_owned();
        async move {
            let event = webcare_domain::InboundEvent {
                platform: webcare_domain::Platform::Webchat,
                chat_id: id.into(),
                chat_kind: webcare_domain::ConversationKind::Private,
                chat_title: None,
                user_id: id.into(),
                user_name: "klant".into(),
                from_bot: false,
                message_id: format!("{id}/1"),
                text: body,
                attachments: Vec::new(),
                kind: webcare_domain::InboundKind::Message,
                place: None,
                account: String::new(),
                at: chrono::Utc::now(),
            };
            state.intake.receive(event).await.unwrap()
        }
    };
    chat("Storing in Utrecht? Geen internet", "a").await;
    chat("Mijn factuur klopt niet, ik betaal dubbel", "b").await;
    let ticket = state.store.tickets(&[]).await.unwrap().remove(0);
    let late = NewTicket {
        conversation: ticket.conversation,
        customer: ticket.customer,
        subject: "te laat".into(),
        priority: 3,
        category: "billing".into(),
        due_at: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
        first_response_due_at: None,
        resolution_due_at: None,
        tags: Vec::new(),
        at: chrono::Utc::now(),
    };
    state.store.create_ticket(late).await.unwrap();
    state.store.create_notice(crate::storage::new_notice(&["Zeist"], chrono::Utc::now())).await.unwrap();
    let (_, metrics) = get(router, "/metrics").await;
    for line in [
        "\nwebcare_messages_undecided 0\n",
        "\nwebcare_tickets{state=\"new\"} 2\n",
        "\nwebcare_tickets{state=\"closed\"} 0\n",
        "\nwebcare_tickets_overdue 1\n",
        "\nwebcare_notices_active 1\n",
        "\nwebcare_clusters_open 1\n",
    ] {
        assert!(metrics.contains(line), "{line:?} in {metrics}");
    }
}
