//! The REST API under `/api/v1`, exactly as INTERFACES.md lists it, with bearer tokens from `webcare agent add`.
//!
//! Every error is `{"error": {"code": "...", "message": "..."}}` with a stable code and a fitting status. A 500
//! logs its cause and answers an opaque body. Roles are checked here, per route, on the server. The OpenAPI
//! document at `/api/openapi.json` is generated from the same route table the router is built from, and a test
//! calls every route in it.

mod openapi;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use webcare_app::notices::{NoticeError, NoticeInput};
use webcare_domain::{
    Agent, AgentId, AlertId, NoticeChange, NoticeId, NoticeState, Role, Service, StoreError, TicketEventKind, TicketId,
    TicketState,
};
use webcare_ticketing::{TicketError, TicketPatch};

use crate::AppState;

pub use openapi::{ROUTES, document};

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what, id } => {
                Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} {id} not found"))
            }
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            e if e.is_transient() => {
                tracing::warn!(error = %e, "database unavailable for an API call");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database is unavailable; try again")
            }
            e => {
                tracing::error!(error = %e, "API call failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl From<TicketError> for ApiError {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::NotFound(id) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", format!("ticket {id} not found"))
            }
            TicketError::UnknownAgent(id) => Self::invalid(format!("agent {id} does not exist")),
            TicketError::AlreadyClaimed { by, .. } => {
                Self::new(StatusCode::CONFLICT, "already_claimed", format!("the ticket is claimed by {by}"))
            }
            e @ TicketError::NotAllowed { .. } => Self::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
            e @ TicketError::InvalidTransition { .. } => {
                Self::new(StatusCode::CONFLICT, "invalid_transition", e.to_string())
            }
            e @ TicketError::Closed(_) => Self::new(StatusCode::CONFLICT, "closed", e.to_string()),
            e @ TicketError::Invalid { .. } => Self::invalid(e.to_string()),
            TicketError::Store(e) => e.into(),
        }
    }
}

impl From<webcare_app::lexicon::LexiconError> for ApiError {
    fn from(e: webcare_app::lexicon::LexiconError) -> Self {
        use webcare_app::lexicon::LexiconError;
        match e {
            LexiconError::NotAdmin => Self::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
            LexiconError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            LexiconError::Listed { .. } | LexiconError::NotListed { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            LexiconError::NoGroup { .. } | LexiconError::BadTerm(_) => Self::invalid(e.to_string()),
            LexiconError::Store(e) => e.into(),
        }
    }
}

impl From<NoticeError> for ApiError {
    fn from(e: NoticeError) -> Self {
        match e {
            e @ (NoticeError::NotFound(_) | NoticeError::AlertNotFound(_)) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            e @ (NoticeError::NotAdmin | NoticeError::SameApprover) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            e @ NoticeError::Invalid { .. } => Self::invalid(e.to_string()),
            e @ NoticeError::AlreadyAnswered { .. } => {
                Self::new(StatusCode::CONFLICT, "already_answered", e.to_string())
            }
            NoticeError::Store(e) => e.into(),
        }
    }
}

/// A JSON body whose rejection is an API error (422/400/413/415 with our error shape).
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => ApiError::invalid(e.body_text()),
                JsonRejection::JsonSyntaxError(e) => ApiError::new(StatusCode::BAD_REQUEST, "bad_json", e.body_text()),
                JsonRejection::MissingJsonContentType(e) => {
                    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", e.body_text())
                }
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the request body is too large")
                }
                other => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", other.body_text()),
            }),
        }
    }
}

/// The agent behind the request's bearer token.
pub struct Authed(pub Agent);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unauthorized =
            || ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required");
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
        let token = header.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty()).ok_or_else(unauthorized)?;
        let agent =
            state.store.agent_by_token_hash(&crate::auth::hash_api_token(token)).await?.ok_or_else(unauthorized)?;
        Ok(Authed(agent))
    }
}

/// An admin behind the request's bearer token. Checked before the body is read, so an agent gets 403 whatever
/// they sent.
pub struct Admin(pub Agent);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Authed(agent) = Authed::from_request_parts(parts, state).await?;
        if agent.role == Role::Admin {
            Ok(Admin(agent))
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this needs the admin role"))
        }
    }
}

