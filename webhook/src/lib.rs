//! Spike alerts posted to a webhook over HTTP: the [`AlertSink`] adapter on reqwest (rustls with ring).
//!
//! One `POST` of the payload as JSON per alert, with `Idempotency-Key`. The answer becomes what the notifier acts
//! on: 2xx accepted; 408, 429 (with its `Retry-After`), 5xx (with `Retry-After` when given), a timeout or a network
//! error are worth another try; a redirect or any other 4xx is refused for good (a wrong or revoked URL). Redirects
//! are not followed: a `POST` turned into a `GET` elsewhere would be lost.
//!
//! A Discord webhook (`https://discord.com/api/webhooks/{id}/{token}`) does not take that JSON: it is sent the
//! alert's `text` as a Discord message, with mentions switched off and the customers' words unable to form links or
//! markup. Slack, Mattermost, Teams' incoming webhooks and Discord's `/slack` endpoint read the `text` field as is.
//!
//! A webhook URL often is the secret (Slack's, Mattermost's and Teams' incoming webhooks are): it appears in no
//! error, `Debug` or log line; callers give a masked form for those (`describe`).
//!
//! Architecture invariant: the only crate that sees reqwest for webhooks; it depends on `webcare-domain` only
//! among webcare's crates.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use webcare_domain::{AlertSink, PostError};

/// How much of a refusal's body is kept in the error an admin sees.
const BODY_CHARS: usize = 200;

/// The most characters a Discord message may hold.
const DISCORD_CHARS: usize = 2000;

/// What a webhook's receiver reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The alert's JSON as it is, with a Slack-style `text`.
    Json,
    /// A Discord message (`content`).
    Discord,
}

impl Format {
    /// Discord's own webhook URLs: on discord.com (or a proxy in front of it, told by the path
    /// `/api[/vN]/webhooks/{numeric id}/{token}`), except its Slack- and GitHub-compatible endpoints.
    pub fn of(url: &reqwest::Url) -> Format {
        let host = url.host_str().unwrap_or("").trim_end_matches('.');
        let discord_host =
            ["discord.com", "discordapp.com"].iter().any(|d| host == *d || host.ends_with(&format!(".{d}")));
        let segments: Vec<&str> =
            url.path_segments().map(|s| s.filter(|x| !x.is_empty()).collect()).unwrap_or_default();
        let rest = match segments.as_slice() {
            ["api", v, rest @ ..]
                if v.len() > 1 && v.starts_with('v') && v[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                rest
            }
            ["api", rest @ ..] => rest,
            _ => &[][..],
        };
        let shaped = matches!(rest, ["webhooks", id, token] if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
            && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let compatible = matches!(rest, ["webhooks", _, _, "slack" | "github"]);
        if !compatible && (shaped || (discord_host && rest.first() == Some(&"webhooks"))) {
            Format::Discord
        } else {
            Format::Json
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{label} is not a usable webhook URL: {reason}")]
    BadUrl { label: String, reason: String },
    #[error("cannot set up the HTTP client for webhooks: {0}")]
    Client(String),
}

/// The HTTP client webhooks share: every request, with its answer, within `timeout`; redirects not followed.
pub fn client(timeout: Duration) -> Result<reqwest::Client, WebhookError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("webcare/", env!("CARGO_PKG_VERSION"), " (spike alerts)"))
        .build()
        .map_err(|e| WebhookError::Client(error_chain(&e)))
}

/// One webhook.
#[derive(Clone)]
pub struct WebhookSink {
    client: reqwest::Client,
    url: reqwest::Url,
    label: String,
    format: Format,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink").field("url", &self.label).field("format", &self.format).finish()
    }
}

impl WebhookSink {
    /// A webhook at `url`, shown as `label` (the URL with its secret part masked) in logs and errors.
    pub fn new(client: reqwest::Client, url: &str, label: impl Into<String>) -> Result<Self, WebhookError> {
        let label = label.into();
        let bad = |reason: String| WebhookError::BadUrl { label: label.clone(), reason };
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("expected http:// or https://".into()));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("expected a host".into()));
        }
        let format = Format::of(&parsed);
        Ok(WebhookSink { client, url: parsed, label, format })
    }

    /// What the receiver is sent.
    pub fn format(&self) -> Format {
        self.format
    }
}

/// The alert as a Discord message: its `text` with Slack's escapes undone, Discord's markup characters escaped (a
/// customer's words form no link, spoiler or code block), cut to Discord's length, and no mention that notifies.
fn discord_message(payload: &serde_json::Value) -> serde_json::Value {
    let text = payload.get("text").and_then(serde_json::Value::as_str).unwrap_or("");
    let text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    let mut content = String::with_capacity(text.len() + 16);
    for line in text.split('\n') {
        if !content.is_empty() {
            content.push('\n');
        }
        // A quoted sample keeps its quote mark; everything else is text.
        let (quote, rest) = match line.strip_prefix("> ") {
            Some(rest) => ("> ", rest),
            None => ("", line),
        };
        content.push_str(quote);
        for c in rest.chars() {
            if matches!(c, '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '<' | '>' | '#' | '-') {
                content.push('\\');
            }
            content.push(c);
        }
    }
    if let Some((cut, _)) = content.char_indices().nth(DISCORD_CHARS - 1) {
        content.truncate(cut);
        while content.ends_with('\\') {
            content.pop();
        }
        content.push('…');
    }
    serde_json::json!({"content": content, "allowed_mentions": {"parse": []}})
}

