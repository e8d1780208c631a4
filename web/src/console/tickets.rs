//! The queue (`/`) and the ticket view (`/tickets/{id}`) with its actions: claim, release, take over (admins),
//! reply, internal note, canned reply, the covering notice's text, state and transfer.
//!
//! Every action is a form post that ends in a redirect back to the ticket (303), so reloading never repeats it.
//! Replies go through [`webcare_ticketing::Ticketing::record_reply`] and then into the outbox, which delivers
//! them on the conversation the customer used.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use webcare_domain::{
    AgentId, AssigneeFilter, CannedReplyId, CustomerId, Notice, NoticeId, OutboxState, Platform, Service, Store,
    StoreError, Ticket, TicketEventKind, TicketFilter, TicketId, TicketState, Timestamp,
};
use webcare_ticketing::TicketError;

use super::html::{self, E, Live, csrf_field, due, options, when};
use super::{Posted, Staff, not_found, path_id, see_other, unavailable};
use crate::AppState;

/// The categories the bridge gives messages.
pub(crate) const CATEGORIES: &[&str] = &["outage", "billing", "technical", "contract", "moving", "other"];

/// How many of the customer's other tickets a ticket's page lists.
const OTHER_TICKETS: u32 = 10;

/// The longest reply or note, in characters (a chat message's limit).
const MAX_TEXT: usize = crate::webchat::MAX_TEXT;

#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    assignee: Option<String>,
    /// Words in the subject, the customer's name or what they wrote, or a ticket number.
    #[serde(default)]
    q: Option<String>,
}

/// The filter a queue query stands for; unknown words are ignored rather than refused, as in any search form.
fn filter_of(q: &QueueQuery, me: AgentId) -> TicketFilter {
    let states = match q.state.as_deref().unwrap_or("active") {
        "all" => vec![],
        "active" | "" => vec![TicketState::New, TicketState::Open, TicketState::Pending],
        s => s.parse().map(|s| vec![s]).unwrap_or_default(),
    };
    let assignee = match q.assignee.as_deref().unwrap_or("") {
        "" => None,
        "me" => Some(AssigneeFilter::Agent(me)),
        "nobody" => Some(AssigneeFilter::Nobody),
        id => id.parse().ok().map(|n| AssigneeFilter::Agent(AgentId(n))),
    };
    TicketFilter {
        states,
        category: q.category.clone().filter(|c| !c.is_empty()),
        platform: q.platform.as_deref().and_then(|p| p.parse::<Platform>().ok()),
        assignee,
        text: q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(|t| t.chars().take(200).collect()),
        limit: Some(500),
        ..TicketFilter::default()
    }
}

/// `<li>`s linking to tickets: number, state, category and when opened, and the subject when `subject` (a page that
/// shows the customer's words already).
pub(crate) fn ticket_items<'a>(tickets: impl IntoIterator<Item = &'a Ticket>, subject: bool) -> String {
    let mut out = String::new();
    for t in tickets {
        let _ = write!(
            out,
            "<li><a href=\"/tickets/{id}\">#{id}</a> <span class=\"badge {state}\">{state}</span> {category} · {created}",
            id = t.id,
            state = t.state,
            category = E(&t.category),
            created = when(t.created_at),
        );
        if subject {
            let _ = write!(out, " · {}", E(&t.subject));
        }
        out.push_str("</li>");
    }
    out
}

/// Customer names by id, each looked up once per page.
async fn customer_names(store: &dyn Store, tickets: &[Ticket]) -> HashMap<CustomerId, String> {
    let mut names = HashMap::new();
    for t in tickets {
        if let std::collections::hash_map::Entry::Vacant(e) = names.entry(t.customer) {
            e.insert(store.customer(t.customer).await.map_or_else(|_| "?".to_owned(), |c| c.display_name));
        }
    }
    names
}

async fn agent_names(store: &dyn Store) -> Result<HashMap<AgentId, String>, StoreError> {
    Ok(store.agents().await?.into_iter().map(|a| (a.id, a.name)).collect())
}

