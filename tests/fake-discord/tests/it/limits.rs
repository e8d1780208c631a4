//! Discord's rate limits: `X-RateLimit-*` headers on every answer, 5 messages per 5 s per channel, 50 requests
//! per second per bot, 429 with `retry_after`, `Retry-After` and `X-RateLimit-Scope`, windows that reset (scaled),
//! and the invalid-request limit, with the counters that show it.

use std::time::Duration;

use serde_json::json;
use webcare_fake_discord::{Config, FakeDiscord, Limit, NewGuild, RateLimits, routes};

use crate::common::{call, send};

#[tokio::test]
async fn every_answer_carries_rate_limit_headers() {
    let dc = FakeDiscord::start().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let a = send(&dc, support, json!({"content": "1"})).await;
    assert_eq!(a.header("x-ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(a.header("x-ratelimit-remaining").as_deref(), Some("4"));
    let after: f64 = a.header("x-ratelimit-reset-after").unwrap().parse().unwrap();
    assert!(after > 4.0 && after <= 5.0, "{after}");
    let reset: f64 = a.header("x-ratelimit-reset").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((reset - now - after).abs() < 2.0);
    let bucket = a.header("x-ratelimit-bucket").unwrap();
    assert_eq!(bucket.len(), 32);
    // The bucket id is the route's, whatever the channel; errors carry headers too.
    let other = dc.create_text_channel(guild, "other");
    let b = send(&dc, other, json!({"content": ""})).await;
    assert_eq!((b.status, b.header("x-ratelimit-bucket")), (400, Some(bucket.clone())));
    let get = call(&dc, "GET", "/users/@me", None).await;
    assert!(get.header("x-ratelimit-bucket").is_some_and(|b| b != bucket));
    assert!(a.header("x-ratelimit-scope").is_none(), "the scope is sent on 429s only");
}

#[tokio::test]
async fn a_sixth_message_in_a_channel_within_five_seconds_gets_429() {
    // time_scale 0.1 stretches 5 s to 50 s, so the burst below surely fits in one window.
    let dc = FakeDiscord::start_with(Config { time_scale: 0.1, ..Config::default() }).await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let (a, b) = (dc.create_text_channel(guild, "a"), dc.create_text_channel(guild, "b"));
    for i in 0..5 {
        assert_eq!(send(&dc, a, json!({"content": format!("m{i}")})).await.status, 200);
    }
    let refused = send(&dc, a, json!({"content": "m5"})).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["message"], "You are being rate limited.");
    assert_eq!(refused.body["global"], false);
    let retry = refused.body["retry_after"].as_f64().unwrap();
    assert!(retry > 40.0 && retry <= 50.0, "{retry}");
    assert_eq!(refused.header("x-ratelimit-scope").as_deref(), Some("user"));
    assert_eq!(refused.header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(refused.header("retry-after"), Some((retry.ceil() as u64).to_string()));
    assert!(refused.header("x-ratelimit-global").is_none());
    // Another channel has its own bucket.
    assert_eq!(send(&dc, b, json!({"content": "m0"})).await.status, 200);
    let stats = dc.stats();
    assert_eq!((stats.rate_limited, stats.global_rate_limited, stats.invalid_requests), (1, 0, 1));
    assert_eq!(stats.deliveries_per_channel[&a.0], 5);
    assert_eq!(stats.requests_to(routes::CREATE_MESSAGE), 7);
    assert_eq!(dc.visible_bot_messages(a).len(), 5);
}

#[tokio::test]
async fn the_bucket_resets_when_its_scaled_window_ends() {
    let limits = RateLimits { create_message: Limit::new(2, Duration::from_secs(5)), ..RateLimits::default() };
    // 5 s of Discord time last 100 ms here.
    let dc = FakeDiscord::start_with(Config { rate_limits: limits, time_scale: 50.0, ..Config::default() }).await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let c = dc.create_text_channel(guild, "support");
    let started = tokio::time::Instant::now();
    let first = send(&dc, c, json!({"content": "1"})).await;
    let reset_after: f64 = first.header("x-ratelimit-reset-after").unwrap().parse().unwrap();
    assert!(reset_after <= 0.1, "{reset_after}");
    send(&dc, c, json!({"content": "2"})).await;
    let third = send(&dc, c, json!({"content": "3"})).await;
    if started.elapsed() < Duration::from_millis(100) {
        assert_eq!(third.status, 429);
        let retry = third.body["retry_after"].as_f64().unwrap();
        tokio::time::sleep(Duration::from_secs_f64(retry)).await;
        let again = send(&dc, c, json!({"content": "3"})).await;
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(again.header("x-ratelimit-remaining").as_deref(), Some("1"));
    }
}

#[tokio::test]
async fn fifty_requests_a_second_per_bot() {
    let dc = FakeDiscord::start_with(Config { time_scale: 0.1, ..Config::default() }).await;
    for i in 0..50 {
        assert_eq!(call(&dc, "GET", "/users/@me", None).await.status, 200, "request {i}");
    }
    let refused = call(&dc, "GET", "/users/@me", None).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["global"], true);
    assert_eq!(refused.header("x-ratelimit-global").as_deref(), Some("true"));
    assert_eq!(refused.header("x-ratelimit-scope").as_deref(), Some("global"));
    // GET /gateway is not authenticated and does not count.
    assert_eq!(call(&dc, "GET", "/gateway", None).await.status, 200);
    assert_eq!(dc.stats().global_rate_limited, 1);
}

#[tokio::test]
async fn too_many_invalid_requests_get_the_bot_banned() {
    let limits = RateLimits { invalid_requests: Limit::new(3, Duration::from_secs(600)), ..RateLimits::default() };
    let dc = FakeDiscord::start_with(Config { rate_limits: limits, ..Config::default() }).await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let c = dc.create_text_channel(guild, "support");
    let alice = dc.create_user(webcare_fake_discord::NewUser::named("alice"));
    let p = dc.post_text(alice, c, "x");
    for _ in 0..3 {
        // 403: the bot has no Manage Messages.
        assert_eq!(call(&dc, "DELETE", &format!("/channels/{c}/messages/{}", p.message_id), None).await.status, 403);
    }
    let banned = call(&dc, "GET", "/users/@me", None).await;
    assert_eq!((banned.status, banned.header("x-ratelimit-scope").as_deref()), (429, Some("global")));
    let stats = dc.stats();
    assert!(stats.banned);
    assert_eq!(stats.invalid_requests_peak, 4);
}
