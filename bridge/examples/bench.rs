//! Runs the classification benchmarks as `webcare bench classify` will: on the built-in synthetic corpus, or on the
//! texts of a CSV/JSONL file given on the command line. Prints the figures, then one JSON object as the last line.

use std::sync::Arc;
use std::time::Duration;

use webcare_bridge::{Classifier, InputFormat, bench_classify, bench_engine, sample_corpus};

fn main() {
    let texts: Vec<String> = match std::env::args().nth(1) {
        Some(path) => {
            let path = std::path::PathBuf::from(path);
            let file = std::fs::File::open(&path).expect("open input");
            webcare_bridge::replay::read_records(file, InputFormat::from_path(&path))
                .expect("read input")
                .into_iter()
                .map(|r| r.text)
                .collect()
        }
        None => sample_corpus(1000),
    };
    let classifier = Arc::new(Classifier::default());
    let classify = bench_classify(&classifier, &texts, Duration::from_secs(3));
    let engine = bench_engine(classifier, &texts, Duration::from_secs(3));
    println!("{classify}");
    println!("{engine}");
    println!("{}", serde_json::json!({ "classify": classify, "classify_engine": engine }));
}
