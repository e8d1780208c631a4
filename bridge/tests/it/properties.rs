//! Property tests: no input panics the classifier, and its time grows linearly with the input.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use webcare_bridge::Classifier;

fn classifier() -> &'static Classifier {
    static C: std::sync::OnceLock<Classifier> = std::sync::OnceLock::new();
    C.get_or_init(Classifier::default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_unicode_classifies_without_panic(text in any::<String>(), hint in proptest::option::of(any::<String>())) {
        let c = classifier().classify(&text, hint.as_deref());
        let nfkc_len = webcare_bridge::normalize::normalize(&text).nfkc.len();
        for f in &c.pii {
            prop_assert!(f.start < f.end && f.end <= nfkc_len);
        }
        let _ = classifier().mask(&text);
    }

    #[test]
    fn message_like_text_classifies_without_panic(text in "[ a-zA-Z0-9@#:/.,'?!+\\-éëï€😀]{0,400}") {
        let _ = classifier().classify(&text, None);
    }
}

/// Time to classify `text` (best of three, so a scheduling hiccup does not decide the test).
fn time(text: &str) -> Duration {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(classifier().classify(text, Some(text)));
            start.elapsed()
        })
        .min()
        .unwrap()
}

#[test]
fn huge_inputs_take_linear_time() {
    // Inputs built to trouble a naive matcher: repeated terms, long digit runs, many place words, many mentions.
    let units = [
        "storing geen internet in Utrecht 3512 AB ",
        "0612345678 ",
        "in In in In ",
        "@a@b@c ##x ",
        "😀\u{301}ǅﬁ ",
        "1 2 3 4 5 6 7 8 9 0 . - ",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "down in salisbury md, Santa Clarita CA in the Long Beach, Ca area in new jersey IN OR ",
    ];
    for unit in units {
        let small = unit.repeat(1_000);
        let large = unit.repeat(8_000);
        let (t_small, t_large) = (time(&small), time(&large));
        // Eight times the input may take at most ~3 times the linear share, with a floor for timer noise.
        let limit = t_small * 24 + Duration::from_millis(20);
        assert!(t_large <= limit, "{unit:?}: {t_small:?} for 1k units, {t_large:?} for 8k units");
    }
    assert_eq!(classifier().classify("", None).pii.len(), 0);
}
