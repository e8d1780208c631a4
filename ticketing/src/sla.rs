//! SLA due times, counted in business hours.
//!
//! An [`SlaPolicy`] names a time zone, the opening hours of each weekday, optional holidays, and per priority how
//! many business minutes a first response and a resolution may take. Due times are computed on real instants:
//! each day's opening hours are turned into UTC intervals through the time zone (so a day on which daylight saving
//! time starts or ends is as long as the clock says), and business minutes are spent interval by interval.
//! A policy with no opening hours on any day counts calendar time (open around the clock).

use std::fmt;

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use webcare_domain::Timestamp;

/// How far ahead due times are looked for. Ten years of holidays and closed days is beyond any real policy;
/// the bound only keeps a pathological one (every day a holiday) from looping forever.
const MAX_DAYS: i64 = 3660;

/// One opening window of a day, in minutes since local midnight; `end` may be 1440 (24:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: u32,
    end: u32,
}

/// The opening hours of one weekday, written as `"08:00-20:00"`, several windows separated by commas
/// (`"08:00-12:00,13:00-17:00"`), or `"closed"` (also `""`). `24:00` ends a window at midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DayHours(Vec<Window>);

impl DayHours {
    pub fn closed() -> DayHours {
        DayHours(Vec::new())
    }

    pub fn is_closed(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_clock(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl std::str::FromStr for DayHours {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("closed") {
            return Ok(DayHours::closed());
        }
        let mut windows: Vec<Window> = Vec::new();
        for part in s.split(',') {
            let bad = || format!("`{}` is not a time range such as 08:00-20:00", part.trim());
            let (a, b) = part.split_once('-').ok_or_else(bad)?;
            let (start, end) = (parse_clock(a).ok_or_else(bad)?, parse_clock(b).ok_or_else(bad)?);
            if start >= end {
                return Err(format!("`{}` ends before it starts", part.trim()));
            }
            if windows.last().is_some_and(|w| w.end > start) {
                return Err(format!("`{}` overlaps or precedes the range before it", part.trim()));
            }
            windows.push(Window { start, end });
        }
        Ok(DayHours(windows))
    }
}

impl TryFrom<String> for DayHours {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for DayHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("closed");
        }
        for (i, w) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{:02}:{:02}-{:02}:{:02}", w.start / 60, w.start % 60, w.end / 60, w.end % 60)?;
        }
        Ok(())
    }
}

impl From<DayHours> for String {
    fn from(h: DayHours) -> String {
        h.to_string()
    }
}

fn hours(s: &str) -> DayHours {
    s.parse().expect("built-in hours are valid")
}

/// Opening hours per weekday. Defaults: Monday to Friday 08:00–20:00, Saturday 09:00–17:00, Sunday closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeekHours {
    pub mon: DayHours,
    pub tue: DayHours,
    pub wed: DayHours,
    pub thu: DayHours,
    pub fri: DayHours,
    pub sat: DayHours,
    pub sun: DayHours,
}

impl Default for WeekHours {
    fn default() -> Self {
        let weekday = hours("08:00-20:00");
        WeekHours {
            mon: weekday.clone(),
            tue: weekday.clone(),
            wed: weekday.clone(),
            thu: weekday.clone(),
            fri: weekday,
            sat: hours("09:00-17:00"),
            sun: DayHours::closed(),
        }
    }
}

impl WeekHours {
    /// Open around the clock, every day.
    pub fn always() -> WeekHours {
        let all = hours("00:00-24:00");
        WeekHours {
            mon: all.clone(),
            tue: all.clone(),
            wed: all.clone(),
            thu: all.clone(),
            fri: all.clone(),
            sat: all.clone(),
            sun: all,
        }
    }

    pub fn day(&self, day: Weekday) -> &DayHours {
        match day {
            Weekday::Mon => &self.mon,
            Weekday::Tue => &self.tue,
            Weekday::Wed => &self.wed,
            Weekday::Thu => &self.thu,
            Weekday::Fri => &self.fri,
            Weekday::Sat => &self.sat,
            Weekday::Sun => &self.sun,
        }
    }

    fn all_closed(&self) -> bool {
        [&self.mon, &self.tue, &self.wed, &self.thu, &self.fri, &self.sat, &self.sun].iter().all(|d| d.is_closed())
    }
}

