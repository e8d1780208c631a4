//! Rows as the databases return them, and their conversion into domain types.
//!
//! Both backends store the same column types (64-bit integers, text, booleans), so one set of `FromRow` structs
//! serves SQLite and PostgreSQL alike. Times are UTC milliseconds; lists and maps are JSON text.

use std::collections::BTreeMap;
use std::str::FromStr;

use webcare_domain::{
    Agent, AgentId, AlertId, AlertWebhook, ClusterId, Conversation, ConversationId, Customer, CustomerId, InboundId,
    InboundMessage, Notice, NoticeId, NoticeVersion, OutageCluster, OutboxId, OutboxItem, Priority, Service,
    SpikeAlert, StoreError, StoreResult, Subscription, SubscriptionTarget, Ticket, TicketEvent, TicketId, Timestamp,
};

pub(crate) fn time(ms: i64) -> StoreResult<Timestamp> {
    chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Invalid(format!("time {ms} out of range")))
}

pub(crate) fn opt_time(ms: Option<i64>) -> StoreResult<Option<Timestamp>> {
    ms.map(time).transpose()
}

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

fn word<T: FromStr<Err = webcare_domain::UnknownWord>>(s: &str) -> StoreResult<T> {
    s.parse().map_err(|e: webcare_domain::UnknownWord| StoreError::Invalid(e.to_string()))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(column: &str, s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Invalid(format!("{column}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising plain lists, maps and `serde_json::Value`s cannot fail.
    serde_json::to_string(value).expect("domain values serialise to JSON")
}

pub(crate) fn services_json(services: &[Service]) -> String {
    to_json(&services.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

fn services(column: &str, s: &str) -> StoreResult<Vec<Service>> {
    json::<Vec<String>>(column, s)?.iter().map(|w| word(w)).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct CustomerRow {
    id: i64,
    pub(crate) platform: String,
    pub(crate) platform_user_id: String,
    display_name: String,
    unreachable: bool,
    created_at: i64,
}

impl TryFrom<CustomerRow> for Customer {
    type Error = StoreError;
    fn try_from(r: CustomerRow) -> StoreResult<Self> {
        Ok(Customer {
            id: CustomerId(r.id),
            platform: word(&r.platform)?,
            platform_user_id: r.platform_user_id,
            display_name: r.display_name,
            unreachable: r.unreachable,
            created_at: time(r.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConversationRow {
    id: i64,
    pub(crate) platform: String,
    pub(crate) platform_chat_id: String,
    kind: String,
    title: Option<String>,
    unreachable: bool,
    created_at: i64,
}

impl TryFrom<ConversationRow> for Conversation {
    type Error = StoreError;
    fn try_from(r: ConversationRow) -> StoreResult<Self> {
        Ok(Conversation {
            id: ConversationId(r.id),
            platform: word(&r.platform)?,
            platform_chat_id: r.platform_chat_id,
            kind: word(&r.kind)?,
            title: r.title,
            unreachable: r.unreachable,
            created_at: time(r.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InboundRow {
    id: i64,
    platform: String,
    platform_message_id: String,
    conversation_id: i64,
    customer_id: i64,
    text: String,
    attachments: String,
    received_at: i64,
    edited_at: Option<i64>,
    deleted_at: Option<i64>,
    decision: Option<String>,
    place: Option<String>,
    language: Option<String>,
}

impl TryFrom<InboundRow> for InboundMessage {
    type Error = StoreError;
    fn try_from(r: InboundRow) -> StoreResult<Self> {
        Ok(InboundMessage {
            id: InboundId(r.id),
            platform: word(&r.platform)?,
            platform_message_id: r.platform_message_id,
            conversation: ConversationId(r.conversation_id),
            customer: CustomerId(r.customer_id),
            text: r.text,
            attachments: json("attachments", &r.attachments)?,
            received_at: time(r.received_at)?,
            edited_at: opt_time(r.edited_at)?,
            deleted_at: opt_time(r.deleted_at)?,
            decision: r.decision.as_deref().map(|d| json("decision", d)).transpose()?,
            place: r.place,
            language: r.language,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct NoticeRow {
    id: i64,
    title: String,
    state: String,
    services: String,
    regions: String,
    text: String,
    texts: String,
    version: i64,
    draft: bool,
    cluster_id: Option<i64>,
    created_at: i64,
    updated_at: i64,
    paid_broadcast: bool,
}

impl TryFrom<NoticeRow> for Notice {
    type Error = StoreError;
    fn try_from(r: NoticeRow) -> StoreResult<Self> {
        Ok(Notice {
            id: NoticeId(r.id),
            title: r.title,
            state: word(&r.state)?,
            services: services("services", &r.services)?,
            regions: json("regions", &r.regions)?,
            text: r.text,
            texts: json::<BTreeMap<String, String>>("texts", &r.texts)?,
            version: r.version,
            draft: r.draft,
            cluster: r.cluster_id.map(ClusterId),
            paid_broadcast: r.paid_broadcast,
            created_at: time(r.created_at)?,
            updated_at: time(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct NoticeVersionRow {
    notice_id: i64,
    version: i64,
    state: String,
    text: String,
    texts: String,
    services: String,
    regions: String,
    author_id: Option<i64>,
    approved_by: Option<i64>,
    created_at: i64,
}

impl TryFrom<NoticeVersionRow> for NoticeVersion {
    type Error = StoreError;
    fn try_from(r: NoticeVersionRow) -> StoreResult<Self> {
        Ok(NoticeVersion {
            notice: NoticeId(r.notice_id),
            version: r.version,
            state: word(&r.state)?,
            text: r.text,
            texts: json("texts", &r.texts)?,
            services: services("services", &r.services)?,
            regions: json("regions", &r.regions)?,
            author: r.author_id.map(AgentId),
            approved_by: r.approved_by.map(AgentId),
            created_at: time(r.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ClusterRow {
    id: i64,
    account: String,
    service: String,
    region: Option<String>,
    state: String,
    members: i64,
    alerted_at_members: i64,
    notice_id: Option<i64>,
    first_at: i64,
    last_at: i64,
}

impl TryFrom<ClusterRow> for OutageCluster {
    type Error = StoreError;
    fn try_from(r: ClusterRow) -> StoreResult<Self> {
        Ok(OutageCluster {
            id: ClusterId(r.id),
            account: r.account,
            service: word(&r.service)?,
            region: r.region,
            state: word(&r.state)?,
            members: r.members,
            alerted_at_members: r.alerted_at_members,
            notice: r.notice_id.map(NoticeId),
            first_at: time(r.first_at)?,
            last_at: time(r.last_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SubscriptionRow {
    conversation_id: i64,
    customer_id: Option<i64>,
    notice_id: Option<i64>,
    cluster_id: Option<i64>,
    created_at: i64,
    language: Option<String>,
}

impl TryFrom<SubscriptionRow> for Subscription {
    type Error = StoreError;
    fn try_from(r: SubscriptionRow) -> StoreResult<Self> {
        let target = match (r.notice_id, r.cluster_id) {
            (Some(n), None) => SubscriptionTarget::Notice(NoticeId(n)),
            (None, Some(c)) => SubscriptionTarget::Cluster(ClusterId(c)),
            _ => return Err(StoreError::Invalid("subscription needs exactly one of notice and cluster".into())),
        };
        Ok(Subscription {
            conversation: ConversationId(r.conversation_id),
            customer: r.customer_id.map(CustomerId),
            target,
            created_at: time(r.created_at)?,
            language: r.language,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TicketRow {
    id: i64,
    conversation_id: i64,
    customer_id: i64,
    state: String,
    subject: String,
    priority: i64,
    category: String,
    assignee_id: Option<i64>,
    created_at: i64,
    updated_at: i64,
    due_at: Option<i64>,
    platform: String,
    tags: String,
    claimed_by: Option<i64>,
    claimed_at: Option<i64>,
    last_activity_at: Option<i64>,
    first_response_due_at: Option<i64>,
    resolution_due_at: Option<i64>,
    first_responded_at: Option<i64>,
    solved_at: Option<i64>,
    closed_at: Option<i64>,
    version: i64,
}

impl TryFrom<TicketRow> for Ticket {
    type Error = StoreError;
    fn try_from(r: TicketRow) -> StoreResult<Self> {
        Ok(Ticket {
            id: TicketId(r.id),
            conversation: ConversationId(r.conversation_id),
            customer: CustomerId(r.customer_id),
            state: word(&r.state)?,
            subject: r.subject,
            priority: r.priority,
            category: r.category,
            assignee: r.assignee_id.map(AgentId),
            created_at: time(r.created_at)?,
            updated_at: time(r.updated_at)?,
            due_at: opt_time(r.due_at)?,
            platform: word(&r.platform)?,
            tags: json("tags", &r.tags)?,
            claimed_by: r.claimed_by.map(AgentId),
            claimed_at: opt_time(r.claimed_at)?,
            last_activity_at: opt_time(r.last_activity_at)?,
            first_response_due_at: opt_time(r.first_response_due_at)?,
            resolution_due_at: opt_time(r.resolution_due_at)?,
            first_responded_at: opt_time(r.first_responded_at)?,
            solved_at: opt_time(r.solved_at)?,
            closed_at: opt_time(r.closed_at)?,
            version: r.version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TicketEventRow {
    id: i64,
    ticket_id: i64,
    kind: String,
    actor_id: Option<i64>,
    body: String,
    created_at: i64,
}

impl TryFrom<TicketEventRow> for TicketEvent {
    type Error = StoreError;
    fn try_from(r: TicketEventRow) -> StoreResult<Self> {
        Ok(TicketEvent {
            id: r.id,
            ticket: TicketId(r.ticket_id),
            kind: word(&r.kind)?,
            actor: r.actor_id.map(AgentId),
            body: r.body,
            at: time(r.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AgentRow {
    id: i64,
    name: String,
    role: String,
    password_hash: Option<String>,
    active: bool,
    created_at: i64,
}

impl TryFrom<AgentRow> for Agent {
    type Error = StoreError;
    fn try_from(r: AgentRow) -> StoreResult<Self> {
        Ok(Agent {
            id: AgentId(r.id),
            name: r.name,
            role: word(&r.role)?,
            password_hash: r.password_hash,
            active: r.active,
            created_at: time(r.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    id: i64,
    conversation_id: i64,
    kind: String,
    body: String,
    extra: String,
    idempotency_key: String,
    priority: i64,
    state: String,
    attempts: i64,
    next_attempt_at: i64,
    claimed_by: Option<String>,
    lease_until: Option<i64>,
    last_error: Option<String>,
    platform_message_id: Option<String>,
    created_at: i64,
    sent_at: Option<i64>,
}

impl TryFrom<OutboxRow> for OutboxItem {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> StoreResult<Self> {
        Ok(OutboxItem {
            id: OutboxId(r.id),
            conversation: ConversationId(r.conversation_id),
            kind: r.kind,
            body: r.body,
            extra: json("extra", &r.extra)?,
            idempotency_key: r.idempotency_key,
            priority: Priority(r.priority),
            state: word(&r.state)?,
            attempts: r.attempts,
            next_attempt_at: time(r.next_attempt_at)?,
            claimed_by: r.claimed_by,
            lease_until: opt_time(r.lease_until)?,
            last_error: r.last_error,
            platform_message_id: r.platform_message_id,
            created_at: time(r.created_at)?,
            sent_at: opt_time(r.sent_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AlertRow {
    id: i64,
    cluster_id: i64,
    account: String,
    service: String,
    region: Option<String>,
    count: i64,
    samples: String,
    draft: String,
    first_at: i64,
    last_at: i64,
    created_at: i64,
}

impl TryFrom<AlertRow> for SpikeAlert {
    type Error = StoreError;
    fn try_from(r: AlertRow) -> StoreResult<Self> {
        Ok(SpikeAlert {
            id: AlertId(r.id),
            cluster: ClusterId(r.cluster_id),
            account: r.account,
            service: word(&r.service)?,
            region: r.region,
            count: r.count,
            samples: json("samples", &r.samples)?,
            draft: json("draft", &r.draft)?,
            first_at: time(r.first_at)?,
            last_at: time(r.last_at)?,
            created_at: time(r.created_at)?,
        })
    }
}

/// Converts every row of a result, failing on the first that is not a valid domain value.
/// An alert's webhook columns (`webhook_*` in `spike_alerts`).
#[derive(sqlx::FromRow)]
pub(crate) struct AlertWebhookRow {
    id: i64,
    webhook_state: String,
    webhook_attempts: i64,
    webhook_route: Option<String>,
    webhook_next_at: i64,
    webhook_error: Option<String>,
    webhook_posted_at: Option<i64>,
}

impl TryFrom<AlertWebhookRow> for AlertWebhook {
    type Error = StoreError;
    fn try_from(r: AlertWebhookRow) -> StoreResult<Self> {
        Ok(AlertWebhook {
            alert: AlertId(r.id),
            state: word(&r.webhook_state)?,
            attempts: r.webhook_attempts,
            route: r.webhook_route,
            next_attempt_at: time(r.webhook_next_at)?,
            last_error: r.webhook_error,
            posted_at: opt_time(r.webhook_posted_at)?,
        })
    }
}

/// An alert with its webhook columns, as a claim returns it.
#[derive(sqlx::FromRow)]
pub(crate) struct ClaimedAlertRow {
    #[sqlx(flatten)]
    alert: AlertRow,
    #[sqlx(flatten)]
    webhook: AlertWebhookRow,
}

impl TryFrom<ClaimedAlertRow> for (SpikeAlert, AlertWebhook) {
    type Error = StoreError;
    fn try_from(r: ClaimedAlertRow) -> StoreResult<Self> {
        Ok((r.alert.try_into()?, r.webhook.try_into()?))
    }
}

pub(crate) fn all<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> StoreResult<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}
