-- 1. `append_events` (0015) with fewer statements on its common path (each statement of a
-- PL/pgSQL function is a trip through the executor):
--
-- * the stream's head, the batch's bounds and the prev_hash the head must match are read
--   in one statement instead of three, and a command's recorded fingerprint and earlier
--   events in one instead of two;
-- * a batch that starts after the stream's head cannot overlap a stored event, so the
--   comparison with stored payloads (a join of the batch with `events`) runs only for a
--   batch that starts at or before the head (a re-append, or a conflict);
-- * the position of the batch's last event comes back from the INSERT itself; it is
--   looked up only when nothing new was written.
--
--    Same arguments, same results, same checks (the store's contract tests).
--
-- 2. `project_episode` (0008) replaces the rows of only the read models its document
--    names: the projector leaves out a table whose rows the episode's new events did not
--    change (most events touch two or three of the six), so that table is neither
--    deleted from nor inserted into. A document naming every table, as before, does what
--    it did.

CREATE OR REPLACE FUNCTION append_events(
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
    -- The head, the batch's first and last seq and size, and the prev_hash of the batch's
    -- event that would follow the head, in one statement.
    SELECT COALESCE(h.seq, 0), COALESCE(h.hash, repeat('0', 64)),
           min((r.value ->> 'seq')::integer), max((r.value ->> 'seq')::integer), count(r.value),
           min(r.value ->> 'prev_hash')
               FILTER (WHERE (r.value ->> 'seq')::integer = COALESCE(h.seq, 0) + 1)
      INTO head_seq, head_hash, v_first, v_last, v_count, v_prev
      FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (SELECT e.seq, e.hash FROM events e WHERE e.episode_id = p_episode_id
                          ORDER BY e.seq DESC LIMIT 1) AS h ON true
      LEFT JOIN LATERAL jsonb_array_elements(p_rows) AS r ON true
     GROUP BY h.seq, h.hash;

    IF p_command_id IS NOT NULL THEN
        SELECT (SELECT f.fingerprint FROM command_fingerprints f
                 WHERE f.episode_id = p_episode_id AND f.command_id = p_command_id),
               (SELECT array_agg(e.seq ORDER BY e.seq) FROM events e
                 WHERE e.episode_id = p_episode_id AND e.command_id = p_command_id)
          INTO v_recorded, v_prior;
        IF v_recorded IS NOT NULL AND v_recorded <> p_fingerprint THEN
            status := 'reused';
            RETURN;
        END IF;
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
    -- Only a batch that starts at or before the head can overlap stored events.
    IF v_first <= head_seq THEN
        SELECT min(r.seq) INTO conflict_seq
          FROM jsonb_to_recordset(p_rows) AS r(seq integer, payload jsonb)
          JOIN events e ON e.episode_id = p_episode_id AND e.seq = r.seq
         WHERE e.payload <> r.payload;
        IF conflict_seq IS NOT NULL THEN
            status := 'conflict';
            RETURN;
        END IF;
    END IF;
    IF v_last > head_seq THEN
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
            RETURNING seq, hash, position
        )
        SELECT count(*), max(seq), (array_agg(hash ORDER BY seq DESC))[1],
               (array_agg(position ORDER BY seq DESC))[1]
          INTO written, head_seq, head_hash, last_position FROM inserted;
        IF p_command_id IS NOT NULL THEN
            INSERT INTO command_fingerprints (episode_id, command_id, fingerprint)
            VALUES (p_episode_id, p_command_id, p_fingerprint) ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    IF last_position IS NULL OR head_seq <> v_last THEN
        -- Nothing new was written (a re-append): the stored event's position.
        SELECT e.position INTO last_position FROM events e
         WHERE e.episode_id = p_episode_id AND e.seq = v_last;
    END IF;
    status := 'ok';
END;
$$;

CREATE OR REPLACE FUNCTION project_episode(p_episode_id text, p_version integer, p_doc jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO projection_snapshots (episode_id, version, state)
    VALUES (p_episode_id, p_version, p_doc -> 'state')
    ON CONFLICT (episode_id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state;

    IF p_doc ? 'episode_summary' THEN
        DELETE FROM episode_summary WHERE episode_id = p_episode_id;
        INSERT INTO episode_summary
            SELECT * FROM jsonb_populate_recordset(NULL::episode_summary, p_doc -> 'episode_summary');
    END IF;
    IF p_doc ? 'caseload' THEN
        DELETE FROM caseload WHERE episode_id = p_episode_id;
        INSERT INTO caseload
            SELECT * FROM jsonb_populate_recordset(NULL::caseload, p_doc -> 'caseload');
    END IF;
    IF p_doc ? 'open_tasks' THEN
        DELETE FROM open_tasks WHERE episode_id = p_episode_id;
        INSERT INTO open_tasks
            SELECT * FROM jsonb_populate_recordset(NULL::open_tasks, p_doc -> 'open_tasks');
    END IF;
    IF p_doc ? 'upcoming_deadlines' THEN
        DELETE FROM upcoming_deadlines WHERE episode_id = p_episode_id;
        INSERT INTO upcoming_deadlines
            SELECT * FROM jsonb_populate_recordset(NULL::upcoming_deadlines,
                                                   p_doc -> 'upcoming_deadlines');
    END IF;
    IF p_doc ? 'attended_hours' THEN
        DELETE FROM attended_hours WHERE episode_id = p_episode_id;
        INSERT INTO attended_hours
            SELECT * FROM jsonb_populate_recordset(NULL::attended_hours, p_doc -> 'attended_hours');
    END IF;
    IF p_doc ? 'episode_consents' THEN
        DELETE FROM episode_consents WHERE episode_id = p_episode_id;
        INSERT INTO episode_consents
            SELECT * FROM jsonb_populate_recordset(NULL::episode_consents,
                                                   p_doc -> 'episode_consents');
    END IF;
END;
$$;
