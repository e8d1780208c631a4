//! Spike alerts to a webhook per service: the network team hears of an internet spike, the TV team of a TV one,
//! where the configuration names their webhooks. [`StaffAlerts`] also posts them in the webcare team's own chats.
//!
//! The bridge stores every alert (`Store::insert_alert`); this notifier reads them back from the database, so it
//! needs nothing from the intake and loses nothing in a crash: an alert is marked posted only after its webhook
//! accepted it, and one raised while the receiver is down is posted when it is back. Notifiers claim due alerts
//! with a lease (`Store::claim_alert_webhooks`, `SKIP LOCKED` on PostgreSQL), so several instances on one database
//! do not post the same alert twice in normal operation; an instance that dies between the post and recording it
//! leaves the alert to be posted again once the lease lapses, under the same idempotency key (`alert:<id>`).
//!
//! Outcomes: posted; retried with exponential backoff and jitter on a 5xx, 408, a timeout or a network error, and
//! after the receiver's `Retry-After` on a 429; failed for good on another 4xx or a redirect, or when retries run
//! past `give_up_after` (the error is kept and shown to admins); skipped when no webhook serves the service.
//!
//! Architecture invariant: no HTTP types here; a webhook is an [`AlertSink`] (the reqwest one is in
//! `webcare-webhook`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use futures_util::StreamExt as _;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use webcare_domain::{
    AlertSink, AlertWebhook, ConversationId, NewOutbox, PostError, Priority, Service, SpikeAlert, Store, StoreResult,
    Timestamp,
};

/// Which webhook serves which service; `default` serves the services without one of their own.
#[derive(Clone, Default)]
pub struct AlertRoutes {
    by_service: BTreeMap<&'static str, Arc<dyn AlertSink>>,
    default: Option<Arc<dyn AlertSink>>,
}

impl std::fmt::Debug for AlertRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (service, sink) in &self.by_service {
            m.entry(service, &sink.describe());
        }
        if let Some(sink) = &self.default {
            m.entry(&"default", &sink.describe());
        }
        m.finish()
    }
}

