-- webcare schema, SQLite dialect. Times are UTC milliseconds since the epoch (INTEGER);
-- lists and maps are JSON text. Keep in step with ../postgres/0001_init.sql: one contract suite checks both.

CREATE TABLE customers (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    platform         TEXT    NOT NULL,
    platform_user_id TEXT    NOT NULL,
    display_name     TEXT    NOT NULL,
    unreachable      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       INTEGER NOT NULL,
    UNIQUE (platform, platform_user_id)
);

CREATE TABLE conversations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    platform         TEXT    NOT NULL,
    platform_chat_id TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    title            TEXT,
    -- Set when the platform refuses delivery for good (blocked bot, closed DMs); nothing is sent there then.
    unreachable      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       INTEGER NOT NULL,
    UNIQUE (platform, platform_chat_id)
);

CREATE TABLE inbound_messages (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    platform            TEXT    NOT NULL,
    platform_message_id TEXT    NOT NULL,
    conversation_id     INTEGER NOT NULL REFERENCES conversations (id),
    customer_id         INTEGER NOT NULL REFERENCES customers (id),
    text                TEXT    NOT NULL,
    attachments         TEXT    NOT NULL DEFAULT '[]',
    received_at         INTEGER NOT NULL,
    edited_at           INTEGER,
    deleted_at          INTEGER,
    decision            TEXT,
    UNIQUE (platform, platform_message_id)
);
CREATE INDEX inbound_messages_conversation ON inbound_messages (conversation_id, received_at);

CREATE TABLE agents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL,
    password_hash TEXT,
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id   INTEGER NOT NULL REFERENCES agents (id),
    token_hash TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE outage_clusters (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    account            TEXT    NOT NULL,
    service            TEXT    NOT NULL,
    region             TEXT,
    state              TEXT    NOT NULL,
    members            INTEGER NOT NULL DEFAULT 0,
    alerted_at_members INTEGER NOT NULL DEFAULT 0,
    notice_id          INTEGER,
    first_at           INTEGER NOT NULL,
    last_at            INTEGER NOT NULL
);
CREATE INDEX outage_clusters_state ON outage_clusters (state);

CREATE TABLE notices (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    title      TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    services   TEXT    NOT NULL,
    regions    TEXT    NOT NULL,
    text       TEXT    NOT NULL,
    texts      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    draft      BOOLEAN NOT NULL,
    cluster_id INTEGER REFERENCES outage_clusters (id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE notice_versions (
    notice_id   INTEGER NOT NULL REFERENCES notices (id),
    version     INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    texts       TEXT    NOT NULL,
    services    TEXT    NOT NULL,
    regions     TEXT    NOT NULL,
    author_id   INTEGER REFERENCES agents (id),
    approved_by INTEGER REFERENCES agents (id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (notice_id, version)
);

CREATE TABLE subscriptions (
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    customer_id     INTEGER REFERENCES customers (id),
    notice_id       INTEGER REFERENCES notices (id),
    cluster_id      INTEGER REFERENCES outage_clusters (id),
    created_at      INTEGER NOT NULL,
    CHECK ((notice_id IS NULL) <> (cluster_id IS NULL))
);
CREATE UNIQUE INDEX subscriptions_notice ON subscriptions (notice_id, conversation_id) WHERE notice_id IS NOT NULL;
CREATE UNIQUE INDEX subscriptions_cluster ON subscriptions (cluster_id, conversation_id) WHERE cluster_id IS NOT NULL;
CREATE INDEX subscriptions_conversation ON subscriptions (conversation_id);

CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    customer_id     INTEGER NOT NULL REFERENCES customers (id),
    state           TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    priority        INTEGER NOT NULL,
    category        TEXT    NOT NULL,
    assignee_id     INTEGER REFERENCES agents (id),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    due_at          INTEGER
);
CREATE INDEX tickets_state_due ON tickets (state, due_at);
CREATE INDEX tickets_conversation ON tickets (conversation_id, customer_id, state);

CREATE TABLE ticket_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id),
    kind       TEXT    NOT NULL,
    actor_id   INTEGER REFERENCES agents (id),
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, id);

CREATE TABLE outbox (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id     INTEGER NOT NULL REFERENCES conversations (id),
    kind                TEXT    NOT NULL,
    body                TEXT    NOT NULL,
    extra               TEXT    NOT NULL,
    idempotency_key     TEXT    NOT NULL UNIQUE,
    priority            INTEGER NOT NULL,
    state               TEXT    NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     INTEGER NOT NULL,
    claimed_by          TEXT,
    lease_until         INTEGER,
    last_error          TEXT,
    platform_message_id TEXT,
    created_at          INTEGER NOT NULL,
    sent_at             INTEGER
);
-- The claim query walks due rows by priority; this index serves it on both states it reads.
CREATE INDEX outbox_due ON outbox (state, priority DESC, next_attempt_at, id);

-- Spike alerts: a cluster growing faster than its baseline, for admins to publish a notice from.
CREATE TABLE spike_alerts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster_id INTEGER NOT NULL REFERENCES outage_clusters (id),
    account    TEXT    NOT NULL,
    service    TEXT    NOT NULL,
    region     TEXT,
    count      INTEGER NOT NULL,
    samples    TEXT    NOT NULL,
    draft      TEXT    NOT NULL,
    first_at   INTEGER NOT NULL,
    last_at    INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- The bridge's decision state, saved now and then; messages after `last_inbound_id` are replayed on start.
CREATE TABLE engine_snapshots (
    id              INTEGER PRIMARY KEY,
    state           TEXT    NOT NULL,
    last_inbound_id INTEGER NOT NULL,
    taken_at        INTEGER NOT NULL
);

-- Links that continue a public conversation's case in a private chat (Telegram deep links, Discord DMs):
-- an unguessable token stands for the ticket, so the link itself carries no data.
CREATE TABLE private_links (
    token      TEXT    PRIMARY KEY,
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id),
    created_at INTEGER NOT NULL
);

-- Leases: one instance at a time does a job (polling Telegram); another takes over when the lease runs out.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
