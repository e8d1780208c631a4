//! The REST calls webcare's delivery makes, and Discord's answers in terms the delivery engine acts on.
//!
//! Requests are built with serenity's routes and sent on the same `reqwest` client serenity's `Http` uses (with the
//! same `discord.api_url` proxy), but the answer is read here rather than by serenity: with serenity's rate limiter
//! off, its error type keeps neither `Retry-After` nor `X-RateLimit-Scope`, and those are exactly what webcare needs
//! to hold back the right scope for the right time. A successful answer's `X-RateLimit-Remaining: 0` is remembered
//! per bucket, so the next request to that bucket waits without spending one of Discord's invalid requests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::Value;
use serenity::http::{LightMethod, Request, Route};
use webcare_domain::{LimitScope, SendError};

/// JSON error codes of Discord that webcare acts on.
pub mod codes {
    /// Unknown Message: already deleted.
    pub const UNKNOWN_MESSAGE: i64 = 10008;
    /// Cannot send messages to this user: DMs closed, no shared server, or the bot is blocked.
    pub const CANNOT_MESSAGE_USER: i64 = 50007;
    /// Missing Permissions.
    pub const MISSING_PERMISSIONS: i64 = 50013;
}

/// What went wrong with one REST call.
#[derive(Debug, Clone, PartialEq)]
pub enum RestError {
    /// 429, or a bucket known to be empty until `retry_after` from now.
    RateLimited {
        retry_after: Duration,
        /// `X-RateLimit-Global: true` or `"global": true` in the body.
        global: bool,
        /// `X-RateLimit-Bucket`, when Discord named one.
        bucket: Option<String>,
    },
    /// Any other answer that is not a success, with Discord's JSON error code (0 when it gave none).
    Api { status: u16, code: i64, message: String },
    /// No answer: the connection failed or timed out.
    Network(String),
}

impl RestError {
    pub fn code(&self) -> Option<i64> {
        match self {
            RestError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The delivery engine's view. `chat` is the channel the route is limited per (its top-level resource), so a
    /// per-route 429 holds exactly that channel back; routes with no channel hold back their bucket.
    pub fn into_send_error(self, chat: Option<&str>, route: &str) -> SendError {
        match self {
            RestError::RateLimited { retry_after, global: true, .. } => {
                SendError::RateLimited { retry_after, scope: LimitScope::Global }
            }
            RestError::RateLimited { retry_after, bucket, .. } => {
                let scope = match chat {
                    Some(c) => LimitScope::Chat(c.to_owned()),
                    None => LimitScope::Bucket(bucket.unwrap_or_else(|| route.to_owned())),
                };
                SendError::RateLimited { retry_after, scope }
            }
            RestError::Api { code: codes::CANNOT_MESSAGE_USER, message, .. } => {
                SendError::Unreachable(format!("Discord {}: {message}", codes::CANNOT_MESSAGE_USER))
            }
            RestError::Api { status, code, message } if status >= 500 => {
                SendError::Transient(format!("Discord answered {status} ({code}: {message})"))
            }
            RestError::Api { status, code, message } => {
                SendError::Rejected(format!("Discord answered {status} ({code}: {message})"))
            }
            RestError::Network(e) => SendError::Transient(e),
        }
    }
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestError::RateLimited { retry_after, global, .. } => {
                write!(f, "rate limited for {retry_after:?}{}", if *global { " (global)" } else { "" })
            }
            RestError::Api { status, code, message } => write!(f, "{status} ({code}: {message})"),
            RestError::Network(e) => write!(f, "network: {e}"),
        }
    }
}

/// REST on serenity's routes and client, with webcare reading the answers.
pub struct Rest {
    client: reqwest::Client,
    /// `Bot <token>`, as serenity's `Http` holds it. Never logged.
    token: String,
    proxy: Option<String>,
    /// Buckets that said `X-RateLimit-Remaining: 0`, until when they are empty. A std Mutex: nothing async happens
    /// while it is held.
    empty: Mutex<HashMap<String, Instant>>,
}

impl Rest {
    pub fn new(client: reqwest::Client, token: String, proxy: Option<String>) -> Rest {
        Rest { client, token, proxy, empty: Mutex::new(HashMap::new()) }
    }

