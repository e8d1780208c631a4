//! What webcare decided about each stored message, and why: the list an admin filters (console, REST API and
//! command line read one [`query`]), and a stored decision read back as plain lines ([`why`]).
//!
//! An admin who wonders why a customer got the notice, a holding answer or a ticket finds the message here, reads
//! the rule, scores and terms that decided it, and, after changing a lexicon and reloading, sees how the data
//! loaded now reads the same text ([`classification_record`] in the same shape as the stored decision).

use std::collections::HashSet;

use chrono::TimeDelta;
use serde::Serialize;
use serde_json::{Value, json};
use webcare_bridge::engine::Action;
use webcare_bridge::{Category, Classification, Intent, Reason};
use webcare_domain::{DecisionField, InboundFilter, InboundId, Platform, Service, Timestamp};

/// Messages per page when no limit is given.
pub const PAGE: u32 = 50;
/// The most messages one request lists.
pub const MAX_LIMIT: u32 = 500;
/// The furthest back `hours` reaches: a year and a day.
pub const MAX_HOURS: i64 = 24 * 366;
/// The longest text search.
const MAX_SEARCH: usize = 200;

/// The `action` that lists messages the bridge has not decided yet.
pub const UNDECIDED: &str = "undecided";

/// The filter keys, in the order a form shows them.
pub const KEYS: &[&str] = &[
    "action", "intent", "category", "service", "platform", "notice", "cluster", "ticket", "q", "hours", "before",
    "limit",
];

/// A list request: which messages, and how many.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub filter: InboundFilter,
    pub limit: u32,
}

/// The `action` values a filter takes: the bridge's actions and [`UNDECIDED`].
pub fn actions() -> Vec<&'static str> {
    Action::ALL.iter().map(|a| a.as_str()).chain([UNDECIDED]).collect()
}

pub fn intents() -> Vec<&'static str> {
    Intent::ALL.iter().map(|i| i.as_str()).collect()
}

pub fn categories() -> Vec<&'static str> {
    Category::ALL.iter().map(|c| c.as_str()).collect()
}

fn one_of(key: &str, value: &str, allowed: &[&str]) -> Result<String, String> {
    if allowed.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(format!("unknown {key} `{value}`, expected one of: {}", allowed.join(", ")))
    }
}

fn positive(key: &str, value: &str, max: i64) -> Result<i64, String> {
    match value.parse::<i64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("{key} must be a whole number from 1 to {max}, not `{value}`")),
    }
}

/// Reads a list request from key/value pairs (a form, a query string, the command line's flags). Empty values are
/// left out, as a form sends an unset field; an unknown key, a key given twice or a value out of range is an error
/// that names it. `hours` counts back from `now`.
pub fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, now: Timestamp) -> Result<Query, String> {
    let mut q = Query { filter: InboundFilter::default(), limit: PAGE };
    let mut seen = HashSet::new();
    for (key, value) in pairs {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        if !KEYS.contains(&key) {
            return Err(format!("unknown filter `{key}`, expected one of: {}", KEYS.join(", ")));
        }
        if !seen.insert(key) {
            return Err(format!("filter `{key}` given twice"));
        }
        let f = &mut q.filter;
        match key {
            "action" if value == UNDECIDED => f.undecided = true,
            "action" => f.decision.push((DecisionField::Action, one_of(key, value, &actions())?)),
            "intent" => f.decision.push((DecisionField::Intent, one_of(key, value, &intents())?)),
            "category" => f.decision.push((DecisionField::Category, one_of(key, value, &categories())?)),
            "service" => {
                let service: Service = value.parse().map_err(|e: webcare_domain::UnknownWord| e.to_string())?;
                f.decision.push((DecisionField::Service, service.as_str().to_owned()));
            }
            "platform" => f.platform = Some(value.parse().map_err(|e: webcare_domain::UnknownWord| e.to_string())?),
            "notice" => f.decision.push((DecisionField::Notice, positive(key, value, i64::MAX)?.to_string())),
            "cluster" => f.decision.push((DecisionField::Cluster, positive(key, value, i64::MAX)?.to_string())),
            "ticket" => f.decision.push((DecisionField::Ticket, positive(key, value, i64::MAX)?.to_string())),
            "q" if value.chars().count() > MAX_SEARCH => {
                return Err(format!("q is at most {MAX_SEARCH} characters"));
            }
            "q" => f.text = Some(value.to_owned()),
            "hours" => f.since = Some(now - TimeDelta::hours(positive(key, value, MAX_HOURS)?)),
            "before" => f.before = Some(InboundId(positive(key, value, i64::MAX)?)),
            "limit" => q.limit = positive(key, value, i64::from(MAX_LIMIT))? as u32,
            _ => unreachable!("every key in KEYS is handled"),
        }
    }
    if q.filter.undecided && q.filter.decision.iter().any(|(f, _)| *f != DecisionField::Action) {
        return Err("an undecided message has no intent, category, service, notice, cluster or ticket yet".into());
    }
    Ok(q)
}

