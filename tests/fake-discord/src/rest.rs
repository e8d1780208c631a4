//! The REST API under `/api/v10`: the route table (templates as in Discord's documentation, which also name the
//! rate-limit buckets and fault queues), Discord's JSON error format, and the handlers. A handler runs with the
//! world locked and answers with a status and a JSON body; the server adds authentication, faults, rate limits
//! and headers around it.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::clock::now_iso;
use crate::payload::{self, Allowed, CREATE_FLAGS, Outgoing, RESPONSE_FLAGS, snowflake};
use crate::types::{
    BotEvent, ChannelId, GuildId, InteractionId, MessageId, Pings, RoleId, UserId, intents, message_flags, permissions,
};
use crate::world::{BotMeta, MsgRec, ThreadRec, World, channel_type};

/// The routes the fake serves, spelled as in Discord's documentation. Use them to inject faults
/// ([`crate::FakeDiscord::inject`]) and to read per-route counters ([`crate::Stats::requests`]).
pub mod routes {
    pub const GET_GATEWAY: &str = "GET /gateway";
    pub const GET_GATEWAY_BOT: &str = "GET /gateway/bot";
    pub const GET_CURRENT_USER: &str = "GET /users/@me";
    pub const GET_USER: &str = "GET /users/{user.id}";
    pub const CREATE_DM: &str = "POST /users/@me/channels";
    pub const GET_CURRENT_APPLICATION: &str = "GET /applications/@me";
    pub const GET_CHANNEL: &str = "GET /channels/{channel.id}";
    pub const GET_CHANNEL_MESSAGES: &str = "GET /channels/{channel.id}/messages";
    pub const GET_CHANNEL_MESSAGE: &str = "GET /channels/{channel.id}/messages/{message.id}";
    pub const CREATE_MESSAGE: &str = "POST /channels/{channel.id}/messages";
    pub const EDIT_MESSAGE: &str = "PATCH /channels/{channel.id}/messages/{message.id}";
    pub const DELETE_MESSAGE: &str = "DELETE /channels/{channel.id}/messages/{message.id}";
    pub const CROSSPOST_MESSAGE: &str = "POST /channels/{channel.id}/messages/{message.id}/crosspost";
    pub const START_THREAD: &str = "POST /channels/{channel.id}/threads";
    pub const ADD_THREAD_MEMBER: &str = "PUT /channels/{channel.id}/thread-members/{user.id}";
    pub const GET_GLOBAL_COMMANDS: &str = "GET /applications/{application.id}/commands";
    pub const CREATE_GLOBAL_COMMAND: &str = "POST /applications/{application.id}/commands";
    pub const OVERWRITE_GLOBAL_COMMANDS: &str = "PUT /applications/{application.id}/commands";
    pub const DELETE_GLOBAL_COMMAND: &str = "DELETE /applications/{application.id}/commands/{command.id}";
    pub const GET_GUILD_COMMANDS: &str = "GET /applications/{application.id}/guilds/{guild.id}/commands";
    pub const CREATE_GUILD_COMMAND: &str = "POST /applications/{application.id}/guilds/{guild.id}/commands";
    pub const OVERWRITE_GUILD_COMMANDS: &str = "PUT /applications/{application.id}/guilds/{guild.id}/commands";
    pub const DELETE_GUILD_COMMAND: &str =
        "DELETE /applications/{application.id}/guilds/{guild.id}/commands/{command.id}";
    pub const INTERACTION_CALLBACK: &str = "POST /interactions/{interaction.id}/{interaction.token}/callback";
    pub const GET_ORIGINAL_RESPONSE: &str = "GET /webhooks/{application.id}/{interaction.token}/messages/@original";
    pub const EDIT_ORIGINAL_RESPONSE: &str = "PATCH /webhooks/{application.id}/{interaction.token}/messages/@original";
    pub const DELETE_ORIGINAL_RESPONSE: &str =
        "DELETE /webhooks/{application.id}/{interaction.token}/messages/@original";
    pub const CREATE_FOLLOWUP: &str = "POST /webhooks/{application.id}/{interaction.token}";
    pub const GET_FOLLOWUP: &str = "GET /webhooks/{application.id}/{interaction.token}/messages/{message.id}";
    pub const EDIT_FOLLOWUP: &str = "PATCH /webhooks/{application.id}/{interaction.token}/messages/{message.id}";
    pub const DELETE_FOLLOWUP: &str = "DELETE /webhooks/{application.id}/{interaction.token}/messages/{message.id}";

    /// Every route, in matching order (`@original` before `{message.id}`).
    pub const ALL: &[&str] = &[
        GET_GATEWAY,
        GET_GATEWAY_BOT,
        GET_CURRENT_USER,
        CREATE_DM,
        GET_USER,
        GET_CURRENT_APPLICATION,
        GET_CHANNEL,
        GET_CHANNEL_MESSAGES,
        GET_CHANNEL_MESSAGE,
        CREATE_MESSAGE,
        EDIT_MESSAGE,
        DELETE_MESSAGE,
        CROSSPOST_MESSAGE,
        START_THREAD,
        ADD_THREAD_MEMBER,
        GET_GLOBAL_COMMANDS,
        CREATE_GLOBAL_COMMAND,
        OVERWRITE_GLOBAL_COMMANDS,
        DELETE_GLOBAL_COMMAND,
        GET_GUILD_COMMANDS,
        CREATE_GUILD_COMMAND,
        OVERWRITE_GUILD_COMMANDS,
        DELETE_GUILD_COMMAND,
        INTERACTION_CALLBACK,
        GET_ORIGINAL_RESPONSE,
        EDIT_ORIGINAL_RESPONSE,
        DELETE_ORIGINAL_RESPONSE,
        CREATE_FOLLOWUP,
        GET_FOLLOWUP,
        EDIT_FOLLOWUP,
        DELETE_FOLLOWUP,
    ];
}

use routes::*;

/// A Discord JSON error: `{"message": ..., "code": ..., "errors"?: ...}` with its HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: u64,
    pub message: String,
    pub errors: Option<Value>,
}

