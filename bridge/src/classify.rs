//! Classification of one message: intent, category, service, region, private data, language, and the reasons.
//!
//! A [`Classifier`] is built once from the data files: every lexicon term, service word and language marker goes
//! into one Aho-Corasick automaton, the gazetteer into another, and the private-data patterns into regexes. Classifying
//! is then a constant number of linear passes over the message, so it is fast and cannot blow up on any input.
//!
//! Scoring is additive and explainable: each term found adds its group's weight to an intent, and the rule that
//! decided is recorded with the terms, so an admin can see why a message was answered automatically.

use std::path::Path;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use serde::{Deserialize, Serialize};
use webcare_domain::Service;

use crate::data::{ClassifierData, DataError, LEXICON_FILES, PII_FILE, REGIONS_FILE, SERVICES_FILE};
use crate::normalize::{Normalized, fold_term, normalize};
use crate::pii::{PiiDetector, PiiFinding, mask};
use crate::region::{Gazetteer, Region, RegionSource};

/// What a message is about, as far as webcare acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// A question or report about a disruption that may affect others.
    Outage,
    /// An individual matter for an agent.
    Case,
    /// Thanks, greetings, chit-chat: no action.
    Other,
}

impl Intent {
    pub const ALL: [Intent; 3] = [Intent::Outage, Intent::Case, Intent::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Outage => "outage",
            Intent::Case => "case",
            Intent::Other => "other",
        }
    }

    fn parse(s: &str) -> Option<Intent> {
        match s {
            "outage" => Some(Intent::Outage),
            "case" => Some(Intent::Case),
            "other" => Some(Intent::Other),
            _ => None,
        }
    }
}

/// The category reports count messages by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Outage,
    Billing,
    Technical,
    Contract,
    Moving,
    Other,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Outage,
        Category::Billing,
        Category::Technical,
        Category::Contract,
        Category::Moving,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Outage => "outage",
            Category::Billing => "billing",
            Category::Technical => "technical",
            Category::Contract => "contract",
            Category::Moving => "moving",
            Category::Other => "other",
        }
    }

    fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The language a message is written in, as far as webcare answers in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Nl,
    En,
    /// Words, but in a language webcare has no lexicon for: a person should see it.
    Other,
    /// Too little text to tell (a lone "?", a number).
    Unknown,
}

impl Language {
    pub fn code(self) -> &'static str {
        match self {
            Language::Nl => "nl",
            Language::En => "en",
            Language::Other => "other",
            Language::Unknown => "unknown",
        }
    }
}

/// Why a message was classified as it was. Stored with the decision; never holds private data itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// A lexicon term was found.
    Term { group: String, term: String, weight: f32 },
    /// A word naming a service was found.
    Service { service: Service, term: String },
    /// A region was found, in the text or in the platform's hint.
    Region { region: String, source: RegionSource, from_hint: bool },
    /// Private data of this kind was found (the value is not repeated).
    Pii { pii: String },
    /// The language scores.
    Language { language: Language, nl: u32, en: u32 },
    /// The text shows no language webcare answers in; the platform's language for the person (`nl`, `en`) chose
    /// the answer's.
    PlatformLanguage { language: String },
    /// The intent scores.
    Scores { outage: f32, case: f32, other: f32 },
    /// The rule that decided (a classifier rule, or an engine rule such as `notice-match`).
    Rule { rule: String },
    /// Free text for engine decisions (the cluster's size, the notice matched).
    Note { note: String },
}

/// Everything the classifier found in one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub intent: Intent,
    pub category: Category,
    pub service: Service,
    pub region: Option<Region>,
    pub pii: Vec<PiiFinding>,
    pub language: Language,
    pub reasons: Vec<Reason>,
    /// An outage message that says others are affected or names an outage outright; it may join a cluster without
    /// naming a place.
    #[serde(default)]
    pub widespread: bool,
}

impl Classification {
    /// Dutch or English in which no lexicon term of weight was found, nor private data (rule `no-signal`): text
    /// webcare cannot read, as opposed to thanks, chit-chat, or too little text to tell its language.
    pub fn unread(&self) -> bool {
        matches!(self.language, Language::Nl | Language::En)
            && self.reasons.iter().any(|r| matches!(r, Reason::Rule { rule } if rule == NO_SIGNAL))
    }

