//! Admin pages: agents and roles (`/agents`) and canned replies (`/canned`). Every handler here starts with
//! [`Staff::require_admin`], so an agent gets 403 whatever they post or open.
//!
//! Changing an agent's role, password or active flag ends their sessions, so the change holds at once. An admin
//! cannot demote or deactivate themselves, so the console always keeps an admin who can undo a mistake.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use webcare_domain::{AgentId, CannedReplyId, NewAgent, Role, StoreError};

use super::html::{self, E, Live, csrf_field, options, when};
use super::{Posted, Staff, not_found, see_other, unavailable};
use crate::AppState;
use crate::auth::{MAX_PASSWORD_BYTES, MIN_PASSWORD, hash_password, password_acceptable};

pub async fn agents(State(state): State<AppState>, staff: Staff) -> Response {
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let agents = match state.store.agents().await {
        Ok(a) => a,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let csrf = csrf_field(&staff);
    let roles = |selected: &str| options(Role::ALL.iter().map(|r| (r.as_str(), r.as_str())), selected);
    let mut body = String::new();
    let _ = write!(
        body,
        "<details class=\"card create\"><summary>New agent</summary><form method=\"post\" action=\"/agents\">{csrf}\
         <input type=\"hidden\" name=\"action\" value=\"create\">\
         <label>Name <input name=\"name\" required maxlength=\"100\"></label>\
         <label>Password (at least {MIN_PASSWORD} characters) <input name=\"password\" type=\"password\" required \
         autocomplete=\"new-password\"></label><label>Role <select name=\"role\">{}</select></label>\
         <button type=\"submit\" class=\"primary\">Create agent</button></form></details>",
        roles("agent")
    );
    body.push_str(
        "<table class=\"agents\"><thead><tr><th>Name</th><th>Role</th><th>Status</th><th>Since</th><th>Change</th></tr>\
         </thead><tbody>",
    );
    for a in &agents {
        let me = a.id == staff.agent.id;
        let _ = write!(
            body,
            "<tr><td>{name}</td><td>{role}</td><td>{status}</td><td>{since}</td><td class=\"actions\">",
            name = E(&a.name),
            role = a.role,
            status = if a.active { "active" } else { "deactivated" },
            since = when(a.created_at),
        );
        if !me {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"/agents\">{csrf}<input type=\"hidden\" name=\"action\" value=\"role\">\
                 <input type=\"hidden\" name=\"id\" value=\"{id}\"><select name=\"role\">{roles}</select>\
                 <button type=\"submit\">Set role</button></form>\
                 <form method=\"post\" action=\"/agents\">{csrf}<input type=\"hidden\" name=\"action\" value=\"active\">\
                 <input type=\"hidden\" name=\"id\" value=\"{id}\"><input type=\"hidden\" name=\"active\" value=\"{flip}\">\
                 <button type=\"submit\" class=\"{class}\">{label}</button></form>",
                id = a.id,
                roles = roles(a.role.as_str()),
                flip = !a.active,
                class = if a.active { "warn" } else { "secondary" },
                label = if a.active { "Deactivate" } else { "Reactivate" },
            );
        }
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/agents\">{csrf}<input type=\"hidden\" name=\"action\" value=\"password\">\
             <input type=\"hidden\" name=\"id\" value=\"{}\"><input name=\"password\" type=\"password\" \
             placeholder=\"new password\" autocomplete=\"new-password\" required><button type=\"submit\">Set password</button>\
             </form></td></tr>",
            a.id
        );
    }
    body.push_str("</tbody></table>");
    html::page(StatusCode::OK, "Agents and roles", Some(&staff), Live::default(), &body)
}

fn invalid(message: &str, staff: &Staff) -> Response {
    html::error_page(StatusCode::UNPROCESSABLE_ENTITY, message, Some(staff))
}

async fn hashed(password: &str, staff: &Staff) -> Result<String, Response> {
    if !password_acceptable(password) {
        return Err(invalid(&format!("A password has {MIN_PASSWORD} to {MAX_PASSWORD_BYTES} characters."), staff));
    }
    let password = password.to_owned();
    match tokio::task::spawn_blocking(move || hash_password(&password)).await {
        Ok(Ok(h)) => Ok(h),
        Ok(Err(e)) => Err(unavailable(e, Some(staff))),
        Err(e) => Err(unavailable(e, Some(staff))),
    }
}

