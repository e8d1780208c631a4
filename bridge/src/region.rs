//! Regions: which place a message is about, and whether two regions are compatible.
//!
//! A region comes from, in this order: a place the gazetteer knows (Dutch and Belgian provinces, municipalities and
//! towns with their other names), a postcode (4-digit NL/BE mapped to its area, 5-digit US ZIP), a place phrase the
//! gazetteer does not know ("outage in Salisbury Mass", kept as written), or the platform's location hint.
//! US place phrases name a state ("outage in salisbury md", "Santa Clarita CA", "northern NJ"): a place with its state
//! is the place in that state, a state on its own is a province, and a 5-digit ZIP code lies in the state its first
//! three digits belong to.
//! Two regions are compatible when they have the same key and do not lie in different provinces, when they lie in the
//! same municipality (a district and its city, two districts of one city), or when one is the province the other lies
//! in.

use std::collections::HashSet;
use std::path::Path;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::data::{DataError, RegionsFile};
use crate::normalize::{Normalized, fold_term, normalize};
use crate::wordre::{TextKind, WordRegex};

/// Words after a bare 4-digit number that make it an amount, a speed, a time or a count rather than a postcode.
const CODE_UNITS: &str = "euro eur dollar dollars mbit mbps mb gb kb kbps gbps uur u minuten min sec seconden dagen \
    days hours minutes keer times x klanten mensen huizen woningen huishoudens customers people homes km meter m ms sms \
    berichten messages";

/// A 4-digit number that reads as a year ("in 2017", "storing 2019") rather than a postcode.
fn looks_like_year(code: &str) -> bool {
    code.parse::<u16>().is_ok_and(|y| (1950..=2049).contains(&y))
}

/// Where a region was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionSource {
    /// A municipality or town from the gazetteer.
    Place,
    /// A province from the gazetteer.
    Province,
    /// A Dutch or Belgian 4-digit postcode.
    Postcode,
    /// A US ZIP code.
    Zip,
    /// A place phrase the gazetteer does not know, kept as written.
    Phrase,
}

/// A region, with what is needed to compare it with others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// The canonical name of a known place or area; a phrase or ZIP as written.
    pub name: String,
    /// The comparison key: the folded canonical name, `zip:` and the first three digits, or the folded phrase.
    pub key: String,
    /// The folded name of the province a place lies in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub province: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The key of the municipality a district or village lies in ("Leidsche Rijn" in Utrecht).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub municipality: Option<String>,
    pub source: RegionSource,
}

impl Region {
    /// Same place or area (not in two different provinces or states: Salisbury MD is not Salisbury MA), the same
    /// municipality (Leidsche Rijn and Utrecht, Berchem and Borgerhout), or one is the province the other lies in.
    /// A US state is no such province here: it is larger than many countries, and "somewhere in California" says
    /// nothing of whether Fontana's outage is Los Angeles's; it still scopes notices ([`Region::within`]).
    pub fn compatible(&self, other: &Region) -> bool {
        let province_of =
            |place: &Region, area: &Region| place.province.as_deref() == Some(area.key.as_str()) && !area.is_us_state();
        self.same_place(other) || self.same_municipality(other) || province_of(self, other) || province_of(other, self)
    }

    /// A US state named on its own ("Texas", "northern NJ").
    pub fn is_us_state(&self) -> bool {
        self.source == RegionSource::Province && self.country.as_deref() == Some("us")
    }

    /// Whether this region lies inside `scope` (a notice's region): the same place, a district of that municipality,
    /// or a place in that province. A notice for one district does not cover the city's other districts.
    pub fn within(&self, scope: &Region) -> bool {
        self.same_place(scope)
            || (self.municipality.as_deref() == Some(scope.key.as_str()) && self.province == scope.province)
            || self.province.as_deref() == Some(scope.key.as_str())
    }