impl AlertRoutes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Alerts about `service` go to `sink`.
    pub fn with(mut self, service: Service, sink: Arc<dyn AlertSink>) -> Self {
        self.by_service.insert(service.as_str(), sink);
        self
    }

    /// Alerts about a service without a webhook of its own go to `sink`.
    pub fn with_default(mut self, sink: Arc<dyn AlertSink>) -> Self {
        self.default = Some(sink);
        self
    }

    /// No webhook at all: alerts are for the console only.
    pub fn is_empty(&self) -> bool {
        self.by_service.is_empty() && self.default.is_none()
    }

    /// The webhook for an alert about `service`, with the route's name (the service's, or `default`).
    pub fn route(&self, service: Service) -> Option<(&'static str, &Arc<dyn AlertSink>)> {
        match self.by_service.get_key_value(service.as_str()) {
            Some((name, sink)) => Some((name, sink)),
            None => self.default.as_ref().map(|sink| ("default", sink)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// This notifier's name in claims; unique per process.
    pub worker: String,
    /// How long a claim holds. Longer than a post may take (the sink's timeout), or another instance would post
    /// the alert again while the first is still waiting for an answer.
    pub lease: Duration,
    /// Alerts claimed (and posted concurrently) per step.
    pub batch: u32,
    /// How often to look for due alerts when there were none.
    pub poll_interval: Duration,
    /// The first retry's delay; each further one doubles it, up to `backoff_max`, with ±20 % jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Retries stop, and the alert is marked failed, once the next attempt would come this long after the alert
    /// was raised. The first attempt is always made, however old the alert.
    pub give_up_after: Duration,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            worker: format!("webcare-{}-{:08x}-alerts", std::process::id(), rand::random::<u32>()),
            lease: Duration::from_secs(60),
            batch: 16,
            poll_interval: Duration::from_secs(1),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// What one [`AlertNotifier::step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifierStep {
    pub claimed: usize,
    pub posted: usize,
    pub retried: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// Posts stored spike alerts to their service's webhook, at least once.
pub struct AlertNotifier {
    store: Arc<dyn Store>,
    routes: AlertRoutes,
    config: NotifierConfig,
}

impl AlertNotifier {
    pub fn new(store: Arc<dyn Store>, routes: AlertRoutes, config: NotifierConfig) -> Self {
        AlertNotifier { store, routes, config }
    }

    /// Posts due alerts until `shutdown`; a post under way when it comes is finished (bounded by the sink's
    /// timeout), a claimed alert not yet posted waits for its lease to lapse.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let pause = match self.step().await {
                Ok(step) => {
                    failures = 0;
                    if step.claimed >= self.config.batch as usize {
                        continue;
                    }
                    self.config.poll_interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, "could not read spike alerts for their webhooks; trying again");
                    self.config.poll_interval.saturating_mul(failures.min(30))
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Claims the alerts that are due and posts them, concurrently.
    pub async fn step(&self) -> StoreResult<NotifierStep> {
        let claimed = self
            .store
            .claim_alert_webhooks(&self.config.worker, Utc::now(), self.config.lease, self.config.batch)
            .await?;
        let mut step = NotifierStep { claimed: claimed.len(), ..NotifierStep::default() };
        let outcomes: Vec<StoreResult<Outcome>> = futures_util::stream::iter(claimed)
            .map(|(alert, webhook)| self.post(alert, webhook))
            .buffer_unordered(self.config.batch.max(1) as usize)
            .collect()
            .await;
        for outcome in outcomes {
            match outcome? {
                Outcome::Posted => step.posted += 1,
                Outcome::Retried => step.retried += 1,
                Outcome::Failed => step.failed += 1,
                Outcome::Skipped => step.skipped += 1,
            }
        }
        Ok(step)
    }

    async fn post(&self, alert: SpikeAlert, webhook: AlertWebhook) -> StoreResult<Outcome> {
        let worker = &self.config.worker;
        let Some((route, sink)) = self.routes.route(alert.service) else {
            let reason = format!("no webhook for {} alerts is configured", alert.service);
            self.store.mark_alert_skipped(alert.id, worker, &reason).await?;
            return Ok(Outcome::Skipped);
        };
        let key = idempotency_key(&alert);
        match sink.post(&key, &payload(&alert)).await {
            Ok(()) => {
                if self.store.mark_alert_posted(alert.id, worker, route, Utc::now()).await? {
                    tracing::info!(alert = %alert.id, route, webhook = %sink.describe(), "spike alert posted");
                } else {
                    tracing::warn!(alert = %alert.id, "spike alert posted after its claim lapsed; it may be posted twice");
                }
                Ok(Outcome::Posted)
            }
            Err(PostError::Rejected(reason)) => {
                tracing::warn!(alert = %alert.id, route, webhook = %sink.describe(), %reason,
                    "the webhook refused a spike alert; it is not retried");
                self.store.mark_alert_failed(alert.id, worker, route, &reason).await?;
                Ok(Outcome::Failed)
            }
            Err(PostError::Transient { reason, retry_after }) => {
                let delay = match retry_after {
                    // The receiver's word, within reason: at least the first backoff, at most an hour.
                    Some(after) => after.max(self.config.backoff_base).min(Duration::from_secs(3600)),
                    None => backoff(webhook.attempts, self.config.backoff_base, self.config.backoff_max),
                };
                let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                let deadline = alert.created_at
                    + chrono::Duration::from_std(self.config.give_up_after).unwrap_or(chrono::Duration::MAX);
                if next > deadline {
                    let reason = format!(
                        "gave up after {} attempts in {}: {reason}",
                        webhook.attempts,
                        human(self.config.give_up_after)
                    );
                    tracing::warn!(alert = %alert.id, route, webhook = %sink.describe(), %reason,
                        "a spike alert could not be posted");
                    self.store.mark_alert_failed(alert.id, worker, route, &reason).await?;
                    return Ok(Outcome::Failed);
                }
                tracing::info!(alert = %alert.id, route, webhook = %sink.describe(), %reason, ?delay,
                    "posting a spike alert failed; trying again");
                self.store.mark_alert_retry(alert.id, worker, route, next, &reason).await?;
                Ok(Outcome::Retried)
            }
        }
    }
}

enum Outcome {
    Posted,
    Retried,
    Failed,
    Skipped,
}

/// Spike alerts in the webcare team's own chats (a Telegram group, a Discord channel), through the outbox, so at the
/// platforms' limits and after a crash like every other message: each alert once per chat, under the key
/// `alert:<id>:staff:<conversation>`. Every instance may run it; the keys keep it to one message per alert and chat.
/// Alerts raised more than [`StaffAlerts::RECENT`] ago are left alone, so a chat added to the configuration does
/// not get the history.
pub struct StaffAlerts {
    store: Arc<dyn Store>,
    chats: Vec<ConversationId>,
    wake: Arc<Notify>,
    /// Alerts this poster queued already, so it does not write them again every round (the keys would skip them;
    /// after a restart they do).
    queued: std::sync::Mutex<std::collections::HashSet<webcare_domain::AlertId>>,
}

impl StaffAlerts {
    pub const RECENT: TimeDelta = TimeDelta::hours(1);
    const EVERY: Duration = Duration::from_secs(5);

    /// `chats` are the staff chats' conversations; `wake` wakes the delivery engine when something was queued.
    pub fn new(store: Arc<dyn Store>, chats: Vec<ConversationId>, wake: Arc<Notify>) -> Self {
        StaffAlerts { store, chats, wake, queued: Default::default() }
    }

    /// Queues the recent alerts a staff chat has not had yet; returns how many messages were new.
    pub async fn step(&self, now: Timestamp) -> StoreResult<u64> {
        if self.chats.is_empty() {
            return Ok(0);
        }
        let alerts = self.store.alerts_since(now - Self::RECENT).await?;
        let fresh: Vec<&SpikeAlert> = {
            let queued = self.queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            alerts.iter().filter(|a| !queued.contains(&a.id)).collect()
        };
        let rows: Vec<NewOutbox> = fresh
            .iter()
            .flat_map(|a| {
                self.chats.iter().map(move |&chat| {
                    let text = format!(
                        "{}\nPublish a notice from it here with /publish {}, or in the console under Alerts.",
                        summary(a),
                        a.id
                    );
                    NewOutbox::message(chat, text, format!("alert:{}:staff:{chat}", a.id), Priority::AUTOMATIC, now)
                })
            })
            .collect();
        if rows.is_empty() {
            return Ok(0);
        }
        let queued = self.store.enqueue_many(&rows, now).await?;
        self.queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(fresh.iter().map(|a| a.id));
        if queued > 0 {
            tracing::info!(queued, "spike alerts queued for the staff chats");
            self.wake.notify_one();
        }
        Ok(queued)
    }

    /// Looks for new alerts every few seconds until `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(e) = self.step(Utc::now()).await {
                tracing::warn!(error = %e, "could not queue spike alerts for the staff chats; trying again");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Self::EVERY) => {}
            }
        }
    }
}

