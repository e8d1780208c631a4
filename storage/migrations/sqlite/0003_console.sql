-- The agents' web console: login sessions and canned replies (issue 7). Keep in step with
-- ../postgres/0003_console.sql. Times are UTC milliseconds.

-- A session is stored under the SHA-256 of its cookie value, never the value itself.
CREATE TABLE sessions (
    id_hash    TEXT    PRIMARY KEY,
    agent_id   INTEGER NOT NULL REFERENCES agents (id),
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_agent ON sessions (agent_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Approved answers with placeholders such as {name}; admins manage them.
CREATE TABLE canned_replies (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    title      TEXT    NOT NULL UNIQUE,
    body       TEXT    NOT NULL,
    created_by INTEGER REFERENCES agents (id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The reports count messages by time received.
CREATE INDEX inbound_messages_received ON inbound_messages (received_at);