    /// Whether a notice for `scope` answers a question about this region: it lies within the scope, or the two are
    /// compatible (a question naming only the province, or only the city, of a notice's town or district), but not
    /// one district of a city for a notice on another (Leidsche Rijn's notice does not answer Vleuten).
    pub fn answered_by(&self, scope: &Region) -> bool {
        let other_district = self.municipality.is_some() && scope.municipality.is_some() && self.key != scope.key;
        self.within(scope) || (self.compatible(scope) && !other_district)
    }

    /// Both lie in one municipality: a district and its city, or two districts of one city (one province).
    fn same_municipality(&self, other: &Region) -> bool {
        (self.municipality.is_some() || other.municipality.is_some())
            && self.province.is_some()
            && self.province == other.province
            && self.municipality.as_deref().unwrap_or(&self.key) == other.municipality.as_deref().unwrap_or(&other.key)
    }

    fn same_place(&self, other: &Region) -> bool {
        self.key == other.key
            && match (&self.province, &other.province) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    key: String,
    province: Option<String>,
    municipality: Option<String>,
    country: String,
    source: RegionSource,
}

#[derive(Debug, Clone)]
struct Pattern {
    entry: usize,
    ambiguous: bool,
}

#[derive(Debug, Clone)]
struct Range {
    country: String,
    from: u16,
    to: u16,
    entry: usize,
}

/// The compiled gazetteer and region rules.
#[derive(Debug)]
pub struct Gazetteer {
    entries: Vec<Entry>,
    names: AhoCorasick,
    /// Per name the automaton finds, the places that go by it: one, or one per country where two countries have a
    /// place of that name (Deurne in Noord-Brabant and in Antwerpen); `countries` orders them.
    patterns: Vec<Vec<Pattern>>,
    ranges: Vec<Range>,
    countries: Vec<String>,
    place_words: HashSet<String>,
    not_places: HashSet<String>,
    qualifiers: HashSet<String>,
    nl_postcode: WordRegex,
    prefixed_postcode: WordRegex,
    context_code: WordRegex,
    code_area: WordRegex,
    lead_code: Regex,
    outage_code: Regex,
    phrase: Regex,
    us: UsPlaces,
}

/// US states and the rules for place phrases that name one.
#[derive(Debug)]
struct UsPlaces {
    /// (code in capitals, name, common word)
    states: Vec<(String, String, bool)>,
    /// Folded names, other names and codes → index into `states`.
    lookup: std::collections::HashMap<String, usize>,
    /// A quick screen over the folded words: two-letter codes that are no common word, by their letters; the words
    /// of names and other names, by their first and last letter, then by the word.
    codes: Bits,
    /// Every code, for codes in capitals.
    all_codes: Bits,
    name_ends: Bits,
    name_words: HashSet<String>,
    /// `from..=to` of 3-digit ZIP prefixes → index into `states`.
    zips: Vec<(u16, u16, usize)>,
    area_words: HashSet<String>,
}

/// A word of a message for US place phrases: ASCII letters and digits with inner `'`, `.` and `-` ("O'Fallon",
/// "Winston-Salem"), and what separates it from the word before: a comma, or anything else that ends a phrase.
struct UsWord<'a> {
    text: &'a str,
    comma_before: bool,
    break_before: bool,
}

fn us_words(text: &str) -> Vec<UsWord<'_>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut comma, mut brk) = (false, false);
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphanumeric() {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric()
                    || (matches!(b[i], b'\'' | b'.' | b'-') && b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric)))
            {
                i += 1;
            }
            out.push(UsWord { text: &text[start..i], comma_before: comma, break_before: brk });
            (comma, brk) = (false, false);
            continue;
        }
        match b[i] {
            b' ' | b'\t' => {}
            b',' => comma = true,
            _ => brk = true,
        }
        i += 1;
    }
    out
}

