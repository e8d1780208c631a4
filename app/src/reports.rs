//! Reports: what customers wrote about and where, which spikes were found, and how fast people were answered. The
//! console draws them as charts; the API (`GET /api/v1/reports`) and `webcare report` give the same figures as data,
//! for a team's own reporting. A message counts under the category and region its decision gave it, on the day it
//! arrived in the team's time zone (the SLA's, `tickets.sla.timezone`).

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveTime, TimeZone as _, Utc};
use serde::Serialize;
use webcare_domain::{AlertId, Service, Store, StoreResult, Ticket, TicketFilter, TicketState, Timestamp};
use webcare_ticketing::Tz;

/// The most messages one report reads; beyond it the report says it is cut.
pub const MAX_MESSAGES: u32 = 200_000;
/// The longest report, in days.
pub const MAX_DAYS: u32 = 366;

/// A report's length as someone typed it: a whole number of days from 1 to [`MAX_DAYS`].
pub fn days(raw: &str) -> Option<u32> {
    raw.trim().parse::<u32>().ok().filter(|d| (1..=MAX_DAYS).contains(d))
}

/// A message as the reports count it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub at: Timestamp,
    /// The decision's category, `unclassified` while undecided.
    pub category: String,
    /// The decision's region, `unknown` when the message named none.
    pub region: String,
}

/// The messages received since `since`, oldest first, and whether [`MAX_MESSAGES`] cut them.
pub async fn messages_since(store: &dyn Store, since: Timestamp) -> StoreResult<(Vec<MessageRow>, bool)> {
    let messages = store.inbound_since(since, MAX_MESSAGES).await?;
    let cut = messages.len() as u32 >= MAX_MESSAGES;
    let field = |d: &Option<serde_json::Value>, k: &str| {
        d.as_ref().and_then(|d| d.get(k)).and_then(|v| v.as_str()).map(str::to_owned)
    };
    let rows = messages
        .iter()
        .map(|m| MessageRow {
            at: m.received_at,
            category: field(&m.decision, "category").unwrap_or_else(|| "unclassified".to_owned()),
            region: field(&m.decision, "region").unwrap_or_else(|| "unknown".to_owned()),
        })
        .collect();
    Ok((rows, cut))
}

/// Minutes from opening to the first answer of each answered ticket, smallest first.
pub fn first_response_minutes<'a>(tickets: impl IntoIterator<Item = &'a Ticket>) -> Vec<i64> {
    let mut waits: Vec<i64> = tickets
        .into_iter()
        .filter_map(|t| t.first_responded_at.map(|f| (f - t.created_at).num_minutes().max(0)))
        .collect();
    waits.sort_unstable();
    waits
}

/// The `p`th percentile of sorted values (nearest rank), `None` when there are none.
pub fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    sorted.get((sorted.len() * p / 100).min(sorted.len() - 1)).copied()
}

/// When a day begins in a time zone: its local midnight (the first one where a clock change repeats it), as an
/// instant.
pub fn day_start(zone: &Tz, date: NaiveDate) -> Timestamp {
    let midnight = date.and_time(NaiveTime::MIN);
    // No European or American zone skips midnight; should one, the day is counted from midnight UTC.
    zone.from_local_datetime(&midnight).earliest().map_or_else(|| Utc.from_utc_datetime(&midnight), |t| t.to_utc())
}

