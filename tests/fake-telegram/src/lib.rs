//! A faithful fake of the Telegram Bot API server for webcare's tests and benchmarks. It speaks the Bot API over
//! HTTP on 127.0.0.1 (so the real adapter, through teloxide, talks to it exactly as to api.telegram.org) and gives
//! the test a user side: people who write in private chats and groups, press inline buttons, block the bot, and a
//! way to read back what the bot sent, edited and deleted. Its answers follow the Bot API documentation, not any
//! client library's types; faults and Telegram's rate limits are injected and counted so that a test can show the
//! bot obeys `retry_after`, stays inside the limits and sends nothing twice.
//!
//! ```no_run
//! # async fn demo() {
//! use webcare_fake_telegram::{FakeTelegram, NewUser};
//! let tg = FakeTelegram::start().await;
//! let alice = tg.create_user(NewUser::named("Alice").language("nl"));
//! let chat = tg.private_chat(alice);
//! tg.send_text(alice, chat, "/start");
//! // point the bot at tg.url() with tg.token(), then read tg.bot_messages(chat)
//! # }
//! ```

mod api;
mod config;
mod entities;
mod html;
mod params;
mod ratelimit;
mod server;
mod types;
mod webhook;
mod world;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use api::{MAX_TEXT_CHARS, METHODS};
pub use config::{Config, Limit, RateLimits};
pub use types::{
    BotEvent, BotMembership, BotMessage, CallbackAnswer, ChatId, Content, Fault, NewUser, Posted, Stats, UserId,
    UserMessage,
};

use server::Shared;
use world::{ChatKind, World};

/// A running fake server. Dropping it (or calling [`FakeTelegram::shutdown`]) stops the server, closes its
/// connections, ends waiting long polls and stops webhook delivery.
pub struct FakeTelegram {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for FakeTelegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTelegram").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl FakeTelegram {
    /// Starts a fake with [`Config::default`] on a free port of 127.0.0.1.
    pub async fn start() -> FakeTelegram {
        Self::start_with(Config::default()).await
    }

