//! webcare's configuration: one TOML file plus `WEBCARE_` environment overrides, validated before anything starts.
//!
//! Loading is parse-at-the-edge: [`Config::load`] either returns a configuration in which every value is usable,
//! or every problem it found, each naming where the value came from (the file or the environment variable), the key,
//! and what is expected. Unknown keys are errors, so a typo never silently falls back to a default.
//! Secrets ([`Secret`]) never print: `Debug`, `Display` and serialisation all mask them.
//!
//! Architecture invariant: this crate knows nothing of the rest of webcare; it depends on serde and toml only.

mod secret;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use secret::{Secret, SecretUrl};

/// The environment variable that names the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "WEBCARE_CONFIG";
/// The prefix of environment overrides: `WEBCARE_HTTP__LISTEN` sets `http.listen`.
pub const ENV_PREFIX: &str = "WEBCARE_";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: Database,
    pub http: Http,
    pub log: Log,
    pub shutdown: Shutdown,
    pub bridge: Bridge,
    pub notices: Notices,
    pub alerts: Alerts,
    pub delivery: Delivery,
    /// The ticket rules (SLA business hours and targets, claim lapse, auto-close), read by `webcare-ticketing`'s
    /// `TicketPolicy`; kept as a table here so that this crate stays free of the logic crates. The binary
    /// validates it at start with the same file/key/expectation errors as every other section.
    #[serde(skip_serializing_if = "toml::Table::is_empty")]
    pub tickets: toml::Table,
    pub telegram: Telegram,
    pub discord: Discord,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notices {
    /// "Four eyes": a notice, and every new text of it, reaches customers only after a second admin approved it.
    pub four_eyes: bool,
}

/// Where spike alerts go besides the console: a webhook per service (the network or TV team's channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// How long one post may take, answer included, before it counts as failed and is tried again.
    pub timeout_secs: u64,
    /// How long after an alert was raised webcare keeps retrying a webhook that fails; then the alert is marked
    /// failed (admins see why in the console).
    pub give_up_after_secs: u64,
    pub webhooks: Webhooks,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts { timeout_secs: 10, give_up_after_secs: 24 * 3600, webhooks: Webhooks::default() }
    }
}

/// A webhook URL per service; `default` serves the services without one. None set: alerts stay in the console.
/// The URLs are secrets (an incoming webhook's URL is its key): printed with only their host.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webhooks {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internet: Option<SecretUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tv: Option<SecretUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<SecretUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landline: Option<SecretUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<SecretUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<SecretUrl>,
}

impl Webhooks {
    /// Every webhook set, by the name it is configured under (a service's word, or `default`).
    pub fn all(&self) -> Vec<(&'static str, &SecretUrl)> {
        [
            ("internet", &self.internet),
            ("tv", &self.tv),
            ("mobile", &self.mobile),
            ("landline", &self.landline),
            ("unknown", &self.unknown),
            ("default", &self.default),
        ]
        .into_iter()
        .filter_map(|(name, url)| url.as_ref().map(|u| (name, u)))
        .collect()
    }
}

