-- The language a subscriber asked in ("nl", "en"), so that every update of a notice reaches them in that language
-- where the notice has it. NULL (announcement channels, older rows) gets the notice's default text.
ALTER TABLE subscriptions ADD COLUMN language TEXT;
