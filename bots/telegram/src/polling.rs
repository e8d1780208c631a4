//! Long polling: `getUpdates` driven by webcare itself so that an update is confirmed only after it is stored.
//!
//! Telegram confirms every update below the `offset` of the next `getUpdates` call. The loop advances its offset
//! past an update only when the intake returned, so an update whose storing failed — or that was in flight when
//! the process died — is fetched again; the intake stores a redelivered update once. On shutdown the loop stops
//! between calls and makes one last call with the new offset and no wait, so that what it handled is confirmed
//! and not fetched again by the next start.

use std::sync::Arc;
use std::time::Duration;

use teloxide::prelude::*;
use teloxide::{ApiError, RequestError};
use tokio_util::sync::CancellationToken;

use crate::inbound::Handler;

pub(crate) struct Poller {
    bot: Bot,
    handler: Arc<Handler>,
    timeout: Duration,
}

const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Poller {
    pub(crate) fn new(bot: Bot, handler: Arc<Handler>, timeout: Duration) -> Self {
        Poller { bot, handler, timeout }
    }

    pub(crate) async fn run(self, shutdown: CancellationToken) {
        // None until the first update is handled: Telegram then answers with every update not yet confirmed.
        let mut offset: Option<i32> = None;
        // The offset Telegram has last been told, so the final confirmation is sent only when it is behind.
        let mut confirmed: Option<i32> = None;
        let mut backoff = Duration::from_secs(1);
        let timeout = u32::try_from(self.timeout.as_secs()).unwrap_or(50).min(50);
        tracing::info!(platform = "telegram", "long polling for updates");
        while !shutdown.is_cancelled() {
            let mut request = self.bot.get_updates().timeout(timeout).allowed_updates(crate::ALLOWED_UPDATES);
            let asked_with = offset;
            if let Some(o) = asked_with {
                request = request.offset(o);
            }
            let result = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = request.send() => r,
            };
            let updates = match result {
                Ok(updates) => {
                    // An answer means Telegram saw the offset and dropped everything below it.
                    confirmed = asked_with;
                    backoff = Duration::from_secs(1);
                    updates
                }
                Err(e) => {
                    match &e {
                        RequestError::Api(ApiError::TerminatedByOtherGetUpdates) => tracing::warn!(
                            platform = "telegram",
                            "another process polls this bot's updates; only one may (or use telegram.webhook_url)"
                        ),
                        RequestError::Api(ApiError::CantGetUpdates) => {
                            tracing::warn!(platform = "telegram", "a webhook is set; removing it to poll");
                            let _ = self.bot.delete_webhook().await;
                        }
                        RequestError::Api(ApiError::InvalidToken) => tracing::error!(
                            platform = "telegram",
                            "the Bot API refuses telegram.token (401): it was revoked; no updates until it is replaced"
                        ),
                        // A 429 on getUpdates says how long to stay away.
                        RequestError::RetryAfter(secs) => backoff = secs.duration().max(backoff),
                        _ => tracing::warn!(platform = "telegram", error = %e, "getUpdates failed; retrying"),
                    }
                    if pause(&shutdown, backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            if shutdown.is_cancelled() {
                break;
            }
            // All of a call's updates go to the intake at once, so that it stores and decides them together (one
            // commit for the lot, in this order); each is confirmed only when it and every update before it are stored.
            let handled = futures_util::future::join_all(updates.iter().map(|u| self.handler.handle(u))).await;
            for (update, result) in updates.iter().zip(handled) {
                let next = i32::try_from(update.id.0).unwrap_or(i32::MAX).saturating_add(1);
                match result {
                    Ok(()) => offset = Some(next),
                    Err(e) => {
                        // Not confirmed: this update and the rest of the batch come again with the next call.
                        tracing::warn!(platform = "telegram", update = update.id.0, error = %e,
                            "could not store an update; fetching it again");
                        if pause(&shutdown, backoff).await {
                            break;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        break;
                    }
                }
            }
        }
        if let Some(o) = offset
            && confirmed != Some(o)
        {
            // limit=1 and no wait: this only confirms; an update it returns stays unconfirmed for the next start.
            match self.bot.get_updates().offset(o).limit(1).timeout(0).send().await {
                Ok(_) => tracing::debug!(platform = "telegram", offset = o, "handled updates confirmed"),
                Err(e) => tracing::info!(platform = "telegram", error = %e,
                    "could not confirm the last updates; the next start receives them again and stores them once"),
            }
        }
        tracing::info!(platform = "telegram", "polling stopped");
    }
}

/// Waits `d` unless shutdown comes first; true when it did.
async fn pause(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
