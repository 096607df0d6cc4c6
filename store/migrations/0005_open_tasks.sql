-- Read model: open escalation tasks (outreach, case reviews, ...) with their due times.
-- A task leaves this table when it is resolved or its episode closes.

CREATE TABLE open_tasks (
    episode_id        text        NOT NULL,
    task_id           text        NOT NULL,
    program_id        text        NOT NULL,
    primary_clinician text,
    kind              text        NOT NULL,
    level             integer     NOT NULL,
    opened_at         timestamptz NOT NULL,
    due_at            timestamptz NOT NULL,
    overdue           boolean     NOT NULL,
    on_hold           boolean     NOT NULL,
    notify            text[]      NOT NULL,
    PRIMARY KEY (episode_id, task_id)
);

CREATE INDEX open_tasks_due_idx ON open_tasks (due_at);
CREATE INDEX open_tasks_program_idx ON open_tasks (program_id, level);
