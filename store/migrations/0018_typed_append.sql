-- `append_event_batch`: the append of 0015/0016 with the batch passed as typed arrays
-- and its common case - a batch that continues the stream's head, under a command id the
-- stream has not seen - done in one statement.
--
-- `append_events` received the batch as one jsonb array, so PostgreSQL parsed it, took it
-- apart with jsonb_array_elements/jsonb_to_recordset several times and ran up to eight
-- statements of PL/pgSQL per append. Here the columns arrive as arrays (the payloads as
-- the canonical JSON text the chain hash is computed over), each row's seq and prev_hash
-- follow from the batch's first seq and base hash (`p_first_seq`, `p_base_hash`: a row's
-- prev_hash is the hash of the row before it), and under the stream's advisory lock one
-- INSERT ... SELECT FROM unnest(...) writes the batch and the command's fingerprint
-- if, and only if:
--   * the stream's head is at `p_first_seq - 1` with hash `p_base_hash` (genesis for an
--     empty stream), and
--   * no event and no fingerprint of `p_command_id` is stored yet.
-- Anything else - a re-append, a conflict, a gap, a stale base hash, a command applied
-- before or reused, an empty batch - goes, in the same transaction and with nothing
-- written, to `append_events` itself with the same rows: every outcome other than the
-- common one is decided by exactly the checks it always was.
--
-- Positions are still taken from `events_position_seq` by the INSERT, in seq order, so
-- the projector's gap-free reading (0015) is unchanged.

CREATE FUNCTION append_event_batch(
    p_episode_id text, p_first_seq integer, p_base_hash text,
    p_event_types text[], p_schema_versions integer[], p_payloads text[],
    p_occurred_at timestamptz[], p_actor_ids text[], p_actor_roles text[],
    p_command_ids text[], p_hashes text[],
    p_command_id text, p_fingerprint text,
    OUT status text, OUT head_seq integer, OUT head_hash text, OUT base_hash text,
    OUT last_position bigint, OUT written integer, OUT conflict_seq integer
)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_episode_id, 0));
    WITH head AS (
        SELECT e.seq, e.hash FROM events e WHERE e.episode_id = p_episode_id
         ORDER BY e.seq DESC LIMIT 1
    ), continues AS (
        SELECT FROM (SELECT 1) AS one LEFT JOIN head ON true
         WHERE COALESCE(head.seq, 0) = p_first_seq - 1
           AND COALESCE(head.hash, repeat('0', 64)) = p_base_hash
           AND (p_command_id IS NULL
                OR (NOT EXISTS (SELECT FROM command_fingerprints f
                                 WHERE f.episode_id = p_episode_id
                                   AND f.command_id = p_command_id)
                    AND NOT EXISTS (SELECT FROM events e
                                     WHERE e.episode_id = p_episode_id
                                       AND e.command_id = p_command_id)))
    ), inserted AS (
        INSERT INTO events (episode_id, seq, event_type, schema_version, payload,
                            occurred_at, actor_id, actor_role, command_id, prev_hash,
                            hash, hash_alg)
        SELECT p_episode_id, p_first_seq + r.n - 1, r.event_type, r.schema_version,
               r.payload::jsonb, r.occurred_at, r.actor_id, r.actor_role, r.command_id,
               CASE WHEN r.n = 1 THEN p_base_hash ELSE p_hashes[r.n - 1] END,
               r.hash, 'hmac-sha256'
          FROM unnest(p_event_types, p_schema_versions, p_payloads, p_occurred_at,
                      p_actor_ids, p_actor_roles, p_command_ids, p_hashes)
               WITH ORDINALITY AS r(event_type, schema_version, payload, occurred_at,
                                    actor_id, actor_role, command_id, hash, n)
         WHERE EXISTS (SELECT FROM continues)
         ORDER BY r.n
        RETURNING position
    ), fingerprint AS (
        INSERT INTO command_fingerprints (episode_id, command_id, fingerprint)
        SELECT p_episode_id, p_command_id, p_fingerprint
         WHERE p_command_id IS NOT NULL AND EXISTS (SELECT FROM inserted)
        ON CONFLICT DO NOTHING
    )
    SELECT count(*), max(i.position) INTO written, last_position FROM inserted i;
    IF written > 0 THEN
        status := 'ok';
        head_seq := p_first_seq + written - 1;
        head_hash := p_hashes[written];
        RETURN;
    END IF;

    SELECT a.status, a.head_seq, a.head_hash, a.base_hash, a.last_position, a.written,
           a.conflict_seq
      INTO status, head_seq, head_hash, base_hash, last_position, written, conflict_seq
      FROM append_events(
               p_episode_id,
               (SELECT COALESCE(jsonb_agg(jsonb_build_object(
                           'seq', p_first_seq + r.n - 1,
                           'event_type', r.event_type,
                           'schema_version', r.schema_version,
                           'payload', r.payload::jsonb,
                           'occurred_at', r.occurred_at,
                           'actor_id', r.actor_id,
                           'actor_role', r.actor_role,
                           'command_id', r.command_id,
                           'prev_hash', CASE WHEN r.n = 1 THEN p_base_hash
                                             ELSE p_hashes[r.n - 1] END,
                           'hash', r.hash) ORDER BY r.n), '[]'::jsonb)
                  FROM unnest(p_event_types, p_schema_versions, p_payloads, p_occurred_at,
                              p_actor_ids, p_actor_roles, p_command_ids, p_hashes)
                       WITH ORDINALITY AS r(event_type, schema_version, payload,
                                            occurred_at, actor_id, actor_role, command_id,
                                            hash, n)),
               p_command_id, p_fingerprint) AS a;
END;
$$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'carepath_app') THEN
        GRANT EXECUTE ON FUNCTION append_event_batch(
            text, integer, text, text[], integer[], text[], timestamptz[], text[], text[],
            text[], text[], text, text) TO carepath_app;
    END IF;
END
$$;
