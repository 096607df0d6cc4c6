"""`carepath` starts fast: help and the API commands load no server library.

Each check runs the command in a fresh interpreter and lists the modules it loaded;
nothing here measures time (`bench/cli_start.py` does).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cli.episodes import DEFAULT_API_URL, ApiClient
from cli.main import build_parser, main
from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

# Top-level packages that make a start slow (or belong to the servers); none is needed
# to print help or to send a request to the API.
HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "temporalio",
    "asyncpg",
    "pydantic",
    "pydantic_settings",
    "httpx",
    "yaml",
    "structlog",
    "jwt",
    "api",
    "store",
    "domain",
    "workflows",
    "activities",
    "audit",
    "devstack",
    "programs",
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _heavy_modules_loaded(*argv: str) -> tuple[list[str], str]:
    """Run `carepath ARGV` in a fresh interpreter: the heavy packages it loaded, its stderr."""
    script = (
        "import json, sys\n"
        "from cli.main import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted({name.split('.')[0] for name in sys.modules} & set(heavy))\n"
        "print(json.dumps(loaded), file=sys.__stdout__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


class TestStartup:
    @pytest.mark.parametrize(
        "argv",
        [("--help",), ("episode", "--help"), ("episode", "show", "--help"), ("access-log", "-h")],
    )
    def test_given_a_fresh_interpreter_when_help_is_printed_then_no_heavy_module_is_loaded(
        self, argv: tuple[str, ...]
    ) -> None:
        loaded, _ = _heavy_modules_loaded(*argv)
        assert loaded == []

    def test_given_no_api_listening_when_episode_show_runs_then_it_fails_loading_no_heavy_module(
        self,
    ) -> None:
        url = f"http://127.0.0.1:{_closed_port()}"
        loaded, stderr = _heavy_modules_loaded("episode", "show", "ep-1", "--api-url", url)
        assert loaded == []
        assert stderr.startswith(f"carepath: error: cannot reach the CarePath API at {url}")


def _help_of(parser: argparse.ArgumentParser, path: list[str]) -> list[tuple[list[str], str]]:
    """Every (sub)command's path and help text, depth first."""
    found = [(path, parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _help_of(child, [*path, name])
    return found


class TestParser:
    def test_given_any_command_when_main_declares_only_it_then_its_help_is_the_whole_parsers(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("COLUMNS", "100")
        whole = _help_of(build_parser(), [])
        assert len(whole) > 30, "every command and subcommand"
        for path, expected in whole:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed), pytest.raises(SystemExit):
                main([*path, "--help"])
            assert printed.getvalue() == expected, path

    def test_given_the_top_level_when_only_one_command_is_declared_then_every_command_is_listed(
        self,
    ) -> None:
        whole = build_parser().format_help()
        assert build_parser(only=()).format_help() == whole
        assert build_parser(only={"episode"}).format_help() == whole


class TestApiSettings:
    @pytest.mark.parametrize(
        "environment",
        [
            {},
            {"CAREPATH_API_URL": "http://api.example:9000", "CAREPATH_TOKEN": "t-1"},
            {"carepath_api_url": "http://lower.example", "Carepath_Token": "t-2"},
            {"CAREPATH_API_URL": "", "CAREPATH_TOKEN": ""},
        ],
    )
    def test_given_carepath_variables_when_the_api_commands_read_them_then_settings_agree(
        self, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
    ) -> None:
        for name in list(os.environ):
            if name.lower() in ("carepath_api_url", "carepath_token"):
                monkeypatch.delenv(name)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        settings = Settings()
        client = ApiClient.configured(None, None)
        assert client.url == settings.api_url
        assert client.token == (settings.token.get_secret_value() if settings.token else None)

    def test_given_options_when_the_api_commands_read_them_then_they_win_over_variables(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CAREPATH_API_URL", "http://from-env")
        monkeypatch.setenv("CAREPATH_TOKEN", "env-token")
        client = ApiClient.configured("http://from-option", "option-token")
        assert client == ApiClient("http://from-option", "option-token")

    def test_given_the_settings_when_compared_then_the_default_api_url_is_the_same(self) -> None:
        assert Settings.model_fields["api_url"].default == DEFAULT_API_URL
