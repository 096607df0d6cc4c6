-- Read model: consents to disclose (42 CFR Part 2) per episode, revoked ones included.
-- The notification activity checks it right before it contacts family or an external
-- party, so a consent revoked after the event was recorded still stops the message.

CREATE TABLE episode_consents (
    episode_id     text        NOT NULL,
    consent_id     text        NOT NULL,
    recipient_ref  text        NOT NULL,
    recipient_kind text        NOT NULL,
    scopes         text[]      NOT NULL,
    expires_at     timestamptz NOT NULL,
    revoked        boolean     NOT NULL,
    PRIMARY KEY (episode_id, consent_id)
);

-- Replaces every read-model row of one episode in a single round trip: the projector
-- computes the rows in Python and hands them over as one jsonb document whose keys are
-- the table names (each a list of rows keyed by column name), plus the folded state.
CREATE FUNCTION project_episode(p_episode_id text, p_version integer, p_doc jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO projection_snapshots (episode_id, version, state)
    VALUES (p_episode_id, p_version, p_doc -> 'state')
    ON CONFLICT (episode_id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state;

    DELETE FROM episode_summary WHERE episode_id = p_episode_id;
    INSERT INTO episode_summary
        SELECT * FROM jsonb_populate_recordset(NULL::episode_summary, p_doc -> 'episode_summary');

    DELETE FROM caseload WHERE episode_id = p_episode_id;
    INSERT INTO caseload
        SELECT * FROM jsonb_populate_recordset(NULL::caseload, p_doc -> 'caseload');

    DELETE FROM open_tasks WHERE episode_id = p_episode_id;
    INSERT INTO open_tasks
        SELECT * FROM jsonb_populate_recordset(NULL::open_tasks, p_doc -> 'open_tasks');

    DELETE FROM upcoming_deadlines WHERE episode_id = p_episode_id;
    INSERT INTO upcoming_deadlines
        SELECT * FROM jsonb_populate_recordset(NULL::upcoming_deadlines, p_doc -> 'upcoming_deadlines');

    DELETE FROM attended_hours WHERE episode_id = p_episode_id;
    INSERT INTO attended_hours
        SELECT * FROM jsonb_populate_recordset(NULL::attended_hours, p_doc -> 'attended_hours');

    DELETE FROM episode_consents WHERE episode_id = p_episode_id;
    INSERT INTO episode_consents
        SELECT * FROM jsonb_populate_recordset(NULL::episode_consents, p_doc -> 'episode_consents');
END;
$$;
