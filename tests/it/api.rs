//! The REST API against a real database: every route, authorisation, and the flows an integration relies on.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::Utc;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use webcare_app::delivery::{Delivery, DeliveryConfig};
use webcare_domain::{NewAgent, Role, Store};
use webcare_tests::TestDb;

struct Api {
    router: axum::Router,
    state: webcare_web::AppState,
    delivery: Delivery,
    pipeline: Arc<webcare_app::intake::Pipeline>,
    notices: Arc<webcare_app::notices::Notices>,
    store: Arc<dyn Store>,
    admin: String,
    agent: String,
    other: String,
    _db: TestDb,
}

async fn token(store: &dyn Store, name: &str, role: Role) -> String {
    let agent =
        store.create_agent(NewAgent { name: name.into(), role, password_hash: None, at: Utc::now() }).await.unwrap();
    let token = webcare_web::auth::new_api_token();
    store.add_api_token(agent.id, &webcare_web::auth::hash_api_token(&token), Utc::now()).await.unwrap();
    token
}

async fn api_on(db: TestDb) -> Api {
    let app = webcare_tests::app(db.db()).await;
    let (pipeline, notices, store) = (app.pipeline.clone(), app.notices.clone(), app.store.clone());
    let state = webcare_tests::state_of(app);
    let delivery = Delivery::new(
        store.clone(),
        vec![Arc::new(webcare_web::webchat::WebchatSender { hub: state.webchat.clone() })],
        DeliveryConfig::default(),
    );
    let admin = token(store.as_ref(), "ria", Role::Admin).await;
    let agent = token(store.as_ref(), "sam", Role::Agent).await;
    let other = token(store.as_ref(), "kim", Role::Agent).await;
    Api {
        router: webcare_web::router(state.clone()),
        state,
        delivery,
        pipeline,
        notices,
        store,
        admin,
        agent,
        other,
        _db: db,
    }
}

async fn api() -> Api {
    api_on(TestDb::sqlite().await).await
}

