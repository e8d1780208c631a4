use serde::{Deserialize, Serialize};

use crate::{NoticeId, Service, Timestamp, id_type, word_enum};

id_type!(
    /// webcare's id of an outage cluster.
    ClusterId
);

word_enum! {
    /// Where an outage cluster stands.
    ClusterState {
        /// Collecting outage questions that match no notice.
        Open => "open",
        /// A notice was published from it; its members are the notice's subscribers.
        Noticed => "noticed",
        /// No notice came within the grace period; its members became tickets.
        Expired => "expired",
    }
}

/// Outage questions without a matching notice, grouped by service and compatible region within a time window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutageCluster {
    pub id: ClusterId,
    /// The company account the questions were sent to; clusters never span accounts.
    pub account: String,
    pub service: Service,
    pub region: Option<String>,
    pub state: ClusterState,
    /// Distinct customers in the cluster.
    pub members: i64,
    /// The member count at the last spike alert, 0 when none was raised.
    pub alerted_at_members: i64,
    pub notice: Option<NoticeId>,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewCluster {
    pub account: String,
    pub service: Service,
    pub region: Option<String>,
    pub at: Timestamp,
}

id_type!(
    /// webcare's id of a spike alert.
    AlertId
);

/// A cluster that grew faster than its baseline: admins see it with samples and a draft notice, and can publish
/// a notice from it in one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpikeAlert {
    pub id: AlertId,
    pub cluster: ClusterId,
    pub account: String,
    pub service: Service,
    pub region: Option<String>,
    /// Distinct customers in the cluster when the alert was raised.
    pub count: i64,
    /// Sample messages, private data masked.
    pub samples: Vec<String>,
    /// A draft notice text per language code.
    pub draft: std::collections::BTreeMap<String, String>,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
    pub created_at: Timestamp,
}

impl SpikeAlert {
    /// The title of a notice published from this alert when the admin writes none: "Storing internet Utrecht".
    pub fn notice_title(&self) -> String {
        crate::notice_title(&[self.service], self.region.as_slice())
    }

    /// The draft as a notice's texts: the main text (the Dutch draft, else the first there is) and the English
    /// draft beside it for those who asked in English.
    pub fn draft_texts(&self) -> (String, std::collections::BTreeMap<String, String>) {
        let main = self.draft.get("nl").or_else(|| self.draft.values().next()).cloned().unwrap_or_default();
        let english = self.draft.get("en").filter(|_| self.draft.contains_key("nl")).cloned();
        (main, english.map(|e| [("en".to_owned(), e)].into()).unwrap_or_default())
    }
}

word_enum! {
    /// Where posting a spike alert to its service's webhook stands.
    WebhookState {
        /// Waiting to be posted, for the first time or again after a failure (`last_error` says which).
        Pending => "pending",
        /// Claimed by a notifier that is posting it now.
        Sending => "sending",
        /// The webhook accepted it.
        Posted => "posted",
        /// Refused for good (a 4xx other than 408 and 429), or retried until webcare gave up: `last_error` says why.
        Failed => "failed",
        /// No webhook is configured for the alert's service: admins see it in the console only.
        Skipped => "skipped",
    }
}

/// How far a spike alert got towards its service's webhook (the network or TV team's channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertWebhook {
    pub alert: AlertId,
    pub state: WebhookState,
    /// Requests made so far (claims, counting one that is under way).
    pub attempts: i64,
    /// The webhook it goes to: a service's name or `default`; none before the first attempt or when skipped.
    pub route: Option<String>,
    /// When the next attempt is due, while it is pending.
    pub next_attempt_at: Timestamp,
    /// Why the last attempt failed (an HTTP status and the receiver's words, or a network error), or why it was
    /// skipped. Never holds the webhook's URL.
    pub last_error: Option<String>,
    pub posted_at: Option<Timestamp>,
}
