//! Reports (`/reports`, admins): messages per category and per region, per hour (48 hours) and per day
//! (30 days, the team's days: `tickets.sla.timezone`), with spike alerts marked; tickets per state; first-response
//! times. Charts are SVG drawn here on the
//! server, so the page needs no chart library and nothing from the internet. Region names come from customers'
//! messages and are escaped like everything else.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DurationRound, TimeDelta, Utc};
use webcare_domain::{SpikeAlert, TicketFilter, TicketState, Timestamp};
use webcare_ticketing::Tz;

use super::html::{self, E, Live};
use super::{Staff, unavailable};
use crate::AppState;

/// Regions drawn separately; the rest are summed as "other".
const TOP_REGIONS: usize = 6;
const PALETTE: &[&str] = &["#0b5fff", "#e8590c", "#2b8a3e", "#ae3ec9", "#f08c00", "#1098ad", "#c92a2a", "#868e96"];

/// One chart's data: buckets (oldest first) with a count per series.
struct Chart<'a> {
    title: &'a str,
    labels: Vec<String>,
    series: Vec<String>,
    /// `counts[bucket][series]`.
    counts: Vec<Vec<u64>>,
    /// Buckets with a spike alert, and what to say about it.
    spikes: Vec<(usize, String)>,
    label_every: usize,
}

/// A stacked bar chart as inline SVG.
fn stacked(chart: &Chart<'_>) -> String {
    let (width, height, left, top, bottom) = (960.0_f64, 230.0_f64, 44.0_f64, 40.0_f64, 30.0_f64);
    let plot_w = width - left - 10.0;
    let plot_h = height - top - bottom;
    let n = chart.labels.len().max(1);
    let max = chart.counts.iter().map(|b| b.iter().sum::<u64>()).max().unwrap_or(0).max(1);
    let bar = plot_w / n as f64;
    let y = |v: u64| top + plot_h - plot_h * v as f64 / max as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        "<figure class=\"chart\"><svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{title}\" \
         xmlns=\"http://www.w3.org/2000/svg\" font-family=\"system-ui, sans-serif\" font-size=\"11\">",
        title = E(chart.title)
    );
    // Legend.
    let mut x = left;
    for (i, s) in chart.series.iter().enumerate() {
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"8\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"17\">{}</text>",
            PALETTE[i % PALETTE.len()],
            x + 14.0,
            E(s)
        );
        x += 24.0 + 7.0 * s.chars().count() as f64;
    }
    if !chart.spikes.is_empty() {
        let _ = write!(
            out,
            "<path d=\"M{:.1} 8 l5 10 h-10 z\" fill=\"#c92a2a\"/><text x=\"{:.1}\" y=\"17\">spike alert</text>",
            x + 5.0,
            x + 14.0
        );
    }
    // Axis and grid.
    for v in [0, max / 2, max] {
        let _ = write!(
            out,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#dee2e6\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            width - 10.0,
            left - 4.0,
            y(v) + 4.0,
            y = y(v)
        );
    }
    for (b, counts) in chart.counts.iter().enumerate() {
        let x = left + bar * b as f64;
        let mut base = 0;
        for (s, c) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            let (y0, y1) = (y(base), y(base + c));
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{y1:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} · {}: {c}</title></rect>",
                x + bar * 0.1,
                (bar * 0.8).max(1.0),
                (y0 - y1).max(0.5),
                PALETTE[s % PALETTE.len()],
                E(&chart.labels[b]),
                E(&chart.series[s])
            );
            base += c;
        }
        if b % chart.label_every.max(1) == 0 {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#495057\">{}</text>",
                x + bar / 2.0,
                height - bottom + 16.0,
                E(&chart.labels[b])
            );
        }
    }
    for (b, what) in &chart.spikes {
        let x = left + bar * *b as f64 + bar / 2.0;
        let _ = write!(
            out,
            "<g class=\"spike\"><line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top}\" y2=\"{:.1}\" stroke=\"#c92a2a\" \
             stroke-dasharray=\"3 2\"/><path d=\"M{x:.1} {:.1} l5 -9 h-10 z\" fill=\"#c92a2a\"/><title>{}</title></g>",
            top + plot_h,
            top - 1.0,
            E(what)
        );
    }
    let _ = write!(out, "</svg><figcaption>{}</figcaption></figure>", E(chart.title));
    out
}

/// Horizontal bars for a few labelled counts.
fn bars(title: &str, items: &[(String, u64)]) -> String {
    let max = items.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let row = 26.0_f64;
    let height = row * items.len() as f64 + 10.0;
    let mut out = format!(
        "<figure class=\"chart small\"><svg viewBox=\"0 0 480 {height}\" role=\"img\" aria-label=\"{t}\" \
         xmlns=\"http://www.w3.org/2000/svg\" font-family=\"system-ui, sans-serif\" font-size=\"12\">",
        t = E(title)
    );
    for (i, (label, n)) in items.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let w = 300.0 * *n as f64 / max as f64;
        let _ = write!(
            out,
            "<text x=\"110\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"118\" y=\"{y:.1}\" width=\"{w:.1}\" \
             height=\"18\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{n}</text>",
            y + 13.0,
            E(label),
            PALETTE[i % PALETTE.len()],
            122.0 + w,
            y + 13.0
        );
    }
    let _ = write!(out, "</svg><figcaption>{}</figcaption></figure>", E(title));
    out
}

