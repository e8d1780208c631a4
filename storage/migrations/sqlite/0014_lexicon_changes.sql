-- Admins' changes to the lexicons (a term added to a group, or a shipped term taken out), applied over the data
-- files on every instance. One per language, group and term.
CREATE TABLE lexicon_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    language   TEXT    NOT NULL,
    group_name TEXT    NOT NULL,
    term       TEXT    NOT NULL,
    edit       TEXT    NOT NULL,
    author_id  INTEGER REFERENCES agents (id),
    created_at INTEGER NOT NULL,
    UNIQUE (language, group_name, term)
);