pub async fn queue(State(state): State<AppState>, staff: Staff, Query(q): Query<QueueQuery>) -> Response {
    let filter = filter_of(&q, staff.agent.id);
    let tickets = match state.ticketing.queue(&filter).await {
        Ok(t) => t,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let agents = match agent_names(state.store.as_ref()).await {
        Ok(a) => a,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let customers = customer_names(state.store.as_ref(), &tickets).await;
    let now = Utc::now();

    let mut body = String::new();
    let state_value = q.state.as_deref().unwrap_or("active");
    let mut state_options = vec![("active", "new, open, pending"), ("all", "all")];
    state_options.extend(TicketState::ALL.iter().map(|s| (s.as_str(), s.as_str())));
    let mut category_options = vec![("", "any")];
    category_options.extend(CATEGORIES.iter().map(|c| (*c, *c)));
    let mut platform_options = vec![("", "any")];
    platform_options.extend(Platform::ALL.iter().map(|p| (p.as_str(), p.as_str())));
    let mut agent_list: Vec<(String, String)> = agents.iter().map(|(id, n)| (id.0.to_string(), n.clone())).collect();
    agent_list.sort_by(|a, b| a.1.cmp(&b.1));
    let mut assignee_options = vec![("", "anyone"), ("me", "me"), ("nobody", "nobody")];
    assignee_options.extend(agent_list.iter().map(|(id, n)| (id.as_str(), n.as_str())));
    let _ = write!(
        body,
        "<form class=\"filters\" method=\"get\" action=\"/\">\
         <label>State <select name=\"state\">{}</select></label>\
         <label>Category <select name=\"category\">{}</select></label>\
         <label>Platform <select name=\"platform\">{}</select></label>\
         <label>Assignee <select name=\"assignee\">{}</select></label>\
         <label>Search <input name=\"q\" id=\"queue-search\" size=\"18\" value=\"{}\" \
         placeholder=\"name, words, #12\"></label>\
         <button type=\"submit\">Filter</button></form>",
        options(state_options, state_value),
        options(category_options, q.category.as_deref().unwrap_or("")),
        options(platform_options, q.platform.as_deref().unwrap_or("")),
        options(assignee_options, q.assignee.as_deref().unwrap_or("")),
        E(q.q.as_deref().unwrap_or("")),
    );
    body.push_str("<div id=\"live\">");
    if tickets.is_empty() {
        body.push_str("<p class=\"empty\">No tickets match.</p>");
    } else {
        let _ = write!(
            body,
            "<p class=\"count\">{} ticket{}, by due time.</p><table class=\"queue\"><thead><tr><th>Due</th><th>#</th>\
             <th>Subject</th><th>Customer</th><th>State</th><th>Prio</th><th>Category</th><th>Platform</th>\
             <th>Assignee</th><th>Claimed by</th></tr></thead><tbody>",
            tickets.len(),
            if tickets.len() == 1 { "" } else { "s" }
        );
        for t in &tickets {
            let (due_text, overdue) = due(t.due_at);
            let holder = state.ticketing.policy().live_holder(t, now);
            let name = |id: Option<AgentId>| id.and_then(|a| agents.get(&a)).map_or("—", String::as_str);
            let _ = write!(
                body,
                "<tr class=\"state-{state}{late}\" data-ticket=\"{id}\"><td>{due}</td><td><a href=\"/tickets/{id}\">{id}</a></td>\
                 <td><a href=\"/tickets/{id}\">{subject}</a></td><td>{customer}</td><td><span class=\"badge {state}\">{state}</span></td>\
                 <td>P{prio}</td><td>{category}</td><td>{platform}</td><td>{assignee}</td><td>{holder}</td></tr>",
                state = t.state,
                late = if overdue { " overdue" } else { "" },
                id = t.id,
                due = E(&due_text),
                subject = E(&t.subject),
                customer = E(customers.get(&t.customer).map_or("?", String::as_str)),
                prio = t.priority,
                category = E(&t.category),
                platform = t.platform,
                assignee = E(name(t.assignee)),
                holder = E(name(holder)),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</div>");
    html::page(StatusCode::OK, "Queue", Some(&staff), Live { events: Some("/console/events?queue=1") }, &body)
}

struct Line {
    at: Timestamp,
    class: &'static str,
    who: String,
    text: String,
    extra: String,
}

pub async fn view(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Response {
    let id = match path_id(&id, &staff) {
        Ok(id) => TicketId(id),
        Err(r) => return r,
    };
    let ticket = match state.ticketing.ticket(id).await {
        Ok(t) => t,
        Err(TicketError::NotFound(_)) => return not_found(&staff),
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let store = state.store.as_ref();
    let loaded = async {
        let events = state.ticketing.events(id).await.map_err(|e| e.to_string())?;
        let (inbound, outbound) = store.transcript(ticket.conversation).await.map_err(|e| e.to_string())?;
        let customer = store.customer(ticket.customer).await.map_err(|e| e.to_string())?;
        let agents = agent_names(store).await.map_err(|e| e.to_string())?;
        let notices = store.notices(true).await.map_err(|e| e.to_string())?;
        let canned = store.canned_replies().await.map_err(|e| e.to_string())?;
        let all_agents = store.agents().await.map_err(|e| e.to_string())?;
        let theirs =
            TicketFilter { customer: Some(ticket.customer), limit: Some(OTHER_TICKETS + 1), ..TicketFilter::default() };
        let others: Vec<Ticket> =
            store.find_tickets(&theirs).await.map_err(|e| e.to_string())?.into_iter().filter(|t| t.id != id).collect();
        Ok::<_, String>((events, inbound, outbound, customer, agents, notices, canned, all_agents, others))
    };
    let (events, inbound, outbound, customer, agents, notices, canned, all_agents, others) = match loaded.await {
        Ok(l) => l,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let now = Utc::now();
    let name = |id: Option<AgentId>| id.and_then(|a| agents.get(&a)).map_or("—", String::as_str).to_owned();
    let holder = state.ticketing.policy().live_holder(&ticket, now);
    let csrf = csrf_field(&staff);
    let tid = ticket.id;

    let mut body = String::from("<div id=\"live\" class=\"ticket\">");
    let (due_text, overdue) = due(ticket.due_at);
    let _ = write!(
        body,
        "<section class=\"card meta\"><h2 class=\"subject\">{subject}</h2><dl>\
         <dt>State</dt><dd><span class=\"badge {state}\" id=\"ticket-state\">{state}</span></dd>\
         <dt>Priority</dt><dd>P{prio}</dd><dt>Category</dt><dd>{category}</dd><dt>Platform</dt><dd>{platform}</dd>\
         <dt>Customer</dt><dd class=\"customer\">{customer}</dd>\
         <dt>Language</dt><dd id=\"customer-language\">{language}</dd><dt>Assignee</dt><dd>{assignee}</dd>\
         <dt>Claimed by</dt><dd id=\"holder\">{holder}</dd><dt>Due</dt><dd class=\"{late}\">{due}</dd>\
         <dt>Created</dt><dd>{created}</dd><dt>Tags</dt><dd>{tags}</dd></dl>",
        subject = E(&ticket.subject),
        state = ticket.state,
        prio = ticket.priority,
        category = E(&ticket.category),
        platform = ticket.platform,
        customer = E(&customer.display_name),
        language = E(&webcare_app::messages::customer_language(&inbound, ticket.customer)
            .map_or_else(|| "unknown".to_owned(), |l| l.describe())),
        assignee = E(&name(ticket.assignee)),
        holder = E(&name(holder)),
        late = if overdue { "overdue" } else { "" },
        due = E(&due_text),
        created = when(ticket.created_at),
        tags = E(&ticket.tags.join(", ")),
    );
    // The actions this agent may take now; the server checks each again when it is posted.
    body.push_str("<div class=\"actions\">");
    let button = |action: &str, label: &str, class: &str| {
        format!(
            "<form method=\"post\" action=\"/tickets/{tid}/{action}\">{csrf}\
             <button type=\"submit\" class=\"{class}\" id=\"{action}\">{label}</button></form>"
        )
    };
    if ticket.state != TicketState::Closed {
        match holder {
            Some(h) if h == staff.agent.id => body.push_str(&button("release", "Release", "secondary")),
            Some(_) => {
                if staff.is_admin() {
                    body.push_str(&button("takeover", "Take over", "warn"));
                    body.push_str(&button("release", "Release", "secondary"));
                }
            }
            None => body.push_str(&button("claim", "Claim", "primary")),
        }
        let targets: Vec<(&str, &str)> = TicketState::ALL
            .iter()
            .filter(|s| {
                **s != ticket.state
                    && webcare_ticketing::may_transition(ticket.state, **s, webcare_ticketing::By::staff(&staff.agent))
            })
            .map(|s| (s.as_str(), s.as_str()))
            .collect();
        if !targets.is_empty() {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"/tickets/{tid}/state\">{csrf}<label>Set state \
                 <select name=\"state\" id=\"state-select\">{}</select></label><button type=\"submit\" id=\"set-state\">Set</button></form>",
                options(targets, "")
            );
        }
    }
    body.push_str("</div></section>");

    // The customer's other cases, so that an agent sees what came before.
    if !others.is_empty() {
        let _ = write!(
            body,
            "<section class=\"card\" id=\"other-tickets\"><h2>Other tickets of {}</h2><ul>",
            E(&customer.display_name)
        );
        body.push_str(&ticket_items(others.iter().take(OTHER_TICKETS as usize), true));
        body.push_str("</ul></section>");
    }

    // Notices that cover the ticket, with the offer to send their text instead.
    let (service, region) = webcare_app::notices::scope_of(&inbound);
    let covering: Vec<&Notice> =
        notices.iter().filter(|n| webcare_app::notices::covers(n, &ticket, service, region.as_deref())).collect();
    if !covering.is_empty() && ticket.state != TicketState::Closed {
        body.push_str(
            "<section class=\"card notices-covering\"><h2>Active notice</h2><p class=\"warn-text\">This case \
                       looks covered by an active notice: answer with its text so public answers stay consistent.</p>",
        );
        for n in covering {
            let _ = write!(
                body,
                "<article class=\"notice\"><h3>{title}</h3><p class=\"scope\">{state} · {services} · {regions}</p>\
                 <p class=\"text\">{text}</p><form method=\"post\" action=\"/tickets/{tid}/notice\">{csrf}\
                 <input type=\"hidden\" name=\"notice\" value=\"{id}\"><button type=\"submit\" class=\"primary\">\
                 Send the notice text</button></form></article>",
                title = E(&n.title),
                state = n.state,
                services = E(&services_text(&n.services)),
                regions = E(&regions_text(&n.regions)),
                text = E(&n.text),
                id = n.id,
            );
        }
        body.push_str("</section>");
    }

    // The conversation: the customer's messages, what was sent, and internal notes, in time order.
    let mut lines: Vec<Line> = Vec::new();
    for m in &inbound {
        let mut extra = String::new();
        if !m.attachments.is_empty() {
            let _ = write!(extra, "<span class=\"attach\">{}</span>", E(&m.attachments.join(", ")));
        }
        if m.edited_at.is_some() {
            extra.push_str("<span class=\"mark\">edited</span>");
        }
        if m.deleted_at.is_some() {
            extra.push_str("<span class=\"mark\">deleted by the customer</span>");
        }
        if staff.is_admin() {
            let _ = write!(extra, "<a class=\"why\" href=\"/messages/{}\">why</a>", m.id);
        }
        lines.push(Line {
            at: m.received_at,
            class: "in",
            who: customer.display_name.clone(),
            text: m.text.clone(),
            extra,
        });
    }
    for o in &outbound {
        let status = match o.state {
            OutboxState::Sent => String::new(),
            s => format!("<span class=\"mark\">{s}</span>"),
        };
        lines.push(Line {
            at: o.sent_at.unwrap_or(o.created_at),
            class: "out",
            who: "webcare".to_owned(),
            text: o.body.clone(),
            extra: status,
        });
    }
    // Replies are in the outbox already; name their authors from the events.
    for e in &events {
        if e.kind == TicketEventKind::Note {
            lines.push(Line {
                at: e.at,
                class: "note",
                who: format!("Note by {}", name(e.actor)),
                text: e.body.clone(),
                extra: String::new(),
            });
        }
    }
    lines.sort_by_key(|l| l.at);
    body.push_str("<section class=\"card\"><h2>Conversation</h2><ol class=\"transcript\" id=\"transcript\">");
    for l in &lines {
        let _ = write!(
            body,
            "<li class=\"line {class}\"><div class=\"who\">{who} · {at}</div><p class=\"text\">{text}</p>{extra}</li>",
            class = l.class,
            who = E(&l.who),
            at = when(l.at),
            text = E(&l.text),
            extra = l.extra,
        );
    }
    body.push_str("</ol></section>");

    body.push_str("<section class=\"card\"><h2>History</h2><ol class=\"history\">");
    for e in &events {
        let what = match e.kind {
            TicketEventKind::CustomerMessage | TicketEventKind::Reply | TicketEventKind::Note => {
                e.body.chars().take(80).collect::<String>()
            }
            TicketEventKind::Assigned | TicketEventKind::TakenOver => {
                e.body.parse::<i64>().ok().map_or_else(|| "nobody".to_owned(), |a| name(Some(AgentId(a))))
            }
            _ => e.body.clone(),
        };
        let _ = write!(
            body,
            "<li><span class=\"at\">{at}</span> <span class=\"kind\">{kind}</span> by {who}: <span class=\"body\">{what}</span></li>",
            at = when(e.at),
            kind = e.kind,
            who = E(&e.actor.map_or_else(|| "customer / webcare".to_owned(), |a| name(Some(a)))),
            what = E(&what),
        );
    }
    body.push_str("</ol></section></div>");

    // The composer stays outside the live area, so a refresh never eats a half-written reply.
    if ticket.state != TicketState::Closed {
        let _ = write!(
            body,
            "<section class=\"card compose\"><form method=\"post\" action=\"/tickets/{tid}/reply\" class=\"reply\">{csrf}\
             <label for=\"reply-text\">Reply to {customer}</label>\
             <textarea id=\"reply-text\" name=\"text\" rows=\"4\" maxlength=\"{MAX_TEXT}\" required></textarea>\
             <button type=\"submit\" class=\"primary\" id=\"send-reply\">Send reply</button></form>",
            customer = E(&customer.display_name),
        );
        if !canned.is_empty() {
            let list: Vec<(String, String)> = canned.iter().map(|c| (c.id.0.to_string(), c.title.clone())).collect();
            let _ = write!(
                body,
                "<form method=\"post\" action=\"/tickets/{tid}/canned\" class=\"canned\">{csrf}<label>Canned reply \
                 <select name=\"canned\" id=\"canned-select\">{}</select></label>\
                 <button type=\"submit\" id=\"send-canned\">Send canned reply</button></form><dl class=\"canned-texts\">",
                options(list.iter().map(|(a, b)| (a.as_str(), b.as_str())), "")
            );
            for c in &canned {
                let _ = write!(body, "<dt>{}</dt><dd>{}</dd>", E(&c.title), E(&c.body));
            }
            body.push_str("</dl>");
        }
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/tickets/{tid}/note\" class=\"note\">{csrf}\
             <label for=\"note-text\">Internal note (never sent)</label>\
             <textarea id=\"note-text\" name=\"text\" rows=\"2\" maxlength=\"{MAX_TEXT}\" required></textarea>\
             <button type=\"submit\" id=\"add-note\">Add note</button></form>"
        );
        let mut people: Vec<(String, String)> = vec![(String::new(), "nobody".to_owned())];
        people.extend(all_agents.iter().filter(|a| a.active).map(|a| (a.id.0.to_string(), a.name.clone())));
        let current = ticket.assignee.map(|a| a.0.to_string()).unwrap_or_default();
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/tickets/{tid}/assign\" class=\"assign\">{csrf}<label>Transfer to \
             <select name=\"agent\">{}</select></label><button type=\"submit\">Transfer</button></form></section>",
            options(people.iter().map(|(a, b)| (a.as_str(), b.as_str())), &current)
        );
    }
    let events_url = format!("/console/events?ticket={tid}");
    html::page(StatusCode::OK, &format!("Ticket {tid}"), Some(&staff), Live { events: Some(&events_url) }, &body)
}

pub(crate) fn services_text(services: &[Service]) -> String {
    if services.is_empty() {
        "all services".to_owned()
    } else {
        services.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    }
}

pub(crate) fn regions_text(regions: &[String]) -> String {
    if regions.is_empty() { "nationwide".to_owned() } else { regions.join(", ") }
}

/// What a ticket operation's failure means for the agent, as a page with the fitting status.
fn ticket_error(e: TicketError, staff: &Staff) -> Response {
    let status = match &e {
        TicketError::NotFound(_) => return not_found(staff),
        TicketError::UnknownAgent(_) => StatusCode::UNPROCESSABLE_ENTITY,
        TicketError::AlreadyClaimed { .. } | TicketError::Closed(_) | TicketError::InvalidTransition { .. } => {
            StatusCode::CONFLICT
        }
        TicketError::NotAllowed { .. } => StatusCode::FORBIDDEN,
        TicketError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        TicketError::Store(_) => return unavailable(e, Some(staff)),
    };
    let message = match &e {
        TicketError::AlreadyClaimed { by, .. } => format!("This ticket is claimed by {by}."),
        other => format!("{}{}", other.to_string()[..1].to_uppercase(), &other.to_string()[1..]),
    };
    html::error_page(status, &message, Some(staff))
}

/// Records a reply and queues it for the customer's conversation.
async fn reply(state: &AppState, staff: &Staff, ticket: TicketId, text: &str) -> Result<(), Response> {
    if text.chars().count() > MAX_TEXT {
        return Err(html::error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("A reply may have at most {MAX_TEXT} characters."),
            Some(staff),
        ));
    }
    let now = Utc::now();
    let r = state.ticketing.record_reply(ticket, &staff.agent, text, now).await.map_err(|e| ticket_error(e, staff))?;
    state.store.enqueue(r.outbox, now).await.map_err(|e| unavailable(e, Some(staff)))?;
    Ok(())
}

pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    let Posted { staff, fields } = posted;
    let id = match path_id(&id, &staff) {
        Ok(id) => TicketId(id),
        Err(r) => return r,
    };
    let now = Utc::now();
    let t = &state.ticketing;
    let done: Result<(), Response> = async {
        let fail = |e| ticket_error(e, &staff);
        match action.as_str() {
            "claim" => t.claim(id, &staff.agent, now).await.map(drop).map_err(fail),
            "release" => t.release(id, &staff.agent, now).await.map(drop).map_err(fail),
            "takeover" => {
                staff.require_admin()?;
                t.take_over(id, &staff.agent, now).await.map(drop).map_err(fail)
            }
            "reply" => reply(&state, &staff, id, fields.text("text")).await,
            "note" => {
                let text = fields.text("text");
                if text.chars().count() > MAX_TEXT {
                    return Err(html::error_page(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "That note is too long.",
                        Some(&staff),
                    ));
                }
                t.note(id, &staff.agent, text, now).await.map(drop).map_err(fail)
            }
            "canned" => {
                let ticket = t.ticket(id).await.map_err(fail)?;
                let canned_id = fields.text("canned").parse().map(CannedReplyId).map_err(|_| not_found(&staff))?;
                let canned = match state.store.canned_reply(canned_id).await {
                    Ok(c) => c,
                    Err(StoreError::NotFound { .. }) => return Err(not_found(&staff)),
                    Err(e) => return Err(unavailable(e, Some(&staff))),
                };
                let customer = state.store.customer(ticket.customer).await.map_err(|e| unavailable(e, Some(&staff)))?;
                let text = canned.fill(&customer.display_name, &staff.agent.name, id);
                reply(&state, &staff, id, &text).await
            }
            "notice" => {
                let notice_id = fields.text("notice").parse().map(NoticeId).map_err(|_| not_found(&staff))?;
                let notice = match state.store.notice(notice_id).await {
                    Ok(n) => n,
                    Err(StoreError::NotFound { .. }) => return Err(not_found(&staff)),
                    Err(e) => return Err(unavailable(e, Some(&staff))),
                };
                if !notice.is_active() {
                    return Err(html::error_page(
                        StatusCode::CONFLICT,
                        "That notice is no longer active.",
                        Some(&staff),
                    ));
                }
                reply(&state, &staff, id, &webcare_app::notices::notice_message(&notice, None)).await
            }
            "state" => {
                let to: TicketState = fields.text("state").parse().map_err(|e: webcare_domain::UnknownWord| {
                    html::error_page(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string(), Some(&staff))
                })?;
                t.set_state(id, &staff.agent, to, now).await.map(drop).map_err(fail)
            }
            "assign" => {
                let to = match fields.text("agent") {
                    "" => None,
                    a => Some(AgentId(a.parse().map_err(|_| not_found(&staff))?)),
                };
                t.assign(id, &staff.agent, to, now).await.map(drop).map_err(fail)
            }
            _ => Err(not_found(&staff)),
        }
    }
    .await;
    match done {
        Ok(()) => see_other(&format!("/tickets/{id}")),
        Err(r) => r,
    }
}
