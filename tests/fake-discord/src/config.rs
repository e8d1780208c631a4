//! How a fake server is set up: the application and its bot user, which privileged intents the application may
//! use, the gateway's heartbeat interval, Discord's rate limits, and a time scale that speeds up every duration the
//! fake waits on or reports (heartbeats, rate-limit windows, interaction deadlines) so tests and benchmarks need not
//! take Discord's wall-clock time.

use std::time::Duration;

use crate::intents;

/// The fake's configuration; `Config::default()` is an unverified bot whose application has the Message Content
/// intent switched on in the developer portal, with Discord's documented limits.
#[derive(Debug, Clone)]
pub struct Config {
    /// The application's id; on Discord the bot user has the same id.
    pub application_id: u64,
    pub bot_username: String,
    /// Privileged intents (`GUILD_MEMBERS`, `GUILD_PRESENCES`, `MESSAGE_CONTENT`) switched on for the application;
    /// identifying with any other privileged intent closes the gateway with 4014.
    pub privileged_intents: u64,
    /// The `heartbeat_interval` of HELLO (Discord time; Discord sends 41250 ms).
    pub heartbeat_interval: Duration,
    /// Close a connection with 4009 when the client sent no heartbeat for a heartbeat interval plus this grace
    /// (wall-clock, not scaled, so a slow machine does not lose its session). `None` never closes.
    pub heartbeat_grace: Option<Duration>,
    /// An interaction must be answered within this time (Discord time: 3 s), or the callback answers 404 10062.
    pub interaction_deadline: Duration,
    /// The shard count `GET /gateway/bot` recommends.
    pub shards: u32,
    /// `session_start_limit.total` of `GET /gateway/bot`; every IDENTIFY uses one.
    pub session_start_limit: u32,
    pub rate_limits: RateLimits,
    /// Every duration the fake waits on or reports is divided by this factor (1.0 = real time).
    pub time_scale: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            application_id: 1_190_000_000_000_000_001,
            bot_username: "webcare".into(),
            privileged_intents: intents::MESSAGE_CONTENT,
            heartbeat_interval: Duration::from_millis(41_250),
            heartbeat_grace: Some(Duration::from_secs(5)),
            interaction_deadline: Duration::from_secs(3),
            shards: 1,
            session_start_limit: 1000,
            rate_limits: RateLimits::default(),
            time_scale: 1.0,
        }
    }
}

impl Config {
    /// Scales a duration of Discord time into the wall-clock time the fake waits and reports.
    pub fn scaled(&self, d: Duration) -> Duration {
        if self.time_scale > 0.0 && self.time_scale != 1.0 { d.div_f64(self.time_scale) } else { d }
    }
}

/// At most `max` requests in a window of `per` (Discord time, before `Config::time_scale`). Like Discord's buckets
/// the window starts with the first request and resets in full when it ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub max: u32,
    pub per: Duration,
}

impl Limit {
    pub const fn new(max: u32, per: Duration) -> Limit {
        Limit { max, per }
    }
}

/// Discord's limits. Per-route buckets count per top-level resource (channel, guild, webhook/interaction), as
/// Discord does; the global limit counts every authenticated request except interaction callbacks and webhooks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub enabled: bool,
    /// 50 requests per second per bot.
    pub global: Limit,
    /// `POST /channels/{id}/messages`: about 5 per 5 s per channel.
    pub create_message: Limit,
    /// `PATCH /channels/{id}/messages/{id}`.
    pub edit_message: Limit,
    /// `DELETE /channels/{id}/messages/{id}`: a separate, higher limit.
    pub delete_message: Limit,
    /// `POST /channels/{id}/messages/{id}/crosspost`: 10 per hour per channel.
    pub crosspost: Limit,
    /// Every other route, per route and top-level resource.
    pub other: Limit,
    /// 401, 403 and 429 answers (except 429s of scope `shared`) allowed before the bot is banned for a while,
    /// as Cloudflare does at 10,000 per 10 minutes. While banned every request answers 429.
    pub invalid_requests: Limit,
    /// Payloads a client may send on one gateway connection before it is closed with 4008.
    pub gateway_sends: Limit,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            enabled: true,
            global: Limit::new(50, Duration::from_secs(1)),
            create_message: Limit::new(5, Duration::from_secs(5)),
            edit_message: Limit::new(5, Duration::from_secs(5)),
            delete_message: Limit::new(5, Duration::from_secs(1)),
            crosspost: Limit::new(10, Duration::from_secs(3600)),
            other: Limit::new(50, Duration::from_secs(1)),
            invalid_requests: Limit::new(10_000, Duration::from_secs(600)),
            gateway_sends: Limit::new(120, Duration::from_secs(60)),
        }
    }
}

impl RateLimits {
    /// No limits (headers are still sent): for tests about something else that send in bursts.
    pub fn off() -> Self {
        RateLimits { enabled: false, ..RateLimits::default() }
    }
}
