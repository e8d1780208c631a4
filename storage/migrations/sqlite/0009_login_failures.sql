-- Failed console logins, one row each, per key (`addr:...`, `name:...`): the limits on them hold for every instance
-- on the database together. Rows older than the login window are deleted as new ones come.
CREATE TABLE login_failures (
    key TEXT   NOT NULL,
    at  BIGINT NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (key, at);
CREATE INDEX login_failures_at ON login_failures (at);
