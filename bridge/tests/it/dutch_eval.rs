//! The bridge's quality on two Dutch and Flemish evaluation sets written for the repository
//! (`tests/fixtures/eval-nl-*.csv`, see `tests/fixtures/README.md`): a development set whose errors the rules were
//! improved on, and a held-out set that was not read while writing them. Floors just under the measured figures
//! (`bridge/EVAL.md`), so a change that makes the Dutch reading worse fails here.

use std::sync::Arc;

use webcare_bridge::{Classifier, EvalReport, InputFormat, ReplayOptions, eval};

fn report(csv: &str) -> EvalReport {
    eval(Arc::new(Classifier::default()), csv.as_bytes(), InputFormat::Csv, &ReplayOptions::default(), &mut |_, _| {})
        .unwrap()
}

/// (figure, measured, floor): fails when a measured figure is below its floor.
fn check(set: &str, figures: &[(&str, f64, f64)]) {
    let low: Vec<String> = figures
        .iter()
        .filter(|(_, got, floor)| got < floor)
        .map(|(name, got, floor)| format!("{name} {got:.3} < {floor}"))
        .collect();
    assert!(low.is_empty(), "{set}: {}", low.join(", "));
}

#[test]
fn the_dutch_development_set_is_read_as_measured() {
    let r = report(include_str!("../fixtures/eval-nl-dev.csv"));
    assert_eq!(r.all.rows, 174);
    check(
        "development set",
        &[
            ("outage F1", r.all.outage.f1, 0.92),
            ("case F1", r.all.case.f1, 0.88),
            ("intent accuracy", r.all.intent_accuracy, 0.90),
            ("private data recall", r.all.pii.recall, 0.95),
            ("private data precision", r.all.pii.precision, 1.0),
            ("cluster pair precision", r.all.cluster.precision, 0.95),
            ("cluster pair recall", r.all.cluster.recall, 0.40),
        ],
    );
}

#[test]
fn the_dutch_held_out_set_is_read_as_measured() {
    let r = report(include_str!("../fixtures/eval-nl-holdout.csv"));
    assert_eq!(r.all.rows, 174);
    check(
        "held-out set",
        &[
            ("outage F1", r.all.outage.f1, 0.88),
            ("outage F1, high confidence", r.high.outage.f1, 0.90),
            ("case F1", r.all.case.f1, 0.80),
            ("intent accuracy", r.all.intent_accuracy, 0.80),
            ("private data recall", r.all.pii.recall, 0.95),
            ("private data precision", r.all.pii.precision, 1.0),
            ("cluster pair precision", r.all.cluster.precision, 0.90),
            ("cluster pair recall", r.all.cluster.recall, 0.20),
        ],
    );
}
