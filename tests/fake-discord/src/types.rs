//! The public vocabulary of the fake's test side: ids, the people, guilds and channels a test creates, what a user
//! posts or runs, what the bot sent as a test reads it back, injected faults, and the counters that let a test or a
//! benchmark show that the bot stayed inside Discord's limits and sent nothing twice. Also the intent and
//! permission bits of Discord's documentation, so tests need not spell them out.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    )*};
}

id_type!(
    /// A Discord user: a person, another bot, or (as [`crate::FakeDiscord::bot_user_id`]) the bot under test.
    UserId,
    GuildId,
    /// A guild text or announcement channel, a DM channel, or a thread.
    ChannelId,
    MessageId,
    RoleId,
    InteractionId,
);

/// Gateway intents (bit values from the Gateway documentation).
pub mod intents {
    pub const GUILDS: u64 = 1 << 0;
    pub const GUILD_MEMBERS: u64 = 1 << 1;
    pub const GUILD_MODERATION: u64 = 1 << 2;
    pub const GUILD_PRESENCES: u64 = 1 << 8;
    pub const GUILD_MESSAGES: u64 = 1 << 9;
    pub const GUILD_MESSAGE_REACTIONS: u64 = 1 << 10;
    pub const DIRECT_MESSAGES: u64 = 1 << 12;
    pub const DIRECT_MESSAGE_REACTIONS: u64 = 1 << 13;
    pub const MESSAGE_CONTENT: u64 = 1 << 15;
    /// The intents that must be switched on for the application before a bot may identify with them.
    pub const PRIVILEGED: u64 = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT;
    /// Every bit Discord defines (up to `DIRECT_MESSAGE_POLLS`, 1 << 25); others close the gateway with 4013.
    pub const ALL: u64 = (1 << 26) - 1;
}

/// Permission bits (from the Permissions documentation).
pub mod permissions {
    pub const ADMINISTRATOR: u64 = 1 << 3;
    pub const VIEW_CHANNEL: u64 = 1 << 10;
    pub const SEND_MESSAGES: u64 = 1 << 11;
    pub const MANAGE_MESSAGES: u64 = 1 << 13;
    pub const EMBED_LINKS: u64 = 1 << 14;
    pub const ATTACH_FILES: u64 = 1 << 15;
    pub const READ_MESSAGE_HISTORY: u64 = 1 << 16;
    pub const MENTION_EVERYONE: u64 = 1 << 17;
    pub const USE_EXTERNAL_EMOJIS: u64 = 1 << 18;
    pub const USE_APPLICATION_COMMANDS: u64 = 1 << 31;
    pub const MANAGE_THREADS: u64 = 1 << 34;
    pub const CREATE_PUBLIC_THREADS: u64 = 1 << 35;
    pub const CREATE_PRIVATE_THREADS: u64 = 1 << 36;
    pub const SEND_MESSAGES_IN_THREADS: u64 = 1 << 38;
    /// What a member of a new server gets from `@everyone`.
    pub const EVERYONE_DEFAULT: u64 = VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | MENTION_EVERYONE
        | USE_EXTERNAL_EMOJIS
        | USE_APPLICATION_COMMANDS
        | CREATE_PUBLIC_THREADS
        | CREATE_PRIVATE_THREADS
        | SEND_MESSAGES_IN_THREADS;
    /// What the fake gives the bot's own role unless the guild says otherwise: no Manage Messages.
    pub const BOT_DEFAULT: u64 = VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | CREATE_PRIVATE_THREADS
        | SEND_MESSAGES_IN_THREADS
        | MANAGE_THREADS;
}

/// Message flags (from the Message documentation).
pub mod message_flags {
    pub const CROSSPOSTED: u64 = 1 << 0;
    pub const IS_CROSSPOST: u64 = 1 << 1;
    pub const SUPPRESS_EMBEDS: u64 = 1 << 2;
    pub const EPHEMERAL: u64 = 1 << 6;
    pub const LOADING: u64 = 1 << 7;
    pub const SUPPRESS_NOTIFICATIONS: u64 = 1 << 12;
    pub const IS_VOICE_MESSAGE: u64 = 1 << 13;
    pub const IS_COMPONENTS_V2: u64 = 1 << 15;
}

/// A user to create: a person by default, or another bot.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub global_name: Option<String>,
    pub bot: bool,
    /// Whether the user accepts DMs from the bot; sends to a closed DM answer 403 with code 50007.
    pub dms_open: bool,
    pub locale: String,
}

impl NewUser {
    pub fn named(username: &str) -> Self {
        NewUser { username: username.into(), global_name: None, bot: false, dms_open: true, locale: "nl".into() }
    }
    /// Another bot (not the one under test): its messages carry `author.bot = true`.
    pub fn bot(username: &str) -> Self {
        NewUser { bot: true, ..NewUser::named(username) }
    }
    pub fn display_name(mut self, name: &str) -> Self {
        self.global_name = Some(name.into());
        self
    }
    pub fn dms_closed(mut self) -> Self {
        self.dms_open = false;
        self
    }
    pub fn locale(mut self, locale: &str) -> Self {
        self.locale = locale.into();
        self
    }
}

