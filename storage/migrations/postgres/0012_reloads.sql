-- Requests that every running instance do something again, such as read the bridge's data files (lexicons,
-- patterns, regions): an admin asks once (`webcare reload`, the console), and each instance that sees `generation`
-- grow does it. One row per kind of request.
CREATE TABLE reloads (
    name         TEXT   NOT NULL PRIMARY KEY,
    generation   BIGINT NOT NULL,
    requested_by TEXT   NOT NULL,
    requested_at BIGINT NOT NULL
);
