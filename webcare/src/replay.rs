//! `webcare replay`, `webcare eval` and `webcare bench classify`: the bridge over files, without sending anything.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use webcare_bridge::{InputFormat, ReplayOptions};
use webcare_config::Config;

use crate::cli::Clustering;

/// A progress line on standard error, only when it is a terminal (a log file gets the summary alone).
fn progress() -> impl FnMut(usize, usize) {
    let tty = std::io::stderr().is_terminal();
    let mut last = Instant::now() - Duration::from_secs(1);
    move |done, total| {
        if !tty || (last.elapsed() < Duration::from_millis(100) && done < total) {
            return;
        }
        last = Instant::now();
        let width = 30;
        let filled = (done * width).checked_div(total).unwrap_or(width).min(width);
        eprint!("\r[{}{}] {done}/{total}", "#".repeat(filled), " ".repeat(width - filled));
        if done >= total {
            eprintln!();
        }
    }
}

fn open(file: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))
}

/// Replay options with the command line's clustering settings.
fn options(clustering: &Clustering) -> anyhow::Result<ReplayOptions> {
    let mut options = match &clustering.window {
        Some(w) => {
            let secs = webcare_bridge::parse_duration(w)
                .map_err(|e| anyhow::anyhow!("--window `{w}`: {e} (a duration such as 30m or 3h)"))?;
            ReplayOptions::default().with_window(secs)
        }
        None => ReplayOptions::default(),
    };
    if clustering.regions_only {
        options.engine.cluster_without_region = false;
    }
    Ok(options)
}

pub fn replay(
    config: &Config,
    file: &Path,
    notices: Option<&Path>,
    out: Option<&Path>,
    clustering: &Clustering,
    changes: &[webcare_domain::LexiconChange],
) -> anyhow::Result<()> {
    let classifier = Arc::new(crate::cli::classifier_with(config, changes)?);
    let mut options = options(clustering)?;
    if let Some(path) = notices {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        options.notices = webcare_bridge::read_notices(&text).with_context(|| format!("in {}", path.display()))?;
    }
    let input = open(file)?;
    let mut writer: Box<dyn std::io::Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let summary =
        webcare_bridge::replay(classifier, input, InputFormat::from_path(file), &options, &mut writer, &mut progress())
            .with_context(|| format!("replay {}", file.display()))?;
    writer.flush().context("write the replay output")?;
    drop(writer);
    eprintln!("{summary}");
    Ok(())
}

pub fn eval(
    config: &Config,
    file: &Path,
    clustering: &Clustering,
    changes: &[webcare_domain::LexiconChange],
) -> anyhow::Result<()> {
    let classifier = Arc::new(crate::cli::classifier_with(config, changes)?);
    let report = webcare_bridge::eval(
        classifier,
        open(file)?,
        InputFormat::from_path(file),
        &options(clustering)?,
        &mut progress(),
    )
    .with_context(|| format!("evaluate {}", file.display()))?;
    print!("{report}");
    println!("{}", serde_json::to_string(&report).context("serialise the report")?);
    Ok(())
}

pub fn bench_classify(config: &Config, file: Option<&Path>, seconds: f64) -> anyhow::Result<()> {
    if !(seconds > 0.0 && seconds <= 600.0) {
        anyhow::bail!("--seconds must be more than 0 and at most 600");
    }
    let classifier = Arc::new(crate::cli::classifier(config)?);
    let texts = match file {
        Some(path) => texts_of(path)?,
        None => webcare_bridge::sample_corpus(10_000),
    };
    if texts.is_empty() {
        anyhow::bail!("no texts to classify");
    }
    let min = Duration::from_secs_f64(seconds);
    let classify = webcare_bridge::bench_classify(&classifier, &texts, min);
    println!("{classify}");
    let engine = webcare_bridge::bench_engine(classifier, &texts, min);
    println!("{engine}");
    let json = serde_json::json!({
        "bench": "classify",
        "source": file.map_or("synthetic".to_owned(), |p| p.display().to_string()),
        "classify": classify,
        "classify_and_engine": engine,
    });
    println!("{json}");
    Ok(())
}

/// The `text` of every row of a CSV or JSONL file.
fn texts_of(path: &Path) -> anyhow::Result<Vec<String>> {
    let records = webcare_bridge::replay::read_records(open(path)?, InputFormat::from_path(path))
        .with_context(|| format!("read {}", path.display()))?;
    Ok(records.into_iter().map(|r| r.text).collect())
}