/// The key a receiver can drop a repeated post by: the alert's id.
pub fn idempotency_key(alert: &SpikeAlert) -> String {
    format!("alert:{}", alert.id)
}

/// Exponential backoff from `base` (attempt 1), doubling up to `max`, with ±20 % jitter so that alerts that failed
/// together do not all come back in the same instant.
pub fn backoff(attempts: i64, base: Duration, max: Duration) -> Duration {
    let exp = attempts.clamp(1, 32) - 1;
    let delay = base.saturating_mul(1u32 << exp.min(20)).min(max);
    delay.mul_f64(0.8 + rand::random::<f64>() * 0.4)
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        _ => format!("{:.1} s", d.as_secs_f64()),
    }
}

/// What a webhook receives: the alert's fields, for a team's own service, and `text`, a summary that a Slack,
/// Mattermost or Teams incoming webhook shows as it is. Samples are the stored ones, with private data masked by
/// the bridge; nothing else about customers is included.
pub fn payload(alert: &SpikeAlert) -> serde_json::Value {
    json!({
        "event": "spike_alert",
        "id": alert.id,
        "account": alert.account,
        "service": alert.service,
        "region": alert.region,
        "count": alert.count,
        "cluster": alert.cluster,
        "first_at": alert.first_at,
        "last_at": alert.last_at,
        "created_at": alert.created_at,
        "samples": alert.samples,
        "draft": alert.draft,
        "text": summary(alert),
    })
}

/// How many samples the summary quotes, and how much of each.
const SUMMARY_SAMPLES: usize = 3;
const SUMMARY_CHARS: usize = 200;

/// A readable summary of the alert for a chat channel. Customer text in it is made inert for chat markup: `<`, `>`
/// and `&` are escaped as Slack asks, and `@` is followed by a zero-width space so that `@channel` or `@here`
/// in a sample notifies nobody.
pub fn summary(alert: &SpikeAlert) -> String {
    let region = alert.region.as_deref().map(|r| format!(" in {}", inert(r))).unwrap_or_default();
    let account =
        if alert.account.is_empty() { String::new() } else { format!(" (account {})", inert(&alert.account)) };
    let mut text = format!(
        "Spike alert: {count} customers report {service} trouble{region}{account}, {first} to {last}. \
         webcare alert {id}.",
        count = alert.count,
        service = alert.service,
        first = clock(alert.first_at),
        last = clock(alert.last_at),
        id = alert.id,
    );
    for sample in alert.samples.iter().take(SUMMARY_SAMPLES) {
        let _ = write!(text, "\n> {}", inert(&shorten(sample, SUMMARY_CHARS)));
    }
    if alert.samples.len() > SUMMARY_SAMPLES {
        let _ = write!(text, "\n({} more samples in the console)", alert.samples.len() - SUMMARY_SAMPLES);
    }
    let draft = alert.draft.get("nl").or_else(|| alert.draft.get("en")).or_else(|| alert.draft.values().next());
    if let Some(draft) = draft {
        let _ = write!(text, "\nDraft notice: {}", inert(&shorten(draft, 2 * SUMMARY_CHARS)));
    }
    text
}

