"""`carepath deploy init`: the secrets docker-compose.yml needs, written once, privately."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
import yaml

from api.auth import parse_users
from cli.deploy import ENV_DIR, init_deployment
from cli.main import main
from workers.errors import StartupError
from workers.payload_codec import Keyring


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_given_an_empty_directory_when_init_runs_then_every_file_is_private(
    tmp_path: Path,
) -> None:
    written = init_deployment(tmp_path / "secrets", tmp_path / ".env")
    assert _mode(written.directory) == 0o700
    assert _mode(written.directory / "checkpoints") == 0o700
    for path in written.files:
        assert _mode(path) == 0o600, path


def test_given_init_then_the_keys_and_users_are_what_carepath_reads(tmp_path: Path) -> None:
    written = init_deployment(tmp_path / "secrets", tmp_path / ".env")
    keys = (written.directory / "payload-keys.json").read_text(encoding="utf-8")
    Keyring.from_document(keys, where="payload-keys.json")
    users_text = (written.directory / "users.yaml").read_text(encoding="utf-8")
    users = parse_users(users_text, "users.yaml")
    assert {u.user_id for u in users.values()} == set(written.tokens)
    for _role, token in written.tokens.values():
        assert token not in users_text  # only digests are kept
    url = (written.directory / "database-url").read_text(encoding="utf-8").strip()
    password = (written.directory / "carepath-app-password").read_text(encoding="utf-8").strip()
    assert url == f"postgresql://carepath_app:{password}@carepath-db:5432/carepath"
    assert json.loads(keys)["active"]


def test_given_init_then_the_env_file_names_the_directory(tmp_path: Path) -> None:
    written = init_deployment(tmp_path / "secrets", tmp_path / ".env")
    env = dict(
        line.split("=", 1)
        for line in (tmp_path / ".env").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    assert env[ENV_DIR] == str(written.directory)


def test_given_files_exist_when_init_runs_again_then_nothing_is_replaced(tmp_path: Path) -> None:
    init_deployment(tmp_path / "secrets", tmp_path / ".env")
    before = (tmp_path / "secrets" / "chain-key").read_text(encoding="utf-8")
    with pytest.raises(StartupError, match="--force"):
        init_deployment(tmp_path / "secrets", tmp_path / ".env")
    assert (tmp_path / "secrets" / "chain-key").read_text(encoding="utf-8") == before


def test_given_force_when_init_runs_again_then_new_secrets_are_written(tmp_path: Path) -> None:
    init_deployment(tmp_path / "secrets", tmp_path / ".env")
    before = (tmp_path / "secrets" / "chain-key").read_text(encoding="utf-8")
    init_deployment(tmp_path / "secrets", tmp_path / ".env", force=True)
    assert (tmp_path / "secrets" / "chain-key").read_text(encoding="utf-8") != before


def test_given_the_command_then_each_token_is_printed_once_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["deploy", "init", str(tmp_path / "s"), "--env-file", str(tmp_path / ".env")])
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    users = yaml.safe_load((tmp_path / "s" / "users.yaml").read_text(encoding="utf-8"))
    assert len(out) == len(users["tokens"])
    digests = set(parse_users((tmp_path / "s" / "users.yaml").read_text(), "u"))

    assert {hashlib.sha256(line.split()[2].encode()).hexdigest() for line in out} == digests
