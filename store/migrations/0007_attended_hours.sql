-- Read model: attended hours per episode and ISO week (of the session's start, in UTC),
-- with the count of each attendance outcome. Weekly hours below the program minimum are
-- what the escalation rules flag; this table is what a supervisor reviews.

CREATE TABLE attended_hours (
    episode_id  text    NOT NULL,
    iso_year    integer NOT NULL,
    iso_week    integer NOT NULL CHECK (iso_week BETWEEN 1 AND 53),
    week_start  date    NOT NULL,
    program_id  text    NOT NULL,
    hours       numeric(7, 2) NOT NULL,
    attended    integer NOT NULL,
    partial     integer NOT NULL,
    excused     integer NOT NULL,
    no_shows    integer NOT NULL,
    PRIMARY KEY (episode_id, iso_year, iso_week)
);

CREATE INDEX attended_hours_week_idx ON attended_hours (iso_year, iso_week);
