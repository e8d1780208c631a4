//! The web chat: a customer page at `/chat`, no login, messages through the same intake as Discord and Telegram.
//!
//! The browser asks for a conversation id once (`POST /chat/api/session`: 256 random bits) and keeps it; that id is
//! the only key to the conversation, so one customer cannot read another's. Messages go in through
//! [`Intake`]; answers come out of the outbox through [`WebchatSender`], which only has to tell the page that its
//! transcript changed: the outbox row itself is the message. The page listens on server-sent events and refetches
//! the transcript, which also keeps it right when another webcare instance delivered the answer.
//!
//! Everything a customer or an agent wrote is rendered with `textContent` in the page, never as HTML.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use webcare_domain::{
    Conversation, ConversationId, ConversationKind, InboundEvent, InboundKind, IntakeError, OutboxItem, OutboxState,
    Platform, SendError, Sender, Sent, answer_language, say,
};

use crate::AppState;

/// Longest message the web chat takes, in characters.
pub const MAX_TEXT: usize = 4000;

/// Tells open pages that their conversation has news.
#[derive(Clone)]
pub struct WebchatHub {
    changed: broadcast::Sender<ConversationId>,
}

impl Default for WebchatHub {
    fn default() -> Self {
        WebchatHub { changed: broadcast::channel(1024).0 }
    }
}

impl WebchatHub {
    pub fn notify(&self, conversation: ConversationId) {
        // No page listening is fine: the transcript is in the database either way.
        let _ = self.changed.send(conversation);
    }
}

/// Delivers outbox rows to web chat pages.
pub struct WebchatSender {
    pub hub: WebchatHub,
}

#[async_trait]
impl Sender for WebchatSender {
    fn platform(&self) -> Platform {
        Platform::Webchat
    }

    async fn send(&self, to: &Conversation, item: &OutboxItem) -> Result<Sent, SendError> {
        self.hub.notify(to.id);
        Ok(Sent { platform_message_id: Some(format!("out-{}", item.id)) })
    }
}

pub async fn page() -> Response {
    with_csp(Html(include_str!("../assets/chat.html")).into_response())
}

pub async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../assets/chat.js")).into_response()
}

pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../assets/chat.css")).into_response()
}

