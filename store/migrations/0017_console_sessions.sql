-- Read model `console_sessions`: one row per session of an open episode, as it now stands
-- (rescheduled times, cancellation, attendance with corrections), for the staff console's
-- Today page. The page asks for the sessions that start within each program's local day:
-- an index on (program_id, starts_at) answers that without reading any episode's state.
--
-- `project_episode` and `project_episode_into` learn the table; the rows of the episodes
-- already projected are filled from their snapshots here (the same rows the projector
-- writes: a rebuild leaves them as they are).

CREATE TABLE console_sessions (
    episode_id     text         NOT NULL,
    session_id     text         NOT NULL,
    program_id     text         NOT NULL,
    kind           text         NOT NULL,
    starts_at      timestamptz  NOT NULL,
    hours          numeric(5, 2) NOT NULL,
    cancelled      boolean      NOT NULL,
    status         text,
    attended_hours numeric(5, 2) NOT NULL,
    PRIMARY KEY (episode_id, session_id)
);

CREATE INDEX console_sessions_day_idx ON console_sessions (program_id, starts_at);

CREATE TABLE rebuild_console_sessions (LIKE console_sessions INCLUDING ALL);

INSERT INTO console_sessions
SELECT s.episode_id, x ->> 'session_id', s.state ->> 'program_id', x ->> 'kind',
       (x ->> 'starts_at')::timestamptz, round((x ->> 'hours')::numeric, 2),
       COALESCE((x ->> 'cancelled')::boolean, false), x ->> 'status',
       round(COALESCE((x ->> 'attended_hours')::numeric, 0), 2)
  FROM projection_snapshots s, jsonb_array_elements(s.state -> 'sessions') AS x
 WHERE s.state ->> 'stage' NOT IN ('referred_out', 'discharged');

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
    IF p_doc ? 'console_sessions' THEN
        DELETE FROM console_sessions WHERE episode_id = p_episode_id;
        INSERT INTO console_sessions
            SELECT * FROM jsonb_populate_recordset(NULL::console_sessions,
                                                   p_doc -> 'console_sessions');
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION project_episode_into(
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
                             'attended_hours', 'episode_consents', 'console_sessions'] LOOP
        EXECUTE format('DELETE FROM %I WHERE episode_id = $1', p_prefix || t) USING p_episode_id;
        EXECUTE format('INSERT INTO %I SELECT * FROM jsonb_populate_recordset(NULL::%I, $1)',
                       p_prefix || t, p_prefix || t)
        USING p_doc -> t;
    END LOOP;
END;
$$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'carepath_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON console_sessions,
            rebuild_console_sessions TO carepath_app;
    END IF;
END
$$;
