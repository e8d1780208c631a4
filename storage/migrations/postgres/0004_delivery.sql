-- Delivery across instances (issue 6).

-- The send budget each bot shares across every instance: a GCRA in one row per bucket. `next_at` (microseconds) is
-- the earliest moment the next message may go out; a worker reserves k slots by moving it k intervals ahead.
CREATE TABLE send_budget (
    bucket  TEXT    PRIMARY KEY,
    next_at BIGINT  NOT NULL
);

-- A conversation's pending rows, for `/stop` (which cancels pending notice messages) and transcripts.
CREATE INDEX outbox_conversation ON outbox (conversation_id, state);

-- Telegram's paid broadcast (`allow_paid_broadcast`, up to 1,000 messages/s at a fee per message), opted into per
-- notice by an admin who has seen the cost estimate.
ALTER TABLE notices ADD COLUMN paid_broadcast BOOLEAN NOT NULL DEFAULT FALSE;
