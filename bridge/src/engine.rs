//! The decision engine: a state machine on an explicit clock that decides what happens to each classified message.
//!
//! Outage questions are answered from an active notice whose scope covers them, or join an outage cluster (same
//! account, same service, compatible region, inside a sliding window) and get a holding answer. A cluster growing
//! faster than its baseline raises one spike alert, and again only when it has grown markedly. A cluster that has not
//! become a notice within the grace period expires and its members become tickets ([`Engine::tick`]). Cases become
//! tickets, private data in public moves the conversation to a private chat, floods from one customer are merged.
//!
//! Time is always passed in; the engine never reads the wall clock, so tests and replays run on a simulated clock.
//! The whole state is [`EngineState`], which serialises with serde so the storage layer can persist it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use webcare_domain::{ClusterId, ClusterState, Notice, NoticeId, Service, SubscriptionTarget, Timestamp};

use crate::classify::{Category, Classification, Classifier, Intent, Language, Reason};
use crate::region::Region;

/// What webcare does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Answered from an active notice; the customer is subscribed to it.
    AutoAnswer,
    /// An outage question without a notice: a holding answer, and a subscription to its cluster.
    HoldAndSubscribe,
    /// A person handles it (a new ticket, or the customer's open one).
    Ticket,
    /// Private data in a public conversation: continue in private, without repeating the data.
    MovePrivate,
    /// Nothing to do.
    Ignore,
}

impl Action {
    pub const ALL: [Action; 5] =
        [Action::AutoAnswer, Action::HoldAndSubscribe, Action::Ticket, Action::MovePrivate, Action::Ignore];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::AutoAnswer => "auto_answer",
            Action::HoldAndSubscribe => "hold_and_subscribe",
            Action::Ticket => "ticket",
            Action::MovePrivate => "move_private",
            Action::Ignore => "ignore",
        }
    }
}

/// The engine's tunables. Durations are in seconds so the struct reads well in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// A message joins a cluster whose last message is at most this old.
    pub window_secs: i64,
    /// A spike needs at least this many distinct customers in `spike_window_secs`.
    pub spike_min_customers: usize,
    pub spike_window_secs: i64,
    /// ... and at least this many times the usual count for that account, service and region in such a window.
    pub spike_factor: f64,
    /// The usual count is taken over this many past days.
    pub baseline_days: i64,
    /// A cluster alerts again when its customers reach this multiple of the count at its last alert.
    pub realert_factor: f64,
    /// A cluster that is no notice this long after its first message expires; its members become tickets.
    pub grace_secs: i64,
    /// Flood control: at most `flood_max` messages per customer in `flood_window_secs`.
    pub flood_max: usize,
    pub flood_window_secs: i64,
    /// Whether an outage question without a region may join a cluster that has one (and the other way round).
    pub unknown_region_joins: bool,
    /// Whether outage questions that name no region are grouped with each other. On for an operator whose
    /// customers ask "storing?" without a place during a national outage; off where region-less complaints are
    /// mostly unrelated (large providers with many local networks), each then waits in a cluster of its own.
    /// Even when on, only messages that say the outage is shared are grouped this way, in a cluster that names a
    /// service: of the same service, or naming none ("anyone else?").
    pub cluster_without_region: bool,
    /// Sample messages (private data masked) kept per cluster for alerts.
    pub samples: usize,
    /// Answers per language code (`nl`, `en`); the default language's text is used when a language has none.
    pub holding: BTreeMap<String, String>,
    pub move_private: BTreeMap<String, String>,
    pub flood_notice: BTreeMap<String, String>,
    /// The answer to a message that opens a new case (a ticket), so the customer knows a person will answer.
    pub case_opened: BTreeMap<String, String>,
    /// Added to `case_opened` when the first answer's due time is known; `{when}` becomes "vandaag vóór 14:30",
    /// "by 14:30 today" and the like (see [`LocalDue::phrase`]).
    pub case_due: BTreeMap<String, String>,
    /// The language of answers when a message shows none.
    pub default_language: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let texts =
            |nl: &str, en: &str| BTreeMap::from([("nl".to_owned(), nl.to_owned()), ("en".to_owned(), en.to_owned())]);
        EngineConfig {
            window_secs: 30 * 60,
            spike_min_customers: 5,
            spike_window_secs: 10 * 60,
            spike_factor: 3.0,
            baseline_days: 7,
            realert_factor: 2.0,
            grace_secs: 60 * 60,
            flood_max: 5,
            flood_window_secs: 10,
            unknown_region_joins: false,
            cluster_without_region: true,
            samples: 5,
            holding: texts(
                "Bedankt voor je melding. We zoeken uit of er een storing is en houden je hier op de hoogte zodra we meer weten.",
                "Thanks for letting us know. We're checking whether there is an outage and will keep you posted here as soon as we know more.",
            ),
            move_private: texts(
                "Je bericht bevat persoonlijke gegevens. We helpen je verder in een privégesprek; deel zulke gegevens liever niet openbaar.",
                "Your message contains personal details. We'll help you further in a private chat; please don't share such details in public.",
            ),
            flood_notice: texts(
                "We hebben je berichten ontvangen en voegen ze samen; een medewerker leest ze allemaal.",
                "We've received your messages and are combining them; a person will read them all.",
            ),
            case_opened: texts(
                "Bedankt voor je bericht. We hebben er een zaak van gemaakt; een medewerker antwoordt je hier zo snel mogelijk.",
                "Thanks for your message. We've opened a case for it; a person will answer you here as soon as possible.",
            ),
            case_due: texts("We proberen je {when} te antwoorden.", "We aim to answer {when}."),
            default_language: "nl".to_owned(),
        }
    }
}

