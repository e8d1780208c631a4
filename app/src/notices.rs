//! Notices and their broadcasts: create, update (every update is a new version), approve under four eyes,
//! publish from a spike alert, and push each version to every subscriber through the outbox.
//!
//! Exactly once per recipient is a database rule, not a memory: each version's row for a conversation has the key
//! `notice:<id>:v<version>:conv:<conversation>`, unique in the outbox. A newer version cancels the rows of older
//! versions that have not gone out yet, so a subscriber who had not received version 2 gets only version 3.
//! A conversation that said `/stop` has no subscription and so gets no row.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;
use webcare_domain::{
    Agent, AlertId, NewNotice, NewOutbox, Notice, NoticeChange, NoticeId, NoticeProposal, NoticeState, OutboxState,
    Priority, Role, Service, Store, StoreError, SubscriptionTarget, Ticket, Timestamp,
};

use crate::intake::{Pipeline, talk_to_person};

#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    #[error("notice {0} not found")]
    NotFound(NoticeId),
    #[error("alert {0} not found")]
    AlertNotFound(AlertId),
    #[error("only admins manage notices")]
    NotAdmin,
    #[error("under four-eyes approval a notice is approved by another admin than its author")]
    SameApprover,
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("alert {alert}'s customers already follow notice {notice}: update that notice instead")]
    AlreadyAnswered { alert: AlertId, notice: NoticeId },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an admin writes to create a notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeInput {
    pub title: String,
    pub text: String,
    /// The text per language code, where it differs from `text` (`{"nl": "..."}`).
    #[serde(default)]
    pub texts: BTreeMap<String, String>,
    #[serde(default)]
    pub services: Vec<Service>,
    /// Empty means nationwide.
    #[serde(default)]
    pub regions: Vec<String>,
    pub state: NoticeState,
    #[serde(default)]
    pub draft: bool,
    /// Send on Telegram as a paid broadcast (up to 1,000 messages/s, at a fee per message): an opt-in for urgent
    /// cases, after the admin has seen the estimate ([`Progress::paid_cost_stars`]).
    #[serde(default)]
    pub paid_broadcast: bool,
}

/// What [`Notices::update`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    /// The notice as customers see it now.
    pub notice: Notice,
    /// Under four eyes a change with new words (a text) waits for another admin's approval ([`Notices::approve`]):
    /// `notice` is then as it was.
    pub proposed: bool,
}

/// A broadcast's progress, as `GET /api/v1/notices/{id}/delivery` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub version: i64,
    pub subscribers: i64,
    pub sent: i64,
    pub failed: i64,
    pub pending: i64,
    /// Messages sent per second over the last minute.
    pub rate_per_s: f64,
    /// Seconds until the pending ones are sent at that rate; `None` while nothing moves.
    pub eta_s: Option<f64>,
    /// Whether the notice goes out on Telegram as a paid broadcast.
    pub paid_broadcast: bool,
    /// Subscribers on Telegram: the messages a paid broadcast of a version pays for.
    pub telegram_subscribers: i64,
    /// What sending one version to them as a paid broadcast costs, in Telegram Stars: the estimate an admin sees
    /// before opting in.
    pub paid_cost_stars: f64,
}

/// Telegram's fee per message of a paid broadcast, in Stars (Bot API: "0.1 Telegram Stars per message").
pub const TELEGRAM_PAID_STARS_PER_MESSAGE: f64 = 0.1;

pub struct Notices {
    store: Arc<dyn Store>,
    /// The bridge of this process; `None` in a process that runs no bridge (the command line), where the deciding
    /// instance's clock takes the waiting clusters in (`adopt_new`, `adopt_waiting`).
    pipeline: Option<Arc<Pipeline>>,
    wake: Arc<Notify>,
    /// Whether a notice needs a second admin's approval before customers see it.
    pub four_eyes: bool,
    /// Channels where every version is posted once, whoever subscribed (Discord announcement channels).
    announcements: Vec<webcare_domain::ConversationId>,
    /// Telegram's fee per paid-broadcast message, for the estimate.
    paid_stars_per_message: f64,
    /// The active notices (id, version) at the last pass that took waiting clusters in (`adopt_new`).
    adopted: std::sync::Mutex<Vec<(NoticeId, i64)>>,
}

