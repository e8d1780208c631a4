use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{AgentId, ClusterId, Timestamp, id_type, word_enum};

word_enum! {
    /// A service a customer can lose.
    Service {
        Internet => "internet",
        Tv => "tv",
        Mobile => "mobile",
        Landline => "landline",
        Unknown => "unknown",
    }
}

word_enum! {
    /// Where a notice stands. Every state but `Resolved` is active.
    NoticeState {
        Investigating => "investigating",
        Identified => "identified",
        Monitoring => "monitoring",
        Resolved => "resolved",
    }
}

impl NoticeState {
    pub fn is_active(self) -> bool {
        self != NoticeState::Resolved
    }
}

id_type!(
    /// webcare's id of a notice.
    NoticeId
);

/// An announcement of an outage, scoped to services and regions. Its content lives in versions; the notice shows the
/// current one. A notice with no regions is nationwide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub id: NoticeId,
    pub title: String,
    pub state: NoticeState,
    pub services: Vec<Service>,
    pub regions: Vec<String>,
    /// The current version's text, in the default language.
    pub text: String,
    /// The current version's text per language code (`nl`, `en`), where given.
    pub texts: BTreeMap<String, String>,
    /// The number of the current version, from 1.
    pub version: i64,
    /// A draft is not shown to customers until it is published (or approved, under four eyes).
    pub draft: bool,
    /// The cluster the notice was published from, if any.
    pub cluster: Option<ClusterId>,
    /// Sent on Telegram as a paid broadcast (`allow_paid_broadcast`): up to 1,000 messages/s instead of 30, at a
    /// fee per message. An admin opts in per notice for urgent cases, after seeing the cost estimate.
    #[serde(default)]
    pub paid_broadcast: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A change to a published notice that waits for another admin's approval (four eyes): its new words are not shown
/// to customers until then.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeProposal {
    pub notice: NoticeId,
    pub author: AgentId,
    pub change: NoticeChange,
    pub created_at: Timestamp,
}

/// The title a notice gets when the admin writes none: "Storing internet, tv Utrecht, Zeist" (the Dutch word
/// for outage, as the operators' teams name them).
pub fn notice_title(services: &[Service], regions: &[String]) -> String {
    let services: Vec<String> = services.iter().map(Service::to_string).collect();
    format!("Storing {} {}", services.join(", "), regions.join(", ")).split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Notice {
    /// Whether customers are answered from this notice now.
    pub fn is_active(&self) -> bool {
        !self.draft && self.state.is_active()
    }

    /// The text for a language, falling back to the default text.
    pub fn text_for(&self, language: &str) -> &str {
        self.texts.get(language).map(String::as_str).unwrap_or(&self.text)
    }
}

/// One version of a notice: what subscribers receive, at most once each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeVersion {
    pub notice: NoticeId,
    pub version: i64,
    pub state: NoticeState,
    pub text: String,
    pub texts: BTreeMap<String, String>,
    pub services: Vec<Service>,
    pub regions: Vec<String>,
    pub author: Option<AgentId>,
    pub approved_by: Option<AgentId>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewNotice {
    pub title: String,
    pub text: String,
    pub texts: BTreeMap<String, String>,
    pub services: Vec<Service>,
    pub regions: Vec<String>,
    pub state: NoticeState,
    pub draft: bool,
    pub cluster: Option<ClusterId>,
    pub paid_broadcast: bool,
    pub author: Option<AgentId>,
    pub approved_by: Option<AgentId>,
    pub at: Timestamp,
}

impl NewNotice {
    /// A published notice in one language, nobody's author, from no cluster, not paid: what tests, benchmarks and
    /// tools start from; set the other fields with struct update syntax.
    pub fn published(
        title: &str,
        text: &str,
        services: Vec<Service>,
        regions: &[&str],
        state: NoticeState,
        at: Timestamp,
    ) -> NewNotice {
        NewNotice {
            title: title.to_owned(),
            text: text.to_owned(),
            texts: BTreeMap::new(),
            services,
            regions: regions.iter().map(|r| (*r).to_owned()).collect(),
            state,
            draft: false,
            cluster: None,
            paid_broadcast: false,
            author: None,
            approved_by: None,
            at,
        }
    }
}

/// A change to a notice; it becomes a new version. Fields left `None` keep their current value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NoticeChange {
    pub text: Option<String>,
    pub texts: Option<BTreeMap<String, String>>,
    pub state: Option<NoticeState>,
    pub services: Option<Vec<Service>>,
    pub regions: Option<Vec<String>>,
    /// `Some(false)` publishes a draft.
    pub draft: Option<bool>,
    pub paid_broadcast: Option<bool>,
    pub author: Option<AgentId>,
    pub approved_by: Option<AgentId>,
}