impl EngineConfig {
    fn text<'a>(&'a self, texts: &'a BTreeMap<String, String>, language: &str) -> &'a str {
        texts
            .get(language)
            .or_else(|| texts.get(&self.default_language))
            .or_else(|| texts.values().next())
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// A message as the engine sees it. Ids are strings so every platform's and a replay file's ids fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incoming {
    pub id: String,
    /// The customer; several messages of one customer count once in a cluster.
    pub customer: String,
    pub conversation: String,
    /// The company account the message was sent to; clusters and notices never span accounts.
    pub account: String,
    /// Whether others can read the conversation.
    pub public: bool,
    pub at: Timestamp,
    pub text: String,
    /// A location hint from the platform.
    pub place: Option<String>,
    /// The person's language as the platform says it (`nl`, `en`): answers are in it when the text shows no
    /// language of its own (a lone "?", a message in a language webcare has no lexicon for).
    pub language: Option<String>,
}

/// An answer to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub language: String,
    pub text: String,
}

/// What to do with one message (or, after a cluster expired, with one of its members).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub message: String,
    pub customer: String,
    pub conversation: String,
    pub at: Timestamp,
    pub action: Action,
    pub intent: Intent,
    pub category: Category,
    pub service: Service,
    pub region: Option<String>,
    /// Kinds of private data found (never the data).
    pub pii: Vec<String>,
    pub cluster: Option<ClusterId>,
    pub notice: Option<NoticeId>,
    pub reply: Option<Reply>,
    pub subscribe: Option<SubscriptionTarget>,
    /// Merged into the customer's earlier messages by flood control.
    pub merged: bool,
    pub reasons: Vec<Reason>,
}

/// A cluster growing faster than its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpikeAlert {
    pub id: u64,
    pub cluster: ClusterId,
    pub account: String,
    pub service: Service,
    pub region: Option<String>,
    /// Distinct customers in the cluster.
    pub count: usize,
    /// Distinct customers in the last spike window, and the usual count for such a window.
    pub recent: usize,
    pub baseline: f64,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
    pub at: Timestamp,
    /// Sample messages with private data masked.
    pub samples: Vec<String>,
    /// A draft notice text per language.
    pub draft: BTreeMap<String, String>,
}

/// Everything one call to [`Engine::handle`] produced, in time order: expiries first, then the decision, then alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub expired: Vec<Decision>,
    pub decision: Decision,
    pub alerts: Vec<SpikeAlert>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Who counts towards the cluster's size: the asker, or for a copy of another member's long text (a repost),
    /// the customer who wrote it first.
    pub customer: String,
    /// Who wrote this message. Empty in a state saved before askers were kept apart: then `customer`.
    #[serde(default)]
    pub asker: String,
    pub conversation: String,
    pub message: String,
    pub language: String,
    pub joined_at: Timestamp,
    /// The folded text: the same text posted again (a copy, a retweet) counts as the same customer.
    #[serde(default)]
    pub folded: String,
}

impl Member {
    /// The customer who wrote this message.
    pub fn asker(&self) -> &str {
        if self.asker.is_empty() { &self.customer } else { &self.asker }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: ClusterId,
    pub account: String,
    pub service: Service,
    pub region: Option<Region>,
    pub state: ClusterState,
    pub members: Vec<Member>,
    pub alerted_at_members: usize,
    pub notice: Option<NoticeId>,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
    pub samples: Vec<String>,
    /// Whether a member said that others are affected or named an outage outright ("anyone else?", "storing");
    /// only such clusters take in members without a region.
    #[serde(default)]
    pub widespread: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    /// Times of the customer's recent messages, for flood control.
    pub recent: VecDeque<Timestamp>,
    /// Whether the customer was told about the current flood.
    pub told: bool,
    pub last: Option<LastDecision>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastDecision {
    pub message: String,
    pub action: Action,
    pub cluster: Option<ClusterId>,
    pub notice: Option<NoticeId>,
}

/// The engine's whole state; persist it to survive a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    pub next_cluster: i64,
    pub next_alert: u64,
    /// Clusters still open (collecting or waiting for the grace period), oldest first.
    pub clusters: Vec<Cluster>,
    pub customers: BTreeMap<String, CustomerState>,
    /// Outage questions per `account/service/region` and hour, for the baseline.
    pub history: BTreeMap<String, VecDeque<(i64, u32)>>,
    /// The flood window (by number since the epoch) in which the customers' flood counters were last trimmed.
    #[serde(default)]
    pub trimmed_window: i64,
}

/// The engine. Cheap to create; share the classifier between engines.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    classifier: Arc<Classifier>,
    state: EngineState,
    /// Lookups over the open clusters' members, built from the state when first needed (never saved), so that a
    /// message joining a cluster of thousands costs no walk over its members.
    indexes: HashMap<ClusterId, ClusterIndex>,
}

