//! The Telegram adapter: turns Bot API updates into webcare inbound events and outbox rows into Bot API calls.
//!
//! It talks to the Bot API through teloxide's `Bot` requests, not its dispatcher: webcare drives `getUpdates`
//! itself so that the polling offset moves past an update only after [`Intake::receive`] stored it, and a crash
//! at any point loses nothing (an update not yet confirmed comes again, and the intake stores it once). In
//! webhook mode ([`TelegramSettings::webhook_url`]) an axum router answers Telegram's POSTs, checks the secret
//! header, and answers 2xx only once the update is stored, so Telegram redelivers anything webcare did not take.
//!
//! Architecture invariant: the only crate that sees a teloxide type. It depends on `webcare-domain` for the
//! ports and on no other webcare crate: it knows nothing of storage, the bridge or the web side.
//!
//! Use: [`Telegram::connect`] (checks the token with `getMe`), hand [`Telegram::sender`] to the delivery engine,
//! then [`Telegram::start`] with the intake once that exists.

mod inbound;
mod outbound;
mod polling;
mod webhook;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::{AllowedUpdate, BotCommand, BotCommandScope, Recipient};
use teloxide::{ApiError, RequestError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use webcare_domain::{Intake, StaffDesk};

pub use inbound::{BotIdentity, Translated, translate};
pub use outbound::{MAX_MESSAGE_LEN, TelegramSender, escape_html, map_error, split_text};

/// The header Telegram sends with every webhook POST when `setWebhook` got a `secret_token`.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// How the adapter runs; the binary fills it from the `telegram.*` configuration keys.
#[derive(Clone)]
pub struct TelegramSettings {
    /// `telegram.token`, from @BotFather. Never printed: `Debug` masks it.
    pub token: String,
    /// `telegram.api_url`: every request goes here (Telegram's, a self-hosted telegram-bot-api, a fake).
    pub api_url: String,
    /// `telegram.webhook_url`: the public URL Telegram posts updates to; long polling when `None`.
    pub webhook_url: Option<String>,
    /// `telegram.delete_private_data`: delete a public group message that holds private data, where the bot is an
    /// administrator allowed to delete messages.
    pub delete_private_data: bool,
    /// How long one `getUpdates` call waits for updates (Telegram allows up to 50 s).
    pub poll_timeout: Duration,
    /// `telegram.staff_chats`: the webcare team's groups. Nothing written there is taken for a customer's: commands
    /// go to the staff desk (see [`Telegram::with_staff_desk`]), everything else is confirmed and dropped.
    pub staff_chats: Vec<i64>,
}

impl TelegramSettings {
    /// Long polling against `api_url` with the defaults.
    pub fn new(token: impl Into<String>, api_url: impl Into<String>) -> Self {
        TelegramSettings {
            token: token.into(),
            api_url: api_url.into(),
            webhook_url: None,
            delete_private_data: true,
            poll_timeout: Duration::from_secs(25),
            staff_chats: Vec::new(),
        }
    }
}

impl fmt::Debug for TelegramSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramSettings")
            .field("token", &"***")
            .field("api_url", &self.api_url)
            .field("webhook_url", &self.webhook_url)
            .field("delete_private_data", &self.delete_private_data)
            .field("poll_timeout", &self.poll_timeout)
            .field("staff_chats", &self.staff_chats)
            .finish()
    }
}

/// Why the bot could not start. Every message names the configuration key to look at and never holds the token.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "telegram.token was refused by the Bot API at {api_url} (401 Unauthorized): the token is wrong or was \
         revoked; copy the bot's current token from @BotFather"
    )]
    Unauthorized { api_url: String },
    #[error("telegram.api_url `{0}` is not a valid http:// or https:// URL")]
    BadApiUrl(String),
    #[error("telegram.webhook_url `{url}` is not usable: {reason}")]
    BadWebhookUrl { url: String, reason: String },
    #[error("the Telegram Bot API at {api_url} (telegram.api_url) did not answer `{method}`: {reason}")]
    Unavailable { api_url: String, method: &'static str, reason: String },
}

