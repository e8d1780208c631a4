//! Runs `eval` on a labelled CSV/JSONL file given on the command line, as `webcare eval FILE` will:
//! `cargo run --release -p webcare-bridge --example eval -- ../shared/data/isp-messages-dev.csv`.
//! Add `--regions-only` to evaluate with `cluster_without_region = false`, and `--window 3h` to cluster with a
//! window scaled to a sampled file's density (see `ReplayOptions::with_window` and EVAL.md). `--split even` or
//! `--split odd` evaluates only the rows whose id ends in an even or odd number: develop on one half, check the other.
//! `--countries be,nl` reads bare postcodes and shared place names as Belgian first (`bridge.countries`).
//! The dataset stays outside the repository; this only reads the path it is given.

use std::sync::Arc;

use webcare_bridge::replay::read_records;
use webcare_bridge::{Classifier, InputFormat, ReplayOptions, eval};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: eval FILE [--window DURATION] [--regions-only] [--split even|odd] [--countries be,nl]");
        std::process::exit(2);
    };
    let path = std::path::PathBuf::from(path);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        eprintln!("cannot open {}: {e}", path.display());
        std::process::exit(1);
    });
    // `--regions-only`: outage questions without a region are not grouped with each other.
    let mut options = ReplayOptions::default();
    options.engine.cluster_without_region = !std::env::args().any(|a| a == "--regions-only");
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--window") {
        let secs = webcare_bridge::parse_duration(args.get(i + 1).map_or("", String::as_str)).unwrap_or_else(|e| {
            eprintln!("--window: {e}");
            std::process::exit(2);
        });
        options = options.with_window(secs);
    }
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("{e}");
        std::process::exit(1);
    };
    // `--countries be,nl`: the operator's countries, its own first, as `bridge.countries` sets them for `webcare`.
    let classifier = Arc::new(match args.iter().position(|a| a == "--countries") {
        None => Classifier::default(),
        Some(i) => {
            let mut data = webcare_bridge::ClassifierData::embedded().unwrap_or_else(|e| fail(&e));
            data.pii.postcode_countries =
                args.get(i + 1).map_or("", String::as_str).split(',').map(|c| c.trim().to_owned()).collect();
            Classifier::new(&data, std::path::Path::new("<embedded>")).unwrap_or_else(|e| fail(&e))
        }
    });
    let report = match args.iter().position(|a| a == "--split").map(|i| args.get(i + 1).map_or("", String::as_str)) {
        None => {
            eval(classifier, file, InputFormat::from_path(&path), &options, &mut |_, _| {}).unwrap_or_else(|e| fail(&e))
        }
        Some(half @ ("even" | "odd")) => {
            let records = read_records(file, InputFormat::from_path(&path)).unwrap_or_else(|e| fail(&e));
            let parity = u64::from(half == "odd");
            let mut jsonl = Vec::new();
            for r in records.iter().filter(|r| id_number(&r.id) % 2 == parity) {
                serde_json::to_writer(&mut jsonl, r).expect("serialisable");
                jsonl.push(b'\n');
            }
            eval(classifier, jsonl.as_slice(), InputFormat::Jsonl, &options, &mut |_, _| {})
                .unwrap_or_else(|e| fail(&e))
        }
        Some(other) => {
            eprintln!("--split: `{other}`: expected even or odd");
            std::process::exit(2);
        }
    };
    print!("{report}");
    println!("{}", serde_json::to_string(&report).expect("serialisable"));
}

/// The number at the end of an id ("twcs-1234" → 1234), 0 when there is none.
fn id_number(id: &str) -> u64 {
    let digits: String =
        id.chars().rev().take_while(char::is_ascii_digit).collect::<Vec<_>>().into_iter().rev().collect();
    digits.parse().unwrap_or(0)
}
