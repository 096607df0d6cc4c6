-- Read model: one row per episode, what a list or a dashboard shows first.
-- Times are the events' occurred_at, so a rebuild reproduces every row exactly.

CREATE TABLE episode_summary (
    episode_id        text        PRIMARY KEY,
    program_id        text        NOT NULL,
    client_ref        text        NOT NULL,
    stage             text        NOT NULL,
    phase_id          text,
    primary_clinician text,
    escalation_level  integer     NOT NULL DEFAULT 0,
    next_deadline     timestamptz,
    last_seq          integer     NOT NULL,
    referred_at       timestamptz NOT NULL,
    admitted_at       timestamptz,
    closed_at         timestamptz,
    last_event_at     timestamptz NOT NULL
);

CREATE INDEX episode_summary_program_stage_idx ON episode_summary (program_id, stage);
CREATE INDEX episode_summary_clinician_idx ON episode_summary (primary_clinician);