fn clock(t: Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn shorten(s: &str, max: usize) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

fn inert(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '@' => out.push_str("@\u{200B}"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// What became of a spike alert's cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertOutcome {
    /// Still open: a notice published from the alert reaches its customers.
    Waiting,
    /// A notice answers it (published from the alert or by hand).
    Answered(webcare_domain::NoticeId),
    /// No notice came within the grace period: its customers got tickets.
    Expired,
    /// The cluster is no longer stored.
    Gone,
}

/// The outcome of `alert`, from the clusters [`alert_clusters`] read.
pub fn outcome(
    clusters: &std::collections::HashMap<webcare_domain::ClusterId, webcare_domain::OutageCluster>,
    alert: &SpikeAlert,
) -> AlertOutcome {
    use webcare_domain::ClusterState;
    match clusters.get(&alert.cluster).map(|c| (c.state, c.notice)) {
        Some((ClusterState::Noticed, Some(notice))) => AlertOutcome::Answered(notice),
        Some((ClusterState::Expired, _)) => AlertOutcome::Expired,
        Some(_) => AlertOutcome::Waiting,
        None => AlertOutcome::Gone,
    }
}

/// The clusters of these alerts, by id, to show what became of each (open, answered by a notice, expired).
pub async fn alert_clusters(
    store: &dyn Store,
    alerts: &[webcare_domain::SpikeAlert],
) -> webcare_domain::StoreResult<std::collections::HashMap<webcare_domain::ClusterId, webcare_domain::OutageCluster>> {
    let mut clusters = std::collections::HashMap::new();
    for a in alerts {
        if let std::collections::hash_map::Entry::Vacant(slot) = clusters.entry(a.cluster) {
            match store.cluster(a.cluster).await {
                Ok(c) => {
                    slot.insert(c);
                }
                Err(webcare_domain::StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(clusters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use webcare_domain::{AlertId, ClusterId};

    fn alert() -> SpikeAlert {
        let at = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        SpikeAlert {
            id: AlertId(7),
            cluster: ClusterId(3),
            account: String::new(),
            service: Service::Internet,
            region: Some("Utrecht".into()),
            count: 6,
            samples: vec![
                "Storing in Utrecht? @channel <!here> bel me op [telefoon]".into(),
                "geen internet".into(),
                "x".repeat(500),
                "vierde".into(),
            ],
            draft: [("nl".to_owned(), "We onderzoeken een storing in Utrecht.".to_owned())].into(),
            first_at: at,
            last_at: at + chrono::Duration::minutes(7),
            created_at: at + chrono::Duration::minutes(7),
        }
    }

    #[test]
    fn the_summary_is_readable_and_inert() {
        let text = summary(&alert());
        assert!(text.starts_with("Spike alert: 6 customers report internet trouble in Utrecht"), "{text}");
        assert!(text.contains("webcare alert 7"), "{text}");
        assert!(text.contains("@\u{200B}channel") && !text.contains("@channel"), "{text}");
        assert!(text.contains("&lt;!here&gt;") && !text.contains("<!here>"), "{text}");
        assert!(text.contains(&format!("{}…", "x".repeat(SUMMARY_CHARS))), "long samples are cut");
        assert!(!text.contains("vierde") && text.contains("(1 more samples in the console)"), "{text}");
        assert!(text.contains("Draft notice: We onderzoeken een storing in Utrecht."), "{text}");
    }

    #[test]
    fn the_payload_has_the_alerts_fields() {
        let p = payload(&alert());
        assert_eq!(p["id"], 7);
        assert_eq!(p["service"], "internet");
        assert_eq!(p["region"], "Utrecht");
        assert_eq!(p["count"], 6);
        assert_eq!(p["samples"].as_array().unwrap().len(), 4);
        assert_eq!(p["draft"]["nl"], "We onderzoeken een storing in Utrecht.");
        assert!(p["text"].as_str().unwrap().starts_with("Spike alert"));
        assert!(p["first_at"].as_str().unwrap().starts_with("2026-09-21T"), "{}", p["first_at"]);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(300));
        for (attempts, nominal) in [(1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (60, 300.0)] {
            let d = backoff(attempts, base, max).as_secs_f64();
            assert!(d >= nominal * 0.8 - 1e-9 && d <= nominal * 1.2 + 1e-9, "attempt {attempts}: {d}");
        }
    }
}