impl ApiError {
    pub fn new(status: u16, code: u64, message: &str) -> ApiError {
        ApiError { status, code, message: message.into(), errors: None }
    }
    pub fn body(&self) -> Value {
        let mut v = json!({"message": self.message, "code": self.code});
        if let Some(e) = &self.errors {
            v["errors"] = e.clone();
        }
        v
    }
    pub fn unauthorized() -> Self {
        Self::new(401, 0, "401: Unauthorized")
    }
    pub fn not_found() -> Self {
        Self::new(404, 0, "404: Not Found")
    }
    pub fn method_not_allowed() -> Self {
        Self::new(405, 0, "405: Method Not Allowed")
    }
    pub fn invalid_json() -> Self {
        Self::new(400, 50109, "The request body contains invalid JSON.")
    }
    pub fn invalid_form(errors: Value) -> Self {
        ApiError { errors: Some(errors), ..Self::new(400, 50035, "Invalid Form Body") }
    }
    fn unknown_channel() -> Self {
        Self::new(404, 10003, "Unknown Channel")
    }
    fn unknown_guild() -> Self {
        Self::new(404, 10004, "Unknown Guild")
    }
    fn unknown_message() -> Self {
        Self::new(404, 10008, "Unknown Message")
    }
    fn unknown_user() -> Self {
        Self::new(404, 10013, "Unknown User")
    }
    fn unknown_member() -> Self {
        Self::new(404, 10007, "Unknown Member")
    }
    fn unknown_webhook() -> Self {
        Self::new(404, 10015, "Unknown Webhook")
    }
    fn unknown_interaction() -> Self {
        Self::new(404, 10062, "Unknown interaction")
    }
    fn unknown_command() -> Self {
        Self::new(404, 10063, "Unknown application command")
    }
    fn missing_access() -> Self {
        Self::new(403, 50001, "Missing Access")
    }
    fn missing_permissions() -> Self {
        Self::new(403, 50013, "Missing Permissions")
    }
    fn cannot_message_user() -> Self {
        Self::new(403, 50007, "Cannot send messages to this user")
    }
    fn empty_message() -> Self {
        Self::new(400, 50006, "Cannot send an empty message")
    }
    fn wrong_channel_type() -> Self {
        Self::new(403, 50024, "Cannot execute action on this channel type")
    }
    fn single_field(field: &str, code: &str, message: &str) -> Self {
        let mut errors = payload::FormErrors::default();
        errors.add(&[field], code, message);
        errors.into_result().expect_err("one error was added")
    }
}

/// A successful answer: 200 with a body, 201, or 204 without one.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Option<Value>,
}

fn ok(body: Value) -> Result<Reply, ApiError> {
    Ok(Reply { status: 200, body: Some(body) })
}

fn created(body: Value) -> Result<Reply, ApiError> {
    Ok(Reply { status: 201, body: Some(body) })
}

fn no_content() -> Result<Reply, ApiError> {
    Ok(Reply { status: 204, body: None })
}

/// The placeholders of a matched route.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(&'static str, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
    fn id(&self, name: &str, unknown: fn() -> ApiError) -> Result<u64, ApiError> {
        self.get(name).and_then(|s| s.parse().ok()).ok_or_else(unknown)
    }
}

/// Finds the route for a method and a path below `/api/v10`: 404 when no route has that path, 405 when one does
/// but not for this method.
pub(crate) fn match_route(method: &str, path: &str) -> Result<(&'static str, Params), ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut path_matched = false;
    for route in routes::ALL {
        let (m, template) = route.split_once(' ').expect("METHOD /path");
        let tsegs: Vec<&'static str> = template.split('/').filter(|s| !s.is_empty()).collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut params = Params::default();
        let fits = tsegs.iter().zip(&segs).all(|(t, s)| {
            if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                // A placeholder never stands for a literal of another route (`@me`, `@original`).
                let literal = s.starts_with('@');
                params.0.push((name, s.to_string()));
                !literal || name == "interaction.token"
            } else {
                t == s
            }
        });
        if !fits {
            continue;
        }
        path_matched = true;
        if m == method {
            return Ok((route, params));
        }
    }
    Err(if path_matched { ApiError::method_not_allowed() } else { ApiError::not_found() })
}

/// How a route is limited and authenticated.
pub(crate) struct RouteClass {
    pub bucket: &'static str,
    pub key: String,
    pub counts_global: bool,
    pub needs_auth: bool,
}

pub(crate) fn classify(route: &'static str, params: &Params) -> RouteClass {
    let major = params
        .get("channel.id")
        .or_else(|| params.get("guild.id"))
        .or_else(|| params.get("interaction.token"))
        .unwrap_or("-")
        .to_string();
    // Interaction callbacks and interaction webhooks are authenticated by their token and are not bound to the
    // global limit; GET /gateway needs no authentication at all.
    let token_route = params.get("interaction.token").is_some();
    RouteClass {
        bucket: route,
        key: major,
        counts_global: !token_route && route != GET_GATEWAY,
        needs_auth: !token_route && route != GET_GATEWAY,
    }
}

