"""`carepath db rebuild-projections | checkpoint | verify` on a real database."""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from cli.audit_commands import run_command
from cli.db import run_db
from store import EventStore
from store.chain import GENESIS_HASH, keyed_chain_hash
from store.checkpoints import load_checkpoint
from store.db import Pool
from testing.keys import CHAIN_KEY
from testing.sample_streams import episode_events
from workers.checkpoints import KEY_FILE, checkpoint_key, checkpoint_schedule
from workers.errors import StartupError
from workers.settings import Settings

pytestmark = pytest.mark.integration

KEY = "cli-test-checkpoint-key"


@pytest.fixture
def settings(fresh_database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=fresh_database_url,
        checkpoint_key=KEY,
        chain_key=CHAIN_KEY.decode(),
        data_dir=tmp_path,
    )


async def db(settings: Settings, *argv: str) -> int:
    """`carepath db ARGV`; `verify` is `carepath audit verify` (its deprecated spelling)."""
    if argv[0] == "verify":
        rest = [a for a in argv[1:] if a != "--json"]
        every = "--all" in rest
        rest = [a for a in rest if a != "--all"]
        checkpoint = rest[rest.index(rest[0]) + 1] if rest and rest[0].startswith("--") else None
        episode = None if every else rest[0]
        args = argparse.Namespace(
            audit_command="verify", episode_id=episode, all=every, checkpoint=checkpoint,
            json="--json" in argv, data_dir=None,
        )  # fmt: skip
        return await asyncio.to_thread(run_command, settings, args)
    if argv[0] == "checkpoint":
        export = Path(argv[2]) if len(argv) > 2 else None
        return await run_db(settings, argparse.Namespace(db_command="checkpoint", export=export))
    return await run_db(settings, argparse.Namespace(db_command=argv[0]))