    /// Sends one request; `bucket` names the route and its top-level resource (`messages:<channel>`).
    pub async fn call(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<&Value>,
        bucket: &str,
    ) -> Result<Value, RestError> {
        if let Some(wait) = self.empty_for(bucket) {
            return Err(RestError::RateLimited { retry_after: wait, global: false, bucket: None });
        }
        let mut request = Request::new(route, method);
        if let Some(b) = body {
            request = request.body(Some(serde_json::to_vec(b).expect("a JSON value serialises")));
        }
        let built = request
            .build(&self.client, &self.token, self.proxy.as_deref())
            .map_err(|e| RestError::Network(format!("could not build the request: {e}")))?;
        let response = built.send().await.map_err(|e| RestError::Network(without_url(e)))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| RestError::Network(without_url(e)))?;
        let json: Value =
            if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
        if (200..300).contains(&status) {
            self.remember(bucket, &headers);
            return Ok(json);
        }
        if status == 429 {
            let global = header(&headers, "x-ratelimit-global").is_some_and(|v| v == "true")
                || json["global"].as_bool() == Some(true);
            let retry_after = json["retry_after"]
                .as_f64()
                .or_else(|| header(&headers, "x-ratelimit-reset-after").and_then(|v| v.parse().ok()))
                .or_else(|| header(&headers, "retry-after").and_then(|v| v.parse().ok()))
                .map(secs)
                .unwrap_or(Duration::from_secs(1));
            let shared = header(&headers, "x-ratelimit-scope").is_some_and(|s| s == "shared");
            if !global && !shared {
                self.mark_empty(bucket, retry_after);
            }
            return Err(RestError::RateLimited { retry_after, global, bucket: header(&headers, "x-ratelimit-bucket") });
        }
        Err(RestError::Api {
            status,
            code: json["code"].as_i64().unwrap_or(0),
            message: json["message"].as_str().unwrap_or("").to_owned(),
        })
    }

    fn empty_for(&self, bucket: &str) -> Option<Duration> {
        let mut empty = self.empty.lock().expect("the bucket map is never poisoned");
        let until = *empty.get(bucket)?;
        let now = Instant::now();
        if until > now {
            Some(until - now)
        } else {
            empty.remove(bucket);
            None
        }
    }

    fn mark_empty(&self, bucket: &str, wait: Duration) {
        let mut empty = self.empty.lock().expect("the bucket map is never poisoned");
        empty.insert(bucket.to_owned(), Instant::now() + wait);
        // Keep the map small: forget buckets that refilled long ago.
        if empty.len() > 10_000 {
            let now = Instant::now();
            empty.retain(|_, until| *until > now);
        }
    }

    fn remember(&self, bucket: &str, headers: &HeaderMap) {
        let remaining = header(headers, "x-ratelimit-remaining").and_then(|v| v.parse::<u64>().ok());
        let reset_after = header(headers, "x-ratelimit-reset-after").and_then(|v| v.parse::<f64>().ok());
        if let (Some(0), Some(reset)) = (remaining, reset_after) {
            self.mark_empty(bucket, secs(reset));
        }
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::from_secs(1))
}

/// A reqwest error without its URL: URLs hold interaction tokens, which must not reach the logs.
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_what_the_delivery_engine_does() {
        let limited = RestError::RateLimited { retry_after: Duration::from_secs(2), global: false, bucket: None };
        assert_eq!(
            limited.into_send_error(Some("42"), "messages"),
            SendError::RateLimited { retry_after: Duration::from_secs(2), scope: LimitScope::Chat("42".into()) }
        );
        let global = RestError::RateLimited { retry_after: Duration::from_secs(1), global: true, bucket: None };
        assert_eq!(
            global.into_send_error(Some("42"), "messages"),
            SendError::RateLimited { retry_after: Duration::from_secs(1), scope: LimitScope::Global }
        );
        let dm =
            RestError::RateLimited { retry_after: Duration::from_secs(1), global: false, bucket: Some("b".into()) };
        assert_eq!(
            dm.into_send_error(None, "dm"),
            SendError::RateLimited { retry_after: Duration::from_secs(1), scope: LimitScope::Bucket("b".into()) }
        );
        let closed = RestError::Api { status: 403, code: 50007, message: "Cannot send messages to this user".into() };
        assert!(matches!(closed.into_send_error(Some("1"), "m"), SendError::Unreachable(_)));
        let bad = RestError::Api { status: 400, code: 50035, message: "Invalid Form Body".into() };
        assert!(matches!(bad.into_send_error(Some("1"), "m"), SendError::Rejected(_)));
        let down = RestError::Api { status: 502, code: 0, message: "Bad Gateway".into() };
        assert!(matches!(down.into_send_error(Some("1"), "m"), SendError::Transient(_)));
        assert!(matches!(RestError::Network("x".into()).into_send_error(None, "m"), SendError::Transient(_)));
    }
}