/// How the outbox is delivered: claims, and the platforms' limits (Telegram's and Discord's published ones by
/// default). The overall per-bot limits hold for all instances on one database together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    /// How long a worker's claim on an outbox row holds; a crashed instance's rows are sent by another (or by
    /// itself after a restart) once it lapses.
    pub lease_secs: u64,
    /// Outbox rows claimed per step.
    pub batch: u32,
    /// The share of each overall limit to use, as a margin for network jitter (0.5 to 1).
    pub headroom: f64,
    /// Every rate below is multiplied by this: for tests and benchmarks against fake servers whose clocks run
    /// faster. Leave it at 1 against the real platforms.
    pub rate_scale: f64,
    pub telegram_per_second: f64,
    pub telegram_chat_per_second: f64,
    pub telegram_group_per_minute: f64,
    /// The overall limit for notices sent as Telegram paid broadcasts (`allow_paid_broadcast`).
    pub telegram_paid_per_second: f64,
    /// Telegram's fee per paid-broadcast message in Stars, for the cost estimate shown before sending.
    pub telegram_paid_stars_per_message: f64,
    pub discord_per_second: f64,
    pub discord_channel_per_second: f64,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            lease_secs: 30,
            batch: 64,
            headroom: 0.97,
            rate_scale: 1.0,
            telegram_per_second: 30.0,
            telegram_chat_per_second: 1.0,
            telegram_group_per_minute: 20.0,
            telegram_paid_per_second: 1000.0,
            telegram_paid_stars_per_message: 0.1,
            discord_per_second: 50.0,
            discord_channel_per_second: 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bridge {
    /// A directory with lexicon, pattern, service and region files (TOML) that replace the shipped ones of the
    /// same name, so an admin tunes them without a rebuild. The shipped files are used when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The operator's countries (`nl`, `be`), its own first: a bare 4-digit postcode, and a place name both countries
    /// have (Deurne), are read in the first. Empty: the data files' `postcode_countries` (the Netherlands first).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// `sqlite://PATH` (created on first start) or `postgres://USER@HOST/DB`.
    pub url: String,
    pub max_connections: u32,
    /// How long `serve` keeps retrying an unreachable database at start before it gives up.
    pub connect_retry_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Where the console, web chat, API, health and metrics listen.
    pub listen: SocketAddr,
    /// Mark the console's session cookie `Secure`; turn on behind an HTTPS proxy.
    pub secure_cookies: bool,
    /// Take the client's address from `X-Forwarded-For` (only behind a proxy that sets it), for the login limit.
    pub trust_forwarded_for: bool,
    /// The largest request body taken; bigger ones get 413.
    pub max_body_bytes: usize,
    /// New web chat conversations one client address may start per minute (a burst of as many, then one every
    /// 60/n seconds); more get 429. Generous, as many customers may share one address (an office, CGNAT).
    pub webchat_sessions_per_minute: u32,
    /// Web chat messages one client address may post per minute, over all its conversations; more get 429.
    pub webchat_messages_per_minute: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, or per target such as `info,webcare_storage=debug`.
    /// `RUST_LOG`, when set, takes precedence.
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shutdown {
    /// On SIGINT or SIGTERM, how long in-flight work may take to finish before webcare exits anyway.
    pub grace_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Telegram {
    /// The bot token from @BotFather; the Telegram bot runs when it is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// The Bot API server: Telegram's, a self-hosted telegram-bot-api, or a test fake.
    pub api_url: String,
    /// The public HTTPS URL Telegram posts updates to; long polling when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Delete a group message that holds private data (an IBAN, a phone number) after answering it with a link to
    /// a private chat; takes effect where the bot is an administrator allowed to delete messages.
    pub delete_private_data: bool,
    /// Group chat ids (negative numbers) of the webcare team: spike alerts are posted there, linked agents work
    /// there with commands, and what is written there is never taken for a customer's message.
    pub staff_chats: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Discord {
    /// The bot token; the Discord bot runs when it is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Where REST calls go instead of `https://discord.com`; the gateway URL then comes from its `/api/v10/gateway`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Channel ids in servers where webcare answers customers.
    pub support_channels: Vec<u64>,
    /// Channel ids where notices are posted once.
    pub announcement_channels: Vec<u64>,
    /// Channel ids of the webcare team: spike alerts are posted there, linked agents work there with commands, and
    /// messages there are never customers'.
    pub staff_channels: Vec<u64>,
    /// Delete a support-channel message that holds private data (an IBAN, a phone number) once the case continues
    /// in a DM or private thread; takes effect where the bot has Manage Messages.
    pub delete_private_data: bool,
    /// The bot's gateway shards in all: Discord sends each server's events to one shard (`(server id >> 22) %
    /// shards`) and DMs to shard 0.
    pub shards: u32,
    /// The shards this instance runs, a contiguous range such as `[2, 3]`; empty runs every shard. Instances on one
    /// database split the bot's servers between them this way.
    pub shard_ids: Vec<u32>,
}

impl Default for Discord {
    fn default() -> Self {
        Discord {
            token: None,
            api_url: None,
            support_channels: Vec::new(),
            announcement_channels: Vec::new(),
            staff_channels: Vec::new(),
            delete_private_data: true,
            shards: 1,
            shard_ids: Vec::new(),
        }
    }
}

impl Discord {
    /// The first and last shard this instance runs (both included).
    pub fn shard_span(&self) -> (u32, u32) {
        match (self.shard_ids.iter().min(), self.shard_ids.iter().max()) {
            (Some(&first), Some(&last)) => (first, last),
            _ => (0, self.shards.max(1) - 1),
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Database { url: "sqlite://webcare.db".into(), max_connections: 8, connect_retry_secs: 30 }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            secure_cookies: false,
            trust_forwarded_for: false,
            max_body_bytes: 64 * 1024,
            webchat_sessions_per_minute: 30,
            webchat_messages_per_minute: 120,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log { format: LogFormat::Text, level: "info".into() }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { grace_secs: 3 }
    }
}

impl Default for Telegram {
    fn default() -> Self {
        Telegram {
            token: None,
            api_url: "https://api.telegram.org".into(),
            webhook_url: None,
            delete_private_data: true,
            staff_chats: Vec::new(),
        }
    }
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Env(String),
    Defaults,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Defaults => f.write_str("built-in defaults"),
        }
    }
}

/// One problem with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: Origin,
    /// The dotted key (`http.listen`), empty when the problem is with the file as a whole.
    pub key: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: key `{}`: {}", self.origin, self.key, self.message)
        }
    }
}

