//! The Discord adapter: translates serenity's gateway events into webcare inbound events and outbox rows into
//! Discord REST calls.
//!
//! [`start`] checks the token, registers the slash commands and runs serenity's gateway client; its
//! [`handler`] hands customers' messages, edits, deletions, slash commands and button presses to the [`Intake`].
//! The [`DiscordSender`] it returns is the [`webcare_domain::Sender`] the delivery engine drives: escaped text with
//! no mentions allowed, long text split, private cases moved from a server channel to a DM (or a private thread
//! when the customer's DMs are closed), and notices posted in the announcement channels. Discord's rate limits are
//! webcare's delivery engine's job, so serenity's own rate limiter is off and every 429 is handed back with its
//! scope.
//!
//! Architecture invariant: the only crate that sees a serenity type; among webcare's crates it depends on
//! `webcare-domain` only.

pub mod handler;
pub mod rest;
pub mod sender;
pub mod text;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serenity::all::{
    ChannelType, ClientBuilder, Command, CommandOptionType, CreateAllowedMentions, CreateCommand, CreateCommandOption,
    GatewayIntents, Http, HttpBuilder, Permissions,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use webcare_domain::{ConversationKind, Intake, StaffDesk};

pub use sender::{AnnounceError, DiscordSender};

/// What the adapter needs from webcare's configuration (`discord.*`).
#[derive(Clone)]
pub struct DiscordSettings {
    /// `discord.token`. Never printed: `Debug` masks it.
    pub token: String,
    /// `discord.api_url`: where REST calls go instead of `https://discord.com`; the gateway URL then comes from its
    /// `GET /api/v10/gateway`.
    pub api_url: Option<String>,
    /// `discord.support_channels`: server channels where webcare answers customers.
    pub support_channels: Vec<u64>,
    /// `discord.announcement_channels`: where notices are posted once.
    pub announcement_channels: Vec<u64>,
    /// `discord.delete_private_data`: delete a public message holding private data once the case moved to a DM,
    /// where the bot has Manage Messages.
    pub delete_private_data: bool,
    /// `discord.staff_channels`: the webcare team's channels. What is written there is never a customer's;
    /// commands (`/queue`, `!claim 12`, typed as messages) go to `staff_desk`.
    pub staff_channels: Vec<u64>,
    /// Where the team's commands go; without one, staff channels are only posted to.
    pub staff_desk: Option<Arc<dyn StaffDesk>>,
    /// `discord.shards` and `discord.shard_span()`: the bot's gateway shards in all, and the first and last (both
    /// included) this process runs. Discord sends each server's events to one shard, and DMs to shard 0.
    pub shards: u32,
    pub shard_span: (u32, u32),
}

impl std::fmt::Debug for DiscordSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordSettings")
            .field("token", &"********")
            .field("api_url", &self.api_url)
            .field("support_channels", &self.support_channels)
            .field("announcement_channels", &self.announcement_channels)
            .field("delete_private_data", &self.delete_private_data)
            .field("staff_channels", &self.staff_channels)
            .field("staff_desk", &self.staff_desk.is_some())
            .field("shards", &self.shards)
            .field("shard_span", &self.shard_span)
            .finish()
    }
}

/// Why the adapter did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "Discord refused the bot token in `discord.token` (401 Unauthorized); copy the token again from the Bot page of the application in the Discord developer portal"
    )]
    BadToken,
    #[error("could not reach Discord at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Discord answered {what} with an error: {reason}")]
    Api { what: &'static str, reason: String },
}

/// The gateway intents webcare needs. Message Content is privileged: it must be switched on in the developer portal.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
}

/// The slash commands registered at start (globally, so they work in servers and in DMs).
pub fn commands() -> Vec<CreateCommand> {
    vec![
        CreateCommand::new("status")
            .description("Je zaak en de storingen die je volgt / Your case and outages you follow"),
        CreateCommand::new("stop").description("Geen updates meer / No more updates"),
        CreateCommand::new("ticket").description("Een medewerker spreken / Talk to a person").add_option(
            CreateCommandOption::new(CommandOptionType::String, "subject", "Waar gaat het over? / What is it about?")
                .required(false),
        ),
    ]
}

/// The staff desk's commands as guild slash commands, for the servers that hold a staff channel: each takes what
/// follows its name as one optional text option, `args`, as the desk reads a typed command. Only members who may
/// manage messages see them by default, so customers in the same server do not; a server admin gives them to the
/// team's role under Server Settings → Integrations. They work in the staff channels only.
pub fn staff_commands(commands: &[webcare_domain::StaffCommand]) -> Vec<CreateCommand> {
    // Discord's limit for descriptions.
    let line = |s: &str| -> String {
        if s.chars().count() <= 100 { s.to_owned() } else { format!("{}…", s.chars().take(99).collect::<String>()) }
    };
    commands
        .iter()
        .map(|c| {
            let command = CreateCommand::new(c.name)
                .description(line(c.what))
                .default_member_permissions(Permissions::MANAGE_MESSAGES);
            if c.args.is_empty() {
                command
            } else {
                command.add_option(
                    CreateCommandOption::new(CommandOptionType::String, "args", line(c.args)).required(false),
                )
            }
        })
        .collect()
}