impl Engine {
    pub fn new(config: EngineConfig, classifier: Arc<Classifier>) -> Engine {
        Engine::with_state(config, classifier, EngineState::default())
    }

    /// An engine that continues from a persisted state.
    pub fn with_state(config: EngineConfig, classifier: Arc<Classifier>, state: EngineState) -> Engine {
        Engine { config, classifier, state, indexes: HashMap::new() }
    }

    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// Distinct customers in an open cluster (a repost counts as the customer who wrote it first).
    pub fn cluster_customers(&mut self, id: ClusterId) -> Option<usize> {
        let cluster = self.state.clusters.iter().find(|c| c.id == id)?;
        Some(self.indexes.entry(id).or_default().caught_up(&cluster.members).customers.len())
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Classifies from now on with other data (an admin changed a lexicon); clusters, notices and counters stay.
    pub fn set_classifier(&mut self, classifier: Arc<Classifier>) {
        self.classifier = classifier;
    }

    /// Classifies and handles a message. `notices` are the notices of the message's account.
    pub fn process(&mut self, msg: &Incoming, notices: &[Notice]) -> Output {
        let class = self.classifier.classify(&msg.text, msg.place.as_deref());
        self.handle(msg, &class, notices)
    }

    /// Handles a classified message at `msg.at`. Clusters whose grace period ended by then expire first.
    pub fn handle(&mut self, msg: &Incoming, class: &Classification, notices: &[Notice]) -> Output {
        let expired = self.tick(msg.at);
        let hint = msg.language.as_deref().and_then(webcare_domain::answer_language);
        let mut reasons = class.reasons.clone();
        let language = match (class.language, hint) {
            (Language::Nl | Language::En, _) | (_, None) => self.language(class.language),
            (_, Some(hint)) => {
                reasons.push(Reason::PlatformLanguage { language: hint.to_owned() });
                hint.to_owned()
            }
        };
        let mut decision = Decision {
            message: msg.id.clone(),
            customer: msg.customer.clone(),
            conversation: msg.conversation.clone(),
            at: msg.at,
            action: Action::Ignore,
            intent: class.intent,
            category: class.category,
            service: class.service,
            region: class.region.as_ref().map(|r| r.name.clone()),
            pii: class.pii_kinds(),
            cluster: None,
            notice: None,
            reply: None,
            subscribe: None,
            merged: false,
            reasons,
        };
        let mut alerts = Vec::new();

        if self.flooded(msg) {
            let customer = self.state.customers.entry(msg.customer.clone()).or_default();
            decision.merged = true;
            if let Some(last) = &customer.last {
                decision.action = last.action;
                decision.cluster = last.cluster;
                decision.notice = last.notice;
            } else {
                decision.action = Action::Ticket;
            }
            if !customer.told {
                customer.told = true;
                decision.reply = Some(self.reply(&self.config.flood_notice, &language));
            }
            rule(&mut decision, "flood-merged");
            return Output { expired, decision, alerts };
        }

        if msg.public && !class.pii.is_empty() {
            decision.action = Action::MovePrivate;
            decision.reply = Some(self.reply(&self.config.move_private, &language));
            rule(&mut decision, "private-data-in-public");
        } else {
            match class.intent {
                Intent::Outage => {
                    self.record_history(msg, class);
                    if let Some(notice) = self.matching_notice(class, notices) {
                        decision.action = Action::AutoAnswer;
                        decision.notice = Some(notice.id);
                        decision.subscribe = Some(SubscriptionTarget::Notice(notice.id));
                        decision.reply =
                            Some(Reply { language: language.clone(), text: notice.text_for(&language).to_owned() });
                        rule(&mut decision, "notice-match");
                        note(&mut decision, format!("notice {} v{}", notice.id, notice.version));
                    } else {
                        // Every asker gets a holding answer once, a reposter too; a repost only does not count
                        // as another customer towards a spike.
                        let (cluster, joined) = self.join_cluster(msg, class, &language);
                        decision.action = Action::HoldAndSubscribe;
                        decision.cluster = Some(cluster);
                        decision.subscribe = Some(SubscriptionTarget::Cluster(cluster));
                        if joined {
                            decision.reply = Some(self.reply(&self.config.holding, &language));
                        }
                        rule(&mut decision, if joined { "cluster-join" } else { "cluster-again" });
                        if let Some(alert) = self.check_spike(cluster, msg.at) {
                            note(&mut decision, format!("spike alert {}", alert.id));
                            alerts.push(alert);
                        }
                    }
                }
                Intent::Case => {
                    decision.action = Action::Ticket;
                    rule(&mut decision, "case-ticket");
                }
                // In a private chat, a sentence webcare cannot read ("ik snap de brief niet die ik kreeg", "hallo,
                // ik heb een probleem met mijn mail") is for a person, as a message in another language is: silence
                // would drop a case. Two words or less ("ok dan", "hoi") are no sentence. In a server channel or a
                // group, where people also talk among themselves, unread words are left alone.
                Intent::Other if !msg.public && class.unread() && msg.text.split_whitespace().count() >= 3 => {
                    decision.action = Action::Ticket;
                    rule(&mut decision, "private-unread-ticket");
                }
                Intent::Other => {
                    decision.action = Action::Ignore;
                    rule(&mut decision, "other-ignore");
                }
            }
        }
        let customer = self.state.customers.entry(msg.customer.clone()).or_default();
        customer.last = Some(LastDecision {
            message: msg.id.clone(),
            action: decision.action,
            cluster: decision.cluster,
            notice: decision.notice,
        });
        Output { expired, decision, alerts }
    }

    /// Advances the clock: clusters whose grace period has ended without a notice expire, and each of their
    /// customers gets a ticket decision (for their latest message in the cluster).
    pub fn tick(&mut self, now: Timestamp) -> Vec<Decision> {
        let grace = TimeDelta::seconds(self.config.grace_secs);
        let mut out = Vec::new();
        // Open clusters younger than the grace period stay as they are: the common case, checked without moving
        // anything (one comparison of times per cluster).
        let due = now - grace;
        if self.state.clusters.iter().any(|c| c.state != ClusterState::Open || c.first_at <= due) {
            self.expire_due(now, grace, &mut out);
        }
        // Customers idle for longer than the flood window need no state at all: their last decision only stands in
        // for messages merged during a flood, and a flood needs messages in the window, each of which sets it anew.
        // Trimming walks every customer, so it runs once per flood window of the clock, not per message; a
        // customer's own counter is trimmed whenever they write (`flooded`), so decisions never depend on it.
        let window_secs = self.config.flood_window_secs.max(1);
        let this_window = now.timestamp().div_euclid(window_secs);
        if this_window != self.state.trimmed_window {
            self.state.trimmed_window = this_window;
            let open: HashSet<ClusterId> = self.state.clusters.iter().map(|c| c.id).collect();
            self.indexes.retain(|id, _| open.contains(id));
            let window = TimeDelta::seconds(window_secs);
            self.state.customers.retain(|_, c| {
                while c.recent.front().is_some_and(|t| now - *t >= window) {
                    c.recent.pop_front();
                }
                !c.recent.is_empty()
            });
        }
        out
    }

    /// Takes the clusters whose grace period ended out of the open ones, with a ticket decision for each customer
    /// (their latest message in the cluster), and drops clusters that are no longer open.
    fn expire_due(&mut self, now: Timestamp, grace: TimeDelta, out: &mut Vec<Decision>) {
        let mut keep = Vec::with_capacity(self.state.clusters.len());
        for mut cluster in std::mem::take(&mut self.state.clusters) {
            if cluster.state == ClusterState::Open && now - cluster.first_at >= grace {
                cluster.state = ClusterState::Expired;
                let expired_at = cluster.first_at + grace;
                for m in latest_per_asker(&cluster.members) {
                    out.push(Decision {
                        message: m.message.clone(),
                        customer: m.asker().to_owned(),
                        conversation: m.conversation.clone(),
                        at: expired_at,
                        action: Action::Ticket,
                        intent: Intent::Outage,
                        category: Category::Outage,
                        service: cluster.service,
                        region: cluster.region.as_ref().map(|r| r.name.clone()),
                        pii: Vec::new(),
                        cluster: Some(cluster.id),
                        notice: None,
                        reply: None,
                        subscribe: None,
                        merged: false,
                        reasons: vec![
                            Reason::Rule { rule: "cluster-expired".into() },
                            Reason::Note {
                                note: format!(
                                    "cluster {} had no notice after {} min",
                                    cluster.id,
                                    self.config.grace_secs / 60
                                ),
                            },
                        ],
                    });
                }
            } else if cluster.state == ClusterState::Open {
                keep.push(cluster);
            }
        }
        self.state.clusters = keep;
    }

    /// A notice was published from a cluster: the cluster closes and every member is subscribed to the notice.
    /// Returns the members to subscribe (customer, conversation), each once.
    pub fn publish_notice(&mut self, cluster: ClusterId, notice: NoticeId) -> Vec<(String, String)> {
        let Some(pos) = self.state.clusters.iter().position(|c| c.id == cluster) else { return Vec::new() };
        let mut c = self.state.clusters.remove(pos);
        c.state = ClusterState::Noticed;
        c.notice = Some(notice);
        let mut out: Vec<(String, String)> = Vec::new();
        for m in &c.members {
            let pair = (m.asker().to_owned(), m.conversation.clone());
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
        out
    }

    /// The acknowledgement for a message whose decision opened a new case, in the language the message was
    /// written in (else the one the platform gave for the person, else the default language), with when a person
    /// is expected to answer where `due` says.
    pub fn case_opened(&self, decision: &Decision, due: Option<LocalDue>) -> Reply {
        // `handle` recorded the platform's language where it chose the answers' (the text showed none).
        let language = decision
            .reasons
            .iter()
            .find_map(|r| match r {
                Reason::PlatformLanguage { language } => Some(language.clone()),
                _ => None,
            })
            .unwrap_or_else(|| {
                let written = decision.reasons.iter().find_map(|r| match r {
                    Reason::Language { language, .. } => Some(*language),
                    _ => None,
                });
                self.language(written.unwrap_or(Language::Unknown))
            });
        let mut reply = self.reply(&self.config.case_opened, &language);
        if let Some(due) = due {
            let when = due.phrase(&reply.language);
            let sentence = self.config.text(&self.config.case_due, &reply.language).replace("{when}", &when);
            reply.text = format!("{} {sentence}", reply.text);
        }
        reply
    }

    /// The open cluster with this id, if any.
    pub fn cluster(&self, id: ClusterId) -> Option<&Cluster> {
        self.state.clusters.iter().find(|c| c.id == id)
    }

    fn language(&self, language: Language) -> String {
        match language {
            Language::Nl => "nl".into(),
            Language::En => "en".into(),
            Language::Other | Language::Unknown => self.config.default_language.clone(),
        }
    }

    fn reply(&self, texts: &BTreeMap<String, String>, language: &str) -> Reply {
        Reply { language: language.to_owned(), text: self.config.text(texts, language).to_owned() }
    }

    /// Records the message for flood control; true when it is beyond the customer's allowance.
    fn flooded(&mut self, msg: &Incoming) -> bool {
        let window = TimeDelta::seconds(self.config.flood_window_secs);
        let max = self.config.flood_max.max(1);
        let c = self.state.customers.entry(msg.customer.clone()).or_default();
        while c.recent.front().is_some_and(|t| msg.at - *t >= window) {
            c.recent.pop_front();
        }
        if c.recent.len() >= max {
            return true;
        }
        c.recent.push_back(msg.at);
        // Below the limit again: a later flood is told about again.
        c.told = false;
        false
    }

    fn matching_notice<'n>(&self, class: &Classification, notices: &'n [Notice]) -> Option<&'n Notice> {
        let active = notices.iter().filter(|n| n.is_active() && covers_service(n, class.service));
        // A regional notice that covers the message is more specific than a nationwide one.
        let mut nationwide = None;
        for n in active {
            if n.regions.is_empty() {
                nationwide = nationwide.or(Some(n));
            } else if self.covers_region(n, class.region.as_ref()) {
                return Some(n);
            }
        }
        nationwide
    }