/// The API's routes, to be nested under `/api` (its fallback answers unknown API paths in the API's error shape).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/v1/tickets", get(list_tickets))
        .route("/v1/tickets/{id}", get(get_ticket).patch(patch_ticket))
        .route("/v1/tickets/{id}/claim", post(claim))
        .route("/v1/tickets/{id}/replies", post(reply))
        .route("/v1/tickets/{id}/notes", post(note))
        .route("/v1/notices", get(list_notices).post(create_notice))
        .route("/v1/notices/{id}", axum::routing::patch(patch_notice))
        .route("/v1/notices/{id}/delivery", get(delivery))
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/alerts/{id}/notice", post(notice_from_alert))
        .route("/v1/me/chat-link", post(chat_link))
        .route("/v1/reports", get(reports))
        .route("/v1/messages", get(list_messages))
        .route("/v1/messages/{id}", get(get_message))
        .route("/v1/reload", post(reload))
        .route("/v1/lexicon", get(get_lexicon))
        .route("/v1/lexicon/changes", post(post_lexicon_change))
        .route("/v1/lexicon/changes/{id}", axum::routing::delete(delete_lexicon_change))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route") })
}

async fn openapi_json() -> Json<Value> {
    Json(document())
}

#[derive(Serialize)]
struct TicketView {
    id: TicketId,
    state: TicketState,
    subject: String,
    platform: webcare_domain::Platform,
    customer: String,
    assignee: Option<String>,
    priority: i64,
    category: String,
    created_at: webcare_domain::Timestamp,
    updated_at: webcare_domain::Timestamp,
    due_at: Option<webcare_domain::Timestamp>,
}

async fn view(state: &AppState, t: webcare_domain::Ticket) -> Result<TicketView, ApiError> {
    let customer = state.store.customer(t.customer).await?.display_name;
    let assignee = match t.assignee {
        Some(a) => Some(state.store.agent(a).await?.name),
        None => None,
    };
    Ok(ticket_view(t, customer, assignee))
}

/// Many tickets as the API lists them: each customer and the agents read once, not once per ticket.
async fn views(state: &AppState, tickets: Vec<webcare_domain::Ticket>) -> Result<Vec<TicketView>, ApiError> {
    let agents: std::collections::HashMap<AgentId, String> =
        state.store.agents().await?.into_iter().map(|a| (a.id, a.name)).collect();
    let mut customers: std::collections::HashMap<webcare_domain::CustomerId, String> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(tickets.len());
    for t in tickets {
        let customer = match customers.get(&t.customer) {
            Some(name) => name.clone(),
            None => {
                let name = state.store.customer(t.customer).await?.display_name;
                customers.insert(t.customer, name.clone());
                name
            }
        };
        let assignee = t.assignee.and_then(|a| agents.get(&a).cloned());
        out.push(ticket_view(t, customer, assignee));
    }
    Ok(out)
}

fn ticket_view(t: webcare_domain::Ticket, customer: String, assignee: Option<String>) -> TicketView {
    TicketView {
        id: t.id,
        state: t.state,
        subject: t.subject,
        platform: t.platform,
        customer,
        assignee,
        priority: t.priority,
        category: t.category,
        created_at: t.created_at,
        updated_at: t.updated_at,
        due_at: t.due_at,
    }
}

fn id<T>(raw: &str, make: fn(i64) -> T, what: &str) -> Result<T, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(make)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} {raw} not found")))
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    /// Words in the subject, the customer's name or what they wrote, or a ticket number.
    q: Option<String>,
}

