//! getUpdates long polling (offset confirmation, negative offsets, limit, timeout, allowed_updates, concurrent
//! polls) and webhook delivery with the secret header, retries, and the 409 Conflict it causes for getUpdates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use webcare_fake_telegram::{FakeTelegram, NewUser};

use crate::common::{call, ok, scaled};

#[tokio::test]
async fn an_update_sent_while_a_long_poll_waits_is_returned_at_once() {
    let tg = Arc::new(FakeTelegram::start().await);
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    let poll = {
        let tg = tg.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let updates = ok(&tg, "getUpdates", json!({"timeout": 30})).await;
            (updates, started.elapsed())
        })
    };
    assert!(tg.wait_until(Duration::from_secs(5), || tg.polls_in_progress() == 1).await);
    let posted = tg.send_text(alice, chat, "hallo");
    let (updates, waited) = poll.await.unwrap();
    assert!(waited < Duration::from_secs(10), "the poll waited {waited:?}");
    assert_eq!(updates.as_array().unwrap().len(), 1);
    assert_eq!(updates[0]["update_id"].as_i64(), posted.update_id);
    assert_eq!(updates[0]["message"]["text"], "hallo");
}

#[tokio::test]
async fn a_long_poll_without_updates_answers_an_empty_list_after_its_timeout() {
    // 20x faster: a timeout of 2 s lasts 100 ms.
    let tg = scaled(20.0).await;
    let started = Instant::now();
    let updates = ok(&tg, "getUpdates", json!({"timeout": 2})).await;
    let waited = started.elapsed();
    assert_eq!(updates, json!([]));
    assert!(waited >= Duration::from_millis(100), "answered after {waited:?}");
    assert!(waited < Duration::from_secs(2), "answered after {waited:?}");
}

#[tokio::test]
async fn offset_confirms_updates_and_a_negative_offset_keeps_the_last_ones() {
    let tg = FakeTelegram::start().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    let ids: Vec<i64> = (0..4).map(|i| tg.send_text(alice, chat, &format!("m{i}")).update_id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));

    // Without an offset nothing is confirmed: the same updates come again.
    assert_eq!(ok(&tg, "getUpdates", json!({})).await.as_array().unwrap().len(), 4);
    let limited = ok(&tg, "getUpdates", json!({"limit": 2})).await;
    assert_eq!(limited.as_array().unwrap().len(), 2);
    assert_eq!(limited[0]["update_id"].as_i64(), Some(ids[0]));

    // An offset above the first id confirms (drops) it.
    let rest = ok(&tg, "getUpdates", json!({"offset": ids[0] + 1})).await;
    assert_eq!(rest.as_array().unwrap().len(), 3);
    assert_eq!(tg.pending_updates(), 3);

    // offset = -1: only the newest update is kept, the others are forgotten.
    let last = ok(&tg, "getUpdates", json!({"offset": -1})).await;
    assert_eq!(last.as_array().unwrap().len(), 1);
    assert_eq!(last[0]["update_id"].as_i64(), Some(ids[3]));

    assert_eq!(ok(&tg, "getUpdates", json!({"offset": ids[3] + 1})).await, json!([]));
    assert_eq!(tg.pending_updates(), 0);
}

