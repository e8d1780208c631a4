-- Spike alerts posted to a webhook per service (the network or TV team's channel), at least once, across crashes
-- and instances: each alert records where its post stands, and a notifier claims due alerts with a lease, as the
-- outbox's workers claim rows.
--   webhook_state: pending (due at webhook_next_at) | sending (claimed until webhook_lease_until) | posted | failed
--                  | skipped (no webhook for its service)
--   webhook_route: the webhook it went to, a service's name or `default`; webhook_error: why the last attempt
--                  failed, never the URL.
ALTER TABLE spike_alerts ADD COLUMN webhook_state       TEXT    NOT NULL DEFAULT 'pending';
ALTER TABLE spike_alerts ADD COLUMN webhook_attempts    INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spike_alerts ADD COLUMN webhook_route       TEXT;
ALTER TABLE spike_alerts ADD COLUMN webhook_next_at     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spike_alerts ADD COLUMN webhook_claimed_by  TEXT;
ALTER TABLE spike_alerts ADD COLUMN webhook_lease_until INTEGER;
ALTER TABLE spike_alerts ADD COLUMN webhook_error       TEXT;
ALTER TABLE spike_alerts ADD COLUMN webhook_posted_at   INTEGER;

-- Alerts raised before webhooks existed are not posted after an upgrade: they may be long over.
UPDATE spike_alerts SET webhook_state = 'skipped', webhook_error = 'raised before alert webhooks existed';

-- The notifier's question, asked every second: is any alert due?
CREATE INDEX spike_alerts_webhook_due ON spike_alerts (webhook_state, webhook_next_at);
