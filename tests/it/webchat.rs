//! The web chat over HTTP with the real intake and delivery behind it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use webcare_app::delivery::{Delivery, DeliveryConfig};
use webcare_tests::TestDb;
use webcare_web::webchat::WebchatSender;

struct Chat {
    router: axum::Router,
    delivery: Delivery,
    _db: TestDb,
}

async fn chat() -> Chat {
    chat_with(webcare_web::console::ConsoleConfig::default()).await
}

async fn chat_with(config: webcare_web::console::ConsoleConfig) -> Chat {
    let db = TestDb::sqlite().await;
    let state = webcare_tests::app_state(db.db()).await;
    let delivery = Delivery::new(
        state.store.clone(),
        vec![Arc::new(WebchatSender { hub: state.webchat.clone() })],
        DeliveryConfig::default(),
    );
    Chat { router: webcare_web::router_with(state, config), delivery, _db: db }
}

impl Chat {
    async fn call(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn session(&self) -> String {
        let (status, body) = self.call(Request::post("/chat/api/session").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        body["conversation"].as_str().unwrap().to_owned()
    }

    async fn post(&self, body: Value) -> (StatusCode, Value) {
        self.call(
            Request::post("/chat/api/messages")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    async fn transcript(&self, conversation: &str) -> (StatusCode, Value) {
        self.call(
            Request::get(format!("/chat/api/transcript?conversation={conversation}")).body(Body::empty()).unwrap(),
        )
        .await
    }
}

#[tokio::test]
async fn a_customer_writes_and_sees_the_answer() {
    let c = chat().await;
    let me = c.session().await;
    assert_eq!(me.len(), 64);
    let (status, body) =
        c.post(json!({"conversation": me, "id": "m1", "text": "Storing in Utrecht? Geen internet sinds 10 uur"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["action"], "hold_and_subscribe");
    // Retried by a flaky connection: stored once.
    let (_, again) =
        c.post(json!({"conversation": me, "id": "m1", "text": "Storing in Utrecht? Geen internet sinds 10 uur"})).await;
    assert_eq!(again["new"], false);

    let (_, lines) = c.transcript(&me).await;
    assert_eq!(lines.as_array().unwrap().len(), 1, "the answer is not shown before the outbox delivered it");
    assert_eq!(c.delivery.step().await.unwrap().sent, 1);
    let (_, lines) = c.transcript(&me).await;
    let lines = lines.as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["direction"], "in");
    assert_eq!(lines[1]["direction"], "out");
    assert!(lines[1]["text"].as_str().unwrap().starts_with("Bedankt"));
    // The button says it was offered in Dutch, so what follows its press is Dutch only.
    assert_eq!(lines[1]["buttons"][0]["data"], "talk_to_person:nl");

    let (_, pressed) = c.post(json!({"conversation": me, "id": "m2", "button": "talk_to_person:nl"})).await;
    assert_eq!(pressed["action"], "ticket");
    c.delivery.step().await.unwrap();
    let (_, lines) = c.transcript(&me).await;
    let last = lines.as_array().unwrap().last().unwrap()["text"].as_str().unwrap().to_owned();
    assert!(last.starts_with("Een medewerker neemt je vraag op (zaak ") && !last.contains(" / "), "{last}");
}

/// What shows no language of its own is answered in the browser's: the page sends `navigator.language`; a
/// client that does not is read by its `Accept-Language`; a browser in neither language gets both.
#[tokio::test]
async fn a_command_is_answered_in_the_browsers_language() {
    let c = chat().await;
    let last = |lines: Value| lines.as_array().unwrap().last().unwrap()["text"].as_str().unwrap().to_owned();
    let page = c.session().await;
    c.post(json!({"conversation": page, "id": "m1", "text": "/status", "language": "en-GB"})).await;
    c.delivery.step().await.unwrap();
    assert_eq!(last(c.transcript(&page).await.1), "No open case.");

    let header = c.session().await;
    let body = json!({"conversation": header, "id": "m1", "text": "/status"});
    let request = Request::post("/chat/api/messages")
        .header("content-type", "application/json")
        .header("accept-language", "nl-BE,nl;q=0.9,en;q=0.8")
        .body(Body::from(body.to_string()))
        .unwrap();
    assert_eq!(c.call(request).await.0, StatusCode::ACCEPTED);
    c.delivery.step().await.unwrap();
    assert_eq!(last(c.transcript(&header).await.1), "Geen open zaak.");

    let german = c.session().await;
    c.post(json!({"conversation": german, "id": "m1", "text": "/status", "language": "de-DE"})).await;
    c.delivery.step().await.unwrap();
    assert_eq!(last(c.transcript(&german).await.1), "Geen open zaak. / No open case.");
}

/// One address cannot start conversations or post messages without end (each conversation is a customer of its
/// own, so the per-customer flood control alone would not hold it): past its quota it gets 429 with Retry-After
/// and a message in the browser's language, and nothing is stored; other addresses are not held up.
#[tokio::test]
async fn one_address_is_held_to_its_quota_of_conversations_and_messages() {
    let config = webcare_web::console::ConsoleConfig {
        webchat_sessions_per_minute: 2,
        webchat_messages_per_minute: 3,
        trust_forwarded_for: true,
        ..Default::default()
    };
    let c = chat_with(config).await;
    let from = |address: &str, request: axum::http::request::Builder| {
        request.header("x-forwarded-for", format!("{address}, 10.0.0.1")).header("accept-language", "nl-NL")
    };
    let session = |address: &str| from(address, Request::post("/chat/api/session")).body(Body::empty()).unwrap();
    let raw = |request: Request<Body>| async { c.router.clone().oneshot(request).await.unwrap() };
    for _ in 0..2 {
        assert_eq!(raw(session("192.0.2.1")).await.status(), StatusCode::OK);
    }
    let refused = raw(session("192.0.2.1")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=31).contains(&wait), "one session every 30 s: {wait}");
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(refused.into_body(), 1 << 16).await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Er zijn vanaf dit adres veel gesprekken begonnen. Probeer het over "), "{message}");
    assert_eq!(raw(session("192.0.2.2")).await.status(), StatusCode::OK, "another address starts its own");

    let me = c.session().await;
    let post = |address: &str, id: &str| {
        let body = json!({"conversation": me, "id": id, "text": "Mijn factuur klopt niet"});
        from(address, Request::post("/chat/api/messages"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    for id in ["m1", "m2", "m3"] {
        assert_eq!(raw(post("192.0.2.3", id)).await.status(), StatusCode::ACCEPTED);
    }
    let refused = raw(post("192.0.2.3", "m4")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(raw(post("192.0.2.4", "m5")).await.status(), StatusCode::ACCEPTED, "another address posts");
    let (_, lines) = c.transcript(&me).await;
    let stored: Vec<_> = lines.as_array().unwrap().iter().filter(|l| l["direction"] == "in").collect();
    assert_eq!(stored.len(), 4, "the refused message is not stored: {lines}");
}

#[tokio::test]
async fn one_customer_cannot_read_another_conversation() {
    let c = chat().await;
    let alice = c.session().await;
    let mallory = c.session().await;
    assert_ne!(alice, mallory);
    c.post(json!({"conversation": alice, "id": "a", "text": "Mijn IBAN is NL91ABNA0417164300"})).await;
    let (_, theirs) = c.transcript(&mallory).await;
    assert_eq!(theirs, json!([]));
    let (status, _) = c.transcript("not-a-conversation").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = c.transcript(&alice.to_uppercase()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer() {
    let c = chat().await;
    let me = c.session().await;
    let (status, body) = c.post(json!({"conversation": me, "id": "x", "text": "   "})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("empty_message")));
    let long = "a".repeat(4001);
    let (status, body) = c.post(json!({"conversation": me, "id": "y", "text": long})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("message_too_long")));
    let (status, _) = c.post(json!({"conversation": "abc", "id": "z", "text": "hoi"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = c.post(json!({"conversation": me, "id": "<script>", "text": "hoi"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let huge = json!({"conversation": me, "id": "h", "text": "a".repeat(100_000)}).to_string();
    let (status, _) = c
        .call(
            Request::post("/chat/api/messages")
                .header("content-type", "application/json")
                .body(Body::from(huge))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A body that is not JSON, or not JSON of this shape, is answered in the same error shape as the rest.
    for (content_type, body, expected) in [
        ("application/json", "not json", (StatusCode::BAD_REQUEST, "bad_json")),
        ("application/json", r#"{"conversation": 7}"#, (StatusCode::UNPROCESSABLE_ENTITY, "invalid")),
        ("text/plain", "{}", (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")),
    ] {
        let (status, answer) = c
            .call(
                Request::post("/chat/api/messages")
                    .header("content-type", content_type)
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        assert_eq!((status, answer["error"]["code"].as_str()), (expected.0, Some(expected.1)), "{body}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    }

    // Markup is stored and returned as text; the page renders it with textContent.
    let (status, _) = c
        .post(json!({"conversation": me, "id": "s", "text": "<script>alert(1)</script><img src=x onerror=alert(2)>"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, lines) = c.transcript(&me).await;
    assert_eq!(lines[0]["text"], "<script>alert(1)</script><img src=x onerror=alert(2)>");
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_content_security_policy() {
    let c = chat().await;
    let response = c.router.clone().oneshot(Request::get("/chat").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let html = String::from_utf8(body.to_vec()).unwrap();
    assert!(html.contains("/chat/chat.js") && !html.contains("<script>"), "no inline script");
    let js = c.router.clone().oneshot(Request::get("/chat/chat.js").body(Body::empty()).unwrap()).await.unwrap();
    let js = String::from_utf8(axum::body::to_bytes(js.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(js.contains("textContent") && !js.contains("innerHTML"), "messages are rendered as text");
}