/// Every problem found; loading reports them all at once so a broken file is fixed in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Loads the configuration: defaults, then the file (if any), then `WEBCARE_` variables from `env`.
    ///
    /// `env` is passed in rather than read here so that tests describe their environment instead of mutating the
    /// process's. `WEBCARE_CONFIG` and `WEBCARE_TEST_*` are not configuration keys and are skipped.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigErrors> {
        let mut table = toml::Table::new();
        let file_origin = file.map(|p| Origin::File(p.to_path_buf())).unwrap_or(Origin::Defaults);
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigErrors(vec![ConfigError {
                    origin: file_origin.clone(),
                    key: String::new(),
                    message: format!("cannot read the configuration file: {e}"),
                }])
            })?;
            table = text.parse::<toml::Table>().map_err(|e| {
                ConfigErrors(vec![ConfigError {
                    origin: file_origin.clone(),
                    key: String::new(),
                    message: format!("not valid TOML: {}", e.to_string().trim()),
                }])
            })?;
        }

        let mut errors = Vec::new();
        // Which keys the environment set, so that a bad value is blamed on the variable and not on the file.
        let mut from_env: Vec<(String, String)> = Vec::new();
        let schema = schema();
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        env.sort();
        for (var, value) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else { continue };
            if var == CONFIG_ENV || rest.starts_with("TEST_") {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            let key = path.join(".");
            match lookup(&schema, &path) {
                Some(expected) => match env_value(expected, &value) {
                    Ok(v) => {
                        insert(&mut table, &path, v);
                        from_env.push((key, var));
                    }
                    Err(message) => errors.push(ConfigError { origin: Origin::Env(var), key, message }),
                },
                None => errors.push(ConfigError {
                    origin: Origin::Env(var),
                    key,
                    message: "unknown key (use `__` between levels, as in WEBCARE_HTTP__LISTEN)".into(),
                }),
            }
        }

        let origin_of = |key: &str| -> Origin {
            from_env
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, var)| Origin::Env(var.clone()))
                .unwrap_or_else(|| file_origin.clone())
        };

        let config = match serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(table)) {
            Ok(c) => Some(c),
            Err(e) => {
                let (key, message) = describe(&e);
                errors.push(ConfigError { origin: origin_of(&key), key, message });
                None
            }
        };
        if let Some(config) = &config {
            for (key, message) in config.problems() {
                errors.push(ConfigError { origin: origin_of(&key), key, message });
            }
        }
        match config {
            Some(c) if errors.is_empty() => Ok(c),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// Values that have the right type but cannot work, as `(key, what is expected)`.
    fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut check = |ok: bool, key: &str, expected: &str| {
            if !ok {
                p.push((key.to_owned(), expected.to_owned()));
            }
        };
        let url = &self.database.url;
        check(
            url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "database.url",
            "expected sqlite://PATH or postgres://USER@HOST/DB",
        );
        check(url != "sqlite://" && url != "sqlite:", "database.url", "expected a file path after sqlite://");
        check(
            (1..=1000).contains(&self.database.max_connections),
            "database.max_connections",
            "expected a number from 1 to 1000",
        );
        check(self.database.connect_retry_secs <= 3600, "database.connect_retry_secs", "expected at most 3600 seconds");
        check(
            (1024..=16 * 1024 * 1024).contains(&self.http.max_body_bytes),
            "http.max_body_bytes",
            "expected 1024 to 16777216 bytes",
        );
        for (key, n) in [
            ("http.webchat_sessions_per_minute", self.http.webchat_sessions_per_minute),
            ("http.webchat_messages_per_minute", self.http.webchat_messages_per_minute),
        ] {
            check((1..=100_000).contains(&n), key, "expected a number from 1 to 100000");
        }
        check(self.shutdown.grace_secs <= 60, "shutdown.grace_secs", "expected at most 60 seconds");
        let d = &self.delivery;
        check((2..=3600).contains(&d.lease_secs), "delivery.lease_secs", "expected 2 to 3600 seconds");
        check((1..=10_000).contains(&d.batch), "delivery.batch", "expected 1 to 10000 rows");
        check((0.5..=1.0).contains(&d.headroom), "delivery.headroom", "expected a share from 0.5 to 1");
        check(d.rate_scale > 0.0 && d.rate_scale <= 10_000.0, "delivery.rate_scale", "expected above 0, at most 10000");
        for (key, rate) in [
            ("delivery.telegram_per_second", d.telegram_per_second),
            ("delivery.telegram_chat_per_second", d.telegram_chat_per_second),
            ("delivery.telegram_group_per_minute", d.telegram_group_per_minute),
            ("delivery.telegram_paid_per_second", d.telegram_paid_per_second),
            ("delivery.discord_per_second", d.discord_per_second),
            ("delivery.discord_channel_per_second", d.discord_channel_per_second),
        ] {
            check(rate > 0.0 && rate <= 100_000.0, key, "expected a rate above 0, at most 100000");
        }
        check(
            (0.0..=1000.0).contains(&d.telegram_paid_stars_per_message),
            "delivery.telegram_paid_stars_per_message",
            "expected 0 to 1000 Stars",
        );
        check((1..=60).contains(&self.alerts.timeout_secs), "alerts.timeout_secs", "expected 1 to 60 seconds");
        check(
            (60..=30 * 24 * 3600).contains(&self.alerts.give_up_after_secs),
            "alerts.give_up_after_secs",
            "expected 60 seconds to 30 days (2592000)",
        );
        for (name, url) in self.alerts.webhooks.all() {
            // The URL is not repeated in the message: it is a secret.
            check(
                is_http_url(url.expose()) && has_host(url.expose()),
                &format!("alerts.webhooks.{name}"),
                "expected an http:// or https:// URL with a host",
            );
        }
        check(!self.log.level.trim().is_empty(), "log.level", "expected a filter such as `info` or `debug`");
        check(is_http_url(&self.telegram.api_url), "telegram.api_url", "expected an http:// or https:// URL");
        if let Some(u) = &self.telegram.webhook_url {
            check(is_http_url(u), "telegram.webhook_url", "expected an https:// URL that Telegram can reach");
        }
        if let Some(t) = &self.telegram.token {
            check(
                is_telegram_token(t.expose()),
                "telegram.token",
                "expected a bot token of the form 123456:ABC-DEF... (from @BotFather)",
            );
        }
        if let Some(dir) = &self.bridge.data_dir {
            check(dir.is_dir(), "bridge.data_dir", "expected a directory that exists");
        }
        let countries = &self.bridge.countries;
        check(
            countries.iter().all(|c| c == "nl" || c == "be")
                && countries.iter().enumerate().all(|(i, c)| !countries[..i].contains(c)),
            "bridge.countries",
            "expected \"nl\" and \"be\" (each at most once), the operator's own country first",
        );
        if let Some(u) = &self.discord.api_url {
            check(is_http_url(u), "discord.api_url", "expected an http:// or https:// URL");
        }
        if let Some(t) = &self.discord.token {
            check(!t.expose().trim().is_empty(), "discord.token", "expected a bot token, not an empty string");
        }
        check(
            !self.discord.support_channels.contains(&0),
            "discord.support_channels",
            "expected channel ids (snowflakes), not 0",
        );
        check(
            !self.discord.announcement_channels.contains(&0),
            "discord.announcement_channels",
            "expected channel ids (snowflakes), not 0",
        );
        check(
            !self.discord.staff_channels.contains(&0),
            "discord.staff_channels",
            "expected channel ids (snowflakes), not 0",
        );
        check(
            !self.telegram.staff_chats.contains(&0),
            "telegram.staff_chats",
            "expected chat ids (a group's id is a negative number), not 0",
        );
        check(
            (1..=10_000).contains(&self.discord.shards),
            "discord.shards",
            "expected the number of gateway shards, 1 or more",
        );
        let ids = &self.discord.shard_ids;
        check(
            ids.iter().all(|&id| id < self.discord.shards) && ids.windows(2).all(|w| w[1] == w[0] + 1),
            "discord.shard_ids",
            "expected shard numbers below discord.shards, in order and without gaps (such as [2, 3]); empty for all",
        );
        check(
            !self.discord.staff_channels.iter().any(|c| self.discord.support_channels.contains(c)),
            "discord.staff_channels",
            "a channel is either for customers (support_channels) or for the staff, not both",
        );
        p
    }

    /// The effective configuration as TOML, with every secret masked.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the configuration serialises to TOML")
    }
}