/// The platforms' words, for forms that offer them.
pub fn platforms() -> Vec<&'static str> {
    Platform::ALL.iter().map(|p| p.as_str()).collect()
}

/// A classification in the shape of a stored decision's fields (`intent`, `category`, `service`, `region`, `pii`,
/// `reasons`), so that [`why`] reads both: how the data loaded now reads a text, beside what was decided then.
/// Private data is named by its kind only, as in a stored decision.
pub fn classification_record(c: &Classification) -> Value {
    json!({
        "intent": c.intent,
        "category": c.category,
        "service": c.service,
        "region": c.region.as_ref().map(|r| r.name.as_str()),
        "pii": c.pii_kinds(),
        "reasons": c.reasons,
    })
}

/// A stored message as the REST API and `webcare message --json` give it, with the decision (its fields and
/// structured reasons) as stored.
pub fn message_record(m: &webcare_domain::InboundMessage) -> Value {
    json!({
        "id": m.id, "platform": m.platform, "conversation": m.conversation, "customer": m.customer,
        "text": m.text, "attachments": m.attachments, "place": m.place, "language": m.language,
        "received_at": m.received_at,
        "edited_at": m.edited_at, "deleted_at": m.deleted_at, "decision": m.decision,
    })
}

/// A stored decision (or a [`classification_record`]) read back for a person.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Why {
    /// What was done: the bridge's action, a command's outcome, or `ignore`; `None` for a classification alone.
    pub action: Option<String>,
    /// The command the message was (`status`, `stop`, `ticket`), when it was one.
    pub command: Option<String>,
    pub intent: Option<String>,
    pub category: Option<String>,
    pub service: Option<String>,
    pub region: Option<String>,
    /// The kinds of private data found; never their values.
    pub pii: Vec<String>,
    pub notice: Option<i64>,
    pub cluster: Option<i64>,
    pub ticket: Option<i64>,
    /// The message was merged into the one before it by flood control.
    pub merged: bool,
    /// The rules that decided, in order (a classifier rule, then an engine rule such as `notice-match`).
    pub rules: Vec<String>,
    /// Every reason as a line: terms with their group and weight, service words, the region and where it came
    /// from, the scores, the language, notes.
    pub reasons: Vec<String>,
}

impl Why {
    /// What the reader is asked to compare between a stored decision and a new classification: intent, category,
    /// service and region.
    pub fn reading(&self) -> (Option<&str>, Option<&str>, Option<&str>, Option<&str>) {
        (self.intent.as_deref(), self.category.as_deref(), self.service.as_deref(), self.region.as_deref())
    }
}