/// Runs the handler of a route.
pub(crate) fn handle(
    w: &mut World,
    route: &'static str,
    p: &Params,
    query: &str,
    body: &Value,
    now: Instant,
) -> Result<Reply, ApiError> {
    match route {
        GET_GATEWAY => ok(json!({"url": w.gateway_url()})),
        GET_GATEWAY_BOT => {
            let total = w.config.session_start_limit;
            ok(json!({
                "url": w.gateway_url(),
                "shards": w.config.shards,
                "session_start_limit": {
                    "total": total,
                    "remaining": total.saturating_sub(w.session_starts_used),
                    "reset_after": w.config.scaled(Duration::from_secs(86_400)).as_millis() as u64,
                    "max_concurrency": 1,
                },
            }))
        }
        GET_CURRENT_USER => ok(w.current_user_json()),
        GET_USER => {
            let id = p.id("user.id", ApiError::unknown_user)?;
            if id != w.bot_id && !w.users.contains_key(&id) {
                return Err(ApiError::unknown_user());
            }
            ok(w.user_json(id))
        }
        GET_CURRENT_APPLICATION => ok(application_json(w)),
        CREATE_DM => create_dm(w, body),
        GET_CHANNEL => {
            let c = readable_channel(w, p)?;
            ok(w.channel_json(c))
        }
        GET_CHANNEL_MESSAGES => get_messages(w, p, query),
        GET_CHANNEL_MESSAGE => {
            let c = readable_channel(w, p)?;
            let m = p.id("message.id", ApiError::unknown_message)?;
            match w.messages.get(&(c, m)) {
                Some(rec) if !rec.deleted && !is_ephemeral(&rec.json) => ok(rest_view(w, rec)),
                _ => Err(ApiError::unknown_message()),
            }
        }
        CREATE_MESSAGE => {
            let c = p.id("channel.id", ApiError::unknown_channel)?;
            let out = payload::parse_outgoing(body, CREATE_FLAGS)?;
            let id = create_message(w, c, out, None)?;
            ok(w.messages[&(c, id)].json.clone())
        }
        EDIT_MESSAGE => {
            let c = p.id("channel.id", ApiError::unknown_channel)?;
            let m = p.id("message.id", ApiError::unknown_message)?;
            channel_for_bot(w, c)?;
            let out = payload::parse_outgoing(body, CREATE_FLAGS)?;
            edit_message(w, c, m, out)?;
            ok(w.messages[&(c, m)].json.clone())
        }
        DELETE_MESSAGE => delete_message(w, p),
        CROSSPOST_MESSAGE => crosspost(w, p),
        START_THREAD => start_thread(w, p, body),
        ADD_THREAD_MEMBER => add_thread_member(w, p),
        GET_GLOBAL_COMMANDS | GET_GUILD_COMMANDS => {
            let scope = command_scope(w, p)?;
            let list: Vec<Value> =
                w.commands.get(&scope).map(|m| m.values().map(|c| c.json.clone()).collect()).unwrap_or_default();
            ok(Value::Array(list))
        }
        CREATE_GLOBAL_COMMAND | CREATE_GUILD_COMMAND => {
            let scope = command_scope(w, p)?;
            let (json, existed) = upsert_command(w, scope, body, "")?;
            record_commands(w, scope, vec![json["name"].as_str().unwrap_or_default().to_string()]);
            if existed { ok(json) } else { created(json) }
        }
        OVERWRITE_GLOBAL_COMMANDS | OVERWRITE_GUILD_COMMANDS => overwrite_commands(w, p, body),
        DELETE_GLOBAL_COMMAND | DELETE_GUILD_COMMAND => {
            let scope = command_scope(w, p)?;
            let id = p.get("command.id").unwrap_or_default().to_string();
            let list = w.commands.entry(scope).or_default();
            let name = list.iter().find(|(_, c)| c.json["id"] == json!(id)).map(|(n, _)| n.clone());
            match name {
                Some(n) => {
                    list.remove(&n);
                    no_content()
                }
                None => Err(ApiError::unknown_command()),
            }
        }
        INTERACTION_CALLBACK => interaction_callback(w, p, body, query, now),
        GET_ORIGINAL_RESPONSE | GET_FOLLOWUP => {
            let (_, channel, m) = webhook_message(w, p, route == GET_ORIGINAL_RESPONSE)?;
            ok(w.messages[&(channel, m)].json.clone())
        }
        EDIT_ORIGINAL_RESPONSE | EDIT_FOLLOWUP => {
            let (_, channel, m) = webhook_message(w, p, route == EDIT_ORIGINAL_RESPONSE)?;
            let out = payload::parse_outgoing(body, CREATE_FLAGS)?;
            edit_message(w, channel, m, out)?;
            ok(w.messages[&(channel, m)].json.clone())
        }
        DELETE_ORIGINAL_RESPONSE | DELETE_FOLLOWUP => {
            let (_, channel, m) = webhook_message(w, p, route == DELETE_ORIGINAL_RESPONSE)?;
            remove_message(w, channel, m);
            no_content()
        }
        CREATE_FOLLOWUP => {
            let i = interaction_by_token(w, p)?;
            let rec = &w.interactions[&i];
            if rec.record.callbacks.is_empty() {
                return Err(ApiError::unknown_webhook());
            }
            let channel = rec.record.channel_id.0;
            let out = payload::parse_outgoing(body, RESPONSE_FLAGS)?;
            let id = create_message(w, channel, out, Some((i, false)))?;
            if let Some(r) = w.interactions.get_mut(&i) {
                r.record.followups.push(MessageId(id));
            }
            ok(w.messages[&(channel, id)].json.clone())
        }
        _ => Err(ApiError::not_found()),
    }
}

fn application_json(w: &World) -> Value {
    let mut flags = 0u64;
    // GATEWAY_PRESENCE_LIMITED, GATEWAY_GUILD_MEMBERS_LIMITED, GATEWAY_MESSAGE_CONTENT_LIMITED: an unverified
    // app with the intent switched on.
    for (intent, flag) in
        [(intents::GUILD_PRESENCES, 1 << 13), (intents::GUILD_MEMBERS, 1 << 15), (intents::MESSAGE_CONTENT, 1 << 19)]
    {
        if w.config.privileged_intents & intent != 0 {
            flags |= flag;
        }
    }
    json!({
        "id": w.config.application_id.to_string(),
        "name": w.config.bot_username,
        "icon": null,
        "description": "",
        "bot_public": false,
        "bot_require_code_grant": false,
        "bot": w.user_json(w.bot_id),
        "owner": {"id": "1", "username": "webcare-owner", "discriminator": "0", "global_name": null, "avatar": null, "public_flags": 0},
        "summary": "",
        "verify_key": "0f2a1c5d3e4b6a7988a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607",
        "team": null,
        "flags": flags,
        "approximate_guild_count": w.guilds.len(),
        "integration_types_config": {"0": {}},
        "redirect_uris": [],
        "interactions_endpoint_url": null,
        "tags": [],
    })
}

pub(crate) fn application_flags(w: &World) -> u64 {
    application_json(w)["flags"].as_u64().unwrap_or(0)
}

fn is_ephemeral(m: &Value) -> bool {
    m["flags"].as_u64().unwrap_or(0) & message_flags::EPHEMERAL != 0
}