    /// Starts a fake with the given configuration on a free port of 127.0.0.1.
    pub async fn start_with(config: Config) -> FakeTelegram {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address of the listener");
        let token = format!("{}:AAFakeTelegramTokenForWebcareTests_{}", config.bot_id, addr.port());
        let shared = Arc::new(Shared::new(token, World::new(config)));
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(server::serve(listener, shared.clone(), stopped.clone())),
            tokio::spawn(webhook::run(shared.clone(), stopped)),
        ];
        FakeTelegram { shared, addr, stop, tasks }
    }

    /// The command menu the bot set for a scope (`"default"`, `"chat:<id>"`, ...) and language (`""` for every
    /// language without its own), as (command, description); empty when none is set.
    pub fn commands(&self, scope: &str, language: &str) -> Vec<(String, String)> {
        self.shared.read(|w| w.commands.get(&(scope.to_owned(), language.to_owned())).cloned().unwrap_or_default())
    }

    /// The server's base URL, e.g. `http://127.0.0.1:41234`; methods live under `/bot<token>/<method>`
    /// and files under `/file/bot<token>/<file_path>`, as on api.telegram.org.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The only token the fake accepts; any other answers 401 Unauthorized.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// `<url>/bot<token>/<method>`.
    pub fn method_url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.url(), self.token())
    }

    pub fn bot_id(&self) -> i64 {
        self.shared.read(|w| w.config.bot_id)
    }

    pub fn bot_username(&self) -> String {
        self.shared.read(|w| w.config.bot_username.clone())
    }

    /// Stops the server and waits until its tasks have ended.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    // ------------------------------------------------------------ the world

    pub fn create_user(&self, user: NewUser) -> UserId {
        self.shared.write(|w| w.create_user(user))
    }

    /// The private chat between a user and the bot; the user has started the bot.
    pub fn private_chat(&self, user: UserId) -> ChatId {
        self.shared.write(|w| w.private_chat(user)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A basic group. Membership of users is not tracked: any user may write in any group.
    pub fn create_group(&self, title: &str, bot: BotMembership) -> ChatId {
        self.shared.write(|w| w.create_group(title, ChatKind::Group, bot))
    }

    pub fn create_supergroup(&self, title: &str, bot: BotMembership) -> ChatId {
        self.shared.write(|w| w.create_group(title, ChatKind::Supergroup, bot))
    }

    /// Changes where the bot stands in a group, e.g. makes it an administrator or removes it.
    pub fn set_bot_membership(&self, chat: ChatId, bot: BotMembership) {
        self.shared.write(|w| match w.chats.get_mut(&chat.0) {
            Some(c) if c.kind != ChatKind::Private => c.bot = bot,
            _ => panic!("no group {}", chat.0),
        })
    }

    /// Upgrades a basic group to a supergroup, as `by` would in a client; returns the supergroup's id.
    /// Sends to the old id then answer 400 with `parameters.migrate_to_chat_id`.
    pub fn migrate_to_supergroup(&self, group: ChatId, by: UserId) -> ChatId {
        self.shared.write(|w| w.migrate(group, by)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The user blocks the bot: sends to them answer 403 "Forbidden: bot was blocked by the user",
    /// and the bot gets a `my_chat_member` update.
    pub fn block_bot(&self, user: UserId) {
        self.shared.write(|w| w.set_blocked(user, true)).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn unblock_bot(&self, user: UserId) {
        self.shared.write(|w| w.set_blocked(user, false)).unwrap_or_else(|e| panic!("{e}"))
    }

    // ------------------------------------------------------------ what users do

    /// A user writes text; commands, mentions, hashtags and links get their entities.
    pub fn send_text(&self, from: UserId, chat: ChatId, text: &str) -> Posted {
        self.send(from, chat, UserMessage::text(text))
    }

    pub fn send(&self, from: UserId, chat: ChatId, message: UserMessage) -> Posted {
        self.shared.write(|w| w.user_posts(from, chat, message)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A user edits their own text message (or a caption); the bot gets an `edited_message` update.
    pub fn edit_text(&self, from: UserId, chat: ChatId, message_id: i64, text: &str) -> Posted {
        self.shared.write(|w| w.user_edits(from, chat, message_id, text)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A user presses the inline button with this `callback_data` under a bot message; returns the
    /// callback query id. Panics if the message has no such button.
    pub fn press_button(&self, from: UserId, chat: ChatId, message_id: i64, callback_data: &str) -> String {
        self.shared.write(|w| w.press_button(from, chat, message_id, callback_data)).unwrap_or_else(|e| panic!("{e}"))
    }

    // ------------------------------------------------------------ what the bot did

    /// How the bot answered a callback query, if it did.
    pub fn callback_answer(&self, callback_query_id: &str) -> Option<CallbackAnswer> {
        self.shared.read(|w| w.callbacks.get(callback_query_id).and_then(|c| c.answered.clone()))
    }

    /// The bot's messages in a chat in the order sent, in their current state (deleted ones included, marked).
    pub fn bot_messages(&self, chat: ChatId) -> Vec<BotMessage> {
        self.shared.read(|w| {
            w.messages
                .range((chat.0, i64::MIN)..=(chat.0, i64::MAX))
                .filter_map(|((c, id), _)| w.bot_message(*c, *id))
                .collect()
        })
    }

    /// The bot's messages that are still visible in a chat.
    pub fn visible_bot_messages(&self, chat: ChatId) -> Vec<BotMessage> {
        self.bot_messages(chat).into_iter().filter(|m| !m.deleted).collect()
    }

    /// Whether a message (the bot's or a user's) was deleted.
    pub fn is_deleted(&self, chat: ChatId, message_id: i64) -> bool {
        self.shared.read(|w| w.messages.get(&(chat.0, message_id)).is_some_and(|m| m.deleted))
    }

    /// Everything the bot did, in order.
    pub fn events(&self) -> Vec<BotEvent> {
        self.shared.read(|w| w.events.clone())
    }

    /// The chat actions (`typing`, …) the bot sent to a chat.
    pub fn chat_actions(&self, chat: ChatId) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                BotEvent::ChatAction { chat_id, action } if chat_id == chat => Some(action),
                _ => None,
            })
            .collect()
    }

    /// Texts the bot delivered more than once to the same chat, with how often: a sign of a duplicate send.
    pub fn duplicate_texts(&self) -> Vec<(ChatId, String, usize)> {
        let mut seen = std::collections::BTreeMap::<(i64, String), usize>::new();
        self.shared.read(|w| {
            for rec in w.messages.values().filter(|m| m.bot.is_some()) {
                let chat = rec.json["chat"]["id"].as_i64().unwrap_or_default();
                let text = rec.json["text"].as_str().unwrap_or_default().to_string();
                *seen.entry((chat, text)).or_default() += 1;
            }
        });
        seen.into_iter().filter(|(_, n)| *n > 1).map(|((c, t), n)| (ChatId(c), t, n)).collect()
    }

    /// Messages delivered, chats that received at least one, and 429s, without copying the statistics: cheap
    /// enough to ask every few milliseconds during a broadcast of 100,000.
    pub fn reach(&self) -> (u64, usize, u64) {
        self.shared.read(|w| (w.stats.sends, w.stats.deliveries_per_chat.len(), w.stats.rate_limited))
    }

    pub fn stats(&self) -> Stats {
        self.shared.read(|w| w.stats.clone())
    }

    /// getUpdates calls in progress (a long poll waiting, or one being answered).
    pub fn polls_in_progress(&self) -> usize {
        self.shared.read(|w| w.waiting_polls)
    }

    /// Updates waiting to be fetched or delivered.
    pub fn pending_updates(&self) -> usize {
        self.shared.read(|w| w.updates.len())
    }

    /// Waits until `condition` holds, re-checking after every change to the fake; `false` if `timeout`
    /// (wall-clock) passed first. Use it instead of sleeping, e.g.
    /// `tg.wait_until(Duration::from_secs(5), || tg.bot_messages(chat).len() == 2).await`.
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

    /// The next `times` calls of `method` (any spelling) answer with `fault` instead of their result.
    pub fn inject(&self, method: &str, times: usize, fault: Fault) {
        let canonical = METHODS
            .iter()
            .find(|m| m.eq_ignore_ascii_case(method))
            .unwrap_or_else(|| panic!("the fake does not serve {method}"));
        self.shared.write(|w| {
            let queue = w.faults.entry(canonical.to_string()).or_default();
            queue.extend(std::iter::repeat_n(fault, times));
        })
    }

    /// Drops faults not yet used.
    pub fn clear_faults(&self) {
        self.shared.write(|w| w.faults.clear())
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        // Aborting the server task drops its set of connection tasks, which aborts them too.
        for task in &self.tasks {
            task.abort();
        }
    }
}
