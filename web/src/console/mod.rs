//! The agents' and admins' web console: server-rendered HTML with a little JavaScript, every asset in this
//! repository, live updates over server-sent events.
//!
//! Security lives on the server: a login with argon2 password hashes (failures answered slowly and identically,
//! rate limited per address and per account, counted in the database over every instance), a random session id in an `HttpOnly; SameSite=Strict` cookie stored
//! server-side under its SHA-256, a per-session CSRF token that every form posts back (403 without it), roles
//! checked in every handler (403), the strict Content-Security-Policy of [`crate::webchat::with_csp`] on every page,
//! a body limit (413), and every customer- or agent-supplied string escaped by [`html::escape`].
//!
//! Routes: `/login`, `/logout`, `/` (the queue), `/tickets/{id}` and its actions, `/notices`, `/alerts`,
//! `/reports`, `/messages`, `/lexicon`, `/canned` and `/agents` (admins only), `/console/events` (SSE), `/console/console.{js,css}`.

// Handlers return finished pages (`Response`) as their early-exit errors, as axum handlers return them;
// boxing every one would only add noise.
#![allow(clippy::result_large_err)]

mod account;
mod admin;
pub mod html;
mod lexicon;
mod live;
mod login;
mod messages;
mod notices;
mod reports;
mod tickets;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono::Utc;
use webcare_domain::{Agent, ConsoleSession, Role};

use crate::AppState;
pub use html::escape;

/// The console's settings. [`ConsoleConfig::default`] suits a console on `127.0.0.1` without TLS.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Mark the session cookie `Secure`. Off by default so that the console works on plain
    /// `http://127.0.0.1`; behind an https proxy turn it on (a request with `X-Forwarded-Proto: https` gets a
    /// `Secure` cookie either way).
    pub secure_cookies: bool,
    /// How long a session lasts after login.
    pub session_ttl: Duration,
    /// The largest request body a console route takes; bigger ones get 413.
    pub max_body: usize,
    /// Failed logins from one address within `login_window` before further attempts get 429.
    pub login_failures_per_address: usize,
    /// Failed logins for one account name within `login_window` before further attempts get 429.
    pub login_failures_per_account: usize,
    pub login_window: Duration,
    /// The shortest time a failed login takes, so unknown names and wrong passwords take equally long.
    pub failed_login_floor: Duration,
    /// Take the client's address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
    /// Web chat conversations one client address may start per minute (see `webchat::AddressLimits`).
    pub webchat_sessions_per_minute: u32,
    /// Web chat messages one client address may post per minute.
    pub webchat_messages_per_minute: u32,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            secure_cookies: false,
            session_ttl: Duration::from_secs(12 * 3600),
            max_body: 64 * 1024,
            login_failures_per_address: 20,
            login_failures_per_account: 5,
            login_window: Duration::from_secs(15 * 60),
            failed_login_floor: Duration::from_millis(400),
            trust_forwarded_for: false,
            webchat_sessions_per_minute: 30,
            webchat_messages_per_minute: 120,
        }
    }
}

/// What the console's handlers share besides [`AppState`].
pub(crate) struct Console {
    config: ConsoleConfig,
}

/// The console's routes, to be merged into the application's router.
pub fn routes(config: ConsoleConfig) -> Router<AppState> {
    let max_body = config.max_body;
    let console = Arc::new(Console { config });
    Router::new()
        .route("/", get(tickets::queue))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(style))
        .route("/console/events", get(live::events))
        .route("/tickets/{id}", get(tickets::view))
        .route("/tickets/{id}/{action}", post(tickets::act))
        .route("/notices", get(notices::list).post(notices::create))
        .route("/notices/{id}", get(notices::view).post(notices::act))
        .route("/alerts", get(notices::alerts))
        .route("/alerts/{id}/notice", post(notices::publish_alert))
        .route("/reports", get(reports::page))
        .route("/messages", get(messages::list))
        .route("/messages/try", post(messages::try_text))
        .route("/messages/reload", post(messages::reload))
        .route("/messages/{id}", get(messages::view))
        .route("/agents", get(admin::agents).post(admin::agents_post))
        .route("/account", get(account::page).post(account::post))
        .route("/canned", get(admin::canned).post(admin::canned_post))
        .route("/lexicon", get(lexicon::page).post(lexicon::post))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(Extension(console))
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../../assets/console.js"))
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../assets/console.css")).into_response()
}

