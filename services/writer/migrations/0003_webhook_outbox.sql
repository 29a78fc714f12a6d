-- Webhook events are an outbox: the gateway answers a delivery once its body is in the blob
-- store and its row is here (status 'received'); a dispatcher in every gateway replica
-- claims received rows (FOR UPDATE SKIP LOCKED, a lease in next_at) and starts their
-- ingestions ('accepted'), retrying with backoff while Temporal or the stages are away.
ALTER TABLE webhook_events
    ADD COLUMN IF NOT EXISTS blob_key   text,
    ADD COLUMN IF NOT EXISTS event_type text        NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS attempts   integer     NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS next_at    timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS last_error text;
CREATE INDEX IF NOT EXISTS webhook_events_due ON webhook_events (next_at) WHERE status = 'received';
