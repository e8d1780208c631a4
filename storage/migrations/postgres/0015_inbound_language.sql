-- The person's language as the platform says it (`nl` or `en`: Telegram's language_code, the web chat browser's
-- language), kept with the message so that a restart's replay answers it in the language the live decision chose.
ALTER TABLE inbound_messages ADD COLUMN language TEXT;
