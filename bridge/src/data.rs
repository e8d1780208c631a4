//! The classifier's data: lexicons, services, private-data patterns and regions, as TOML files.
//!
//! The defaults ship inside the binary (`include_str!` of `bridge/data/*.toml`); an admin can point webcare at a
//! directory holding files of the same names to change them without a rebuild. A file missing from that directory
//! falls back to the shipped one. Every error names the file and the key that is wrong.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use webcare_domain::{LexiconChange, LexiconChangeId, TermEdit};

/// The file names the classifier reads, in a data directory and among the embedded defaults.
pub const LEXICON_FILES: [&str; 2] = ["lexicon-nl.toml", "lexicon-en.toml"];
pub const SERVICES_FILE: &str = "services.toml";
pub const PII_FILE: &str = "pii.toml";
pub const REGIONS_FILE: &str = "regions.toml";

const EMBEDDED: [(&str, &str); 5] = [
    ("lexicon-nl.toml", include_str!("../data/lexicon-nl.toml")),
    ("lexicon-en.toml", include_str!("../data/lexicon-en.toml")),
    ("services.toml", include_str!("../data/services.toml")),
    ("pii.toml", include_str!("../data/pii.toml")),
    ("regions.toml", include_str!("../data/regions.toml")),
];

/// Why the classifier's data could not be loaded. Each variant names the file, and the key where one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{file}: cannot read: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: key `{key}`: {message}")]
    Invalid { file: PathBuf, key: String, message: String },
}

/// A language's lexicon: the words that mark the language, and groups of terms that point at an intent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LexiconFile {
    /// The language code (`nl`, `en`); answers are chosen by it.
    pub language: String,
    /// Frequent function words; they tell the language apart from others.
    #[serde(default)]
    pub markers: Vec<String>,
    #[serde(default, rename = "group")]
    pub groups: Vec<TermGroup>,
}

/// Terms that count towards one intent and category with one weight.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermGroup {
    pub name: String,
    /// `outage`, `case` or `other`.
    pub intent: String,
    /// `outage`, `billing`, `technical`, `contract`, `moving` or `other`.
    pub category: String,
    #[serde(default = "one")]
    pub weight: f32,
    /// The service the terms imply, where they imply one (`geen bereik` is mobile).
    #[serde(default)]
    pub service: Option<String>,
    /// The terms count only when the message names a service: "not working" is an outage when the internet is not
    /// working, and a case when a discount code is not.
    #[serde(default)]
    pub requires_service: bool,
    /// The terms say that others are affected or name an outage outright ("anyone else?", "storing", "hele wijk"):
    /// such a message may join an outage cluster even when it names no place.
    #[serde(default)]
    pub widespread: bool,
    /// The terms ask for a person ("ik wil iemand spreken", "call me back"): a message holding one is a case even
    /// when its thanks and greetings weigh more than its case words.
    #[serde(default)]
    pub asks_person: bool,
    /// Terms as written; a final `*` matches any word starting with the term, and ` .. ` between words matches one
    /// to three words in between ("ligt .. eruit" finds "ligt het internet eruit").
    pub terms: Vec<String>,
}

