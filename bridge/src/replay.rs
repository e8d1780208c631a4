//! Replay: run the whole bridge over a file of past messages on a simulated clock, without sending anything.
//!
//! Input is CSV (a header with at least `id`, `created_at`, `text`; optional `author_id`, `account`, `place`,
//! `public`; other columns ignored) or JSONL with the same fields. Messages are processed in `created_at` order.
//! Output is one JSON object per message in the shape INTERFACES.md fixes, `{"alert": {...}}` lines for spike alerts
//! and `{"ticket": {...}}` lines for members of expired clusters, all in time order. The summary is returned for the
//! caller to print. Notices active during the replay can be given as JSON or TOML.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use webcare_domain::{ClusterId, Notice, NoticeId, NoticeState, Service, Timestamp};

use crate::classify::{Classification, Classifier};
use crate::engine::{Action, Decision, Engine, EngineConfig, Incoming, SpikeAlert};

/// What can go wrong reading a replay's input. Each variant says where.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read input: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error("input: {0}")]
    Format(String),
    #[error("notices: {0}")]
    Notices(String),
}

/// The input's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Csv,
    Jsonl,
}

impl InputFormat {
    /// By file name: `.jsonl`/`.ndjson`/`.json` are JSONL, everything else CSV.
    pub fn from_path(path: &std::path::Path) -> InputFormat {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("jsonl" | "ndjson" | "json") => InputFormat::Jsonl,
            _ => InputFormat::Csv,
        }
    }
}

/// One input message, with the labels `eval` reads when they are there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    pub id: String,
    pub created_at: String,
    pub text: String,
    pub author_id: String,
    pub account: String,
    pub place: String,
    /// The person's language as the platform said it (`nl`, `en-GB`); answers follow it where the text shows none.
    pub language: String,
    /// `true`/`false` (also yes/no, 1/0); empty means public, as social media posts are.
    pub public: String,
    pub intent: String,
    pub service: String,
    pub cluster: String,
    pub pii: String,
    pub confidence: String,
    #[serde(skip)]
    pub line: u64,
}

#[derive(Debug, Deserialize)]
struct JsonRecord {
    id: serde_json::Value,
    created_at: serde_json::Value,
    #[serde(default)]
    text: String,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

/// Reads every record of a CSV or JSONL input.
pub fn read_records(input: impl Read, format: InputFormat) -> Result<Vec<Record>, ReplayError> {
    match format {
        InputFormat::Csv => read_csv(input),
        InputFormat::Jsonl => read_jsonl(input),
    }
}

fn read_csv(input: impl Read) -> Result<Vec<Record>, ReplayError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader.headers().map_err(|e| ReplayError::Format(e.to_string()))?.clone();
    for required in ["id", "created_at", "text"] {
        if !headers.iter().any(|h| h.trim() == required) {
            return Err(ReplayError::Format(format!("the CSV header has no `{required}` column")));
        }
    }
    let mut out = Vec::new();
    for row in reader.records() {
        let row =
            row.map_err(|e| ReplayError::Row { line: e.position().map_or(0, |p| p.line()), message: e.to_string() })?;
        let get = |name: &str| {
            headers.iter().position(|h| h.trim() == name).and_then(|i| row.get(i)).unwrap_or("").to_owned()
        };
        out.push(Record {
            id: get("id"),
            created_at: get("created_at"),
            text: get("text"),
            author_id: get("author_id"),
            account: get("account"),
            place: get("place"),
            language: get("language"),
            public: get("public"),
            intent: get("intent"),
            service: get("service"),
            cluster: get("cluster"),
            pii: get("pii"),
            confidence: get("confidence"),
            line: row.position().map_or(0, |p| p.line()),
        });
    }
    Ok(out)
}

fn read_jsonl(input: impl Read) -> Result<Vec<Record>, ReplayError> {
    let mut out = Vec::new();
    for (n, line) in BufReader::new(input).lines().enumerate() {
        let line = line?;
        let line_no = n as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let raw: JsonRecord = serde_json::from_str(&line)
            .map_err(|e| ReplayError::Row { line: line_no, message: format!("not a message object: {e}") })?;
        let text_of = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        let get = |name: &str| raw.rest.get(name).map(text_of).unwrap_or_default();
        out.push(Record {
            id: text_of(&raw.id),
            created_at: text_of(&raw.created_at),
            text: raw.text,
            author_id: get("author_id"),
            account: get("account"),
            place: get("place"),
            language: get("language"),
            public: get("public"),
            intent: get("intent"),
            service: get("service"),
            cluster: get("cluster"),
            pii: get("pii"),
            confidence: get("confidence"),
            line: line_no,
        });
    }
    Ok(out)
}