pub async fn agents_post(State(state): State<AppState>, posted: Posted) -> Response {
    let Posted { staff, fields } = posted;
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let store = state.store.as_ref();
    let action = fields.text("action");
    if action == "create" {
        let name = fields.text("name");
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return invalid("A name has 1 to 100 characters.", &staff);
        }
        let role = match fields.text("role").parse::<Role>() {
            Ok(r) => r,
            Err(e) => return invalid(&e.to_string(), &staff),
        };
        let hash = match hashed(fields.get("password").unwrap_or(""), &staff).await {
            Ok(h) => h,
            Err(r) => return r,
        };
        let new = NewAgent { name: name.to_owned(), role, password_hash: Some(hash), at: Utc::now() };
        return match store.create_agent(new).await {
            Ok(_) => see_other("/agents"),
            Err(StoreError::Conflict(m)) => html::error_page(StatusCode::CONFLICT, &m, Some(&staff)),
            Err(e) => unavailable(e, Some(&staff)),
        };
    }
    let Ok(id) = fields.text("id").parse::<i64>().map(AgentId) else { return not_found(&staff) };
    if id == staff.agent.id && matches!(action, "role" | "active") {
        return html::error_page(
            StatusCode::CONFLICT,
            "You cannot change your own role or deactivate yourself; ask another admin.",
            Some(&staff),
        );
    }
    let result = match action {
        "role" => match fields.text("role").parse::<Role>() {
            Ok(role) => store.set_agent_role(id, role).await,
            Err(e) => return invalid(&e.to_string(), &staff),
        },
        "active" => store.set_agent_active(id, fields.text("active") == "true").await,
        "password" => match hashed(fields.get("password").unwrap_or(""), &staff).await {
            Ok(h) => store.set_agent_password(id, &h).await,
            Err(r) => return r,
        },
        _ => return invalid("Unknown agent action.", &staff),
    };
    match result {
        Ok(agent) => {
            // The change holds at once: the agent logs in again under the new role or password.
            if agent.id != staff.agent.id
                && let Err(e) = store.delete_agent_sessions(agent.id).await
            {
                return unavailable(e, Some(&staff));
            }
            see_other("/agents")
        }
        Err(StoreError::NotFound { .. }) => not_found(&staff),
        Err(e) => unavailable(e, Some(&staff)),
    }
}

pub async fn canned(State(state): State<AppState>, staff: Staff) -> Response {
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let replies = match state.store.canned_replies().await {
        Ok(r) => r,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let csrf = csrf_field(&staff);
    let mut body = String::from(
        "<p class=\"hint\">Approved answers agents can send as they are. Placeholders: <code>{name}</code> the \
         customer's name, <code>{agent}</code> the agent's, <code>{ticket}</code> the ticket number.</p>",
    );
    let _ = write!(
        body,
        "<section class=\"card\"><h2>New canned reply</h2><form method=\"post\" action=\"/canned\">{csrf}\
         <input type=\"hidden\" name=\"action\" value=\"create\">\
         <label>Title <input name=\"title\" required maxlength=\"100\"></label>\
         <label>Text <textarea name=\"body\" rows=\"3\" required maxlength=\"4000\"></textarea></label>\
         <button type=\"submit\" class=\"primary\">Add</button></form></section>"
    );
    for c in &replies {
        let _ = write!(
            body,
            "<section class=\"card\"><form method=\"post\" action=\"/canned\">{csrf}\
             <input type=\"hidden\" name=\"action\" value=\"update\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
             <label>Title <input name=\"title\" required maxlength=\"100\" value=\"{title}\"></label>\
             <label>Text <textarea name=\"body\" rows=\"3\" required maxlength=\"4000\">{text}</textarea></label>\
             <button type=\"submit\">Save</button></form>\
             <form method=\"post\" action=\"/canned\" data-confirm=\"Delete this canned reply?\">{csrf}\
             <input type=\"hidden\" name=\"action\" value=\"delete\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
             <button type=\"submit\" class=\"warn\">Delete</button></form></section>",
            id = c.id,
            title = E(&c.title),
            text = E(&c.body),
        );
    }
    html::page(StatusCode::OK, "Canned replies", Some(&staff), Live::default(), &body)
}

pub async fn canned_post(State(state): State<AppState>, posted: Posted) -> Response {
    let Posted { staff, fields } = posted;
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let store = state.store.as_ref();
    let (title, text) = (fields.text("title"), fields.text("body"));
    let action = fields.text("action");
    if matches!(action, "create" | "update")
        && (title.is_empty() || title.chars().count() > 100 || text.is_empty() || text.chars().count() > 4000)
    {
        return invalid("A canned reply has a title of 1 to 100 characters and a text of 1 to 4000.", &staff);
    }
    let id = fields.text("id").parse::<i64>().map(CannedReplyId);
    let now = Utc::now();
    let result = match (action, id) {
        ("create", _) => store.create_canned_reply(title, text, Some(staff.agent.id), now).await.map(drop),
        ("update", Ok(id)) => store.update_canned_reply(id, title, text, now).await.map(drop),
        ("delete", Ok(id)) => store.delete_canned_reply(id).await,
        ("update" | "delete", Err(_)) => return not_found(&staff),
        _ => return invalid("Unknown canned reply action.", &staff),
    };
    match result {
        Ok(()) => see_other("/canned"),
        Err(StoreError::NotFound { .. }) => not_found(&staff),
        Err(StoreError::Conflict(m)) => html::error_page(StatusCode::CONFLICT, &m, Some(&staff)),
        Err(e) => unavailable(e, Some(&staff)),
    }
}