fn is_http_url(u: &str) -> bool {
    let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace))
}

/// Whether an http(s) URL names a host before its path: `https:///x` and `https://user@/x` do not.
fn has_host(u: &str) -> bool {
    let rest = u.split_once("://").map(|(_, r)| r).unwrap_or(u);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    !host.is_empty() && !host.starts_with(':')
}

fn is_telegram_token(t: &str) -> bool {
    match t.split_once(':') {
        Some((id, secret)) => {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        None => false,
    }
}

/// Every key with a value of its type: the defaults with each optional value filled in.
fn schema() -> toml::Table {
    let mut full = Config::default();
    full.telegram.token = Some(Secret::new("1:x"));
    full.telegram.webhook_url = Some("https://example.invalid/".into());
    full.discord.token = Some(Secret::new("x"));
    full.bridge.data_dir = Some(PathBuf::from("/etc/webcare/lexicons"));
    full.bridge.countries = vec!["be".into(), "nl".into()];
    full.discord.api_url = Some("https://example.invalid/".into());
    let url = || Some(SecretUrl::new("https://example.invalid/hook"));
    full.alerts.webhooks =
        Webhooks { internet: url(), tv: url(), mobile: url(), landline: url(), unknown: url(), default: url() };
    full.discord.support_channels = vec![1];
    full.discord.announcement_channels = vec![1];
    full.discord.staff_channels = vec![2];
    full.telegram.staff_chats = vec![-1];
    full.discord.shard_ids = vec![0];
    toml::Table::try_from(&full).expect("the configuration serialises to a TOML table")
}

/// Every dotted key the configuration knows, for tests and documentation.
pub fn known_keys() -> Vec<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in table {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v {
                toml::Value::Table(t) => walk(&key, t, out),
                _ => out.push(key),
            }
        }
    }
    let mut out = Vec::new();
    walk("", &schema(), &mut out);
    out
}