    /// Whether a notice's regions cover a region: one of them holds it or is compatible with it, or the notice names
    /// none (nationwide). A regional notice does not cover a question or cluster that names no place, nor one district
    /// of a city when it names another (a notice for Leidsche Rijn does not answer Vleuten; one for Utrecht does).
    fn covers_region(&self, n: &Notice, region: Option<&Region>) -> bool {
        if n.regions.is_empty() {
            return true;
        }
        let Some(region) = region else { return false };
        n.regions.iter().any(|r| self.classifier.resolve_region(r).is_some_and(|scope| region.answered_by(&scope)))
    }

    /// The open clusters an active notice covers, as it would cover a question with the cluster's service and
    /// region. When an admin publishes a notice, the customers already waiting in these clusters (who got the
    /// holding answer before the notice existed) are its subscribers too: nobody who asked is left out, and no
    /// ticket is opened for them when the grace period ends. See `publish_notice`.
    pub fn clusters_covered_by(&self, notice: &Notice) -> Vec<ClusterId> {
        if !notice.is_active() {
            return Vec::new();
        }
        self.state
            .clusters
            .iter()
            .filter(|c| {
                c.state == ClusterState::Open
                    && covers_service(notice, c.service)
                    && self.covers_region(notice, c.region.as_ref())
            })
            .map(|c| c.id)
            .collect()
    }

