//! Notices (`/notices`, `/notices/{id}`) and spike alerts (`/alerts`).
//!
//! Agents may read notices; creating, editing, approving, resolving and publishing from an alert are for admins,
//! checked here and again in [`webcare_app::notices::Notices`]. Each notice shows its subscribers and the
//! delivery progress of its current version.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use webcare_app::notices::{NoticeError, NoticeInput};
use webcare_domain::{
    AgentId, AlertId, AlertWebhook, Notice, NoticeChange, NoticeId, NoticeState, Service, StoreError, WebhookState,
};

use super::html::{self, E, Live, csrf_field, options, when};
use super::tickets::{regions_text, services_text};
use super::{Fields, Posted, Staff, not_found, path_id, see_other, unavailable};
use crate::AppState;

fn notice_error(e: NoticeError, staff: &Staff) -> Response {
    let status = match &e {
        NoticeError::NotFound(_) | NoticeError::AlertNotFound(_) => return not_found(staff),
        NoticeError::NotAdmin => StatusCode::FORBIDDEN,
        NoticeError::SameApprover | NoticeError::AlreadyAnswered { .. } => StatusCode::CONFLICT,
        NoticeError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        NoticeError::Store(_) => return unavailable(e, Some(staff)),
    };
    html::error_page(status, &e.to_string(), Some(staff))
}

fn state_options(selected: &str) -> String {
    options(NoticeState::ALL.iter().map(|s| (s.as_str(), s.as_str())), selected)
}

fn service_boxes(checked: &[Service]) -> String {
    let mut out = String::from("<fieldset class=\"services\"><legend>Services</legend>");
    for s in Service::ALL.iter().filter(|s| **s != Service::Unknown) {
        let mark = if checked.contains(s) { " checked" } else { "" };
        let _ = write!(out, "<label><input type=\"checkbox\" name=\"service\" value=\"{s}\"{mark}> {s}</label>");
    }
    out.push_str("</fieldset>");
    out
}

fn parse_services(fields: &Fields) -> Result<Vec<Service>, String> {
    fields.all("service").map(|s| s.parse::<Service>().map_err(|e| e.to_string())).collect()
}

/// Regions as typed: comma-separated, blanks dropped; none means nationwide.
fn parse_regions(fields: &Fields) -> Vec<String> {
    fields.text("regions").split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect()
}

fn parse_state(fields: &Fields, staff: &Staff) -> Result<NoticeState, Response> {
    fields.text("state").parse().map_err(|e: webcare_domain::UnknownWord| {
        html::error_page(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string(), Some(staff))
    })
}

fn status_badge(n: &Notice) -> String {
    let (class, word) = if n.draft {
        ("draft", "awaiting approval / draft")
    } else if n.is_active() {
        ("active", "active")
    } else {
        ("resolved", "resolved")
    };
    format!("<span class=\"badge {class}\">{word}</span>")
}

