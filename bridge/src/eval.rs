//! Evaluation: replay a labelled file and measure how well the bridge agrees with the labels.
//!
//! Labels (columns of the input): `intent` (`disruption` or `outage`, `case`, `other`), `pii` (`yes`/`no`),
//! `cluster` (an id shared by messages of different customers about the same outage; `-` or empty for none) and
//! `confidence` (`high`/`low`). Figures are precision, recall and F1 per intent, private-data precision and recall
//! (a message has private data or not), and clustering as pairwise precision and recall: over all pairs of messages,
//! a pair is "ours" when both are in the same cluster of ours, "labelled" when both carry the same cluster label.
//! A cluster of ours that never had two distinct customers counts as no cluster, matching the label's definition.
//! Every figure is given for all rows and for rows labelled `high` (for pairs: both rows `high`).

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::classify::{Classifier, Intent};
use crate::replay::{Event, InputFormat, ReplayError, ReplayOptions, read_records, run};

/// Precision, recall and F1 with the counts behind them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
}

impl Prf {
    fn from_counts(tp: usize, fp: usize, fn_: usize) -> Prf {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
        Prf { precision: round(precision), recall: round(recall), f1: round(f1), tp, fp, fn_ }
    }
}

/// The figures for one set of rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub rows: usize,
    pub outage: Prf,
    pub case: Prf,
    pub other: Prf,
    /// Share of rows whose intent matches the label.
    pub intent_accuracy: f64,
    pub pii: Prf,
    /// Pairwise clustering: tp = pairs in one cluster of ours that share a label, fp = our other pairs,
    /// fn = labelled pairs we did not put together.
    pub cluster: Prf,
}

/// The result of `webcare eval`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub all: Figures,
    pub high: Figures,
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<22} {:>26} {:>26}",
            "",
            format!("all rows ({})", self.all.rows),
            format!("high confidence ({})", self.high.rows)
        )?;
        let line = |f: &mut std::fmt::Formatter<'_>, name: &str, a: &Prf, h: &Prf| {
            let cell = |p: &Prf| format!("P {:.3} R {:.3} F1 {:.3}", p.precision, p.recall, p.f1);
            writeln!(f, "{name:<22} {:>26} {:>26}", cell(a), cell(h))
        };
        line(f, "intent outage", &self.all.outage, &self.high.outage)?;
        line(f, "intent case", &self.all.case, &self.high.case)?;
        line(f, "intent other", &self.all.other, &self.high.other)?;
        line(f, "private data", &self.all.pii, &self.high.pii)?;
        line(f, "cluster pairs", &self.all.cluster, &self.high.cluster)?;
        writeln!(
            f,
            "{:<22} {:>26} {:>26}",
            "intent accuracy",
            format!("{:.3}", self.all.intent_accuracy),
            format!("{:.3}", self.high.intent_accuracy)
        )
    }
}

struct Row {
    high: bool,
    gold: Option<Intent>,
    ours: Intent,
    gold_pii: Option<bool>,
    ours_pii: bool,
    gold_cluster: Option<String>,
    ours_cluster: Option<i64>,
}

