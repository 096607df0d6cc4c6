-- Read model: the open episodes each clinician carries, by program. One row per care-team
-- member of an open episode's current treatment plan; `is_primary` marks the primary
-- clinician. Closed episodes (discharged, referred out) leave the caseload.

CREATE TABLE caseload (
    clinician_id     text    NOT NULL,
    episode_id       text    NOT NULL,
    program_id       text    NOT NULL,
    discipline       text    NOT NULL,
    is_primary       boolean NOT NULL,
    stage            text    NOT NULL,
    escalation_level integer NOT NULL,
    PRIMARY KEY (clinician_id, episode_id)
);

CREATE INDEX caseload_program_idx ON caseload (program_id, clinician_id);
CREATE INDEX caseload_episode_idx ON caseload (episode_id);

CREATE VIEW caseload_counts AS
    SELECT clinician_id,
           program_id,
           count(*)                                 AS episodes,
           count(*) FILTER (WHERE is_primary)       AS as_primary,
           count(*) FILTER (WHERE escalation_level > 0) AS escalated
      FROM caseload
     GROUP BY clinician_id, program_id;