fn one() -> f32 {
    1.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesFile {
    #[serde(rename = "service")]
    pub services: Vec<ServiceTerms>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceTerms {
    /// `internet`, `tv`, `mobile` or `landline`.
    pub name: String,
    pub terms: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiFile {
    /// Two-letter country codes whose postcode format counts first when a bare 4-digit postcode is found.
    #[serde(default)]
    pub postcode_countries: Vec<String>,
    /// Local parts of role mailboxes (`care@`, `klantenservice@`): an organisation's address, not personal data.
    #[serde(default)]
    pub role_mailboxes: Vec<String>,
    #[serde(default, rename = "pattern")]
    pub patterns: Vec<PiiPattern>,
}

/// A configurable private-data pattern, for customer, contract and transaction numbers whose shape differs per operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiPattern {
    /// The kind reported in findings (`customer_number`).
    pub kind: String,
    /// A regular expression (Rust `regex` syntax, linear time by construction).
    pub regex: String,
    /// The capture group that holds the number itself; 0 is the whole match.
    #[serde(default)]
    pub group: usize,
    /// The least number of digits the number must hold.
    #[serde(default)]
    pub min_digits: usize,
    /// The least number of letters the number must hold.
    #[serde(default)]
    pub min_letters: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionsFile {
    #[serde(default, rename = "province")]
    pub provinces: Vec<PlaceEntry>,
    #[serde(default, rename = "place")]
    pub places: Vec<PlaceEntry>,
    #[serde(default, rename = "postcodes")]
    pub postcodes: Vec<PostcodeRange>,
    /// Words that, right before a place name, mark it as a place ("in", "te", "near"); an ambiguous name needs one.
    #[serde(default)]
    pub place_words: Vec<String>,
    /// Capitalised words after a place word that are not places ("in The morning", "in April").
    #[serde(default)]
    pub not_places: Vec<String>,
    /// Words after a place name that only name its state or country ("Texas", "TX"); dropped when comparing.
    #[serde(default)]
    pub qualifiers: Vec<String>,
    /// US states, for place phrases that name one ("outage in salisbury md", "Santa Clarita CA", "central jersey").
    #[serde(default)]
    pub us_states: Vec<UsState>,
    /// Words that, between a place word and a state, name a part of the state rather than a place ("northern NJ").
    #[serde(default)]
    pub state_area_words: Vec<String>,
    /// US ZIP codes by their first three digits, mapped to the state they lie in.
    #[serde(default)]
    pub zip_prefixes: Vec<ZipPrefixRange>,
}

/// A US state: its postal code, its name and other names ("Mass", "Jersey").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsState {
    /// The two-letter postal code, in capitals ("TX").
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The code is also a common English word ("IN", "OR", "ME"): it counts only written in capitals, after a comma
    /// ("Columbus, OH") or after a place word and a place ("in Auburn Twp OH").
    #[serde(default)]
    pub common_word: bool,
}

/// ZIP codes whose first three digits lie in `from..=to` belong to `state` (a code of `us_states`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZipPrefixRange {
    pub from: u16,
    pub to: u16,
    pub state: String,
}

/// A province or a municipality/town with its other names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceEntry {
    pub name: String,
    /// `nl` or `be`.
    pub country: String,
    /// The province a place lies in; empty for a province.
    #[serde(default)]
    pub province: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// A name that is also a common word ("Best", "Goes"): it counts only after a place word or as a hint.
    #[serde(default)]
    pub ambiguous: bool,
    /// Other names that are also common words ("Luik", "Namen"): they count only after a place word.
    #[serde(default)]
    pub ambiguous_aliases: Vec<String>,
    /// The municipality (another place's `name`) a district, neighbourhood or village lies in ("Leidsche Rijn" is
    /// part of Utrecht): compatible with it and its other parts for clusters, and within it for notices.
    #[serde(default)]
    pub part_of: Option<String>,
}

/// Postcodes `from..=to` (4 digits; NL ranges by their first two digits are written as `1000..=1199`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostcodeRange {
    pub country: String,
    pub from: u16,
    pub to: u16,
    /// The area the postcodes belong to: a town or a province name.
    pub area: String,
    pub province: String,
}

/// All data the classifier is built from.
#[derive(Debug, Clone)]
pub struct ClassifierData {
    pub lexicons: Vec<LexiconFile>,
    pub services: ServicesFile,
    pub pii: PiiFile,
    pub regions: RegionsFile,
}

impl ClassifierData {
    /// The data shipped with webcare.
    pub fn embedded() -> Result<ClassifierData, DataError> {
        Self::load(|name| Ok(embedded(name).map(str::to_owned)), Path::new("<embedded>"))
    }