async fn list_tickets(
    State(state): State<AppState>,
    _agent: Authed,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<TicketView>>, ApiError> {
    let states = match q.state.as_deref().filter(|s| !s.is_empty()) {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().parse::<TicketState>().map_err(|e| ApiError::invalid(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let text = match q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) if t.chars().count() > 200 => return Err(ApiError::invalid("q: at most 200 characters")),
        t => t.map(str::to_owned),
    };
    let filter = webcare_domain::TicketFilter { states, text, ..Default::default() };
    Ok(Json(views(&state, state.ticketing.queue(&filter).await?).await?))
}

async fn get_ticket(
    State(state): State<AppState>,
    _agent: Authed,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ticket = state.ticketing.ticket(id(&raw, TicketId, "ticket")?).await?;
    let customer = state.store.customer(ticket.customer).await?;
    let events = state.ticketing.events(ticket.id).await?;
    let mut agents = std::collections::BTreeMap::new();
    let mut messages = Vec::new();
    for e in events {
        let direction = match e.kind {
            TicketEventKind::CustomerMessage => "in",
            TicketEventKind::Reply => "out",
            TicketEventKind::Note => "note",
            _ => continue,
        };
        let author = match e.actor {
            Some(a) => match agents.get(&a) {
                Some(name) => String::clone(name),
                None => {
                    let name = state.store.agent(a).await?.name;
                    agents.insert(a, name.clone());
                    name
                }
            },
            None if direction == "in" => customer.display_name.clone(),
            None => "webcare".to_owned(),
        };
        messages
            .push(json!({"id": e.id, "direction": direction, "text": e.body, "author": author, "created_at": e.at}));
    }
    // An agent answering a case that an active notice covers is shown the notice, so public answers stay consistent;
    // by the same rule as the console and the staff chats.
    let notices: Vec<Value> = webcare_app::notices::covering(state.store.as_ref(), &ticket)
        .await?
        .into_iter()
        .map(|n| json!({"id": n.id, "title": n.title, "text": n.text, "state": n.state}))
        .collect();
    // The language the customer uses, so that the answer is in it.
    let language =
        webcare_app::messages::language_of(state.store.as_ref(), ticket.conversation, ticket.customer).await?;
    let mut body = serde_json::to_value(view(&state, ticket).await?).expect("a ticket serialises");
    body["customer_language"] = json!(language);
    body["messages"] = Value::Array(messages);
    body["active_notices"] = Value::Array(notices);
    Ok(Json(body))
}

async fn claim(
    State(state): State<AppState>,
    agent: Authed,
    Path(raw): Path<String>,
) -> Result<Json<TicketView>, ApiError> {
    let t = state.ticketing.claim(id(&raw, TicketId, "ticket")?, &agent.0, Utc::now()).await?;
    Ok(Json(view(&state, t).await?))
}

#[derive(Deserialize)]
struct TextBody {
    text: String,
}

const MAX_TEXT: usize = 4000;

fn text(body: &TextBody) -> Result<&str, ApiError> {
    let t = body.text.trim();
    if t.is_empty() || t.chars().count() > MAX_TEXT {
        return Err(ApiError::invalid(format!("text must have 1 to {MAX_TEXT} characters")));
    }
    Ok(t)
}

async fn reply(
    State(state): State<AppState>,
    agent: Authed,
    Path(raw): Path<String>,
    Body(body): Body<TextBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ticket = id(&raw, TicketId, "ticket")?;
    let now = Utc::now();
    let reply = state.ticketing.record_reply(ticket, &agent.0, text(&body)?, now).await?;
    let queued = state.store.enqueue(reply.outbox, now).await?;
    state.notices.wake();
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": reply.event.id, "outbox": queued.get().id, "state": reply.ticket.state})),
    ))
}

