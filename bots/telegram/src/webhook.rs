//! Webhook mode: Telegram POSTs each update to `telegram.webhook_url`; an axum router (mounted by the binary on its
//! public listener) checks the secret header and answers 2xx only once the update is stored.
//!
//! `setWebhook` gets a `secret_token` derived from the bot token ([`crate::webhook_secret`]), so a POST without the
//! matching `X-Telegram-Bot-Api-Secret-Token` header is not Telegram and is refused with 401. Telegram retries an
//! update until it gets a 2xx, so a failure to store answers 503 and the update comes again; an update that does not
//! parse is confirmed (200), because retrying it cannot help. `max_connections` is 1, so updates arrive one at a
//! time and in order — an edit never overtakes the message it edits.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use teloxide::prelude::*;
use teloxide::types::Update;
use teloxide::{ApiError, RequestError};

use crate::inbound::Handler;
use crate::{SECRET_HEADER, StartError, TelegramSettings};

struct WebhookState {
    handler: Arc<Handler>,
    secret: String,
}

/// Registers the webhook with Telegram and returns the router that receives it.
pub(crate) async fn start(
    bot: &Bot,
    settings: &TelegramSettings,
    url: &str,
    handler: Arc<Handler>,
) -> Result<Router, StartError> {
    let bad = |reason: String| StartError::BadWebhookUrl { url: url.to_owned(), reason };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("expected an https:// URL".into()));
    }
    let path = match parsed.path() {
        "" => "/".to_owned(),
        p => p.to_owned(),
    };
    let secret = crate::webhook_secret(&settings.token);
    let result = bot
        .set_webhook(parsed)
        .secret_token(secret.clone())
        .allowed_updates(crate::ALLOWED_UPDATES)
        .max_connections(1)
        .send()
        .await;
    match result {
        Ok(_) => {}
        Err(RequestError::Api(ApiError::InvalidToken)) => {
            return Err(StartError::Unauthorized { api_url: settings.api_url.clone() });
        }
        Err(RequestError::Api(e)) => return Err(bad(format!("Telegram refused it: {e}"))),
        Err(e) => {
            return Err(StartError::Unavailable {
                api_url: settings.api_url.clone(),
                method: "setWebhook",
                reason: e.to_string(),
            });
        }
    }
    tracing::info!(platform = "telegram", %path, "receiving updates by webhook");
    Ok(Router::new().route(&path, post(receive)).with_state(Arc::new(WebhookState { handler, secret })))
}

async fn receive(State(state): State<Arc<WebhookState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let given = headers.get(SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if !same(given, state.secret.as_bytes()) {
        tracing::warn!(platform = "telegram", "a webhook request without the right secret header; refused");
        return StatusCode::UNAUTHORIZED;
    }
    let update: Update = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(platform = "telegram", error = %e, "a webhook update that does not parse; dropped");
            return StatusCode::OK;
        }
    };
    match state.handler.handle(&update).await {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            tracing::warn!(platform = "telegram", update = update.id.0, error = %e,
                "could not store an update; Telegram will send it again");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// Compares in time that does not depend on where the inputs differ, so the secret cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_exactly() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"abcd"));
        assert!(!super::same(b"", b"abc"));
    }
}