    /// Reads the data files from a directory; a file that is not there falls back to the shipped default.
    pub fn from_dir(dir: &Path) -> Result<ClassifierData, DataError> {
        Self::load(
            |name| {
                let path = dir.join(name);
                match std::fs::read_to_string(&path) {
                    Ok(text) => Ok(Some(text)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(embedded(name).map(str::to_owned)),
                    Err(source) => Err(DataError::Read { file: path, source }),
                }
            },
            dir,
        )
    }

    fn load(read: impl Fn(&str) -> Result<Option<String>, DataError>, dir: &Path) -> Result<ClassifierData, DataError> {
        let get = |name: &str| -> Result<(PathBuf, String), DataError> {
            let file = dir.join(name);
            match read(name)? {
                Some(text) => Ok((file, text)),
                None => Err(DataError::Parse { file, message: "missing".into() }),
            }
        };
        let mut lexicons = Vec::new();
        for name in LEXICON_FILES {
            let (file, text) = get(name)?;
            lexicons.push(parse::<LexiconFile>(&file, &text)?);
        }
        let (file, text) = get(SERVICES_FILE)?;
        let services = parse(&file, &text)?;
        let (file, text) = get(PII_FILE)?;
        let pii = parse(&file, &text)?;
        let (file, text) = get(REGIONS_FILE)?;
        let regions = parse(&file, &text)?;
        Ok(ClassifierData { lexicons, services, pii, regions })
    }
}

impl ClassifierData {
    /// Applies admins' changes (kept in the database) over the files' lexicons, in order: an added term joins its
    /// group once, a removed one leaves it. A change whose language or group the files no longer have is left out
    /// and returned with why, so that a group renamed in a data file neither stops webcare nor loses the change.
    pub fn apply(&mut self, changes: &[LexiconChange]) -> Vec<(LexiconChangeId, String)> {
        let mut skipped = Vec::new();
        for change in changes {
            if change.language == REGIONS {
                // Another name for a province or place, under the name the regions file gives it.
                let regions = &mut self.regions;
                let Some(place) =
                    regions.provinces.iter_mut().chain(&mut regions.places).find(|p| p.name == change.group)
                else {
                    skipped.push((change.id, format!("the regions file has no place `{}`", change.group)));
                    continue;
                };
                let same = |t: &String| same_term(t, &change.term);
                match change.edit {
                    TermEdit::Add if !place.aliases.iter().chain(&place.ambiguous_aliases).any(same) => {
                        place.aliases.push(change.term.trim().to_owned());
                    }
                    TermEdit::Add => {}
                    TermEdit::Remove => {
                        place.aliases.retain(|t| !same(t));
                        place.ambiguous_aliases.retain(|t| !same(t));
                    }
                }
                continue;
            }
            let Some(lexicon) = self.lexicons.iter_mut().find(|l| l.language == change.language) else {
                skipped.push((change.id, format!("there is no lexicon for `{}`", change.language)));
                continue;
            };
            let Some(group) = lexicon.groups.iter_mut().find(|g| g.name == change.group) else {
                skipped.push((change.id, format!("the {} lexicon has no group `{}`", change.language, change.group)));
                continue;
            };
            let same = |t: &String| same_term(t, &change.term);
            match change.edit {
                TermEdit::Add if !group.terms.iter().any(same) => group.terms.push(change.term.trim().to_owned()),
                TermEdit::Add => {}
                TermEdit::Remove => group.terms.retain(|t| !same(t)),
            }
        }
        skipped
    }
}

/// The pseudo-language of the admins' changes to the regions: its groups are the provinces and places of the regions
/// file, its terms their other names.
pub const REGIONS: &str = "regions";

/// Whether two terms as written are the same term: case and surrounding space aside.
pub fn same_term(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn embedded(name: &str) -> Option<&'static str> {
    EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

/// Parses a TOML file; the error carries the key path and line that toml reports.
fn parse<T: for<'de> Deserialize<'de>>(file: &Path, text: &str) -> Result<T, DataError> {
    toml::from_str(text).map_err(|e| DataError::Parse { file: file.to_owned(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_data_loads() {
        let data = ClassifierData::embedded().unwrap();
        assert_eq!(data.lexicons.len(), 2);
        assert!(data.regions.places.len() > 100);
    }

    #[test]
    fn a_name_two_countries_share_is_read_in_the_operators_country() {
        let region = |countries: &[&str], text: &str| {
            let mut data = ClassifierData::embedded().unwrap();
            data.pii.postcode_countries = countries.iter().map(|c| c.to_string()).collect();
            let c = crate::Classifier::new(&data, Path::new("<test>")).unwrap().classify(text, None);
            c.region.map(|r| r.name)
        };
        for (text, nl_first, be_first) in [
            ("Storing in Deurne? geen internet", "Deurne", "Deurne (BE)"),
            ("geen tv meer in Limburg", "Limburg", "Limburg (BE)"),
            ("Internet weg in 9000", "Leeuwarden (9000)", "Gent (9000)"),
            ("Storing proximus 2140?", "Haarlemmermeer (2140)", "Antwerpen (2140)"),
        ] {
            assert_eq!(region(&["nl", "be"], text).as_deref(), Some(nl_first), "{text}");
            assert_eq!(region(&["be", "nl"], text).as_deref(), Some(be_first), "{text}");
        }
        // Written out, it is that place in either country's order.
        assert_eq!(region(&["nl", "be"], "storing in Deurne Antwerpen").as_deref(), Some("Deurne (BE)"));
        // One name names one place per country: a second one in the same country is refused, naming both.
        let mut data = ClassifierData::embedded().unwrap();
        let i = data.regions.places.iter().position(|p| p.name == "Amersfoort").unwrap();
        data.regions.places[i].aliases.push("Zwolle".into());
        let err = crate::Classifier::new(&data, Path::new("regions.toml")).unwrap_err().to_string();
        assert!(err.contains("`zwolle` already names Zwolle in nl"), "{err}");
    }

    #[test]
    fn a_district_is_part_of_another_place_of_its_province() {
        for (part_of, says) in [
            ("Atlantis", "`Atlantis` is no place"),
            ("Amsterdam", "must be another place in the same province"),
            ("Vleuten", "is itself part of a place"),
        ] {
            let mut data = ClassifierData::embedded().unwrap();
            let i = data.regions.places.iter().position(|p| p.name == "Leidsche Rijn").unwrap();
            data.regions.places[i].part_of = Some(part_of.into());
            let err = crate::Classifier::new(&data, Path::new("regions.toml")).unwrap_err().to_string();
            assert!(err.contains("part_of") && err.contains(says), "{part_of}: {err}");
        }
    }

    fn change(id: i64, language: &str, group: &str, term: &str, edit: TermEdit) -> LexiconChange {
        LexiconChange {
            id: LexiconChangeId(id),
            language: language.into(),
            group: group.into(),
            term: term.into(),
            edit,
            author: None,
            created_at: chrono::DateTime::from_timestamp(0, 0).expect("a valid time"),
        }
    }

    #[test]
    fn admins_changes_apply_over_the_files_and_a_change_that_no_longer_fits_is_named() {
        let mut data = ClassifierData::embedded().unwrap();
        let terms = |data: &ClassifierData, language: &str, group: &str| {
            let lexicon = data.lexicons.iter().find(|l| l.language == language).unwrap();
            lexicon.groups.iter().find(|g| g.name == group).unwrap().terms.clone()
        };
        let before = terms(&data, "nl", "outage");
        assert!(before.iter().any(|t| t == "plat") && !before.iter().any(|t| t == "glasvezel kapot"));
        let skipped = data.apply(&[
            change(1, "nl", "outage", " Glasvezel kapot ", TermEdit::Add),
            change(2, "nl", "outage", "glasvezel kapot", TermEdit::Add),
            change(3, "nl", "outage", "PLAT", TermEdit::Remove),
            change(4, "nl", "no-such-group", "x", TermEdit::Add),
            change(5, "fr", "outage", "en panne", TermEdit::Add),
        ]);
        let after = terms(&data, "nl", "outage");
        assert_eq!(after.iter().filter(|t| *t == "Glasvezel kapot").count(), 1, "added once: {after:?}");
        assert!(!after.iter().any(|t| t == "plat"), "removed");
        assert_eq!(after.len(), before.len(), "one in, one out");
        assert_eq!(terms(&data, "en", "outage"), terms(&ClassifierData::embedded().unwrap(), "en", "outage"));
        assert_eq!(
            skipped,
            [
                (LexiconChangeId(4), "the nl lexicon has no group `no-such-group`".to_owned()),
                (LexiconChangeId(5), "there is no lexicon for `fr`".to_owned())
            ]
        );
    }

    #[test]
    fn admins_give_a_place_another_name_or_take_one_away() {
        let region = |data: &ClassifierData, text: &str| {
            let c = crate::Classifier::new(data, Path::new("<test>")).unwrap().classify(text, None);
            c.region.map(|r| r.name)
        };
        let mut data = ClassifierData::embedded().unwrap();
        // A place the file does not know is kept as written: a cluster of its own, no notice for Utrecht.
        assert_eq!(region(&data, "Storing in Rijnsweerd? Geen internet").as_deref(), Some("Rijnsweerd"));
        assert_eq!(region(&data, "Storing in Utreg? Geen internet").as_deref(), Some("Utrecht"));
        let skipped = data.apply(&[
            change(1, REGIONS, "Utrecht", "Rijnsweerd", TermEdit::Add),
            change(2, REGIONS, "Utrecht", "utreg", TermEdit::Remove),
            change(3, REGIONS, "Atlantis", "Poseidonia", TermEdit::Add),
        ]);
        assert_eq!(skipped, [(LexiconChangeId(3), "the regions file has no place `Atlantis`".to_owned())]);
        assert_eq!(region(&data, "Storing in Rijnsweerd? Geen internet").as_deref(), Some("Utrecht"));
        assert_ne!(region(&data, "Storing in Utreg? Geen internet").as_deref(), Some("Utrecht"), "the name taken away");
        let groups = crate::Classifier::new(&data, Path::new("<test>")).unwrap().lexicon();
        let utrecht = groups.iter().find(|g| g.language == REGIONS && g.name == "Utrecht").unwrap();
        assert_eq!(utrecht.terms, ["stad utrecht", "Rijnsweerd", "030"]);
        assert_eq!(utrecht.category, "Utrecht (provincie)");
    }

    #[test]
    fn a_bad_file_is_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("webcare-bridge-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("services.toml"), "[[service]]\nname = \"internet\"\nterms = 3\n").unwrap();
        let err = ClassifierData::from_dir(&dir).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("services.toml"), "{err}");
        assert!(err.contains("terms"), "{err}");
    }
}
