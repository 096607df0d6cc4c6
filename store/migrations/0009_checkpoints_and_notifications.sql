-- Signed checkpoints: the head (last seq and hash) of every stream at one moment, signed
-- with HMAC-SHA256 under the checkpoint key. An exported copy kept outside the database
-- lets an auditor prove the store still matches it (a truncated or re-hashed stream
-- no longer does). Checkpoints are append-only like the events.
--
-- Production grants (see docs/event-store.md):
--   GRANT SELECT, INSERT ON checkpoints, notifications_sent TO carepath_app;
--   GRANT USAGE ON SEQUENCE checkpoints_checkpoint_id_seq TO carepath_app;

CREATE TABLE checkpoints (
    checkpoint_id bigserial   PRIMARY KEY,
    taken_at      timestamptz NOT NULL,
    streams       integer     NOT NULL,
    events        bigint      NOT NULL,
    heads         jsonb       NOT NULL,  -- {"episode id": {"seq": n, "hash": "..."}}
    key_id        text        NOT NULL,  -- which key signed it (not the key)
    signature     text        NOT NULL CHECK (signature ~ '^[0-9a-f]{64}$')
);

CREATE TRIGGER checkpoints_refuse_update_delete
    BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER checkpoints_refuse_truncate
    BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- One row per notification delivered, keyed by the event-derived notification key, so a
-- retried notification activity skips what it already sent.
CREATE TABLE notifications_sent (
    notification_key text        PRIMARY KEY,
    episode_id       text        NOT NULL,
    seq              integer     NOT NULL,
    recipient        text        NOT NULL,
    channel          text        NOT NULL,
    sent_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX notifications_sent_episode_idx ON notifications_sent (episode_id, seq);