impl Gazetteer {
    pub fn new(file: &RegionsFile, countries: &[String], file_name: &Path) -> Result<Gazetteer, DataError> {
        let invalid = |key: String, message: String| DataError::Invalid { file: file_name.to_owned(), key, message };
        let mut entries = Vec::new();
        let mut pattern_texts: Vec<String> = Vec::new();
        let mut patterns: Vec<Vec<Pattern>> = Vec::new();
        let mut by_name: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let provinces: HashSet<String> = file.provinces.iter().map(|p| fold_term(&p.name)).collect();
        for (kind, list, source) in
            [("province", &file.provinces, RegionSource::Province), ("place", &file.places, RegionSource::Place)]
        {
            for (i, p) in list.iter().enumerate() {
                let key = fold_term(&p.name);
                if key.is_empty() {
                    return Err(invalid(format!("{kind}[{i}].name"), "is empty".into()));
                }
                let province = match &p.province {
                    Some(prov) => {
                        let folded = fold_term(prov);
                        if !provinces.contains(&folded) {
                            return Err(invalid(format!("{kind}[{i}].province"), format!("unknown province `{prov}`")));
                        }
                        Some(folded)
                    }
                    None if source == RegionSource::Place => {
                        return Err(invalid(format!("{kind}[{i}].province"), "a place needs its province".into()));
                    }
                    None => None,
                };
                let entry = entries.len();
                entries.push(Entry {
                    name: p.name.clone(),
                    key: key.clone(),
                    province,
                    municipality: None,
                    country: p.country.clone(),
                    source,
                });
                let names = std::iter::once((key, p.ambiguous))
                    .chain(p.aliases.iter().map(|a| (fold_term(a), p.ambiguous)))
                    .chain(p.ambiguous_aliases.iter().map(|a| (fold_term(a), true)));
                for (name, ambiguous) in names {
                    let index = *by_name.entry(name.clone()).or_insert_with(|| {
                        pattern_texts.push(name.clone());
                        patterns.push(Vec::new());
                        patterns.len() - 1
                    });
                    let places = &mut patterns[index];
                    if places.iter().any(|q| q.entry == entry) {
                        continue;
                    }
                    // One name, one place per country: a second in the same country could never be found.
                    if let Some(q) = places.iter().find(|q| entries[q.entry].country == p.country) {
                        return Err(invalid(
                            format!("{kind}[{i}].aliases"),
                            format!("`{name}` already names {} in {}", entries[q.entry].name, p.country),
                        ));
                    }
                    places.push(Pattern { entry, ambiguous });
                }
            }
        }
        // A district's municipality, once every place is known (it may come later in the file).
        for (i, p) in file.places.iter().enumerate() {
            let Some(part_of) = &p.part_of else { continue };
            let key = fold_term(part_of);
            let entry = file.provinces.len() + i;
            // The place whose own name it is (not one that only has it as another name).
            let city = by_name.get(&key).and_then(|&n| {
                patterns[n]
                    .iter()
                    .map(|q| q.entry)
                    .find(|&e| entries[e].key == key && entries[e].source == RegionSource::Place)
            });
            let Some(city) = city else {
                return Err(invalid(format!("place[{i}].part_of"), format!("`{part_of}` is no place")));
            };
            if entries[city].province != entries[entry].province || city == entry {
                return Err(invalid(
                    format!("place[{i}].part_of"),
                    format!("`{part_of}` must be another place in the same province"),
                ));
            }
            if file.places[city - file.provinces.len()].part_of.is_some() {
                return Err(invalid(format!("place[{i}].part_of"), format!("`{part_of}` is itself part of a place")));
            }
            entries[entry].municipality = Some(key);
        }
        let mut ranges = Vec::new();
        for (i, r) in file.postcodes.iter().enumerate() {
            let area = fold_term(&r.area);
            let Some(entry) = entries.iter().position(|e| e.key == area) else {
                return Err(invalid(format!("postcodes[{i}].area"), format!("`{}` is no place or province", r.area)));
            };
            if r.from > r.to || r.from < 1000 || r.to > 9999 {
                return Err(invalid(format!("postcodes[{i}].from"), "expected 1000 <= from <= to <= 9999".into()));
            }
            ranges.push(Range { country: r.country.clone(), from: r.from, to: r.to, entry });
        }
        let names = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&pattern_texts)
            .map_err(|e| invalid("place".into(), e.to_string()))?;
        let place_words: HashSet<String> = file.place_words.iter().map(|w| fold_term(w)).collect();
        let alternation: Vec<String> = file.place_words.iter().map(|w| regex::escape(w).replace(' ', r"\s+")).collect();
        let words = alternation.join("|");
        let build = |re: &str| WordRegex::new(re).map_err(|e| invalid("place_words".into(), e.to_string()));
        let us = UsPlaces::new(file, &invalid)?;
        Ok(Gazetteer {
            entries,
            names,
            patterns,
            ranges,
            countries: countries.to_vec(),
            place_words,
            not_places: file.not_places.iter().map(|w| fold_term(w)).collect(),
            qualifiers: file.qualifiers.iter().map(|w| fold_term(w)).collect(),
            nl_postcode: build(r"\b([1-9][0-9]{3}) ?([A-Z]{2})\b")?,
            prefixed_postcode: build(r"\b(NL|B|BE)[- ]([1-9][0-9]{3})\b")?,
            context_code: build(&format!(r"(?i)\b(postcode|postcodegebied|{words})\s*[:#]?\s*([0-9]{{4,5}})\b"))?,
            code_area: build(r"(?i)\b([0-9]{4,5})\s+(?:area|omgeving|regio|gebied)\b")?,
            lead_code: Regex::new(r"^\s*(?:@[\w.]+[\s:,]+)*([1-9][0-9]{3})(?:[^0-9\p{L}]|$)\s*(\p{L}*)")
                .map_err(|e| invalid("postcodes".into(), e.to_string()))?,
            outage_code: Regex::new(
                r"(?i)(?:^|[^\p{L}])(?:storing\p{L}*|outage|down)\s+(?:\p{L}+\s+)?([1-9][0-9]{3})(?:[^0-9\p{L}]|$)\s*(\p{L}*)",
            )
            .map_err(|e| invalid("postcodes".into(), e.to_string()))?,
            phrase: Regex::new(&format!(
                r"(?:^|[^\p{{L}}\p{{N}}])(?i:{words})\s+(\p{{Lu}}[\p{{L}}'.\-]*(?:[ ]\p{{Lu}}[\p{{L}}'.\-]*){{0,2}})"
            ))
            .map_err(|e| invalid("place_words".into(), e.to_string()))?,
            us,
        })
    }

    fn region(&self, entry: usize) -> Region {
        let e = &self.entries[entry];
        Region {
            name: e.name.clone(),
            key: e.key.clone(),
            province: e.province.clone(),
            country: Some(e.country.clone()),
            municipality: e.municipality.clone(),
            source: e.source,
        }
    }

    /// Finds the region a message names, if any. `norm` is the message's normalised form.
    pub fn find(&self, norm: &Normalized) -> Option<Region> {
        self.find_place(&norm.folded, false)
            .or_else(|| self.find_code(&norm.nfkc))
            .or_else(|| self.find_us(norm))
            .or_else(|| self.find_phrase(&norm.nfkc))
    }

    /// Resolves a location written on its own (a platform hint, a notice's region): ambiguous names count here.
    pub fn resolve(&self, text: &str) -> Option<Region> {
        let norm = normalize(text);
        if norm.folded.is_empty() {
            return None;
        }
        if let Some(r) = self.find_place(&norm.folded, true) {
            return Some(r);
        }
        let digits: String = text.trim().chars().filter(char::is_ascii_digit).collect();
        if digits.len() == text.trim().len() && (digits.len() == 4 || digits.len() == 5) {
            return self.code_region(&digits, None);
        }
        if let Some(r) = self.find_code(&norm.nfkc) {
            return Some(r);
        }
        // "Chandler, AZ", "Central NJ", "Texas".
        if let Some(r) = self.find_us(&norm) {
            return Some(r);
        }
        if let Some(&state) = self.us.lookup.get(norm.folded.as_str()) {
            return Some(self.us.state_region(state));
        }
        // A free-form location: the part before the first comma names the place ("Port St. Lucie, FL").
        let first = text.split(',').next().unwrap_or(text).trim();
        let key = self.phrase_key(first);
        (!key.is_empty()).then(|| Region {
            name: text.trim().to_owned(),
            key,
            province: None,
            country: None,
            municipality: None,
            source: RegionSource::Phrase,
        })
    }

    fn find_place(&self, folded: &str, allow_ambiguous: bool) -> Option<Region> {
        let bytes = folded.as_bytes();
        for m in self.names.find_iter(folded) {
            let (s, e) = (m.start(), m.end());
            if (s > 0 && bytes[s - 1] != b' ') || (e < bytes.len() && bytes[e] != b' ') {
                continue;
            }
            let after_place_word = || {
                let previous = folded[..s].trim_end().rsplit(' ').next().unwrap_or("");
                self.place_words.contains(previous)
            };
            // Where two countries have a place of this name, the first of `countries` (the operator's) wins.
            let rank = |p: &&Pattern| {
                let country = &self.entries[p.entry].country;
                self.countries.iter().position(|c| c == country).unwrap_or(self.countries.len())
            };
            let place = self.patterns[m.pattern().as_usize()]
                .iter()
                .filter(|p| !p.ambiguous || allow_ambiguous || after_place_word())
                .min_by_key(rank);
            if let Some(place) = place {
                return Some(self.region(place.entry));
            }
        }
        None
    }

    fn find_code(&self, text: &str) -> Option<Region> {
        // Every code pattern holds four digits in a row: a text without them needs no search.
        let mut run = 0;
        if !text.bytes().any(|b| {
            run = if b.is_ascii_digit() { run + 1 } else { 0 };
            run >= 4
        }) {
            return None;
        }
        let kind = TextKind::of(text);
        if let Some(c) =
            self.nl_postcode.for_text(kind).captures_iter(text).find(|c| !matches!(&c[2], "SS" | "SA" | "SD"))
            && let Some(r) = self.postcode_region(&c[1], Some("nl"))
        {
            return Some(r);
        }
        if let Some(c) = self.prefixed_postcode.for_text(kind).captures(text) {
            let country = if &c[1] == "NL" { "nl" } else { "be" };
            if let Some(r) = self.postcode_region(&c[2], Some(country)) {
                return Some(r);
            }
        }
        for c in self.context_code.for_text(kind).captures_iter(text) {
            let word = c[1].to_lowercase();
            let code = &c[2];
            // "in 2017" is a year, not Haarlem: a bare year after "in"/"since" needs "postcode" or "zip" to count.
            let explicit = word.starts_with("postcode") || word.starts_with("zip") || word.contains("code");
            if code.len() == 4 && !explicit && looks_like_year(code) {
                continue;
            }
            if let Some(r) = self.code_region(code, None) {
                return Some(r);
            }
        }
        if let Some(r) = self.code_area.for_text(kind).captures_iter(text).find_map(|c| self.code_region(&c[1], None)) {
            return Some(r);
        }
        // A bare postcode where a place stands: first in the message ("3541 geen internet") or right after the outage
        // word ("storing 9741?", "storing KPN 2140"); not a year, an amount or a count ("2000 euro", "1200 klanten").
        [&self.lead_code, &self.outage_code].into_iter().find_map(|re| {
            let c = re.captures(text)?;
            let code = &c[1];
            let next = c.get(2).map_or(String::new(), |m| m.as_str().to_lowercase());
            (!looks_like_year(code) && !CODE_UNITS.split_whitespace().any(|u| u == next))
                .then(|| self.postcode_region(code, None))
                .flatten()
        })
    }

    fn code_region(&self, code: &str, country: Option<&str>) -> Option<Region> {
        match code.len() {
            4 => self.postcode_region(code, country),
            5 => Some(Region {
                name: code.to_owned(),
                key: format!("zip:{}", &code[..3]),
                province: self.us.zip_state(code).map(|s| self.us.state_key(s)),
                country: Some("us".into()),
                municipality: None,
                source: RegionSource::Zip,
            }),
            _ => None,
        }
    }

    /// Maps a 4-digit postcode to its area: the narrowest range that holds it, in the preferred country first.
    fn postcode_region(&self, code: &str, country: Option<&str>) -> Option<Region> {
        let n: u16 = code.parse().ok()?;
        let order: Vec<&str> = match country {
            Some(c) => vec![c],
            None => self.countries.iter().map(String::as_str).collect(),
        };
        for c in order {
            let best = self
                .ranges
                .iter()
                .filter(|r| r.country == c && (r.from..=r.to).contains(&n))
                .min_by_key(|r| r.to - r.from);
            if let Some(r) = best {
                let mut region = self.region(r.entry);
                region.source = RegionSource::Postcode;
                region.name = format!("{} ({code})", region.name);
                return Some(region);
            }
        }
        None
    }

    /// A US place phrase that names a state: a place word, a place and a state ("down in salisbury md"), capitalised
    /// words and a state ("Santa Clarita CA"), or a state on its own after a place word ("from northern NJ").
    fn find_us(&self, norm: &Normalized) -> Option<Region> {
        let us = &self.us;
        let folded = norm.folded.as_str();
        // Most messages name no state: one pass of the screen over the folded text, and one over the text for codes
        // in capitals, decide which of the two phrase rules can match at all, and the regexes run only then.
        let (mut after_place_word, mut name) = (false, false);
        for (t, &(s, e)) in norm.tokens.iter().enumerate() {
            if !us.screen(&folded.as_bytes()[s..e]) {
                continue;
            }
            name |= e - s > 2;
            after_place_word |=
                norm.tokens[t.saturating_sub(5)..t].iter().any(|&(s, e)| self.place_words.contains(&folded[s..e]));
        }
        let capitals = us.has_capital_code(&norm.nfkc);
        if !(after_place_word || name || capitals) {
            return None;
        }
        let words = us_words(&norm.nfkc);
        let fold = |w: &UsWord| w.text.to_ascii_lowercase();
        for j in 0..words.len() {
            // The state ending at word j, of one or two words ("TX", "new jersey", "west virginia").
            let two = (j > 0 && !words[j].break_before)
                .then(|| us.lookup.get(&format!("{} {}", fold(&words[j - 1]), fold(&words[j]))))
                .flatten();
            let (state, first) = match two {
                Some(&state) => (state, j - 1),
                None => match us.lookup.get(&fold(&words[j])) {
                    Some(&state) => (state, j),
                    None => continue,
                },
            };
            let (code, _, common_word) = &us.states[state];
            let written = words[j].text;
            let as_code = first == j && written.eq_ignore_ascii_case(code);
            let in_capitals = as_code && written == code;
            // A code that is also a word ("in" Indiana, "or" Oregon) counts only in capitals after a place.
            let word_code = *common_word && as_code;
            if word_code && !in_capitals {
                continue;
            }
            // A place word, up to three words (after an optional "the"), the state: "in salisbury md", "from
            // northern NJ", "in the Long Beach, Ca area".
            if after_place_word || capitals {
                let mut i = first;
                while i > 0 && first - i < 5 && !words[i].break_before {
                    i -= 1;
                    if self.place_words.contains(&fold(&words[i])) {
                        let place: Vec<&str> = words[i + 1..first].iter().map(|w| w.text).collect();
                        if place.is_empty() {
                            if !word_code {
                                return Some(us.state_region(state));
                            }
                        } else if let Some(r) = self.us_place(&place.join(" "), state) {
                            return Some(r);
                        }
                        break;
                    }
                }
            }
            // Capitalised words right before a state in capitals or by its name: "Santa Clarita CA", "Columbus, OH".
            let titled = |w: &UsWord| w.text.as_bytes()[0].is_ascii_uppercase();
            if (name || capitals)
                && (in_capitals || (!as_code && words[first..=j].iter().all(titled)))
                && (!word_code || words[first].comma_before)
            {
                let mut i = first;
                while i > 0 && first - i < 3 && !words[i].break_before && (i == first || !words[i].comma_before) {
                    if !titled(&words[i - 1]) {
                        break;
                    }
                    i -= 1;
                }
                if i < first {
                    let place: Vec<&str> = words[i..first].iter().map(|w| w.text).collect();
                    if let Some(r) = self.us_place(&place.join(" "), state) {
                        return Some(r);
                    }
                }
            }
        }
        None
    }

    /// The region for a place written before a state: the place in that state, or the state itself when the words
    /// only name a part of it ("central", "northern"); none when a word is no place ("my", "the", "internet").
    fn us_place(&self, written: &str, state: usize) -> Option<Region> {
        let written = written.trim().trim_end_matches([',', '.']);
        let folded = fold_term(written);
        let mut words: Vec<&str> = folded.split(' ').filter(|w| !w.is_empty()).collect();
        if words.first() == Some(&"the") {
            words.remove(0);
        }
        // "in my house TX" names no place; "in ocean city md" does ("city" only says what kind of place it is).
        let no_place = |w: &str| {
            (self.not_places.contains(w) && !self.qualifiers.contains(w)) || w.bytes().all(|b| b.is_ascii_digit())
        };
        if words.is_empty() || words.iter().any(|w| no_place(w)) {
            return None;
        }
        if words.iter().all(|w| self.us.area_words.contains(*w)) || self.us.area_words.contains(&words.join(" ")) {
            return Some(self.us.state_region(state));
        }
        let key = self.phrase_key(&words.join(" "));
        if key.is_empty() {
            return None;
        }
        let shown = written.strip_prefix("the ").or_else(|| written.strip_prefix("The ")).unwrap_or(written);
        Some(Region {
            name: format!("{shown}, {}", self.us.states[state].0),
            key,
            province: Some(self.us.state_key(state)),
            country: Some("us".into()),
            municipality: None,
            source: RegionSource::Phrase,
        })
    }

    fn find_phrase(&self, text: &str) -> Option<Region> {
        for c in self.phrase.captures_iter(text) {
            // A phrase ends at a sentence end: "in Los Angeles. Not only ..." names Los Angeles.
            let written = c[1].split(". ").next().unwrap_or("").trim_end_matches(['.', '\'', '-']);
            let first = fold_term(written.split(' ').next().unwrap_or(""));
            if first.is_empty() || self.not_places.contains(&first) {
                continue;
            }
            let key = self.phrase_key(written);
            if key.is_empty() || self.not_places.contains(&key) {
                continue;
            }
            return Some(Region {
                name: written.to_owned(),
                key,
                province: None,
                country: None,
                municipality: None,
                source: RegionSource::Phrase,
            });
        }
        None
    }

    /// The folded phrase without trailing state or country words ("Salisbury Mass" → "salisbury").
    fn phrase_key(&self, written: &str) -> String {
        let folded = fold_term(written);
        let mut words: Vec<&str> = folded.split(' ').filter(|w| !w.is_empty()).collect();
        while words.len() > 1 {
            let last = words[words.len() - 1];
            let last_two = (words.len() > 2).then(|| format!("{} {}", words[words.len() - 2], last));
            if last_two.as_ref().is_some_and(|t| self.qualifiers.contains(t)) {
                words.truncate(words.len() - 2);
            } else if self.qualifiers.contains(last) {
                words.pop();
            } else {
                break;
            }
        }
        words.join(" ")
    }
}

