//! Error analysis for the classifier on a labelled CSV/JSONL file (as `eval` reads it): one tab-separated line per
//! message with the id, the label, our intent, the confidence, the rule that decided, the terms that fired (group:term,
//! weight), service, region and the text. Grep it, or group it by rule and term, to find families of errors:
//! `cargo run --release -p webcare-bridge --example errors -- ../shared/data/isp-messages-dev.csv > /tmp/rows.tsv`.
//! The dataset stays outside the repository; this only reads the path it is given and writes to standard output.

use webcare_bridge::{Classifier, InputFormat, Reason, replay::read_records};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: errors FILE");
        std::process::exit(2);
    };
    let path = std::path::PathBuf::from(path);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        eprintln!("cannot open {}: {e}", path.display());
        std::process::exit(1);
    });
    let records = read_records(file, InputFormat::from_path(&path)).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    });
    let classifier = Classifier::default();
    println!("id\tlabel\tours\tconfidence\trule\tscores\tterms\tservice\tregion\tcluster\tcreated_at\taccount\ttext");
    for r in &records {
        let place = (!r.place.trim().is_empty()).then_some(r.place.as_str());
        let c = classifier.classify(&r.text, place);
        let mut rule = String::new();
        let mut terms = Vec::new();
        let mut scores = String::new();
        for reason in &c.reasons {
            match reason {
                Reason::Rule { rule: r } => rule = r.clone(),
                Reason::Scores { outage, case, other } => scores = format!("{outage}/{case}/{other}"),
                Reason::Term { group, term, weight } => terms.push(format!("{group}:{term}({weight})")),
                _ => {}
            }
        }
        let label = match r.intent.trim() {
            "disruption" => "outage",
            other => other,
        };
        let region = c.region.as_ref().map_or(String::from("-"), |g| format!("{}|{}", g.name, g.key));
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.id,
            label,
            c.intent.as_str(),
            r.confidence.trim(),
            rule,
            scores,
            terms.join(" "),
            c.service,
            region,
            r.cluster.trim(),
            r.created_at,
            r.account,
            r.text.replace(['\t', '\n', '\r'], " ")
        );
    }
}
