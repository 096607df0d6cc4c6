"""`carepath users add|rotate|remove|list` on a real users file, read back as the API does."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.auth import DEMO_TOKENS_FILE, UsersFileAuthenticator, demo_tokens, ensure_users_file
from api.problems import ProblemError
from cli.main import main
from domain.actors import Role


@pytest.fixture(autouse=True)
def _no_users_file_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CAREPATH_USERS_FILE", "CAREPATH_JWKS_URL", "CAREPATH_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def users(data_dir: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["users", *argv, "--data-dir", str(data_dir)])
    out, err = capsys.readouterr()
    return code, out, err


class TestUsersCommands:
    async def test_given_users_add_when_its_token_is_sent_then_it_authenticates_as_that_user(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, err = users(
            tmp_path, capsys, "add", "nia.nurse", "--role", "clinician", "--program", "adult-iop"
        )

        token = out.strip()
        user = await UsersFileAuthenticator(tmp_path / "users.yaml").authenticate(token)
        assert code == 0
        assert "shown once" in err
        assert (user.user_id, user.role, user.programs) == (
            "nia.nurse",
            Role.CLINICIAN,
            ("adult-iop",),
        )
        text = (tmp_path / "users.yaml").read_text()
        assert token not in text
        assert text.startswith("# CarePath users")
        assert (tmp_path / "users.yaml").stat().st_mode & 0o777 == 0o600

    async def test_given_a_rotated_user_then_only_the_new_token_authenticates(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _, first, _ = users(tmp_path, capsys, "add", "ada.auditor2", "--role", "auditor")
        auth = UsersFileAuthenticator(tmp_path / "users.yaml")
        assert (await auth.authenticate(first.strip())).user_id == "ada.auditor2"

        code, second, _ = users(tmp_path, capsys, "rotate", "ada.auditor2")

        assert code == 0
        assert (await auth.authenticate(second.strip())).role is Role.AUDITOR
        with pytest.raises(ProblemError) as refused:
            await auth.authenticate(first.strip())
        assert refused.value.status == 401

    async def test_given_a_removed_user_then_their_token_no_longer_authenticates(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _, token, _ = users(tmp_path, capsys, "add", "sam.super", "--role", "supervisor")
        auth = UsersFileAuthenticator(tmp_path / "users.yaml")
        await auth.authenticate(token.strip())

        code, out, _ = users(tmp_path, capsys, "remove", "sam.super")

        assert (code, out) == (0, "")
        with pytest.raises(ProblemError):
            await auth.authenticate(token.strip())

    def test_given_a_demo_user_when_rotated_then_its_stale_demo_token_is_dropped(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _, tokens = ensure_users_file(tmp_path / "users.yaml")

        users(tmp_path, capsys, "rotate", "cal.clinician")

        left = demo_tokens(tmp_path)
        assert Role.CLINICIAN not in left
        assert left[Role.AUDITOR] == tokens[Role.AUDITOR]
        assert (tmp_path / DEMO_TOKENS_FILE).stat().st_mode & 0o777 == 0o600

    def test_an_existing_user_is_not_added_twice_and_an_unknown_one_not_rotated(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        users(tmp_path, capsys, "add", "ivy", "--role", "intake_coordinator")

        again, out, err = users(tmp_path, capsys, "add", "ivy", "--role", "clinician")
        unknown, _, err2 = users(tmp_path, capsys, "rotate", "nobody")

        assert (again, out) == (1, "")
        assert "carepath users rotate ivy" in err
        assert unknown == 1
        assert "carepath users list" in err2

    def test_list_shows_users_and_how_their_tokens_are_kept_never_a_token(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "users.yaml").write_text(
            "tokens: {old-plain-token: {user_id: old.user, role: auditor}}\n"
        )
        users(tmp_path, capsys, "add", "new.user", "--role", "supervisor")

        code, out, _ = users(tmp_path, capsys, "list")

        assert code == 0
        assert "old-plain-token" not in out
        assert "PLAIN (rotate it)" in out
        assert "new.user" in out
        assert "digest" in out
