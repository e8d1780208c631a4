//! What webcare decided about each message, and why (`/messages`, `/messages/{id}`, `/messages/try`; admins only).
//!
//! The list filters stored messages by what was done (answered from a notice, held in a cluster, a ticket, moved
//! to private, ignored, not yet decided), by intent, category, service, platform, notice, cluster, ticket, text and
//! age, newest first, a page at a time. A message's page shows its decision with the rule, scores and terms that
//! made it, and how the bridge's data loaded now reads the same text, so that an admin who changed a lexicon and
//! reloaded sees whether the message would now be read as they meant. `/messages/try` reads a typed text the same
//! way, storing and sending nothing.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use webcare_app::messages::{self, Why};
use webcare_domain::{ClusterId, InboundId, InboundMessage, Service, StoreError, TicketFilter};

use super::html::{self, E, Live, csrf_field, options, when};
use super::{Posted, Staff, not_found, path_id, unavailable};
use crate::AppState;

/// The longest text shown in the list; the message's page shows it whole.
const EXCERPT: usize = 140;
/// The longest text `/messages/try` reads (a chat message's limit).
const MAX_TRY: usize = 4000;

fn excerpt(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(EXCERPT).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

/// What was done, as the list and the message's page say it, with links to the notice, cluster and ticket.
fn outcome(why: &Why) -> String {
    let mut out = String::new();
    match (why.command.as_deref(), why.action.as_deref()) {
        (Some(command), _) => {
            let _ = write!(out, "command /{}", E(command));
        }
        (None, Some(action)) => out.push_str(&E(action).to_string()),
        (None, None) => out.push_str("<span class=\"mark\">not decided yet</span>"),
    }
    if let Some(n) = why.notice {
        let _ = write!(out, " · <a href=\"/notices/{n}\">notice {n}</a>");
    }
    if let Some(c) = why.cluster {
        let _ = write!(out, " · <a href=\"/messages?cluster={c}\">cluster {c}</a>");
    }
    if let Some(t) = why.ticket {
        let _ = write!(out, " · <a href=\"/tickets/{t}\">ticket {t}</a>");
    }
    if why.merged {
        out.push_str(" · merged (flood control)");
    }
    out
}

fn decision_of(m: &InboundMessage) -> Option<Why> {
    m.decision.as_ref().map(messages::why)
}

fn select(name: &str, label: &str, values: &[&str], selected: &str) -> String {
    let mut all = vec![("", "any")];
    all.extend(values.iter().map(|v| (*v, *v)));
    format!("<label>{label} <select name=\"{name}\">{}</select></label>", options(all, selected))
}

fn filter_form(given: &[(String, String)]) -> String {
    let value = |k: &str| given.iter().rev().find(|(key, _)| key == k).map_or("", |(_, v)| v.as_str());
    let services: Vec<&str> = Service::ALL.iter().map(|s| s.as_str()).collect();
    let mut out = String::from("<form class=\"filters\" method=\"get\" action=\"/messages\" id=\"message-filters\">");
    out.push_str(&select("action", "Done", &messages::actions(), value("action")));
    out.push_str(&select("intent", "Intent", &messages::intents(), value("intent")));
    out.push_str(&select("category", "Category", &messages::categories(), value("category")));
    out.push_str(&select("service", "Service", &services, value("service")));
    out.push_str(&select("platform", "Platform", &messages::platforms(), value("platform")));
    for (name, label, size) in [
        ("q", "Text", 16),
        ("hours", "Last hours", 5),
        ("notice", "Notice", 5),
        ("cluster", "Cluster", 5),
        ("ticket", "Ticket", 5),
    ] {
        let _ = write!(
            out,
            "<label>{label} <input name=\"{name}\" id=\"filter-{name}\" size=\"{size}\" value=\"{}\"></label>",
            E(value(name))
        );
    }
    out.push_str("<button type=\"submit\">Filter</button> <a href=\"/messages\">all</a></form>");
    out
}

/// `/messages`: the filter form, a page of messages with what was done and the rule that did it, a link to the
/// next page, and the form that reads a typed text.
pub async fn list(State(state): State<AppState>, staff: Staff, Query(given): Query<Vec<(String, String)>>) -> Response {
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let query = match messages::query(given.iter().map(|(k, v)| (k.as_str(), v.as_str())), Utc::now()) {
        Ok(q) => q,
        Err(e) => return html::error_page(StatusCode::UNPROCESSABLE_ENTITY, &e, Some(&staff)),
    };
    let page = match state.store.inbound_page(&query.filter, query.limit).await {
        Ok(p) => p,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let mut body = filter_form(&given);
    if page.is_empty() {
        body.push_str("<p class=\"empty\">No messages match.</p>");
    } else {
        body.push_str(
            "<table class=\"messages\" id=\"messages\"><thead><tr><th>#</th><th>Received</th><th>Platform</th>\
             <th>Text</th><th>Intent</th><th>Category</th><th>Service</th><th>Region</th><th>Done</th><th>Rules</th>\
             </tr></thead><tbody>",
        );
        for m in &page {
            let why = decision_of(m).unwrap_or_default();
            let dash = |v: &Option<String>| E(v.as_deref().unwrap_or("—")).to_string();
            let _ = write!(
                body,
                "<tr><td><a href=\"/messages/{id}\">{id}</a></td><td>{at}</td><td>{platform}</td>\
                 <td class=\"text\">{text}</td><td>{intent}</td><td>{category}</td><td>{service}</td><td>{region}</td>\
                 <td class=\"done\">{done}</td><td>{rule}</td></tr>",
                id = m.id,
                at = when(m.received_at),
                platform = m.platform,
                text = E(&excerpt(&m.text)),
                intent = dash(&why.intent),
                category = dash(&why.category),
                service = dash(&why.service),
                region = dash(&why.region),
                done = outcome(&why),
                rule = if why.rules.is_empty() { "—".to_owned() } else { E(&why.rules.join(" → ")).to_string() },
            );
        }
        body.push_str("</tbody></table>");
        if page.len() as u32 == query.limit
            && let Some(last) = page.last()
        {
            let mut next: Vec<String> = given
                .iter()
                .filter(|(k, v)| k != "before" && !v.trim().is_empty())
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            next.push(format!("before={}", last.id));
            let _ = write!(body, "<p><a href=\"/messages?{}\" id=\"older\">Older messages</a></p>", E(&next.join("&")));
        }
    }
    let _ = write!(
        body,
        "<details class=\"card\"><summary>Read a text with the data loaded now</summary>\
         <form method=\"post\" action=\"/messages/try\">{csrf}\
         <label>Text <textarea name=\"text\" id=\"try-text\" rows=\"3\" required maxlength=\"{MAX_TRY}\"></textarea></label>\
         <label>Platform location (optional) <input name=\"place\" id=\"try-place\"></label>\
         <button type=\"submit\" id=\"try\">Read it</button></form>\
         <p class=\"hint\">Nothing is stored or sent.</p></details>\
         <form method=\"post\" action=\"/messages/reload\" class=\"card\">{csrf}\
         <p>Changed a lexicon, pattern or region file? Check it here, or with <code>webcare message show</code>, \
         then have every instance read its data files again (as a SIGHUP does for one).</p>\
         <button type=\"submit\" id=\"reload\">Reload the data files on every instance</button></form>",
        csrf = csrf_field(&staff),
    );
    html::page(StatusCode::OK, "Messages", Some(&staff), Live::default(), &body)
}

/// Percent-encodes a query string's key or value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A decision or a reading as a definition list and its reasons.
/// `lead` is markup put under the title; `outcome_lines` are what was done and since became of it (none for a
/// reading alone).
fn why_card(title: &str, id: &str, lead: &str, why: &Why, outcome_lines: &[(&str, String)]) -> String {
    let mut out = format!("<section class=\"card\" id=\"{id}\"><h2>{}</h2>{lead}<dl class=\"facts\">", E(title));
    for (label, html) in outcome_lines {
        let _ = write!(out, "<dt>{label}</dt><dd class=\"done\">{html}</dd>");
    }
    for (label, value) in
        [("Intent", &why.intent), ("Category", &why.category), ("Service", &why.service), ("Region", &why.region)]
    {
        let _ = write!(out, "<dt>{label}</dt><dd>{}</dd>", E(value.as_deref().unwrap_or("—")));
    }
    let pii = if why.pii.is_empty() { "none".to_owned() } else { why.pii.join(", ") };
    let _ = write!(out, "<dt>Private data</dt><dd>{}</dd></dl>", E(&pii));
    if why.reasons.is_empty() {
        out.push_str("<p class=\"empty\">No reasons recorded.</p>");
    } else {
        out.push_str("<ul class=\"reasons\">");
        for r in &why.reasons {
            let _ = write!(out, "<li>{}</li>", E(r));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
    out
}

/// The data loaded now, beside what was decided: the same reading, or what differs.
fn reading_now(state: &AppState, text: &str, place: Option<&str>, then: Option<&Why>) -> String {
    let Some(now) = state.intake.classify(text, place).map(|v| messages::why(&v)) else {
        return "<p class=\"hint\">This webcare has no classifier to read the text with.</p>".to_owned();
    };
    let mut out = String::new();
    if let Some(then) = then.filter(|w| w.intent.is_some()) {
        let changes = messages::changes(then, &now);
        if changes.is_empty() {
            out.push_str("<p class=\"same\" id=\"reading-same\">The data loaded now reads it the same way.</p>");
        } else {
            let _ = write!(
                out,
                "<p class=\"changed\" id=\"reading-changed\">The data loaded now reads it differently: {}.</p>",
                E(&changes.join(", "))
            );
        }
    }
    why_card("With the data loaded now", "now", &out, &now, &[])
}

/// `/messages/{id}`: the message whole, its decision and reasons, and how the data loaded now reads it.
pub async fn view(State(state): State<AppState>, staff: Staff, Path(raw): Path<String>) -> Response {
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let id = match path_id(&raw, &staff) {
        Ok(id) => InboundId(id),
        Err(r) => return r,
    };
    let m = match state.store.inbound(id).await {
        Ok(m) => m,
        Err(StoreError::NotFound { .. }) => return not_found(&staff),
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let then = decision_of(&m);
    let mut body = String::new();
    let _ = write!(
        body,
        "<section class=\"card\"><p class=\"text\" id=\"message-text\">{text}</p><dl class=\"facts\">\
         <dt>Received</dt><dd>{at} on {platform}</dd><dt>Conversation</dt><dd>{conversation}</dd>",
        text = E(&m.text),
        at = when(m.received_at),
        platform = m.platform,
        conversation = m.conversation,
    );
    if let Some(place) = &m.place {
        let _ = write!(body, "<dt>Platform location</dt><dd>{}</dd>", E(place));
    }
    if !m.attachments.is_empty() {
        let _ = write!(body, "<dt>Attachments</dt><dd>{}</dd>", E(&m.attachments.join(", ")));
    }
    if let Some(at) = m.edited_at {
        let _ = write!(body, "<dt>Edited</dt><dd>{}</dd>", when(at));
    }
    if let Some(at) = m.deleted_at {
        let _ = write!(body, "<dt>Deleted by the customer</dt><dd>{}</dd>", when(at));
    }
    body.push_str("</dl></section>");
    body.push_str("<div class=\"why-grid\">");
    match &then {
        Some(why) => {
            let mut lines = vec![("Done", outcome(why))];
            // A held message's cluster may since have become a notice, or tickets.
            if let Some(c) = why.cluster {
                match state.store.cluster(ClusterId(c)).await {
                    Ok(cluster) => lines.push(("Cluster since", E(&messages::cluster_fate(&cluster)).to_string())),
                    Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return unavailable(e, Some(&staff)),
                }
            }
            body.push_str(&why_card("What webcare decided", "decided", "", why, &lines))
        }
        None => {
            body.push_str("<p class=\"hint\" id=\"decided\">Not decided yet: the deciding instance has it next.</p>")
        }
    }
    if m.text.trim().is_empty() {
        body.push_str("<p class=\"hint\">No text to read.</p>");
    } else {
        body.push_str(&reading_now(&state, &m.text, m.place.as_deref(), then.as_ref()));
    }
    body.push_str("</div>");
    // Where the customer's cases are: a held question whose cluster expired, or a message that joined a case, is
    // found there.
    let theirs = TicketFilter { customer: Some(m.customer), limit: Some(10), ..TicketFilter::default() };
    match state.store.find_tickets(&theirs).await {
        Ok(tickets) if !tickets.is_empty() => {
            body.push_str("<section class=\"card\" id=\"customer-tickets\"><h2>This customer's tickets</h2><ul>");
            body.push_str(&super::tickets::ticket_items(&tickets, false));
            body.push_str("</ul></section>");
        }
        Ok(_) => {}
        Err(e) => return unavailable(e, Some(&staff)),
    }
    body.push_str("<p><a href=\"/messages\">All messages</a></p>");
    html::page(StatusCode::OK, &format!("Message {id}"), Some(&staff), Live::default(), &body)
}

/// `POST /messages/try`: how the data loaded now reads a typed text; nothing is stored or sent.
pub async fn try_text(State(state): State<AppState>, Posted { staff, fields }: Posted) -> Response {
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let text = fields.text("text");
    if text.is_empty() || text.chars().count() > MAX_TRY {
        return html::error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("Type a text of 1 to {MAX_TRY} characters to read."),
            Some(&staff),
        );
    }
    let place = Some(fields.text("place")).filter(|p| !p.is_empty());
    let mut body = format!("<section class=\"card\"><p class=\"text\" id=\"message-text\">{}</p></section>", E(text));
    body.push_str(&reading_now(&state, text, place, None));
    body.push_str("<p><a href=\"/messages\">All messages</a></p>");
    html::page(StatusCode::OK, "A text read with the data loaded now", Some(&staff), Live::default(), &body)
}

/// `POST /messages/reload`: asks every running instance to read the bridge's data files again.
pub async fn reload(State(state): State<AppState>, Posted { staff, .. }: Posted) -> Response {
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let name = webcare_app::intake::RELOAD_BRIDGE_DATA;
    let generation = match state.store.request_reload(name, &staff.agent.name, Utc::now()).await {
        Ok(g) => g,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    tracing::info!(agent = %staff.agent.name, generation, "bridge data reload requested from the console");
    let body = format!(
        "<p id=\"reloading\">Reload request {generation}: every running instance reads its data files again within \
         a few seconds. Its log says \"bridge data reloaded\", or names a file that does not load; then the running \
         data stays.</p><p><a href=\"/messages\">Back to the messages</a></p>"
    );
    html::page(StatusCode::OK, "Reloading the data files", Some(&staff), Live::default(), &body)
}
