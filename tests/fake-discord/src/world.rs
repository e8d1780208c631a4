//! The fake's state: users, guilds with their roles, members and channels, DM channels and threads, every message,
//! interactions, registered commands, gateway sessions with their dispatch logs, injected faults, rate-limit
//! buckets and counters. It lives behind one mutex that is never held across an await. The JSON built here follows
//! the field lists of Discord's documentation (User, Guild Member, Role, Channel, Guild plus the GUILD_CREATE extra
//! fields, Message plus the MESSAGE_CREATE extra fields, Interaction), not any client library's types.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::clock::{Snowflakes, iso8601, now_iso, snowflake_ms};
use crate::config::Config;
use crate::ratelimit::Limiter;
use crate::types::{
    BotEvent, BotMessage, ChannelId, Fault, GuildId, Identify, InteractionId, InteractionRecord, MessageId, NewGuild,
    NewUser, Pings, RoleId, Stats, UserId, intents, message_flags, permissions,
};

/// Channel types of the documentation that the fake models.
pub(crate) mod channel_type {
    pub const GUILD_TEXT: u8 = 0;
    pub const DM: u8 = 1;
    pub const GUILD_ANNOUNCEMENT: u8 = 5;
    pub const PUBLIC_THREAD: u8 = 11;
    pub const PRIVATE_THREAD: u8 = 12;
}

#[derive(Debug, Clone)]
pub(crate) struct UserRec {
    pub user: NewUser,
}

