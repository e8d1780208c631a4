-- Messages stored but not yet decided: an instance that does not hold the bridge stores a message and leaves it to
-- the one that does, which finds it through this index.
CREATE INDEX inbound_messages_undecided ON inbound_messages (id) WHERE decision IS NULL;