/// The figures of the last `days` days (days in the team's time zone, today included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The time zone the days are counted in.
    pub timezone: String,
    pub from: Timestamp,
    pub to: Timestamp,
    /// Messages received in the period.
    pub messages: u64,
    /// Whether [`MAX_MESSAGES`] cut the count: then only the oldest ones are counted.
    pub cut: bool,
    /// Per day, oldest first: messages in all and per category.
    pub days: Vec<Day>,
    /// Messages per region, most first.
    pub regions: Vec<Count>,
    /// Spike alerts raised in the period, oldest first.
    pub spikes: Vec<Spike>,
    /// Tickets opened in the period, by the state they are in now.
    pub tickets: BTreeMap<String, u64>,
    /// How fast the tickets opened in the period were first answered.
    pub first_response: FirstResponse,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD`, in the report's time zone.
    pub date: String,
    pub messages: u64,
    pub categories: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Count {
    pub name: String,
    pub messages: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spike {
    pub alert: AlertId,
    pub at: Timestamp,
    pub service: Service,
    pub region: Option<String>,
    pub customers: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirstResponse {
    pub answered: u64,
    pub median_minutes: Option<i64>,
    pub p90_minutes: Option<i64>,
}

/// The report of the `days` days up to `now` (1 to [`MAX_DAYS`]), counted in `zone`'s days.
pub async fn report(store: &dyn Store, now: Timestamp, days: u32, zone: Tz) -> StoreResult<Report> {
    let days = days.clamp(1, MAX_DAYS);
    let first = now.with_timezone(&zone).date_naive() - chrono::Days::new(u64::from(days - 1));
    let from = day_start(&zone, first);
    let (rows, cut) = messages_since(store, from).await?;
    let mut per_day: Vec<Day> = first
        .iter_days()
        .take(days as usize)
        .map(|date| Day { date: date.format("%Y-%m-%d").to_string(), messages: 0, categories: BTreeMap::new() })
        .collect();
    let mut regions: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &rows {
        let Ok(i) = usize::try_from((r.at.with_timezone(&zone).date_naive() - first).num_days()) else { continue };
        let Some(d) = per_day.get_mut(i) else { continue };
        d.messages += 1;
        *d.categories.entry(r.category.clone()).or_default() += 1;
        *regions.entry(r.region.as_str()).or_default() += 1;
    }
    let mut regions: Vec<Count> =
        regions.into_iter().map(|(name, messages)| Count { name: name.to_owned(), messages }).collect();
    regions.sort_by(|a, b| b.messages.cmp(&a.messages).then_with(|| a.name.cmp(&b.name)));
    let mut spikes: Vec<Spike> = store
        .alerts_since(from)
        .await?
        .into_iter()
        .map(|a| Spike { alert: a.id, at: a.created_at, service: a.service, region: a.region, customers: a.count })
        .collect();
    spikes.sort_by_key(|s| (s.at, s.alert));
    let opened: Vec<Ticket> = store
        .find_tickets(&TicketFilter::default())
        .await?
        .into_iter()
        .filter(|t| t.created_at >= from && t.created_at <= now)
        .collect();
    let tickets = TicketState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), opened.iter().filter(|t| t.state == *s).count() as u64))
        .collect();
    let waits = first_response_minutes(&opened);
    Ok(Report {
        timezone: zone.name().to_owned(),
        from,
        to: now,
        messages: per_day.iter().map(|d| d.messages).sum(),
        cut,
        days: per_day,
        regions,
        spikes,
        tickets,
        first_response: FirstResponse {
            answered: waits.len() as u64,
            median_minutes: percentile(&waits, 50),
            p90_minutes: percentile(&waits, 90),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_starts_at_local_midnight() {
        let amsterdam: Tz = "Europe/Amsterdam".parse().unwrap();
        let winter = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        assert_eq!(day_start(&amsterdam, winter).to_rfc3339(), "2026-11-24T23:00:00+00:00");
        let summer = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        assert_eq!(day_start(&amsterdam, summer).to_rfc3339(), "2026-06-30T22:00:00+00:00");
        assert_eq!(day_start(&Tz::UTC, summer).to_rfc3339(), "2026-07-01T00:00:00+00:00");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 90), Some(7));
        let waits: Vec<i64> = (1..=10).collect();
        assert_eq!(
            (percentile(&waits, 50), percentile(&waits, 90), percentile(&waits, 100)),
            (Some(6), Some(10), Some(10))
        );
    }
}