/// Business minutes allowed per ticket priority (1 urgent, 2 high, 3 normal, 4 low).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerPriority {
    pub urgent: u32,
    pub high: u32,
    pub normal: u32,
    pub low: u32,
}

impl PerPriority {
    /// The value for a priority; out-of-range priorities count as the nearest valid one.
    pub fn get(&self, priority: i64) -> u32 {
        match priority {
            ..=1 => self.urgent,
            2 => self.high,
            3 => self.normal,
            _ => self.low,
        }
    }
}

/// When tickets are due, in business time. Deserialises from configuration; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaPolicy {
    /// An IANA zone name; opening hours are local times there.
    pub timezone: Tz,
    pub hours: WeekHours,
    /// Days on which the team is closed whatever the weekday (`"2026-12-25"`).
    pub holidays: Vec<NaiveDate>,
    /// Business minutes until the first agent reply is due.
    pub first_response_mins: PerPriority,
    /// Business minutes from the ticket's creation (or its reopening) until it should be solved.
    pub resolution_mins: PerPriority,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        SlaPolicy {
            timezone: chrono_tz::Europe::Amsterdam,
            hours: WeekHours::default(),
            holidays: Vec::new(),
            first_response_mins: PerPriority { urgent: 30, high: 60, normal: 240, low: 480 },
            // Urgent within half a business day, high within one, normal within two, low within four
            // (a weekday has twelve business hours by default).
            resolution_mins: PerPriority { urgent: 240, high: 720, normal: 1440, low: 2880 },
        }
    }
}

impl SlaPolicy {
    /// When the first response to a ticket of this priority created at `from` is due.
    pub fn first_response_due(&self, from: Timestamp, priority: i64) -> Timestamp {
        self.add_business_minutes(from, self.first_response_mins.get(priority))
    }

    /// When a ticket of this priority created (or reopened) at `from` should be solved.
    pub fn resolution_due(&self, from: Timestamp, priority: i64) -> Timestamp {
        self.add_business_minutes(from, self.resolution_mins.get(priority))
    }

    /// The instant `minutes` business minutes after `from`. Outside business hours the clock starts at the next
    /// opening; zero minutes is therefore the next moment the team is at work.
    pub fn add_business_minutes(&self, from: Timestamp, minutes: u32) -> Timestamp {
        let mut left = Duration::minutes(i64::from(minutes));
        let mut last_end = None;
        for (start, end) in self.windows_from(from) {
            let len = end - start;
            if left <= len {
                return start + left;
            }
            left -= len;
            last_end = Some(end);
        }
        // Only reached past MAX_DAYS of (nearly) closed days: count the rest as calendar time.
        last_end.unwrap_or(from) + left
    }

    /// Business time between two instants (zero when `to` is not after `from`), for reporting response times.
    pub fn business_time_between(&self, from: Timestamp, to: Timestamp) -> Duration {
        let mut total = Duration::zero();
        for (start, end) in self.windows_from(from) {
            if start >= to {
                break;
            }
            total += end.min(to) - start;
        }
        total
    }

    /// Whether `at` falls within business hours.
    pub fn is_open_at(&self, at: Timestamp) -> bool {
        self.windows_from(at).next().is_some_and(|(start, _)| start == at)
    }

