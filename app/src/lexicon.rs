//! Admins tune the lexicons from the console, the REST API or the command line, without a file on every server
//! and without a restart: a change (a term added to a group, or a listed term taken out) is checked against the
//! lexicons loaded now, kept in the database, and applied by every instance over its data files when it sees the
//! reload request the change makes (within seconds; see `webcare serve`).
//!
//! The regions are tuned the same way: the `regions` lexicon has a group per province and place of the regions
//! file, whose terms are the other names it goes by ("Rijnsweerd" for Utrecht); one name names one place.

/// The `regions` pseudo-language: its groups are the provinces and places, its terms their other names.
pub use webcare_bridge::data::REGIONS;
use webcare_domain::{
    Agent, InboundMessage, LexiconChange, LexiconChangeId, LexiconGroup, Role, Store, StoreError, TermEdit, Timestamp,
};

use crate::intake::RELOAD_BRIDGE_DATA;

/// The classifier on `data` (the data files, named by `dir` in errors) with the admins' `changes` over them, as
/// every instance runs it. A change that no longer fits the files (a group renamed there) is left out and named in
/// the log; should the changes keep the data from loading at all, the classifier is the files' alone, and the log
/// says so, rather than webcare not start.
pub fn classifier(
    data: &webcare_bridge::ClassifierData,
    dir: &std::path::Path,
    changes: &[LexiconChange],
) -> Result<webcare_bridge::Classifier, webcare_bridge::DataError> {
    if changes.is_empty() {
        return webcare_bridge::Classifier::new(data, dir);
    }
    let mut changed = data.clone();
    for (id, why) in changed.apply(changes) {
        tracing::warn!(change = %id, why, "a lexicon change is left out: it does not fit the data files");
    }
    webcare_bridge::Classifier::new(&changed, dir).or_else(|e| {
        tracing::error!(error = %e, "the lexicon changes keep the data from loading; running on the data files alone");
        webcare_bridge::Classifier::new(data, dir)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum LexiconError {
    #[error("only admins change the lexicons")]
    NotAdmin,
    #[error("the {language} lexicon has no group `{group}`")]
    NoGroup { language: String, group: String },
    #[error("{0}")]
    BadTerm(&'static str),
    #[error("“{term}” counts for {language} {group} already")]
    Listed { language: String, group: String, term: String },
    #[error("“{term}” is not a term of {language} {group}")]
    NotListed { language: String, group: String, term: String },
    #[error("lexicon change {0} not found")]
    NotFound(LexiconChangeId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A change an admin asks for.
#[derive(Debug, Clone, Copy)]
pub struct Edit<'a> {
    pub language: &'a str,
    pub group: &'a str,
    pub term: &'a str,
    pub edit: TermEdit,
}

/// Checks `edit` against the groups loaded now (`loaded`: the running classifier's, see `Intake::lexicon`) and
/// keeps it; every instance applies it within seconds.
pub async fn change(
    store: &dyn Store,
    loaded: &[LexiconGroup],
    edit: Edit<'_>,
    author: &Agent,
    now: Timestamp,
) -> Result<LexiconChange, LexiconError> {
    if author.role != Role::Admin {
        return Err(LexiconError::NotAdmin);
    }
    check(loaded, edit)?;
    let (language, group, term) = (edit.language.trim(), edit.group.trim(), edit.term.trim());
    let kept = store.put_lexicon_change(language, group, term, edit.edit, Some(author.id), now).await?;
    store.request_reload(RELOAD_BRIDGE_DATA, &author.name, now).await?;
    tracing::info!(admin = %author.name, language, group, term, edit = %edit.edit, "lexicon changed; every instance applies it");
    Ok(kept)
}

/// Whether `edit` can be made to the groups loaded now: the group exists, the term can be one, and a term is added
/// only where it does not count yet and taken out only where it is listed.
pub fn check(loaded: &[LexiconGroup], edit: Edit<'_>) -> Result<(), LexiconError> {
    let (language, group, term) = (edit.language.trim(), edit.group.trim(), edit.term.trim());
    let Some(found) = loaded.iter().find(|g| g.language == language && g.name == group) else {
        return Err(LexiconError::NoGroup { language: language.to_owned(), group: group.to_owned() });
    };
    if let Some(problem) = webcare_bridge::term_problem(term) {
        return Err(LexiconError::BadTerm(problem));
    }
    if language == webcare_bridge::data::REGIONS && (term.contains('*') || term.contains("..")) {
        return Err(LexiconError::BadTerm("a place's name is written out: no * or .."));
    }
    let same = |t: &String| webcare_bridge::data::same_term(t, term);
    let listed = found.terms.iter().any(same);
    if language == webcare_bridge::data::REGIONS && edit.edit == TermEdit::Add {
        // One name, one place: a name that another province or place (or this one) goes by already is refused, naming it.
        if let Some(other) =
            loaded.iter().find(|g| g.language == language && (same(&g.name) || g.terms.iter().any(same)))
        {
            let (language, group, term) = (language.to_owned(), other.name.clone(), term.to_owned());
            return Err(LexiconError::Listed { language, group, term });
        }
    }
    let (language, group, term) = (language.to_owned(), group.to_owned(), term.to_owned());
    match (edit.edit, listed) {
        (TermEdit::Add, true) => Err(LexiconError::Listed { language, group, term }),
        (TermEdit::Remove, false) => Err(LexiconError::NotListed { language, group, term }),
        _ => Ok(()),
    }
}

/// `edit` as a change not (yet) kept, to build a classifier with it for a preview.
pub fn unkept(edit: Edit<'_>, now: Timestamp) -> LexiconChange {
    LexiconChange {
        id: webcare_domain::LexiconChangeId(0),
        language: edit.language.trim().to_owned(),
        group: edit.group.trim().to_owned(),
        term: edit.term.trim().to_owned(),
        edit: edit.edit,
        author: None,
        created_at: now,
    }
}

/// How `current` and `current` with `change` more read each of `texts`: both classifications in a stored
/// decision's fields. `None` (logged) when the changed data does not load.
pub fn read_with_change(
    current: &webcare_bridge::Classifier,
    change: &LexiconChange,
    texts: &[(&str, Option<&str>)],
) -> Option<Vec<(serde_json::Value, serde_json::Value)>> {
    let candidate = match current.with_change(change) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "a lexicon change to try does not load");
            return None;
        }
    };
    let record = |c: &webcare_bridge::Classifier, (text, place): &(&str, Option<&str>)| {
        crate::messages::classification_record(&c.classify(text, *place))
    };
    Some(texts.iter().map(|t| (record(current, t), record(&candidate, t))).collect())
}

/// What a change would do before it is made: the latest `limit` stored messages with text, read as the data is and
/// with the change (`read`: see `Intake::read_with_change`); those read differently, newest first, each with what
/// differs ("intent outage (was case)"), and how many were read. `None` when `read` could not read them.
pub async fn preview(
    store: &dyn Store,
    read: impl FnOnce(&[(&str, Option<&str>)]) -> Option<Vec<(serde_json::Value, serde_json::Value)>>,
    limit: u32,
) -> Result<Option<(usize, Vec<(InboundMessage, Vec<String>)>)>, StoreError> {
    let messages: Vec<InboundMessage> = store
        .inbound_page(&webcare_domain::InboundFilter::default(), limit)
        .await?
        .into_iter()
        .filter(|m| !m.text.trim().is_empty())
        .collect();
    let texts: Vec<(&str, Option<&str>)> = messages.iter().map(|m| (m.text.as_str(), m.place.as_deref())).collect();
    let Some(readings) = read(&texts) else { return Ok(None) };
    let read_count = messages.len();
    let mut differ = Vec::new();
    for (m, (then, now)) in messages.into_iter().zip(readings) {
        let changes = crate::messages::changes(&crate::messages::why(&then), &crate::messages::why(&now));
        if !changes.is_empty() {
            differ.push((m, changes));
        }
    }
    Ok(Some((read_count, differ)))
}

/// Takes a change back: the data files' word holds again, on every instance within seconds.
pub async fn undo(store: &dyn Store, id: LexiconChangeId, author: &Agent, now: Timestamp) -> Result<(), LexiconError> {
    if author.role != Role::Admin {
        return Err(LexiconError::NotAdmin);
    }
    if !store.delete_lexicon_change(id).await? {
        return Err(LexiconError::NotFound(id));
    }
    store.request_reload(RELOAD_BRIDGE_DATA, &author.name, now).await?;
    tracing::info!(admin = %author.name, change = %id, "lexicon change taken back; every instance applies it");
    Ok(())
}
