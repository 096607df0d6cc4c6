-- The projector writes an episode's folded state to `projection_snapshots` only now and
-- then (every so many events, when a fact the worklists read from it changes, and when it
-- goes idle), not on every fold: `project_episode` leaves the snapshot alone when the
-- document has no `state`. The read-model rows are written as before.

CREATE OR REPLACE FUNCTION project_episode(p_episode_id text, p_version integer, p_doc jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_doc ? 'state' THEN
        INSERT INTO projection_snapshots (episode_id, version, state)
        VALUES (p_episode_id, p_version, p_doc -> 'state')
        ON CONFLICT (episode_id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state;
    END IF;

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
    IF p_doc ? 'console_sessions' THEN
        DELETE FROM console_sessions WHERE episode_id = p_episode_id;
        INSERT INTO console_sessions
            SELECT * FROM jsonb_populate_recordset(NULL::console_sessions,
                                                   p_doc -> 'console_sessions');
    END IF;
END;
$$;