/// Scripts and styles only from this server, no inline code, no framing: injected markup cannot run.
pub fn with_csp(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[derive(Serialize)]
pub struct Session {
    conversation: String,
}

/// How many web chat conversations one client address may start, and messages it may post, per minute
/// (`http.webchat_sessions_per_minute`, `http.webchat_messages_per_minute`): a burst of that many, then one every
/// 60/n seconds. Each conversation is a customer of its own, so without this one address could start conversations
/// without end and pass the bridge's flood control per customer. The counts are this process's: several instances
/// behind one balancer let an address do that much at each, which still bounds a flood.
pub struct AddressLimits {
    sessions: DefaultKeyedRateLimiter<String>,
    messages: DefaultKeyedRateLimiter<String>,
    trust_forwarded_for: bool,
}

/// Addresses kept before those that have used none of their quota lately are forgotten.
const ADDRESSES_KEPT: usize = 10_000;

impl AddressLimits {
    pub fn new(sessions_per_minute: u32, messages_per_minute: u32, trust_forwarded_for: bool) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        AddressLimits {
            sessions: RateLimiter::keyed(quota(sessions_per_minute)),
            messages: RateLimiter::keyed(quota(messages_per_minute)),
            trust_forwarded_for,
        }
    }

    /// Takes one from `limiter`'s quota for the request's address, or says how long until it has one again.
    fn take(
        &self,
        limiter: &DefaultKeyedRateLimiter<String>,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<(), Duration> {
        if limiter.len() > ADDRESSES_KEPT {
            limiter.retain_recent();
        }
        let address = crate::client_address(headers, extensions, self.trust_forwarded_for);
        limiter.check_key(&address).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// 429 with `Retry-After`, in the browser's language where it is known.
fn too_many(wait: Duration, language: Option<&str>, nl: &str, en: &str) -> Response {
    let secs = wait.as_secs() + 1;
    let message = say(
        language,
        &format!("{nl} Probeer het over {secs} seconden opnieuw."),
        &format!("{en} Please try again in {secs} seconds."),
    );
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", &message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

pub async fn session(
    Extension(limits): Extension<Arc<AddressLimits>>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    if let Err(wait) = limits.take(&limits.sessions, &headers, &extensions) {
        let language = browser_language(None, &headers);
        return too_many(
            wait,
            language.as_deref().and_then(answer_language),
            "Er zijn vanaf dit adres veel gesprekken begonnen.",
            "Many conversations were started from this address.",
        );
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Json(Session { conversation: hex::encode(bytes) }).into_response()
}

fn valid_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(serde_json::json!({"error": {"code": code, "message": message}}))).into_response()
}

#[derive(Deserialize)]
pub struct Post {
    conversation: String,
    /// The page's own id for this message, so that a retried post is stored once.
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    text: String,
    /// A button press instead of text.
    #[serde(default)]
    button: Option<String>,
    /// The browser's language (`navigator.language`: `nl-NL`, `en-GB`), for answers to what shows none of its own.
    #[serde(default)]
    language: Option<String>,
}

/// The person's language: what the page says (`navigator.language`), else the browser's first `Accept-Language`.
fn browser_language(given: Option<String>, headers: &HeaderMap) -> Option<String> {
    let accepted = || {
        let value = headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
        value.split(',').next().map(|t| t.split(';').next().unwrap_or_default().trim().to_owned())
    };
    given.or_else(accepted).filter(|t| !t.is_empty() && t.len() <= 35)
}

/// A body that is not JSON, or not this shape, gets the API's error shape (`bad_json`, `invalid`, ...), which the page
/// shows as it shows every other error.
pub async fn post(
    State(state): State<AppState>,
    Extension(limits): Extension<Arc<AddressLimits>>,
    headers: HeaderMap,
    extensions: Extensions,
    crate::api::Body(post): crate::api::Body<Post>,
) -> Response {
    let language = browser_language(post.language.clone(), &headers);
    let answer = language.as_deref().and_then(answer_language);
    if !valid_id(&post.conversation) {
        return error(StatusCode::BAD_REQUEST, "invalid_conversation", "unknown conversation id");
    }
    if post.id.is_empty() || post.id.len() > 64 || !post.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return error(StatusCode::BAD_REQUEST, "invalid_message_id", "a message id of letters, digits and dashes");
    }
    if let Err(wait) = limits.take(&limits.messages, &headers, &extensions) {
        return too_many(
            wait,
            answer,
            "Er komen veel berichten van dit adres.",
            "Many messages are coming from this address.",
        );
    }
    let text = post.text.trim().to_owned();
    if text.chars().count() > MAX_TEXT {
        let (nl, en) = (
            format!("Een bericht mag hoogstens {MAX_TEXT} tekens hebben."),
            format!("A message may have at most {MAX_TEXT} characters."),
        );
        return error(StatusCode::PAYLOAD_TOO_LARGE, "message_too_long", &say(answer, &nl, &en));
    }
    let kind = match post.button {
        Some(data) => InboundKind::Button { data },
        None if text.is_empty() => {
            let message = say(answer, "Schrijf eerst een bericht.", "Write a message first.");
            return error(StatusCode::UNPROCESSABLE_ENTITY, "empty_message", &message);
        }
        None => match text.strip_prefix('/') {
            Some(command) if !command.is_empty() && !command.starts_with(char::is_whitespace) => {
                let (name, args) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
                InboundKind::Command { name: name.to_owned(), args: args.trim().to_owned() }
            }
            _ => InboundKind::Message,
        },
    };
    let name = post.name.map(|n| n.trim().chars().take(80).collect::<String>()).filter(|n| !n.is_empty());
    let event = InboundEvent {
        platform: Platform::Webchat,
        chat_id: post.conversation.clone(),
        chat_kind: ConversationKind::Private,
        chat_title: None,
        user_id: post.conversation.clone(),
        user_name: name.unwrap_or_else(|| "web chat".to_owned()),
        from_bot: false,
        message_id: format!("{}/{}", &post.conversation[..16], post.id),
        text,
        attachments: Vec::new(),
        kind,
        place: None,
        language,
        account: String::new(),
        at: chrono::Utc::now(),
    };
    match state.intake.receive(event).await {
        Ok(outcome) => {
            if let Ok(Some(c)) = state.store.conversation_by_chat(Platform::Webchat, &post.conversation).await {
                state.webchat.notify(c.id);
            }
            (StatusCode::ACCEPTED, Json(serde_json::json!({"action": outcome.action, "new": outcome.new})))
                .into_response()
        }
        Err(IntakeError::Invalid(m)) => error(StatusCode::BAD_REQUEST, "invalid_message", &m),
        Err(IntakeError::Unavailable(m)) => {
            tracing::warn!(error = %m, "web chat message not stored");
            let message = say(answer, "Probeer het zo nog eens.", "Please try again in a moment.");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &message)
        }
    }
}

#[derive(Deserialize)]
pub struct Which {
    conversation: String,
}

#[derive(Serialize)]
struct Line {
    id: String,
    direction: &'static str,
    text: String,
    at: webcare_domain::Timestamp,
    buttons: Vec<Button>,
}

#[derive(Serialize, Deserialize)]
struct Button {
    text: String,
    data: String,
}

pub async fn transcript(State(state): State<AppState>, Query(which): Query<Which>) -> Response {
    if !valid_id(&which.conversation) {
        return error(StatusCode::BAD_REQUEST, "invalid_conversation", "unknown conversation id");
    }
    let conversation = match state.store.conversation_by_chat(Platform::Webchat, &which.conversation).await {
        Ok(Some(c)) => c,
        Ok(None) => return Json(Vec::<serde_json::Value>::new()).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "web chat transcript unavailable");
            return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "please try again in a moment");
        }
    };
    let (inbound, outbound) = match state.store.transcript(conversation.id).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "web chat transcript unavailable");
            return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "please try again in a moment");
        }
    };
    let mut lines: Vec<Line> = inbound
        .into_iter()
        .filter(|m| m.deleted_at.is_none())
        .map(|m| Line { id: format!("in-{}", m.id), direction: "in", text: m.text, at: m.received_at, buttons: vec![] })
        .collect();
    lines.extend(outbound.into_iter().filter(|o| o.state == OutboxState::Sent).map(|o| Line {
        id: format!("out-{}", o.id),
        direction: "out",
        buttons: serde_json::from_value(o.extra.get("buttons").cloned().unwrap_or_default()).unwrap_or_default(),
        text: o.body,
        at: o.sent_at.unwrap_or(o.created_at),
    }));
    lines.sort_by(|a, b| a.at.cmp(&b.at).then(a.id.cmp(&b.id)));
    Json(lines).into_response()
}

