-- The platform's location hint for a message (a Telegram venue or location), kept so that a restart's replay
-- classifies the message as it was classified live.
ALTER TABLE inbound_messages ADD COLUMN place TEXT;
