//! Logging in and out.
//!
//! A failed login looks the same whether the name is unknown or the password wrong: the same page, the same
//! status, and about the same time, because exactly one argon2 verification runs either way (against a fixed dummy
//! hash when there is no usable account) and every failure is held to at least `failed_login_floor`.
//! Failures are counted per client address and per account name in a sliding window; past the limit the console
//! answers 429 without checking the password. The counters live in the database, so the limits hold for every
//! webcare instance together.
//!
//! The login form has its own CSRF token (there is no session yet): a random value in a short-lived `HttpOnly`
//! cookie that the form must post back (double submit), so another site cannot log a browser in.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::Utc;
use rand::RngCore;
use webcare_domain::ConsoleSession;

use super::html::{self, E, Live};
use super::{Posted, SESSION_COOKIE, Staff, cookie, read_form, same_secret, see_other, unavailable};
use crate::AppState;
use crate::auth::{hash_api_token, hash_password, verify_password};

const LOGIN_COOKIE: &str = "webcare_login";

/// A fresh random token: 256 bits in lowercase hex.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub(crate) fn valid_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The hash unknown names are checked against, so that they cost one argon2 verification like known ones.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("webcare: no such agent").expect("argon2 hashes a constant"))
}

/// Failed logins per key (`addr:…`, `name:…`) within the window, kept in the database so that the limits hold
/// for every instance together (an attacker spreading guesses over instances gets no more of them).
struct Limiter<'a> {
    store: &'a dyn webcare_domain::Store,
    window: Duration,
}

impl Limiter<'_> {
    fn window(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::minutes(15))
    }

    /// How long until `key` may try again, when it is at `limit` failures within the window.
    async fn blocked(&self, key: &str, limit: usize) -> webcare_domain::StoreResult<Option<Duration>> {
        let now = Utc::now();
        let (failures, oldest) = self.store.login_failures(key, now - self.window()).await?;
        Ok(match oldest {
            Some(oldest) if failures >= limit as u64 => {
                Some((oldest + self.window() - now).to_std().unwrap_or(Duration::ZERO))
            }
            _ => None,
        })
    }

    async fn record(&self, key: &str) -> webcare_domain::StoreResult<()> {
        let now = Utc::now();
        self.store.record_login_failure(key, now, now - self.window()).await
    }

    async fn clear(&self, key: &str) -> webcare_domain::StoreResult<()> {
        self.store.clear_login_failures(key).await
    }
}

fn login_form(token: &str, name: &str, message: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(m) = message {
        let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", E(m));
    }
    let _ = write!(
        body,
        "<form class=\"login card\" method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Name <input name=\"name\" autocomplete=\"username\" required maxlength=\"100\" value=\"{}\"></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Log in</button></form>\
         <p class=\"hint\">Customers: <a href=\"/chat\">web chat</a>.</p>",
        E(token),
        E(name)
    );
    body
}

/// The login page with a login token cookie (the one the browser has, if valid, so reloading does not break an
/// open form).
fn login_page(headers: &HeaderMap, status: StatusCode, name: &str, message: Option<&str>) -> Response {
    let token = cookie(headers, LOGIN_COOKIE).filter(|t| valid_token(t)).map_or_else(new_token, str::to_owned);
    let mut response = html::page(status, "Log in", None, Live::default(), &login_form(&token, name, message));
    let cookie = format!("{LOGIN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/login; Max-Age=3600");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

pub async fn page(State(state): State<AppState>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    if Staff::from_request_parts(&mut parts, &state).await.is_ok() {
        return see_other("/");
    }
    login_page(&parts.headers, StatusCode::OK, "", None)
}

pub async fn submit(State(state): State<AppState>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let console = super::console(&parts);
    let headers = parts.headers.clone();
    let address = crate::client_address(&parts.headers, &parts.extensions, console.config.trust_forwarded_for);
    let fields = match read_form(Request::from_parts(parts, body), &state, None).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let login_token = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if !valid_token(login_token) || !fields.get("csrf").is_some_and(|t| same_secret(t, login_token)) {
        return html::error_page(
            StatusCode::FORBIDDEN,
            "The login form's security token is missing or stale; reload the login page and try again.",
            None,
        );
    }
    let name = fields.text("name").chars().take(100).collect::<String>();
    let password = fields.get("password").unwrap_or("").to_owned();
    let config = &console.config;
    let address_key = format!("addr:{address}");
    let account_key = format!("name:{}", name.to_lowercase());
    let limiter = Limiter { store: state.store.as_ref(), window: config.login_window };
    let blocked = match (
        limiter.blocked(&address_key, config.login_failures_per_address).await,
        limiter.blocked(&account_key, config.login_failures_per_account).await,
    ) {
        (Ok(by_address), Ok(by_account)) => by_address.max(by_account),
        (Err(e), _) | (_, Err(e)) => return unavailable(e, None),
    };
    if let Some(wait) = blocked {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        tracing::warn!(address = %address, "console login rate limited");
        let mut response = login_page(
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            &name,
            Some(&format!(
                "Too many failed logins. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }

    let agent = match state.store.agent_by_name(&name).await {
        Ok(a) => a,
        Err(e) => return unavailable(e, None),
    };
    let usable = agent.filter(|a| a.active && a.password_hash.is_some());
    let phc = usable.as_ref().and_then(|a| a.password_hash.clone()).unwrap_or_else(|| dummy_hash().to_owned());
    // argon2 takes tens of milliseconds of CPU: off the async workers.
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &phc)).await.unwrap_or(false);
    let agent = match usable {
        Some(a) if matches => a,
        _ => {
            for key in [&address_key, &account_key] {
                if let Err(e) = limiter.record(key).await {
                    return unavailable(e, None);
                }
            }
            tokio::time::sleep_until((started + config.failed_login_floor).into()).await;
            return login_page(&headers, StatusCode::UNAUTHORIZED, &name, Some("Wrong name or password."));
        }
    };
    if let Err(e) = limiter.clear(&account_key).await {
        return unavailable(e, None);
    }

    let now = Utc::now();
    let id = new_token();
    let session = ConsoleSession {
        id_hash: hash_api_token(&id),
        agent: agent.id,
        csrf: new_token(),
        created_at: now,
        expires_at: now + chrono::Duration::from_std(config.session_ttl).unwrap_or(chrono::Duration::hours(12)),
    };
    if let Err(e) = state.store.create_session(&session).await {
        return unavailable(e, None);
    }
    // Housekeeping: logins are rare enough to carry it.
    let _ = state.store.delete_expired_sessions(now).await;
    tracing::info!(agent = %agent.id, "console login");
    let https = headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if config.secure_cookies || https { "; Secure" } else { "" };
    let mut response = see_other("/");
    let session_cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        config.session_ttl.as_secs()
    );
    for c in [session_cookie, format!("{LOGIN_COOKIE}=; HttpOnly; SameSite=Strict; Path=/login; Max-Age=0")] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

pub async fn logout(State(state): State<AppState>, posted: Posted) -> Response {
    if let Err(e) = state.store.delete_session(&posted.staff.session.id_hash).await {
        return unavailable(e, Some(&posted.staff));
    }
    let mut response = see_other("/login");
    if let Ok(v) = HeaderValue::from_str(&format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}
