-- Ticketing: the lifecycle, claims and SLA due times (issue 7). Keep in step with ../postgres/0002_ticketing.sql.
-- Times are UTC milliseconds; tags are a JSON list of strings.

-- The conversation's platform, copied onto the ticket so the queue can filter without a join.
ALTER TABLE tickets ADD COLUMN platform TEXT NOT NULL DEFAULT '';
UPDATE tickets SET platform = COALESCE(
    (SELECT conversations.platform FROM conversations WHERE conversations.id = tickets.conversation_id), '');
ALTER TABLE tickets ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
-- The claim is a lock with a lapse: it holds while its holder keeps acting (last_activity_at).
ALTER TABLE tickets ADD COLUMN claimed_by INTEGER REFERENCES agents (id);
ALTER TABLE tickets ADD COLUMN claimed_at INTEGER;
ALTER TABLE tickets ADD COLUMN last_activity_at INTEGER;
ALTER TABLE tickets ADD COLUMN first_response_due_at INTEGER;
ALTER TABLE tickets ADD COLUMN resolution_due_at INTEGER;
ALTER TABLE tickets ADD COLUMN first_responded_at INTEGER;
ALTER TABLE tickets ADD COLUMN solved_at INTEGER;
ALTER TABLE tickets ADD COLUMN closed_at INTEGER;
-- Every write increments it; a change computed from a stale read is refused (optimistic locking).
ALTER TABLE tickets ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

-- The auto-close sweep reads solved tickets by the time they were solved; the queue filters by assignee.
CREATE INDEX tickets_solved ON tickets (state, solved_at);
CREATE INDEX tickets_assignee ON tickets (assignee_id, state);