/// A connected bot: the token works and the bot knows its own name. Clones share the sender's state, so a poller
/// that stops and starts again (another instance held the polling lease meanwhile) is the same bot.
#[derive(Clone)]
pub struct Telegram {
    bot: Bot,
    me: BotIdentity,
    settings: TelegramSettings,
    sender: TelegramSender,
    /// Where commands written in a staff chat go; without one, staff chats are only posted to.
    desk: Option<Arc<dyn StaffDesk>>,
}

impl fmt::Debug for Telegram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telegram").field("me", &self.me).field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// The running bot.
pub struct Running {
    /// Polling: the `getUpdates` loop, which ends after `shutdown` once the handled updates are confirmed.
    /// Webhook mode: ends at `shutdown` (requests in flight belong to the HTTP server that mounted the router).
    pub task: JoinHandle<()>,
    /// Webhook mode only: the router to mount on the public HTTP listener. Its one route is the path of
    /// `telegram.webhook_url` (`POST`); it needs no other state.
    pub webhook: Option<axum::Router>,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running").field("webhook", &self.webhook.is_some()).finish_non_exhaustive()
    }
}

/// The customers' commands (`inbound` and the intake carry them out), for Telegram's command menu.
const CUSTOMER_COMMANDS_EN: &[(&str, &str)] = &[
    ("status", "Your case and the outages you follow"),
    ("stop", "No more outage updates"),
    ("ticket", "Talk to a person"),
];
const CUSTOMER_COMMANDS_NL: &[(&str, &str)] = &[
    ("status", "Je zaak en de storingen die je volgt"),
    ("stop", "Geen storingsupdates meer"),
    ("ticket", "Een medewerker spreken"),
];

/// The updates webcare asks for: messages, edits and button presses. Everything else (member changes, polls,
/// reactions) would only be confirmed and dropped.
const ALLOWED_UPDATES: [AllowedUpdate; 3] =
    [AllowedUpdate::Message, AllowedUpdate::EditedMessage, AllowedUpdate::CallbackQuery];

impl Telegram {
    /// Checks the token with `getMe` (retrying network failures briefly) and learns the bot's username for mentions
    /// and deep links.
    pub async fn connect(settings: TelegramSettings) -> Result<Telegram, StartError> {
        let api_url = reqwest::Url::parse(&settings.api_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| StartError::BadApiUrl(settings.api_url.clone()))?;
        // The client's timeout must outlast a long poll, or every quiet poll would end as a network error.
        let client = teloxide::net::default_reqwest_settings()
            .timeout(settings.poll_timeout + Duration::from_secs(15))
            .build()
            .map_err(|e| StartError::Unavailable {
                api_url: settings.api_url.clone(),
                method: "getMe",
                reason: format!("cannot build an HTTP client: {e}"),
            })?;
        let bot = Bot::with_client(settings.token.clone(), client).set_api_url(api_url);
        let mut attempt = 0;
        let me = loop {
            attempt += 1;
            match bot.get_me().await {
                Ok(me) => break me,
                Err(RequestError::Api(ApiError::InvalidToken)) => {
                    return Err(StartError::Unauthorized { api_url: settings.api_url.clone() });
                }
                Err(RequestError::Network(e)) if attempt < 3 => {
                    tracing::warn!(error = %e, attempt, "the Telegram Bot API did not answer getMe; retrying");
                    tokio::time::sleep(Duration::from_secs(attempt)).await;
                }
                Err(e) => {
                    return Err(StartError::Unavailable {
                        api_url: settings.api_url.clone(),
                        method: "getMe",
                        reason: e.to_string(),
                    });
                }
            }
        };
        let me = BotIdentity { id: me.user.id.0, username: me.username().to_owned() };
        tracing::info!(platform = "telegram", bot = %me.username, "connected to the Telegram Bot API");
        let sender = TelegramSender::new(bot.clone(), me.clone(), settings.delete_private_data);
        Ok(Telegram { bot, me, settings, sender, desk: None })
    }