pub(crate) const SESSION_COOKIE: &str = "webcare_session";

/// A logged-in, active agent and their session. As an extractor: a `GET` without one is sent to `/login`,
/// anything else gets 403.
pub struct Staff {
    pub agent: Agent,
    pub session: ConsoleSession,
}

impl Staff {
    pub fn is_admin(&self) -> bool {
        self.agent.role == Role::Admin
    }

    /// 403 unless an admin: the server decides, whatever the page showed.
    pub fn require_admin(&self) -> Result<(), Response> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(html::error_page(StatusCode::FORBIDDEN, "Only admins may do this.", Some(self)))
        }
    }
}

fn console(parts: &Parts) -> Arc<Console> {
    parts.extensions.get::<Arc<Console>>().cloned().expect("console routes carry their Console")
}

/// The value of a cookie, if the request carries it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Compares secrets in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn unavailable(e: impl std::fmt::Display, staff: Option<&Staff>) -> Response {
    tracing::warn!(error = %e, "console request failed");
    html::error_page(StatusCode::SERVICE_UNAVAILABLE, "The database did not answer; please try again.", staff)
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ended = |parts: &Parts| {
            if parts.method == Method::GET || parts.method == Method::HEAD {
                Redirect::to("/login").into_response()
            } else {
                html::error_page(StatusCode::FORBIDDEN, "Your session has ended; please log in again.", None)
            }
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE).filter(|v| login::valid_token(v)) else {
            return Err(ended(parts));
        };
        let session = match state.store.session(&crate::auth::hash_api_token(id), Utc::now()).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(ended(parts)),
            Err(e) => return Err(unavailable(e, None)),
        };
        match state.store.agent(session.agent).await {
            Ok(agent) if agent.active => Ok(Staff { agent, session }),
            Ok(_) => Err(ended(parts)),
            Err(e) => Err(unavailable(e, None)),
        }
    }
}

/// The fields of a posted form, in order.
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The field trimmed, `""` when absent.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("").trim()
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Reads a form body: 413 over the body limit, 400 when it is not a form.
async fn read_form(req: Request, state: &AppState, staff: Option<&Staff>) -> Result<Fields, Response> {
    match Form::<Vec<(String, String)>>::from_request(req, state).await {
        Ok(Form(pairs)) => Ok(Fields(pairs)),
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "That is more than the console takes in one request.".to_owned()
            } else {
                rejection.body_text()
            };
            Err(html::error_page(status, &message, staff))
        }
    }
}

/// A form posted by a logged-in agent, its CSRF token checked: 403 without the session's token.
pub struct Posted {
    pub staff: Staff,
    pub fields: Fields,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let staff = Staff::from_request_parts(&mut parts, state).await?;
        let fields = read_form(Request::from_parts(parts, body), state, Some(&staff)).await?;
        if !fields.get("csrf").is_some_and(|t| same_secret(t, &staff.session.csrf)) {
            return Err(html::error_page(
                StatusCode::FORBIDDEN,
                "This form is missing its security token; reload the page and try again.",
                Some(&staff),
            ));
        }
        Ok(Posted { staff, fields })
    }
}

/// An id from a path: anything that is not a positive number names nothing (404).
pub(crate) fn path_id(raw: &str, staff: &Staff) -> Result<i64, Response> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| not_found(staff))
}

pub(crate) fn not_found(staff: &Staff) -> Response {
    html::error_page(StatusCode::NOT_FOUND, "There is nothing here: the id is unknown.", Some(staff))
}

/// After a successful form: back to a page with a `GET` (303).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