    /// Whether a message's region fits a cluster's. Two messages that name no place are grouped only when both say
    /// the outage is shared ("anyone else?", "storing") and the cluster names a service: a large provider receives
    /// many unrelated complaints without a place at any time, and a vague one ("fix it!") says too little to group.
    /// A shared report that names no service ("is er een storing?") joins such a cluster (see `same_service`); two
    /// of them do not start one.
    fn compatible(&self, cluster: &Cluster, class: &Classification) -> bool {
        match (&cluster.region, &class.region) {
            (Some(a), Some(b)) => a.compatible(b),
            (None, None) => {
                self.config.cluster_without_region
                    && cluster.widespread
                    && class.widespread
                    && (cluster.service != Service::Unknown || class.service != Service::Unknown)
            }
            _ => self.config.unknown_region_joins,
        }
    }

    /// The same service; or a question that names no service but a place where a cluster is open ("storing in
    /// Utrecht?" while Utrecht's internet cluster grows), which is most likely about that outage; or, where neither
    /// names a place, a question that names no service while others report a shared outage ("anyone else?" while
    /// the provider's internet cluster grows), which `compatible` allows only when both say the outage is shared.
    fn same_service(&self, cluster: &Cluster, class: &Classification) -> bool {
        let unnamed = class.service == Service::Unknown || cluster.service == Service::Unknown;
        cluster.service == class.service || (unnamed && cluster.region.is_some() == class.region.is_some())
    }

