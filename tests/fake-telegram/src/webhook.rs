//! Webhook delivery: while a webhook is set, the oldest pending update is POSTed to it as JSON, with
//! `X-Telegram-Bot-Api-Secret-Token` when a secret was set. A 2xx answer confirms the update; anything else
//! is recorded as `last_error_date`/`last_error_message` for getWebhookInfo and retried after a growing pause,
//! so updates arrive in order and none is lost while the receiver is down.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::server::Shared;
use crate::world::unix_now;

pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let client = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(_) => return,
    };
    let mut changes = shared.changed.subscribe();
    let mut backoff = Duration::from_secs(1);
    loop {
        changes.borrow_and_update();
        let job = shared.read(|w| {
            let hook = w.webhook.clone()?;
            let update = w.updates.front()?.clone();
            Some((hook, update, w.config.clone()))
        });
        let Some((hook, update, config)) = job else {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
            }
            continue;
        };
        let mut request = client.post(&hook.url).json(&update.json).timeout(config.scaled(Duration::from_secs(60)));
        if let Some(secret) = &hook.secret_token {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        let outcome = tokio::select! {
            r = request.send() => r,
            _ = stop.changed() => return,
        };
        let error = match outcome {
            Ok(resp) if resp.status().is_success() => None,
            Ok(resp) => Some(format!(
                "Wrong response from the webhook: {} {}",
                resp.status().as_u16(),
                resp.status().canonical_reason().unwrap_or("")
            )),
            Err(e) if e.is_connect() => Some("Connection refused".to_string()),
            Err(e) if e.is_timeout() => Some("Read timeout expired".to_string()),
            Err(e) => Some(format!("Connection error: {e}")),
        };
        match error {
            None => {
                shared.write(|w| {
                    // Only confirm if neither the webhook nor the queue changed under the request.
                    let same_hook = w.webhook.as_ref().is_some_and(|h| h.generation == hook.generation);
                    if same_hook && w.updates.front().is_some_and(|u| u.id == update.id) {
                        w.updates.pop_front();
                    }
                    w.stats.webhook_deliveries += 1;
                });
                backoff = Duration::from_secs(1);
            }
            Some(message) => {
                shared.write(|w| {
                    if w.webhook.as_ref().is_some_and(|h| h.generation == hook.generation) {
                        w.webhook_error = Some((unix_now(), message));
                    }
                    w.stats.webhook_failures += 1;
                });
                let pause = config.scaled(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(60));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}
