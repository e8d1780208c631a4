//! Helpers shared by the tests: calling a method with a JSON body and reading status and body back.

use std::time::Duration;

use serde_json::Value;
use webcare_fake_telegram::{Config, FakeTelegram, RateLimits};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

/// POSTs `body` as JSON to `method`; returns the HTTP status and the JSON answer.
pub async fn call(tg: &FakeTelegram, method: &str, body: Value) -> (u16, Value) {
    let resp = client().post(tg.method_url(method)).json(&body).send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON answer"))
}

/// Calls a method that must succeed and returns its `result`.
pub async fn ok(tg: &FakeTelegram, method: &str, body: Value) -> Value {
    let (status, answer) = call(tg, method, body).await;
    assert_eq!(status, 200, "{method} answered {answer}");
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"].clone()
}

/// A fake without rate limits, for tests about something else that send in bursts.
pub async fn unlimited() -> FakeTelegram {
    FakeTelegram::start_with(Config { rate_limits: RateLimits::off(), ..Config::default() }).await
}

/// A fake whose durations run `scale` times faster than Telegram's.
pub async fn scaled(scale: f64) -> FakeTelegram {
    FakeTelegram::start_with(Config { time_scale: scale, ..Config::default() }).await
}