/// A message as `GET` returns it: without the MESSAGE_CONTENT intent switched on for the app, content fields are
/// empty except in DMs, the bot's own messages and messages that mention the bot.
fn rest_view(w: &World, rec: &MsgRec) -> Value {
    let mut v = rec.json.clone();
    let dm = w.channels.get(&rec.channel_id).is_some_and(|c| c.guild_id.is_none());
    let mentions_bot =
        v["mentions"].as_array().is_some_and(|m| m.iter().any(|u| u["id"] == json!(w.bot_id.to_string())));
    if w.config.privileged_intents & intents::MESSAGE_CONTENT == 0 && !dm && rec.author_id != w.bot_id && !mentions_bot
    {
        v["content"] = json!("");
        v["embeds"] = json!([]);
        v["attachments"] = json!([]);
        v["components"] = json!([]);
    }
    v
}

/// A channel the bot can see, or the error Discord gives.
fn readable_channel(w: &World, p: &Params) -> Result<u64, ApiError> {
    let c = p.id("channel.id", ApiError::unknown_channel)?;
    channel_for_bot(w, c)?;
    Ok(c)
}

fn channel_for_bot(w: &World, c: u64) -> Result<(), ApiError> {
    let ch = w.channels.get(&c).ok_or_else(ApiError::unknown_channel)?;
    if ch.guild_id.is_some() && w.bot_permissions_in_channel(c) & permissions::VIEW_CHANNEL == 0 {
        return Err(ApiError::missing_access());
    }
    if let Some(t) = &ch.thread
        && ch.kind == channel_type::PRIVATE_THREAD
        && !t.members.contains(&w.bot_id)
        && w.bot_permissions_in_channel(c) & permissions::MANAGE_THREADS == 0
    {
        return Err(ApiError::missing_access());
    }
    Ok(())
}

fn get_messages(w: &World, p: &Params, query: &str) -> Result<Reply, ApiError> {
    let c = readable_channel(w, p)?;
    if w.bot_permissions_in_channel(c) & permissions::READ_MESSAGE_HISTORY == 0 {
        return ok(json!([]));
    }
    let q = |name: &str| {
        query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    };
    let limit = q("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::single_field(
            "limit",
            "NUMBER_TYPE_MAX",
            "int value should be less than or equal to 100.",
        ));
    }
    let after = q("after").and_then(|s| s.parse::<u64>().ok());
    let before = q("before").and_then(|s| s.parse::<u64>().ok());
    let visible =
        w.messages.range((c, 0)..=(c, u64::MAX)).map(|(_, m)| m).filter(|m| !m.deleted && !is_ephemeral(&m.json));
    let ids = |m: &&MsgRec| m.json["id"].as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let mut picked: Vec<&MsgRec> = match after {
        // `after` answers the oldest messages after the id; the list is still newest first.
        Some(a) => visible.filter(|m| ids(m) > a).take(limit).collect(),
        None => {
            let all: Vec<&MsgRec> = visible.filter(|m| before.is_none_or(|b| ids(m) < b)).collect();
            all[all.len().saturating_sub(limit)..].to_vec()
        }
    };
    picked.reverse();
    ok(Value::Array(picked.into_iter().map(|m| rest_view(w, m)).collect()))
}

/// Creates a message from the bot (or, with `interaction`, an interaction response or follow-up) after the checks
/// Discord makes; returns its id.
pub(crate) fn create_message(
    w: &mut World,
    channel: u64,
    out: Outgoing,
    interaction: Option<(u64, bool)>,
) -> Result<u64, ApiError> {
    let ch = w.channels.get(&channel).ok_or_else(ApiError::unknown_channel)?.clone();
    if interaction.is_none() {
        channel_for_bot(w, channel)?;
        let perms = w.bot_permissions_in_channel(channel);
        let needed =
            if ch.thread.is_some() { permissions::SEND_MESSAGES_IN_THREADS } else { permissions::SEND_MESSAGES };
        if perms & needed == 0 {
            return Err(ApiError::missing_permissions());
        }
        if let Some(user) = ch.recipient {
            let open = w.users.get(&user).is_some_and(|u| u.user.dms_open && !u.user.bot);
            if !open {
                return Err(ApiError::cannot_message_user());
            }
        }
    }
    let content = out.content.clone().unwrap_or_default();
    let embeds = out.embeds.clone().unwrap_or_default();
    let components = out.components.clone().unwrap_or_default();
    if content.is_empty() && embeds.is_empty() && components.is_empty() {
        return Err(ApiError::empty_message());
    }
    // enforce_nonce: a second create with the same nonce within a few minutes returns the first message.
    let nonce_key = out.nonce.as_ref().map(|n| (channel, n.to_string()));
    if out.enforce_nonce
        && let Some(key) = &nonce_key
        && let Some(existing) = w.nonces.get(key)
    {
        return Ok(*existing);
    }
    let mut referenced = None;
    if let Some(r) = &out.message_reference {
        let target = r.get("message_id").and_then(snowflake).unwrap_or_default();
        let ref_channel = r.get("channel_id").and_then(snowflake).unwrap_or(channel);
        match w.messages.get(&(ref_channel, target)) {
            Some(m) if !m.deleted => referenced = Some(m.clone()),
            _ if r.get("fail_if_not_exists").and_then(Value::as_bool) == Some(false) => {}
            _ => {
                return Err(ApiError::single_field(
                    "message_reference",
                    "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                    "Unknown message",
                ));
            }
        }
    }
    let kind = match (interaction, &referenced) {
        (Some((i, true)), _) if w.interactions[&i].command_name.is_some() => 20,
        (None, Some(_)) => 19,
        _ => 0,
    };
    let bot = w.bot_id;
    let (id, mut json) = w.new_message_json(channel, bot, kind);
    let replied_user = referenced.as_ref().map(|r| r.author_id);
    let pings = pings(w, channel, &content, out.allowed_mentions.as_ref(), replied_user);
    json["content"] = json!(content);
    json["embeds"] = json!(embeds);
    json["components"] = json!(components);
    json["tts"] = json!(out.tts);
    json["flags"] = json!(out.flags.unwrap_or(0));
    apply_pings(w, &mut json, &pings);
    if let Some(n) = &out.nonce {
        json["nonce"] = n.clone();
    }
    if let (Some(r), Some(m)) = (&out.message_reference, &referenced) {
        let mut reference = json!({
            "type": 0,
            "channel_id": m.channel_id.to_string(),
            "message_id": m.json["id"],
        });
        if let Some(g) = ch.guild_id {
            reference["guild_id"] = json!(g.to_string());
        }
        let _ = r;
        json["message_reference"] = reference;
        json["referenced_message"] = m.json.clone();
    }
    if let Some((i, _)) = interaction {
        let rec = &w.interactions[&i];
        let user = w.user_json(rec.record.user_id.0);
        json["webhook_id"] = json!(w.config.application_id.to_string());
        json["application_id"] = json!(w.config.application_id.to_string());
        let owners = match rec.guild_id {
            Some(g) => json!({"0": g.to_string()}),
            None => json!({"0": "0"}),
        };
        let mut metadata = json!({
            "id": i.to_string(),
            "type": rec.record.kind,
            "user": user,
            "authorizing_integration_owners": owners,
        });
        if let Some(name) = &rec.command_name {
            metadata["name"] = json!(name);
            json["interaction"] = json!({"id": i.to_string(), "type": rec.record.kind, "name": name, "user": user});
        } else if let Some(m) = rec.message_id {
            metadata["interacted_message_id"] = json!(m.to_string());
        }
        json["interaction_metadata"] = metadata;
    }
    let rec = MsgRec {
        json,
        channel_id: channel,
        author_id: bot,
        deleted: false,
        bot: Some(BotMeta {
            allowed_mentions: out.allowed_mentions.clone(),
            pings,
            previous_contents: vec![],
            crossposted: false,
            interaction: interaction.map(|(i, _)| i),
        }),
    };
    w.store_message(rec);
    if let Some(key) = nonce_key {
        w.nonces.insert(key, id);
    }
    w.record(BotEvent::Sent { channel_id: ChannelId(channel), message_id: MessageId(id) });
    Ok(id)
}

