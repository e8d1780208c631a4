//! Data-driven classification cases from `tests/cases.toml`, checked through one `check` helper so the classifier's
//! API can change without rewriting every case.

use serde::Deserialize;
use webcare_bridge::{Classification, Classifier};

#[derive(Debug, Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    text: String,
    #[serde(default)]
    hint: Option<String>,
    intent: Option<String>,
    category: Option<String>,
    service: Option<String>,
    region: Option<String>,
    language: Option<String>,
    pii: Option<Vec<String>>,
    /// Whether the message says the outage is shared or names it outright (it may join a cluster without a place).
    widespread: Option<bool>,
}

/// Compares the fields a case names with what the classifier says; returns the differences.
fn check(classifier: &Classifier, case: &Case) -> Vec<String> {
    let got: Classification = classifier.classify(&case.text, case.hint.as_deref());
    let mut diffs = Vec::new();
    let mut cmp = |field: &str, expected: &Option<String>, actual: String| {
        if let Some(e) = expected
            && *e != actual
        {
            diffs.push(format!("{field}: expected {e:?}, got {actual:?}"));
        }
    };
    cmp("intent", &case.intent, got.intent.as_str().to_owned());
    cmp("category", &case.category, got.category.as_str().to_owned());
    cmp("service", &case.service, got.service.as_str().to_owned());
    cmp("region", &case.region, got.region.as_ref().map_or("-".to_owned(), |r| r.name.clone()));
    cmp("language", &case.language, got.language.code().to_owned());
    cmp("widespread", &case.widespread.map(|w| w.to_string()), got.widespread.to_string());
    if let Some(pii) = &case.pii {
        let kinds = got.pii_kinds();
        if *pii != kinds {
            diffs.push(format!("pii: expected {pii:?}, got {kinds:?}"));
        }
    }
    if !diffs.is_empty() {
        diffs.push(format!("reasons: {}", serde_json::to_string(&got.reasons).unwrap()));
    }
    diffs
}

#[test]
fn cases_in_dutch_and_english() {
    let cases: Cases = toml::from_str(include_str!("../cases.toml")).unwrap();
    let classifier = Classifier::default();
    let mut failures = Vec::new();
    for case in &cases.case {
        let diffs = check(&classifier, case);
        if !diffs.is_empty() {
            failures.push(format!("{:?}\n  {}", case.text, diffs.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.case.len(), failures.join("\n"));
}

#[test]
fn place_hint_counts_when_the_text_names_no_place() {
    let classifier = Classifier::default();
    let got = classifier.classify("geen internet", Some("Utrecht, Nederland"));
    assert_eq!(got.region.unwrap().name, "Utrecht");
    let got = classifier.classify("storing in Leiden", Some("Utrecht"));
    assert_eq!(got.region.unwrap().name, "Leiden", "the text wins over the hint");
}

#[test]
fn regions_are_compatible_through_aliases_postcodes_and_provinces() {
    let c = Classifier::default();
    let den_bosch = c.resolve_region("Den Bosch").unwrap();
    let hertogenbosch = c.resolve_region("'s-Hertogenbosch").unwrap();
    assert!(den_bosch.compatible(&hertogenbosch));
    let utrecht = c.resolve_region("Utrecht").unwrap();
    let postcode = c.classify("storing 3512 AB", None).region.unwrap();
    assert!(utrecht.compatible(&postcode), "{postcode:?}");
    let province = c.resolve_region("Noord-Brabant").unwrap();
    assert!(den_bosch.within(&province));
    assert!(!utrecht.within(&province));
    let malines = c.resolve_region("Malines").unwrap();
    assert_eq!(malines.name, "Mechelen");
    assert!(c.resolve_region("Bruxelles").unwrap().compatible(&c.resolve_region("Brussels").unwrap()));
    let zip1 = c.resolve_region("90027").unwrap();
    let zip2 = c.resolve_region("90031").unwrap();
    assert!(zip1.compatible(&zip2));
    assert!(!zip1.compatible(&c.resolve_region("85037").unwrap()));
}

#[test]
fn us_places_are_compared_by_place_and_state() {
    let c = Classifier::default();
    let region = |text: &str| c.classify(text, None).region.unwrap_or_else(|| panic!("no region in {text:?}"));
    let salisbury_md = region("outage in salisbury md");
    let salisbury_md_again = region("Internet down in Salisbury, MD?");
    let salisbury_ma = region("Internet down in Salisbury, MA?");
    let ocean_city_md = region("outage in ocean city md");
    assert!(salisbury_md.compatible(&salisbury_md_again));
    assert!(!salisbury_md.compatible(&salisbury_ma), "the same name in two states is two places");
    assert!(!salisbury_md.compatible(&ocean_city_md), "two places in one state are two places");
    // A state scopes a notice over its places and ZIP codes, but does not group them into one cluster.
    let maryland = c.resolve_region("Maryland").unwrap();
    assert!(salisbury_md.within(&maryland));
    assert!(!salisbury_ma.within(&maryland));
    assert!(!salisbury_md.compatible(&maryland));
    let zip = region("internet down in 21801");
    assert_eq!(zip.province.as_deref(), Some("us-md"));
    assert!(zip.within(&maryland));
    assert!(!zip.within(&c.resolve_region("Texas").unwrap()));
    // A platform hint in the usual "City, ST" form.
    let hint = c.classify("internet down", Some("Salisbury, MD")).region.unwrap();
    assert!(hint.compatible(&salisbury_md), "{hint:?}");
    // Words that are no place before a state do not make one.
    assert_eq!(c.classify("I am in my house TX", None).region, None);
}

#[test]
fn masking_never_shows_the_data() {
    let c = Classifier::default();
    let masked = c.mask("bel 06-12345678 of mail a@b.nl, IBAN NL91ABNA0417164300");
    assert!(!masked.contains("12345678") && !masked.contains("a@b.nl") && !masked.contains("0417164300"), "{masked}");
    assert!(masked.contains("[phone]") && masked.contains("[email]") && masked.contains("[iban]"), "{masked}");
}
