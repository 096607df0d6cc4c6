"""The users file: created once with a demo user per role, validated, re-read on change."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from api.auth import (
    DEMO_TOKENS_FILE,
    UsersFileAuthenticator,
    demo_tokens,
    ensure_users_file,
    parse_users,
)
from api.command_specs import command_specs
from api.problems import ProblemError
from domain.actors import Actor, Role
from workers.errors import StartupError


class TestUsersFile:
    def test_first_run_creates_a_private_file_with_one_token_per_role(self, tmp_path: Path) -> None:
        path = tmp_path / "data" / "users.yaml"

        created, tokens = ensure_users_file(path)
        again, none = ensure_users_file(path)

        assert created
        assert not again
        assert none == {}, "tokens are handed out only when the file is created"
        assert set(tokens) == {r for r in Role if r is not Role.SYSTEM}
        assert path.stat().st_mode & 0o777 == 0o600
        assert len(set(tokens.values())) == 5

    def test_given_a_created_users_file_then_it_holds_only_digests_and_the_demo_file_the_tokens(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "users.yaml"

        _, tokens = ensure_users_file(path)

        text = path.read_text()
        assert not [token for token in tokens.values() if token in text]
        for token in tokens.values():
            assert "sha256:" + hashlib.sha256(token.encode()).hexdigest() in text
        demo_file = tmp_path / DEMO_TOKENS_FILE
        assert demo_file.stat().st_mode & 0o777 == 0o600
        assert demo_tokens(tmp_path) == tokens

    def test_given_an_old_users_file_with_plain_tokens_then_demo_tokens_reads_them(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "users.yaml").write_text("tokens: {old-plain: {user_id: ada, role: auditor}}\n")

        assert demo_tokens(tmp_path) == {Role.AUDITOR: "old-plain"}

    async def test_demo_tokens_authenticate_as_their_role(self, tmp_path: Path) -> None:
        _, tokens = ensure_users_file(tmp_path / "users.yaml")
        auth = UsersFileAuthenticator(tmp_path / "users.yaml")

        clinician = await auth.authenticate(tokens[Role.CLINICIAN])

        assert clinician.role is Role.CLINICIAN
        assert clinician.programs == ("adult-iop", "drill")
        with pytest.raises(ProblemError, match="not known") as refused:
            await auth.authenticate("guess")
        assert refused.value.status == 401

    async def test_a_hashed_token_and_an_edit_are_picked_up(self, tmp_path: Path) -> None:
        path = tmp_path / "users.yaml"
        path.write_text("tokens: {}\n")
        auth = UsersFileAuthenticator(path)
        digest = hashlib.sha256(b"s3cret-token").hexdigest()

        path.write_text(f"tokens:\n  sha256:{digest}: {{user_id: ada, role: auditor}}\n")

        assert (await auth.authenticate("s3cret-token")).user_id == "ada"

    @pytest.mark.parametrize(
        ("text", "match"),
        [
            ("tokens: {t1: {user_id: x, role: wizard}}", "role"),
            ("tokens: {t1: {user_id: x, role: system}}", "only the timers use"),
            ("tokens: [", "invalid"),
            ("users: {}", "tokens"),
        ],
    )
    def test_an_invalid_file_is_a_one_line_startup_error(self, text: str, match: str) -> None:
        with pytest.raises(StartupError, match=match) as refused:
            parse_users(text, "users.yaml")

        assert "t1" not in str(refused.value), "a token is never printed"


class TestCommandEndpoints:
    def test_every_example_builds_its_domain_command(self) -> None:
        actor = Actor(user_id="dan.director", role=Role.CLINICAL_DIRECTOR)
        for spec in command_specs():
            body = spec.request_model.model_validate(spec.body_example)
            command = spec.build("cmd-1", actor, body, spec.path_example)
            assert command.type == spec.kind

    def test_request_bodies_leave_out_what_the_server_supplies(self) -> None:
        for spec in command_specs():
            fields = set(spec.request_model.model_fields)
            assert not fields & {"command_id", "actor", "type", *spec.path_params}, spec.kind