    /// The business intervals from `from` on, in order, the first clipped to start at `from`.
    fn windows_from(&self, from: Timestamp) -> Box<dyn Iterator<Item = (Timestamp, Timestamp)> + '_> {
        if self.hours.all_closed() {
            return Box::new(std::iter::once((from, Timestamp::MAX_UTC)));
        }
        let first_day = from.with_timezone(&self.timezone).date_naive();
        Box::new(
            (0..MAX_DAYS)
                .filter_map(move |d| first_day.checked_add_signed(Duration::days(d)))
                .flat_map(move |date| self.day_windows(date))
                .filter_map(move |(start, end)| {
                    let start = start.max(from);
                    (start < end).then_some((start, end))
                }),
        )
    }

    fn day_windows(&self, date: NaiveDate) -> Vec<(Timestamp, Timestamp)> {
        if self.holidays.contains(&date) {
            return Vec::new();
        }
        let midnight = date.and_time(chrono::NaiveTime::MIN);
        self.hours
            .day(date.weekday())
            .0
            .iter()
            .map(|w| {
                let at = |minute: u32| self.instant(midnight + Duration::minutes(i64::from(minute)));
                (at(w.start), at(w.end))
            })
            .collect()
    }

    /// The instant a local wall-clock time names. In the autumn's repeated hour the first occurrence counts; a
    /// time inside the spring's skipped hour is read with the offset before the jump, which lands as far past
    /// the jump as it was into the gap (02:30 becomes 03:30 in Amsterdam), as most calendars do.
    fn instant(&self, local: NaiveDateTime) -> Timestamp {
        match self.timezone.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            LocalResult::None => {
                let before = self.timezone.offset_from_utc_datetime(&(local - Duration::days(1))).fix();
                Utc.from_utc_datetime(&(local - Duration::seconds(i64::from(before.local_minus_utc()))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use chrono_tz::Europe::Amsterdam;

    use super::*;
    use crate::TicketPolicy;

    /// A wall-clock time in Amsterdam, as an instant.
    fn ams(y: i32, m: u32, d: u32, h: u32, min: u32) -> Timestamp {
        Amsterdam.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("an unambiguous local time").to_utc()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> Timestamp {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn business_minutes_skip_nights_weekends_and_holidays() {
        let sla = SlaPolicy { holidays: vec![NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()], ..SlaPolicy::default() };
        // (start, business minutes, due), all in Amsterdam time; 2026-03-06 is a Friday.
        let cases = [
            ("within a day", ams(2026, 3, 3, 10, 0), 90, ams(2026, 3, 3, 11, 30)),
            ("to closing exactly", ams(2026, 3, 3, 19, 0), 60, ams(2026, 3, 3, 20, 0)),
            ("over a night", ams(2026, 3, 3, 22, 0), 30, ams(2026, 3, 4, 8, 30)),
            ("before opening", ams(2026, 3, 4, 6, 15), 30, ams(2026, 3, 4, 8, 30)),
            ("Friday evening into Saturday", ams(2026, 3, 6, 19, 30), 60, ams(2026, 3, 7, 9, 30)),
            ("Saturday past Sunday", ams(2026, 3, 7, 16, 30), 60, ams(2026, 3, 9, 8, 30)),
            ("from Sunday", ams(2026, 3, 8, 12, 0), 0, ams(2026, 3, 9, 8, 0)),
            ("over a whole week", ams(2026, 3, 9, 8, 0), 5 * 720 + 480 + 30, ams(2026, 3, 16, 8, 30)),
            ("past Christmas", ams(2026, 12, 24, 19, 0), 120, ams(2026, 12, 26, 10, 0)),
        ];
        for (name, from, minutes, due) in cases {
            assert_eq!(sla.add_business_minutes(from, minutes), due, "{name}");
            assert_eq!(sla.business_time_between(from, due), Duration::minutes(i64::from(minutes)), "{name}");
        }
    }

    #[test]
    fn due_times_follow_daylight_saving_time() {
        let sla = SlaPolicy::default();
        // Summer time starts on Sunday 2026-03-29: Saturday closes at 17:00 CET (16:00Z), Monday opens at 08:00 CEST
        // (06:00Z).
        assert_eq!(sla.add_business_minutes(utc(2026, 3, 28, 15, 0), 120), utc(2026, 3, 30, 7, 0));
        // It ends on Sunday 2026-10-25: Saturday 16:30 CEST is 14:30Z; Monday 08:00 CET is 07:00Z.
        assert_eq!(sla.add_business_minutes(utc(2026, 10, 24, 14, 30), 60), utc(2026, 10, 26, 7, 30));

        // Open around the clock, the changeover days are 23 and 25 hours long.
        let always = SlaPolicy { hours: WeekHours::always(), ..SlaPolicy::default() };
        let day = |d: u32, m: u32| always.business_time_between(ams(2026, m, d, 0, 0), ams(2026, m, d + 1, 0, 0));
        assert_eq!(day(29, 3), Duration::hours(23));
        assert_eq!(day(25, 10), Duration::hours(25));
        assert_eq!(day(26, 10), Duration::hours(24));
    }

    #[test]
    fn opening_hours_inside_the_skipped_hour_start_after_it() {
        let sla = SlaPolicy {
            hours: WeekHours {
                mon: DayHours::closed(),
                tue: DayHours::closed(),
                wed: DayHours::closed(),
                thu: DayHours::closed(),
                fri: DayHours::closed(),
                sat: DayHours::closed(),
                sun: "02:30-04:00".parse().unwrap(),
            },
            ..SlaPolicy::default()
        };
        // On 2026-03-29 02:30 does not exist in Amsterdam: the window runs 03:30–04:00 CEST (01:30Z–02:00Z).
        assert_eq!(sla.add_business_minutes(utc(2026, 3, 28, 12, 0), 0), utc(2026, 3, 29, 1, 30));
        // 45 minutes: 30 that Sunday, 15 the next (02:30 CEST is 00:30Z).
        assert_eq!(sla.add_business_minutes(utc(2026, 3, 28, 12, 0), 45), utc(2026, 4, 5, 0, 45));
        assert!(sla.is_open_at(utc(2026, 3, 29, 1, 45)));
        assert!(!sla.is_open_at(utc(2026, 3, 29, 2, 0)));
    }

    #[test]
    fn a_policy_without_opening_hours_counts_calendar_time() {
        let closed = DayHours::closed();
        let sla = SlaPolicy {
            hours: WeekHours {
                mon: closed.clone(),
                tue: closed.clone(),
                wed: closed.clone(),
                thu: closed.clone(),
                fri: closed.clone(),
                sat: closed.clone(),
                sun: closed,
            },
            ..SlaPolicy::default()
        };
        let from = utc(2026, 3, 8, 3, 0);
        assert_eq!(sla.add_business_minutes(from, 90), from + Duration::minutes(90));
    }

    #[test]
    fn day_hours_parse_and_print() {
        for (text, printed) in [
            ("08:00-20:00", "08:00-20:00"),
            (" 08:00 - 12:00 ,13:00-17:30", "08:00-12:00,13:00-17:30"),
            ("00:00-24:00", "00:00-24:00"),
            ("closed", "closed"),
            ("", "closed"),
        ] {
            let parsed: DayHours = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.to_string(), printed);
        }
        for bad in ["20:00-08:00", "8-20", "08:00-25:00", "08:00", "09:00-12:00,11:00-13:00", "08:60-09:00"] {
            assert!(bad.parse::<DayHours>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn the_policy_reads_from_toml_with_defaults_and_refuses_unknown_keys() {
        let empty: TicketPolicy = toml::from_str("").unwrap();
        assert_eq!(empty, TicketPolicy::default());
        assert!(empty.problems().is_empty());

        let custom: TicketPolicy = toml::from_str(
            r#"
            claim_lapse_mins = 15
            auto_close_hours = 24
            default_priority = 2
            [sla]
            timezone = "Europe/Brussels"
            holidays = ["2026-12-25"]
            hours = { sat = "closed", sun = "10:00-14:00" }
            first_response_mins = { urgent = 15, high = 30, normal = 120, low = 240 }
            "#,
        )
        .unwrap();
        assert_eq!((custom.claim_lapse_mins, custom.auto_close_hours, custom.default_priority), (15, 24, 2));
        assert_eq!(custom.sla.timezone, chrono_tz::Europe::Brussels);
        assert!(custom.sla.hours.sat.is_closed());
        assert_eq!(custom.sla.hours.mon, WeekHours::default().mon, "days not named keep their default");
        assert_eq!(custom.sla.first_response_mins.get(1), 15);
        assert_eq!(custom.sla.resolution_mins, SlaPolicy::default().resolution_mins);

        for bad in [
            "claim_lapse = 5",
            "[sla]\ntimezone = \"Mars/Olympus\"",
            "[sla]\nhours = { mon = \"20:00-08:00\" }",
            "[sla]\nhours = { monday = \"08:00-20:00\" }",
        ] {
            assert!(toml::from_str::<TicketPolicy>(bad).is_err(), "{bad} should be refused");
        }
        let wrong: TicketPolicy = toml::from_str("default_priority = 7\nclaim_lapse_mins = 0").unwrap();
        assert_eq!(wrong.problems().len(), 2);
    }

    #[test]
    fn a_serialised_policy_reads_back_the_same() {
        let policy = TicketPolicy::default();
        let text = toml::to_string(&policy).unwrap();
        assert_eq!(toml::from_str::<TicketPolicy>(&text).unwrap(), policy);
    }
}
