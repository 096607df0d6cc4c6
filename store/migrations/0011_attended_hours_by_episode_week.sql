-- Read model `attended_hours`, reshaped: one row per week of the episode as the domain's
-- weekly intensity check counts it (`domain.weeks`: seven days from admission, from the
-- end of the previous week, or from a resume after a hold), instead of per ISO calendar
-- week. The two disagreed whenever an episode was not admitted at midnight UTC on a
-- Monday; now a row and the `weekly_attendance_checked` event of its week always agree.
--
-- `hours` and the counts are the attendance of the sessions that start in the week, as
-- they now stand (corrections included). `checked_hours`, `minimum_hours` and
-- `below_minimum` are the check's verdict at the week's end; they are null for the week
-- still open and for a week a hold cut short.
--
-- The old rows cannot be converted (they group sessions differently), and the projected
-- state of every episode now also records its past weeks. So the table is emptied and
-- altered in place (keeping the grants given to the application's role), and the
-- snapshots are dropped: the next append to an episode folds its stream from the start.
-- Run `carepath db rebuild-projections` after this migration to refill the table for
-- every episode at once.

DELETE FROM attended_hours;
DROP INDEX attended_hours_week_idx;

ALTER TABLE attended_hours
    DROP CONSTRAINT attended_hours_pkey,
    DROP COLUMN iso_year,
    DROP COLUMN iso_week,
    ALTER COLUMN week_start TYPE timestamptz USING week_start::timestamptz,
    ADD COLUMN week_end      timestamptz NOT NULL,
    ADD COLUMN checked_hours numeric(7, 2),
    ADD COLUMN minimum_hours numeric(7, 2),
    ADD COLUMN below_minimum boolean,
    ADD CONSTRAINT attended_hours_week_order CHECK (week_end > week_start),
    ADD PRIMARY KEY (episode_id, week_start);

CREATE INDEX attended_hours_week_idx ON attended_hours (week_start);
-- Weeks that fell short of the program's minimum, for a supervisor's review.
CREATE INDEX attended_hours_below_minimum_idx ON attended_hours (week_start)
    WHERE below_minimum;

DELETE FROM projection_snapshots;