pub async fn events(
    State(state): State<AppState>,
    Query(which): Query<Which>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>, Response> {
    if !valid_id(&which.conversation) {
        return Err(error(StatusCode::BAD_REQUEST, "invalid_conversation", "unknown conversation id"));
    }
    let store = state.store.clone();
    let chat = which.conversation;
    let rx = state.webchat.changed.subscribe();
    let shutdown = state.shutdown.clone();
    let stream = futures_util::stream::unfold(
        (rx, store, chat, None::<ConversationId>),
        move |(mut rx, store, chat, mut id)| {
            let shutdown = shutdown.clone();
            async move {
                loop {
                    if shutdown.is_cancelled() {
                        return None;
                    }
                    if id.is_none() {
                        id = store.conversation_by_chat(Platform::Webchat, &chat).await.ok().flatten().map(|c| c.id);
                    }
                    // A periodic nudge as well: an answer delivered by another instance reaches this page too.
                    let changed = tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        changed = tokio::time::timeout(Duration::from_secs(3), rx.recv()) => changed,
                    };
                    let relevant = match changed {
                        Ok(Ok(c)) => Some(c) == id,
                        Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => true,
                        Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    };
                    if relevant {
                        return Some((Ok(Event::default().event("changed").data("1")), (rx, store, chat, id)));
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