/// Parses a time: RFC 3339 (`2017-10-31T22:11:45Z`), `YYYY-MM-DD HH:MM:SS` (taken as UTC), or Unix seconds.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    s.parse::<i64>().ok().and_then(|secs| DateTime::from_timestamp(secs, 0))
}

/// A notice for a replay: a notice's scope and texts, the account it belongs to, and when it was active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayNotice {
    pub id: i64,
    #[serde(default)]
    pub title: String,
    pub text: String,
    #[serde(default)]
    pub texts: BTreeMap<String, String>,
    #[serde(default)]
    pub services: Vec<Service>,
    /// Empty: nationwide.
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default = "investigating")]
    pub state: NoticeState,
    /// The account it belongs to; a notice without one applies to every account in the file.
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub active_from: Option<Timestamp>,
    #[serde(default)]
    pub active_to: Option<Timestamp>,
}

fn investigating() -> NoticeState {
    NoticeState::Investigating
}

impl ReplayNotice {
    fn active_at(&self, at: Timestamp, account: &str) -> bool {
        self.account.as_deref().is_none_or(|a| a == account)
            && self.active_from.is_none_or(|f| f <= at)
            && self.active_to.is_none_or(|t| at < t)
    }

    fn to_notice(&self, at: Timestamp) -> Notice {
        Notice {
            id: NoticeId(self.id),
            title: self.title.clone(),
            state: self.state,
            services: self.services.clone(),
            regions: self.regions.clone(),
            text: self.text.clone(),
            texts: self.texts.clone(),
            version: 1,
            draft: false,
            cluster: None,
            paid_broadcast: false,
            created_at: self.active_from.unwrap_or(at),
            updated_at: self.active_from.unwrap_or(at),
        }
    }
}

/// Reads notices: a JSON list (or `{"notices": [...]}`), or TOML with `[[notice]]` tables.
pub fn read_notices(text: &str) -> Result<Vec<ReplayNotice>, ReplayError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') && !trimmed.starts_with("[[") {
        return serde_json::from_str(text).map_err(|e| ReplayError::Notices(e.to_string()));
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct JsonFile {
        notices: Vec<ReplayNotice>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TomlFile {
        #[serde(default)]
        notice: Vec<ReplayNotice>,
    }
    if trimmed.starts_with('{') {
        return serde_json::from_str::<JsonFile>(text)
            .map(|f| f.notices)
            .map_err(|e| ReplayError::Notices(e.to_string()));
    }
    toml::from_str::<TomlFile>(text).map(|f| f.notice).map_err(|e| ReplayError::Notices(e.to_string()))
}

/// Settings of a replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub engine: EngineConfig,
    pub notices: Vec<ReplayNotice>,
}

impl ReplayOptions {
    /// Sets the clustering window (`--window`), and stretches the grace period to at least the window so that a
    /// cluster stays open for as long as it may take in members.
    ///
    /// The live default of 30 minutes fits live traffic, where an outage brings many messages within minutes. A
    /// file that holds a thin sample of past traffic (a few messages per outage out of hundreds) shows the same
    /// outage as messages hours apart; replaying it with a window scaled to its density (hours) groups what the
    /// live window would have grouped in the full stream.
    pub fn with_window(mut self, secs: i64) -> ReplayOptions {
        self.engine.window_secs = secs;
        self.engine.grace_secs = self.engine.grace_secs.max(secs);
        self
    }
}

/// Parses a duration as written on the command line: `90s`, `30m`, `3h`, `1d`, or bare seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = number.parse().map_err(|_| format!("`{text}`: expected a duration such as 90s, 30m or 3h"))?;
    let unit = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use s, m, h or d)")),
    };
    n.checked_mul(unit).filter(|s| *s > 0).ok_or_else(|| format!("`{text}`: expected a positive duration"))
}

