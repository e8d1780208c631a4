//! Runs `replay` on a CSV/JSONL file given on the command line, as `webcare replay FILE [--notices FILE]` will,
//! writing JSON lines to standard output and the summary last on standard error.

use std::sync::Arc;

use webcare_bridge::{Classifier, InputFormat, ReplayOptions, read_notices, replay};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first().map(std::path::PathBuf::from) else {
        eprintln!("usage: replay FILE [--notices FILE] [--window DURATION] [--regions-only]");
        std::process::exit(2);
    };
    let mut options = ReplayOptions::default();
    options.engine.cluster_without_region = !args.iter().any(|a| a == "--regions-only");
    if let Some(i) = args.iter().position(|a| a == "--window") {
        let secs = webcare_bridge::parse_duration(args.get(i + 1).map_or("", String::as_str)).unwrap_or_else(|e| {
            eprintln!("--window: {e}");
            std::process::exit(2);
        });
        options = options.with_window(secs);
    }
    if let Some(i) = args.iter().position(|a| a == "--notices") {
        let text = std::fs::read_to_string(args.get(i + 1).map_or("", String::as_str)).unwrap_or_else(|e| {
            eprintln!("cannot read notices: {e}");
            std::process::exit(1);
        });
        options.notices = read_notices(&text).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1);
        });
    }
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        eprintln!("cannot open {}: {e}", path.display());
        std::process::exit(1);
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let summary = replay(
        Arc::new(Classifier::default()),
        file,
        InputFormat::from_path(&path),
        &options,
        &mut out,
        &mut |_, _| {},
    )
    .unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    });
    drop(out);
    eprintln!("{summary}");
}