impl Api {
    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())).unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// A customer writes in the web chat; returns their conversation id.
    async fn customer_says(&self, conversation: Option<&str>, id: &str, text: &str) -> String {
        let conversation = match conversation {
            Some(c) => c.to_owned(),
            None => {
                let (_, s) = self.call(Method::POST, "/chat/api/session", None, None).await;
                s["conversation"].as_str().unwrap().to_owned()
            }
        };
        let (status, body) = self
            .call(
                Method::POST,
                "/chat/api/messages",
                None,
                Some(json!({"conversation": conversation, "id": id, "text": text})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        conversation
    }

    async fn transcript(&self, conversation: &str) -> Vec<String> {
        let (_, lines) =
            self.call(Method::GET, &format!("/chat/api/transcript?conversation={conversation}"), None, None).await;
        lines
            .as_array()
            .unwrap()
            .iter()
            .map(|l| format!("{}: {}", l["direction"].as_str().unwrap(), l["text"].as_str().unwrap()))
            .collect()
    }
}

fn method(m: &str) -> Method {
    m.to_uppercase().parse().unwrap()
}

#[tokio::test]
async fn every_route_needs_a_token_and_admin_routes_need_an_admin() {
    let a = api().await;
    for (m, path, admin, _) in webcare_web::api::ROUTES {
        let path = path.replace("{id}", "1");
        let body = (*m != "get").then(|| json!({}));
        let (status, err) = a.call(method(m), &path, None, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{m} {path}: {err}");
        assert_eq!(err["error"]["code"], "unauthorized");
        let (status, _) = a.call(method(m), &path, Some("wct_not-a-real-token"), body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{m} {path}");
        let (status, err) = a.call(method(m), &path, Some(&a.agent), body.clone()).await;
        if *admin {
            assert_eq!(status, StatusCode::FORBIDDEN, "{m} {path}: {err}");
        } else {
            assert_ne!(status, StatusCode::FORBIDDEN, "{m} {path}: {err}");
        }
        // The route exists: whatever it answers, it is not the API's "no such route".
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
        assert_ne!(err["error"]["message"], "no such API route", "{m} {path}");
    }
    let (status, err) = a.call(Method::GET, "/api/v1/nothing", Some(&a.agent), None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let a = api().await;
    let (status, doc) = a.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for m in ops.as_object().unwrap().keys() {
            documented.push((m.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut routes: Vec<_> =
        webcare_web::api::ROUTES.iter().map(|(m, p, _, _)| (m.to_string(), p.to_string())).collect();
    routes.sort();
    assert_eq!(documented, routes);
}

#[tokio::test]
async fn an_agent_claims_answers_and_the_customer_sees_it() {
    let a = api().await;
    let chat = a.customer_says(None, "m1", "Mijn factuur is veel te hoog deze maand").await;
    // The customer hears at once that a person will answer.
    assert_eq!(a.delivery.step().await.unwrap().sent, 1, "the new case's acknowledgement");
    assert!(a.transcript(&chat).await.last().unwrap().contains("We hebben er een zaak van gemaakt"));
    let (status, list) = a.call(Method::GET, "/api/v1/tickets?state=new,open", Some(&a.agent), None).await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let t = &list[0];
    for field in [
        "id",
        "state",
        "subject",
        "platform",
        "customer",
        "assignee",
        "priority",
        "category",
        "created_at",
        "updated_at",
        "due_at",
    ] {
        assert!(t.get(field).is_some(), "ticket lacks {field}: {t}");
    }
    assert_eq!(
        (t["state"].as_str(), t["platform"].as_str(), t["category"].as_str()),
        (Some("new"), Some("webchat"), Some("billing"))
    );
    assert!(t["due_at"].is_string(), "an SLA due time: {t}");
    let id = t["id"].as_i64().unwrap();

    let (status, claimed) = a.call(Method::POST, &format!("/api/v1/tickets/{id}/claim"), Some(&a.agent), None).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(claimed["assignee"], "sam");
    let (status, err) = a.call(Method::POST, &format!("/api/v1/tickets/{id}/claim"), Some(&a.other), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(err["error"]["message"].as_str().unwrap().contains("sam"), "{err}");

    let (status, _) = a
        .call(
            Method::POST,
            &format!("/api/v1/tickets/{id}/replies"),
            Some(&a.agent),
            Some(json!({"text": "We zoeken het uit, <b>Anna</b>."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = a
        .call(
            Method::POST,
            &format!("/api/v1/tickets/{id}/notes"),
            Some(&a.agent),
            Some(json!({"text": "belt morgen terug"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(a.delivery.step().await.unwrap().sent, 1, "the reply, and not the note, goes out");
    let transcript = a.transcript(&chat).await;
    assert_eq!(transcript.last().unwrap(), "out: We zoeken het uit, <b>Anna</b>.");
    assert!(!transcript.iter().any(|l| l.contains("belt morgen")), "notes never leave");

    let (_, one) = a.call(Method::GET, &format!("/api/v1/tickets/{id}"), Some(&a.agent), None).await;
    let dirs: Vec<_> =
        one["messages"].as_array().unwrap().iter().map(|m| m["direction"].as_str().unwrap().to_owned()).collect();
    assert_eq!(dirs, vec!["in", "out", "note"]);
    assert_eq!(one["messages"][1]["author"], "sam");
    assert_eq!(one["customer_language"], json!({"language": "nl", "from_text": true}), "the customer wrote Dutch");

    let (status, patched) = a
        .call(
            Method::PATCH,
            &format!("/api/v1/tickets/{id}"),
            Some(&a.agent),
            Some(json!({"state": "pending", "priority": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!((patched["state"].as_str(), patched["priority"].as_i64()), (Some("pending"), Some(2)));
    let (_, pending) = a.call(Method::GET, "/api/v1/tickets?state=pending", Some(&a.agent), None).await;
    assert_eq!(pending.as_array().unwrap().len(), 1);
    // The customer answers: the ticket reopens.
    a.customer_says(Some(&chat), "m2", "Dank je, ik wacht af").await;
    let (_, one) = a.call(Method::GET, &format!("/api/v1/tickets/{id}"), Some(&a.agent), None).await;
    assert_eq!(one["state"], "open");
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let a = api().await;
    let (status, _) = a.call(Method::GET, "/api/v1/tickets/999", Some(&a.agent), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = a.call(Method::GET, "/api/v1/tickets/abc", Some(&a.agent), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, err) = a.call(Method::GET, "/api/v1/tickets?state=lost", Some(&a.agent), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (status, err) = a.call(Method::POST, "/api/v1/notices", Some(&a.admin), Some(json!({"title": "x"}))).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")));
    let (status, err) = a
        .call(
            Method::POST,
            "/api/v1/notices",
            Some(&a.admin),
            Some(json!({"title": "", "text": "x", "state": "investigating"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let big = json!({"title": "x", "text": "a".repeat(200_000), "state": "investigating"});
    let (status, _) = a.call(Method::POST, "/api/v1/notices", Some(&a.admin), Some(big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let req = Request::post("/api/v1/notices")
        .header("authorization", format!("Bearer {}", a.admin))
        .body(Body::from("{"))
        .unwrap();
    let response = a.router.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn a_notice_answers_questions_and_each_version_reaches_each_subscriber_once() {
    let a = api().await;
    let (status, notice) = a
        .call(
            Method::POST,
            "/api/v1/notices",
            Some(&a.admin),
            Some(json!({"title": "Storing Utrecht", "text": "We are fixing an internet outage in Utrecht.",
                "texts": {"nl": "We verhelpen een internetstoring in Utrecht."},
                "services": ["internet"], "regions": ["Utrecht"], "state": "investigating"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{notice}");
    let id = notice["id"].as_i64().unwrap();
    assert_eq!((notice["version"].as_i64(), notice["active"].as_bool()), (Some(1), Some(true)));

    let c1 = a.customer_says(None, "q1", "Is er een storing in Utrecht? geen internet").await;
    let c2 = a.customer_says(None, "q2", "Utrecht internet ligt eruit, storing?").await;
    a.delivery.step().await.unwrap();
    for c in [&c1, &c2] {
        assert_eq!(a.transcript(c).await.last().unwrap(), "out: We verhelpen een internetstoring in Utrecht.");
    }
    let (status, v2) = a
        .call(
            Method::PATCH,
            &format!("/api/v1/notices/{id}"),
            Some(&a.admin),
            Some(json!({"text": "Cause found: a cable cut.", "state": "identified"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v2}");
    assert_eq!(v2["version"], 2);
    // The Dutch text was written for version 1: with a new text and no new Dutch one, Dutch askers get the new text.
    assert_eq!(v2["texts"], json!({}), "{v2}");
    let (_, progress) = a.call(Method::GET, &format!("/api/v1/notices/{id}/delivery"), Some(&a.agent), None).await;
    assert_eq!(
        (progress["version"].as_i64(), progress["subscribers"].as_i64(), progress["pending"].as_i64()),
        (Some(2), Some(2), Some(2))
    );
    for field in ["sent", "failed", "rate_per_s", "eta_s"] {
        assert!(progress.get(field).is_some(), "{progress}");
    }
    // Version 3 comes before version 2 went out: only version 3 is sent.
    a.call(
        Method::PATCH,
        &format!("/api/v1/notices/{id}"),
        Some(&a.admin),
        Some(json!({"text": "Fixed around 14:00.", "state": "monitoring"})),
    )
    .await;
    a.delivery.step().await.unwrap();
    a.delivery.step().await.unwrap();
    for c in [&c1, &c2] {
        let t = a.transcript(c).await;
        assert!(t.last().unwrap().contains("Fixed around 14:00."), "{t:?}");
        assert!(!t.iter().any(|l| l.contains("cable cut")), "the superseded version is skipped: {t:?}");
    }
    let (_, progress) = a.call(Method::GET, &format!("/api/v1/notices/{id}/delivery"), Some(&a.agent), None).await;
    assert_eq!((progress["sent"].as_i64(), progress["pending"].as_i64()), (Some(2), Some(0)), "{progress}");
    // A resolved notice invites the customer back: in both languages after the default text, whose language
    // webcare does not know, and in Dutch only after a Dutch text, to those who asked in Dutch.
    a.call(Method::PATCH, &format!("/api/v1/notices/{id}"), Some(&a.admin), Some(json!({"state": "resolved"}))).await;
    a.delivery.step().await.unwrap();
    let last = a.transcript(&c1).await.last().unwrap().clone();
    assert!(last.contains("Nog steeds last?") && last.contains("Still not working?"), "{last}");
    let dutch = json!({"text": "Fixed.", "texts": {"nl": "Opgelost: het internet in Utrecht werkt weer."}});
    let (status, _) = a.call(Method::PATCH, &format!("/api/v1/notices/{id}"), Some(&a.admin), Some(dutch)).await;
    assert_eq!(status, StatusCode::OK);
    a.delivery.step().await.unwrap();
    for c in [&c1, &c2] {
        let last = a.transcript(c).await.last().unwrap().clone();
        assert!(
            last.ends_with("werkt weer.\n\nNog steeds last? Antwoord hier, dan openen we een persoonlijke zaak."),
            "{last}"
        );
    }
    let (_, all) = a.call(Method::GET, "/api/v1/notices", Some(&a.agent), None).await;
    assert_eq!(all[0]["active"], false);
}

#[tokio::test]
async fn a_spike_alert_becomes_a_notice_that_answers_the_whole_cluster() {
    let a = api().await;
    let mut chats = Vec::new();
    for (i, text) in [
        "Storing in Eindhoven? Geen internet",
        "Eindhoven internet ligt eruit",
        "Geen internet in Eindhoven sinds vanochtend",
        "Is er een internetstoring in Eindhoven?",
        "Is the internet down in Eindhoven? No connection since this morning",
        "Internet outage in Eindhoven? My internet is not working either",
    ]
    .iter()
    .enumerate()
    {
        chats.push(a.customer_says(None, &format!("e{i}"), text).await);
    }
    let (_, alerts) = a.call(Method::GET, "/api/v1/alerts", Some(&a.agent), None).await;
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "one alert for one cluster: {alerts:?}");
    let alert = &alerts[0];
    assert!(alert["count"].as_i64().unwrap() >= 5);
    assert_eq!(alert["service"], "internet");
    assert!(!alert["samples"].as_array().unwrap().is_empty());
    assert_eq!(alert["webhook"]["state"], "pending", "no notifier ran: {alert}");
    assert_eq!(alert["webhook"]["attempts"], 0, "{alert}");
    assert_eq!((alert["cluster_state"].as_str(), alert["notice"].as_i64()), (Some("open"), None), "{alert}");
    let id = alert["id"].as_i64().unwrap();
    let (status, _) = a
        .call(
            Method::POST,
            &format!("/api/v1/alerts/{id}/notice"),
            Some(&a.agent),
            Some(json!({"title": "x", "text": "y", "state": "investigating"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, notice) = a
        .call(
            Method::POST,
            &format!("/api/v1/alerts/{id}/notice"),
            Some(&a.admin),
            Some(json!({
                "title": "Storing Eindhoven",
                "text": "Er is een internetstoring in Eindhoven; we werken eraan.",
                "texts": {"en": "There is an internet outage in Eindhoven; we are working on it."},
                "state": "identified",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{notice}");
    let (_, progress) =
        a.call(Method::GET, &format!("/api/v1/notices/{}/delivery", notice["id"]), Some(&a.agent), None).await;
    assert_eq!(progress["subscribers"].as_i64(), Some(6), "{progress}");
    // The alert now says that a notice answers its cluster.
    let (_, alerts) = a.call(Method::GET, "/api/v1/alerts", Some(&a.agent), None).await;
    assert_eq!(
        (alerts[0]["cluster_state"].as_str(), &alerts[0]["notice"]),
        (Some("noticed"), &notice["id"]),
        "{alerts}"
    );
    // A second admin publishing from the same alert is told, rather than making a second notice for one outage.
    let (status, again) = a
        .call(
            Method::POST,
            &format!("/api/v1/alerts/{id}/notice"),
            Some(&a.admin),
            Some(json!({"title": "Storing Eindhoven", "text": "Nog een keer.", "state": "investigating"})),
        )
        .await;
    assert_eq!((status, again["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("already_answered")), "{again}");
    let (_, all) = a.call(Method::GET, "/api/v1/notices", Some(&a.agent), None).await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    while a.delivery.step().await.unwrap().claimed > 0 {}
    // Each customer gets the broadcast once, in the language they asked in: four in Dutch, two in English.
    for (i, c) in chats.iter().enumerate() {
        let t = a.transcript(c).await;
        let (mine, other) =
            if i < 4 { ("we werken eraan", "working on it") } else { ("working on it", "werken eraan") };
        assert_eq!(t.iter().filter(|l| l.contains(mine)).count(), 1, "exactly once: {t:?}");
        assert!(!t.iter().any(|l| l.contains(other)), "not in the other language: {t:?}");
    }
    // A later question is answered from the notice at once.
    let late = a.customer_says(None, "late", "Storing in Eindhoven?? geen internet").await;
    a.delivery.step().await.unwrap();
    assert!(a.transcript(&late).await.last().unwrap().contains("we werken eraan"));
}

#[tokio::test]
async fn a_notice_published_by_hand_answers_the_customers_already_waiting() {
    let a = api().await;
    // Three customers ask before anyone knows; too few for a spike alert, so nobody publishes from one.
    let utrecht_nl = a.customer_says(None, "u1", "Storing in Utrecht? Geen internet").await;
    let utrecht_en = a.customer_says(None, "u2", "Is the internet down in Utrecht? No connection").await;
    let leiden = a.customer_says(None, "l1", "Geen internet in Leiden sinds vanochtend").await;
    let amsterdam = a.customer_says(None, "a1", "Storing in Amsterdam? Geen internet").await;
    while a.delivery.step().await.unwrap().claimed > 0 {}
    for c in [&utrecht_nl, &utrecht_en, &leiden, &amsterdam] {
        assert!(a.transcript(c).await.last().unwrap().starts_with("out: "), "a holding answer first");
    }
    // The network team knows of Utrecht and publishes a notice by hand.
    let (status, notice) = a
        .call(
            Method::POST,
            "/api/v1/notices",
            Some(&a.admin),
            Some(json!({"title": "Storing Utrecht", "text": "We verhelpen een internetstoring in Utrecht.",
                "texts": {"en": "We are fixing an internet outage in Utrecht."},
                "services": ["internet"], "regions": ["Utrecht"], "state": "investigating"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{notice}");
    let id = notice["id"].as_i64().unwrap();
    let (_, progress) = a.call(Method::GET, &format!("/api/v1/notices/{id}/delivery"), Some(&a.agent), None).await;
    assert_eq!(progress["subscribers"].as_i64(), Some(2), "the two who asked about Utrecht: {progress}");
    while a.delivery.step().await.unwrap().claimed > 0 {}
    // A broadcast is the notice's title and text, in the language each asked in.
    assert_eq!(
        a.transcript(&utrecht_nl).await.last().unwrap(),
        "out: Storing Utrecht\n\nWe verhelpen een internetstoring in Utrecht."
    );
    assert_eq!(
        a.transcript(&utrecht_en).await.last().unwrap(),
        "out: Storing Utrecht\n\nWe are fixing an internet outage in Utrecht."
    );
    assert!(!a.transcript(&leiden).await.iter().any(|l| l.contains("Utrecht.")), "Leiden is outside the scope");

    // The outage turns out larger: the new scope reaches Leiden's customer too, and Utrecht's get the update once.
    let (status, v2) = a
        .call(
            Method::PATCH,
            &format!("/api/v1/notices/{id}"),
            Some(&a.admin),
            Some(json!({"regions": ["Utrecht", "Leiden"], "text": "We verhelpen een internetstoring in Utrecht en Leiden."})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v2}");
    while a.delivery.step().await.unwrap().claimed > 0 {}
    for c in [&utrecht_nl, &utrecht_en, &leiden] {
        let t = a.transcript(c).await;
        assert_eq!(t.iter().filter(|l| l.contains("Utrecht en Leiden")).count(), 1, "{t:?}");
    }
    assert!(!a.transcript(&amsterdam).await.iter().any(|l| l.contains("storing in Utrecht")));

    // After the grace period only the customer nobody's notice covers becomes a ticket.
    a.pipeline.tick(Utc::now() + chrono::TimeDelta::hours(2)).await.unwrap();
    let (_, tickets) = a.call(Method::GET, "/api/v1/tickets", Some(&a.agent), None).await;
    let subjects: Vec<&str> = tickets.as_array().unwrap().iter().map(|t| t["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, vec!["Storing in Amsterdam? Geen internet"], "{tickets}");
    // Its agent is not offered the Utrecht and Leiden notice: it does not cover Amsterdam.
    let ticket = tickets[0]["id"].as_i64().unwrap();
    let (_, view) = a.call(Method::GET, &format!("/api/v1/tickets/{ticket}"), Some(&a.agent), None).await;
    assert_eq!(view["active_notices"], json!([]), "{view}");
    // A notice for Amsterdam is.
    let (_, amsterdam_notice) = a
        .call(
            Method::POST,
            "/api/v1/notices",
            Some(&a.admin),
            Some(json!({"title": "Storing Amsterdam", "text": "We verhelpen een internetstoring in Amsterdam.",
                "services": ["internet"], "regions": ["Amsterdam"], "state": "investigating"})),
        )
        .await;
    let (_, view) = a.call(Method::GET, &format!("/api/v1/tickets/{ticket}"), Some(&a.agent), None).await;
    let offered: Vec<&Value> = view["active_notices"].as_array().unwrap().iter().map(|n| &n["id"]).collect();
    assert_eq!(offered, vec![&amsterdam_notice["id"]], "{view}");
}

#[tokio::test]
async fn a_notice_published_on_another_instance_reaches_the_waiting_customers_at_the_next_tick() {
    let a = api().await;
    let waiting = a.customer_says(None, "g1", "Storing in Groningen? Geen tv, zwart beeld").await;
    // Another instance stored the notice: this one, the decider, learns of it only from the store.
    let store = a.store.clone();
    let notice = store
        .create_notice(webcare_domain::NewNotice {
            title: "Storing Groningen".into(),
            text: "Tv-storing in Groningen; we werken eraan.".into(),
            texts: Default::default(),
            services: vec![webcare_domain::Service::Tv],
            ..crate::storage::new_notice(&["Groningen"], Utc::now())
        })
        .await
        .unwrap();
    while a.delivery.step().await.unwrap().claimed > 0 {}
    assert!(!a.transcript(&waiting).await.iter().any(|l| l.contains("werken eraan")));
    assert_eq!(a.notices.adopt_waiting(Utc::now()).await.unwrap(), 1);
    assert_eq!(a.notices.adopt_waiting(Utc::now()).await.unwrap(), 0, "once");
    while a.delivery.step().await.unwrap().claimed > 0 {}
    let t = a.transcript(&waiting).await;
    assert_eq!(t.last().unwrap(), "out: Storing Groningen\n\nTv-storing in Groningen; we werken eraan.", "{t:?}");
    let cluster = store.cluster(webcare_domain::ClusterId(1)).await.unwrap();
    assert_eq!(cluster.notice, Some(notice.id));
}

async fn concurrent_claims(a: Api) {
    a.customer_says(None, "c1", "Ik wil mijn abonnement opzeggen").await;
    let (_, list) = a.call(Method::GET, "/api/v1/tickets", Some(&a.agent), None).await;
    let id = list[0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/tickets/{id}/claim");
    let (r1, r2) = tokio::join!(
        a.call(Method::POST, &path, Some(&a.agent), None),
        a.call(Method::POST, &path, Some(&a.other), None)
    );
    let mut statuses = [r1.0, r2.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{r1:?} {r2:?}");
    let winner = if r1.0 == StatusCode::OK { "sam" } else { "kim" };
    let loser = if r1.0 == StatusCode::OK { &r2.1 } else { &r1.1 };
    assert!(loser["error"]["message"].as_str().unwrap().contains(winner), "{loser}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_claiming_at_once_on_sqlite() {
    concurrent_claims(api().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_claiming_at_once_on_postgresql() {
    if let Some(db) = TestDb::postgres().await {
        concurrent_claims(api_on(db).await).await;
    }
}

/// An agent gets a code for linking a staff chat account; it links once, to that agent, and is shown only once.
#[tokio::test]
async fn an_agent_gets_a_chat_link_code_that_links_once() {
    let a = api().await;
    let (status, body) = a.call(Method::POST, "/api/v1/me/chat-link", Some(&a.agent), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let code = body["code"].as_str().unwrap();
    assert_eq!(body["command"], format!("/link {code}"));
    let expires: chrono::DateTime<Utc> = body["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires - Utc::now();
    assert!(left > chrono::TimeDelta::minutes(9) && left <= chrono::TimeDelta::minutes(10), "{left}");
    let hash = webcare_app::staff::link_code_hash(code);
    let sam = a.store.agent_by_name("sam").await.unwrap().unwrap();
    let linked = a.store.redeem_chat_link_code(&hash, webcare_domain::Platform::Telegram, "42", Utc::now()).await;
    assert_eq!(linked.unwrap(), Some(sam.id));
    let again = a.store.redeem_chat_link_code(&hash, webcare_domain::Platform::Discord, "7", Utc::now()).await;
    assert_eq!(again.unwrap(), None, "once");
    let (_, other) = a.call(Method::POST, "/api/v1/me/chat-link", Some(&a.agent), None).await;
    assert_ne!(other["code"], body["code"], "a new code each time");
}

/// The reports as data: what the console charts, for a team's own reporting.
#[tokio::test]
async fn reports_count_messages_per_day_category_and_region_with_spikes_tickets_and_response_times() {
    let a = api().await;
    a.customer_says(None, "m1", "Mijn factuur is veel te hoog deze maand").await;
    a.customer_says(None, "m2", "Storing in Utrecht? Geen internet").await;
    a.customer_says(None, "m3", "Storing in Utrecht? Ook geen tv hier").await;
    let alert =
        crate::alerts::raise(a.store.as_ref(), webcare_domain::Service::Internet, Some("Utrecht"), Utc::now()).await;
    let ticket = a.store.tickets(&[]).await.unwrap().remove(0);
    let (status, _) = a.call(Method::POST, &format!("/api/v1/tickets/{}/claim", ticket.id), Some(&a.agent), None).await;
    assert_eq!(status, StatusCode::OK);
    let reply = json!({"text": "We zoeken het uit."});
    let path = format!("/api/v1/tickets/{}/replies", ticket.id);
    assert_eq!(a.call(Method::POST, &path, Some(&a.agent), Some(reply)).await.0, StatusCode::CREATED);

    let (status, report) = a.call(Method::GET, "/api/v1/reports?days=7", Some(&a.admin), None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["messages"], 3, "{report}");
    assert_eq!(report["cut"], false);
    let days = report["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    assert_eq!(report["timezone"], "Europe/Amsterdam", "the SLA's time zone");
    let today = Utc::now().with_timezone(&webcare_ticketing::Tz::Europe__Amsterdam).format("%Y-%m-%d").to_string();
    assert_eq!(days[6]["date"], today, "today last, in the team's days");
    assert_eq!(days[6]["categories"], json!({"billing": 1, "outage": 2}), "{report}");
    assert_eq!(days[0]["messages"], 0);
    assert_eq!(report["regions"][0], json!({"name": "Utrecht", "messages": 2}), "{report}");
    assert_eq!(report["spikes"][0]["alert"], alert.id.0);
    assert_eq!(report["spikes"][0]["customers"], 6);
    assert_eq!(report["tickets"]["open"], 1, "{report}");
    assert_eq!(report["first_response"]["answered"], 1, "{report}");
    assert_eq!(report["first_response"]["median_minutes"], 0);

    let (status, default) = a.call(Method::GET, "/api/v1/reports", Some(&a.admin), None).await;
    assert_eq!((status, default["days"].as_array().unwrap().len()), (StatusCode::OK, 30));
    for bad in ["0", "367", "week", "-1"] {
        let (status, err) = a.call(Method::GET, &format!("/api/v1/reports?days={bad}"), Some(&a.admin), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(err["error"]["message"].as_str().unwrap().starts_with("days: a whole number from 1 to 366"), "{err}");
    }
    let (status, _) = a.call(Method::GET, "/api/v1/reports", Some(&a.agent), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "reports are for admins, as in the console");
}

/// Under four eyes a PATCH with new words for a published notice waits for another admin, who approves it with
/// `{"draft": false}`; customers keep the approved words meanwhile.
#[tokio::test]
async fn under_four_eyes_new_words_wait_for_another_admin() {
    let mut a = api().await;
    let mut state = a.state.clone();
    state.notices = Arc::new(webcare_app::notices::Notices::detached(a.store.clone(), true));
    a.router = webcare_web::router(state);
    let second = token(a.store.as_ref(), "bas", Role::Admin).await;
    let body = json!({"title": "Storing Utrecht", "text": "We werken eraan.", "services": ["internet"], "regions": ["Utrecht"], "state": "investigating"});
    let (status, created) = a.call(Method::POST, "/api/v1/notices", Some(&a.admin), Some(body)).await;
    assert_eq!((status, created["draft"].as_bool()), (StatusCode::CREATED, Some(true)), "{created}");
    let path = format!("/api/v1/notices/{}", created["id"]);
    let publish = json!({"draft": false});
    assert_eq!(a.call(Method::PATCH, &path, Some(&second), Some(publish.clone())).await.0, StatusCode::OK);

    let (status, n) =
        a.call(Method::PATCH, &path, Some(&a.admin), Some(json!({"text": "Monteurs zijn onderweg."}))).await;
    assert_eq!(status, StatusCode::OK, "{n}");
    assert_eq!(
        (n["proposed"].as_bool(), n["text"].as_str(), n["version"].as_i64()),
        (Some(true), Some("We werken eraan."), Some(2))
    );
    let (status, own) = a.call(Method::PATCH, &path, Some(&a.admin), Some(publish.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{own}");
    let (status, n) = a.call(Method::PATCH, &path, Some(&second), Some(publish.clone())).await;
    assert_eq!(status, StatusCode::OK, "{n}");
    assert_eq!(
        (n["proposed"].as_bool(), n["text"].as_str(), n["version"].as_i64()),
        (Some(false), Some("Monteurs zijn onderweg."), Some(3))
    );
    let (status, none) = a.call(Method::PATCH, &path, Some(&second), Some(publish)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "nothing waits: {none}");
}

/// Why a message was answered as it was: the stored messages filtered by what was decided, with the decision's
/// reasons, and one message read again with the data loaded now.
#[tokio::test]
async fn admins_list_messages_by_what_was_decided_and_read_why() {
    let a = api().await;
    let notice = a.store.create_notice(crate::storage::new_notice(&["Utrecht"], Utc::now())).await.unwrap();
    a.customer_says(None, "m1", "Storing in Utrecht? Geen internet sinds vanochtend").await;
    a.customer_says(None, "m2", "Mijn factuur is veel te hoog deze maand").await;
    a.customer_says(None, "m3", "Geen tv in Zeist, al een uur").await;

    let a = &a;
    let list = |query: &'static str| async move {
        let (status, body) = a.call(Method::GET, &format!("/api/v1/messages{query}"), Some(&a.admin), None).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        body
    };
    let all = list("").await;
    let texts: Vec<&str> = all["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), 3, "{all}");
    assert!(texts[0].starts_with("Geen tv") && texts[2].starts_with("Storing"), "newest first: {texts:?}");
    assert_eq!(all["next_before"], Value::Null);

    let answered = list("?action=auto_answer").await;
    let messages = answered["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{answered}");
    let decision = &messages[0]["decision"];
    assert_eq!((decision["notice"].as_i64(), decision["intent"].as_str()), (Some(notice.id.0), Some("outage")));
    let reasons = decision["reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r["kind"] == "rule" && r["rule"] == "notice-match"), "{decision}");
    assert!(reasons.iter().any(|r| r["kind"] == "term"), "{decision}");
    assert_eq!(list("?intent=outage").await["messages"].as_array().unwrap().len(), 2);
    assert_eq!(list("?action=ticket&category=billing").await["messages"].as_array().unwrap().len(), 1);
    let by_notice = list("?notice=").await["messages"].as_array().unwrap().len();
    assert_eq!(by_notice, 3, "an empty field filters nothing");

    let first = list("?limit=2").await;
    assert_eq!(first["messages"].as_array().unwrap().len(), 2);
    let before = first["next_before"].as_i64().expect("a full page names the next");
    let (_, rest) =
        a.call(Method::GET, &format!("/api/v1/messages?limit=2&before={before}"), Some(&a.admin), None).await;
    assert_eq!(rest["messages"][0]["text"], texts[2]);

    let id = messages[0]["id"].as_i64().unwrap();
    let (status, one) = a.call(Method::GET, &format!("/api/v1/messages/{id}"), Some(&a.admin), None).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!((one["now"]["intent"].as_str(), one["now"]["region"].as_str()), (Some("outage"), Some("Utrecht")));
    assert!(one["now"]["reasons"].as_array().is_some_and(|r| !r.is_empty()), "{one}");

    for (bad, says) in [
        ("?action=answered", "unknown action `answered`"),
        ("?limit=0", "limit must be a whole number from 1 to 500"),
        ("?colour=red", "unknown filter `colour`"),
    ] {
        let (status, err) = a.call(Method::GET, &format!("/api/v1/messages{bad}"), Some(&a.admin), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(err["error"]["message"].as_str().unwrap().contains(says), "{bad}: {err}");
    }
    let (status, _) = a.call(Method::GET, "/api/v1/messages/999", Some(&a.admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = a.call(Method::GET, "/api/v1/messages", Some(&a.agent), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "messages of every customer are for admins");

    // Agents search tickets as the console's queue does.
    let (status, found) = a.call(Method::GET, "/api/v1/tickets?q=FACTUUR", Some(&a.agent), None).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert!(found[0]["subject"].as_str().unwrap().contains("factuur"), "{found}");
    let long = "x".repeat(201);
    let (status, _) = a.call(Method::GET, &format!("/api/v1/tickets?q={long}"), Some(&a.agent), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // After a lexicon changed: every instance reads its data files again.
    let (status, body) = a.call(Method::POST, "/api/v1/reload", Some(&a.admin), None).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"reload": "bridge-data", "generation": 1})));
    assert_eq!(a.call(Method::POST, "/api/v1/reload", Some(&a.agent), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(a.store.reload_generation("bridge-data").await.unwrap(), 1);
}

/// Each of `cases` (a change, the status it gets, words of its error message) is refused as it says.
async fn refused_changes<const N: usize>(a: &Api, cases: [(Value, u16, &str); N]) {
    for (body, status, says) in cases {
        let (got, err) = a.call(Method::POST, "/api/v1/lexicon/changes", Some(&a.admin), Some(body.clone())).await;
        assert_eq!(got.as_u16(), status, "{body}: {err}");
        assert!(err["error"]["message"].as_str().unwrap().contains(says), "{body}: {err}");
    }
}

/// Admins tune the lexicons through the API: the groups as the bridge counts them, a change checked against them,
/// kept, and announced to every instance (a reload request), and taken back.
#[tokio::test]
async fn admins_change_the_lexicons_and_every_instance_is_asked_to_apply_it() {
    let a = api().await;
    let (status, lexicon) = a.call(Method::GET, "/api/v1/lexicon", Some(&a.admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let outage = lexicon["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["language"] == "nl" && g["name"] == "outage")
        .expect("the Dutch outage group")
        .clone();
    assert_eq!((outage["intent"].as_str(), outage["weight"].as_f64()), (Some("outage"), Some(2.0)));
    assert!(outage["terms"].as_array().unwrap().iter().any(|t| t == "ligt eruit"), "{outage}");
    assert_eq!(lexicon["changes"], json!([]));

    let add = json!({"language": "nl", "group": "outage", "term": "glasvezel kapot", "edit": "add"});
    let (status, kept) = a.call(Method::POST, "/api/v1/lexicon/changes", Some(&a.admin), Some(add.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{kept}");
    assert_eq!((kept["term"].as_str(), kept["edit"].as_str()), (Some("glasvezel kapot"), Some("add")));
    assert_eq!(a.store.reload_generation("bridge-data").await.unwrap(), 1, "every instance is asked to apply it");
    refused_changes(
        &a,
        [
            (
                json!({"language": "nl", "group": "outage", "term": "ligt eruit", "edit": "add"}),
                409,
                "counts for nl outage already",
            ),
            (
                json!({"language": "nl", "group": "outage", "term": "nooit gehoord", "edit": "remove"}),
                409,
                "is not a term of",
            ),
            (json!({"language": "nl", "group": "gas", "term": "lek", "edit": "add"}), 422, "has no group `gas`"),
            (json!({"language": "nl", "group": "outage", "term": " * ", "edit": "add"}), 422, "letters or digits"),
            (json!({"language": "nl", "group": "outage", "term": "x", "edit": "maybe"}), 422, "maybe"),
        ],
    )
    .await;
    let (status, _) = a.call(Method::POST, "/api/v1/lexicon/changes", Some(&a.agent), Some(add)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "agents do not change the lexicons");
    assert_eq!(a.store.reload_generation("bridge-data").await.unwrap(), 1, "refused changes ask nothing");
    let (_, lexicon) = a.call(Method::GET, "/api/v1/lexicon", Some(&a.admin), None).await;
    assert_eq!(lexicon["changes"].as_array().unwrap().len(), 1, "{lexicon}");

    let path = format!("/api/v1/lexicon/changes/{}", kept["id"]);
    assert_eq!(a.call(Method::DELETE, &path, Some(&a.admin), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(a.call(Method::DELETE, &path, Some(&a.admin), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(a.store.reload_generation("bridge-data").await.unwrap(), 2);
    assert!(a.store.lexicon_changes().await.unwrap().is_empty());
}

/// The regions are tuned as the lexicons are: a place's other names are the terms of its `regions` group; a name is
/// one place's only, and a changed instance reads a message naming it as that place's.
#[tokio::test]
async fn admins_give_a_place_another_name_and_messages_naming_it_are_that_places() {
    let a = api().await;
    let (_, lexicon) = a.call(Method::GET, "/api/v1/lexicon", Some(&a.admin), None).await;
    let utrecht = lexicon["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["language"] == "regions" && g["name"] == "Utrecht")
        .expect("the place Utrecht")
        .clone();
    assert_eq!(utrecht["category"], "Utrecht (provincie)", "{utrecht}");
    assert!(utrecht["terms"].as_array().unwrap().iter().any(|t| t == "utreg"), "{utrecht}");

    let add = json!({"language": "regions", "group": "Utrecht", "term": "Rijnsweerd", "edit": "add"});
    let (status, kept) = a.call(Method::POST, "/api/v1/lexicon/changes", Some(&a.admin), Some(add)).await;
    assert_eq!(status, StatusCode::CREATED, "{kept}");
    refused_changes(
        &a,
        [
            (
                json!({"language": "regions", "group": "Amsterdam", "term": "Utreg", "edit": "add"}),
                409,
                "“Utreg” counts for regions Utrecht already",
            ),
            (
                json!({"language": "regions", "group": "Amsterdam", "term": "utrecht", "edit": "add"}),
                409,
                "counts for regions Utrecht already",
            ),
            (json!({"language": "regions", "group": "Utrecht", "term": "kanaal*", "edit": "add"}), 422, "written out"),
            (json!({"language": "regions", "group": "Atlantis", "term": "x", "edit": "add"}), 422, "has no group"),
        ],
    )
    .await;
    // As every instance applies it on the reload request: the files with the admins' changes over them.
    let data = webcare_bridge::ClassifierData::embedded().unwrap();
    let changes = a.store.lexicon_changes().await.unwrap();
    let classifier = webcare_app::lexicon::classifier(&data, std::path::Path::new("<embedded>"), &changes).unwrap();
    let read = classifier.classify("Storing in Rijnsweerd? Geen internet sinds vanochtend", None);
    assert_eq!(read.region.map(|r| r.name).as_deref(), Some("Utrecht"));
}
