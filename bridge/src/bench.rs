//! Benchmarks for `webcare bench classify`: classification alone, and classification with the engine (clustering).
//!
//! They run on texts the caller gives (a replay file's messages) or on a built-in synthetic corpus of Dutch and
//! English messages, repeat them until a minimum time has passed, and report messages per second and nanoseconds per
//! message. The caller pins the process to one core if it wants a one-core figure; these functions use one thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta};
use serde::{Deserialize, Serialize};

use crate::classify::Classifier;
use crate::engine::{Engine, EngineConfig, Incoming};

/// What a benchmark measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub name: String,
    pub messages: u64,
    pub seconds: f64,
    pub messages_per_sec: f64,
    pub ns_per_message: f64,
    /// Mean length of the texts in bytes.
    pub mean_bytes: f64,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} messages in {:.2} s: {:.0} messages/s, {:.0} ns/message (mean {:.0} bytes)",
            self.name, self.messages, self.seconds, self.messages_per_sec, self.ns_per_message, self.mean_bytes
        )
    }
}

/// A synthetic corpus: Dutch and English outage questions, cases, chit-chat and private data, with places and
/// postcodes, `n` messages long. Deterministic, so figures compare across runs.
pub fn sample_corpus(n: usize) -> Vec<String> {
    const TEMPLATES: [&str; 16] = [
        "@webcare storing in {place}? Geen internet sinds {hour} uur",
        "Is er een storing? Tv doet het niet meer in {place}, zwart beeld",
        "Geen bereik in {place} sinds vanochtend, bellen lukt niet",
        "Mijn factuur klopt niet, er is dubbel afgeschreven. Klantnummer 1234{hour}5678",
        "Ik ga verhuizen naar {place}, kan mijn abonnement mee?",
        "Bedankt voor de snelle hulp! Fijne dag",
        "De monteur is niet gekomen voor de installatie, bel me op 06-123456{hour}",
        "wifi valt steeds weg hier in {place}, ook bij de buren",
        "is the internet down in {place}? no connection since {hour}am",
        "No signal in 35{hour} since this morning, anyone else?",
        "Why was I charged twice on my bill? I want a refund asap",
        "Thanks so much for fixing it so quickly 🙏",
        "I'm moving next month, how do I transfer my service to my new address?",
        "TV channels keep freezing and pixelating tonight #outage",
        "My account number is 98765{hour}4321, please call me back",
        "Hallo, graag contact over mijn contract dat afloopt",
    ];
    const PLACES: [&str; 10] = [
        "Utrecht",
        "Den Bosch",
        "Amsterdam",
        "Mechelen",
        "Brussel",
        "Gent",
        "3512 AB",
        "Leiden",
        "Salisbury Mass",
        "Eindhoven",
    ];
    (0..n)
        .map(|i| {
            TEMPLATES[i % TEMPLATES.len()]
                .replace("{place}", PLACES[(i / TEMPLATES.len()) % PLACES.len()])
                .replace("{hour}", &format!("{:02}", i % 24))
        })
        .collect()
}

fn report(name: &str, messages: u64, elapsed: Duration, texts: &[String]) -> BenchReport {
    let seconds = elapsed.as_secs_f64();
    let bytes: usize = texts.iter().map(String::len).sum();
    BenchReport {
        name: name.to_owned(),
        messages,
        seconds,
        messages_per_sec: if seconds > 0.0 { messages as f64 / seconds } else { 0.0 },
        ns_per_message: if messages > 0 { elapsed.as_nanos() as f64 / messages as f64 } else { 0.0 },
        mean_bytes: if texts.is_empty() { 0.0 } else { bytes as f64 / texts.len() as f64 },
    }
}

/// Classifies `texts` over and over for at least `min_time` on the calling thread.
pub fn bench_classify(classifier: &Classifier, texts: &[String], min_time: Duration) -> BenchReport {
    if texts.is_empty() {
        return report("classify", 0, Duration::ZERO, texts);
    }
    // One pass first, so lazy initialisation inside the regex engines is not measured.
    for t in texts {
        std::hint::black_box(classifier.classify(t, None));
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < min_time {
        for t in texts {
            std::hint::black_box(classifier.classify(t, None));
        }
        n += texts.len() as u64;
    }
    report("classify", n, start.elapsed(), texts)
}

/// Classifies and runs the engine (notice matching, clustering, spike checks) over `texts` as messages one second
/// apart from 50 customers, for at least `min_time`.
pub fn bench_engine(classifier: Arc<Classifier>, texts: &[String], min_time: Duration) -> BenchReport {
    if texts.is_empty() {
        return report("classify+engine", 0, Duration::ZERO, texts);
    }
    let mut engine = Engine::new(EngineConfig::default(), classifier);
    let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < min_time {
        for t in texts {
            let customer = format!("c{}", n % 50);
            let msg = Incoming {
                id: n.to_string(),
                customer: customer.clone(),
                conversation: customer,
                account: "bench".into(),
                public: false,
                at: t0 + TimeDelta::seconds(n as i64),
                text: t.clone(),
                place: None,
                language: None,
            };
            std::hint::black_box(engine.process(&msg, &[]));
            n += 1;
        }
    }
    report("classify+engine", n, start.elapsed(), texts)
}