impl UsPlaces {
    fn new(file: &RegionsFile, invalid: &dyn Fn(String, String) -> DataError) -> Result<UsPlaces, DataError> {
        let mut states = Vec::new();
        let mut lookup = std::collections::HashMap::new();
        for (i, s) in file.us_states.iter().enumerate() {
            let code = s.code.trim().to_ascii_uppercase();
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(invalid(format!("us_states[{i}].code"), format!("`{}`: expected two letters", s.code)));
            }
            for name in std::iter::once(&s.name).chain(&s.aliases).chain(std::iter::once(&code)) {
                let folded = fold_term(name);
                if folded.is_empty() {
                    return Err(invalid(format!("us_states[{i}]"), "a name without letters".into()));
                }
                lookup.insert(folded, states.len());
            }
            states.push((code, s.name.clone(), s.common_word));
        }
        let mut zips = Vec::new();
        for (i, z) in file.zip_prefixes.iter().enumerate() {
            let Some(state) = states.iter().position(|s| s.0.eq_ignore_ascii_case(z.state.trim())) else {
                return Err(invalid(format!("zip_prefixes[{i}].state"), format!("unknown state `{}`", z.state)));
            };
            if z.from > z.to || z.to > 999 {
                return Err(invalid(format!("zip_prefixes[{i}].from"), "expected 0 <= from <= to <= 999".into()));
            }
            zips.push((z.from, z.to, state));
        }
        // The screen holds every code that is no common word (those count only in capitals, looked for apart), and
        // the last word of every name.
        let (mut codes, mut all_codes) = (Bits::default(), Bits::default());
        let (mut name_ends, mut name_words) = (Bits::default(), HashSet::new());
        for (folded, &i) in &lookup {
            if folded.len() == 2 && folded.eq_ignore_ascii_case(&states[i].0) {
                all_codes.set(folded.as_bytes());
                if !states[i].2 {
                    codes.set(folded.as_bytes());
                }
                continue;
            }
            // The last word only: a state is looked for where its name ends ("jersey" for "new jersey"), and first
            // words such as "new" and "north" are too common to screen for.
            if let Some(w) = folded.rsplit(' ').next().filter(|w| w.len() > 2) {
                name_ends.set(&[w.as_bytes()[0], w.as_bytes()[w.len() - 1]]);
                name_words.insert(w.to_owned());
            }
        }
        Ok(UsPlaces {
            states,
            lookup,
            codes,
            all_codes,
            name_ends,
            name_words,
            zips,
            area_words: file.state_area_words.iter().map(|w| fold_term(w)).collect(),
        })
    }

    fn state_key(&self, state: usize) -> String {
        format!("us-{}", self.states[state].0.to_ascii_lowercase())
    }

    fn state_region(&self, state: usize) -> Region {
        Region {
            name: self.states[state].1.clone(),
            key: self.state_key(state),
            province: None,
            country: Some("us".into()),
            municipality: None,
            source: RegionSource::Province,
        }
    }

    /// Whether a folded word may be (part of) a state's name or code; most words are ruled out without hashing.
    fn screen(&self, word: &[u8]) -> bool {
        match word.len() {
            2 => self.codes.get(word),
            3..=16 => {
                self.name_ends.get(&[word[0], word[word.len() - 1]])
                    && std::str::from_utf8(word).is_ok_and(|w| self.name_words.contains(w))
            }
            _ => false,
        }
    }

    /// Whether the text holds a state code in capitals as a word ("TX", "OH").
    fn has_capital_code(&self, text: &str) -> bool {
        let b = text.as_bytes();
        (0..b.len().saturating_sub(1)).any(|i| {
            b[i].is_ascii_uppercase()
                && b[i + 1].is_ascii_uppercase()
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
                && b.get(i + 2).is_none_or(|c| !c.is_ascii_alphanumeric())
                && self.all_codes.get(&[b[i].to_ascii_lowercase(), b[i + 1].to_ascii_lowercase()])
        })
    }

    /// The state a 5-digit ZIP code lies in, by its first three digits.
    fn zip_state(&self, code: &str) -> Option<usize> {
        let prefix: u16 = code.get(..3)?.parse().ok()?;
        self.zips.iter().find(|z| (z.0..=z.1).contains(&prefix)).map(|z| z.2)
    }
}

/// A set of pairs of ASCII lower-case letters.
#[derive(Debug, Default)]
struct Bits([u64; 11]);

impl Bits {
    fn index(pair: &[u8]) -> Option<usize> {
        let (a, b) = (*pair.first()?, *pair.get(1)?);
        (a.is_ascii_lowercase() && b.is_ascii_lowercase()).then(|| usize::from(a - b'a') * 26 + usize::from(b - b'a'))
    }

    fn set(&mut self, pair: &[u8]) {
        if let Some(i) = Bits::index(pair) {
            self.0[i / 64] |= 1 << (i % 64);
        }
    }

    fn get(&self, pair: &[u8]) -> bool {
        Bits::index(pair).is_some_and(|i| self.0[i / 64] & (1 << (i % 64)) != 0)
    }
}
