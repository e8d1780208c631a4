//! The agent's own account (`/account`): the chat accounts (Telegram, Discord) linked to it, and a code to link
//! another one by sending `/link CODE` in a staff chat (see `webcare_app::staff`), and to unlink one (a lost phone).
//! Every agent may open it; it shows and unlinks only the agent's own links.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use webcare_domain::Platform;

use super::html::{self, E, Live, csrf_field, when};
use super::{Posted, Staff, not_found, see_other, unavailable};
use crate::AppState;

pub async fn page(State(state): State<AppState>, staff: Staff) -> Response {
    render(&state, &staff, None).await
}

/// Issues a link code and shows it, once; or unlinks one of the agent's own chat accounts.
pub async fn post(State(state): State<AppState>, posted: Posted) -> Response {
    let Posted { staff, fields } = posted;
    let now = Utc::now();
    if fields.text("action") == "unlink" {
        let Ok(platform) = fields.text("platform").parse::<Platform>() else { return not_found(&staff) };
        return match state.store.unlink_chat_account(staff.agent.id, platform, fields.text("user")).await {
            Ok(true) => see_other("/account"),
            Ok(false) => not_found(&staff),
            Err(e) => unavailable(e, Some(&staff)),
        };
    }
    match webcare_app::staff::issue_link_code(state.store.as_ref(), &staff.agent, now).await {
        Ok(code) => render(&state, &staff, Some((code, now + webcare_app::staff::LINK_VALID))).await,
        Err(e) => unavailable(e, Some(&staff)),
    }
}

async fn render(state: &AppState, staff: &Staff, code: Option<(String, chrono::DateTime<Utc>)>) -> Response {
    let accounts = match state.store.chat_accounts(staff.agent.id).await {
        Ok(a) => a,
        Err(e) => return unavailable(e, Some(staff)),
    };
    let mut body = String::from("<section class=\"card\"><h2>Staff chats</h2>");
    body.push_str(
        "<p>In the webcare team's Telegram group or Discord channel you can work as in this console: <code>/queue</code>, \
         <code>/claim N</code>, <code>/reply N text</code>, <code>/alerts</code>, <code>/publish ALERT</code> and more \
         (<code>/help</code> lists them). Commands act as you once your chat account is linked.</p>",
    );
    if accounts.is_empty() {
        body.push_str("<p class=\"empty\">No chat account is linked to you.</p>");
    } else {
        body.push_str("<ul class=\"linked\">");
        let csrf = csrf_field(staff);
        for (platform, user) in &accounts {
            let _ = write!(
                body,
                "<li>{platform} user {user}<form method=\"post\" action=\"/account\" class=\"inline\">{csrf}\
                 <input type=\"hidden\" name=\"action\" value=\"unlink\">\
                 <input type=\"hidden\" name=\"platform\" value=\"{platform}\">\
                 <input type=\"hidden\" name=\"user\" value=\"{user}\"><button type=\"submit\">Unlink</button></form></li>",
                user = E(user),
            );
        }
        body.push_str("</ul>");
    }
    if let Some((code, until)) = code {
        let _ = write!(
            body,
            "<p class=\"link-code\">Send <code id=\"link-command\">/link {code}</code> to the bot in a private chat \
             (or in a staff chat) before {until}. The code works once and is shown only now.</p>",
            code = E(&code),
            until = when(until),
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/account\">{}<button type=\"submit\" class=\"primary\">Get a link code\
         </button></form></section>",
        csrf_field(staff)
    );
    html::page(StatusCode::OK, "Account", Some(staff), Live::default(), &body)
}
