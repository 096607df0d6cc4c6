-- The event store: one append-only, hash-chained stream of events per episode.
-- The long-term audit record (DESIGN.md section 3): the database itself refuses to
-- change or remove an event, so a correction is always a new event.
--
-- In production the application connects as a role that may only read and append, e.g.:
--   CREATE ROLE carepath_app LOGIN PASSWORD '...';
--   GRANT SELECT, INSERT ON events TO carepath_app;
-- and only the owner (used for migrations) could disable the triggers below.

CREATE TABLE events (
    episode_id     text        NOT NULL,
    seq            integer     NOT NULL CHECK (seq >= 1),
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version >= 1),
    payload        jsonb       NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    actor_id       text        NOT NULL,
    actor_role     text        NOT NULL,
    command_id     text        NOT NULL,
    prev_hash      text        NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash           text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    PRIMARY KEY (episode_id, seq)
);

CREATE INDEX events_recorded_at_idx ON events (recorded_at);

CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'record a correcting event instead';
END;
$$;

CREATE TRIGGER events_refuse_update_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_refuse_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();