/// A guild (server) the bot is a member of.
#[derive(Debug, Clone)]
pub struct NewGuild {
    pub name: String,
    /// Defaults to a user created for the purpose.
    pub owner: Option<UserId>,
    /// The permissions of the bot's managed role in this guild.
    pub bot_permissions: u64,
    pub everyone_permissions: u64,
}

impl NewGuild {
    pub fn named(name: &str) -> Self {
        NewGuild {
            name: name.into(),
            owner: None,
            bot_permissions: permissions::BOT_DEFAULT,
            everyone_permissions: permissions::EVERYONE_DEFAULT,
        }
    }
    pub fn owner(mut self, owner: UserId) -> Self {
        self.owner = Some(owner);
        self
    }
    /// Gives the bot Manage Messages here, so it may delete other people's messages.
    pub fn bot_can_manage_messages(mut self) -> Self {
        self.bot_permissions |= permissions::MANAGE_MESSAGES;
        self
    }
    pub fn bot_permissions(mut self, permissions: u64) -> Self {
        self.bot_permissions = permissions;
        self
    }
}

/// A file attached to a user's message; the fake serves its bytes at the attachment's `url`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// What a user posts. Mentions are written into the text as Discord clients do (`<@id>`, `<@&role>`,
/// `@everyone`); the fake derives `mentions`, `mention_roles` and `mention_everyone` from it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserMessage {
    pub content: String,
    pub attachments: Vec<Attachment>,
    pub reply_to: Option<MessageId>,
}

impl UserMessage {
    pub fn text(content: &str) -> Self {
        UserMessage { content: content.into(), ..UserMessage::default() }
    }
    pub fn attach(mut self, filename: &str, content_type: &str, bytes: &[u8]) -> Self {
        self.attachments.push(Attachment {
            filename: filename.into(),
            content_type: content_type.into(),
            bytes: bytes.to_vec(),
        });
        self
    }
    pub fn reply_to(mut self, message: MessageId) -> Self {
        self.reply_to = Some(message);
        self
    }
}

/// An option value a user fills in when running a slash command.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    String(String),
    Integer(i64),
    Boolean(bool),
    Number(f64),
    User(UserId),
    Channel(ChannelId),
}

impl OptionValue {
    /// The application command option type of the documentation.
    pub fn option_type(&self) -> u8 {
        match self {
            OptionValue::String(_) => 3,
            OptionValue::Integer(_) => 4,
            OptionValue::Boolean(_) => 5,
            OptionValue::User(_) => 6,
            OptionValue::Channel(_) => 7,
            OptionValue::Number(_) => 10,
        }
    }
}

/// A slash command as a user runs it, e.g. `SlashCommand::new("ticket").option("subject", "bill")`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlashCommand {
    pub name: String,
    pub options: Vec<(String, OptionValue)>,
}

impl SlashCommand {
    pub fn new(name: &str) -> Self {
        SlashCommand { name: name.into(), options: Vec::new() }
    }
    pub fn option(mut self, name: &str, value: &str) -> Self {
        self.options.push((name.into(), OptionValue::String(value.into())));
        self
    }
    pub fn option_value(mut self, name: &str, value: OptionValue) -> Self {
        self.options.push((name.into(), value));
        self
    }
}

/// What became of something a user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
}

/// An interaction a user started; its token is what the bot answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub interaction_id: InteractionId,
    pub token: String,
}

/// Who a message would actually ping, after `allowed_mentions` and permissions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pings {
    pub everyone: bool,
    pub users: Vec<UserId>,
    pub roles: Vec<RoleId>,
}

impl Pings {
    pub fn none(&self) -> bool {
        !self.everyone && self.users.is_empty() && self.roles.is_empty()
    }
}

/// A message the bot sent (through the channel routes or as an interaction response), in its current state.
#[derive(Debug, Clone, PartialEq)]
pub struct BotMessage {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    pub guild_id: Option<GuildId>,
    pub content: String,
    pub embeds: Vec<Value>,
    /// As Discord returns them (action rows with their buttons).
    pub components: Vec<Value>,
    /// Exactly as the bot sent it (on the create or on the latest edit that had it); `None` if it never did.
    pub allowed_mentions: Option<Value>,
    pub pings: Pings,
    pub message_reference: Option<Value>,
    pub flags: u64,
    pub crossposted: bool,
    pub deleted: bool,
    /// The content before each edit, oldest first.
    pub previous_contents: Vec<String>,
    /// Set for interaction responses and follow-ups.
    pub interaction_id: Option<InteractionId>,
    /// The message object as the API would return it now.
    pub json: Value,
}