    /// The distinct kinds of private data found, in order of appearance.
    pub fn pii_kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = Vec::new();
        for f in &self.pii {
            if !kinds.contains(&f.kind) {
                kinds.push(f.kind.clone());
            }
        }
        kinds
    }
}

/// The rule of a message in which nothing of weight was found ([`Classification::unread`]).
const NO_SIGNAL: &str = "no-signal";

/// Below this `other` score a message holds only weak words of that kind (a "hallo" or "ok" in front of something
/// else), which say nothing of what it is about: such a message is read as one without a signal (`no-signal`).
const WEAK_OTHER: f32 = 0.5;

/// Score thresholds; the defaults suit the shipped lexicons.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// The least outage score for `outage`.
    pub outage: f32,
    /// The least case score for `case`.
    pub case: f32,
    /// How much the case score may exceed the outage score while the message still counts as an outage: a customer
    /// who mentions a bill while reporting that the internet is down is asking about the outage first.
    pub outage_bias: f32,
    /// How much each point of `other` (thanks, laughter, venting) takes off the outage score.
    pub other_penalty: f32,
    /// The least weight of the strongest outage term: context and time words ("my internet", "Mbps", "today")
    /// add to evidence of an outage but are none on their own, however many there are.
    #[serde(default = "default_outage_evidence")]
    pub outage_evidence: f32,
    /// The least weight of the strongest outage term for `outage_bias` to apply: a clear failure ("no internet",
    /// "is down") is asked about first, a vague problem word ("having issues") is not.
    #[serde(default = "default_outage_strong")]
    pub outage_strong: f32,
    /// Below this share of known words among at least six words (or none among `foreign_min_tokens`), the text is
    /// in another language.
    pub foreign_marker_share: f32,
    pub foreign_min_tokens: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            outage: 1.0,
            case: 1.0,
            outage_bias: 0.5,
            other_penalty: 0.5,
            outage_evidence: default_outage_evidence(),
            outage_strong: default_outage_strong(),
            foreign_marker_share: 0.15,
            foreign_min_tokens: 4,
        }
    }
}

fn default_outage_evidence() -> f32 {
    1.0
}

fn default_outage_strong() -> f32 {
    1.5
}

#[derive(Debug, Clone, Copy)]
enum TermKind {
    Group(usize),
    Service(Service),
    Marker(Language),
    /// The words before ` .. ` in a gap term (the index into `Classifier::gaps`).
    GapHead(usize),
    /// The words after ` .. ` in a gap term.
    GapTail(usize),
}

/// A term with a gap ("ligt .. eruit"): its two parts are matched on their own and paired afterwards.
#[derive(Debug, Clone)]
struct Gap {
    group: usize,
    /// The first gap with the same folded parts and the same effect: a gap term listed in both lexicons counts once.
    canonical: usize,
    /// The term as written, for reasons.
    term: String,
}

/// The most words a gap term's ` .. ` spans.
const GAP_WORDS: usize = 3;

#[derive(Debug, Clone)]
struct TermInfo {
    kind: TermKind,
    /// The first pattern with the same folded text and the same effect: a term listed in both lexicons counts once.
    canonical: usize,
    /// The term as written in the data file, for reasons.
    term: String,
    prefix: bool,
}

#[derive(Debug, Clone)]
struct Group {
    name: String,
    intent: Intent,
    category: Category,
    weight: f32,
    service: Option<Service>,
    language: Language,
    requires_service: bool,
    widespread: bool,
    asks_person: bool,
}

impl Group {
    /// What a term of this group does: terms with the same text and effect count once, whichever lexicon lists them.
    fn effect(&self) -> String {
        let Group { intent, category, weight, requires_service, widespread, asks_person, .. } = self;
        format!("{intent:?}/{category:?}/{weight}/{requires_service}/{widespread}/{asks_person}")
    }
}