async def tamper(pool: Pool, statement: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        await conn.execute(statement)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")


class TestDbCommands:
    async def test_checkpoint_export_then_verify_all_reports_intact(
        self,
        settings: Settings,
        db_pool: Pool,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        await EventStore(db_pool, chain_key=CHAIN_KEY).append(
            "ep-1", episode_events("ep-1", sessions=3)
        )
        export = tmp_path / "cp.json"

        assert await db(settings, "checkpoint", "--export", str(export)) == 0
        assert await db(settings, "verify", "--all") == 0

        out = capsys.readouterr()
        assert "checkpoint #1 taken" in out.out
        assert json.loads(export.read_text())["heads"]["ep-1"]["seq"] > 0
        assert "episode ep-1: intact" in out.out
        assert "(chain and checkpoint #1)" in out.out

    async def test_verify_against_an_export_names_the_truncated_episode_and_exits_1(
        self,
        owner_pool: Pool,
        settings: Settings,
        db_pool: Pool,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        events = episode_events("ep-1", sessions=3)
        await EventStore(db_pool, chain_key=CHAIN_KEY).append("ep-1", events)
        export = tmp_path / "cp.json"
        await db(settings, "checkpoint", "--export", str(export))
        await tamper(owner_pool, f"DELETE FROM events WHERE seq = {len(events)}")
        await db(settings, "checkpoint")  # the database's latest now hides the truncation
        capsys.readouterr()

        code = await db(settings, "verify", "--all", "--checkpoint", str(export), "--json")

        assert code == 1
        report = json.loads(capsys.readouterr().out)
        assert [
            (s["episode_id"], s["first_bad_seq"], s["reason"])
            for s in report["streams"]
            if not s["ok"]
        ] == [
            (
                "ep-1",
                len(events),
                f"truncated: checkpoint #1 recorded seq {len(events)}, "
                f"but the stream ends at seq {len(events) - 1}",
            )
        ]

    async def test_verify_one_episode_names_the_first_bad_seq(
        self,
        owner_pool: Pool,
        settings: Settings,
        db_pool: Pool,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        await EventStore(db_pool, chain_key=CHAIN_KEY).append(
            "ep-1", episode_events("ep-1", sessions=3)
        )
        await tamper(owner_pool, "DELETE FROM events WHERE seq = 4")

        assert await db(settings, "verify", "ep-1") == 1

        assert "episode ep-1: TAMPERED, first bad seq 4: seq gap" in capsys.readouterr().out

    async def test_rebuild_projections_reports_what_it_folded(
        self, settings: Settings, db_pool: Pool, capsys: pytest.CaptureFixture[str]
    ) -> None:
        events = episode_events("ep-1", sessions=3)
        await EventStore(db_pool, chain_key=CHAIN_KEY).append("ep-1", events)

        assert await db(settings, "rebuild-projections") == 0

        assert f"of 1 episode(s) from {len(events)} event(s)" in capsys.readouterr().out


class TestCheckpointKey:
    def test_embedded_mode_generates_a_private_key_once(self, tmp_path: Path) -> None:
        settings = Settings(data_dir=tmp_path)

        first = checkpoint_key(settings)
        again = checkpoint_key(settings)

        assert first == again
        assert first is not None
        assert len(first) == 64
        assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600

    def test_an_external_database_without_a_key_says_which_setting_to_set(self) -> None:
        settings = Settings(database_url="postgresql://db.example/carepath")

        with pytest.raises(StartupError, match="CAREPATH_CHECKPOINT_KEY"):
            checkpoint_key(settings)
        assert checkpoint_key(settings, required=False) is None


def test_the_command_exits_1_with_a_one_line_error_for_a_tampered_checkpoint_file(
    fresh_database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "cp.json"
    path.write_text('{"format": "something else"}')
    env = {
        **os.environ,
        "CAREPATH_DATABASE_URL": fresh_database_url,
        "CAREPATH_CHECKPOINT_KEY": KEY,
        "CAREPATH_CHAIN_KEY": CHAIN_KEY.decode(),
    }

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "audit",
            "verify",
            "--all",
            "--checkpoint",
            str(path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert done.stderr.startswith("carepath: error: ")
    assert "db checkpoint --export" in done.stderr


class TestSchedule:
    async def test_the_worker_schedule_checkpoints_only_when_streams_moved(
        self, fresh_database_url: str, db_pool: Pool, tmp_path: Path
    ) -> None:
        fast = Settings(
            database_url=fresh_database_url,
            checkpoint_key=KEY,
            checkpoint_interval_minutes=0.0005,  # 30 ms
            data_dir=tmp_path,
        )
        await EventStore(db_pool, chain_key=CHAIN_KEY).append(
            "ep-1", episode_events("ep-1", sessions=1)
        )

        async with checkpoint_schedule(fast, db_pool):
            await asyncio.sleep(0.4)

        async with db_pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM checkpoints") == 1


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Receiver.bodies.append(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class TestPublishedCheckpoints:
    async def test_given_a_directory_and_a_webhook_when_the_schedule_takes_a_checkpoint_then_both_get_the_signed_json(
        self, fresh_database_url: str, db_pool: Pool, tmp_path: Path
    ) -> None:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _Receiver.bodies.clear()
        fast = Settings(
            database_url=fresh_database_url,
            checkpoint_key=KEY,
            checkpoint_interval_minutes=0.0005,  # 30 ms
            checkpoint_webhook_url=f"http://127.0.0.1:{server.server_address[1]}/checkpoints",
            data_dir=tmp_path,
        )
        await EventStore(db_pool, chain_key=CHAIN_KEY).append(
            "ep-1", episode_events("ep-1", sessions=1)
        )
        try:
            async with checkpoint_schedule(fast, db_pool):
                await asyncio.sleep(0.4)
        finally:
            server.shutdown()

        published = tmp_path / "checkpoints" / "checkpoint-00000001.json"
        assert published.stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "checkpoints").stat().st_mode & 0o777 == 0o700
        (body,) = _Receiver.bodies
        assert json.loads(body) == json.loads(published.read_text())
        load_checkpoint(published).verify(KEY.encode())

    async def test_given_a_rewrite_resigned_inside_the_database_when_verified_with_the_checkpoint_file_then_it_exits_1_naming_the_seq_and_checkpoint(
        self,
        settings: Settings,
        db_pool: Pool,
        owner_pool: Pool,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        store = EventStore(db_pool, chain_key=CHAIN_KEY)
        await store.append("ep-1", episode_events("ep-1", sessions=2))
        assert await db(settings, "checkpoint") == 0
        kept = tmp_path / "auditor-copy.json"
        shutil.copy(tmp_path / "checkpoints" / "checkpoint-00000001.json", kept)
        # An insider with both keys rewrites seq 2, re-chains, and re-signs the checkpoints.
        prev = GENESIS_HASH
        async with owner_pool.acquire() as conn, conn.transaction():
            for table in ("events", "checkpoints"):
                await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            for event in await store.read_stream("ep-1"):
                payload = {**event.payload}
                if event.seq == 2:
                    payload["command_id"] = "rewritten"
                digest = keyed_chain_hash(CHAIN_KEY, prev, payload)
                await conn.execute(
                    "UPDATE events SET payload = $1, command_id = $2, prev_hash = $3, hash = $4 "
                    "WHERE episode_id = 'ep-1' AND seq = $5",
                    payload,
                    payload["command_id"],
                    prev,
                    digest,
                    event.seq,
                )
                prev = digest
            await conn.execute("DELETE FROM checkpoints")
            for table in ("events", "checkpoints"):
                await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        assert await db(settings, "checkpoint") == 0  # re-signed #1; the directory keeps the old
        capsys.readouterr()
        inside = settings.model_copy(update={"checkpoint_dir": tmp_path / "empty"})

        assert await db(inside, "verify", "--all") == 0
        assert await db(inside, "verify", "--all", "--checkpoint-file", str(kept)) == 1

        out = capsys.readouterr().out
        head = len(episode_events("ep-1", sessions=2))
        assert (
            "checkpoints: checkpoint #1 in the database differs from its signed copy kept "
            "outside: the database's checkpoints were rewritten and signed again"
        ) in out
        assert f"episode ep-1: TAMPERED, first bad seq {head}: " in out
        assert "was changed and the chain recomputed" in out