const MAX_TITLE: usize = 200;
const MAX_TEXT: usize = 4000;

fn check(input: &NoticeInput) -> Result<(), NoticeError> {
    let invalid = |field, reason: &str| Err(NoticeError::Invalid { field, reason: reason.to_owned() });
    if input.title.trim().is_empty() || input.title.chars().count() > MAX_TITLE {
        return invalid("title", "1 to 200 characters");
    }
    if input.text.trim().is_empty() || input.text.chars().count() > MAX_TEXT {
        return invalid("text", "1 to 4000 characters");
    }
    if input.texts.values().any(|t| t.trim().is_empty() || t.chars().count() > MAX_TEXT) {
        return invalid("texts", "each text 1 to 4000 characters");
    }
    if input.regions.iter().any(|r| r.trim().is_empty()) {
        return invalid("regions", "no empty region names");
    }
    Ok(())
}

fn admin(agent: &Agent) -> Result<(), NoticeError> {
    if agent.role == Role::Admin && agent.active { Ok(()) } else { Err(NoticeError::NotAdmin) }
}

impl Notices {
    pub fn new(store: Arc<dyn Store>, pipeline: Arc<Pipeline>, wake: Arc<Notify>, four_eyes: bool) -> Self {
        Self::with_pipeline(store, Some(pipeline), wake, four_eyes)
    }

    /// Notices for a process that runs no bridge, such as `webcare notice` on the command line beside a running
    /// `webcare serve`: everything goes through the database. The rows it queues are sent by the serving instances
    /// (they poll the outbox), and the customers waiting in clusters that a new notice covers join it on the
    /// deciding instance's clock (`adopt_new`, every 2 seconds in `serve`); a question asked meanwhile is
    /// answered from the notice already, since the bridge reads the active notices for every decision.
    pub fn detached(store: Arc<dyn Store>, four_eyes: bool) -> Self {
        Self::with_pipeline(store, None, Arc::new(Notify::new()), four_eyes)
    }

    fn with_pipeline(
        store: Arc<dyn Store>,
        pipeline: Option<Arc<Pipeline>>,
        wake: Arc<Notify>,
        four_eyes: bool,
    ) -> Self {
        Notices {
            store,
            pipeline,
            wake,
            four_eyes,
            announcements: Vec::new(),
            paid_stars_per_message: TELEGRAM_PAID_STARS_PER_MESSAGE,
            adopted: Default::default(),
        }
    }

    /// Uses this fee per paid-broadcast message in the cost estimate.
    pub fn with_paid_fee(mut self, stars_per_message: f64) -> Self {
        self.paid_stars_per_message = stars_per_message;
        self
    }

    /// Posts every version once in these conversations too (crossposted where the platform can).
    pub fn with_announcements(mut self, conversations: Vec<webcare_domain::ConversationId>) -> Self {
        self.announcements = conversations;
        self
    }

    /// Wakes the delivery engine (after an agent's reply was queued, say).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Creates a notice. Active at once unless it is a draft or awaits a second admin's approval; when active, it
    /// goes to its subscribers (none yet, unless it came from a cluster) and answers every matching question.
    pub async fn create(&self, input: NoticeInput, author: &Agent, now: Timestamp) -> Result<Notice, NoticeError> {
        admin(author)?;
        check(&input)?;
        let notice = self
            .store
            .create_notice(NewNotice {
                title: input.title.trim().to_owned(),
                text: input.text.trim().to_owned(),
                texts: input.texts,
                services: input.services,
                regions: input.regions.iter().map(|r| r.trim().to_owned()).collect(),
                state: input.state,
                draft: input.draft || self.four_eyes,
                paid_broadcast: input.paid_broadcast,
                cluster: None,
                author: Some(author.id),
                approved_by: None,
                at: now,
            })
            .await?;
        self.adopt_and_broadcast(&notice, now).await?;
        Ok(notice)
    }

