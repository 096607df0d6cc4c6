-- A hash chain only CarePath can extend, and checkpoints chained to each other.
--
-- 1. Each event records the rule its hash was computed under (`hash_alg`): 'sha256' is the
--    plain rule of the events stored before this migration, SHA-256(prev_hash || payload);
--    'hmac-sha256' is HMAC-SHA-256 under the chain key, which is kept outside PostgreSQL
--    (CAREPATH_CHAIN_KEY, or <data dir>/chain.key). Every event stored so far gets
--    'sha256'; the column then has no default, so every new row must name its rule (an
--    older CarePath, which does not, can no longer append).
-- 2. `chain_seals` holds one row: where the plain rule ends in each stream (the last
--    plain-hash event's seq and hash), MAC'd with the chain key. The first process that
--    starts with the chain key after this migration writes it (store/chain_seal.py).
--    Verification accepts a plain hash only at or before a stream's sealed seq.
-- 3. Checkpoints get a number (1, 2, ... in the order taken) and, from now on, the
--    previous checkpoint's number and signature inside their signed document, so a
--    checkpoint deleted from the middle of the sequence or moved is detected. The
--    checkpoints taken before this migration are numbered in the order they were stored.
--
-- Production grants (see docs/event-store.md):
--   GRANT SELECT, INSERT ON chain_seals TO carepath_app;
--   GRANT USAGE ON SEQUENCE chain_seals_seal_id_seq TO carepath_app;

ALTER TABLE events
    ADD COLUMN hash_alg text NOT NULL DEFAULT 'sha256'
        CHECK (hash_alg IN ('sha256', 'hmac-sha256'));
ALTER TABLE events ALTER COLUMN hash_alg DROP DEFAULT;

CREATE TABLE chain_seals (
    seal_id   bigserial   PRIMARY KEY,
    sealed_at timestamptz NOT NULL DEFAULT now(),
    heads     jsonb       NOT NULL,  -- {"episode id": {"seq": n, "hash": "..."}}: last plain-hash event
    key_id    text        NOT NULL,  -- which chain key MAC'd it (not the key)
    mac       text        NOT NULL CHECK (mac ~ '^[0-9a-f]{64}$')
);

-- There is one switch from the plain rule to the keyed one.
CREATE UNIQUE INDEX chain_seals_one ON chain_seals ((true));

CREATE TRIGGER chain_seals_refuse_update_delete
    BEFORE UPDATE OR DELETE ON chain_seals
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER chain_seals_refuse_truncate
    BEFORE TRUNCATE ON chain_seals
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

ALTER TABLE checkpoints
    ADD COLUMN number bigint,
    ADD COLUMN format text NOT NULL DEFAULT 'carepath-checkpoint/1',
    ADD COLUMN previous jsonb;  -- {"number": n, "signature": "..."}; null for the first

ALTER TABLE checkpoints DISABLE TRIGGER checkpoints_refuse_update_delete;
UPDATE checkpoints c SET number = n.number
FROM (SELECT checkpoint_id, row_number() OVER (ORDER BY checkpoint_id) AS number
      FROM checkpoints) n
WHERE c.checkpoint_id = n.checkpoint_id;
ALTER TABLE checkpoints ENABLE TRIGGER checkpoints_refuse_update_delete;

ALTER TABLE checkpoints ALTER COLUMN number SET NOT NULL;
ALTER TABLE checkpoints ALTER COLUMN format DROP DEFAULT;
CREATE UNIQUE INDEX checkpoints_number_idx ON checkpoints (number);