#[tokio::test]
async fn parameters_may_come_from_the_query_string_and_form_bodies() {
    let tg = FakeTelegram::start().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    let first = tg.send_text(alice, chat, "a").update_id.unwrap();
    tg.send_text(alice, chat, "b");
    let client = crate::common::client();
    let by_query: Value = client
        .get(format!("{}?offset={}", tg.method_url("getUpdates"), first + 1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_query["result"].as_array().unwrap().len(), 1);
    let by_form: Value = client
        .post(tg.method_url("getUpdates"))
        .form(&[("limit", "1"), ("timeout", "0")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_form["result"][0]["message"]["text"], "b");
}

#[tokio::test]
async fn allowed_updates_filters_updates_created_afterwards() {
    let tg = FakeTelegram::start().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    // Form encoding: the list is a JSON-serialized string.
    let answer: Value = crate::common::client()
        .post(tg.method_url("getUpdates"))
        .form(&[("allowed_updates", "[\"callback_query\"]")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["ok"], true);
    assert_eq!(tg.send_text(alice, chat, "not wanted").update_id, None);
    ok(&tg, "getUpdates", json!({"allowed_updates": []})).await;
    assert!(tg.send_text(alice, chat, "wanted again").update_id.is_some());
}

#[tokio::test]
async fn a_newer_poll_terminates_the_waiting_one_with_409() {
    let tg = Arc::new(FakeTelegram::start().await);
    let first = {
        let tg = tg.clone();
        tokio::spawn(async move { call(&tg, "getUpdates", json!({"timeout": 30})).await })
    };
    assert!(tg.wait_until(Duration::from_secs(5), || tg.polls_in_progress() == 1).await);
    let second = ok(&tg, "getUpdates", json!({"timeout": 0})).await;
    assert_eq!(second, json!([]));
    let (status, answer) = first.await.unwrap();
    assert_eq!(status, 409);
    assert_eq!(
        answer["description"],
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
    );
    assert_eq!(tg.polls_in_progress(), 0);
}

/// A webhook receiver on 127.0.0.1 that records what it gets and answers the statuses it is told to.
struct Receiver {
    url: String,
    got: mpsc::UnboundedReceiver<(HeaderMap, Value)>,
    task: tokio::task::JoinHandle<()>,
}

async fn receiver(mut statuses: Vec<StatusCode>) -> Receiver {
    let (tx, got) = mpsc::unbounded_channel();
    statuses.reverse();
    let statuses = Arc::new(Mutex::new(statuses));
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let tx = tx.clone();
            let statuses = statuses.clone();
            async move {
                let status = statuses.lock().await.pop().unwrap_or(StatusCode::OK);
                let _ = tx.send((headers, body.0));
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { url, got, task }
}

#[tokio::test]
async fn webhook_delivers_updates_with_the_secret_header_and_blocks_get_updates() {
    let tg = FakeTelegram::start().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    let mut hook = receiver(vec![]).await;

    let set = crate::common::client()
        .post(tg.method_url("setWebhook"))
        .json(&json!({"url": hook.url, "secret_token": "s3cret_-X"}))
        .send()
        .await
        .unwrap();
    let set: Value = set.json().await.unwrap();
    assert_eq!(set, json!({"ok": true, "result": true, "description": "Webhook was set"}));

    let posted = tg.send_text(alice, chat, "via webhook");
    let (headers, body) = tokio::time::timeout(Duration::from_secs(10), hook.got.recv()).await.unwrap().unwrap();
    assert_eq!(headers["x-telegram-bot-api-secret-token"], "s3cret_-X");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["update_id"].as_i64(), posted.update_id);
    assert_eq!(body["message"]["text"], "via webhook");
    assert!(tg.wait_until(Duration::from_secs(5), || tg.pending_updates() == 0).await);

    let (status, answer) = call(&tg, "getUpdates", json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(
        answer["description"],
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
    );
    let info = ok(&tg, "getWebhookInfo", json!({})).await;
    assert_eq!(info["url"], hook.url);
    assert_eq!(info["pending_update_count"], 0);

    let deleted: Value = crate::common::client()
        .post(tg.method_url("deleteWebhook"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["description"], "Webhook was deleted");
    assert_eq!(ok(&tg, "getUpdates", json!({})).await, json!([]));
    assert_eq!(ok(&tg, "getWebhookInfo", json!({})).await["url"], "");
    hook.task.abort();
}

#[tokio::test]
async fn a_failing_webhook_is_retried_in_order_and_the_error_is_reported() {
    let tg = scaled(50.0).await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    let mut hook = receiver(vec![StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY]).await;
    ok(&tg, "setWebhook", json!({"url": hook.url})).await;
    let first = tg.send_text(alice, chat, "one").update_id;
    let second = tg.send_text(alice, chat, "two").update_id;

    let mut seen = Vec::new();
    for _ in 0..4 {
        let (_, body) = tokio::time::timeout(Duration::from_secs(10), hook.got.recv()).await.unwrap().unwrap();
        seen.push(body["update_id"].as_i64());
    }
    // Two failed attempts of the first update, then both in order.
    assert_eq!(seen, vec![first, first, first, second]);
    assert!(tg.wait_until(Duration::from_secs(5), || tg.pending_updates() == 0).await);
    let stats = tg.stats();
    assert_eq!((stats.webhook_failures, stats.webhook_deliveries), (2, 2));
    let info = ok(&tg, "getWebhookInfo", json!({})).await;
    assert_eq!(info["last_error_message"], "Wrong response from the webhook: 502 Bad Gateway");
    assert!(info["last_error_date"].as_i64().unwrap() > 0);
    hook.task.abort();
}

#[tokio::test]
async fn set_webhook_validates_and_drops_pending_updates_on_request() {
    let tg = FakeTelegram::start().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    let (status, answer) = call(&tg, "setWebhook", json!({"url": "http://example.org/hook"})).await;
    assert_eq!(
        (status, answer["description"].as_str()),
        (400, Some("Bad Request: bad webhook: An HTTPS URL must be provided for webhook"))
    );
    let (status, answer) =
        call(&tg, "setWebhook", json!({"url": "https://example.org/hook", "secret_token": "no spaces"})).await;
    assert_eq!(
        (status, answer["description"].as_str()),
        (400, Some("Bad Request: secret token contains unallowed characters"))
    );

    tg.send_text(alice, chat, "old");
    // A receiver that is never reached (port 9 on loopback); the queue is dropped by deleteWebhook.
    ok(&tg, "setWebhook", json!({"url": "https://127.0.0.1:9/hook", "drop_pending_updates": true})).await;
    assert_eq!(tg.pending_updates(), 0);
    tg.send_text(alice, chat, "queued");
    let info = ok(&tg, "getWebhookInfo", json!({})).await;
    assert_eq!(info["url"], "https://127.0.0.1:9/hook");
    assert_eq!(info["max_connections"], 40);
    ok(&tg, "deleteWebhook", json!({"drop_pending_updates": true})).await;
    assert_eq!(ok(&tg, "getUpdates", json!({})).await, json!([]));
}