/// Which of `buckets` buckets a time falls in, if any.
trait Buckets: Fn(Timestamp) -> Option<usize> {}
impl<F: Fn(Timestamp) -> Option<usize>> Buckets for F {}

/// Buckets of `step` from `start`.
fn steps(start: Timestamp, step: TimeDelta, buckets: usize) -> impl Buckets {
    move |at: Timestamp| {
        let offset = (at - start).num_milliseconds();
        let b = usize::try_from(offset / step.num_milliseconds()).ok().filter(|_| offset >= 0)?;
        (b < buckets).then_some(b)
    }
}

/// Buckets of the days from `first` in `zone`: a day with a clock change has 23 or 25 hours.
fn local_days(zone: Tz, first: chrono::NaiveDate, buckets: usize) -> impl Buckets {
    move |at: Timestamp| {
        let b = usize::try_from((at.with_timezone(&zone).date_naive() - first).num_days()).ok()?;
        (b < buckets).then_some(b)
    }
}

/// Counts per bucket and key, with the keys in a fixed order.
fn bucketed(
    messages: &[(Timestamp, String, String)],
    bucket: &impl Buckets,
    buckets: usize,
    key: impl Fn(&(Timestamp, String, String)) -> String,
    series: &[String],
) -> Vec<Vec<u64>> {
    let index: HashMap<&str, usize> = series.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
    let other = series.iter().position(|s| s == "other");
    let mut counts = vec![vec![0u64; series.len()]; buckets];
    for m in messages {
        let Some(b) = bucket(m.0) else { continue };
        let k = key(m);
        if let Some(s) = index.get(k.as_str()).copied().or(other) {
            counts[b][s] += 1;
        }
    }
    counts
}

fn spikes(alerts: &[SpikeAlert], bucket: &impl Buckets) -> Vec<(usize, String)> {
    alerts
        .iter()
        .filter_map(|a| {
            let b = bucket(a.created_at)?;
            Some((b, format!("spike: {} {} ({} customers)", a.service, a.region.as_deref().unwrap_or(""), a.count)))
        })
        .collect()
}