/// The compiled classifier. Build it once (it takes milliseconds) and share it; `classify` takes `&self`.
#[derive(Debug)]
pub struct Classifier {
    automaton: AhoCorasick,
    terms: Vec<TermInfo>,
    groups: Vec<Group>,
    gaps: Vec<Gap>,
    pii: PiiDetector,
    gazetteer: Gazetteer,
    thresholds: Thresholds,
    default_language: Language,
    /// What it was built from, to build one with a change more (`with_change`).
    data: ClassifierData,
    dir: std::path::PathBuf,
}

impl Default for Classifier {
    /// The classifier on the data shipped with webcare.
    fn default() -> Self {
        let data = ClassifierData::embedded().expect("the shipped data files are valid (checked by tests)");
        Classifier::new(&data, Path::new("<embedded>")).expect("the shipped data files are valid (checked by tests)")
    }
}

/// Why a term an admin wrote cannot be a lexicon term, if it cannot: the rules the data files' terms follow.
pub fn term_problem(term: &str) -> Option<&'static str> {
    let term = term.trim();
    if term.chars().count() > 100 {
        return Some("a term has at most 100 characters");
    }
    let parts = match term.split_once(" .. ") {
        Some((head, _)) if head.ends_with('*') => return Some("a `*` ends a term, not the words before ` .. `"),
        Some((head, tail)) => vec![head, tail],
        None => vec![term],
    };
    if parts.iter().any(|p| fold_term(p.trim_end_matches('*')).is_empty()) {
        return Some("a term needs letters or digits");
    }
    None
}

impl Classifier {
    /// The lexicons' groups with their terms, as this classifier counts them, in the order of the files.
    pub fn lexicon(&self) -> Vec<webcare_domain::LexiconGroup> {
        let mut groups: Vec<webcare_domain::LexiconGroup> = self
            .groups
            .iter()
            .map(|g| webcare_domain::LexiconGroup {
                language: g.language.code().to_owned(),
                name: g.name.clone(),
                intent: g.intent.as_str().to_owned(),
                category: g.category.as_str().to_owned(),
                weight: g.weight,
                terms: Vec::new(),
            })
            .collect();
        for info in &self.terms {
            if let TermKind::Group(g) = info.kind {
                groups[g].terms.push(info.term.clone());
            }
        }
        for gap in &self.gaps {
            groups[gap.group].terms.push(gap.term.clone());
        }
        // The Dutch and Belgian provinces and places, each a group of the other names it is known by: an admin adds
        // a neighbourhood or a nickname ("Rijnsweerd" for Utrecht) as a term of the `regions` lexicon.
        let regions = &self.data.regions;
        for p in regions.provinces.iter().chain(&regions.places) {
            groups.push(webcare_domain::LexiconGroup {
                language: crate::data::REGIONS.to_owned(),
                name: p.name.clone(),
                intent: "region".to_owned(),
                category: p.province.clone().unwrap_or_else(|| format!("province ({})", p.country)),
                weight: 0.0,
                terms: p.aliases.iter().chain(&p.ambiguous_aliases).cloned().collect(),
            });
        }
        groups
    }

    /// Builds a classifier from the data files in a directory (missing files fall back to the shipped ones).
    pub fn from_dir(dir: &Path) -> Result<Classifier, DataError> {
        Classifier::new(&ClassifierData::from_dir(dir)?, dir)
    }

