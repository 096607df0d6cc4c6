-- The access log: who read or changed which episode's data, when, and with what outcome
-- (denials included). HIPAA asks for a record of access to health information; like the
-- event store, the database itself refuses to change or remove a row.
--
-- No clinical content is kept here: the episode id, the route's action and the HTTP
-- status only (never a request body or a query string).

CREATE TABLE access_log (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    user_id     text        NOT NULL,
    role        text        NOT NULL,
    action      text        NOT NULL CHECK (action IN ('read', 'create', 'update', 'export')),
    resource    text        NOT NULL,
    episode_id  text,
    outcome     text        NOT NULL
                CHECK (outcome IN ('success', 'denied', 'unauthenticated', 'not_found',
                                   'invalid', 'conflict', 'error')),
    status      integer     NOT NULL,
    method      text        NOT NULL,
    path        text        NOT NULL,
    command_id  text,
    client_ip   text
);

CREATE INDEX access_log_at_idx ON access_log (at);
CREATE INDEX access_log_episode_idx ON access_log (episode_id, at);
CREATE INDEX access_log_user_idx ON access_log (user_id, at);

CREATE FUNCTION access_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the access log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'access records are never changed or removed';
END;
$$;

CREATE TRIGGER access_log_refuse_update_delete
    BEFORE UPDATE OR DELETE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_refuse_change();

CREATE TRIGGER access_log_refuse_truncate
    BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_refuse_change();
