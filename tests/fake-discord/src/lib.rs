//! A faithful fake of Discord's REST API and WebSocket gateway for webcare's tests and benchmarks. It serves the
//! API under `/api/v10` and the gateway at `ws://127.0.0.1:PORT/gateway` on 127.0.0.1, so the real adapter, through
//! serenity (with `HttpBuilder::proxy(api_url)`), talks to it as to discord.com, and it gives the test a user side:
//! guilds with text and announcement channels and roles, people and other bots who post, DM the bot, edit and
//! delete, run slash commands and press buttons, and a way to read back what the bot sent, edited, deleted and
//! crossposted and how it answered interactions. Its payloads follow Discord's API documentation, not any client
//! library's types (a conformance test checks that serenity's model parses every one of them); Discord's rate
//! limits and faults (5xx, 429, 50007, slow answers, gateway drops with close codes) are injected and counted so a
//! test can show the bot obeys `retry_after`, stays inside the limits and sends nothing twice.
//!
//! ```no_run
//! # async fn demo() {
//! use webcare_fake_discord::{FakeDiscord, NewGuild, NewUser};
//! let dc = FakeDiscord::start().await;
//! let guild = dc.create_guild(NewGuild::named("Ziggo").bot_can_manage_messages());
//! let support = dc.create_text_channel(guild, "support");
//! let alice = dc.create_user(NewUser::named("alice"));
//! // point serenity at dc.api_url() with dc.token(), wait until it is connected, then:
//! dc.post_text(alice, support, "storing in Utrecht?");
//! # }
//! ```

// The GUILD_CREATE payload is one large `json!` literal, deeper than the default macro recursion allows.
#![recursion_limit = "256"]

mod clock;
mod config;
mod gateway;
mod payload;
mod ratelimit;
mod rest;
mod server;
mod types;
mod users;
mod world;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use clock::{DISCORD_EPOCH_MS, iso8601, snowflake_ms};
pub use config::{Config, Limit, RateLimits};
pub use payload::MAX_CONTENT_CHARS;
pub use rest::{ApiError, routes};
pub use types::{
    Attachment, BotEvent, BotMessage, ChannelId, Fault, GuildId, Identify, InteractionId, InteractionRecord, MessageId,
    NewGuild, NewUser, OptionValue, Pings, Posted, RoleId, Scope, SlashCommand, Started, Stats, UserId, UserMessage,
    intents, message_flags, permissions,
};

use server::Shared;
use world::{ConnCommand, World, channel_type};

/// A running fake. Dropping it (or calling [`FakeDiscord::shutdown`]) stops the server and closes its HTTP and
/// gateway connections.
pub struct FakeDiscord {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeDiscord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDiscord").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// A bot token in Discord's shape: the base64 of the bot's id, a timestamp part and an HMAC part.
fn make_token(app_id: u64, port: u16) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = app_id.to_string().into_bytes();
    let mut id = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            id.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    format!("{id}.GfAkEd.FakeDiscordTokenForWebcareTests_{port:05}")
}

impl FakeDiscord {
    /// Starts a fake with [`Config::default`] on a free port of 127.0.0.1.
    pub async fn start() -> FakeDiscord {
        Self::start_with(Config::default()).await
    }

    /// Starts a fake with the given configuration on a free port of 127.0.0.1.
    pub async fn start_with(config: Config) -> FakeDiscord {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address of the listener");
        let token = make_token(config.application_id, addr.port());
        let shared = Arc::new(Shared::new(World::new(config, token, addr.port())));
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![tokio::spawn(server::serve(listener, shared.clone(), stopped))];
        FakeDiscord { shared, addr, stop, tasks }
    }

    /// The base to give serenity's `HttpBuilder::proxy`, e.g. `http://127.0.0.1:41234`: serenity replaces
    /// `https://discord.com` with it, so requests go to `<api_url>/api/v10/...`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `<api_url>/api/v10`.
    pub fn rest_url(&self) -> String {
        format!("{}/api/v10", self.api_url())
    }