    /// Builds a classifier from loaded data; `dir` names the files in errors.
    pub fn new(data: &ClassifierData, dir: &Path) -> Result<Classifier, DataError> {
        let mut patterns: Vec<String> = Vec::new();
        let mut terms = Vec::new();
        let mut groups = Vec::new();
        let mut gaps: Vec<Gap> = Vec::new();
        let mut gap_firsts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut firsts: std::collections::HashMap<(String, bool, String), usize> = std::collections::HashMap::new();
        let mut add = |patterns: &mut Vec<String>, groups: &[Group], written: &str, kind: TermKind| -> bool {
            let prefix = written.ends_with('*');
            let folded = fold_term(written.trim_end_matches('*'));
            if folded.is_empty() {
                return false;
            }
            let effect = match kind {
                TermKind::Group(g) => groups[g].effect(),
                TermKind::Service(s) => format!("service/{s}"),
                TermKind::Marker(l) => format!("marker/{l:?}"),
                // Gap parts are paired per occurrence, never merged with other terms.
                TermKind::GapHead(i) | TermKind::GapTail(i) => format!("gap/{i}/{}", terms.len()),
            };
            let id = terms.len();
            let canonical = *firsts.entry((folded.clone(), prefix, effect)).or_insert(id);
            patterns.push(folded);
            terms.push(TermInfo { kind, canonical, term: written.to_owned(), prefix });
            true
        };
        for (file_index, lexicon) in data.lexicons.iter().enumerate() {
            let file = dir.join(LEXICON_FILES.get(file_index).copied().unwrap_or("lexicon"));
            let invalid = |key: String, message: String| DataError::Invalid { file: file.clone(), key, message };
            let language = match lexicon.language.as_str() {
                "nl" => Language::Nl,
                "en" => Language::En,
                other => return Err(invalid("language".into(), format!("`{other}`: expected nl or en"))),
            };
            for marker in &lexicon.markers {
                add(&mut patterns, &groups, marker, TermKind::Marker(language));
            }
            for (i, g) in lexicon.groups.iter().enumerate() {
                let intent = Intent::parse(&g.intent).ok_or_else(|| {
                    invalid(format!("group[{i}].intent"), format!("`{}`: expected outage, case or other", g.intent))
                })?;
                let category = Category::parse(&g.category).ok_or_else(|| {
                    invalid(
                        format!("group[{i}].category"),
                        format!("`{}`: expected outage, billing, technical, contract, moving or other", g.category),
                    )
                })?;
                let service = match &g.service {
                    Some(s) => Some(parse_service(s).ok_or_else(|| {
                        invalid(
                            format!("group[{i}].service"),
                            format!("`{s}`: expected internet, tv, mobile or landline"),
                        )
                    })?),
                    None => None,
                };
                if !g.weight.is_finite() {
                    return Err(invalid(format!("group[{i}].weight"), "must be a finite number".into()));
                }
                let index = groups.len();
                groups.push(Group {
                    name: g.name.clone(),
                    intent,
                    category,
                    weight: g.weight,
                    service,
                    language,
                    requires_service: g.requires_service,
                    widespread: g.widespread,
                    asks_person: g.asks_person,
                });
                for (t, term) in g.terms.iter().enumerate() {
                    let ok = match term.split_once(" .. ") {
                        Some((head, tail)) => {
                            let gap = gaps.len();
                            let g = &groups[index];
                            let key = format!("{}..{}/{}", fold_term(head), fold_term(tail), g.effect());
                            let canonical = *gap_firsts.entry(key).or_insert(gap);
                            gaps.push(Gap { group: index, canonical, term: term.clone() });
                            !head.ends_with('*')
                                && add(&mut patterns, &groups, head, TermKind::GapHead(gap))
                                && add(&mut patterns, &groups, tail, TermKind::GapTail(gap))
                        }
                        None => add(&mut patterns, &groups, term, TermKind::Group(index)),
                    };
                    if !ok {
                        return Err(invalid(
                            format!("group[{i}].terms[{t}]"),
                            "has no letters or digits (or a `*` before ` .. `)".into(),
                        ));
                    }
                }
            }
        }
        let services_file = dir.join(SERVICES_FILE);
        for (i, s) in data.services.services.iter().enumerate() {
            let service = parse_service(&s.name).ok_or_else(|| DataError::Invalid {
                file: services_file.clone(),
                key: format!("service[{i}].name"),
                message: format!("`{}`: expected internet, tv, mobile or landline", s.name),
            })?;
            for term in &s.terms {
                add(&mut patterns, &groups, term, TermKind::Service(service));
            }
        }
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&patterns)
            .map_err(|e| DataError::Invalid { file: dir.to_owned(), key: "terms".into(), message: e.to_string() })?;
        let pii = PiiDetector::new(&data.pii, &dir.join(PII_FILE))?;
        let gazetteer = Gazetteer::new(&data.regions, &data.pii.postcode_countries, &dir.join(REGIONS_FILE))?;
        let default_language = match data.lexicons.first().map(|l| l.language.as_str()) {
            Some("en") => Language::En,
            _ => Language::Nl,
        };
        Ok(Classifier {
            automaton,
            terms,
            groups,
            gaps,
            pii,
            gazetteer,
            thresholds: Thresholds::default(),
            default_language,
            data: data.clone(),
            dir: dir.to_owned(),
        })
    }

    /// This classifier's data with an admin's lexicon change more, built anew (with these thresholds): what a
    /// change would do, before it is made. A change that does not fit the data changes nothing.
    pub fn with_change(&self, change: &webcare_domain::LexiconChange) -> Result<Classifier, DataError> {
        let mut data = self.data.clone();
        data.apply(std::slice::from_ref(change));
        Ok(Classifier::new(&data, &self.dir)?.with_thresholds(self.thresholds))
    }

    /// Replaces the score thresholds.
    pub fn with_thresholds(mut self, thresholds: Thresholds) -> Classifier {
        self.thresholds = thresholds;
        self
    }

    /// The language answers use when a message does not show its own.
    pub fn default_language(&self) -> Language {
        self.default_language
    }

    /// Resolves a region written on its own (a notice's region, a platform hint).
    pub fn resolve_region(&self, text: &str) -> Option<Region> {
        self.gazetteer.resolve(text)
    }

    /// The text with every piece of private data replaced by its kind, for samples shown to staff.
    pub fn mask(&self, text: &str) -> String {
        let norm = normalize(text);
        let findings = self.pii.find(&norm.nfkc);
        mask(&norm.nfkc, &findings)
    }

    /// Classifies one message. `place_hint` is a location from the platform (a geotag), used when the text names none.
    pub fn classify(&self, text: &str, place_hint: Option<&str>) -> Classification {
        let norm = normalize(text);
        self.classify_normalized(&norm, place_hint)
    }

    /// Classifies a message that was normalised already.
    pub fn classify_normalized(&self, norm: &Normalized, place_hint: Option<&str>) -> Classification {
        let mut reasons = Vec::new();
        let mut scores = [0.0f32; 3];
        let mut categories = [0.0f32; 6];
        let mut service_scores = [0.0f32; 4];
        let mut service_first = [usize::MAX; 4];
        let mut markers = [0u32; 2];
        // The terms found so far, by canonical id: a message holds few, so a short list beats a lexicon-sized table.
        let mut seen: Vec<usize> = Vec::new();
        let mut hits: Vec<(usize, usize, usize, usize)> = Vec::new();
        let mut gap_heads: Vec<(usize, usize, usize)> = Vec::new();
        let mut gap_tails: Vec<(usize, usize, usize)> = Vec::new();
        let text = norm.folded.as_str();
        let bytes = text.as_bytes();
        for m in self.automaton.find_overlapping_iter(text) {
            let (s, e) = (m.start(), m.end());
            let id = m.pattern().as_usize();
            let info = &self.terms[id];
            if s > 0 && bytes[s - 1] != b' ' {
                continue;
            }
            if !info.prefix && e < bytes.len() && bytes[e] != b' ' {
                continue;
            }
            match info.kind {
                TermKind::Marker(language) => {
                    markers[usize::from(language == Language::En)] += 1;
                }
                TermKind::GapHead(gap) => gap_heads.push((s, e, gap)),
                TermKind::GapTail(gap) => gap_tails.push((s, e, gap)),
                _ if seen.contains(&info.canonical) => {}
                TermKind::Group(g) => {
                    seen.push(info.canonical);
                    hits.push((s, e, g, id));
                }
                TermKind::Service(service) => {
                    seen.push(info.canonical);
                    let k = service_index(service);
                    service_scores[k] += 1.0;
                    service_first[k] = service_first[k].min(s);
                    reasons.push(Reason::Service { service, term: info.term.clone() });
                }
            }
        }
        let gap_hits = self.pair_gaps(text, &gap_heads, &gap_tails);
        let mut gap_seen: Vec<usize> = Vec::new();
        for (s, e, gap) in gap_hits {
            if !gap_seen.contains(&self.gaps[gap].canonical) {
                gap_seen.push(self.gaps[gap].canonical);
                // A gap hit is recorded with its group and, as its term id, `terms.len() + gap`.
                hits.push((s, e, self.gaps[gap].group, self.terms.len() + gap));
            }
        }
        // A term inside a longer term that counts is read as part of it: "is down" holds "down", "down payment"
        // holds "down", "disconnect the number" holds "disconnect". A longer term counts unless it needs a service
        // and the message names none ("fix .. service" in "fix the poor service" leaves "poor service" to count).
        // The number of hits is bounded by the number of distinct terms, so this stays linear in the text.
        let names_service_word =
            service_scores.iter().any(|&x| x > 0.0) || hits.iter().any(|h| self.groups[h.2].service.is_some());
        let live = |o: &(usize, usize, usize, usize)| {
            let g = &self.groups[o.2];
            g.weight != 0.0 && (!g.requires_service || names_service_word)
        };
        let nested = |h: &(usize, usize, usize, usize), o: &(usize, usize, usize, usize)| {
            o.0 <= h.0 && h.1 <= o.1 && (o.1 - o.0) > (h.1 - h.0) && live(o)
        };
        let counted: Vec<&(usize, usize, usize, usize)> =
            hits.iter().filter(|h| !hits.iter().any(|o| nested(h, o))).collect();
        for &&(s, _, g, _) in &counted {
            if let Some(service) = self.groups[g].service {
                let k = service_index(service);
                service_scores[k] += 1.0;
                service_first[k] = service_first[k].min(s);
            }
        }
        let names_service = service_scores.iter().any(|&x| x > 0.0);
        let mut widespread = false;
        let mut asks_person = false;
        let mut strongest_outage = 0.0f32;
        for &&(_, _, g, id) in &counted {
            let group = &self.groups[g];
            let term = match self.terms.get(id) {
                Some(info) => &info.term,
                None => &self.gaps[id - self.terms.len()].term,
            };
            // A term that needs a service counts for nothing without one; it is still listed, with weight 0.
            let weight = if group.requires_service && !names_service { 0.0 } else { group.weight };
            scores[intent_index(group.intent)] += weight;
            if group.intent == Intent::Case {
                categories[group.category.index()] += weight;
            }
            widespread |= group.widespread && weight > 0.0;
            asks_person |= group.asks_person && weight > 0.0;
            if group.intent == Intent::Outage {
                strongest_outage = strongest_outage.max(weight);
            }
            markers[usize::from(group.language == Language::En)] += 1;
            reasons.push(Reason::Term { group: group.name.clone(), term: term.clone(), weight });
        }

        let language = self.language(norm, markers);
        reasons.push(Reason::Language { language, nl: markers[0], en: markers[1] });
        let [raw_outage, case, other] = scores;
        let outage = raw_outage - self.thresholds.other_penalty * other;
        reasons.push(Reason::Scores { outage: round(outage), case: round(case), other: round(other) });

        let pii = self.pii.find(&norm.nfkc);
        for kind in pii.iter().map(|f| f.kind.as_str()).collect::<std::collections::BTreeSet<_>>() {
            reasons.push(Reason::Pii { pii: kind.to_owned() });
        }

        let t = self.thresholds;
        let (intent, rule) = if language == Language::Other && outage < t.outage * 2.0 {
            (Intent::Case, "other-language")
        } else if outage >= t.outage
            && strongest_outage >= t.outage_evidence
            // The benefit of the doubt against a case goes to a clear failure ("no internet", "down"); a vague
            // problem word ("having issues") must outweigh the case words ("with my account") on its own.
            && (outage > case || (strongest_outage >= t.outage_strong && outage + t.outage_bias >= case))
        {
            (Intent::Outage, "outage-score")
        // Thanks that mention the technician or the new modem are thanks ("dikke pluim voor de monteur"); a request
        // for a person is a case whatever thanks come with it.
        } else if case >= t.case && (case >= other || asks_person) {
            (Intent::Case, "case-score")
        } else if !pii.is_empty() {
            (Intent::Case, "private-data")
        } else if other >= WEAK_OTHER {
            (Intent::Other, "other-score")
        } else {
            (Intent::Other, NO_SIGNAL)
        };
        reasons.push(Reason::Rule { rule: rule.to_owned() });

        let category = match intent {
            Intent::Outage => Category::Outage,
            Intent::Other => Category::Other,
            Intent::Case => {
                let mut best = Category::Other;
                let mut best_score = 0.0;
                for c in Category::ALL {
                    if categories[c.index()] > best_score {
                        best = c;
                        best_score = categories[c.index()];
                    }
                }
                best
            }
        };

        let mut service = Service::Unknown;
        let mut best = (0.0f32, usize::MAX);
        for (k, s) in SERVICES.iter().enumerate() {
            let score = service_scores[k];
            if score > best.0 || (score == best.0 && score > 0.0 && service_first[k] < best.1) {
                best = (score, service_first[k]);
                service = *s;
            }
        }

        let mut region = self.gazetteer.find(norm);
        let mut from_hint = false;
        if region.is_none()
            && let Some(hint) = place_hint.filter(|h| !h.trim().is_empty())
        {
            region = self.gazetteer.resolve(hint);
            from_hint = region.is_some();
        }
        if let Some(r) = &region {
            reasons.push(Reason::Region { region: r.name.clone(), source: r.source, from_hint });
        }

        let widespread = widespread && intent == Intent::Outage;
        Classification { intent, category, service, region, pii, language, reasons, widespread }
    }

    /// Pairs the parts of gap terms: a head, then at most [`GAP_WORDS`] words, then the tail of the same term.
    /// Returns (start, end, gap) in the order of the tails. Each tail looks back over the heads that end within a few
    /// words before it, so the work stays linear in the number of parts found.
    fn pair_gaps(
        &self,
        text: &str,
        heads: &[(usize, usize, usize)],
        tails: &[(usize, usize, usize)],
    ) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        if heads.is_empty() || tails.is_empty() {
            return out;
        }
        let mut heads: Vec<(usize, usize, usize)> = heads.to_vec();
        heads.sort_unstable_by_key(|&(s, e, g)| (e, s, g));
        for &(ts, te, gap) in tails {
            // Heads that end before the tail starts, nearest first.
            let upto = heads.partition_point(|h| h.1 < ts);
            for &(hs, he, hgap) in heads[..upto].iter().rev() {
                let between = &text[he..ts];
                let words = between.bytes().filter(|&b| b == b' ').count().saturating_sub(1);
                if words > GAP_WORDS {
                    break;
                }
                if hgap == gap && words >= 1 {
                    out.push((hs, te, gap));
                    break;
                }
            }
        }
        out
    }

    fn language(&self, norm: &Normalized, markers: [u32; 2]) -> Language {
        let [nl, en] = markers;
        let words = norm.token_strs().filter(|t| t.chars().any(char::is_alphabetic)).count();
        let t = self.thresholds;
        // Another language: words, but none (or, in a long text, almost none) that our lexicons know.
        if (words >= t.foreign_min_tokens && nl + en == 0)
            || (words >= 6 && ((nl + en) as f32) < t.foreign_marker_share * words as f32)
        {
            return Language::Other;
        }
        match nl.cmp(&en) {
            std::cmp::Ordering::Greater => Language::Nl,
            std::cmp::Ordering::Less => Language::En,
            std::cmp::Ordering::Equal if nl > 0 => self.default_language,
            std::cmp::Ordering::Equal if words >= t.foreign_min_tokens => Language::Other,
            std::cmp::Ordering::Equal => Language::Unknown,
        }
    }
}

const SERVICES: [Service; 4] = [Service::Internet, Service::Tv, Service::Mobile, Service::Landline];

fn service_index(s: Service) -> usize {
    SERVICES.iter().position(|x| *x == s).unwrap_or(0)
}

fn parse_service(s: &str) -> Option<Service> {
    SERVICES.iter().copied().find(|x| x.as_str() == s)
}

fn intent_index(i: Intent) -> usize {
    match i {
        Intent::Outage => 0,
        Intent::Case => 1,
        Intent::Other => 2,
    }
}

fn round(x: f32) -> f32 {
    (x * 100.0).round() / 100.0
}