    /// A report that names no place but says the outage is shared ("hier ook", "is er een storing?") while one
    /// outage of the provider is open somewhere is most likely about that one: it joins the account's open cluster
    /// that names a place, when there is exactly one it could be about (the same service, or either names none).
    /// With two ("storing in Utrecht" and "storing in Groningen" at once) it cannot tell and joins neither.
    fn only_placed_cluster(&self, msg: &Incoming, class: &Classification) -> Option<usize> {
        if class.region.is_some() || !class.widespread || !self.config.cluster_without_region {
            return None;
        }
        let mut open = self.state.clusters.iter().enumerate().filter(|(_, c)| {
            self.open_for(c, msg)
                && c.region.is_some()
                && (c.service == class.service || c.service == Service::Unknown || class.service == Service::Unknown)
        });
        let (first, _) = open.next()?;
        open.next().is_none().then_some(first)
    }

    /// An open cluster of the message's account whose window holds the message. A message that arrives late (stored
    /// by another instance, or delivered late by its platform) may be older than the cluster's first; within the
    /// window it is part of it all the same.
    fn open_for(&self, c: &Cluster, msg: &Incoming) -> bool {
        let window = TimeDelta::seconds(self.config.window_secs);
        c.state == ClusterState::Open
            && msg.at - c.last_at <= window
            && c.first_at - msg.at <= window
            && c.account == msg.account
    }

    /// Joins the best open cluster or starts one; returns the cluster and whether the asker is new in it.
    fn join_cluster(&mut self, msg: &Incoming, class: &Classification, language: &str) -> (ClusterId, bool) {
        let candidate = self
            .state
            .clusters
            .iter()
            .enumerate()
            // The cheap tests first: this runs over every cluster for every outage question.
            .filter(|(_, c)| self.open_for(c, msg) && self.same_service(c, class) && self.compatible(c, class))
            .max_by_key(|(_, c)| c.last_at)
            .map(|(i, _)| i)
            .or_else(|| self.only_placed_cluster(msg, class));
        let index = match candidate {
            Some(i) => i,
            None => {
                self.state.next_cluster += 1;
                self.state.clusters.push(Cluster {
                    id: ClusterId(self.state.next_cluster),
                    account: msg.account.clone(),
                    service: class.service,
                    region: class.region.clone(),
                    state: ClusterState::Open,
                    members: Vec::new(),
                    alerted_at_members: 0,
                    notice: None,
                    first_at: msg.at,
                    last_at: msg.at,
                    samples: Vec::new(),
                    widespread: class.widespread,
                });
                self.state.clusters.len() - 1
            }
        };
        let sample = (self.state.clusters[index].samples.len() < self.config.samples)
            .then(|| self.classifier.mask(&msg.text).chars().take(280).collect::<String>());
        let folded = copy_key(&msg.text);
        let cluster = &mut self.state.clusters[index];
        // A cluster that began with questions naming no service ("storing?") is about the service the first
        // member who names one says it is: its alert, draft notice and scope follow.
        if cluster.service == Service::Unknown {
            cluster.service = class.service;
        }
        let members = self.indexes.entry(cluster.id).or_default().caught_up(&cluster.members);
        // A copy of a member's long text is that member again, so reposts do not fake a spike. Short texts
        // ("storing?") are left alone: many people write them alike.
        let customer = members
            .by_copy
            .get(&folded)
            .filter(|_| !folded.is_empty())
            .map_or_else(|| msg.customer.clone(), |first| first.clone());
        let new_customer = !members.customers.contains(&customer);
        let new_asker = !members.askers.contains(&msg.customer);
        cluster.members.push(Member {
            customer,
            asker: msg.customer.clone(),
            conversation: msg.conversation.clone(),
            message: msg.id.clone(),
            language: language.to_owned(),
            joined_at: msg.at,
            folded,
        });
        cluster.first_at = cluster.first_at.min(msg.at);
        cluster.last_at = cluster.last_at.max(msg.at);
        cluster.widespread |= class.widespread;
        if let Some(s) = sample.filter(|_| new_customer) {
            cluster.samples.push(s);
        }
        (cluster.id, new_asker)
    }

