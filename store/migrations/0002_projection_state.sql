-- Bookkeeping of the read models (projections) that are updated in the same transaction as
-- each append. The projector folds an episode's events into its state (the pure domain's
-- `fold`) and keeps that state here, so the next append only applies the new events.
-- `carepath db rebuild-projections` empties every read model and refills it from `events`.

CREATE TABLE projection_snapshots (
    episode_id text    PRIMARY KEY,
    version    integer NOT NULL CHECK (version >= 1),  -- seq of the last event folded in
    state      jsonb   NOT NULL
);

-- A stream whose events do not fold (a bug, or events the domain no longer accepts): its
-- read models keep the state before `seq` until the cause is fixed and projections rebuilt.
CREATE TABLE projection_failures (
    episode_id text    PRIMARY KEY,
    seq        integer NOT NULL,
    reason     text    NOT NULL
);