#[async_trait]
impl AlertSink for WebhookSink {
    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn post(&self, idempotency_key: &str, payload: &serde_json::Value) -> Result<(), PostError> {
        let body = match self.format {
            Format::Json => serde_json::to_vec(payload),
            Format::Discord => serde_json::to_vec(&discord_message(payload)),
        }
        .map_err(|e| PostError::Rejected(format!("payload: {e}")))?;
        let key = HeaderValue::from_str(idempotency_key)
            .map_err(|_| PostError::Rejected(format!("idempotency key `{idempotency_key}` is not a header value")))?;
        let response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", key)
            .body(body)
            .send()
            .await
            .map_err(|e| PostError::Transient { reason: describe_error(e), retry_after: None })?;
        let status = response.status();
        if status.is_success() {
            // Read the answer to its end so the connection can serve the next post.
            let _ = response.bytes().await;
            return Ok(());
        }
        let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(retry_after);
        let reason = match snippet(response).await {
            Some(said) => format!("HTTP {status}: {said}"),
            None => format!("HTTP {status}"),
        };
        let code = status.as_u16();
        if status.is_redirection() {
            Err(PostError::Rejected(format!("{reason} (redirects are not followed: configure the final URL)")))
        } else if code == 408 || code == 429 || status.is_server_error() {
            Err(PostError::Transient { reason, retry_after })
        } else if status.is_client_error() {
            Err(PostError::Rejected(reason))
        } else {
            Err(PostError::Transient { reason, retry_after })
        }
    }
}

/// A request error without the URL (which may be the secret), with its causes.
fn describe_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    format!("{what}: {}", error_chain(&e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let said = s.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = s.source();
    }
    text
}

/// The start of a refusal's body, on one line: what the receiver said (Slack answers `no_service`,
/// `invalid_payload`...). At most a few KB are read.
async fn snippet(mut response: reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < 4096 {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return None;
    }
    Some(match one_line.char_indices().nth(BODY_CHARS) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    })
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 0 "), Some(Duration::ZERO));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(90)).format("%a, %d %b %Y %H:%M:%S GMT");
        let wait = retry_after(&later.to_string()).unwrap();
        assert!(wait > Duration::from_secs(80) && wait <= Duration::from_secs(90), "{wait:?}");
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a date past is now");
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn only_http_urls_with_a_host_are_taken_and_the_url_never_shows() {
        let client = client(Duration::from_secs(1)).unwrap();
        let secret = "https://hooks.example.com/services/T0/B0/s3cr3t";
        let sink = WebhookSink::new(client.clone(), secret, "https://hooks.example.com/********").unwrap();
        assert!(!format!("{sink:?}").contains("s3cr3t"));
        assert!(!sink.describe().contains("s3cr3t"));
        for bad in ["ftp://example.com/x", "https://", "not a url", "mailto:a@example.com"] {
            let e = WebhookSink::new(client.clone(), bad, "the webhook").unwrap_err().to_string();
            assert!(e.starts_with("the webhook is not a usable webhook URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn discord_urls_are_told_from_others() {
        let format = |u: &str| Format::of(&reqwest::Url::parse(u).unwrap());
        for discord in [
            "https://discord.com/api/webhooks/123456789/AbC-d_e",
            "https://ptb.discord.com/api/v10/webhooks/1/x",
            "https://discordapp.com/api/webhooks/1/x",
            "http://127.0.0.1:8080/api/webhooks/42/token",
        ] {
            assert_eq!(format(discord), Format::Discord, "{discord}");
        }
        for other in [
            "https://discord.com/api/webhooks/1/x/slack",
            "https://discord.com/api/webhooks/1/x/github",
            "https://hooks.slack.com/services/T000/B000/XXXX",
            "https://mattermost.example.com/hooks/abc",
            "https://noc.example.com/api/webhooks/alerts",
            "https://noc.example.com/api/webhooks/12/tok/en",
            "https://notdiscord.com/api/webhooks/x/y/z",
        ] {
            assert_eq!(format(other), Format::Json, "{other}");
        }
    }

    #[test]
    fn a_discord_message_holds_no_markup_links_or_mentions_of_the_customers() {
        let text = "Spike alert: 6 customers report internet trouble in Utrecht.\n\
                    > @\u{200B}everyone [gratis](https://evil.example) **nu** &lt;@123&gt; &amp;lt; ~~x~~ ||y||\n\
                    (2 more samples in the console)";
        let message = discord_message(&serde_json::json!({"text": text, "id": 1}));
        assert_eq!(message["allowed_mentions"], serde_json::json!({"parse": []}));
        let content = message["content"].as_str().unwrap();
        assert!(content.starts_with("Spike alert: 6 customers report internet trouble in Utrecht."), "{content}");
        assert!(content.contains("\n> @\u{200B}everyone \\[gratis\\](https://evil.example) \\*\\*nu\\*\\* \\<@123\\> &lt; \\~\\~x\\~\\~ \\|\\|y\\|\\|"), "{content}");
        assert!(message.get("id").is_none(), "Discord is sent its own fields only");
        let long = discord_message(&serde_json::json!({"text": "*".repeat(5000)}));
        let content = long["content"].as_str().unwrap();
        let n = content.chars().count();
        assert!((DISCORD_CHARS - 2..=DISCORD_CHARS).contains(&n), "cut to Discord's length: {n}");
        assert!(content.ends_with("\\*…"), "never a lone escape at the cut");
    }

    #[tokio::test]
    async fn a_network_error_is_transient_and_does_not_name_the_url() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/hooks/s3cr3t");
        let sink = WebhookSink::new(client(Duration::from_secs(2)).unwrap(), &url, "http://127.0.0.1/****").unwrap();
        match sink.post("alert:1", &serde_json::json!({"text": "x"})).await {
            Err(PostError::Transient { reason, retry_after: None }) => {
                assert!(reason.starts_with("cannot connect"), "{reason}");
                assert!(!reason.contains("s3cr3t"), "{reason}");
            }
            other => panic!("expected a transient error, got {other:?}"),
        }
    }
}