/// Counts of what a replay decided.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplaySummary {
    pub messages: usize,
    pub actions: BTreeMap<String, usize>,
    pub intents: BTreeMap<String, usize>,
    pub clusters: usize,
    pub alerts: usize,
    pub expired_tickets: usize,
    pub with_pii: usize,
    pub first_at: Option<Timestamp>,
    pub last_at: Option<Timestamp>,
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let actions: Vec<String> = self.actions.iter().map(|(k, v)| format!("{k} {v}")).collect();
        write!(
            f,
            "replayed {} messages: {}; {} clusters, {} spike alerts, {} tickets from expired clusters, {} with private data",
            self.messages,
            actions.join(", "),
            self.clusters,
            self.alerts,
            self.expired_tickets,
            self.with_pii
        )
    }
}

/// One processed message, for callers that want more than the JSON lines (eval).
#[derive(Debug, Clone)]
pub struct Processed {
    pub record: Record,
    pub classification: Classification,
    pub decision: Decision,
}

/// Everything the replay emitted, in time order.
#[derive(Debug, Clone)]
pub enum Event {
    Message(Box<Processed>),
    Alert(SpikeAlert),
    Expired(Decision),
    /// A notice became active and took in an open cluster it covers: its customers get the notice.
    Broadcast {
        notice: NoticeId,
        cluster: ClusterId,
        at: Timestamp,
        customers: Vec<String>,
    },
}

/// Notices that become active during the replay take in the open clusters they cover, as a notice published live
/// does (`Engine::clusters_covered_by`): clusters due to expire by then expire first. Handles every start up to
/// `until`; `next` is the first start not handled yet.
#[allow(clippy::too_many_arguments)]
fn activate(
    engine: &mut Engine,
    notices: &[ReplayNotice],
    starts: &[(Timestamp, usize)],
    next: &mut usize,
    until: Timestamp,
    summary: &mut ReplaySummary,
    emit: &mut dyn FnMut(&Event) -> Result<(), ReplayError>,
) -> Result<(), ReplayError> {
    while let Some(&(from, i)) = starts.get(*next).filter(|(from, _)| *from <= until) {
        *next += 1;
        for d in engine.tick(from) {
            summary.expired_tickets += 1;
            emit(&Event::Expired(d))?;
        }
        let n = &notices[i];
        if n.active_to.is_some_and(|to| to <= from) {
            continue;
        }
        for cluster in engine.clusters_covered_by(&n.to_notice(from)) {
            if engine.cluster(cluster).is_some_and(|c| n.account.as_deref().is_none_or(|a| a == c.account)) {
                let customers = engine.publish_notice(cluster, NoticeId(n.id)).into_iter().map(|(c, _)| c).collect();
                emit(&Event::Broadcast { notice: NoticeId(n.id), cluster, at: from, customers })?;
            }
        }
    }
    Ok(())
}

