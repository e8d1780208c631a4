//! How a fake server is set up: the bot's identity and privacy mode, Telegram's rate limits, and a time scale
//! that speeds up every duration the fake waits on (long-poll timeouts, rate-limit windows, webhook retries)
//! so tests and benchmarks need not take Telegram's wall-clock time.

use std::time::Duration;

/// The fake's configuration; `Config::default()` is a bot with privacy mode on and Telegram's documented limits.
#[derive(Debug, Clone)]
pub struct Config {
    /// The bot's numeric id; also the part of the token before the colon.
    pub bot_id: i64,
    pub bot_first_name: String,
    /// Without the `@`.
    pub bot_username: String,
    /// `false` means privacy mode is on (Telegram's default): in groups where the bot is no administrator it only
    /// receives commands, replies to its own messages, messages that mention it, and service messages.
    pub can_read_all_group_messages: bool,
    pub rate_limits: RateLimits,
    /// Every duration the fake waits on is divided by this factor (1.0 = real time).
    pub time_scale: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bot_id: 7_000_000_001,
            bot_first_name: "webcare".into(),
            bot_username: "webcare_test_bot".into(),
            can_read_all_group_messages: false,
            rate_limits: RateLimits::default(),
            time_scale: 1.0,
        }
    }
}

impl Config {
    /// Scales a duration of Telegram time into the wall-clock time the fake waits.
    pub fn scaled(&self, d: Duration) -> Duration {
        if self.time_scale > 0.0 && self.time_scale != 1.0 { d.div_f64(self.time_scale) } else { d }
    }
}

/// At most `max` messages in any window of `per` (Telegram time, before `Config::time_scale`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub max: usize,
    pub per: Duration,
}

/// The limits of the Bot API FAQ: about one message per second in a chat, 20 per minute in a group,
/// 30 per second in total. Only `sendMessage` counts, and a send the fake refuses does not use up the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub enabled: bool,
    pub per_chat: Limit,
    pub per_group: Limit,
    pub global: Limit,
    /// `sendMessage` with `allow_paid_broadcast=true` ignores `global` and counts against this instead
    /// ("up to 1000 messages per second ... for a fee of 0.1 Telegram Stars per message").
    pub paid_global: Limit,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            enabled: true,
            per_chat: Limit { max: 1, per: Duration::from_secs(1) },
            per_group: Limit { max: 20, per: Duration::from_secs(60) },
            global: Limit { max: 30, per: Duration::from_secs(1) },
            paid_global: Limit { max: 1000, per: Duration::from_secs(1) },
        }
    }
}

impl RateLimits {
    /// No limits: for tests about something else that send in bursts.
    pub fn off() -> Self {
        RateLimits { enabled: false, ..RateLimits::default() }
    }
}