pub async fn list(State(state): State<AppState>, staff: Staff) -> Response {
    let notices = match state.store.notices(false).await {
        Ok(n) => n,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let mut body = String::new();
    if staff.is_admin() {
        let _ = write!(
            body,
            "<details class=\"card create\"{open}><summary>New notice</summary>\
             <form method=\"post\" action=\"/notices\" class=\"notice-form\">{csrf}\
             <label>Title <input name=\"title\" id=\"notice-title\" required maxlength=\"200\"></label>\
             <label>Text <textarea name=\"text\" id=\"notice-text\" rows=\"4\" required maxlength=\"4000\"></textarea></label>\
             {english}{services}<label>Regions (comma-separated; empty is nationwide) <input name=\"regions\" id=\"notice-regions\"></label>\
             <label>State <select name=\"state\">{states}</select></label>\
             <label class=\"inline\"><input type=\"checkbox\" name=\"draft\" value=\"1\"> Save as draft</label>\
             <label class=\"inline\"><input type=\"checkbox\" name=\"paid_broadcast\" value=\"1\"> Telegram paid broadcast (urgent: up to 1,000/s, 0.1 Star per message; the estimate shows on the notice)</label>\
             <button type=\"submit\" class=\"primary\" id=\"create-notice\">Publish notice</button></form></details>",
            open = if notices.is_empty() { " open" } else { "" },
            csrf = csrf_field(&staff),
            english = english_field(""),
            services = service_boxes(&[]),
            states = state_options("investigating"),
        );
        if state.notices.four_eyes {
            body.push_str("<p class=\"hint\">Four eyes: a new notice, and a new text for a published one, wait until another admin approves them.</p>");
        }
    }
    body.push_str("<div id=\"live\">");
    if notices.is_empty() {
        body.push_str("<p class=\"empty\">No notices yet.</p>");
    } else {
        body.push_str(
            "<table class=\"notices\"><thead><tr><th>#</th><th>Title</th><th>Status</th><th>State</th><th>Services</th>\
             <th>Regions</th><th>Version</th><th>Subscribers</th><th>Delivery</th><th>Updated</th></tr></thead><tbody>",
        );
        for n in &notices {
            let delivery = match state.notices.progress(n.id).await {
                Ok(p) => (p.subscribers.to_string(), progress_text(&p)),
                Err(_) => ("?".to_owned(), "?".to_owned()),
            };
            let _ = write!(
                body,
                "<tr><td>{id}</td><td><a href=\"/notices/{id}\">{title}</a></td><td>{badge}</td><td>{state}</td>\
                 <td>{services}</td><td>{regions}</td><td>v{version}</td><td>{subs}</td><td>{progress}</td><td>{updated}</td></tr>",
                id = n.id,
                title = E(&n.title),
                badge = status_badge(n),
                state = n.state,
                services = E(&services_text(&n.services)),
                regions = E(&regions_text(&n.regions)),
                version = n.version,
                subs = delivery.0,
                progress = E(&delivery.1),
                updated = when(n.updated_at),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</div>");
    html::page(StatusCode::OK, "Notices", Some(&staff), Live::default(), &body)
}

fn progress_text(p: &webcare_app::notices::Progress) -> String {
    let eta = match p.eta_s {
        _ if p.pending == 0 => "done".to_owned(),
        Some(s) => format!("ETA {:.0} s", s.ceil()),
        None => "waiting".to_owned(),
    };
    format!("{} sent, {} pending, {} failed · {:.1}/s · {eta}", p.sent, p.pending, p.failed, p.rate_per_s)
}

pub async fn create(State(state): State<AppState>, posted: Posted) -> Response {
    let Posted { staff, fields } = posted;
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let services = match parse_services(&fields) {
        Ok(s) => s,
        Err(m) => return html::error_page(StatusCode::UNPROCESSABLE_ENTITY, &m, Some(&staff)),
    };
    let notice_state = match parse_state(&fields, &staff) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let input = NoticeInput {
        title: fields.text("title").to_owned(),
        text: fields.text("text").to_owned(),
        texts: posted_texts(&fields),
        services,
        regions: parse_regions(&fields),
        state: notice_state,
        draft: fields.get("draft").is_some(),
        paid_broadcast: fields.get("paid_broadcast").is_some(),
    };
    match state.notices.create(input, &staff.agent, Utc::now()).await {
        Ok(n) => see_other(&format!("/notices/{}", n.id)),
        Err(e) => notice_error(e, &staff),
    }
}

pub async fn view(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Response {
    let id = match path_id(&id, &staff) {
        Ok(id) => NoticeId(id),
        Err(r) => return r,
    };
    let notice = match state.store.notice(id).await {
        Ok(n) => n,
        Err(StoreError::NotFound { .. }) => return not_found(&staff),
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let loaded = async {
        let versions = state.store.notice_versions(id).await.map_err(|e| e.to_string())?;
        let agents = state.store.agents().await.map_err(|e| e.to_string())?;
        let progress = state.notices.progress(id).await.map_err(|e| e.to_string())?;
        let proposal = state.notices.proposal(id).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((versions, agents, progress, proposal))
    };
    let (versions, agents, progress, proposal) = match loaded.await {
        Ok(l) => l,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let name = |id: Option<AgentId>| {
        id.and_then(|a| agents.iter().find(|x| x.id == a)).map_or_else(|| "—".to_owned(), |a| a.name.clone())
    };
    let csrf = csrf_field(&staff);
    let mut body = String::new();
    let _ = write!(
        body,
        "<section class=\"card\"><h2>{title}</h2><p>{badge} {state} · {services} · {regions} · version {version}</p>\
         <p class=\"text notice-text\">{text}</p>{english}<dl><dt>Subscribers</dt><dd id=\"subscribers\">{subs}</dd>\
         <dt>Delivery of v{version}</dt><dd id=\"delivery\">{progress}</dd></dl>{answered}</section>",
        title = E(&notice.title),
        answered = if staff.is_admin() {
            format!(
                "<p><a href=\"/messages?notice={0}\" id=\"answered\">Messages answered from notice {0}</a></p>",
                notice.id
            )
        } else {
            String::new()
        },
        badge = status_badge(&notice),
        state = notice.state,
        services = E(&services_text(&notice.services)),
        regions = E(&regions_text(&notice.regions)),
        version = notice.version,
        text = E(&notice.text),
        english = notice
            .texts
            .get("en")
            .map(|t| format!("<p class=\"text notice-text-en\"><span class=\"lang\">EN</span> {}</p>", E(t)))
            .unwrap_or_default(),
        subs = progress.subscribers,
        progress = E(&progress_text(&progress)),
    );
    if let Some(p) = &proposal {
        // Four eyes: new words wait for another admin; customers see the version above until then.
        let change = &p.change;
        let _ = write!(
            body,
            "<section class=\"card proposal\" id=\"proposal\"><h2>A new text awaits approval</h2>\
             <p class=\"scope\">written by {author} at {at}; customers see version {version} until another admin \
             approves it</p><p class=\"text\">{text}</p>{english}",
            author = E(&name(Some(p.author))),
            at = p.created_at.format("%Y-%m-%d %H:%M UTC"),
            version = notice.version,
            text = E(change.text.as_deref().unwrap_or(&notice.text)),
            english = change
                .texts
                .as_ref()
                .and_then(|t| t.get("en"))
                .map(|t| format!("<p class=\"text\"><span class=\"lang\">EN</span> {}</p>", E(t)))
                .unwrap_or_default(),
        );
        if staff.is_admin() {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"/notices/{id}\">{csrf}<input type=\"hidden\" name=\"action\" \
                 value=\"approve\"><button type=\"submit\" class=\"primary\" id=\"approve-change\">Approve and \
                 publish this text</button></form>"
            );
        }
        body.push_str("</section>");
    }
    if staff.is_admin() {
        let _ = write!(
            body,
            "<section class=\"card\"><h2>Update (a new version; every subscriber gets it once)</h2>\
             <form method=\"post\" action=\"/notices/{id}\" class=\"notice-form\">{csrf}\
             <input type=\"hidden\" name=\"action\" value=\"update\">\
             <label>Text <textarea name=\"text\" rows=\"4\" required maxlength=\"4000\">{text}</textarea></label>\
             {english}{services}<label>Regions (comma-separated; empty is nationwide) <input name=\"regions\" value=\"{regions}\"></label>\
             <label>State <select name=\"state\">{states}</select></label>\
             <label class=\"check\"><input type=\"checkbox\" name=\"paid_broadcast\" id=\"paid_broadcast\"{paid}> \
             Send on Telegram as a paid broadcast (up to 1,000 messages/s instead of 30): \
             <span id=\"paid_estimate\">about {stars} Telegram Stars for {telegram} Telegram subscribers per version</span></label>\
             <button type=\"submit\" class=\"primary\">Publish update</button></form><div class=\"actions\">",
            paid = if notice.paid_broadcast { " checked" } else { "" },
            stars = progress.paid_cost_stars,
            telegram = progress.telegram_subscribers,
            text = E(&notice.text),
            english = english_field(notice.texts.get("en").map_or("", String::as_str)),
            services = service_boxes(&notice.services),
            regions = E(&notice.regions.join(", ")),
            states = state_options(notice.state.as_str()),
        );
        if notice.draft {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"/notices/{id}\">{csrf}<input type=\"hidden\" name=\"action\" value=\"approve\">\
                 <button type=\"submit\" class=\"primary\" id=\"approve\">Approve and publish</button></form>"
            );
        }
        if notice.state.is_active() {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"/notices/{id}\" data-confirm=\"Resolve this notice and tell every subscriber?\">{csrf}\
                 <input type=\"hidden\" name=\"action\" value=\"resolve\">\
                 <button type=\"submit\" class=\"warn\" id=\"resolve\">Resolve</button></form>"
            );
        }
        body.push_str("</div></section>");
    }
    body.push_str(
        "<section class=\"card\"><h2>Versions</h2><table><thead><tr><th>v</th><th>State</th><th>Text</th>\
                   <th>Written by</th><th>Approved by</th><th>At</th></tr></thead><tbody>",
    );
    for v in versions.iter().rev() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            v.version,
            v.state,
            E(&v.text),
            E(&name(v.author)),
            E(&name(v.approved_by)),
            when(v.created_at)
        );
    }
    body.push_str("</tbody></table></section>");
    html::page(StatusCode::OK, &format!("Notice {id}"), Some(&staff), Live::default(), &body)
}

/// `POST /notices/{id}` with `action` = `update`, `approve` or `resolve`.
pub async fn act(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { staff, fields } = posted;
    let id = match path_id(&id, &staff) {
        Ok(id) => NoticeId(id),
        Err(r) => return r,
    };
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let now = Utc::now();
    let result = match fields.text("action") {
        "update" => {
            let services = match parse_services(&fields) {
                Ok(s) => s,
                Err(m) => return html::error_page(StatusCode::UNPROCESSABLE_ENTITY, &m, Some(&staff)),
            };
            let notice_state = match parse_state(&fields, &staff) {
                Ok(s) => s,
                Err(r) => return r,
            };
            let change = NoticeChange {
                text: Some(fields.text("text").to_owned()),
                // The form shows every language's text: what it leaves out is gone from the new version.
                texts: Some(posted_texts(&fields)),
                state: Some(notice_state),
                services: Some(services),
                regions: Some(parse_regions(&fields)),
                paid_broadcast: Some(fields.get("paid_broadcast").is_some()),
                ..NoticeChange::default()
            };
            state.notices.update(id, change, &staff.agent, now).await.map(|u| u.notice)
        }
        "approve" => state.notices.approve(id, &staff.agent, now).await,
        "resolve" => {
            let change = NoticeChange { state: Some(NoticeState::Resolved), ..NoticeChange::default() };
            state.notices.update(id, change, &staff.agent, now).await.map(|u| u.notice)
        }
        _ => return html::error_page(StatusCode::UNPROCESSABLE_ENTITY, "Unknown notice action.", Some(&staff)),
    };
    match result {
        Ok(n) => see_other(&format!("/notices/{}", n.id)),
        Err(e) => notice_error(e, &staff),
    }
}

pub async fn alerts(State(state): State<AppState>, staff: Staff) -> Response {
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let alerts = match state.store.alerts().await {
        Ok(a) => a,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let webhooks: BTreeMap<AlertId, AlertWebhook> = match state.store.alert_webhooks().await {
        Ok(w) => w.into_iter().map(|w| (w.alert, w)).collect(),
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let clusters = match webcare_app::alerts::alert_clusters(state.store.as_ref(), &alerts).await {
        Ok(c) => c,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let csrf = csrf_field(&staff);
    let mut body = String::from("<div id=\"live\">");
    if alerts.is_empty() {
        body.push_str("<p class=\"empty\">No spike alerts.</p>");
    }
    for a in &alerts {
        let region = a.region.clone().unwrap_or_else(|| "unknown region".to_owned());
        let (draft, _) = a.draft_texts();
        let title = a.notice_title();
        let _ = write!(
            body,
            "<section class=\"card alert\"><h2>{service} · {region}: {count} customers</h2>\
             <p class=\"scope\">first {first}, last {last}, raised {created} · \
             <a href=\"/messages?cluster={cluster}\">cluster {cluster}</a></p>{webhook}\
             <h3>Samples</h3><ul class=\"samples\">",
            service = a.service,
            region = E(&region),
            count = a.count,
            first = when(a.first_at),
            last = when(a.last_at),
            created = when(a.created_at),
            cluster = a.cluster,
            webhook = webhook_line(webhooks.get(&a.id)),
        );
        for s in &a.samples {
            let _ = write!(body, "<li>{}</li>", E(s));
        }
        body.push_str("</ul>");
        // What became of the cluster: a cluster a notice answers needs no second one.
        match webcare_app::alerts::outcome(&clusters, a) {
            webcare_app::alerts::AlertOutcome::Answered(notice) => {
                let _ = write!(
                    body,
                    "<p class=\"outcome\">Answered: its customers follow <a href=\"/notices/{notice}\">notice {notice}</a>.</p></section>"
                );
                continue;
            }
            webcare_app::alerts::AlertOutcome::Expired => body.push_str(
                "<p class=\"outcome\">Expired without a notice: its customers got tickets. A notice published now \
                 answers later questions.</p>",
            ),
            _ => {}
        }
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/alerts/{id}/notice\" class=\"notice-form\">{csrf}\
             <label>Title <input name=\"title\" required maxlength=\"200\" value=\"{title}\"></label>\
             <label>Text <textarea name=\"text\" rows=\"3\" required maxlength=\"4000\">{draft}</textarea></label>\
             {english}<label>State <select name=\"state\">{states}</select></label>\
             <button type=\"submit\" class=\"primary\">Publish a notice from this alert</button></form></section>",
            id = a.id,
            title = E(&title),
            draft = E(&draft),
            english = english_field(a.draft.get("en").map_or("", String::as_str)),
            states = state_options("investigating"),
        );
    }
    body.push_str("</div>");
    html::page(StatusCode::OK, "Spike alerts", Some(&staff), Live::default(), &body)
}

/// Where the alert's post to its service's webhook stands, in one line.
fn webhook_line(w: Option<&AlertWebhook>) -> String {
    let Some(w) = w else { return String::new() };
    let to = w.route.as_deref().map(|r| format!(" ({})", E(r))).unwrap_or_default();
    let error = || E(w.last_error.as_deref().unwrap_or("unknown error")).to_string();
    let (class, text) = match w.state {
        WebhookState::Posted => ("posted", format!("posted {}", w.posted_at.map(when).unwrap_or_default())),
        WebhookState::Pending if w.attempts == 0 => ("pending", "waiting to be posted".to_owned()),
        WebhookState::Pending => (
            "failing",
            format!(
                "failing after {} attempt{}, next try {}: {}",
                w.attempts,
                if w.attempts == 1 { "" } else { "s" },
                when(w.next_attempt_at),
                error()
            ),
        ),
        WebhookState::Sending => ("pending", format!("being posted (attempt {})", w.attempts)),
        WebhookState::Failed => ("failed", format!("failed: {}", error())),
        WebhookState::Skipped => ("skipped", format!("not posted: {}", error())),
    };
    format!("<p class=\"webhook webhook-{class}\">Webhook{to}: {text}</p>")
}

pub async fn publish_alert(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    let Posted { staff, fields } = posted;
    let id = match path_id(&id, &staff) {
        Ok(id) => AlertId(id),
        Err(r) => return r,
    };
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let notice_state = match parse_state(&fields, &staff) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let title = fields.text("title").to_owned();
    let text = fields.text("text").to_owned();
    let texts = posted_texts(&fields);
    match state.notices.publish_from_alert(id, title, text, texts, notice_state, &staff.agent, Utc::now()).await {
        Ok(n) => see_other(&format!("/notices/{}", n.id)),
        Err(e) => notice_error(e, &staff),
    }
}

/// The form field for a notice's English text: customers who ask in English get it, the others the main text.
fn english_field(value: &str) -> String {
    format!(
        "<label>English text (optional; customers who ask in English get this one) \
         <textarea name=\"text_en\" rows=\"3\" maxlength=\"4000\">{}</textarea></label>",
        E(value)
    )
}

/// The texts per language a notice form posted: English where given.
fn posted_texts(fields: &Fields) -> BTreeMap<String, String> {
    let english = fields.text("text_en");
    if english.is_empty() { BTreeMap::new() } else { BTreeMap::from([("en".to_owned(), english.to_owned())]) }
}