    /// Applies a change as a new version and sends it to every subscriber once, in their language where the notice
    /// has a text in it. A new `text` without `texts` drops the texts in other languages, written for the old one.
    ///
    /// Under four eyes, a change to a published notice that brings new words (a text) waits for another admin's
    /// approval, as a new notice does, and customers keep seeing the approved words meanwhile; a change of state or
    /// scope alone goes out at once (it says nothing the team has not approved), and a waiting change then no longer
    /// carries the state or scope it would have set, so approving it later does not undo this one.
    pub async fn update(
        &self,
        id: NoticeId,
        mut change: NoticeChange,
        author: &Agent,
        now: Timestamp,
    ) -> Result<Updated, NoticeError> {
        admin(author)?;
        let current = self.store.notice(id).await.map_err(|e| not_found(e, id))?;
        // A form that sends every field sends the current words too: they are no new words.
        let same = |a: &str, b: &str| a.replace("\r\n", "\n").trim() == b.replace("\r\n", "\n").trim();
        if change.text.as_deref().is_none_or(|t| same(t, &current.text))
            && change.texts.as_ref().is_none_or(|t| {
                t.len() == current.texts.len()
                    && t.iter().all(|(l, v)| current.texts.get(l).is_some_and(|c| same(v, c)))
            })
        {
            change.text = None;
            change.texts = None;
        }
        if let Some(text) = &change.text
            && (text.trim().is_empty() || text.chars().count() > MAX_TEXT)
        {
            return Err(NoticeError::Invalid { field: "text", reason: "1 to 4000 characters".into() });
        }
        if change.text.is_some() && change.texts.is_none() {
            // The other languages' texts were written for the text that is being replaced: a subscriber who asked in
            // one of them gets the new text rather than an outdated one.
            change.texts = Some(BTreeMap::new());
        }
        if let Some(texts) = &change.texts
            && texts.values().any(|t| t.trim().is_empty() || t.chars().count() > MAX_TEXT)
        {
            return Err(NoticeError::Invalid { field: "texts", reason: "each text 1 to 4000 characters".into() });
        }
        change.author = Some(author.id);
        if self.four_eyes && current.draft {
            // Editing a notice that awaits approval keeps it waiting; only `approve` publishes it.
            change.draft = Some(true);
        } else if self.four_eyes && change.texts.is_some() {
            change.draft = None;
            let proposal = NoticeProposal { notice: id, author: author.id, change, created_at: now };
            self.store.propose_notice_change(&proposal).await?;
            return Ok(Updated { notice: current, proposed: true });
        } else if self.four_eyes
            && (change.state.is_some() || change.services.is_some() || change.regions.is_some())
            && let Some(mut waiting) = self.store.notice_proposal(id).await?
        {
            let pending = &mut waiting.change;
            pending.state = pending.state.filter(|_| change.state.is_none());
            pending.services = pending.services.take().filter(|_| change.services.is_none());
            pending.regions = pending.regions.take().filter(|_| change.regions.is_none());
            self.store.propose_notice_change(&waiting).await?;
        }
        let notice = self.store.update_notice(id, change, now).await.map_err(|e| not_found(e, id))?;
        // A wider scope covers more of the customers waiting in clusters.
        self.adopt_and_broadcast(&notice, now).await?;
        Ok(Updated { notice, proposed: false })
    }

    /// The change to a notice that waits for approval, if any.
    pub async fn proposal(&self, id: NoticeId) -> Result<Option<NoticeProposal>, NoticeError> {
        Ok(self.store.notice_proposal(id).await?)
    }

