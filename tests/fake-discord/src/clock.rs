//! Snowflakes and timestamps as Discord writes them. Ids are real snowflakes (milliseconds since the Discord epoch
//! in the top bits) so that a client deriving a creation time or ordering from an id gets sensible answers, and
//! every id the fake hands out is unique and increasing. Timestamps are ISO 8601 with microseconds and `+00:00`,
//! the form Discord's API uses.

use std::time::{SystemTime, UNIX_EPOCH};

/// 2015-01-01T00:00:00Z in milliseconds since the Unix epoch.
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(DISCORD_EPOCH_MS)
}

/// Hands out increasing snowflakes: the current time when it moved on, otherwise the last id plus one.
#[derive(Debug, Default)]
pub(crate) struct Snowflakes {
    last: u64,
}

impl Snowflakes {
    pub fn next(&mut self) -> u64 {
        let ms = unix_ms().saturating_sub(DISCORD_EPOCH_MS);
        // Worker 1, process 0, increment 0: the low 22 bits leave room for ids made within one millisecond.
        let candidate = (ms << 22) | (1 << 17);
        self.last = candidate.max(self.last + 1);
        self.last
    }
}

/// The creation time of a snowflake in Unix milliseconds.
pub fn snowflake_ms(id: u64) -> u64 {
    (id >> 22) + DISCORD_EPOCH_MS
}

/// ISO 8601 as Discord writes it, e.g. `2024-05-01T12:30:00.123000+00:00`.
pub fn iso8601(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let micros = (unix_ms % 1000) * 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+00:00", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub(crate) fn now_iso() -> String {
    iso8601(unix_ms())
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_discord_form() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(iso8601(DISCORD_EPOCH_MS), "2015-01-01T00:00:00.000000+00:00");
        assert_eq!(iso8601(1_709_210_096_789), "2024-02-29T12:34:56.789000+00:00");
    }

    #[test]
    fn snowflakes_increase_and_carry_their_time() {
        let mut s = Snowflakes::default();
        let before = unix_ms();
        let a = s.next();
        let b = s.next();
        assert!(b > a);
        assert!(snowflake_ms(a) >= before && snowflake_ms(a) <= unix_ms());
    }
}
