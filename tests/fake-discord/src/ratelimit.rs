//! Discord's rate limits as fixed windows: a bucket opens with its first request, takes `max` requests, and resets
//! in full when its window ends, which is what the `X-RateLimit-Limit/Remaining/Reset-After` headers describe.
//! Per-route buckets are keyed by the route's bucket and its top-level resource (channel, guild or interaction),
//! the global bucket counts every authenticated request except interaction callbacks and webhooks, and a third
//! window counts invalid requests (401, 403, 429) towards Cloudflare's temporary ban.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Limit, RateLimits};

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    /// The window as it stands at `now`: a fresh one if the old one ended.
    fn at(slot: &mut Option<Window>, per: Duration, now: Instant) -> &mut Window {
        match slot {
            Some(w) if now.duration_since(w.start) < per => {}
            _ => *slot = Some(Window { start: now, count: 0 }),
        }
        slot.as_mut().expect("just set")
    }

    fn reset_after(&self, per: Duration, now: Instant) -> Duration {
        (self.start + per).saturating_duration_since(now)
    }
}

/// What the rate-limit headers report (durations already scaled to wall-clock time).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BucketState {
    pub limit: u32,
    pub remaining: u32,
    pub reset_after: Duration,
    pub bucket: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Allowed(BucketState),
    Limited { state: BucketState, retry_after: Duration, global: bool },
}

#[derive(Debug)]
pub(crate) struct Limiter {
    limits: RateLimits,
    global: Option<Window>,
    buckets: HashMap<String, Option<Window>>,
    invalid: Option<Window>,
    banned_until: Option<Instant>,
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Limiter {
        Limiter { limits, global: None, buckets: HashMap::new(), invalid: None, banned_until: None }
    }

    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Counts one request against the route bucket `bucket`/`key` (with its unscaled `limit`) and, if
    /// `counts_global`, the global bucket; refuses it when either is full. `scale` maps Discord time to wall-clock.
    pub fn check(
        &mut self,
        bucket: &str,
        key: &str,
        limit: Limit,
        counts_global: bool,
        scale: impl Fn(Duration) -> Duration,
        now: Instant,
    ) -> Verdict {
        let per = scale(limit.per);
        let hash = bucket_hash(bucket);
        if !self.limits.enabled {
            return Verdict::Allowed(BucketState {
                limit: limit.max,
                remaining: limit.max.saturating_sub(1),
                reset_after: per,
                bucket: hash,
            });
        }
        let global_per = scale(self.limits.global.per);
        if counts_global {
            let g = Window::at(&mut self.global, global_per, now);
            if g.count >= self.limits.global.max {
                let wait = g.reset_after(global_per, now);
                let state = BucketState {
                    limit: self.limits.global.max,
                    remaining: 0,
                    reset_after: wait,
                    bucket: bucket_hash("global"),
                };
                return Verdict::Limited { state, retry_after: wait, global: true };
            }
            g.count += 1;
        }
        let slot = self.buckets.entry(format!("{bucket}:{key}")).or_default();
        let w = Window::at(slot, per, now);
        if w.count >= limit.max {
            let wait = w.reset_after(per, now);
            let state = BucketState { limit: limit.max, remaining: 0, reset_after: wait, bucket: hash };
            return Verdict::Limited { state, retry_after: wait, global: false };
        }
        w.count += 1;
        Verdict::Allowed(BucketState {
            limit: limit.max,
            remaining: limit.max - w.count,
            reset_after: w.reset_after(per, now),
            bucket: hash,
        })
    }

    /// Counts an invalid request; returns the count in the current window and whether the bot is now banned.
    pub fn invalid(&mut self, scale: impl Fn(Duration) -> Duration, now: Instant) -> (u64, bool) {
        let per = scale(self.limits.invalid_requests.per);
        let w = Window::at(&mut self.invalid, per, now);
        w.count += 1;
        let count = u64::from(w.count);
        let banned = self.limits.enabled && w.count >= self.limits.invalid_requests.max;
        if banned {
            self.banned_until = Some(w.start + per);
        }
        (count, banned)
    }

    /// While banned: how long the ban still lasts.
    pub fn banned_for(&self, now: Instant) -> Option<Duration> {
        self.banned_until.filter(|until| *until > now).map(|until| until - now)
    }
}

/// A stable opaque bucket id like Discord's (32 hex digits), the same for every resource of a route.
pub(crate) fn bucket_hash(name: &str) -> String {
    let fnv = |seed: u64| name.bytes().fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(d: Duration) -> Duration {
        d
    }

    #[test]
    fn five_per_five_seconds_per_channel_then_a_fresh_window() {
        let mut l = Limiter::new(RateLimits::default());
        let limit = RateLimits::default().create_message;
        let t0 = Instant::now();
        for i in 0..5 {
            match l.check("create_message", "1", limit, true, same, t0) {
                Verdict::Allowed(s) => assert_eq!(s.remaining, 4 - i),
                other => panic!("{other:?}"),
            }
        }
        let later = t0 + Duration::from_secs(2);
        match l.check("create_message", "1", limit, true, same, later) {
            Verdict::Limited { retry_after, global, .. } => {
                assert_eq!(retry_after, Duration::from_secs(3));
                assert!(!global);
            }
            other => panic!("{other:?}"),
        }
        // Another channel has its own bucket; the first one is fresh once its window ended.
        assert!(matches!(l.check("create_message", "2", limit, true, same, later), Verdict::Allowed(_)));
        let fresh = l.check("create_message", "1", limit, true, same, t0 + Duration::from_secs(5));
        assert!(matches!(fresh, Verdict::Allowed(BucketState { remaining: 4, .. })));
    }

    #[test]
    fn fifty_per_second_globally() {
        let mut l = Limiter::new(RateLimits::default());
        let other = RateLimits::default().other;
        let t0 = Instant::now();
        for i in 0..50 {
            assert!(matches!(l.check("get", &i.to_string(), other, true, same, t0), Verdict::Allowed(_)));
        }
        assert!(matches!(l.check("get", "x", other, true, same, t0), Verdict::Limited { global: true, .. }));
        // Interaction callbacks are not bound to the global limit.
        assert!(matches!(l.check("callback", "x", other, false, same, t0), Verdict::Allowed(_)));
    }

    #[test]
    fn the_invalid_request_limit_bans() {
        let limits = RateLimits { invalid_requests: Limit::new(3, Duration::from_secs(600)), ..RateLimits::default() };
        let mut l = Limiter::new(limits);
        let t0 = Instant::now();
        assert_eq!(l.invalid(same, t0), (1, false));
        assert_eq!(l.invalid(same, t0), (2, false));
        assert_eq!(l.invalid(same, t0), (3, true));
        assert_eq!(l.banned_for(t0 + Duration::from_secs(100)), Some(Duration::from_secs(500)));
        assert_eq!(l.banned_for(t0 + Duration::from_secs(600)), None);
    }
}