    /// The outbound side, for the delivery engine. Clones share their state.
    pub fn sender(&self) -> TelegramSender {
        self.sender.clone()
    }

    pub fn identity(&self) -> &BotIdentity {
        &self.me
    }

    /// Hands commands written in the staff chats (`/queue`, `/claim 12`) to `desk`.
    pub fn with_staff_desk(mut self, desk: Arc<dyn StaffDesk>) -> Self {
        self.desk = Some(desk);
        self
    }

    /// Sets the command menus Telegram shows when one types `/`: the customers' commands for everyone (in Dutch for
    /// Dutch users, in English otherwise) and, in each staff chat, the staff desk's commands instead. A menu is a
    /// convenience, not a function: when Telegram refuses or cannot be reached, webcare says so in its log and runs
    /// on, and the next start sets it again.
    pub async fn register_commands(&self) {
        let menu = |commands: &[(&str, &str)]| -> Vec<BotCommand> {
            commands.iter().map(|(name, what)| BotCommand::new(*name, *what)).collect()
        };
        let mut requests = vec![
            ("everyone", self.bot.set_my_commands(menu(CUSTOMER_COMMANDS_EN))),
            ("Dutch users", self.bot.set_my_commands(menu(CUSTOMER_COMMANDS_NL)).language_code("nl")),
        ];
        if let Some(desk) = &self.desk {
            for chat in &self.settings.staff_chats {
                let scope = BotCommandScope::Chat { chat_id: Recipient::Id(ChatId(*chat)) };
                let commands: Vec<(&str, &str)> = desk.commands().iter().map(|c| (c.name, c.what)).collect();
                requests.push(("a staff chat", self.bot.set_my_commands(menu(&commands)).scope(scope)));
            }
        }
        for (whom, request) in requests {
            if let Err(e) = request.await {
                tracing::warn!(platform = "telegram", error = %e, "could not set the command menu for {whom}");
            }
        }
    }

    /// Starts taking updates into `intake`: long polling, or the webhook when `webhook_url` is set.
    pub async fn start(self, intake: Arc<dyn Intake>, shutdown: CancellationToken) -> Result<Running, StartError> {
        self.register_commands().await;
        let handler = Arc::new(inbound::Handler::new(
            self.bot.clone(),
            self.me.clone(),
            intake,
            &self.settings.staff_chats,
            self.desk.clone(),
        ));
        match self.settings.webhook_url.clone() {
            None => {
                // getUpdates refuses to work while a webhook is set (409), e.g. one left from an earlier deployment.
                self.bot.delete_webhook().await.map_err(|e| StartError::Unavailable {
                    api_url: self.settings.api_url.clone(),
                    method: "deleteWebhook",
                    reason: e.to_string(),
                })?;
                let poller = polling::Poller::new(self.bot, handler, self.settings.poll_timeout);
                let task = tokio::spawn(poller.run(shutdown));
                Ok(Running { task, webhook: None })
            }
            Some(url) => {
                let router = webhook::start(&self.bot, &self.settings, &url, handler).await?;
                let task = tokio::spawn(async move { shutdown.cancelled().await });
                Ok(Running { task, webhook: Some(router) })
            }
        }
    }
}

/// The `secret_token` webcare gives `setWebhook`: derived from the bot token, so every instance of one deployment
/// agrees on it without more configuration, and it reveals nothing of the token (SHA-256). 64 hex characters fit
/// Telegram's rule (1–256 of `A-Za-z0-9_-`).
pub fn webhook_secret(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(format!("webcare telegram webhook\n{token}").as_bytes()))
}