/// Who a message of the bot pings: the mentions in its text that `allowed_mentions` lets through, `@everyone` only
/// where the bot has Mention Everyone, and the replied-to author if `replied_user` allows it.
fn pings(w: &World, channel: u64, content: &str, allowed: Option<&Value>, replied_user: Option<u64>) -> Pings {
    let allowed = Allowed(allowed);
    let (users, roles, everyone) = payload::parse_mentions(content);
    let guild = w.channels.get(&channel).and_then(|c| c.guild_id);
    let mut pinged_users: Vec<UserId> = users
        .into_iter()
        .filter(|u| (w.users.contains_key(u) || *u == w.bot_id) && allowed.user(*u))
        .map(UserId)
        .collect();
    if let Some(u) = replied_user
        && allowed.replied_user()
        && !pinged_users.contains(&UserId(u))
    {
        pinged_users.push(UserId(u));
    }
    let guild_roles: Vec<u64> =
        guild.and_then(|g| w.guilds.get(&g)).map(|g| g.roles.iter().map(|r| r.id).collect()).unwrap_or_default();
    let pinged_roles = roles.into_iter().filter(|r| guild_roles.contains(r) && allowed.role(*r)).map(RoleId).collect();
    let everyone = everyone
        && guild.is_some()
        && allowed.everyone()
        && w.bot_permissions_in_channel(channel) & permissions::MENTION_EVERYONE != 0;
    Pings { everyone, users: pinged_users, roles: pinged_roles }
}

fn apply_pings(w: &World, json: &mut Value, pings: &Pings) {
    json["mention_everyone"] = json!(pings.everyone);
    json["mentions"] = Value::Array(pings.users.iter().map(|u| w.user_json(u.0)).collect());
    json["mention_roles"] = Value::Array(pings.roles.iter().map(|r| json!(r.0.to_string())).collect());
}

pub(crate) fn edit_message(w: &mut World, channel: u64, id: u64, out: Outgoing) -> Result<(), ApiError> {
    let rec = w.messages.get(&(channel, id)).filter(|m| !m.deleted).ok_or_else(ApiError::unknown_message)?;
    if rec.author_id != w.bot_id {
        return Err(ApiError::new(403, 50005, "Cannot edit a message authored by another user"));
    }
    let mut json = rec.json.clone();
    let mut meta = rec.bot.clone().expect("the bot's messages carry their metadata");
    let previous = json["content"].as_str().unwrap_or_default().to_string();
    if let Some(c) = &out.content {
        json["content"] = json!(c);
    }
    if let Some(e) = &out.embeds {
        json["embeds"] = json!(e);
    }
    if let Some(c) = &out.components {
        json["components"] = json!(c);
    }
    if let Some(f) = out.flags {
        // Only SUPPRESS_EMBEDS can change on an edit; other flags stay as they were.
        let old = json["flags"].as_u64().unwrap_or(0);
        json["flags"] = json!((old & !message_flags::SUPPRESS_EMBEDS) | (f & message_flags::SUPPRESS_EMBEDS));
    }
    let loading = json["flags"].as_u64().unwrap_or(0) & message_flags::LOADING != 0;
    if loading {
        // Editing a deferred response replaces the "is thinking" placeholder.
        json["flags"] = json!(json["flags"].as_u64().unwrap_or(0) & !message_flags::LOADING);
    }
    let empty = json["content"].as_str().is_none_or(str::is_empty)
        && json["embeds"].as_array().is_none_or(Vec::is_empty)
        && json["components"].as_array().is_none_or(Vec::is_empty);
    if empty {
        return Err(ApiError::empty_message());
    }
    if out.allowed_mentions.is_some() {
        meta.allowed_mentions = out.allowed_mentions.clone();
    }
    let content = json["content"].as_str().unwrap_or_default().to_string();
    let replied = json["referenced_message"]["author"]["id"].as_str().and_then(|s| s.parse().ok());
    meta.pings = pings(w, channel, &content, meta.allowed_mentions.as_ref(), replied);
    apply_pings(w, &mut json, &meta.pings);
    if !loading {
        meta.previous_contents.push(previous);
        json["edited_timestamp"] = json!(now_iso());
        w.stats.edits += 1;
        w.record(BotEvent::Edited { channel_id: ChannelId(channel), message_id: MessageId(id) });
    }
    let rec = w.messages.get_mut(&(channel, id)).expect("checked above");
    rec.json = json;
    rec.bot = Some(meta);
    w.emit_message("MESSAGE_UPDATE", channel, id);
    Ok(())
}

