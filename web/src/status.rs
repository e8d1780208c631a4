//! The public status page: `/status` (HTML, Dutch, or English with `?lang=en` or an English browser) and
//! `/status.json`, the notices customers are answered from now, in their approved words.
//!
//! A customer who looks here before asking needs no answer at all, which is the cheapest answer during a burst; the
//! JSON lets the operator show the same notices on its own site. Only published, unresolved notices appear (no
//! drafts, and no text that still waits for a second admin's approval: a `Notice` holds its approved version).

use std::fmt::Write as _;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use webcare_domain::{Notice, NoticeState, Service};

use crate::AppState;
use crate::console::html::E;
use crate::webchat::with_csp;

/// How long browsers and proxies may keep the page: a notice update is seen within half a minute.
const MAX_AGE: HeaderValue = HeaderValue::from_static("public, max-age=30");

#[derive(Deserialize)]
pub struct Lang {
    #[serde(default)]
    lang: Option<String>,
}

/// `en` when asked for (`?lang=en`) or when the browser prefers English; Dutch otherwise.
fn english(q: &Lang, headers: &HeaderMap) -> bool {
    match q.lang.as_deref() {
        Some(l) => l.eq_ignore_ascii_case("en"),
        None => headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("en")),
    }
}

fn state_words(state: NoticeState, en: bool) -> &'static str {
    match (state, en) {
        (NoticeState::Investigating, false) => "We onderzoeken de oorzaak",
        (NoticeState::Investigating, true) => "Investigating",
        (NoticeState::Identified, false) => "Oorzaak gevonden, we werken aan herstel",
        (NoticeState::Identified, true) => "Cause found, being fixed",
        (NoticeState::Monitoring, false) => "Hersteld, we houden het in de gaten",
        (NoticeState::Monitoring, true) => "Fixed, monitoring",
        (NoticeState::Resolved, false) => "Opgelost",
        (NoticeState::Resolved, true) => "Resolved",
    }
}

fn service_words(service: Service, en: bool) -> &'static str {
    match (service, en) {
        (Service::Internet, _) => "internet",
        (Service::Tv, false) => "tv",
        (Service::Tv, true) => "TV",
        (Service::Mobile, false) => "mobiel",
        (Service::Mobile, true) => "mobile",
        (Service::Landline, false) => "vaste telefoon",
        (Service::Landline, true) => "landline",
        (Service::Unknown, false) => "alle diensten",
        (Service::Unknown, true) => "all services",
    }
}

/// The notices customers are answered from now (`notices(true)`: published, not resolved), the most recently
/// updated first.
async fn active(state: &AppState) -> Result<Vec<Notice>, Response> {
    match state.store.notices(true).await {
        Ok(mut notices) => {
            notices.sort_by_key(|n| std::cmp::Reverse(n.updated_at));
            Ok(notices)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the status page could not read the notices");
            Err((StatusCode::SERVICE_UNAVAILABLE, "The status is not available right now; please try again.\n")
                .into_response())
        }
    }
}

/// `/status`: the active notices as a page.
pub async fn page(State(state): State<AppState>, Query(q): Query<Lang>, headers: HeaderMap) -> Response {
    let notices = match active(&state).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let en = english(&q, &headers);
    let zone = state.ticketing.policy().sla.timezone;
    let (lang, title, none, other, other_href, updated, nationwide, chat) = if en {
        (
            "en",
            "Service status",
            "No known outages right now.",
            "Nederlands",
            "/status?lang=nl",
            "updated",
            "nationwide",
            "Something else, or not listed here? Ask us in the chat.",
        )
    } else {
        (
            "nl",
            "Storingen",
            "Er zijn nu geen bekende storingen.",
            "English",
            "/status?lang=en",
            "bijgewerkt",
            "landelijk",
            "Iets anders, of staat je storing er niet bij? Vraag het ons in de chat.",
        )
    };
    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
         <link rel=\"stylesheet\" href=\"/chat/chat.css\"></head><body><main class=\"chat status-page\">\
         <header><h1>{title}</h1><p class=\"hint\"><a href=\"{other_href}\">{other}</a></p></header>"
    );
    if notices.is_empty() {
        let _ = write!(out, "<p class=\"none\" id=\"no-outages\">{none}</p>");
    } else {
        out.push_str("<ul class=\"notices\" id=\"notices\">");
        for n in &notices {
            let services: Vec<&str> = if n.services.is_empty() {
                vec![service_words(Service::Unknown, en)]
            } else {
                n.services.iter().map(|s| service_words(*s, en)).collect()
            };
            let regions = if n.regions.is_empty() { nationwide.to_owned() } else { n.regions.join(", ") };
            let _ = write!(
                out,
                "<li class=\"notice\"><h2>{title}</h2><p class=\"scope\">{services} · {regions}</p>\
                 <p class=\"state\">{state} · {updated} {at}</p><p class=\"text\">{text}</p></li>",
                title = E(&n.title),
                services = E(&services.join(", ")),
                regions = E(&regions),
                state = state_words(n.state, en),
                at = n.updated_at.with_timezone(&zone).format("%d-%m %H:%M"),
                text = E(n.text_for(lang)),
            );
        }
        out.push_str("</ul>");
    }
    let _ = write!(out, "<p class=\"hint\"><a href=\"/chat\">{chat}</a></p></main></body></html>");
    let mut response = with_csp(Html(out).into_response());
    response.headers_mut().insert(header::CACHE_CONTROL, MAX_AGE);
    response
}

/// `/status.json`: the same notices as data, for the operator's own site.
pub async fn json(State(state): State<AppState>) -> Response {
    let notices = match active(&state).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let list: Vec<_> = notices
        .iter()
        .map(|n| {
            json!({
                "id": n.id, "title": n.title, "state": n.state, "services": n.services, "regions": n.regions,
                "text": n.text, "texts": n.texts, "updated_at": n.updated_at,
            })
        })
        .collect();
    let mut response = Json(list).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, MAX_AGE);
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}