/// Starts the Discord bot: checks the token (`GET /users/@me`) and runs the gateway until `shutdown`; the slash
/// commands are registered on the first READY, which names the application. The returned sender delivers outbox rows; the task ends when the gateway client has stopped.
pub async fn start(
    settings: DiscordSettings,
    intake: Arc<dyn Intake>,
    shutdown: CancellationToken,
) -> Result<(DiscordSender, JoinHandle<()>), StartError> {
    let base = settings.api_url.clone().map(|u| u.trim_end_matches('/').to_owned());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| StartError::Unreachable { url: shown_url(&base), reason: e.to_string() })?;
    let make_http = || {
        let mut builder = HttpBuilder::new(&settings.token)
            .client(client.clone())
            .ratelimiter_disabled(true)
            .default_allowed_mentions(CreateAllowedMentions::new());
        if let Some(b) = &base {
            builder = builder.proxy(b.clone());
        }
        builder.build()
    };
    let http = Arc::new(make_http());

    let me = http.get_current_user().await.map_err(|e| start_error(e, "GET /users/@me", &base))?;
    let shared = Arc::new(Shared {
        support: settings.support_channels.iter().copied().collect(),
        staff: settings.staff_channels.iter().copied().collect(),
        desk: settings.staff_desk.clone(),
        announcement_channels: settings.announcement_channels.clone(),
        delete_private_data: settings.delete_private_data,
        intake,
        rest: rest::Rest::new(client.clone(), http.token().to_owned(), base.clone()),
        http: http.clone(),
        bot_id: me.id.get(),
        channels: Mutex::new(HashMap::new()),
        recent: Mutex::new(Recent::default()),
        dm_closed: Mutex::new(HashSet::new()),
        moves: Mutex::new(HashMap::new()),
        commands_registered: std::sync::atomic::AtomicBool::new(false),
        staff_guilds: Mutex::new(HashMap::new()),
    });
    tracing::info!(platform = "discord", bot = %me.name, support_channels = shared.support.len(),
        shards = settings.shards, first_shard = settings.shard_span.0, last_shard = settings.shard_span.1,
        "Discord bot starting");

    // The gateway client gets an `Http` of its own with the same settings; webcare's calls go through `shared`.
    let gateway_http = make_http();
    let mut gateway = ClientBuilder::new_with_http(gateway_http, intents())
        .event_handler(handler::Handler::new(shared.clone()))
        .await
        .map_err(|e| start_error(e, "GET /gateway", &base))?;
    let manager = gateway.shard_manager.clone();
    let (shards, shard_span) = (settings.shards.max(1), settings.shard_span);
    let task = tokio::spawn(async move {
        let stopper = tokio::spawn(async move {
            shutdown.cancelled().await;
            manager.shutdown_all().await;
        });
        // serenity's range is first..last with `last` included.
        let (first, last) = shard_span;
        match gateway.start_shard_range(first..last, shards).await {
            Ok(()) => tracing::info!(platform = "discord", "Discord gateway stopped"),
            Err(e) => tracing::error!(platform = "discord", error = %e,
                "the Discord gateway stopped; if Discord refused the intents, switch on the Message Content intent \
                 on the Bot page of the application in the developer portal"),
        }
        stopper.abort();
    });
    Ok((DiscordSender::new(shared), task))
}

fn shown_url(base: &Option<String>) -> String {
    base.clone().unwrap_or_else(|| "https://discord.com".to_owned())
}

fn start_error(e: serenity::Error, what: &'static str, base: &Option<String>) -> StartError {
    use serenity::http::HttpError;
    match e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) if r.status_code.as_u16() == 401 => {
            StartError::BadToken
        }
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => {
            StartError::Api { what, reason: format!("{} ({}: {})", r.status_code, r.error.code, r.error.message) }
        }
        serenity::Error::Http(HttpError::Request(e)) => {
            StartError::Unreachable { url: shown_url(base), reason: e.without_url().to_string() }
        }
        other => StartError::Api { what, reason: other.to_string() },
    }
}

/// What the adapter knows about a guild channel or thread, from GUILD_CREATE, THREAD_CREATE or `GET /channels`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelInfo {
    pub kind: ChannelType,
    pub parent: Option<u64>,
    /// The bot's permissions there, when GUILD_CREATE told enough to compute them.
    pub bot_permissions: Option<Permissions>,
}

/// Who wrote a recent message: MESSAGE_DELETE names only the message, and webcare needs its author.
#[derive(Debug, Clone)]
pub(crate) struct Author {
    pub user_id: String,
    pub user_name: String,
    pub chat_kind: ConversationKind,
}

/// The authors of the last [`Recent::CAPACITY`] customer messages, oldest forgotten first.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    order: VecDeque<u64>,
    authors: HashMap<u64, Author>,
}

impl Recent {
    const CAPACITY: usize = 50_000;