pub async fn page(State(state): State<AppState>, staff: Staff) -> Response {
    if let Err(r) = staff.require_admin() {
        return r;
    }
    let now = Utc::now();
    let zone = state.ticketing.policy().sla.timezone;
    let hour = TimeDelta::hours(1);
    let hours_start = now.duration_trunc(hour).unwrap_or(now) - hour * 47;
    let first_day = now.with_timezone(&zone).date_naive() - chrono::Days::new(29);
    let days_start = webcare_app::reports::day_start(&zone, first_day);
    let (per_hour, per_day) = (steps(hours_start, hour, 48), local_days(zone, first_day, 30));
    let loaded = async {
        let messages =
            webcare_app::reports::messages_since(state.store.as_ref(), days_start).await.map_err(|e| e.to_string())?;
        let alerts = state.store.alerts().await.map_err(|e| e.to_string())?;
        let tickets = state.store.find_tickets(&TicketFilter::default()).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((messages, alerts, tickets))
    };
    let ((messages, cut), alerts, tickets) = match loaded.await {
        Ok(l) => l,
        Err(e) => return unavailable(e, Some(&staff)),
    };
    let rows: Vec<(Timestamp, String, String)> = messages.into_iter().map(|m| (m.at, m.category, m.region)).collect();

    let mut categories: Vec<String> = super::tickets::CATEGORIES.iter().map(|c| (*c).to_owned()).collect();
    if rows.iter().any(|r| !categories.contains(&r.1)) {
        categories.push("unclassified".to_owned());
    }
    let mut region_totals: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &rows {
        *region_totals.entry(r.2.as_str()).or_default() += 1;
    }
    let mut ranked: Vec<(&str, u64)> = region_totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut regions: Vec<String> = ranked.iter().take(TOP_REGIONS).map(|(r, _)| (*r).to_owned()).collect();
    if ranked.len() > TOP_REGIONS {
        regions.push("other".to_owned());
    }

    let hour_labels: Vec<String> =
        (0..48).map(|i| (hours_start + hour * i).with_timezone(&zone).format("%d %H:00").to_string()).collect();
    let day_labels: Vec<String> = first_day.iter_days().take(30).map(|d| d.format("%m-%d").to_string()).collect();
    let charts = [
        Chart {
            title: "Messages per category per hour (last 48 hours)",
            labels: hour_labels.clone(),
            counts: bucketed(&rows, &per_hour, 48, |m| m.1.clone(), &categories),
            series: categories.clone(),
            spikes: spikes(&alerts, &per_hour),
            label_every: 6,
        },
        Chart {
            title: "Messages per category per day (last 30 days)",
            labels: day_labels.clone(),
            counts: bucketed(&rows, &per_day, 30, |m| m.1.clone(), &categories),
            series: categories.clone(),
            spikes: spikes(&alerts, &per_day),
            label_every: 3,
        },
        Chart {
            title: "Messages per region per hour (last 48 hours)",
            labels: hour_labels,
            counts: bucketed(&rows, &per_hour, 48, |m| m.2.clone(), &regions),
            series: regions.clone(),
            spikes: spikes(&alerts, &per_hour),
            label_every: 6,
        },
        Chart {
            title: "Messages per region per day (last 30 days)",
            labels: day_labels,
            counts: bucketed(&rows, &per_day, 30, |m| m.2.clone(), &regions),
            series: regions,
            spikes: spikes(&alerts, &per_day),
            label_every: 3,
        },
    ];

    let mut body = String::new();
    let _ = write!(
        body,
        "<p class=\"count\">{} messages in the last 30 days, {} spike alerts.{}</p>",
        rows.len(),
        alerts.iter().filter(|a| a.created_at >= days_start).count(),
        if cut { " Only the oldest 200,000 messages are counted." } else { "" }
    );
    body.push_str("<div class=\"charts\">");
    for c in &charts {
        body.push_str(&stacked(c));
    }
    let states: Vec<(String, u64)> = TicketState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), tickets.iter().filter(|t| t.state == *s).count() as u64))
        .collect();
    body.push_str("<div class=\"pair\">");
    body.push_str(&bars("Tickets per state", &states));
    let waits = webcare_app::reports::first_response_minutes(&tickets);
    let limits: [(&str, i64); 5] =
        [("< 15 min", 15), ("< 1 h", 60), ("< 4 h", 240), ("< 1 day", 1440), ("1 day +", i64::MAX)];
    let mut lower = 0;
    let buckets: Vec<(String, u64)> = limits
        .iter()
        .map(|(label, upper)| {
            let n = waits.iter().filter(|w| **w >= lower && **w < *upper).count() as u64;
            lower = *upper;
            ((*label).to_owned(), n)
        })
        .collect();
    let percentile = |p: usize| webcare_app::reports::percentile(&waits, p);
    let caption = match (percentile(50), percentile(90)) {
        (Some(m), Some(p90)) if !waits.is_empty() => {
            format!("First-response times ({} tickets; median {m} min, 90% within {p90} min)", waits.len())
        }
        _ => "First-response times (no answered tickets yet)".to_owned(),
    };
    body.push_str(&bars(&caption, &buckets));
    body.push_str("</div></div>");
    html::page(StatusCode::OK, "Reports", Some(&staff), Live::default(), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_fall_into_their_buckets_and_spikes_are_marked() {
        let start = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let hour = TimeDelta::hours(1);
        let rows = vec![
            (start, "outage".to_owned(), "Utrecht".to_owned()),
            (start + TimeDelta::minutes(59), "billing".to_owned(), "Gent".to_owned()),
            (start + TimeDelta::minutes(61), "outage".to_owned(), "<b>x</b>".to_owned()),
            (start - TimeDelta::minutes(1), "outage".to_owned(), "Utrecht".to_owned()),
        ];
        let series = vec!["outage".to_owned(), "billing".to_owned()];
        let counts = bucketed(&rows, &steps(start, hour, 2), 2, |m| m.1.clone(), &series);
        assert_eq!(counts, vec![vec![1, 1], vec![1, 0]]);
        let regions = vec!["Utrecht".to_owned(), "other".to_owned()];
        let counts = bucketed(&rows, &steps(start, hour, 2), 2, |m| m.2.clone(), &regions);
        assert_eq!(counts, vec![vec![1, 1], vec![0, 1]], "unlisted regions count as other");

        // The team's days: in Amsterdam 23:30 UTC in November is already the next day.
        let amsterdam: Tz = "Europe/Amsterdam".parse().unwrap();
        let first = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let day = local_days(amsterdam, first, 2);
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert_eq!(day(at("2026-11-24T22:30:00Z")), Some(0));
        assert_eq!(day(at("2026-11-24T23:30:00Z")), Some(1));
        assert_eq!((day(at("2026-11-23T22:59:00Z")), day(at("2026-11-25T23:00:00Z"))), (None, None));

        let svg = stacked(&Chart {
            title: "t",
            labels: vec!["a".into(), "<b>".into()],
            series: vec!["<i>r</i>".into()],
            counts: vec![vec![1], vec![2]],
            spikes: vec![(1, "spike <here>".into())],
            label_every: 1,
        });
        assert!(svg.contains("class=\"spike\"") && svg.contains("spike &lt;here&gt;"), "{svg}");
        assert!(!svg.contains("<b>") && !svg.contains("<i>"), "labels are escaped: {svg}");
        assert_eq!(svg.matches("<rect").count(), 3, "a legend swatch and two bars: {svg}");
    }
}
