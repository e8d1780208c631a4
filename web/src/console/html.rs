//! HTML building blocks: the one escaping function every customer- or agent-supplied string goes through, the
//! page layout, and small formatting helpers.
//!
//! Pages are built with `write!` into a `String`. Anything that did not come from this crate's own literals is
//! written through [`E`] (or [`escape`]), which turns `<`, `>`, `&`, `"` and `'` into entities, so a message can never
//! become markup, close an attribute or start a script.

use std::fmt::{self, Display, Write as _};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use webcare_domain::{Role, Timestamp};

use super::Staff;
use crate::webchat::with_csp;

/// `s` with the five characters that mean something in HTML text and attributes replaced by entities.
pub fn escape(s: &str) -> String {
    E(s).to_string()
}

/// Displays its string HTML-escaped: `write!(out, "<td>{}</td>", E(&ticket.subject))`.
pub struct E<'a>(pub &'a str);

impl Display for E<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['<', '>', '&', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'&' => "&amp;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// A time as the console shows it: UTC, to the minute.
pub fn when(t: Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// How far a due time is from now: "in 2 h 5 min" or "35 min overdue".
pub fn due(t: Option<Timestamp>) -> (String, bool) {
    let Some(t) = t else { return ("—".to_owned(), false) };
    let minutes = (t - Utc::now()).num_minutes();
    let span = |m: i64| if m >= 60 { format!("{} h {} min", m / 60, m % 60) } else { format!("{m} min") };
    if minutes < 0 { (format!("{} overdue", span(-minutes)), true) } else { (format!("in {}", span(minutes)), false) }
}

/// Where on the page the live area is and what it listens to.
#[derive(Default)]
pub struct Live<'a> {
    /// The server-sent events URL whose `changed` events make the page refetch its `#live` area.
    pub events: Option<&'a str>,
}

/// A whole console page: head, navigation for the logged-in agent, `body`. Served with the strict CSP and
/// `no-store`, since pages hold customers' messages.
pub fn page(status: StatusCode, title: &str, staff: Option<&Staff>, live: Live<'_>, body: &str) -> Response {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · webcare</title><link rel=\"stylesheet\" href=\"/console/console.css\">\
         <script src=\"/console/console.js\" defer></script></head>",
        E(title)
    );
    match live.events {
        Some(events) => {
            let _ = write!(out, "<body data-events=\"{}\">", E(events));
        }
        None => out.push_str("<body>"),
    }
    out.push_str("<header class=\"top\"><a class=\"brand\" href=\"/\">webcare</a>");
    if let Some(staff) = staff {
        out.push_str("<nav><a href=\"/\">Queue</a><a href=\"/notices\">Notices</a>");
        if staff.agent.role == Role::Admin {
            out.push_str(
                "<a href=\"/alerts\">Alerts</a><a href=\"/messages\">Messages</a><a href=\"/lexicon\">Lexicon</a><a href=\"/reports\">Reports</a><a href=\"/canned\">Canned replies</a>\
                 <a href=\"/agents\">Agents</a>",
            );
        }
        out.push_str("<a href=\"/account\">Account</a>");
        let _ = write!(
            out,
            "</nav><form class=\"who\" method=\"post\" action=\"/logout\"><span>{} · {}</span>{}\
             <button type=\"submit\">Log out</button></form>",
            E(&staff.agent.name),
            staff.agent.role,
            csrf_field(staff)
        );
    }
    let _ = write!(out, "</header><main><h1>{}</h1>{body}</main></body></html>", E(title));
    let mut response = (status, Html(out)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_csp(response)
}

/// The hidden field that carries the session's CSRF token in every form.
pub fn csrf_field(staff: &Staff) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", E(&staff.session.csrf))
}

/// A page that says what went wrong, with the status it stands for.
pub fn error_page(status: StatusCode, message: &str, staff: Option<&Staff>) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = format!("<p class=\"error\">{}</p><p><a href=\"/\">Back to the queue</a></p>", E(message));
    page(status, title, staff, Live::default(), &body)
}

/// `<option>`s for `values`, with `selected` marked.
pub fn options<'a>(values: impl IntoIterator<Item = (&'a str, &'a str)>, selected: &str) -> String {
    let mut out = String::new();
    for (value, label) in values {
        let mark = if value == selected { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{}\"{mark}>{}</option>", E(value), E(label));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_turns_markup_into_text() {
        assert_eq!(
            escape("<script>alert('x')</script><img src=x onerror=\"y\">&amp;"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;img src=x onerror=&quot;y&quot;&gt;&amp;amp;"
        );
        assert_eq!(escape("plain tekst, café ✓"), "plain tekst, café ✓");
        assert_eq!(escape(""), "");
    }
}