fn lookup<'a>(table: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let value = table.get(first)?;
    if rest.is_empty() {
        // A whole section cannot be set from one variable.
        if value.is_table() { None } else { Some(value) }
    } else {
        lookup(value.as_table()?, rest)
    }
}

fn insert(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let (first, rest) = path.split_first().expect("paths are never empty");
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return;
    }
    let entry = table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !entry.is_table() {
        *entry = toml::Value::Table(toml::Table::new());
    }
    if let toml::Value::Table(t) = entry {
        insert(t, rest, value);
    }
}

/// Reads an environment value as the type the key expects, so that `WEBCARE_DISCORD__TOKEN=12345` stays a string
/// and `WEBCARE_DATABASE__MAX_CONNECTIONS=16` becomes a number. Lists take `1,2,3` or TOML's `[1, 2, 3]`.
fn env_value(expected: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    let raw = raw.trim();
    match expected {
        toml::Value::String(_) => Ok(toml::Value::String(raw.to_owned())),
        toml::Value::Integer(_) => {
            raw.parse::<i64>().map(toml::Value::Integer).map_err(|_| format!("expected a whole number, got `{raw}`"))
        }
        toml::Value::Boolean(_) => match raw {
            "true" => Ok(toml::Value::Boolean(true)),
            "false" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("expected true or false, got `{raw}`")),
        },
        toml::Value::Float(_) => {
            raw.parse::<f64>().map(toml::Value::Float).map_err(|_| format!("expected a number, got `{raw}`"))
        }
        toml::Value::Array(sample) => {
            if raw.starts_with('[') {
                let doc: toml::Table =
                    format!("v = {raw}").parse().map_err(|e| format!("expected a TOML list: {e}"))?;
                return Ok(doc["v"].clone());
            }
            let element = sample.first().cloned().unwrap_or(toml::Value::String(String::new()));
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| env_value(&element, s))
                .collect::<Result<Vec<_>, _>>()
                .map(toml::Value::Array)
        }
        toml::Value::Datetime(_) | toml::Value::Table(_) => Err("cannot be set from the environment".into()),
    }
}

/// Turns a deserialisation error into `(dotted key, message)`, naming the unknown key itself for a typo.
fn describe(e: &serde_path_to_error::Error<toml::de::Error>) -> (String, String) {
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let inner = e.inner().to_string();
    let inner = inner.trim();
    if let Some(rest) = inner.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        // serde_path_to_error already ends the path with the unknown field; older versions stop at its parent.
        let key = if path.is_empty() {
            field.to_owned()
        } else if path == field || path.ends_with(&format!(".{field}")) {
            path
        } else {
            format!("{path}.{field}")
        };
        let expected = expected.trim_start_matches(',').trim();
        return (key, format!("unknown key ({expected})"));
    }
    (path, inner.to_owned())
}

#[cfg(test)]
mod tests;