async fn note(
    State(state): State<AppState>,
    agent: Authed,
    Path(raw): Path<String>,
    Body(body): Body<TextBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let event = state.ticketing.note(id(&raw, TicketId, "ticket")?, &agent.0, text(&body)?, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": event.id}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchTicket {
    state: Option<TicketState>,
    priority: Option<i64>,
    /// An agent's name, or null to unassign.
    #[serde(default, with = "double_option")]
    assignee: Option<Option<String>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

async fn patch_ticket(
    State(state): State<AppState>,
    agent: Authed,
    Path(raw): Path<String>,
    Body(body): Body<PatchTicket>,
) -> Result<Json<TicketView>, ApiError> {
    let ticket = id(&raw, TicketId, "ticket")?;
    let assignee = match body.assignee {
        Some(Some(name)) => Some(Some(
            state
                .store
                .agent_by_name(&name)
                .await?
                .ok_or_else(|| ApiError::invalid(format!("no agent named `{name}`")))?
                .id,
        )),
        Some(None) => Some(None::<AgentId>),
        None => None,
    };
    let patch = TicketPatch { state: body.state, priority: body.priority, assignee };
    let t = state.ticketing.update(ticket, &agent.0, &patch, Utc::now()).await?;
    Ok(Json(view(&state, t).await?))
}

fn notice_json(n: &webcare_domain::Notice) -> Value {
    json!({
        "id": n.id, "title": n.title, "text": n.text, "texts": n.texts, "services": n.services, "regions": n.regions,
        "state": n.state, "version": n.version, "draft": n.draft, "active": n.is_active(),
        "paid_broadcast": n.paid_broadcast, "created_at": n.created_at, "updated_at": n.updated_at,
    })
}

async fn list_notices(State(state): State<AppState>, _agent: Authed) -> Result<Json<Vec<Value>>, ApiError> {
    Ok(Json(state.store.notices(false).await?.iter().map(notice_json).collect()))
}

async fn create_notice(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Body(input): Body<NoticeInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let n = state.notices.create(input, &admin, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(notice_json(&n))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchNotice {
    text: Option<String>,
    #[serde(default)]
    texts: Option<std::collections::BTreeMap<String, String>>,
    state: Option<NoticeState>,
    services: Option<Vec<Service>>,
    regions: Option<Vec<String>>,
    /// `false` publishes a draft (or, under four eyes, approves it when the caller is another admin).
    draft: Option<bool>,
    /// Send this and later versions on Telegram as a paid broadcast; the estimate is in `GET .../delivery`.
    paid_broadcast: Option<bool>,
}

async fn patch_notice(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(raw): Path<String>,
    Body(body): Body<PatchNotice>,
) -> Result<Json<Value>, ApiError> {
    let admin = &admin;
    let notice = id(&raw, NoticeId, "notice")?;
    let now = Utc::now();
    let (n, proposed) = if body.draft == Some(false)
        && body.text.is_none()
        && body.texts.is_none()
        && body.state.is_none()
        && body.services.is_none()
        && body.regions.is_none()
        && body.paid_broadcast.is_none()
    {
        (state.notices.approve(notice, admin, now).await?, false)
    } else {
        let change = NoticeChange {
            text: body.text,
            texts: body.texts,
            state: body.state,
            services: body.services,
            regions: body.regions,
            draft: body.draft,
            paid_broadcast: body.paid_broadcast,
            ..Default::default()
        };
        let updated = state.notices.update(notice, change, admin, now).await?;
        (updated.notice, updated.proposed)
    };
    // Under four eyes new words wait for another admin: the notice is returned as customers still see it.
    let mut json = notice_json(&n);
    json["proposed"] = json!(proposed);
    Ok(Json(json))
}

async fn delivery(
    State(state): State<AppState>,
    _agent: Authed,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = state.notices.progress(id(&raw, NoticeId, "notice")?).await?;
    Ok(Json(serde_json::to_value(p).expect("progress serialises")))
}

async fn list_alerts(State(state): State<AppState>, _agent: Authed) -> Result<Json<Vec<Value>>, ApiError> {
    let alerts = state.store.alerts().await?;
    let mut webhooks: std::collections::HashMap<AlertId, webcare_domain::AlertWebhook> =
        state.store.alert_webhooks().await?.into_iter().map(|w| (w.alert, w)).collect();
    let clusters = webcare_app::alerts::alert_clusters(state.store.as_ref(), &alerts).await?;
    Ok(Json(
        alerts
            .into_iter()
            .map(|a| {
                // What became of its cluster: still open, answered by a notice (published from the alert or by
                // hand), or expired into tickets.
                let cluster = clusters.get(&a.cluster);
                // Where its post to the service's webhook stands: pending, sending, posted, failed (with why), or
                // skipped (no webhook for the service).
                let webhook = webhooks.remove(&a.id).map(|w| {
                    json!({
                        "state": w.state, "route": w.route, "attempts": w.attempts, "error": w.last_error,
                        "posted_at": w.posted_at,
                        "next_attempt_at": (w.state == webcare_domain::WebhookState::Pending).then_some(w.next_attempt_at),
                    })
                });
                json!({
                    "id": a.id, "service": a.service, "region": a.region, "count": a.count, "first_at": a.first_at,
                    "last_at": a.last_at, "samples": a.samples, "cluster": a.cluster, "draft": a.draft,
                    "webhook": webhook,
                    "cluster_state": cluster.map(|c| c.state), "notice": cluster.and_then(|c| c.notice),
                })
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FromAlert {
    title: String,
    text: String,
    /// The text per language code (`{"en": "..."}`) where it differs from `text`.
    #[serde(default)]
    texts: std::collections::BTreeMap<String, String>,
    state: NoticeState,
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    days: Option<String>,
}

/// The figures of the last `days` days (default 30): messages per day and category, per region, spike alerts,
/// tickets and first-response times (`webcare_app::reports::Report`).
async fn reports(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<ReportQuery>,
) -> Result<Json<webcare_app::reports::Report>, ApiError> {
    let max = webcare_app::reports::MAX_DAYS;
    let days = match q.days.as_deref().map(str::trim) {
        None | Some("") => 30,
        Some(raw) => webcare_app::reports::days(raw)
            .ok_or_else(|| ApiError::invalid(format!("days: a whole number from 1 to {max}, not {raw:?}")))?,
    };
    let zone = state.ticketing.policy().sla.timezone;
    Ok(Json(webcare_app::reports::report(state.store.as_ref(), Utc::now(), days, zone).await?))
}

/// Stored messages, newest first, filtered by what was decided (`webcare_app::messages::query`); `next_before`
/// asks for the next page.
async fn list_messages(
    State(state): State<AppState>,
    _admin: Admin,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let query = webcare_app::messages::query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), Utc::now())
        .map_err(ApiError::invalid)?;
    let page = state.store.inbound_page(&query.filter, query.limit).await?;
    let next = (page.len() == query.limit as usize).then(|| page.last().map(|m| m.id)).flatten();
    Ok(Json(
        json!({"messages": page.iter().map(webcare_app::messages::message_record).collect::<Vec<_>>(), "next_before": next}),
    ))
}

/// One stored message with its decision, and how the bridge's data loaded now reads its text (`now`, in the
/// decision's fields; `null` for a message without text).
async fn get_message(
    State(state): State<AppState>,
    _admin: Admin,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = state.store.inbound(id(&raw, webcare_domain::InboundId, "message")?).await?;
    let mut out = webcare_app::messages::message_record(&m);
    out["now"] = if m.text.trim().is_empty() {
        Value::Null
    } else {
        state.intake.classify(&m.text, m.place.as_deref()).unwrap_or(Value::Null)
    };
    Ok(Json(out))
}

/// Asks every running instance to read the bridge's data files again (as SIGHUP does for one): 202 with the
/// request's generation; each instance does it within a few seconds and says so in its log.
async fn reload(State(state): State<AppState>, Admin(admin): Admin) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = webcare_app::intake::RELOAD_BRIDGE_DATA;
    let generation = state.store.request_reload(name, &admin.name, Utc::now()).await?;
    tracing::info!(agent = %admin.name, generation, "bridge data reload requested through the API");
    Ok((StatusCode::ACCEPTED, Json(json!({"reload": name, "generation": generation}))))
}

/// The lexicons' groups as the running classifier counts them (data files with the admins' changes), and the
/// changes.
async fn get_lexicon(State(state): State<AppState>, _admin: Admin) -> Result<Json<Value>, ApiError> {
    let changes = state.store.lexicon_changes().await?;
    Ok(Json(json!({"groups": state.intake.lexicon(), "changes": changes})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLexiconChange {
    language: String,
    group: String,
    term: String,
    edit: webcare_domain::TermEdit,
}

/// Adds a term to a group or takes a listed one out: 201 with the change; every instance applies it within a few
/// seconds. 422 for a group that does not exist or a term that cannot be one, 409 for a term that counts already
/// (add) or is not listed (remove).
async fn post_lexicon_change(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Body(body): Body<NewLexiconChange>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let edit =
        webcare_app::lexicon::Edit { language: &body.language, group: &body.group, term: &body.term, edit: body.edit };
    let loaded = state.intake.lexicon();
    let kept = webcare_app::lexicon::change(state.store.as_ref(), &loaded, edit, &admin, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(json!(kept))))
}

/// Takes a change back (the data files' word holds again): 204.
async fn delete_lexicon_change(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = id(&raw, webcare_domain::LexiconChangeId, "lexicon change")?;
    webcare_app::lexicon::undo(state.store.as_ref(), id, &admin, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A code for the calling agent to link a chat account with `/link CODE` in a staff chat; shown once.
async fn chat_link(State(state): State<AppState>, agent: Authed) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = Utc::now();
    let code = webcare_app::staff::issue_link_code(state.store.as_ref(), &agent.0, now).await?;
    let expires_at = now + webcare_app::staff::LINK_VALID;
    Ok((StatusCode::CREATED, Json(json!({"code": code, "command": format!("/link {code}"), "expires_at": expires_at}))))
}

async fn notice_from_alert(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(raw): Path<String>,
    Body(body): Body<FromAlert>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let admin = &admin;
    let alert = id(&raw, AlertId, "alert")?;
    let n = state
        .notices
        .publish_from_alert(alert, body.title, body.text, body.texts, body.state, admin, Utc::now())
        .await?;
    Ok((StatusCode::CREATED, Json(notice_json(&n))))
}
