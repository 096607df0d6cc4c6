-- Exactly once per episode, whatever the workflow run: the store answers, for a command id,
-- which events it produced (events carry their command id; the index finds them) and which
-- request produced them (the fingerprint below), so a command re-sent after the episode
-- continued as new is answered with its stored events instead of being applied again, and
-- a command id reused for a different request is refused.
--
-- Building the index takes a write lock on `events` for as long as it runs (seconds per
-- million events): apply this migration in a quiet moment.
--
-- Production grants (see docs/event-store.md):
--   GRANT SELECT, INSERT ON command_fingerprints TO carepath_app;

CREATE INDEX events_command_idx ON events (episode_id, command_id);

-- One row per command id applied to an episode: SHA-256 of the canonical JSON of the
-- request less its command id (domain.idempotency.command_fingerprint). Commands applied
-- before this table existed have events but no row: their request is not known, and a
-- repeat of their id is answered with their events.
CREATE TABLE command_fingerprints (
    episode_id  text        NOT NULL,
    command_id  text        NOT NULL,
    fingerprint text        NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (episode_id, command_id)
);

-- Part of the record of what was asked: append-only like the events.
CREATE TRIGGER command_fingerprints_refuse_update_delete
    BEFORE UPDATE OR DELETE ON command_fingerprints
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER command_fingerprints_refuse_truncate
    BEFORE TRUNCATE ON command_fingerprints
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();