/// What became of an outage cluster a message was held in, in a line: the customers held there got the notice, or
/// tickets, or are still waiting.
pub fn cluster_fate(c: &webcare_domain::OutageCluster) -> String {
    use webcare_domain::ClusterState;
    match (c.state, c.notice) {
        (ClusterState::Noticed, Some(notice)) => format!("closed into notice {notice}: its customers follow it"),
        (ClusterState::Noticed, None) => "closed by a notice".to_owned(),
        (ClusterState::Expired, _) => "expired without a notice: its customers got tickets".to_owned(),
        (ClusterState::Open, _) => {
            let who = if c.members == 1 { "customer".to_owned() } else { format!("{} customers", c.members) };
            format!("open: {who} waiting for a notice")
        }
    }
}

/// What a reading `now` gives differently from the decision `then` (intent, category, service, region), each as
/// "intent case (was outage)"; empty when they agree.
pub fn changes(then: &Why, now: &Why) -> Vec<String> {
    let (a, b) = (then.reading(), now.reading());
    [("intent", a.0, b.0), ("category", a.1, b.1), ("service", a.2, b.2), ("region", a.3, b.3)]
        .into_iter()
        .filter(|(_, was, is)| was != is)
        .map(|(what, was, is)| format!("{what} {} (was {})", is.unwrap_or("none"), was.unwrap_or("none")))
        .collect()
}

/// Reads a stored decision: its fields, and each reason as a line. Reasons the bridge did not write as structured
/// reasons (an empty message's `"empty"`) are kept as they are.
pub fn why(decision: &Value) -> Why {
    let text = |k: &str| decision.get(k).and_then(Value::as_str).map(str::to_owned);
    let id = |k: &str| decision.get(k).and_then(Value::as_i64);
    let mut why = Why {
        action: text("action"),
        command: text("command"),
        intent: text("intent"),
        category: text("category"),
        service: text("service"),
        region: text("region"),
        pii: decision
            .get("pii")
            .and_then(Value::as_array)
            .map(|kinds| kinds.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
        notice: id("notice"),
        cluster: id("cluster"),
        ticket: id("ticket"),
        merged: decision.get("merged").and_then(Value::as_bool).unwrap_or(false),
        ..Why::default()
    };
    for reason in decision.get("reasons").and_then(Value::as_array).into_iter().flatten() {
        match serde_json::from_value::<Reason>(reason.clone()) {
            Ok(Reason::Rule { rule }) => {
                why.reasons.push(format!("rule {rule}"));
                why.rules.push(rule);
            }
            Ok(r) => why.reasons.push(reason_line(&r)),
            Err(_) => why.reasons.push(reason.as_str().map_or_else(|| reason.to_string(), str::to_owned)),
        }
    }
    why
}

/// The language a customer uses, for the agent who answers them: `nl` or `en`, and whether their own words show it
/// (`from_text`) or only the platform's language for them does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CustomerLanguage {
    pub language: &'static str,
    pub from_text: bool,
}

impl CustomerLanguage {
    /// "Dutch (their messages)", "English (their app)".
    pub fn describe(self) -> String {
        let name = if self.language == "nl" { "Dutch" } else { "English" };
        format!("{name} ({})", if self.from_text { "their messages" } else { "their app" })
    }
}

/// The language of `customer`'s latest message in `messages` that was read as Dutch or English; else the latest
/// language the platform gave for them; none when neither says anything.
pub fn customer_language(
    messages: &[webcare_domain::InboundMessage],
    customer: webcare_domain::CustomerId,
) -> Option<CustomerLanguage> {
    let theirs = || messages.iter().rev().filter(|m| m.customer == customer && m.deleted_at.is_none());
    let known = webcare_domain::answer_language;
    let written = theirs().find_map(|m| {
        let reasons = m.decision.as_ref()?.get("reasons")?.as_array()?;
        reasons.iter().find_map(|r| match serde_json::from_value::<Reason>(r.clone()) {
            Ok(Reason::Language { language, .. }) => known(language.code()),
            _ => None,
        })
    });
    match written {
        Some(language) => Some(CustomerLanguage { language, from_text: true }),
        None => theirs()
            .find_map(|m| m.language.as_deref().and_then(known))
            .map(|language| CustomerLanguage { language, from_text: false }),
    }
}

