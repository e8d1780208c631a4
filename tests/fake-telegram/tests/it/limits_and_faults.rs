//! Telegram's rate limits (1 message per second per chat, 20 per minute per group, 30 per second overall)
//! enforced with 429 and `retry_after`, the counters that show it, and injected faults: 429, 5xx, other errors,
//! slow answers and dropped connections. Also clean shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use webcare_fake_telegram::{BotMembership, Config, FakeTelegram, Fault, Limit, NewUser, RateLimits};

use crate::common::{call, client, ok, unlimited};

#[tokio::test]
async fn a_second_message_to_a_chat_within_a_second_gets_429_with_retry_after() {
    let tg = FakeTelegram::start().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let bob = tg.create_user(NewUser::named("Bob"));
    let (a, b) = (tg.private_chat(alice), tg.private_chat(bob));
    ok(&tg, "sendMessage", json!({"chat_id": a.0, "text": "1"})).await;
    let (status, answer) = call(&tg, "sendMessage", json!({"chat_id": a.0, "text": "2"})).await;
    assert_eq!(status, 429);
    assert_eq!(
        answer,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}})
    );
    // Another chat has its own budget.
    ok(&tg, "sendMessage", json!({"chat_id": b.0, "text": "1"})).await;
    let stats = tg.stats();
    assert_eq!((stats.sends, stats.rate_limited), (2, 1));
    assert_eq!(stats.deliveries_per_chat[&a.0], 1);
    assert_eq!(stats.calls["sendMessage"], 3);
    assert!(tg.duplicate_texts().is_empty());
}

#[tokio::test]
async fn a_group_takes_twenty_messages_a_minute() {
    // Per-chat limit lifted so only the group window counts; 120x faster: a minute lasts 500 ms.
    let rate_limits =
        RateLimits { per_chat: Limit { max: 1000, per: Duration::from_secs(1) }, ..RateLimits::default() };
    let tg = FakeTelegram::start_with(Config { rate_limits, time_scale: 120.0, ..Config::default() }).await;
    let group = tg.create_supergroup("Klanten", BotMembership::Member);
    let started = tokio::time::Instant::now();
    let mut accepted = 0;
    let mut refused = None;
    for i in 0..21 {
        let (status, answer) = call(&tg, "sendMessage", json!({"chat_id": group.0, "text": format!("m{i}")})).await;
        match status {
            200 => accepted += 1,
            429 => {
                refused = Some(answer);
                break;
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    // If the machine is so slow that the window (500 ms) passed during the burst, no 429 is owed.
    if started.elapsed() < Duration::from_millis(500) {
        let refused = refused.expect("the 21st message within a minute is refused");
        assert_eq!(accepted, 20);
        assert_eq!(refused["parameters"]["retry_after"], 1);
        assert_eq!(tg.stats().rate_limited, 1);
        // Once the (scaled) minute has passed the group takes messages again.
        tokio::time::sleep_until(started + Duration::from_millis(510)).await;
        ok(&tg, "sendMessage", json!({"chat_id": group.0, "text": "later"})).await;
    }
}

#[tokio::test]
async fn thirty_messages_a_second_overall() {
    let tg = FakeTelegram::start_with(Config { time_scale: 0.1, ..Config::default() }).await;
    // time_scale 0.1 stretches a second to ten, so the burst below surely fits in one window.
    let users: Vec<_> = (0..31).map(|i| tg.create_user(NewUser::named(&format!("U{i}")))).collect();
    let mut statuses = Vec::new();
    for user in &users {
        let chat = tg.private_chat(*user);
        statuses.push(call(&tg, "sendMessage", json!({"chat_id": chat.0, "text": "notice"})).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 30);
    assert_eq!(statuses[30], 429);
    let stats = tg.stats();
    assert_eq!(stats.deliveries_per_chat.len(), 30);
    assert!(stats.deliveries_per_chat.values().all(|n| *n == 1));
}

#[tokio::test]
async fn injected_429_5xx_and_errors_answer_the_next_calls_then_stop() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    tg.inject("sendmessage", 1, Fault::TooManyRequests { retry_after: 7 });
    tg.inject("sendMessage", 1, Fault::ServerError { status: 502 });
    tg.inject("sendMessage", 1, Fault::Error { code: 403, description: "Forbidden: user is deactivated".into() });
    let body = json!({"chat_id": chat.0, "text": "hi"});
    let (s1, a1) = call(&tg, "sendMessage", body.clone()).await;
    assert_eq!(
        (s1, a1["parameters"]["retry_after"].as_u64(), a1["description"].as_str()),
        (429, Some(7), Some("Too Many Requests: retry after 7"))
    );
    let (s2, a2) = call(&tg, "sendMessage", body.clone()).await;
    assert_eq!((s2, a2), (502, json!({"ok": false, "error_code": 502, "description": "Bad Gateway"})));
    let (s3, a3) = call(&tg, "sendMessage", body.clone()).await;
    assert_eq!((s3, a3["description"].as_str()), (403, Some("Forbidden: user is deactivated")));
    ok(&tg, "sendMessage", body).await;
    let stats = tg.stats();
    assert_eq!((stats.faults, stats.sends, stats.calls["sendMessage"]), (3, 1, 4));
    // Faults hit only the method they were injected for.
    tg.inject("getMe", 1, Fault::ServerError { status: 500 });
    ok(&tg, "getChat", json!({"chat_id": chat.0})).await;
    assert_eq!(call(&tg, "getMe", json!({})).await.0, 500);
}

#[tokio::test]
async fn a_slow_answer_arrives_after_the_delay() {
    let tg = unlimited().await;
    tg.inject("getMe", 1, Fault::Delay(Duration::from_millis(200)));
    let started = Instant::now();
    ok(&tg, "getMe", json!({})).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn a_dropped_connection_gives_the_client_a_network_error_and_no_message() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    tg.inject("sendMessage", 1, Fault::DropConnection);
    let result =
        client().post(tg.method_url("sendMessage")).json(&json!({"chat_id": chat.0, "text": "x"})).send().await;
    let error = result.expect_err("the connection is closed without an answer");
    assert!(!error.is_status(), "{error}");
    assert_eq!(tg.stats().sends, 0);
    ok(&tg, "sendMessage", json!({"chat_id": chat.0, "text": "x"})).await;
}

#[tokio::test]
async fn shutdown_ends_waiting_polls_and_frees_the_port() {
    let tg = Arc::new(FakeTelegram::start().await);
    let url = tg.method_url("getUpdates");
    let poll = tokio::spawn(async move { client().post(url).json(&json!({"timeout": 60})).send().await });
    assert!(tg.wait_until(Duration::from_secs(5), || tg.polls_in_progress() == 1).await);
    let addr = tg.addr();
    let tg = Arc::try_unwrap(tg).expect("only handle");
    tg.shutdown().await;
    let outcome = tokio::time::timeout(Duration::from_secs(5), poll).await.expect("the poll ends at shutdown").unwrap();
    assert!(outcome.is_err(), "the waiting poll's connection is closed");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "nothing listens any more");
}