fn remove_message(w: &mut World, channel: u64, id: u64) {
    if let Some(m) = w.messages.get_mut(&(channel, id)) {
        m.deleted = true;
    }
    w.stats.deletions += 1;
    w.emit_message_delete(channel, id);
    w.record(BotEvent::Deleted { channel_id: ChannelId(channel), message_id: MessageId(id) });
}

fn delete_message(w: &mut World, p: &Params) -> Result<Reply, ApiError> {
    let c = readable_channel(w, p)?;
    let m = p.id("message.id", ApiError::unknown_message)?;
    let rec = w.messages.get(&(c, m)).filter(|r| !r.deleted).ok_or_else(ApiError::unknown_message)?;
    if rec.author_id != w.bot_id {
        let ch = &w.channels[&c];
        if ch.guild_id.is_none() {
            return Err(ApiError::new(403, 50003, "Cannot execute action on a DM channel"));
        }
        if w.bot_permissions_in_channel(c) & permissions::MANAGE_MESSAGES == 0 {
            return Err(ApiError::missing_permissions());
        }
    }
    remove_message(w, c, m);
    no_content()
}

fn crosspost(w: &mut World, p: &Params) -> Result<Reply, ApiError> {
    let c = readable_channel(w, p)?;
    let m = p.id("message.id", ApiError::unknown_message)?;
    if w.channels[&c].kind != channel_type::GUILD_ANNOUNCEMENT {
        return Err(ApiError::wrong_channel_type());
    }
    let rec = w.messages.get(&(c, m)).filter(|r| !r.deleted).ok_or_else(ApiError::unknown_message)?;
    let perms = w.bot_permissions_in_channel(c);
    let needed = if rec.author_id == w.bot_id { permissions::SEND_MESSAGES } else { permissions::MANAGE_MESSAGES };
    if perms & needed == 0 {
        return Err(ApiError::missing_permissions());
    }
    let flags = rec.json["flags"].as_u64().unwrap_or(0);
    if flags & message_flags::CROSSPOSTED != 0 {
        return Err(ApiError::new(400, 40033, "This message has already been crossposted."));
    }
    let rec = w.messages.get_mut(&(c, m)).expect("checked above");
    rec.json["flags"] = json!(flags | message_flags::CROSSPOSTED);
    if let Some(meta) = rec.bot.as_mut() {
        meta.crossposted = true;
    }
    let json = rec.json.clone();
    w.stats.crossposts += 1;
    w.emit_message("MESSAGE_UPDATE", c, m);
    w.record(BotEvent::Crossposted { channel_id: ChannelId(c), message_id: MessageId(m) });
    ok(json)
}

fn create_dm(w: &mut World, body: &Value) -> Result<Reply, ApiError> {
    let Some(user) = body.get("recipient_id").and_then(snowflake) else {
        return Err(ApiError::single_field("recipient_id", "BASE_TYPE_REQUIRED", "This field is required"));
    };
    if !w.users.contains_key(&user) {
        return Err(ApiError::unknown_user());
    }
    let c = w.dm_channel(user);
    w.record(BotEvent::DmOpened { user_id: UserId(user), channel_id: ChannelId(c) });
    ok(w.channel_json(c))
}

fn start_thread(w: &mut World, p: &Params, body: &Value) -> Result<Reply, ApiError> {
    let parent = readable_channel(w, p)?;
    let ch = w.channels[&parent].clone();
    let kind = body.get("type").and_then(Value::as_u64).unwrap_or(u64::from(channel_type::PRIVATE_THREAD)) as u8;
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    let count = name.chars().count();
    if !(1..=100).contains(&count) {
        return Err(ApiError::single_field("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."));
    }
    let allowed_parent = match kind {
        channel_type::PRIVATE_THREAD => ch.kind == channel_type::GUILD_TEXT,
        channel_type::PUBLIC_THREAD => {
            ch.kind == channel_type::GUILD_TEXT || ch.kind == channel_type::GUILD_ANNOUNCEMENT
        }
        _ => false,
    };
    if ch.guild_id.is_none() || !allowed_parent {
        return Err(ApiError::wrong_channel_type());
    }
    let needed = if kind == channel_type::PRIVATE_THREAD {
        permissions::CREATE_PRIVATE_THREADS
    } else {
        permissions::CREATE_PUBLIC_THREADS
    };
    if w.bot_permissions_in_channel(parent) & needed == 0 {
        return Err(ApiError::missing_permissions());
    }
    let id = w.ids.next();
    let bot = w.bot_id;
    let created_at = now_iso();
    w.channels.insert(
        id,
        crate::world::ChannelRec {
            id,
            kind,
            guild_id: ch.guild_id,
            name,
            parent_id: Some(parent),
            position: 0,
            recipient: None,
            thread: Some(ThreadRec {
                owner_id: bot,
                members: [bot].into_iter().collect(),
                invitable: body.get("invitable").and_then(Value::as_bool).unwrap_or(true),
                auto_archive_duration: body.get("auto_archive_duration").and_then(Value::as_u64).unwrap_or(4320),
                created: created_at.clone(),
            }),
            last_message_id: None,
            message_count: 0,
        },
    );
    let json = w.channel_json(id);
    let mut event = json.clone();
    event["newly_created"] = json!(true);
    event["member"] =
        json!({"id": id.to_string(), "user_id": bot.to_string(), "join_timestamp": created_at, "flags": 1});
    w.emit(crate::world::Dispatch {
        t: "THREAD_CREATE",
        d: event,
        guild_id: ch.guild_id,
        intent: Some(intents::GUILDS),
        content_exempt: true,
    });
    w.record(BotEvent::ThreadCreated { parent_id: ChannelId(parent), thread_id: ChannelId(id) });
    created(json)
}