#[derive(Debug, Clone)]
pub(crate) struct RoleRec {
    pub id: u64,
    pub name: String,
    pub permissions: u64,
    pub position: u64,
    pub managed_by_bot: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct MemberRec {
    pub roles: Vec<u64>,
    pub joined_at: String,
}

#[derive(Debug, Clone)]
pub(crate) struct GuildRec {
    pub name: String,
    pub owner_id: u64,
    /// The first role is `@everyone` (its id is the guild's id, as on Discord).
    pub roles: Vec<RoleRec>,
    pub members: BTreeMap<u64, MemberRec>,
    pub channels: Vec<u64>,
    pub joined_at: String,
}

#[derive(Debug, Clone)]
pub(crate) struct ThreadRec {
    pub owner_id: u64,
    pub members: BTreeSet<u64>,
    pub invitable: bool,
    pub auto_archive_duration: u64,
    pub created: String,
}

#[derive(Debug, Clone)]
pub(crate) struct ChannelRec {
    pub id: u64,
    pub kind: u8,
    pub guild_id: Option<u64>,
    pub name: String,
    pub parent_id: Option<u64>,
    pub position: u64,
    /// For a DM channel: the other user.
    pub recipient: Option<u64>,
    pub thread: Option<ThreadRec>,
    pub last_message_id: Option<u64>,
    pub message_count: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct BotMeta {
    pub allowed_mentions: Option<Value>,
    pub pings: Pings,
    pub previous_contents: Vec<String>,
    pub crossposted: bool,
    pub interaction: Option<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct MsgRec {
    /// The message object as the REST API returns it (without the gateway's extra fields).
    pub json: Value,
    pub channel_id: u64,
    pub author_id: u64,
    pub deleted: bool,
    pub bot: Option<BotMeta>,
}

#[derive(Debug, Clone)]
pub(crate) struct InteractionRec {
    pub record: InteractionRecord,
    pub guild_id: Option<u64>,
    /// For a component interaction: the message the component is on.
    pub message_id: Option<u64>,
    pub command_name: Option<String>,
    pub created: Instant,
}

#[derive(Debug, Clone)]
pub(crate) struct CommandRec {
    pub json: Value,
}

/// A gateway session: what IDENTIFY asked for and every dispatch it was sent, for replay on RESUME.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub intents: u64,
    pub shard: (u32, u32),
    pub seq: u64,
    /// `(seq, serialized payload)` of every dispatch, in order.
    pub log: Vec<(u64, String)>,
    /// False once invalidated; a RESUME is then answered with INVALID_SESSION.
    pub valid: bool,
    /// The connection currently attached, if any.
    pub conn: Option<u64>,
}

/// What the test (or a fault) asks a gateway connection to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ConnCommand {
    /// Close with this code, or drop the TCP connection without a close frame.
    Close(Option<u16>),
    /// Send this raw payload (a Reconnect, a Heartbeat request, an Invalid Session).
    Send(String),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ConnRec {
    pub session: Option<String>,
    /// How many entries of the session's log this connection has sent.
    pub cursor: usize,
    pub commands: VecDeque<ConnCommand>,
}

/// Dispatches are addressed to sessions by these properties.
pub(crate) struct Dispatch {
    pub t: &'static str,
    pub d: Value,
    pub guild_id: Option<u64>,
    /// The intent a session needs to receive it; `None` for events sent regardless (interactions).
    pub intent: Option<u64>,
    /// For messages: whether content is kept for sessions without MESSAGE_CONTENT (DMs, the bot's own messages,
    /// messages that mention the bot).
    pub content_exempt: bool,
}

pub(crate) struct World {
    pub config: Config,
    /// The only bot token the fake accepts.
    pub token: String,
    pub port: u16,
    pub ids: Snowflakes,
    pub bot_id: u64,
    pub users: BTreeMap<u64, UserRec>,
    pub guilds: BTreeMap<u64, GuildRec>,
    pub channels: BTreeMap<u64, ChannelRec>,
    /// DM channel per user.
    pub dms: BTreeMap<u64, u64>,
    pub messages: BTreeMap<(u64, u64), MsgRec>,
    /// Attachment bytes by URL path, with their content type.
    pub attachments: HashMap<String, (String, Vec<u8>)>,
    /// Message ids by `(channel, nonce)`, for `enforce_nonce`.
    pub nonces: HashMap<(u64, String), u64>,
    pub interactions: BTreeMap<u64, InteractionRec>,
    pub interaction_tokens: HashMap<String, u64>,
    /// Registered commands: global under `None`, per guild under `Some(guild)`; by name.
    pub commands: BTreeMap<Option<u64>, BTreeMap<String, CommandRec>>,
    pub sessions: BTreeMap<String, Session>,
    pub conns: BTreeMap<u64, ConnRec>,
    pub identifies: Vec<Identify>,
    pub session_starts_used: u32,
    pub faults: HashMap<String, VecDeque<Fault>>,
    pub limiter: Limiter,
    pub stats: Stats,
    pub events: Vec<BotEvent>,
    next_conn: u64,
    next_token: u64,
}

impl World {
    pub fn new(config: Config, token: String, port: u16) -> World {
        let bot_id = config.application_id;
        let limiter = Limiter::new(config.rate_limits);
        World {
            config,
            token,
            port,
            ids: Snowflakes::default(),
            bot_id,
            users: BTreeMap::new(),
            guilds: BTreeMap::new(),
            channels: BTreeMap::new(),
            dms: BTreeMap::new(),
            messages: BTreeMap::new(),
            attachments: HashMap::new(),
            nonces: HashMap::new(),
            interactions: BTreeMap::new(),
            interaction_tokens: HashMap::new(),
            commands: BTreeMap::new(),
            sessions: BTreeMap::new(),
            conns: BTreeMap::new(),
            identifies: Vec::new(),
            session_starts_used: 0,
            faults: HashMap::new(),
            limiter,
            stats: Stats::default(),
            events: Vec::new(),
            next_conn: 1,
            next_token: 1,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn gateway_url(&self) -> String {
        format!("ws://127.0.0.1:{}/gateway", self.port)
    }

    pub fn token_serial(&mut self) -> u64 {
        let n = self.next_token;
        self.next_token += 1;
        n
    }

    // ---------------------------------------------------------------- building the world

    pub fn create_user(&mut self, user: NewUser) -> UserId {
        let id = self.ids.next();
        self.users.insert(id, UserRec { user });
        UserId(id)
    }

    pub fn create_guild(&mut self, spec: NewGuild) -> GuildId {
        let owner = match spec.owner {
            Some(o) => o.0,
            None => self.create_user(NewUser::named(&format!("{}-owner", spec.name.to_lowercase()))).0,
        };
        let id = self.ids.next();
        let bot_role = self.ids.next();
        let joined_at = now_iso();
        let mut members = BTreeMap::new();
        members.insert(owner, MemberRec { roles: vec![], joined_at: joined_at.clone() });
        members.insert(self.bot_id, MemberRec { roles: vec![bot_role], joined_at: joined_at.clone() });
        let guild = GuildRec {
            name: spec.name,
            owner_id: owner,
            roles: vec![
                RoleRec {
                    id,
                    name: "@everyone".into(),
                    permissions: spec.everyone_permissions,
                    position: 0,
                    managed_by_bot: false,
                },
                RoleRec {
                    id: bot_role,
                    name: self.config.bot_username.clone(),
                    permissions: spec.bot_permissions,
                    position: 1,
                    managed_by_bot: true,
                },
            ],
            members,
            channels: vec![],
            joined_at,
        };
        self.guilds.insert(id, guild);
        let payload = self.guild_create_json(id, true);
        self.emit(Dispatch {
            t: "GUILD_CREATE",
            d: payload,
            guild_id: Some(id),
            intent: Some(intents::GUILDS),
            content_exempt: true,
        });
        GuildId(id)
    }

    pub fn create_channel(&mut self, guild: GuildId, name: &str, kind: u8) -> Result<ChannelId, String> {
        let g = self.guilds.get_mut(&guild.0).ok_or_else(|| format!("no guild {guild}"))?;
        let id = self.ids.next();
        let position = g.channels.len() as u64;
        g.channels.push(id);
        self.channels.insert(
            id,
            ChannelRec {
                id,
                kind,
                guild_id: Some(guild.0),
                name: name.into(),
                parent_id: None,
                position,
                recipient: None,
                thread: None,
                last_message_id: None,
                message_count: 0,
            },
        );
        let d = self.channel_json(id);
        self.emit(Dispatch {
            t: "CHANNEL_CREATE",
            d,
            guild_id: Some(guild.0),
            intent: Some(intents::GUILDS),
            content_exempt: true,
        });
        Ok(ChannelId(id))
    }

    pub fn create_role(&mut self, guild: GuildId, name: &str, perms: u64) -> Result<RoleId, String> {
        let id = self.ids.next();
        let g = self.guilds.get_mut(&guild.0).ok_or_else(|| format!("no guild {guild}"))?;
        let position = g.roles.len() as u64;
        g.roles.push(RoleRec { id, name: name.into(), permissions: perms, position, managed_by_bot: false });
        Ok(RoleId(id))
    }

    pub fn add_member(&mut self, guild: GuildId, user: UserId, roles: &[RoleId]) -> Result<(), String> {
        if !self.users.contains_key(&user.0) {
            return Err(format!("no user {user}"));
        }
        let g = self.guilds.get_mut(&guild.0).ok_or_else(|| format!("no guild {guild}"))?;
        g.members
            .entry(user.0)
            .or_insert_with(|| MemberRec { roles: vec![], joined_at: now_iso() })
            .roles
            .extend(roles.iter().map(|r| r.0));
        Ok(())
    }

    /// The DM channel between a user and the bot, opened if needed.
    pub fn dm_channel(&mut self, user: u64) -> u64 {
        if let Some(id) = self.dms.get(&user) {
            return *id;
        }
        let id = self.ids.next();
        self.channels.insert(
            id,
            ChannelRec {
                id,
                kind: channel_type::DM,
                guild_id: None,
                name: String::new(),
                parent_id: None,
                position: 0,
                recipient: Some(user),
                thread: None,
                last_message_id: None,
                message_count: 0,
            },
        );
        self.dms.insert(user, id);
        id
    }

    // ---------------------------------------------------------------- permissions

    pub fn permissions_of(&self, guild: u64, user: u64) -> u64 {
        let Some(g) = self.guilds.get(&guild) else { return 0 };
        if g.owner_id == user {
            return u64::MAX;
        }
        let Some(m) = g.members.get(&user) else { return 0 };
        let mut p = g.roles[0].permissions;
        for r in g.roles.iter().filter(|r| m.roles.contains(&r.id)) {
            p |= r.permissions;
        }
        if p & permissions::ADMINISTRATOR != 0 { u64::MAX } else { p }
    }

    pub fn bot_permissions_in_channel(&self, channel: u64) -> u64 {
        match self.channels.get(&channel).and_then(|c| c.guild_id) {
            Some(g) => self.permissions_of(g, self.bot_id),
            // In DMs the bot may do what anyone may do there.
            None => {
                permissions::VIEW_CHANNEL
                    | permissions::SEND_MESSAGES
                    | permissions::EMBED_LINKS
                    | permissions::ATTACH_FILES
                    | permissions::READ_MESSAGE_HISTORY
                    | permissions::MENTION_EVERYONE
                    | permissions::USE_EXTERNAL_EMOJIS
            }
        }
    }

    // ---------------------------------------------------------------- JSON in the documented shapes

    pub fn user_json(&self, id: u64) -> Value {
        if id == self.bot_id {
            return json!({
                "id": id.to_string(),
                "username": self.config.bot_username,
                "discriminator": "0",
                "global_name": null,
                "avatar": null,
                "bot": true,
                "public_flags": 0,
            });
        }
        let Some(u) = self.users.get(&id) else {
            return json!({"id": id.to_string(), "username": "deleted_user", "discriminator": "0", "global_name": null, "avatar": null, "public_flags": 0});
        };
        let mut v = json!({
            "id": id.to_string(),
            "username": u.user.username,
            "discriminator": "0",
            "global_name": u.user.global_name,
            "avatar": null,
            "public_flags": 0,
        });
        if u.user.bot {
            v["bot"] = json!(true);
        }
        v
    }

    /// `GET /users/@me` and READY's `user`: the bot with the fields only the current user sees.
    pub fn current_user_json(&self) -> Value {
        let mut v = self.user_json(self.bot_id);
        for (k, val) in [
            ("verified", json!(true)),
            ("mfa_enabled", json!(false)),
            ("email", Value::Null),
            ("flags", json!(0)),
            ("banner", Value::Null),
            ("accent_color", Value::Null),
            ("locale", json!("en-US")),
            ("premium_type", json!(0)),
        ] {
            v[k] = val;
        }
        v
    }

    /// A guild member without `user` (as in MESSAGE_CREATE's `member`); `with_user` adds it.
    pub fn member_json(&self, guild: u64, user: u64, with_user: bool) -> Value {
        let m = self.guilds.get(&guild).and_then(|g| g.members.get(&user));
        let (roles, joined_at) = match m {
            Some(m) => (m.roles.iter().map(u64::to_string).collect::<Vec<_>>(), m.joined_at.clone()),
            None => (vec![], now_iso()),
        };
        let mut v = json!({
            "roles": roles,
            "nick": null,
            "avatar": null,
            "banner": null,
            "joined_at": joined_at,
            "premium_since": null,
            "deaf": false,
            "mute": false,
            "flags": 0,
            "pending": false,
            "communication_disabled_until": null,
        });
        if with_user {
            v["user"] = self.user_json(user);
        }
        v
    }

    pub fn role_json(&self, guild: u64, r: &RoleRec) -> Value {
        let mut v = json!({
            "id": r.id.to_string(),
            "name": r.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
            "hoist": false,
            "icon": null,
            "unicode_emoji": null,
            "position": r.position,
            "permissions": r.permissions.to_string(),
            "managed": r.managed_by_bot,
            "mentionable": false,
            "flags": 0,
        });
        if r.managed_by_bot {
            v["tags"] = json!({"bot_id": self.bot_id.to_string()});
        } else if r.id == guild {
            v["tags"] = json!({});
        }
        v
    }

    pub fn channel_json(&self, id: u64) -> Value {
        let Some(c) = self.channels.get(&id) else { return Value::Null };
        let last = c.last_message_id.map(|m| m.to_string());
        match c.kind {
            channel_type::DM => json!({
                "id": id.to_string(),
                "type": c.kind,
                "last_message_id": last,
                "flags": 0,
                "recipients": [self.user_json(c.recipient.unwrap_or_default())],
            }),
            channel_type::PRIVATE_THREAD | channel_type::PUBLIC_THREAD => {
                let t = c.thread.as_ref();
                json!({
                    "id": id.to_string(),
                    "type": c.kind,
                    "guild_id": c.guild_id.map(|g| g.to_string()),
                    "parent_id": c.parent_id.map(|p| p.to_string()),
                    "owner_id": t.map(|t| t.owner_id.to_string()),
                    "name": c.name,
                    "last_message_id": last,
                    "rate_limit_per_user": 0,
                    "flags": 0,
                    "message_count": c.message_count,
                    "total_message_sent": c.message_count,
                    "member_count": t.map(|t| t.members.len().min(50)).unwrap_or(0),
                    "thread_metadata": {
                        "archived": false,
                        "auto_archive_duration": t.map(|t| t.auto_archive_duration).unwrap_or(1440),
                        "archive_timestamp": t.map(|t| t.created.clone()).unwrap_or_default(),
                        "locked": false,
                        "invitable": t.map(|t| t.invitable).unwrap_or(false),
                        "create_timestamp": t.map(|t| t.created.clone()).unwrap_or_default(),
                    },
                })
            }
            _ => json!({
                "id": id.to_string(),
                "type": c.kind,
                "guild_id": c.guild_id.map(|g| g.to_string()),
                "name": c.name,
                "position": c.position,
                "permission_overwrites": [],
                "parent_id": null,
                "nsfw": false,
                "topic": null,
                "last_message_id": last,
                "rate_limit_per_user": 0,
                "flags": 0,
            }),
        }
    }

    /// A guild object with the GUILD_CREATE extra fields. Without GUILD_PRESENCES Discord sends only the bot's own
    /// member (and members in voice), so `members` holds the bot unless `all_members`.
    pub fn guild_create_json(&self, id: u64, all_members: bool) -> Value {
        let g = &self.guilds[&id];
        let has_news = g.channels.iter().any(|c| self.channels[c].kind == channel_type::GUILD_ANNOUNCEMENT);
        let features: Vec<&str> = if has_news { vec!["COMMUNITY", "NEWS"] } else { vec![] };
        let members: Vec<Value> = g
            .members
            .keys()
            .filter(|u| all_members || **u == self.bot_id)
            .map(|u| self.member_json(id, *u, true))
            .collect();
        let threads: Vec<Value> = self
            .channels
            .values()
            .filter(|c| c.guild_id == Some(id) && c.thread.is_some())
            .map(|c| self.channel_json(c.id))
            .collect();
        json!({
            "id": id.to_string(),
            "name": g.name,
            "icon": null,
            "icon_hash": null,
            "splash": null,
            "discovery_splash": null,
            "owner_id": g.owner_id.to_string(),
            "afk_channel_id": null,
            "afk_timeout": 300,
            "widget_enabled": false,
            "widget_channel_id": null,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "roles": g.roles.iter().map(|r| self.role_json(id, r)).collect::<Vec<_>>(),
            "emojis": [],
            "features": features,
            "mfa_level": 0,
            "application_id": null,
            "system_channel_id": null,
            "system_channel_flags": 0,
            "rules_channel_id": null,
            "max_presences": null,
            "max_members": 500_000,
            "vanity_url_code": null,
            "description": null,
            "banner": null,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "nl",
            "public_updates_channel_id": null,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "nsfw_level": 0,
            "stickers": [],
            "premium_progress_bar_enabled": false,
            "safety_alerts_channel_id": null,
            "incidents_data": null,
            "joined_at": g.joined_at,
            "large": false,
            "unavailable": false,
            "member_count": g.members.len(),
            "voice_states": [],
            "members": members,
            "channels": g.channels.iter().map(|c| self.channel_json(*c)).collect::<Vec<_>>(),
            "threads": threads,
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        })
    }

    /// A message object with the MESSAGE_CREATE extra fields: `guild_id`, the author's partial `member`, and a
    /// partial `member` on each mentioned user.
    pub fn message_event_json(&self, rec: &MsgRec) -> Value {
        let mut v = rec.json.clone();
        let guild = self.channels.get(&rec.channel_id).and_then(|c| c.guild_id);
        if let Some(g) = guild {
            v["guild_id"] = json!(g.to_string());
            if v.get("webhook_id").is_none() {
                v["member"] = self.member_json(g, rec.author_id, false);
            }
            if let Some(mentions) = v["mentions"].as_array_mut() {
                for m in mentions {
                    let uid = m["id"].as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or_default();
                    if self.guilds.get(&g).is_some_and(|g| g.members.contains_key(&uid)) {
                        m["member"] = self.member_json(g, uid, false);
                    }
                }
            }
        }
        v
    }

    pub fn bot_message(&self, channel: u64, id: u64) -> Option<BotMessage> {
        let rec = self.messages.get(&(channel, id))?;
        let meta = rec.bot.as_ref()?;
        let j = &rec.json;
        let flags = j["flags"].as_u64().unwrap_or(0);
        Some(BotMessage {
            channel_id: ChannelId(channel),
            message_id: MessageId(id),
            guild_id: self.channels.get(&channel).and_then(|c| c.guild_id).map(GuildId),
            content: j["content"].as_str().unwrap_or_default().to_string(),
            embeds: j["embeds"].as_array().cloned().unwrap_or_default(),
            components: j["components"].as_array().cloned().unwrap_or_default(),
            allowed_mentions: meta.allowed_mentions.clone(),
            pings: meta.pings.clone(),
            message_reference: j.get("message_reference").cloned(),
            flags,
            crossposted: flags & message_flags::CROSSPOSTED != 0,
            deleted: rec.deleted,
            previous_contents: meta.previous_contents.clone(),
            interaction_id: meta.interaction.map(InteractionId),
            json: j.clone(),
        })
    }

    // ---------------------------------------------------------------- messages

    /// Stores a new message and dispatches MESSAGE_CREATE (unless ephemeral).
    pub fn store_message(&mut self, rec: MsgRec) -> u64 {
        let id: u64 = rec.json["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default();
        let channel = rec.channel_id;
        let ephemeral = rec.json["flags"].as_u64().unwrap_or(0) & message_flags::EPHEMERAL != 0;
        if let Some(c) = self.channels.get_mut(&channel)
            && !ephemeral
        {
            c.last_message_id = Some(id);
            c.message_count += 1;
        }
        if rec.bot.is_some() {
            *self.stats.deliveries_per_channel.entry(channel).or_default() += 1;
        }
        self.messages.insert((channel, id), rec);
        if !ephemeral {
            self.emit_message("MESSAGE_CREATE", channel, id);
        }
        id
    }

    pub fn emit_message(&mut self, t: &'static str, channel: u64, id: u64) {
        let Some(rec) = self.messages.get(&(channel, id)) else { return };
        let d = self.message_event_json(rec);
        let c = &self.channels[&channel];
        let guild_id = c.guild_id;
        let mentions_bot =
            d["mentions"].as_array().is_some_and(|m| m.iter().any(|u| u["id"] == json!(self.bot_id.to_string())));
        let exempt = guild_id.is_none() || rec.author_id == self.bot_id || mentions_bot;
        let intent = if guild_id.is_some() { intents::GUILD_MESSAGES } else { intents::DIRECT_MESSAGES };
        self.emit(Dispatch { t, d, guild_id, intent: Some(intent), content_exempt: exempt });
    }

    pub fn emit_message_delete(&mut self, channel: u64, id: u64) {
        let guild_id = self.channels.get(&channel).and_then(|c| c.guild_id);
        let mut d = json!({"id": id.to_string(), "channel_id": channel.to_string()});
        if let Some(g) = guild_id {
            d["guild_id"] = json!(g.to_string());
        }
        let intent = if guild_id.is_some() { intents::GUILD_MESSAGES } else { intents::DIRECT_MESSAGES };
        self.emit(Dispatch { t: "MESSAGE_DELETE", d, guild_id, intent: Some(intent), content_exempt: true });
    }

    pub fn new_message_json(&mut self, channel: u64, author: u64, kind: u8) -> (u64, Value) {
        let id = self.ids.next();
        let guild_id = self.channels.get(&channel).and_then(|c| c.guild_id);
        let mut v = json!({
            "id": id.to_string(),
            "channel_id": channel.to_string(),
            "author": self.user_json(author),
            "content": "",
            "timestamp": iso8601(snowflake_ms(id)),
            "edited_timestamp": null,
            "tts": false,
            "mention_everyone": false,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": false,
            "type": kind,
            "flags": 0,
            "components": [],
        });
        if let Some(c) = self.channels.get(&channel)
            && c.thread.is_some()
        {
            v["position"] = json!(c.message_count);
        }
        let _ = guild_id;
        (id, v)
    }

    // ---------------------------------------------------------------- gateway dispatch

    /// Appends a dispatch to the log of every session that should receive it, shaped for that session's intents.
    pub fn emit(&mut self, dispatch: Dispatch) {
        let Dispatch { t, d, guild_id, intent, content_exempt } = dispatch;
        for s in self.sessions.values_mut().filter(|s| s.valid) {
            if let Some(i) = intent
                && s.intents & i == 0
            {
                continue;
            }
            if !shard_owns(s.shard, guild_id) {
                continue;
            }
            let mut d = d.clone();
            if !content_exempt && s.intents & intents::MESSAGE_CONTENT == 0 {
                strip_content(&mut d);
            }
            s.seq += 1;
            let frame = json!({"op": 0, "t": t, "s": s.seq, "d": d});
            s.log.push((s.seq, frame.to_string()));
        }
    }

    /// Appends a dispatch to one session only (READY, GUILD_CREATE after READY, RESUMED).
    pub fn emit_to(&mut self, session: &str, t: &str, d: Value) {
        if let Some(s) = self.sessions.get_mut(session) {
            s.seq += 1;
            let frame = json!({"op": 0, "t": t, "s": s.seq, "d": d});
            s.log.push((s.seq, frame.to_string()));
        }
    }

    pub fn new_conn(&mut self) -> u64 {
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(id, ConnRec::default());
        self.stats.gateway_connections += 1;
        id
    }

    pub fn guilds_of_shard(&self, shard: (u32, u32)) -> Vec<u64> {
        self.guilds.keys().copied().filter(|g| shard_owns(shard, Some(*g))).collect()
    }

    pub fn record(&mut self, event: BotEvent) {
        self.events.push(event);
    }
}

/// Discord routes a guild's events to shard `(guild_id >> 22) % num_shards` and DMs to shard 0.
pub(crate) fn shard_owns(shard: (u32, u32), guild: Option<u64>) -> bool {
    let (id, n) = shard;
    let n = u64::from(n.max(1));
    match guild {
        Some(g) => (g >> 22) % n == u64::from(id),
        None => id == 0,
    }
}

/// What an app without the MESSAGE_CONTENT intent sees of a message: empty `content`, `embeds`, `attachments`
/// and `components`, and no `poll`.
fn strip_content(d: &mut Value) {
    if d.get("content").is_some() {
        d["content"] = json!("");
        d["embeds"] = json!([]);
        d["attachments"] = json!([]);
        d["components"] = json!([]);
        if let Some(o) = d.as_object_mut() {
            o.remove("poll");
        }
    }
    if let Some(r) = d.get_mut("referenced_message")
        && r.is_object()
    {
        strip_content(r);
    }
}