    /// The gateway URL `GET /gateway` answers, `ws://127.0.0.1:PORT/gateway`.
    pub fn gateway_url(&self) -> String {
        format!("ws://{}/gateway", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The only bot token the fake accepts (REST as `Authorization: Bot <token>`, gateway with or without `Bot `).
    pub fn token(&self) -> String {
        self.shared.read(|w| w.token.clone())
    }

    pub fn application_id(&self) -> u64 {
        self.shared.read(|w| w.config.application_id)
    }

    /// The bot's user id (the same as the application id, as on Discord).
    pub fn bot_user_id(&self) -> UserId {
        UserId(self.shared.read(|w| w.bot_id))
    }

    /// Stops the server and waits until its tasks have ended.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        // Gateway connections run in tasks of their own (spawned by the WebSocket upgrade); they end on the stop
        // signal, and the world forgets each one as it ends.
        let shared = self.shared.clone();
        let mut changes = shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while shared.read(|w| !w.conns.is_empty()) {
            tokio::select! {
                r = changes.changed() => if r.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }

    // ------------------------------------------------------------ the world

    pub fn create_user(&self, user: NewUser) -> UserId {
        self.shared.write(|w| w.create_user(user))
    }

    /// A guild the bot is in (its owner is created unless given); a connected bot gets GUILD_CREATE.
    pub fn create_guild(&self, guild: NewGuild) -> GuildId {
        self.shared.write(|w| w.create_guild(guild))
    }

    pub fn create_text_channel(&self, guild: GuildId, name: &str) -> ChannelId {
        self.shared.write(|w| w.create_channel(guild, name, channel_type::GUILD_TEXT)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An announcement (news) channel, type 5: the bot's posts there can be crossposted.
    pub fn create_announcement_channel(&self, guild: GuildId, name: &str) -> ChannelId {
        self.shared
            .write(|w| w.create_channel(guild, name, channel_type::GUILD_ANNOUNCEMENT))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn create_role(&self, guild: GuildId, name: &str, permissions: u64) -> RoleId {
        self.shared.write(|w| w.create_role(guild, name, permissions)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Makes a user a member of a guild with these roles (users also join by posting).
    pub fn add_member(&self, guild: GuildId, user: UserId, roles: &[RoleId]) {
        self.shared.write(|w| w.add_member(guild, user, roles)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Opens or closes a user's DMs to the bot; sends to a closed DM answer 403 code 50007.
    pub fn set_dms_open(&self, user: UserId, open: bool) {
        self.shared.write(|w| match w.users.get_mut(&user.0) {
            Some(u) => u.user.dms_open = open,
            None => panic!("no user {user}"),
        })
    }

    /// Sets the permissions of the bot's role in a guild, e.g. to add or take away Manage Messages.
    pub fn set_bot_permissions(&self, guild: GuildId, permissions: u64) {
        self.shared.write(|w| {
            let g = w.guilds.get_mut(&guild.0).unwrap_or_else(|| panic!("no guild {guild}"));
            for r in g.roles.iter_mut().filter(|r| r.managed_by_bot) {
                r.permissions = permissions;
            }
        })
    }

    /// The DM channel between a user and the bot (opened if neither side has yet).
    pub fn dm_channel(&self, user: UserId) -> ChannelId {
        ChannelId(self.shared.write(|w| w.dm_channel(user.0)))
    }

    // ------------------------------------------------------------ what users do

    /// A user posts text in a guild channel, thread or their DM with the bot. Write mentions as Discord clients do:
    /// `<@user>`, `<@&role>`, `@everyone`.
    pub fn post_text(&self, from: UserId, channel: ChannelId, text: &str) -> Posted {
        self.post(from, channel, UserMessage::text(text))
    }

    pub fn post(&self, from: UserId, channel: ChannelId, message: UserMessage) -> Posted {
        self.shared.write(|w| w.user_posts(from, channel, message)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A user writes to the bot in their DM.
    pub fn dm_bot(&self, from: UserId, text: &str) -> Posted {
        let channel = self.dm_channel(from);
        self.post(from, channel, UserMessage::text(text))
    }

    /// A user edits their message; the bot gets MESSAGE_UPDATE.
    pub fn edit(&self, from: UserId, channel: ChannelId, message: MessageId, text: &str) {
        self.shared.write(|w| w.user_edits(from, channel, message, text)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A user deletes their message; the bot gets MESSAGE_DELETE.
    pub fn delete(&self, from: UserId, channel: ChannelId, message: MessageId) {
        self.shared.write(|w| w.user_deletes(from, channel, message)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A user runs a slash command the bot registered; the bot gets INTERACTION_CREATE (type 2). Panics if the
    /// command is not registered where the channel is, or a required option is missing, as Discord's client
    /// would not let the user run it.
    pub fn run_command(&self, from: UserId, channel: ChannelId, command: SlashCommand) -> Started {
        let now = tokio::time::Instant::now();
        self.shared.write(|w| w.run_command(from, channel, command, now)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A user presses a button (by `custom_id`) on one of the bot's messages; the bot gets INTERACTION_CREATE
    /// (type 3). Panics if the message has no such button.
    pub fn press_button(&self, from: UserId, channel: ChannelId, message: MessageId, custom_id: &str) -> Started {
        let now = tokio::time::Instant::now();
        self.shared.write(|w| w.press_button(from, channel, message, custom_id, now)).unwrap_or_else(|e| panic!("{e}"))
    }

    // ------------------------------------------------------------ what the bot did

    /// The bot's messages in a channel in the order sent, in their current state (deleted and ephemeral ones
    /// included, marked).
    pub fn bot_messages(&self, channel: ChannelId) -> Vec<BotMessage> {
        self.shared.read(|w| {
            w.messages
                .range((channel.0, 0)..=(channel.0, u64::MAX))
                .filter_map(|((c, id), _)| w.bot_message(*c, *id))
                .collect()
        })
    }

    /// The bot's messages that are still visible in a channel.
    pub fn visible_bot_messages(&self, channel: ChannelId) -> Vec<BotMessage> {
        self.bot_messages(channel)
            .into_iter()
            .filter(|m| !m.deleted && m.flags & message_flags::EPHEMERAL == 0)
            .collect()
    }

    /// Every message the bot sent anywhere, by channel and then in order.
    pub fn all_bot_messages(&self) -> Vec<BotMessage> {
        self.shared.read(|w| w.messages.keys().filter_map(|(c, id)| w.bot_message(*c, *id)).collect())
    }

    pub fn bot_message(&self, channel: ChannelId, message: MessageId) -> Option<BotMessage> {
        self.shared.read(|w| w.bot_message(channel.0, message.0))
    }

    /// Any message (a user's or the bot's) as the API returns it.
    pub fn message_json(&self, channel: ChannelId, message: MessageId) -> Option<Value> {
        self.shared.read(|w| w.messages.get(&(channel.0, message.0)).map(|m| m.json.clone()))
    }

    /// Whether a message (the bot's or a user's) was deleted.
    pub fn is_deleted(&self, channel: ChannelId, message: MessageId) -> bool {
        self.shared.read(|w| w.messages.get(&(channel.0, message.0)).is_some_and(|m| m.deleted))
    }

    /// Threads started in a channel, oldest first.
    pub fn threads_of(&self, parent: ChannelId) -> Vec<ChannelId> {
        self.shared
            .read(|w| w.channels.values().filter(|c| c.parent_id == Some(parent.0)).map(|c| ChannelId(c.id)).collect())
    }

    /// The members of a thread (the bot included).
    pub fn thread_members(&self, thread: ChannelId) -> Vec<UserId> {
        self.shared.read(|w| {
            w.channels
                .get(&thread.0)
                .and_then(|c| c.thread.as_ref())
                .map(|t| t.members.iter().map(|u| UserId(*u)).collect())
                .unwrap_or_default()
        })
    }

    /// The DM channel the bot has with a user, if either side opened one.
    pub fn existing_dm_channel(&self, user: UserId) -> Option<ChannelId> {
        self.shared.read(|w| w.dms.get(&user.0).map(|c| ChannelId(*c)))
    }

    /// An interaction and how the bot answered it.
    pub fn interaction(&self, id: InteractionId) -> Option<InteractionRecord> {
        self.shared.read(|w| w.interactions.get(&id.0).map(|i| i.record.clone()))
    }

    /// The application commands the bot registered, globally (`None`) or in a guild, as the API returns them.
    pub fn commands(&self, guild: Option<GuildId>) -> Vec<Value> {
        self.shared.read(|w| {
            w.commands
                .get(&guild.map(|g| g.0))
                .map(|m| m.values().map(|c| c.json.clone()).collect())
                .unwrap_or_default()
        })
    }

    /// Everything the bot did, in order.
    pub fn events(&self) -> Vec<BotEvent> {
        self.shared.read(|w| w.events.clone())
    }

    /// Contents the bot delivered more than once to the same channel, with how often: a sign of a duplicate send.
    pub fn duplicate_contents(&self) -> Vec<(ChannelId, String, usize)> {
        let mut seen = std::collections::BTreeMap::<(u64, String), usize>::new();
        for m in self.all_bot_messages() {
            let key = if m.content.is_empty() { json!(m.embeds).to_string() } else { m.content.clone() };
            *seen.entry((m.channel_id.0, key)).or_default() += 1;
        }
        seen.into_iter().filter(|(_, n)| *n > 1).map(|((c, t), n)| (ChannelId(c), t, n)).collect()
    }

    /// Messages created, channels that received at least one, and 429s, without copying the statistics.
    pub fn reach(&self) -> (u64, usize, u64) {
        self.shared.read(|w| {
            let s = &w.stats;
            (s.deliveries_per_channel.values().sum(), s.deliveries_per_channel.len(), s.rate_limited)
        })
    }

    pub fn stats(&self) -> Stats {
        self.shared.read(|w| w.stats.clone())
    }

    /// Every IDENTIFY the bot sent, in order (token redacted).
    pub fn identifies(&self) -> Vec<Identify> {
        self.shared.read(|w| w.identifies.clone())
    }

    /// Gateway connections with an identified or resumed session right now.
    pub fn ready_connections(&self) -> usize {
        self.shared.read(|w| w.conns.values().filter(|c| c.session.is_some()).count())
    }

    /// Open gateway connections, identified or not.
    pub fn open_connections(&self) -> usize {
        self.shared.read(|w| w.conns.len())
    }

    /// Waits until `condition` holds, re-checking after every change to the fake; `false` if `timeout`
    /// (wall-clock) passed first. Use it instead of sleeping, e.g.
    /// `dc.wait_until(Duration::from_secs(5), || dc.bot_messages(channel).len() == 2).await`.
    pub fn wait_until<'a>(
        &'a self,
        timeout: Duration,
        mut condition: impl FnMut() -> bool + 'a,
    ) -> impl Future<Output = bool> + 'a {
        let mut changes = self.shared.changed.subscribe();
        async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                changes.borrow_and_update();
                if condition() {
                    return true;
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return condition() },
                    _ = tokio::time::sleep_until(deadline) => return condition(),
                }
            }
        }
    }

    // ------------------------------------------------------------ faults

    /// The next `times` calls of `route` (one of [`routes`], e.g. [`routes::CREATE_MESSAGE`]) answer with `fault`
    /// instead of their result.
    pub fn inject(&self, route: &str, times: usize, fault: Fault) {
        let canonical = routes::ALL
            .iter()
            .find(|r| **r == route)
            .unwrap_or_else(|| panic!("the fake does not serve {route}; use webcare_fake_discord::routes"));
        self.shared
            .write(|w| w.faults.entry(canonical.to_string()).or_default().extend(std::iter::repeat_n(fault, times)))
    }

    /// Drops faults not yet used.
    pub fn clear_faults(&self) {
        self.shared.write(|w| w.faults.clear())
    }

    fn command_all(&self, command: ConnCommand) {
        self.shared.write(|w| {
            for c in w.conns.values_mut() {
                c.commands.push_back(command.clone());
            }
        })
    }

    /// Closes every gateway connection with `close_code` (e.g. 4000: the client may resume; 4009: the session
    /// timed out and the client must identify again; 4004: authentication failed), or with `None` drops the TCP
    /// connection without a close frame (the session stays resumable).
    pub fn drop_gateway(&self, close_code: Option<u16>) {
        self.command_all(ConnCommand::Close(close_code))
    }

    /// Sends op 7 Reconnect: the client should reconnect and resume.
    pub fn send_reconnect(&self) {
        self.command_all(ConnCommand::Send(json!({"op": 7, "d": null, "s": null, "t": null}).to_string()))
    }

    /// Sends op 1 Heartbeat: the client should heartbeat at once.
    pub fn request_heartbeat(&self) {
        self.command_all(ConnCommand::Send(json!({"op": 1, "d": null, "s": null, "t": null}).to_string()))
    }

    /// Sends op 9 Invalid Session on every connection. With `resumable: false` the sessions end, so the client
    /// must identify again.
    pub fn invalidate_sessions(&self, resumable: bool) {
        self.shared.write(|w| {
            if !resumable {
                for s in w.sessions.values_mut() {
                    s.valid = false;
                }
            }
            let frame = json!({"op": 9, "d": resumable, "s": null, "t": null}).to_string();
            for c in w.conns.values_mut() {
                c.commands.push_back(ConnCommand::Send(frame.clone()));
            }
        })
    }

    /// Forgets every session without telling connected clients: a later RESUME gets op 9 Invalid Session.
    pub fn expire_sessions(&self) {
        self.shared.write(|w| {
            for s in w.sessions.values_mut() {
                s.valid = false;
            }
        })
    }
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        // Aborting the server task drops its set of connection tasks, which aborts them too; gateway connections
        // see the stop signal and end themselves.
        for task in &self.tasks {
            task.abort();
        }
    }
}