    /// Publishes a notice that waits for approval, or the change to a published one that waits (see `update`); under
    /// four eyes the approver must not be its author.
    pub async fn approve(&self, id: NoticeId, approver: &Agent, now: Timestamp) -> Result<Notice, NoticeError> {
        admin(approver)?;
        let current = self.store.notice(id).await.map_err(|e| not_found(e, id))?;
        if !current.draft {
            let Some(proposal) = self.store.notice_proposal(id).await? else {
                return Err(NoticeError::Invalid {
                    field: "notice",
                    reason: format!("notice {id} is published and no change of it awaits approval"),
                });
            };
            if self.four_eyes && proposal.author == approver.id {
                return Err(NoticeError::SameApprover);
            }
            let mut change = proposal.change;
            change.author = Some(proposal.author);
            change.approved_by = Some(approver.id);
            change.draft = None;
            // The new version and the end of the proposal in one unit: approving twice cannot publish it twice.
            let unit = self.store.begin().await?;
            let applied = async {
                let notice = unit.update_notice(id, change, now).await?;
                unit.drop_notice_proposal(id).await?;
                Ok::<_, StoreError>(notice)
            }
            .await;
            let notice = match applied {
                Ok(notice) => {
                    unit.commit().await?;
                    notice
                }
                Err(e) => {
                    let _ = unit.rollback().await;
                    return Err(not_found(e, id));
                }
            };
            self.adopt_and_broadcast(&notice, now).await?;
            return Ok(notice);
        }
        if self.four_eyes {
            let versions = self.store.notice_versions(id).await?;
            if versions.last().and_then(|v| v.author) == Some(approver.id) {
                return Err(NoticeError::SameApprover);
            }
        }
        let change = NoticeChange { draft: Some(false), approved_by: Some(approver.id), ..Default::default() };
        let notice = self.store.update_notice(id, change, now).await.map_err(|e| not_found(e, id))?;
        self.adopt_and_broadcast(&notice, now).await?;
        Ok(notice)
    }

