//! Sliding-window counters for Telegram's send limits. A window remembers when each accepted send happened;
//! a send is refused while the window is full, with the wait until its oldest entry leaves, rounded up to whole
//! seconds (never below 1) because Telegram's `retry_after` is an integer number of seconds.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Limit, RateLimits};

#[derive(Debug, Default)]
pub struct Limiter {
    per_chat: HashMap<i64, VecDeque<Instant>>,
    per_group: HashMap<i64, VecDeque<Instant>>,
    global: VecDeque<Instant>,
    paid: VecDeque<Instant>,
}

impl Limiter {
    /// Records a send to `chat` at `now` if every applicable window has room; otherwise returns `retry_after`.
    /// `windows` are the limits already scaled to wall-clock time.
    pub fn try_send(
        &mut self,
        limits: &RateLimits,
        scale: impl Fn(Duration) -> Duration,
        chat: i64,
        is_group: bool,
        paid: bool,
        now: Instant,
    ) -> Result<(), u64> {
        if !limits.enabled {
            return Ok(());
        }
        let chat_limit = Limit { per: scale(limits.per_chat.per), ..limits.per_chat };
        let group_limit = Limit { per: scale(limits.per_group.per), ..limits.per_group };
        let global_limit = if paid {
            Limit { per: scale(limits.paid_global.per), ..limits.paid_global }
        } else {
            Limit { per: scale(limits.global.per), ..limits.global }
        };
        let mut wait = Duration::ZERO;
        wait = wait.max(full_for(self.per_chat.entry(chat).or_default(), chat_limit, now));
        if is_group {
            wait = wait.max(full_for(self.per_group.entry(chat).or_default(), group_limit, now));
        }
        let overall = if paid { &mut self.paid } else { &mut self.global };
        wait = wait.max(full_for(overall, global_limit, now));
        if !wait.is_zero() {
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        self.per_chat.entry(chat).or_default().push_back(now);
        if is_group {
            self.per_group.entry(chat).or_default().push_back(now);
        }
        if paid { &mut self.paid } else { &mut self.global }.push_back(now);
        Ok(())
    }
}

/// Forgets entries that left the window; returns how long until there is room (zero if there is).
fn full_for(window: &mut VecDeque<Instant>, limit: Limit, now: Instant) -> Duration {
    while window.front().is_some_and(|t| now.duration_since(*t) >= limit.per) {
        window.pop_front();
    }
    if window.len() < limit.max {
        return Duration::ZERO;
    }
    let oldest = window[window.len() - limit.max];
    (oldest + limit.per).saturating_duration_since(now).max(Duration::from_nanos(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(d: Duration) -> Duration {
        d
    }

    #[test]
    fn one_per_second_per_chat() {
        let limits = RateLimits::default();
        let mut l = Limiter::default();
        let t0 = Instant::now();
        assert_eq!(l.try_send(&limits, same, 1, false, false, t0), Ok(()));
        assert_eq!(l.try_send(&limits, same, 1, false, false, t0 + Duration::from_millis(300)), Err(1));
        // Another chat is not held up by the first.
        assert_eq!(l.try_send(&limits, same, 2, false, false, t0 + Duration::from_millis(300)), Ok(()));
        assert_eq!(l.try_send(&limits, same, 1, false, false, t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn twenty_per_minute_per_group_with_the_wait_in_retry_after() {
        let limits = RateLimits::default();
        let mut l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..20 {
            assert_eq!(l.try_send(&limits, same, -5, true, false, t0 + Duration::from_secs(i * 2)), Ok(()));
        }
        // The first send leaves the window at t0+60s; at t0+40s that is 20 s away.
        assert_eq!(l.try_send(&limits, same, -5, true, false, t0 + Duration::from_secs(40)), Err(20));
        assert_eq!(l.try_send(&limits, same, -5, true, false, t0 + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn thirty_per_second_overall() {
        let limits = RateLimits::default();
        let mut l = Limiter::default();
        let t0 = Instant::now();
        for chat in 0..30 {
            assert_eq!(l.try_send(&limits, same, chat, false, false, t0), Ok(()));
        }
        assert_eq!(l.try_send(&limits, same, 99, false, false, t0), Err(1));
        assert!(l.try_send(&RateLimits::off(), same, 99, false, false, t0).is_ok());
    }
}