/// Runs the bridge over records and calls `emit` for each event in time order; `progress(done, total)` after each
/// message. Returns the summary.
pub fn run(
    classifier: Arc<Classifier>,
    mut records: Vec<Record>,
    options: &ReplayOptions,
    emit: &mut dyn FnMut(&Event) -> Result<(), ReplayError>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ReplaySummary, ReplayError> {
    let mut timed = Vec::with_capacity(records.len());
    for r in records.drain(..) {
        let at = parse_time(&r.created_at).ok_or_else(|| ReplayError::Row {
            line: r.line,
            message: format!("message {}: created_at `{}` is no time (expected RFC 3339)", r.id, r.created_at),
        })?;
        timed.push((at, r));
    }
    // Stable: messages with the same time keep the file's order.
    timed.sort_by_key(|(at, _)| *at);
    let total = timed.len();
    let mut engine = Engine::new(options.engine.clone(), classifier.clone());
    let mut summary = ReplaySummary::default();
    let mut clusters = std::collections::BTreeSet::new();
    let mut starts: Vec<(Timestamp, usize)> =
        options.notices.iter().enumerate().filter_map(|(i, n)| n.active_from.map(|f| (f, i))).collect();
    starts.sort();
    let mut next_start = 0;
    for (n, (at, record)) in timed.into_iter().enumerate() {
        activate(&mut engine, &options.notices, &starts, &mut next_start, at, &mut summary, emit)?;
        let account = if record.account.is_empty() { "default".to_owned() } else { record.account.clone() };
        let customer =
            if record.author_id.is_empty() { format!("message:{}", record.id) } else { record.author_id.clone() };
        let public = !matches!(record.public.trim().to_ascii_lowercase().as_str(), "false" | "no" | "0" | "private");
        let msg = Incoming {
            id: record.id.clone(),
            customer: customer.clone(),
            conversation: customer,
            account: account.clone(),
            public,
            at,
            text: record.text.clone(),
            place: Some(record.place.clone()).filter(|p| !p.trim().is_empty()),
            language: webcare_domain::answer_language(&record.language).map(str::to_owned),
        };
        let notices: Vec<Notice> =
            options.notices.iter().filter(|n| n.active_at(at, &account)).map(|n| n.to_notice(at)).collect();
        let classification = classifier.classify(&msg.text, msg.place.as_deref());
        let out = engine.handle(&msg, &classification, &notices);
        for d in out.expired {
            summary.expired_tickets += 1;
            emit(&Event::Expired(d))?;
        }
        summary.messages += 1;
        *summary.actions.entry(out.decision.action.as_str().to_owned()).or_default() += 1;
        *summary.intents.entry(out.decision.intent.as_str().to_owned()).or_default() += 1;
        if !out.decision.pii.is_empty() {
            summary.with_pii += 1;
        }
        if let Some(c) = out.decision.cluster {
            clusters.insert(c);
        }
        summary.first_at = summary.first_at.or(Some(at));
        summary.last_at = Some(at);
        let alerts = out.alerts;
        emit(&Event::Message(Box::new(Processed { record, classification, decision: out.decision })))?;
        for a in alerts {
            summary.alerts += 1;
            emit(&Event::Alert(a))?;
        }
        progress(n + 1, total);
    }
    // Clusters still waiting at the end expire when their grace period would have ended.
    if let Some(last) = summary.last_at {
        let end = last + chrono::TimeDelta::seconds(options.engine.grace_secs);
        activate(&mut engine, &options.notices, &starts, &mut next_start, end, &mut summary, emit)?;
        for d in engine.tick(end) {
            summary.expired_tickets += 1;
            emit(&Event::Expired(d))?;
        }
    }
    summary.clusters = clusters.len();
    Ok(summary)
}

/// The JSON line for one processed message, as INTERFACES.md fixes it.
pub fn message_line(p: &Processed) -> serde_json::Value {
    let d = &p.decision;
    json!({
        "id": p.record.id,
        "intent": d.intent,
        "category": d.category,
        "service": d.service,
        "region": d.region,
        "pii": d.pii,
        "cluster": d.cluster.map(|c| c.to_string()),
        "notice": d.notice.map(|n| n.to_string()),
        "action": d.action,
        "reasons": d.reasons,
    })
}

/// The JSON line for any event.
pub fn event_line(event: &Event) -> serde_json::Value {
    match event {
        Event::Message(p) => message_line(p),
        Event::Alert(a) => json!({ "alert": a }),
        Event::Expired(d) => json!({ "ticket": {
            "id": d.message,
            "customer": d.customer,
            "cluster": d.cluster.map(|c| c.to_string()),
            "at": d.at,
            "action": Action::Ticket,
            "reasons": d.reasons,
        }}),
        Event::Broadcast { notice, cluster, at, customers } => json!({ "broadcast": {
            "notice": notice.to_string(),
            "cluster": cluster.to_string(),
            "at": at,
            "customers": customers,
        }}),
    }
}

/// `webcare replay`: reads messages, writes JSON lines to `out`, returns the summary (the caller prints it last on
/// standard error). `progress(done, total)` is called after every message, for a progress bar.
pub fn replay(
    classifier: Arc<Classifier>,
    input: impl Read,
    format: InputFormat,
    options: &ReplayOptions,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ReplaySummary, ReplayError> {
    let records = read_records(input, format)?;
    run(
        classifier,
        records,
        options,
        &mut |event| {
            serde_json::to_writer(&mut *out, &event_line(event)).map_err(|e| ReplayError::Io(e.into()))?;
            out.write_all(b"\n")?;
            Ok(())
        },
        progress,
    )
}
