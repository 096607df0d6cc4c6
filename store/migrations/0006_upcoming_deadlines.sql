-- Read model: every pending deadline of every open episode (the itemised form of the
-- domain's `next_deadline`): sessions awaiting attendance, plan reviews, task due times,
-- aftercare check-in windows, authorization reminders. `ref` is '' when the kind has none.

CREATE TABLE upcoming_deadlines (
    episode_id        text        NOT NULL,
    kind              text        NOT NULL,
    ref               text        NOT NULL,
    due_at            timestamptz NOT NULL,
    program_id        text        NOT NULL,
    primary_clinician text,
    PRIMARY KEY (episode_id, kind, ref)
);

CREATE INDEX upcoming_deadlines_due_idx ON upcoming_deadlines (due_at);
