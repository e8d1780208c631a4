//! `/lexicon` (admins): the lexicons' groups as the bridge counts them now, the admins' changes to them, and a form
//! to add a term to a group or take a listed one out. A change is kept in the database and applied by every
//! instance within seconds (`webcare_app::lexicon`); the Messages page reads any text with the data loaded now.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use webcare_app::lexicon::{Edit, LexiconError, REGIONS};
use webcare_domain::{LexiconChangeId, TermEdit};

use super::html::{self, E, Live, csrf_field, options, when};
use super::{Posted, Staff, not_found, see_other, unavailable};
use crate::AppState;

pub async fn page(State(state): State<AppState>, staff: Staff) -> Response {
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let changes = match state.store.lexicon_changes().await {
        Ok(c) => c,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let agents = match state.store.agents().await {
        Ok(a) => a,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let groups = state.intake.lexicon();
    let csrf = csrf_field(&staff);
    let keys: Vec<(String, String)> = groups
        .iter()
        .map(|g| {
            (
                format!("{}/{}", g.language, g.name),
                if g.language == REGIONS {
                    format!("{} · {} ({})", g.language, g.name, kind(g))
                } else {
                    format!("{} · {} ({}, weight {})", g.language, g.name, kind(g), g.weight)
                },
            )
        })
        .collect();
    let mut body = String::from(
        "<p class=\"hint\">The words that tell the bridge what a message is about, per language and group, and the \
         other names of the provinces and places it knows (the <code>regions</code> groups). A change \
         here is kept in the database and applied over the data files by every running instance within a few \
         seconds. Try a text first with <a href=\"/messages\">Messages</a> → “Read a text with the data loaded \
         now”; an undo brings the data files' word back.</p>",
    );
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Change a term</h2><form method=\"post\" action=\"/lexicon\" id=\"lexicon-change\">{csrf}\
         <label>Group <select name=\"group\" required>{groups}</select></label>\
         <label>Term <input name=\"term\" required maxlength=\"100\" placeholder=\"glasvezel kapot\"></label>\
         <label>Change <select name=\"edit\">{edits}</select></label>\
         <button type=\"submit\" name=\"action\" value=\"try\" id=\"lexicon-try\">Try it on the latest {TRY_LAST} messages</button> \
         <button type=\"submit\" name=\"action\" value=\"change\" class=\"primary\" id=\"lexicon-apply\">Apply everywhere</button></form>\
         <p class=\"hint\">As in a data file: a final <code>*</code> matches any ending (<code>storing*</code>), and \
         <code> .. </code> up to three words between (<code>ligt .. eruit</code>).</p></section>",
        groups = options(keys.iter().map(|(k, l)| (k.as_str(), l.as_str())), ""),
        edits = options([("add", "add it to the group"), ("remove", "take it out of the group")], "add"),
    );
    body.push_str("<section class=\"card\"><h2>Changes by admins</h2>");
    if changes.is_empty() {
        body.push_str("<p id=\"no-changes\">None: the data files' words hold as they are.</p>");
    } else {
        body.push_str(
            "<table id=\"lexicon-changes\"><thead><tr><th>Term</th><th>Change</th><th>Group</th><th>By</th><th>When</th>\
             <th></th></tr></thead><tbody>",
        );
        for c in &changes {
            let by = c.author.and_then(|a| agents.iter().find(|x| x.id == a)).map_or("—", |a| a.name.as_str());
            let _ = write!(
                body,
                "<tr><td>{term}</td><td>{edit}</td><td>{language} · {group}</td><td>{by}</td><td>{at}</td><td>\
                 <form method=\"post\" action=\"/lexicon\" data-confirm=\"Take this change back?\">{csrf}\
                 <input type=\"hidden\" name=\"action\" value=\"undo\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
                 <button type=\"submit\" class=\"warn\">Undo</button></form></td></tr>",
                term = E(&c.term),
                edit = c.edit,
                language = E(&c.language),
                group = E(&c.group),
                by = E(by),
                at = when(c.created_at),
                id = c.id,
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section><section class=\"card\"><h2>Groups loaded now</h2>");
    if groups.is_empty() {
        body.push_str("<p>This instance runs no bridge.</p>");
    }
    let (regions, lexicons): (Vec<_>, Vec<_>) = groups.iter().partition(|g| g.language == REGIONS);
    for g in lexicons {
        let _ = write!(
            body,
            "<details><summary>{language} · {name}: {kind}, weight {weight}, {n} terms</summary>\
             <p class=\"terms\">{terms}</p></details>",
            language = E(&g.language),
            name = E(&g.name),
            kind = E(&kind(g)),
            weight = g.weight,
            n = g.terms.len(),
            terms = E(&g.terms.join(" · ")),
        );
    }
    if !regions.is_empty() {
        // The provinces and places, each with its other names: an admin adds a neighbourhood or a nickname as a term
        // of its place (group `regions · Utrecht`), and messages naming it are that place's.
        let _ = write!(
            body,
            "<details id=\"regions\"><summary>regions: {n} provinces and places, with the other names they go by\
             </summary><ul class=\"terms\">",
            n = regions.len()
        );
        for g in &regions {
            let _ = write!(
                body,
                "<li>{name} ({within}){names}</li>",
                name = E(&g.name),
                within = E(&g.category),
                names = if g.terms.is_empty() { String::new() } else { format!(": {}", E(&g.terms.join(" · "))) },
            );
        }
        body.push_str("</ul></details>");
    }
    body.push_str("</section>");
    html::page(StatusCode::OK, "Lexicon", Some(&staff), Live::default(), &body)
}

/// How many of the latest stored messages "Try it" reads.
const TRY_LAST: u32 = 1000;

pub async fn post(State(state): State<AppState>, Posted { staff, fields }: Posted) -> Response {
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let now = Utc::now();
    let action = fields.text("action");
    let result = match action {
        "change" | "try" => {
            let Some((language, group)) = fields.text("group").split_once('/') else {
                return invalid("Choose a group.", &staff);
            };
            let edit = match fields.text("edit").parse::<TermEdit>() {
                Ok(e) => e,
                Err(e) => return invalid(&e.to_string(), &staff),
            };
            let edit = Edit { language, group, term: fields.text("term"), edit };
            let loaded = state.intake.lexicon();
            if action == "try" {
                return match webcare_app::lexicon::check(&loaded, edit) {
                    Ok(()) => tried(&state, &staff, edit, fields.text("group"), now).await,
                    Err(e) => failed(e, &staff),
                };
            }
            webcare_app::lexicon::change(state.store.as_ref(), &loaded, edit, &staff.agent, now).await.map(drop)
        }
        "undo" => match fields.text("id").parse::<i64>() {
            Ok(id) => webcare_app::lexicon::undo(state.store.as_ref(), LexiconChangeId(id), &staff.agent, now).await,
            Err(_) => return not_found(&staff),
        },
        _ => return invalid("Unknown lexicon action.", &staff),
    };
    match result {
        Ok(()) => see_other("/lexicon"),
        Err(e) => failed(e, &staff),
    }
}

fn failed(e: LexiconError, staff: &Staff) -> Response {
    match e {
        LexiconError::NotFound(_) => not_found(staff),
        LexiconError::Store(e) => unavailable(e, Some(staff)),
        e @ (LexiconError::Listed { .. } | LexiconError::NotListed { .. }) => {
            html::error_page(StatusCode::CONFLICT, &e.to_string(), Some(staff))
        }
        e => invalid(&e.to_string(), staff),
    }
}

/// What `edit` would do to the latest stored messages, with a form that applies it.
async fn tried(
    state: &AppState,
    staff: &Staff,
    edit: Edit<'_>,
    group_key: &str,
    now: chrono::DateTime<Utc>,
) -> Response {
    let change = webcare_app::lexicon::unkept(edit, now);
    let read = |texts: &[(&str, Option<&str>)]| state.intake.read_with_change(&change, texts);
    let (read, differ) = match webcare_app::lexicon::preview(state.store.as_ref(), read, TRY_LAST).await {
        Ok(Some(found)) => found,
        Ok(None) => return invalid("The data with this change does not load; the log says why.", staff),
        Err(e) => return unavailable(e, Some(staff)),
    };
    let what = change.describe();
    let mut body = format!(
        "<p id=\"tried\">Nothing is changed yet. To {what}: of the latest {read} stored messages, {n} would be read \
         differently{colon}</p>",
        what = E(&what),
        n = differ.len(),
        colon = if differ.is_empty() { "." } else { ":" },
    );
    if !differ.is_empty() {
        body.push_str("<table id=\"tried-messages\"><thead><tr><th>Message</th><th>What changes</th><th>Text</th></tr></thead><tbody>");
        for (m, changes) in &differ {
            let _ = write!(
                body,
                "<tr><td><a href=\"/messages/{id}\">{id}</a></td><td>{changes}</td><td class=\"text\">{text}</td></tr>",
                id = m.id,
                changes = E(&changes.join(", ")),
                text = E(&m.text),
            );
        }
        body.push_str("</tbody></table>");
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/lexicon\" id=\"lexicon-apply-tried\">{csrf}\
         <input type=\"hidden\" name=\"group\" value=\"{group}\"><input type=\"hidden\" name=\"term\" value=\"{term}\">\
         <input type=\"hidden\" name=\"edit\" value=\"{edit}\">\
         <button type=\"submit\" name=\"action\" value=\"change\" class=\"primary\">Apply everywhere</button> \
         <a href=\"/lexicon\">Back to the lexicon</a></form>",
        csrf = csrf_field(staff),
        group = E(group_key),
        term = E(&change.term),
        edit = change.edit,
    );
    html::page(StatusCode::OK, "Trying a lexicon change", Some(staff), Live::default(), &body)
}

/// What a group's terms point at: the intent, and for a case its category ("case: billing").
fn kind(g: &webcare_domain::LexiconGroup) -> String {
    match g.intent.as_str() {
        "case" => format!("case: {}", g.category),
        "region" => format!("other names, in {}", g.category),
        _ => g.intent.clone(),
    }
}

fn invalid(message: &str, staff: &Staff) -> Response {
    html::error_page(StatusCode::UNPROCESSABLE_ENTITY, message, Some(staff))
}