    fn history_key(account: &str, service: Service, region: Option<&Region>) -> String {
        format!("{account}/{service}/{}", region.map_or("-", |r| r.key.as_str()))
    }

    fn record_history(&mut self, msg: &Incoming, class: &Classification) {
        let key = Self::history_key(&msg.account, class.service, class.region.as_ref());
        let hour = msg.at.timestamp().div_euclid(3600);
        let keep_hours = self.config.baseline_days * 24 + 1;
        let h = self.state.history.entry(key).or_default();
        match h.back_mut() {
            Some((last, n)) if *last == hour => *n += 1,
            _ => h.push_back((hour, 1)),
        }
        while h.front().is_some_and(|(t, _)| hour - *t > keep_hours) {
            h.pop_front();
        }
    }

    /// The usual number of outage questions for a cluster's account, service and region in one spike window,
    /// from the hours of the past `baseline_days` that ended before the current spike window began.
    fn baseline(&self, cluster: &Cluster, now: Timestamp) -> f64 {
        let key = Self::history_key(&cluster.account, cluster.service, cluster.region.as_ref());
        let Some(h) = self.state.history.get(&key) else { return 0.0 };
        let cutoff = (now.timestamp() - self.config.spike_window_secs).div_euclid(3600);
        let oldest = now.timestamp().div_euclid(3600) - self.config.baseline_days * 24;
        let total: u64 = h.iter().filter(|(t, _)| *t < cutoff && *t >= oldest).map(|(_, n)| u64::from(*n)).sum();
        let windows = (self.config.baseline_days * 24 * 3600) as f64 / self.config.spike_window_secs.max(1) as f64;
        total as f64 / windows
    }

    fn check_spike(&mut self, id: ClusterId, now: Timestamp) -> Option<SpikeAlert> {
        let index = self.state.clusters.iter().position(|c| c.id == id)?;
        let count = self.cluster_customers(id)?;
        let cluster = &self.state.clusters[index];
        // The cheap test first: a cluster that alerted has to grow markedly before anything else is counted.
        let grown = cluster.alerted_at_members == 0
            || count as f64 >= self.config.realert_factor * cluster.alerted_at_members as f64;
        if !grown {
            return None;
        }
        // Customers in the spike window are some of the cluster's customers: a cluster with too few of them in all
        // cannot spike, and is not walked for every message that joins it (one text reposted by many is one customer).
        let baseline = self.baseline(cluster, now);
        if count < self.config.spike_min_customers || (count as f64) < self.config.spike_factor * baseline {
            return None;
        }
        let since = now - TimeDelta::seconds(self.config.spike_window_secs);
        let recent: HashSet<&str> =
            cluster.members.iter().filter(|m| m.joined_at > since).map(|m| m.customer.as_str()).collect();
        let recent = recent.len();
        let spiking = recent >= self.config.spike_min_customers && recent as f64 >= self.config.spike_factor * baseline;
        if !spiking {
            return None;
        }
        self.state.next_alert += 1;
        let alert = SpikeAlert {
            id: self.state.next_alert,
            cluster: cluster.id,
            account: cluster.account.clone(),
            service: cluster.service,
            region: cluster.region.as_ref().map(|r| r.name.clone()),
            count,
            recent,
            baseline: (baseline * 100.0).round() / 100.0,
            first_at: cluster.first_at,
            last_at: cluster.last_at,
            at: now,
            samples: cluster.samples.clone(),
            draft: draft_notice(cluster.service, cluster.region.as_ref().map(|r| r.name.as_str())),
        };
        self.state.clusters[index].alerted_at_members = count;
        Some(alert)
    }
}

/// The key under which a message counts as a copy of another: its first twelve folded words, when it has eight
/// words or more. Reposts of one text often differ at the end (cut off, a tag added) or in the mentions before it
/// (stripped by normalisation); two customers rarely write the same twelve words.
pub fn copy_key(text: &str) -> String {
    const COPY_WORDS: usize = 12;
    let norm = crate::normalize::normalize(text);
    if norm.tokens.len() < 8 {
        return String::new();
    }
    let end = norm.tokens.get(COPY_WORDS - 1).map_or(norm.folded.len(), |&(_, e)| e);
    norm.folded[..end].to_owned()
}

