"""Program scoping without the read models: commands are scoped by the episode's workflow
(the caller's programs travel with the command), reads of one episode by its stored
referral. Neither waits for a read model, so neither is fooled by one that lags."""

from __future__ import annotations

import httpx
from api_driver import Driver
from api_users import bearer

from store.db import Pool


async def _outcomes(db_pool: Pool, episode_id: str) -> list[tuple[str, str, int]]:
    rows = await db_pool.fetch(
        "SELECT user_id, outcome, status FROM access_log WHERE episode_id = $1 ORDER BY id",
        episode_id,
    )
    return [(r["user_id"], r["outcome"], r["status"]) for r in rows]


async def _event_count(db_pool: Pool, episode_id: str) -> int:
    count: int = await db_pool.fetchval(
        "SELECT count(*) FROM events WHERE episode_id = $1", episode_id
    )
    return count


class TestCommandsAreScopedByTheWorkflow:
    async def test_given_an_episode_of_another_program_when_a_scoped_clinician_sends_a_command_then_404_like_a_missing_episode_denied_and_nothing_written(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        d = Driver(api)
        teen = await d.refer(program_id="adolescent-iop")
        stored_before = await _event_count(db_pool, teen)

        hidden = await d.send("clinician", teen, "start_screening")
        missing = await d.send("clinician", "no-such-episode", "start_screening")

        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["title"] == missing.json()["title"] == "EpisodeNotFound"
        assert hidden.json()["detail"] == missing.json()["detail"].replace("no-such-episode", teen)
        assert await _event_count(db_pool, teen) == stored_before
        assert (await _outcomes(db_pool, teen))[-1] == ("cal.clinician", "denied", 404)
        missing_outcomes = await _outcomes(db_pool, "no-such-episode")
        assert missing_outcomes == [("cal.clinician", "not_found", 404)]

    async def test_given_the_read_model_lags_behind_a_referral_when_a_scoped_clinician_commands_and_reads_then_both_succeed(
        self, api: httpx.AsyncClient, db_pool: Pool, owner_pool: Pool
    ) -> None:
        d = Driver(api)
        episode_id = await d.refer()
        # As if the projector had not caught up yet: no summary row for the episode.
        await owner_pool.execute("DELETE FROM episode_summary WHERE episode_id = $1", episode_id)

        read = await api.get(f"/episodes/{episode_id}", headers=bearer("clinician"))
        timeline = await api.get(f"/episodes/{episode_id}/timeline", headers=bearer("clinician"))
        command = await d.send("clinician", episode_id, "start_screening")

        assert read.status_code == 200, read.text
        assert read.json()["state"]["program_id"] == "adult-iop"
        assert timeline.status_code == 200, timeline.text
        assert command.status_code == 200, command.text
        assert [o for _, o, _ in await _outcomes(db_pool, episode_id)] == ["success"] * 4

    async def test_given_the_read_model_lags_when_a_clinician_of_another_program_reads_or_commands_then_404_denied(
        self, api: httpx.AsyncClient, db_pool: Pool, owner_pool: Pool
    ) -> None:
        d = Driver(api)
        teen = await d.refer(program_id="adolescent-iop")
        await owner_pool.execute("DELETE FROM episode_summary WHERE episode_id = $1", teen)

        read = await api.get(f"/episodes/{teen}", headers=bearer("clinician"))
        command = await d.send("clinician", teen, "start_screening")

        assert read.status_code == command.status_code == 404
        assert [o for _, o, _ in (await _outcomes(db_pool, teen))[-2:]] == ["denied", "denied"]

    async def test_given_a_closed_episode_when_its_program_commands_then_409_and_another_program_404_denied(
        self, api: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        d = Driver(api)
        teen = await d.refer(program_id="adolescent-iop")
        await d.ok("teen_clinician", teen, "refer_out")

        own = await d.send("teen_clinician", teen, "start_screening")
        other = await d.send("clinician", teen, "start_screening")

        assert own.status_code == 409
        assert own.json()["title"] == "EpisodeClosed"
        assert other.status_code == 404
        assert other.json()["title"] == "EpisodeNotFound"
        assert (await _outcomes(db_pool, teen))[-1] == ("cal.clinician", "denied", 404)