    /// Publishes a notice from a spike alert: its cluster's members become the notice's subscribers and receive it
    /// in one broadcast, each in the language they asked in where `texts` has it; later questions that match are
    /// answered from it automatically.
    #[allow(clippy::too_many_arguments)]
    pub async fn publish_from_alert(
        &self,
        alert: AlertId,
        title: String,
        text: String,
        texts: BTreeMap<String, String>,
        state: NoticeState,
        author: &Agent,
        now: Timestamp,
    ) -> Result<Notice, NoticeError> {
        admin(author)?;
        let a = self.store.alert(alert).await.map_err(|e| match e {
            StoreError::NotFound { .. } => NoticeError::AlertNotFound(alert),
            e => e.into(),
        })?;
        // One outage, one notice: a second admin publishing from the same alert (or after a notice published by
        // hand took the cluster in) would reach nobody and leave two notices for one outage.
        if let Ok(cluster) = self.store.cluster(a.cluster).await
            && let Some(notice) = cluster.notice
        {
            return Err(NoticeError::AlreadyAnswered { alert, notice });
        }
        let input = NoticeInput {
            title,
            text,
            texts,
            services: vec![a.service],
            regions: a.region.iter().cloned().collect(),
            state,
            draft: false,
            paid_broadcast: false,
        };
        check(&input)?;
        let notice = self
            .store
            .create_notice(NewNotice {
                title: input.title.trim().to_owned(),
                text: input.text.trim().to_owned(),
                texts: input.texts,
                services: input.services,
                regions: input.regions,
                state,
                draft: self.four_eyes,
                paid_broadcast: false,
                cluster: Some(a.cluster),
                author: Some(author.id),
                approved_by: None,
                at: now,
            })
            .await?;
        let moved = match &self.pipeline {
            Some(pipeline) => pipeline.publish_from_cluster(a.cluster, notice.id).await,
            // The cluster's members move to the notice in the database; the decider's engine learns of it when its
            // clock adopts the clusters the notice covers.
            None => self.store.close_cluster(a.cluster, Some(notice.id), now).await,
        };
        match moved {
            // A cluster that expired or became a notice already has no members left to move.
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.broadcast(&notice, now).await?;
        Ok(notice)
    }

    /// The customers waiting in open clusters that an active notice covers become its subscribers (see
    /// `Pipeline::adopt_clusters`); then the notice's current version goes to every subscriber. The notice is
    /// stored already: when adopting fails, the clock tries again (`adopt_waiting`) rather than the admin, who
    /// would publish it twice.
    async fn adopt_and_broadcast(&self, notice: &Notice, now: Timestamp) -> Result<usize, NoticeError> {
        if notice.is_active()
            && let Some(pipeline) = &self.pipeline
            && let Err(e) = pipeline.adopt_clusters(notice, now).await
        {
            tracing::warn!(notice = %notice.id, error = %e, "adopting the clusters the notice covers failed; the clock tries again");
        }
        self.broadcast(notice, now).await
    }

    /// Run by the clock on every instance: on the decider, the open clusters that an active notice covers close into
    /// it, and their members get the notice's current version. This covers a notice published on an instance that
    /// does not decide, and a question decided while its notice was being published. Returns the clusters adopted.
    pub async fn adopt_waiting(&self, now: Timestamp) -> Result<usize, NoticeError> {
        self.adopt(now, false).await
    }

    /// `adopt_waiting`, but only when an active notice is new or has a new version since the last pass: one read of
    /// the active notices otherwise, cheap enough for every couple of seconds, so that a notice published on another
    /// instance or from the command line reaches the waiting customers soon. The full pass stays on the slower clock
    /// for a question decided while its notice was being published.
    pub async fn adopt_new(&self, now: Timestamp) -> Result<usize, NoticeError> {
        self.adopt(now, true).await
    }

    async fn adopt(&self, now: Timestamp, only_when_changed: bool) -> Result<usize, NoticeError> {
        let Some(pipeline) = self.pipeline.as_ref().filter(|p| webcare_domain::Intake::deciding(p.as_ref())) else {
            return Ok(0);
        };
        let mut notices = self.store.notices(true).await?;
        let mut seen: Vec<(NoticeId, i64)> = notices.iter().map(|n| (n.id, n.version)).collect();
        seen.sort_unstable();
        if only_when_changed && *self.adopted.lock().expect("not poisoned") == seen {
            return Ok(0);
        }
        // A regional notice first: it is the more specific answer, as it is for a question (`Engine`).
        notices.sort_by_key(|n| n.regions.is_empty());
        let mut adopted = 0;
        for notice in notices {
            let n = pipeline.adopt_clusters(&notice, now).await?;
            if n > 0 {
                self.broadcast(&notice, now).await?;
                adopted += n;
            }
        }
        // Only after a pass that went through: a failed one is tried again on the next tick.
        *self.adopted.lock().expect("not poisoned") = seen;
        Ok(adopted)
    }

    /// Queues the notice's current version for every subscriber, once each, and cancels older versions that have
    /// not gone out yet. Returns how many rows were new.
    pub async fn broadcast(&self, notice: &Notice, now: Timestamp) -> Result<usize, NoticeError> {
        if notice.draft {
            return Ok(0);
        }
        let prefix = format!("notice:{}:v", notice.id);
        let current = format!("notice:{}:v{}:", notice.id, notice.version);
        self.store.cancel_outbox_prefix(&prefix, &current).await?;
        // Each subscriber in the language they asked in; announcement channels, read by everyone, in the default.
        let mut targets: Vec<(webcare_domain::ConversationId, Option<String>, bool)> = self
            .store
            .subscribers(SubscriptionTarget::Notice(notice.id))
            .await?
            .into_iter()
            .map(|s| (s.conversation, s.language, false))
            .collect();
        for c in &self.announcements {
            if !targets.iter().any(|(t, _, _)| t == c) {
                targets.push((*c, None, true));
            }
        }
        let default_text = notice_message(notice, None);
        let texts: std::collections::BTreeMap<&str, String> =
            notice.texts.keys().map(|language| (language.as_str(), notice_message(notice, Some(language)))).collect();
        let row = |(conversation, language, announcement): &(webcare_domain::ConversationId, Option<String>, bool)| {
            let (conversation, announcement) = (*conversation, *announcement);
            // The language of the text this subscriber gets: theirs where the notice has it.
            let language = language.as_deref().filter(|l| texts.contains_key(l));
            let text = language.map_or(&default_text, |l| &texts[l]);
            let key = format!("{current}conv:{conversation}");
            let mut new = NewOutbox::message(conversation, text, key, Priority::BROADCAST, now);
            new.extra = json!({"notice": notice.id, "version": notice.version});
            if notice.paid_broadcast {
                new.extra["paid_broadcast"] = json!(true);
            }
            if announcement {
                new.extra["crosspost"] = json!(true);
            }
            if !notice.state.is_active() {
                new.extra["buttons"] =
                    json!([{"text": still_not_working(language).0, "data": talk_to_person(language)}]);
            }
            new
        };
        let mut queued = 0;
        // In batches, each one transaction: a very large broadcast neither holds one open for long nor has all its
        // rows in memory at once (a row is about a kilobyte; 100,000 subscribers would be 100 MB).
        for batch in targets.chunks(1000) {
            let rows: Vec<NewOutbox> = batch.iter().map(row).collect();
            queued += self.store.enqueue_many(&rows, now).await? as usize;
        }
        if queued > 0 {
            self.wake.notify_one();
        }
        tracing::info!(notice = %notice.id, version = notice.version, queued, "notice version queued");
        Ok(queued)
    }

    /// Where the current version's broadcast stands.
    pub async fn progress(&self, id: NoticeId) -> Result<Progress, NoticeError> {
        progress(self.store.as_ref(), id, self.paid_stars_per_message).await
    }
}

/// Where a notice's current version's broadcast stands.
pub async fn progress(store: &dyn Store, id: NoticeId, paid_stars_per_message: f64) -> Result<Progress, NoticeError> {
    let notice = store.notice(id).await.map_err(|e| not_found(e, id))?;
    let per_platform = store.subscriber_counts(SubscriptionTarget::Notice(id)).await?;
    let subscribers = per_platform.iter().map(|(_, n)| n).sum::<i64>();
    let telegram_subscribers =
        per_platform.iter().filter(|(p, _)| *p == webcare_domain::Platform::Telegram).map(|(_, n)| n).sum::<i64>();
    let prefix = format!("notice:{}:v{}:", id, notice.version);
    let (counts, last_minute) = store.outbox_progress(&prefix, Utc::now() - chrono::Duration::seconds(60)).await?;
    let count = |states: &[OutboxState]| counts.iter().filter(|(s, _)| states.contains(s)).map(|(_, n)| n).sum::<i64>();
    let sent = count(&[OutboxState::Sent]);
    let failed = count(&[OutboxState::Failed]);
    let pending = count(&[OutboxState::Pending, OutboxState::Sending]);
    let rate = last_minute as f64 / 60.0;
    let eta = if pending == 0 {
        Some(0.0)
    } else if rate > 0.0 {
        Some(pending as f64 / rate)
    } else {
        None
    };
    Ok(Progress {
        version: notice.version,
        subscribers,
        sent,
        failed,
        pending,
        rate_per_s: rate,
        eta_s: eta,
        paid_broadcast: notice.paid_broadcast,
        telegram_subscribers,
        paid_cost_stars: (telegram_subscribers as f64 * paid_stars_per_message * 100.0).round() / 100.0,
    })
}

/// The text a subscriber receives for a version: the title, the text, and after resolution an invitation to say
/// if it still does not work, in the language of the text where the notice has one for `language`, and in Dutch
/// and English after the default text (whose language webcare does not know).
pub fn notice_message(notice: &Notice, language: Option<&str>) -> String {
    let language = language.filter(|l| notice.texts.contains_key(*l));
    let text = language.map_or(notice.text.as_str(), |l| notice.text_for(l));
    if notice.state.is_active() {
        format!("{}\n\n{}", notice.title, text)
    } else {
        format!("{}\n\n{}\n\n{}", notice.title, text, still_not_working(language).1)
    }
}

/// After a resolution: the button's label and the invitation, in `language` (Dutch and English for any other).
fn still_not_working(language: Option<&str>) -> (&'static str, &'static str) {
    match language {
        Some("nl") => ("Nog steeds last?", "Nog steeds last? Antwoord hier, dan openen we een persoonlijke zaak."),
        Some("en") => ("Still not working?", "Still not working? Reply here and we open a personal case."),
        _ => (
            "Nog steeds last? / Still not working?",
            "Nog steeds last? Antwoord hier, dan openen we een persoonlijke zaak. / Still not working? Reply here and we \
             open a personal case.",
        ),
    }
}

fn not_found(e: StoreError, id: NoticeId) -> NoticeError {
    match e {
        StoreError::NotFound { .. } => NoticeError::NotFound(id),
        e => e.into(),
    }
}

/// A service and region the conversation's latest classified message named, if any.
pub fn scope_of(messages: &[webcare_domain::InboundMessage]) -> (Option<Service>, Option<String>) {
    for m in messages.iter().rev() {
        let Some(d) = &m.decision else { continue };
        let service = d.get("service").and_then(|s| s.as_str()).and_then(|s| s.parse::<Service>().ok());
        let region = d.get("region").and_then(|r| r.as_str()).map(str::to_owned);
        if service.is_some_and(|s| s != Service::Unknown) || region.is_some() {
            return (service, region);
        }
    }
    (None, None)
}

/// Whether an active notice speaks for this ticket: same service (or a nationwide, any-service notice) and, where
/// both name one, the same region. Outage tickets with nothing known see every active notice.
pub fn covers(notice: &Notice, ticket: &Ticket, service: Option<Service>, region: Option<&str>) -> bool {
    if !notice.is_active() {
        return false;
    }
    let region_ok = match region {
        Some(r) => notice.regions.is_empty() || notice.regions.iter().any(|n| n.eq_ignore_ascii_case(r)),
        None => true,
    };
    match service {
        Some(s) if s != Service::Unknown => {
            (notice.services.is_empty() || notice.services.contains(&s) || notice.services.contains(&Service::Unknown))
                && region_ok
        }
        _ => ticket.category == "outage" && region_ok,
    }
}

/// The active notices that cover a ticket, judged by what its conversation's messages named (see [`covers`]).
pub async fn covering(store: &dyn Store, ticket: &Ticket) -> Result<Vec<Notice>, StoreError> {
    let (inbound, _) = store.transcript(ticket.conversation).await?;
    let (service, region) = scope_of(&inbound);
    let notices = store.notices(true).await?;
    Ok(notices.into_iter().filter(|n| covers(n, ticket, service, region.as_deref())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(texts: &[(&str, &str)]) -> Notice {
        let at = chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("a valid time");
        Notice {
            id: NoticeId(1),
            title: "Storing Utrecht".into(),
            state: NoticeState::Resolved,
            services: vec![Service::Internet],
            regions: vec!["Utrecht".into()],
            text: "Het internet werkt weer.".into(),
            texts: texts.iter().map(|(l, t)| ((*l).to_owned(), (*t).to_owned())).collect(),
            version: 2,
            draft: false,
            cluster: None,
            paid_broadcast: false,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn the_invitation_after_a_resolution_speaks_the_language_of_the_text() {
        let notice = resolved(&[("en", "The internet works again."), ("nl", "Het internet in Utrecht werkt weer.")]);
        let en = notice_message(&notice, Some("en"));
        assert!(
            en.ends_with("The internet works again.\n\nStill not working? Reply here and we open a personal case.")
        );
        let nl = notice_message(&notice, Some("nl"));
        assert!(nl.ends_with("werkt weer.\n\nNog steeds last? Antwoord hier, dan openen we een persoonlijke zaak."));
        // The default text's language is not known: the invitation comes in both, also to a subscriber whose
        // language has no text of its own.
        let default = resolved(&[]);
        for language in [None, Some("nl"), Some("en"), Some("fr")] {
            let text = notice_message(&default, language);
            assert!(
                text.contains("Het internet werkt weer.\n\nNog steeds last?") && text.ends_with("a personal case.")
            );
        }
        assert_eq!(still_not_working(Some("nl")).0, "Nog steeds last?");
    }
}
