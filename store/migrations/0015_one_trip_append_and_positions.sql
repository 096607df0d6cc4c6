-- Appends in one round trip, and read models folded after the append instead of inside it.
--
-- 1. Every event gets a global `position` (a sequence) and the id of the transaction that
--    wrote it (`tx`). Positions are unique and increase within a transaction, but two
--    transactions can commit out of position order, so a reader that follows positions
--    alone could pass over an event a slower transaction adds later. The projector never
--    does: it reads in (tx, position) order and only transactions older than the oldest
--    one still running (`pg_snapshot_xmin(pg_current_snapshot())`), which have all
--    committed or aborted. Within one stream (appends are serialised by its advisory lock)
--    that order is seq order.
-- 2. `projection_tracking` records, per projector, the (tx, position) it has folded up to,
--    in the same transaction as the read-model rows it wrote: a projector that crashes
--    starts again where its last transaction ended, and folds nothing twice.
-- 3. `append_events` checks the expected head, the command's id and fingerprint, inserts
--    the batch and returns the new head, in one statement (store/event_store.py).
-- 4. `rebuild_*` tables: `carepath db rebuild-projections` folds every stream into them
--    while appends and the live read models carry on, then copies them in at the end.
--
-- Giving the existing events a position rewrites the table once: apply this migration in
-- a quiet moment. The events stored before it count as already projected (their read
-- models were written in their append's transaction).

ALTER TABLE events ADD COLUMN position bigint;
ALTER TABLE events ADD COLUMN tx xid8 NOT NULL DEFAULT '1'::xid8;
ALTER TABLE events ALTER COLUMN tx SET DEFAULT pg_current_xact_id();

CREATE SEQUENCE events_position_seq AS bigint OWNED BY events.position;

ALTER TABLE events DISABLE TRIGGER events_refuse_update_delete;
UPDATE events e SET position = n.position
FROM (SELECT episode_id, seq,
             row_number() OVER (ORDER BY recorded_at, episode_id, seq) AS position
      FROM events) n
WHERE e.episode_id = n.episode_id AND e.seq = n.seq;
ALTER TABLE events ENABLE TRIGGER events_refuse_update_delete;

SELECT setval('events_position_seq', GREATEST((SELECT max(position) FROM events), 1),
              (SELECT max(position) FROM events) IS NOT NULL);
ALTER TABLE events ALTER COLUMN position SET DEFAULT nextval('events_position_seq');
ALTER TABLE events ALTER COLUMN position SET NOT NULL;
CREATE UNIQUE INDEX events_position_idx ON events (position);
CREATE INDEX events_tx_position_idx ON events (tx, position);

CREATE TABLE projection_tracking (
    name       text        PRIMARY KEY,
    tx         xid8        NOT NULL,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projection_tracking (name, tx, position)
VALUES ('read_models', '1'::xid8, COALESCE((SELECT max(position) FROM events), 0));

CREATE TABLE rebuild_projection_failures (LIKE projection_failures INCLUDING ALL);
CREATE TABLE rebuild_projection_snapshots (LIKE projection_snapshots INCLUDING ALL);
CREATE TABLE rebuild_episode_summary (LIKE episode_summary INCLUDING ALL);
CREATE TABLE rebuild_caseload (LIKE caseload INCLUDING ALL);
CREATE TABLE rebuild_open_tasks (LIKE open_tasks INCLUDING ALL);
CREATE TABLE rebuild_upcoming_deadlines (LIKE upcoming_deadlines INCLUDING ALL);
CREATE TABLE rebuild_attended_hours (LIKE attended_hours INCLUDING ALL);
CREATE TABLE rebuild_episode_consents (LIKE episode_consents INCLUDING ALL);

-- What `project_episode` does, into the read-model tables whose names start with
-- `p_prefix` ('' for the live ones, 'rebuild_' for a rebuild's).
CREATE FUNCTION project_episode_into(
    p_prefix text, p_episode_id text, p_version integer, p_doc jsonb
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    EXECUTE format(
        'INSERT INTO %I (episode_id, version, state) VALUES ($1, $2, $3) '
        'ON CONFLICT (episode_id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state',
        p_prefix || 'projection_snapshots')
    USING p_episode_id, p_version, p_doc -> 'state';
    FOREACH t IN ARRAY ARRAY['episode_summary', 'caseload', 'open_tasks', 'upcoming_deadlines',
                             'attended_hours', 'episode_consents'] LOOP
        EXECUTE format('DELETE FROM %I WHERE episode_id = $1', p_prefix || t) USING p_episode_id;
        EXECUTE format('INSERT INTO %I SELECT * FROM jsonb_populate_recordset(NULL::%I, $1)',
                       p_prefix || t, p_prefix || t)
        USING p_doc -> t;
    END LOOP;
END;
$$;

-- One append, in one statement. `p_rows` is the batch (contiguous seqs, each row's
-- prev_hash and hash computed by the caller under the chain key, which PostgreSQL never
-- sees). Under the stream's advisory lock:
--   * a command id recorded with another fingerprint: 'reused', nothing written;
--   * a command id already applied at other seqs: 'applied_before', nothing written
--     (the caller reads its events);
--   * a batch that starts after the head + 1: 'gap';
--   * a seq already holding a different payload: 'conflict', naming the first such seq;
--   * new rows whose chain does not continue the stored head: 'stale_base', with the
--     hash stored just before the batch (`base_hash`) for the caller to chain from;
--   * otherwise the new rows are inserted (rows already stored as they are count as
--     written before) and the command's fingerprint recorded: 'ok'.
-- Returns the head after the call and the position of the batch's last event.
CREATE FUNCTION append_events(
    p_episode_id text, p_rows jsonb, p_command_id text, p_fingerprint text,
    OUT status text, OUT head_seq integer, OUT head_hash text, OUT base_hash text,
    OUT last_position bigint, OUT written integer, OUT conflict_seq integer
)
LANGUAGE plpgsql AS $$
DECLARE
    v_first integer;
    v_last integer;
    v_count integer;
    v_recorded text;
    v_prior integer[];
    v_prev text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_episode_id, 0));
    written := 0;
    SELECT e.seq, e.hash INTO head_seq, head_hash
      FROM events e WHERE e.episode_id = p_episode_id ORDER BY e.seq DESC LIMIT 1;
    IF head_seq IS NULL THEN
        head_seq := 0;
        head_hash := repeat('0', 64);
    END IF;
    SELECT min((r ->> 'seq')::integer), max((r ->> 'seq')::integer), count(*)
      INTO v_first, v_last, v_count FROM jsonb_array_elements(p_rows) r;

    IF p_command_id IS NOT NULL THEN
        SELECT f.fingerprint INTO v_recorded FROM command_fingerprints f
         WHERE f.episode_id = p_episode_id AND f.command_id = p_command_id;
        IF v_recorded IS NOT NULL AND v_recorded <> p_fingerprint THEN
            status := 'reused';
            RETURN;
        END IF;
        SELECT array_agg(e.seq ORDER BY e.seq) INTO v_prior FROM events e
         WHERE e.episode_id = p_episode_id AND e.command_id = p_command_id;
        -- The same seqs are this very append retried: checked below like any re-append.
        IF v_prior IS NOT NULL
           AND (v_count = 0 OR v_prior <> ARRAY(SELECT generate_series(v_first, v_last))) THEN
            status := 'applied_before';
            RETURN;
        END IF;
    END IF;
    IF v_count = 0 THEN
        status := 'ok';
        RETURN;
    END IF;
    IF v_first > head_seq + 1 THEN
        status := 'gap';
        RETURN;
    END IF;
    SELECT min(r.seq) INTO conflict_seq
      FROM jsonb_to_recordset(p_rows) AS r(seq integer, payload jsonb)
      JOIN events e ON e.episode_id = p_episode_id AND e.seq = r.seq
     WHERE e.payload <> r.payload;
    IF conflict_seq IS NOT NULL THEN
        status := 'conflict';
        RETURN;
    END IF;
    IF v_last > head_seq THEN
        SELECT r ->> 'prev_hash' INTO v_prev FROM jsonb_array_elements(p_rows) r
         WHERE (r ->> 'seq')::integer = head_seq + 1;
        IF v_prev IS DISTINCT FROM head_hash THEN
            status := 'stale_base';
            SELECT e.hash INTO base_hash FROM events e
             WHERE e.episode_id = p_episode_id AND e.seq = v_first - 1;
            base_hash := COALESCE(base_hash, repeat('0', 64));
            RETURN;
        END IF;
        WITH inserted AS (
            INSERT INTO events (episode_id, seq, event_type, schema_version, payload,
                                occurred_at, actor_id, actor_role, command_id, prev_hash,
                                hash, hash_alg)
            SELECT p_episode_id, r.seq, r.event_type, r.schema_version, r.payload,
                   r.occurred_at, r.actor_id, r.actor_role, r.command_id, r.prev_hash,
                   r.hash, 'hmac-sha256'
              FROM jsonb_to_recordset(p_rows) AS r(
                       seq integer, event_type text, schema_version integer, payload jsonb,
                       occurred_at timestamptz, actor_id text, actor_role text,
                       command_id text, prev_hash text, hash text)
             WHERE r.seq > head_seq
             ORDER BY r.seq
            RETURNING seq, hash
        )
        SELECT count(*), max(seq), (array_agg(hash ORDER BY seq DESC))[1]
          INTO written, head_seq, head_hash FROM inserted;
        IF p_command_id IS NOT NULL THEN
            INSERT INTO command_fingerprints (episode_id, command_id, fingerprint)
            VALUES (p_episode_id, p_command_id, p_fingerprint) ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    SELECT e.position INTO last_position FROM events e
     WHERE e.episode_id = p_episode_id AND e.seq = v_last;
    status := 'ok';
END;
$$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'carepath_app') THEN
        GRANT SELECT, INSERT, UPDATE ON projection_tracking TO carepath_app;
        GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON
            rebuild_projection_failures, rebuild_projection_snapshots, rebuild_episode_summary,
            rebuild_caseload, rebuild_open_tasks, rebuild_upcoming_deadlines,
            rebuild_attended_hours, rebuild_episode_consents
            TO carepath_app;
        GRANT USAGE ON SEQUENCE events_position_seq TO carepath_app;
        GRANT EXECUTE ON FUNCTION append_events(text, jsonb, text, text),
            project_episode_into(text, text, integer, jsonb) TO carepath_app;
    END IF;
END
$$;