fn add_thread_member(w: &mut World, p: &Params) -> Result<Reply, ApiError> {
    let t = readable_channel(w, p)?;
    let user = p.id("user.id", ApiError::unknown_user)?;
    let ch = w.channels[&t].clone();
    if ch.thread.is_none() {
        return Err(ApiError::wrong_channel_type());
    }
    let member = ch.guild_id.and_then(|g| w.guilds.get(&g)).is_some_and(|g| g.members.contains_key(&user));
    if !member {
        return Err(ApiError::unknown_member());
    }
    if let Some(th) = w.channels.get_mut(&t).and_then(|c| c.thread.as_mut()) {
        th.members.insert(user);
    }
    w.record(BotEvent::ThreadMemberAdded { thread_id: ChannelId(t), user_id: UserId(user) });
    no_content()
}

// ---------------------------------------------------------------- application commands

fn command_scope(w: &World, p: &Params) -> Result<Option<u64>, ApiError> {
    let app = p.get("application.id").and_then(|s| s.parse::<u64>().ok());
    if app != Some(w.config.application_id) {
        return Err(ApiError::new(403, 20012, "You are not authorized to perform this action on this application"));
    }
    match p.get("guild.id") {
        None => Ok(None),
        Some(g) => {
            let g = g.parse::<u64>().map_err(|_| ApiError::unknown_guild())?;
            if !w.guilds.contains_key(&g) {
                return Err(ApiError::missing_access());
            }
            Ok(Some(g))
        }
    }
}

fn valid_name(name: &str) -> bool {
    let n = name.chars().count();
    (1..=32).contains(&n)
        && name.chars().all(|c| c == '-' || c == '_' || c.is_alphanumeric())
        && name.to_lowercase() == name
}