/// `webcare eval`: replays a labelled file and computes the figures. `progress(done, total)` after every message.
pub fn eval(
    classifier: Arc<Classifier>,
    input: impl Read,
    format: InputFormat,
    options: &ReplayOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport, ReplayError> {
    let records = read_records(input, format)?;
    if let Some(r) = records.iter().find(|r| r.intent.trim().is_empty()) {
        return Err(ReplayError::Row { line: r.line, message: format!("message {} has no `intent` label", r.id) });
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut customers: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    run(
        classifier,
        records,
        options,
        &mut |event| {
            if let Event::Message(p) = event {
                let r = &p.record;
                let gold = match r.intent.trim().to_ascii_lowercase().as_str() {
                    "disruption" | "outage" => Some(Intent::Outage),
                    "case" => Some(Intent::Case),
                    "other" => Some(Intent::Other),
                    _ => None,
                };
                let gold_pii = match r.pii.trim().to_ascii_lowercase().as_str() {
                    "yes" | "true" | "1" => Some(true),
                    "no" | "false" | "0" => Some(false),
                    _ => None,
                };
                let label = r.cluster.trim();
                let ours_cluster = p.decision.cluster.map(|c| c.0);
                if let Some(c) = ours_cluster {
                    // A long text posted twice is one customer, as the engine counts it.
                    let folded = crate::engine::copy_key(&r.text);
                    let who = customers.entry(c).or_default();
                    if folded.is_empty() || !who.iter().any(|(_, t)| *t == folded) {
                        who.push((p.decision.customer.clone(), folded));
                    }
                }
                rows.push(Row {
                    high: r.confidence.trim().eq_ignore_ascii_case("high"),
                    gold,
                    ours: p.decision.intent,
                    gold_pii,
                    ours_pii: !p.decision.pii.is_empty(),
                    gold_cluster: (!label.is_empty() && label != "-").then(|| label.to_owned()),
                    ours_cluster,
                });
            }
            Ok(())
        },
        progress,
    )?;
    // A cluster of ours with one customer is no group of customers: count it as no cluster.
    for row in &mut rows {
        if let Some(c) = row.ours_cluster {
            let mut who: Vec<String> =
                customers.get(&c).map(|v| v.iter().map(|(c, _)| c.clone()).collect()).unwrap_or_default();
            who.sort_unstable();
            who.dedup();
            if who.len() < 2 {
                row.ours_cluster = None;
            }
        }
    }
    let all: Vec<&Row> = rows.iter().collect();
    let high: Vec<&Row> = rows.iter().filter(|r| r.high).collect();
    Ok(EvalReport { all: figures(&all), high: figures(&high) })
}

fn figures(rows: &[&Row]) -> Figures {
    let intent = |which: Intent| {
        let (mut tp, mut fp, mut fn_) = (0, 0, 0);
        for r in rows.iter().filter(|r| r.gold.is_some()) {
            let (g, o) = (r.gold == Some(which), r.ours == which);
            match (g, o) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fn_ += 1,
                _ => {}
            }
        }
        Prf::from_counts(tp, fp, fn_)
    };
    let labelled: Vec<&&Row> = rows.iter().filter(|r| r.gold.is_some()).collect();
    let correct = labelled.iter().filter(|r| r.gold == Some(r.ours)).count();
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    for r in rows {
        match (r.gold_pii, r.ours_pii) {
            (Some(true), true) => tp += 1,
            (Some(false), true) => fp += 1,
            (Some(true), false) => fn_ += 1,
            _ => {}
        }
    }
    let pii = Prf::from_counts(tp, fp, fn_);
    Figures {
        rows: rows.len(),
        outage: intent(Intent::Outage),
        case: intent(Intent::Case),
        other: intent(Intent::Other),
        intent_accuracy: round(if labelled.is_empty() { 0.0 } else { correct as f64 / labelled.len() as f64 }),
        pii,
        cluster: pairs(rows),
    }
}

/// Pairwise clustering counts, in time linear in the rows: pairs are counted per group, not enumerated.
fn pairs(rows: &[&Row]) -> Prf {
    let choose2 = |n: usize| n * n.saturating_sub(1) / 2;
    let mut ours: HashMap<i64, usize> = HashMap::new();
    let mut gold: HashMap<&str, usize> = HashMap::new();
    let mut both: HashMap<(i64, &str), usize> = HashMap::new();
    for r in rows {
        if let Some(c) = r.ours_cluster {
            *ours.entry(c).or_default() += 1;
        }
        if let Some(g) = &r.gold_cluster {
            *gold.entry(g.as_str()).or_default() += 1;
        }
        if let (Some(c), Some(g)) = (r.ours_cluster, &r.gold_cluster) {
            *both.entry((c, g.as_str())).or_default() += 1;
        }
    }
    let our_pairs: usize = ours.values().map(|&n| choose2(n)).sum();
    let gold_pairs: usize = gold.values().map(|&n| choose2(n)).sum();
    let tp: usize = both.values().map(|&n| choose2(n)).sum();
    Prf::from_counts(tp, our_pairs - tp, gold_pairs - tp)
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
