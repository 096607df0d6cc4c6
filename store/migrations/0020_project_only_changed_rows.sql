-- The projector writes only the read-model rows an event changed, not every row of the
-- episode: recording one session's attendance rewrote all of an episode's ~60
-- `console_sessions` rows (and its weeks in `attended_hours`) where one row changed.
--
-- `project_episode` learns a second form of document, besides the one naming a table
-- (whose rows replace all of the episode's rows there, as before):
--
--   {"upsert": {"<table>": [rows]}, "delete": {"<table>": [keys]}, "state": ...}
--
-- `upsert` rows are inserted, or update the row with the same primary key in place (an
-- UPDATE that changes no indexed column is a HOT update: no index is touched); `delete`
-- names the rows that are gone by their primary key without `episode_id` (e.g.
-- {"session_id": "s3"}; `{}` for `episode_summary`). A running projector sends this form
-- when it folds on from the state it wrote last, having remembered a digest of each row
-- it wrote (store/projections.py); a projector that starts again, a state read from its
-- snapshot and a rebuild (`project_episode_into`, unchanged) send whole tables. Both forms
-- leave the same rows.

CREATE OR REPLACE FUNCTION project_episode(p_episode_id text, p_version integer, p_doc jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_upsert jsonb := p_doc -> 'upsert';
    v_delete jsonb := p_doc -> 'delete';
BEGIN
    IF p_doc ? 'state' THEN
        INSERT INTO projection_snapshots (episode_id, version, state)
        VALUES (p_episode_id, p_version, p_doc -> 'state')
        ON CONFLICT (episode_id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state;
    END IF;

    -- episode_summary
    IF p_doc ? 'episode_summary' THEN
        DELETE FROM episode_summary WHERE episode_id = p_episode_id;
        INSERT INTO episode_summary
            SELECT * FROM jsonb_populate_recordset(NULL::episode_summary, p_doc -> 'episode_summary');
    END IF;
    IF v_delete ? 'episode_summary' AND jsonb_array_length(v_delete -> 'episode_summary') > 0 THEN
        DELETE FROM episode_summary WHERE episode_id = p_episode_id;
    END IF;
    IF v_upsert ? 'episode_summary' THEN
        INSERT INTO episode_summary
            SELECT * FROM jsonb_populate_recordset(NULL::episode_summary, v_upsert -> 'episode_summary')
        ON CONFLICT (episode_id) DO UPDATE
               SET program_id = EXCLUDED.program_id,
                   client_ref = EXCLUDED.client_ref,
                   stage = EXCLUDED.stage,
                   phase_id = EXCLUDED.phase_id,
                   primary_clinician = EXCLUDED.primary_clinician,
                   escalation_level = EXCLUDED.escalation_level,
                   next_deadline = EXCLUDED.next_deadline,
                   last_seq = EXCLUDED.last_seq,
                   referred_at = EXCLUDED.referred_at,
                   admitted_at = EXCLUDED.admitted_at,
                   closed_at = EXCLUDED.closed_at,
                   last_event_at = EXCLUDED.last_event_at;
    END IF;
    -- caseload
    IF p_doc ? 'caseload' THEN
        DELETE FROM caseload WHERE episode_id = p_episode_id;
        INSERT INTO caseload
            SELECT * FROM jsonb_populate_recordset(NULL::caseload, p_doc -> 'caseload');
    END IF;
    IF v_delete ? 'caseload' THEN
        DELETE FROM caseload d
         USING jsonb_populate_recordset(NULL::caseload, v_delete -> 'caseload') AS k
         WHERE d.episode_id = p_episode_id AND d.clinician_id = k.clinician_id;
    END IF;
    IF v_upsert ? 'caseload' THEN
        INSERT INTO caseload
            SELECT * FROM jsonb_populate_recordset(NULL::caseload, v_upsert -> 'caseload')
        ON CONFLICT (clinician_id, episode_id) DO UPDATE
               SET program_id = EXCLUDED.program_id,
                   discipline = EXCLUDED.discipline,
                   is_primary = EXCLUDED.is_primary,
                   stage = EXCLUDED.stage,
                   escalation_level = EXCLUDED.escalation_level;
    END IF;
    -- open_tasks
    IF p_doc ? 'open_tasks' THEN
        DELETE FROM open_tasks WHERE episode_id = p_episode_id;
        INSERT INTO open_tasks
            SELECT * FROM jsonb_populate_recordset(NULL::open_tasks, p_doc -> 'open_tasks');
    END IF;
    IF v_delete ? 'open_tasks' THEN
        DELETE FROM open_tasks d
         USING jsonb_populate_recordset(NULL::open_tasks, v_delete -> 'open_tasks') AS k
         WHERE d.episode_id = p_episode_id AND d.task_id = k.task_id;
    END IF;
    IF v_upsert ? 'open_tasks' THEN
        INSERT INTO open_tasks
            SELECT * FROM jsonb_populate_recordset(NULL::open_tasks, v_upsert -> 'open_tasks')
        ON CONFLICT (episode_id, task_id) DO UPDATE
               SET program_id = EXCLUDED.program_id,
                   primary_clinician = EXCLUDED.primary_clinician,
                   kind = EXCLUDED.kind,
                   level = EXCLUDED.level,
                   opened_at = EXCLUDED.opened_at,
                   due_at = EXCLUDED.due_at,
                   overdue = EXCLUDED.overdue,
                   on_hold = EXCLUDED.on_hold,
                   notify = EXCLUDED.notify;
    END IF;
    -- upcoming_deadlines
    IF p_doc ? 'upcoming_deadlines' THEN
        DELETE FROM upcoming_deadlines WHERE episode_id = p_episode_id;
        INSERT INTO upcoming_deadlines
            SELECT * FROM jsonb_populate_recordset(NULL::upcoming_deadlines, p_doc -> 'upcoming_deadlines');
    END IF;
    IF v_delete ? 'upcoming_deadlines' THEN
        DELETE FROM upcoming_deadlines d
         USING jsonb_populate_recordset(NULL::upcoming_deadlines, v_delete -> 'upcoming_deadlines') AS k
         WHERE d.episode_id = p_episode_id AND d.kind = k.kind AND d.ref = k.ref;
    END IF;
    IF v_upsert ? 'upcoming_deadlines' THEN
        INSERT INTO upcoming_deadlines
            SELECT * FROM jsonb_populate_recordset(NULL::upcoming_deadlines, v_upsert -> 'upcoming_deadlines')
        ON CONFLICT (episode_id, kind, ref) DO UPDATE
               SET due_at = EXCLUDED.due_at,
                   program_id = EXCLUDED.program_id,
                   primary_clinician = EXCLUDED.primary_clinician;
    END IF;
    -- attended_hours
    IF p_doc ? 'attended_hours' THEN
        DELETE FROM attended_hours WHERE episode_id = p_episode_id;
        INSERT INTO attended_hours
            SELECT * FROM jsonb_populate_recordset(NULL::attended_hours, p_doc -> 'attended_hours');
    END IF;
    IF v_delete ? 'attended_hours' THEN
        DELETE FROM attended_hours d
         USING jsonb_populate_recordset(NULL::attended_hours, v_delete -> 'attended_hours') AS k
         WHERE d.episode_id = p_episode_id AND d.week_start = k.week_start;
    END IF;
    IF v_upsert ? 'attended_hours' THEN
        INSERT INTO attended_hours
            SELECT * FROM jsonb_populate_recordset(NULL::attended_hours, v_upsert -> 'attended_hours')
        ON CONFLICT (episode_id, week_start) DO UPDATE
               SET week_end = EXCLUDED.week_end,
                   program_id = EXCLUDED.program_id,
                   hours = EXCLUDED.hours,
                   attended = EXCLUDED.attended,
                   partial = EXCLUDED.partial,
                   excused = EXCLUDED.excused,
                   no_shows = EXCLUDED.no_shows,
                   checked_hours = EXCLUDED.checked_hours,
                   minimum_hours = EXCLUDED.minimum_hours,
                   below_minimum = EXCLUDED.below_minimum;
    END IF;
    -- episode_consents
    IF p_doc ? 'episode_consents' THEN
        DELETE FROM episode_consents WHERE episode_id = p_episode_id;
        INSERT INTO episode_consents
            SELECT * FROM jsonb_populate_recordset(NULL::episode_consents, p_doc -> 'episode_consents');
    END IF;
    IF v_delete ? 'episode_consents' THEN
        DELETE FROM episode_consents d
         USING jsonb_populate_recordset(NULL::episode_consents, v_delete -> 'episode_consents') AS k
         WHERE d.episode_id = p_episode_id AND d.consent_id = k.consent_id;
    END IF;
    IF v_upsert ? 'episode_consents' THEN
        INSERT INTO episode_consents
            SELECT * FROM jsonb_populate_recordset(NULL::episode_consents, v_upsert -> 'episode_consents')
        ON CONFLICT (episode_id, consent_id) DO UPDATE
               SET recipient_ref = EXCLUDED.recipient_ref,
                   recipient_kind = EXCLUDED.recipient_kind,
                   scopes = EXCLUDED.scopes,
                   expires_at = EXCLUDED.expires_at,
                   revoked = EXCLUDED.revoked;
    END IF;
    -- console_sessions
    IF p_doc ? 'console_sessions' THEN
        DELETE FROM console_sessions WHERE episode_id = p_episode_id;
        INSERT INTO console_sessions
            SELECT * FROM jsonb_populate_recordset(NULL::console_sessions, p_doc -> 'console_sessions');
    END IF;
    IF v_delete ? 'console_sessions' THEN
        DELETE FROM console_sessions d
         USING jsonb_populate_recordset(NULL::console_sessions, v_delete -> 'console_sessions') AS k
         WHERE d.episode_id = p_episode_id AND d.session_id = k.session_id;
    END IF;
    IF v_upsert ? 'console_sessions' THEN
        INSERT INTO console_sessions
            SELECT * FROM jsonb_populate_recordset(NULL::console_sessions, v_upsert -> 'console_sessions')
        ON CONFLICT (episode_id, session_id) DO UPDATE
               SET program_id = EXCLUDED.program_id,
                   kind = EXCLUDED.kind,
                   starts_at = EXCLUDED.starts_at,
                   hours = EXCLUDED.hours,
                   cancelled = EXCLUDED.cancelled,
                   status = EXCLUDED.status,
                   attended_hours = EXCLUDED.attended_hours;
    END IF;
END;
$$;
