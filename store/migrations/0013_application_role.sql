-- Least privilege: the worker and the API connect as members of `carepath_app`, a role
-- that may read and append the audit record and maintain the read models, and nothing
-- else. It does not own any table, so it cannot disable the append-only triggers, alter,
-- drop or truncate a table, nor UPDATE or DELETE an event, a checkpoint, a command
-- fingerprint or an access-log row. Migrations run as the owner of the schema.
--
-- Roles belong to the whole server, so the role is created only if it does not exist
-- yet (by a migrating role allowed to create roles); grants are on this database's
-- objects. Where the migrating role may not create roles and nobody created
-- `carepath_app` beforehand, nothing is granted here: the operator creates the role and
-- runs these grants (docs/event-store.md, "Database roles").

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'carepath_app') THEN
        IF NOT EXISTS (SELECT FROM pg_roles
                        WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
            RAISE NOTICE 'role carepath_app does not exist and % may not create it: '
                         'grant its privileges by hand (docs/event-store.md)', current_user;
            RETURN;
        END IF;
        BEGIN
            CREATE ROLE carepath_app NOLOGIN;
        EXCEPTION WHEN duplicate_object THEN
            NULL;  -- another database's migration created it meanwhile
        END;
    END IF;

    GRANT USAGE ON SCHEMA public TO carepath_app;

    -- The audit record: read and append, nothing else.
    GRANT SELECT, INSERT ON events, command_fingerprints, checkpoints, access_log,
        notifications_sent TO carepath_app;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO carepath_app;

    -- Read models are derived data: replaced row by row on every append, emptied and
    -- refilled by `carepath db rebuild-projections`.
    GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON
        projection_snapshots, projection_failures, episode_summary, caseload, open_tasks,
        upcoming_deadlines, attended_hours, episode_consents
        TO carepath_app;
    GRANT SELECT ON caseload_counts, schema_migrations TO carepath_app;
    GRANT EXECUTE ON FUNCTION project_episode(text, integer, jsonb) TO carepath_app;

    -- Tables later migrations create (as this role) may be read and appended to; a
    -- migration that needs more grants it explicitly.
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT ON TABLES TO carepath_app;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO carepath_app;
END
$$;