impl BotMessage {
    pub fn edits(&self) -> usize {
        self.previous_contents.len()
    }
    /// The `custom_id` of every button, row by row.
    pub fn custom_ids(&self) -> Vec<String> {
        self.components
            .iter()
            .filter_map(|row| row["components"].as_array())
            .flatten()
            .filter_map(|c| c["custom_id"].as_str().map(str::to_string))
            .collect()
    }
}

/// An interaction and how the bot answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionRecord {
    pub id: InteractionId,
    pub token: String,
    /// 2 for application commands, 3 for message components.
    pub kind: u8,
    pub channel_id: ChannelId,
    pub user_id: UserId,
    /// Every accepted callback body, in order (normally one).
    pub callbacks: Vec<Value>,
    /// Callbacks refused (too late, or a second one), as (status, JSON error code).
    pub refused_callbacks: Vec<(u16, u64)>,
    pub original: Option<MessageId>,
    pub followups: Vec<MessageId>,
}

impl InteractionRecord {
    /// The callback `type` of the first accepted callback (4 message, 5 deferred, 6 deferred update, 7 update).
    pub fn response_type(&self) -> Option<u64> {
        self.callbacks.first().and_then(|c| c["type"].as_u64())
    }
}

/// Everything the bot did to the world, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum BotEvent {
    Sent { channel_id: ChannelId, message_id: MessageId },
    Edited { channel_id: ChannelId, message_id: MessageId },
    Deleted { channel_id: ChannelId, message_id: MessageId },
    Crossposted { channel_id: ChannelId, message_id: MessageId },
    DmOpened { user_id: UserId, channel_id: ChannelId },
    ThreadCreated { parent_id: ChannelId, thread_id: ChannelId },
    ThreadMemberAdded { thread_id: ChannelId, user_id: UserId },
    InteractionAnswered { interaction_id: InteractionId, response_type: u64 },
    CommandsRegistered { guild_id: Option<GuildId>, names: Vec<String> },
}

/// The scope of a 429, as `X-RateLimit-Scope` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User,
    Global,
    Shared,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Global => "global",
            Scope::Shared => "shared",
        }
    }
}

/// A fault to answer instead of the real result, for the next N calls of a route.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 with `retry_after` (Discord time; scaled like everything else) and the given scope.
    TooManyRequests { retry_after: Duration, scope: Scope },
    /// A 5xx answer (Discord's are `{"message": "...", "code": 0}`).
    ServerError { status: u16 },
    /// Any Discord JSON error, e.g. [`Fault::cannot_message_user`].
    Error { status: u16, code: u64, message: String },
    /// Answer normally, but only after this (unscaled) delay.
    Delay(Duration),
    /// Close the connection without answering.
    DropConnection,
}

impl Fault {
    /// 403 `{"message": "Cannot send messages to this user", "code": 50007}`.
    pub fn cannot_message_user() -> Fault {
        Fault::Error { status: 403, code: 50007, message: "Cannot send messages to this user".into() }
    }
    /// 403 `{"message": "Missing Permissions", "code": 50013}`.
    pub fn missing_permissions() -> Fault {
        Fault::Error { status: 403, code: 50013, message: "Missing Permissions".into() }
    }
}

/// What the bot sent in an IDENTIFY.
#[derive(Debug, Clone, PartialEq)]
pub struct Identify {
    pub intents: u64,
    pub shard: Option<(u32, u32)>,
    pub compress: bool,
    pub large_threshold: Option<u64>,
    /// The whole `d` of the payload, with the token replaced by `"<redacted>"`.
    pub payload: Value,
}

/// Counters kept by the fake.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    /// Requests per route (e.g. `POST /channels/{channel.id}/messages`), including refused ones.
    pub requests: BTreeMap<String, u64>,
    /// 429s from the fake's rate limits (not injected), and how many of those were global.
    pub rate_limited: u64,
    pub global_rate_limited: u64,
    /// 401, 403 and 429 answers (429s of scope `shared` excepted), as Discord counts invalid requests.
    pub invalid_requests: u64,
    /// The most invalid requests inside one invalid-request window.
    pub invalid_requests_peak: u64,
    /// Whether the invalid-request limit was ever reached.
    pub banned: bool,
    pub faults: u64,
    /// Messages the bot created, per channel (interaction responses and follow-ups included).
    pub deliveries_per_channel: BTreeMap<u64, u64>,
    pub edits: u64,
    pub deletions: u64,
    pub crossposts: u64,
    pub interaction_callbacks: u64,
    pub identifies: u64,
    pub resumes: u64,
    pub gateway_connections: u64,
    pub heartbeats: u64,
}

impl Stats {
    pub fn deliveries(&self) -> u64 {
        self.deliveries_per_channel.values().sum()
    }
    pub fn requests_to(&self, route: &str) -> u64 {
        self.requests.get(route).copied().unwrap_or_default()
    }
}