/// Checks a command the way the Application Commands documentation describes for CHAT_INPUT commands.
fn check_command(body: &Value, prefix: &str) -> Result<(), ApiError> {
    let mut errors = payload::FormErrors::default();
    let path = |field: &str| -> Vec<String> {
        if prefix.is_empty() { vec![field.to_string()] } else { vec![prefix.to_string(), field.to_string()] }
    };
    let add = |errors: &mut payload::FormErrors, p: Vec<String>, code: &str, msg: &str| {
        let refs: Vec<&str> = p.iter().map(String::as_str).collect();
        errors.add(&refs, code, msg);
    };
    let kind = body.get("type").and_then(Value::as_u64).unwrap_or(1);
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    if kind == 1 && !valid_name(name) {
        add(&mut errors, path("name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid");
    }
    let description = body.get("description").and_then(Value::as_str).unwrap_or_default();
    if kind == 1 && !(1..=100).contains(&description.chars().count()) {
        add(&mut errors, path("description"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.");
    }
    let options = body.get("options").and_then(Value::as_array).cloned().unwrap_or_default();
    if options.len() > 25 {
        add(&mut errors, path("options"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.");
    }
    let mut optional_seen = false;
    for (i, o) in options.iter().enumerate() {
        let mut p = path("options");
        p.push(i.to_string());
        if !o.get("name").and_then(Value::as_str).is_some_and(valid_name) {
            let mut q = p.clone();
            q.push("name".into());
            add(&mut errors, q, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid");
        }
        if !(1..=11).contains(&o.get("type").and_then(Value::as_u64).unwrap_or(0)) {
            let mut q = p.clone();
            q.push("type".into());
            add(&mut errors, q, "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}.");
        }
        let required = o.get("required").and_then(Value::as_bool).unwrap_or(false);
        if required && optional_seen {
            add(
                &mut errors,
                p,
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options",
            );
        }
        optional_seen |= !required;
    }
    errors.into_result()
}

/// Creates or replaces a command by name; returns its JSON and whether one by that name existed.
fn upsert_command(w: &mut World, scope: Option<u64>, body: &Value, prefix: &str) -> Result<(Value, bool), ApiError> {
    if !body.is_object() {
        return Err(ApiError::invalid_json());
    }
    check_command(body, prefix)?;
    let name = body["name"].as_str().unwrap_or_default().to_string();
    let existing = w.commands.get(&scope).and_then(|m| m.get(&name)).map(|c| c.json["id"].clone());
    let id = match &existing {
        Some(id) => id.clone(),
        None => json!(w.ids.next().to_string()),
    };
    let version = w.ids.next().to_string();
    let mut json = json!({
        "id": id,
        "application_id": w.config.application_id.to_string(),
        "version": version,
        "default_member_permissions": body.get("default_member_permissions").cloned().unwrap_or(Value::Null),
        "type": body.get("type").and_then(Value::as_u64).unwrap_or(1),
        "name": name,
        "name_localizations": body.get("name_localizations").cloned().unwrap_or(Value::Null),
        "description": body.get("description").cloned().unwrap_or(json!("")),
        "description_localizations": body.get("description_localizations").cloned().unwrap_or(Value::Null),
        "dm_permission": body.get("dm_permission").cloned().unwrap_or(json!(true)),
        "contexts": body.get("contexts").cloned().unwrap_or(Value::Null),
        "integration_types": body.get("integration_types").cloned().unwrap_or(json!([0])),
        "nsfw": body.get("nsfw").cloned().unwrap_or(json!(false)),
    });
    if let Some(o) = body.get("options").filter(|o| o.as_array().is_some_and(|a| !a.is_empty())) {
        json["options"] = o.clone();
    }
    if let Some(g) = scope {
        json["guild_id"] = json!(g.to_string());
    }
    w.commands.entry(scope).or_default().insert(name, crate::world::CommandRec { json: json.clone() });
    Ok((json, existing.is_some()))
}

fn overwrite_commands(w: &mut World, p: &Params, body: &Value) -> Result<Reply, ApiError> {
    let scope = command_scope(w, p)?;
    let Some(list) = body.as_array() else { return Err(ApiError::invalid_json()) };
    for (i, c) in list.iter().enumerate() {
        check_command(c, &i.to_string())?;
    }
    let keep: Vec<String> = list.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect();
    w.commands.entry(scope).or_default().retain(|name, _| keep.contains(name));
    let mut out = Vec::new();
    for (i, c) in list.iter().enumerate() {
        out.push(upsert_command(w, scope, c, &i.to_string())?.0);
    }
    record_commands(w, scope, keep);
    ok(Value::Array(out))
}

fn record_commands(w: &mut World, scope: Option<u64>, names: Vec<String>) {
    w.record(BotEvent::CommandsRegistered { guild_id: scope.map(GuildId), names });
}

// ---------------------------------------------------------------- interactions

fn interaction_by_token(w: &World, p: &Params) -> Result<u64, ApiError> {
    let app = p.get("application.id").and_then(|s| s.parse::<u64>().ok());
    let token = p.get("interaction.token").unwrap_or_default();
    match w.interaction_tokens.get(token) {
        Some(i) if app == Some(w.config.application_id) => Ok(*i),
        _ => Err(ApiError::unknown_webhook()),
    }
}

/// The original response or a follow-up of an interaction: `(interaction, channel, message)`.
fn webhook_message(w: &World, p: &Params, original: bool) -> Result<(u64, u64, u64), ApiError> {
    let i = interaction_by_token(w, p)?;
    let rec = &w.interactions[&i];
    let channel = rec.record.channel_id.0;
    let m = if original {
        rec.record.original.map(|m| m.0).ok_or_else(ApiError::unknown_message)?
    } else {
        let m = p.id("message.id", ApiError::unknown_message)?;
        if !rec.record.followups.contains(&MessageId(m)) {
            return Err(ApiError::unknown_message());
        }
        m
    };
    match w.messages.get(&(channel, m)) {
        Some(rec) if !rec.deleted => Ok((i, channel, m)),
        _ => Err(ApiError::unknown_message()),
    }
}

fn interaction_callback(w: &mut World, p: &Params, body: &Value, query: &str, now: Instant) -> Result<Reply, ApiError> {
    let id = p.id("interaction.id", ApiError::unknown_interaction)?;
    let token = p.get("interaction.token").unwrap_or_default();
    let deadline = w.config.scaled(w.config.interaction_deadline);
    let Some(rec) = w.interactions.get(&id).filter(|r| r.record.token == token) else {
        return Err(ApiError::unknown_interaction());
    };
    let refuse = |w: &mut World, e: ApiError| {
        if let Some(r) = w.interactions.get_mut(&id) {
            r.record.refused_callbacks.push((e.status, e.code));
        }
        Err(e)
    };
    if !rec.record.callbacks.is_empty() {
        return refuse(w, ApiError::new(400, 40060, "Interaction has already been acknowledged."));
    }
    if now.duration_since(rec.created) > deadline {
        return refuse(w, ApiError::unknown_interaction());
    }
    let kind = body.get("type").and_then(Value::as_u64).unwrap_or(0);
    let component = rec.record.kind == 3;
    let channel = rec.record.channel_id.0;
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    match kind {
        4 => {
            let out = payload::parse_outgoing(&data, RESPONSE_FLAGS)?;
            let m = create_message(w, channel, out, Some((id, true)))?;
            w.interactions.get_mut(&id).expect("exists").record.original = Some(MessageId(m));
        }
        5 => {
            // The deferred response shows as a loading message until the bot edits @original.
            let flags = data.get("flags").and_then(Value::as_u64).unwrap_or(0) & message_flags::EPHEMERAL;
            let bot = w.bot_id;
            let (m, mut json) = w.new_message_json(channel, bot, if component { 0 } else { 20 });
            json["flags"] = json!(flags | message_flags::LOADING);
            json["webhook_id"] = json!(w.config.application_id.to_string());
            json["application_id"] = json!(w.config.application_id.to_string());
            let meta = BotMeta {
                allowed_mentions: None,
                pings: Pings::default(),
                previous_contents: vec![],
                crossposted: false,
                interaction: Some(id),
            };
            w.store_message(MsgRec { json, channel_id: channel, author_id: bot, deleted: false, bot: Some(meta) });
            w.interactions.get_mut(&id).expect("exists").record.original = Some(MessageId(m));
        }
        6 | 7 if component => {
            let m = w.interactions[&id].message_id.expect("component interactions carry their message");
            if kind == 7 {
                let out = payload::parse_outgoing(&data, RESPONSE_FLAGS)?;
                edit_message(w, channel, m, out)?;
            }
            w.interactions.get_mut(&id).expect("exists").record.original = Some(MessageId(m));
        }
        9 => {
            if data.get("custom_id").and_then(Value::as_str).is_none() {
                return Err(ApiError::single_field("data", "BASE_TYPE_REQUIRED", "custom_id is required"));
            }
        }
        _ => {
            return Err(ApiError::single_field(
                "type",
                "INTERACTION_RESPONSE_TYPE_INVALID",
                "Invalid interaction response type for this interaction",
            ));
        }
    }
    let r = w.interactions.get_mut(&id).expect("exists");
    r.record.callbacks.push(body.clone());
    let original = r.record.original;
    w.stats.interaction_callbacks += 1;
    w.record(BotEvent::InteractionAnswered { interaction_id: InteractionId(id), response_type: kind });
    if query.split('&').any(|kv| kv == "with_response=true") {
        let mut resource = json!({"type": kind});
        if let Some(m) = original
            && let Some(rec) = w.messages.get(&(channel, m.0))
        {
            resource["message"] = rec.json.clone();
        }
        return ok(json!({
            "interaction": {"id": id.to_string(), "type": w.interactions[&id].record.kind, "activity_instance_id": null,
                "response_message_id": original.map(|m| m.0.to_string()), "response_message_loading": kind == 5,
                "response_message_ephemeral": false},
            "resource": resource,
        }));
    }
    no_content()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_their_templates() {
        let (r, p) = match_route("POST", "/channels/42/messages").unwrap();
        assert_eq!(r, CREATE_MESSAGE);
        assert_eq!(p.get("channel.id"), Some("42"));
        assert_eq!(match_route("GET", "/users/@me").unwrap().0, GET_CURRENT_USER);
        assert_eq!(match_route("POST", "/users/@me/channels").unwrap().0, CREATE_DM);
        assert_eq!(match_route("GET", "/webhooks/1/tok/messages/@original").unwrap().0, GET_ORIGINAL_RESPONSE);
        assert_eq!(match_route("GET", "/webhooks/1/tok/messages/99").unwrap().0, GET_FOLLOWUP);
        assert_eq!(match_route("PUT", "/channels/1/messages").unwrap_err().status, 405);
        assert_eq!(match_route("GET", "/nope").unwrap_err().status, 404);
    }
}