/// Whether a notice is about a service: it names it, or names none; a question that names no service ("storing?") is
/// covered by any notice whose region fits.
pub fn covers_service(n: &Notice, service: Service) -> bool {
    n.services.is_empty() || service == Service::Unknown || n.services.contains(&service)
}

fn rule(decision: &mut Decision, rule: &str) {
    decision.reasons.push(Reason::Rule { rule: rule.to_owned() });
}

fn note(decision: &mut Decision, note: String) {
    decision.reasons.push(Reason::Note { note });
}

/// A cluster's members by customer and by copy key, caught up with the member list on each use (members are only
/// ever added).
#[derive(Debug, Default)]
struct ClusterIndex {
    indexed: usize,
    /// Who counts towards the size (a repost counts as its first writer).
    customers: HashSet<String>,
    /// Who wrote a message in the cluster.
    askers: HashSet<String>,
    /// The copy key of a long text, and the customer who wrote it first.
    by_copy: HashMap<String, String>,
}

impl ClusterIndex {
    fn caught_up(&mut self, members: &[Member]) -> &ClusterIndex {
        if members.len() < self.indexed {
            *self = ClusterIndex::default();
        }
        for m in &members[self.indexed..] {
            self.customers.insert(m.customer.clone());
            self.askers.insert(m.asker().to_owned());
            if !m.folded.is_empty() {
                self.by_copy.entry(m.folded.clone()).or_insert_with(|| m.customer.clone());
            }
        }
        self.indexed = members.len();
        self
    }
}

/// Each asker's latest membership, in the order askers joined.
fn latest_per_asker(members: &[Member]) -> Vec<&Member> {
    let mut out: Vec<&Member> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for m in members {
        match at.get(m.asker()) {
            Some(&i) => out[i] = m,
            None => {
                at.insert(m.asker(), out.len());
                out.push(m);
            }
        }
    }
    out
}

/// A draft notice for an alert, in Dutch and English, for an admin to edit before publishing.
/// When a person is expected to answer, on the team's clock: the due time and the date it is now, both local to
/// the SLA's time zone (the engine itself knows no time zones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDue {
    pub at: chrono::NaiveDateTime,
    pub today: chrono::NaiveDate,
}

impl LocalDue {
    /// The due time as a customer reads it: "vandaag vóór 14:30", "morgen vóór 09:00", "maandag 1 december vóór
    /// 09:00" in Dutch; "by 14:30 today", "by 09:00 tomorrow", "by 09:00 on Monday 1 December" otherwise.
    pub fn phrase(&self, language: &str) -> String {
        use chrono::Datelike as _;
        const NL_DAYS: [&str; 7] = ["maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"];
        const NL_MONTHS: [&str; 12] = [
            "januari",
            "februari",
            "maart",
            "april",
            "mei",
            "juni",
            "juli",
            "augustus",
            "september",
            "oktober",
            "november",
            "december",
        ];
        let time = self.at.format("%H:%M");
        let date = self.at.date();
        let days = (date - self.today).num_days();
        if language == "nl" {
            match days {
                ..=0 => format!("vandaag vóór {time}"),
                1 => format!("morgen vóór {time}"),
                _ => format!(
                    "{} {} {} vóór {time}",
                    NL_DAYS[date.weekday().num_days_from_monday() as usize],
                    date.day(),
                    NL_MONTHS[date.month0() as usize]
                ),
            }
        } else {
            match days {
                ..=0 => format!("by {time} today"),
                1 => format!("by {time} tomorrow"),
                _ => format!("by {time} on {}", date.format("%A %-d %B")),
            }
        }
    }
}

pub fn draft_notice(service: Service, region: Option<&str>) -> BTreeMap<String, String> {
    let (nl_service, en_service) = match service {
        Service::Internet => ("internet", "internet"),
        Service::Tv => ("tv", "TV"),
        Service::Mobile => ("het mobiele netwerk", "the mobile network"),
        Service::Landline => ("vaste telefonie", "landline telephony"),
        Service::Unknown => ("onze diensten", "our services"),
    };
    let (nl_where, en_where) = match region {
        Some(r) => (format!(" in de omgeving {r}"), format!(" in the {r} area")),
        None => (String::new(), String::new()),
    };
    BTreeMap::from([
        (
            "nl".to_owned(),
            format!(
                "Er is een storing in {nl_service}{nl_where}. Onze technici onderzoeken de oorzaak. We houden je hier op de hoogte."
            ),
        ),
        (
            "en".to_owned(),
            format!(
                "There is an outage affecting {en_service}{en_where}. Our engineers are investigating. We'll keep you posted here."
            ),
        ),
    ])
}
