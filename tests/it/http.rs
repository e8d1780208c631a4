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
                language: None,
                account: String::new(),
                at: chrono::Utc::now(),
            };
            state.intake.receive(event).await.unwrap()
        }
    };
    chat("Storing in Utrecht? Geen internet", "a").await;
    chat("Mijn factuur klopt niet, ik betaal dubbel", "b").await;
    let ticket = state.store.tickets(&[]).await.unwrap().remove(0);
    let overdue = Some(chrono::Utc::now() - chrono::Duration::hours(1));
    let late = crate::storage::new_ticket(ticket.conversation, ticket.customer, "te laat", overdue, chrono::Utc::now());
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

/// The public status page shows the notices customers are answered from now, in Dutch or English, escaped, and
/// nothing unpublished; `/status.json` gives the same as data.
#[tokio::test]
async fn the_status_page_shows_the_active_notices_only() {
    use webcare_domain::{NoticeChange, NoticeState, Service};
    let t = TestDb::sqlite().await;
    let state = webcare_tests::app_state(t.db()).await;
    let router = webcare_web::router(state.clone());
    let now = chrono::Utc::now();
    let (_, empty) = get(router.clone(), "/status").await;
    assert!(empty.contains("Er zijn nu geen bekende storingen."), "{empty}");

    let mut utrecht = crate::storage::new_notice(&["Utrecht"], now);
    utrecht.title = "Storing <internet> Utrecht".into();
    utrecht.texts.insert("en".into(), "We are fixing an internet outage in Utrecht.".into());
    let utrecht = state.store.create_notice(utrecht).await.unwrap();
    let mut tv = crate::storage::new_notice(&[], now);
    tv.title = "Storing tv".into();
    tv.services = vec![Service::Tv];
    tv.state = NoticeState::Identified;
    state.store.create_notice(tv).await.unwrap();
    let mut draft = crate::storage::new_notice(&["Zeist"], now);
    draft.title = "Concept Zeist".into();
    draft.draft = true;
    state.store.create_notice(draft).await.unwrap();
    let resolved = state.store.create_notice({
        let mut n = crate::storage::new_notice(&["Gent"], now);
        n.title = "Storing Gent".into();
        n
    });
    let resolved = resolved.await.unwrap();
    let change = NoticeChange { state: Some(NoticeState::Resolved), ..Default::default() };
    state.store.update_notice(resolved.id, change, now).await.unwrap();

    let response = router.clone().oneshot(Request::get("/status").body(Body::empty()).unwrap()).await.unwrap();
    assert!(response.headers().contains_key("content-security-policy"));
    let (_, page) = get(router.clone(), "/status").await;
    assert!(page.contains("Storing &lt;internet&gt; Utrecht") && !page.contains("<internet>"), "escaped: {page}");
    assert!(page.contains("We onderzoeken een internetstoring in Utrecht."), "the Dutch text: {page}");
    assert!(page.contains("Storing tv") && page.contains("tv · landelijk"), "{page}");
    assert!(page.contains("Oorzaak gevonden"), "{page}");
    assert!(!page.contains("Concept Zeist") && !page.contains("Storing Gent"), "no draft, nothing resolved: {page}");

    let english = router
        .clone()
        .oneshot(Request::get("/status").header("accept-language", "en-GB,en;q=0.9").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = axum::body::to_bytes(english.into_body(), 1 << 20).await.unwrap();
    let english = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        english.contains("We are fixing an internet outage in Utrecht.") && english.contains("nationwide"),
        "{english}"
    );
    assert!(get(router.clone(), "/status?lang=en").await.1.contains("Service status"));

    let (status, json) = get(router, "/status.json").await;
    assert_eq!(status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    let titles: Vec<&str> = list.as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap()).collect();
    assert_eq!(titles.len(), 2, "{json}");
    assert!(titles.contains(&"Storing <internet> Utrecht") && titles.contains(&"Storing tv"), "{titles:?}");
    let first = list.as_array().unwrap().iter().find(|n| n["id"] == utrecht.id.0).unwrap();
    assert_eq!(first["texts"]["en"], "We are fixing an internet outage in Utrecht.");
}