/// [`customer_language`] over `customer`'s latest messages on `conversation` (read from the store, newest 50).
pub async fn language_of(
    store: &dyn webcare_domain::Store,
    conversation: webcare_domain::ConversationId,
    customer: webcare_domain::CustomerId,
) -> webcare_domain::StoreResult<Option<CustomerLanguage>> {
    let filter = InboundFilter { conversation: Some(conversation), customer: Some(customer), ..Default::default() };
    let mut latest = store.inbound_page(&filter, 50).await?;
    latest.reverse();
    Ok(customer_language(&latest, customer))
}

fn reason_line(r: &Reason) -> String {
    match r {
        Reason::Term { group, term, weight } => format!("term “{term}” in {group} ({weight:+.1})"),
        Reason::Service { service, term } => format!("service {service} from “{term}”"),
        Reason::Region { region, source, from_hint } => {
            let source = serde_json::to_value(source).ok().and_then(|v| v.as_str().map(str::to_owned));
            let hint = if *from_hint { ", from the platform's location" } else { "" };
            format!("region {region} ({}{hint})", source.as_deref().unwrap_or("?"))
        }
        Reason::Pii { pii } => format!("private data: {pii} (not repeated)"),
        Reason::Language { language, nl, en } => {
            format!("language {} (Dutch words {nl}, English words {en})", language.code())
        }
        Reason::PlatformLanguage { language } => {
            format!("answered in {language}, the platform's language for the person")
        }
        Reason::Scores { outage, case, other } => {
            format!("scores: outage {outage:.2}, case {case:.2}, other {other:.2}")
        }
        Reason::Rule { rule } => format!("rule {rule}"),
        Reason::Note { note } => note.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z").unwrap().into()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Query, String> {
        query(pairs.iter().copied(), at())
    }

    #[test]
    fn a_query_reads_every_filter_and_leaves_out_empty_fields() {
        let q = parse(&[
            ("action", "auto_answer"),
            ("intent", "outage"),
            ("category", ""),
            ("service", "internet"),
            ("platform", "telegram"),
            ("notice", "7"),
            ("q", " Utrecht "),
            ("hours", "24"),
            ("before", "120"),
            ("limit", "10"),
        ])
        .unwrap();
        assert_eq!(q.limit, 10);
        assert_eq!(
            q.filter,
            InboundFilter {
                platform: Some(Platform::Telegram),
                decision: vec![
                    (DecisionField::Action, "auto_answer".into()),
                    (DecisionField::Intent, "outage".into()),
                    (DecisionField::Service, "internet".into()),
                    (DecisionField::Notice, "7".into()),
                ],
                undecided: false,
                text: Some("Utrecht".into()),
                since: Some(at() - TimeDelta::hours(24)),
                before: Some(InboundId(120)),
                conversation: None,
                customer: None,
            }
        );
        assert_eq!(parse(&[]).unwrap(), Query { filter: InboundFilter::default(), limit: PAGE });
        assert!(parse(&[("action", "undecided")]).unwrap().filter.undecided);
    }

    #[test]
    fn a_bad_filter_is_named() {
        for (pairs, expected) in [
            (vec![("action", "answer")], "unknown action `answer`, expected one of: auto_answer,"),
            (vec![("intent", "storing")], "unknown intent `storing`"),
            (vec![("service", "gas")], "gas"),
            (vec![("platform", "irc")], "irc"),
            (vec![("notice", "-1")], "notice must be a whole number from 1"),
            (vec![("hours", "9000")], "hours must be a whole number from 1 to 8784"),
            (vec![("limit", "501")], "limit must be a whole number from 1 to 500"),
            (vec![("colour", "red")], "unknown filter `colour`"),
            (vec![("intent", "case"), ("intent", "other")], "filter `intent` given twice"),
            (vec![("action", "undecided"), ("intent", "case")], "an undecided message has no intent"),
        ] {
            let e = parse(&pairs).unwrap_err();
            assert!(e.contains(expected), "{pairs:?}: {e}");
        }
        let long = "x".repeat(201);
        assert!(parse(&[("q", &long)]).unwrap_err().contains("at most 200"));
    }

    #[test]
    fn a_stored_decision_reads_back_as_lines_without_private_data() {
        let classifier = webcare_bridge::Classifier::default();
        let c = classifier.classify("Geen internet in Utrecht, bel me op 06-12345678", None);
        let mut decision = classification_record(&c);
        decision["action"] = json!("move_private");
        decision["ticket"] = json!(4);
        let read = why(&decision);
        assert_eq!(read.action.as_deref(), Some("move_private"));
        assert_eq!(read.reading(), (Some("outage"), Some("outage"), Some("internet"), Some("Utrecht")));
        assert_eq!((read.ticket, read.notice, read.pii.as_slice()), (Some(4), None, &["phone".to_owned()][..]));
        assert!(!read.rules.is_empty(), "{read:?}");
        let lines = read.reasons.join("\n");
        assert!(lines.contains("term “geen internet” in "), "{lines}");
        assert!(lines.contains("region Utrecht (place)"), "{lines}");
        assert!(lines.contains("private data: phone (not repeated)"), "{lines}");
        assert!(lines.contains("scores: outage "), "{lines}");
        assert!(!lines.contains("12345678"), "{lines}");
        let hinted = why(&json!({"action": "ticket", "reasons": [{"kind": "platform_language", "language": "en"}]}));
        assert_eq!(hinted.reasons, ["answered in en, the platform's language for the person"]);

        let empty = why(&json!({"action": "ignore", "reasons": ["empty"]}));
        assert_eq!((empty.action.as_deref(), empty.reasons.as_slice()), (Some("ignore"), &["empty".to_owned()][..]));
        let command = why(&json!({"command": "status", "action": "status"}));
        assert_eq!(command.command.as_deref(), Some("status"));
    }

    #[test]
    fn a_customers_language_is_the_one_they_last_wrote_in_else_their_apps() {
        use webcare_domain::{ConversationId, CustomerId, InboundMessage};
        let classifier = webcare_bridge::Classifier::default();
        let message = |id: i64, customer: i64, text: &str, language: Option<&str>| InboundMessage {
            id: InboundId(id),
            platform: Platform::Telegram,
            platform_message_id: id.to_string(),
            conversation: ConversationId(1),
            customer: CustomerId(customer),
            text: text.into(),
            attachments: vec![],
            received_at: chrono::DateTime::from_timestamp(id, 0).unwrap(),
            edited_at: None,
            deleted_at: None,
            decision: Some(classification_record(&classifier.classify(text, None))),
            place: None,
            language: language.map(str::to_owned),
        };
        let (anna, bob) = (CustomerId(1), CustomerId(2));
        let mut messages = vec![message(1, 1, "?", Some("en"))];
        let app = CustomerLanguage { language: "en", from_text: false };
        assert_eq!(customer_language(&messages, anna), Some(app), "only the app says it");
        assert_eq!(app.describe(), "English (their app)");
        assert_eq!(customer_language(&messages, bob), None);
        messages.push(message(2, 1, "Mijn factuur klopt niet, ik betaal te veel", Some("en")));
        messages.push(message(3, 2, "My bill is wrong, I pay too much", None));
        messages.push(message(4, 1, "/status", Some("en")));
        let dutch = customer_language(&messages, anna).unwrap();
        assert_eq!(dutch, CustomerLanguage { language: "nl", from_text: true }, "her words come before her app");
        assert_eq!(dutch.describe(), "Dutch (their messages)");
        assert_eq!(customer_language(&messages, bob), Some(CustomerLanguage { language: "en", from_text: true }));
    }
}