    pub fn insert(&mut self, message: u64, author: Author) {
        if self.authors.insert(message, author).is_none() {
            self.order.push_back(message);
        }
        while self.order.len() > Self::CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.authors.remove(&old);
            }
        }
    }

    pub fn get(&self, message: u64) -> Option<Author> {
        self.authors.get(&message).cloned()
    }
}

/// State the gateway handler and the sender share. std Mutexes: nothing async happens while one is held.
pub(crate) struct Shared {
    pub support: HashSet<u64>,
    /// The team's channels, and where commands written there go.
    pub staff: HashSet<u64>,
    pub desk: Option<Arc<dyn StaffDesk>>,
    pub announcement_channels: Vec<u64>,
    pub delete_private_data: bool,
    pub intake: Arc<dyn Intake>,
    pub rest: rest::Rest,
    pub http: Arc<Http>,
    /// The bot's own user id: its own messages are reported as a bot's.
    pub bot_id: u64,
    pub channels: Mutex<HashMap<u64, ChannelInfo>>,
    pub recent: Mutex<Recent>,
    /// Users whose DMs answered 50007: the next private case goes to a private thread at once, so a closed DM
    /// costs one invalid request, not one per case.
    pub dm_closed: Mutex<HashSet<u64>>,
    /// Private moves in progress, by outbox row, so a retried row repeats no step that succeeded.
    pub moves: Mutex<HashMap<webcare_domain::OutboxId, sender::Progress>>,
    /// The servers that hold a staff channel, and whether the desk's commands are registered there (on their
    /// GUILD_CREATE, or on READY when that came later).
    pub staff_guilds: Mutex<HashMap<u64, bool>>,
    /// Slash commands are registered on the first READY (which names the application), once per process.
    pub commands_registered: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Registers the slash commands globally, the first time the gateway is ready.
    pub async fn register_commands(&self, application: serenity::all::ApplicationId) {
        use std::sync::atomic::Ordering;
        self.http.set_application_id(application);
        if self.commands_registered.swap(true, Ordering::AcqRel) {
            return;
        }
        match Command::set_global_commands(&self.http, commands()).await {
            Ok(registered) => {
                tracing::info!(platform = "discord", commands = registered.len(), "slash commands registered")
            }
            Err(e) => {
                // Commands registered before keep working; the next READY tries again.
                self.commands_registered.store(false, Ordering::Release);
                tracing::warn!(platform = "discord", error = %e, "could not register the slash commands");
            }
        }
        self.register_staff_commands().await;
    }

    /// Registers the staff desk's commands in each server that holds a staff channel and has not got them yet,
    /// once the application is known (READY). A failure is logged; the next GUILD_CREATE or READY tries again.
    pub async fn register_staff_commands(&self) {
        let Some(desk) = &self.desk else { return };
        if self.http.application_id().is_none() {
            return;
        }
        let todo: Vec<u64> = {
            let mut guilds = self.staff_guilds.lock().expect("the staff guild map is never poisoned");
            guilds
                .iter_mut()
                .filter(|(_, done)| !**done)
                .map(|(id, done)| {
                    *done = true;
                    *id
                })
                .collect()
        };
        let commands = staff_commands(&desk.commands());
        for guild in todo {
            match serenity::all::GuildId::new(guild).set_commands(&self.http, commands.clone()).await {
                Ok(registered) => tracing::info!(
                    platform = "discord",
                    guild,
                    commands = registered.len(),
                    "staff commands registered"
                ),
                Err(e) => {
                    self.staff_guilds.lock().expect("the staff guild map is never poisoned").insert(guild, false);
                    tracing::warn!(platform = "discord", guild, error = %e, "could not register the staff commands");
                }
            }
        }
    }

    pub fn channel(&self, id: u64) -> Option<ChannelInfo> {
        self.channels.lock().expect("the channel map is never poisoned").get(&id).copied()
    }

    pub fn set_channel(&self, id: u64, info: ChannelInfo) {
        self.channels.lock().expect("the channel map is never poisoned").insert(id, info);
    }

    /// Whether the bot may do `permission` in a channel: `None` when it is not known.
    pub fn may(&self, channel: u64, permission: Permissions) -> Option<bool> {
        let info = self.channel(channel)?;
        let perms = match info.bot_permissions {
            Some(p) => p,
            None => self.channel(info.parent?)?.bot_permissions?,
        };
        Some(perms.contains(permission) || perms.contains(Permissions::ADMINISTRATOR))
    }

    /// Remembers that the bot may not do `permission` in a channel (Discord answered 50013).
    pub fn forbid(&self, channel: u64, permission: Permissions) {
        let mut channels = self.channels.lock().expect("the channel map is never poisoned");
        let info = channels.entry(channel).or_insert(ChannelInfo {
            kind: ChannelType::Text,
            parent: None,
            bot_permissions: None,
        });
        let perms = info.bot_permissions.unwrap_or(Permissions::all() - Permissions::ADMINISTRATOR);
        info.bot_permissions = Some(perms - permission);
    }
}
