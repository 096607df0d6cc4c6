"""`carepath` starts fast: help and the API commands load no server library.

Each check runs the command in a fresh interpreter and lists the modules it loaded;
nothing here measures time (`bench/cli_start.py` does). The command line is Typer, pinned
to a version that does not load pydantic; the staff commands' options come from the
committed catalog (cli/command_catalog.json), so the domain is not imported.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cli.episodes import DEFAULT_API_URL, ApiClient
from cli.main import GROUPS, app, main
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
    "pydantic_core",
    # Rich's Markdown parser: typer's help imports it, CarePath's help never uses it
    # (cli/rich_help.py).
    "markdown_it",
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
        [
            ("--help",),
            ("episode", "--help"),
            ("episode", "show", "--help"),
            ("episode", "record-assessment", "--help"),
            ("audit", "access-log", "-h"),
            ("audit", "verify", "--help"),
            ("db", "--help"),
        ],
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


def _run_python(script: str) -> str:
    """What `script` prints, run in a fresh interpreter from the repository."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


class TestRichHelp:
    @pytest.mark.parametrize(
        "argv", [("--help",), ("episode", "record-assessment", "--help"), ("db", "-h")]
    )
    def test_given_help_drawn_without_markdown_then_it_reads_as_with_it(
        self, argv: tuple[str, ...]
    ) -> None:
        light = _run_python(f"from cli.main import main\nmain({list(argv)!r})")
        # typer.rich_utils imported whole first: import_rich_help is then a no-op.
        whole = _run_python(
            f"import typer.rich_utils\nfrom cli.main import main\nmain({list(argv)!r})"
        )
        assert "Usage: carepath" in light
        assert light == whole

    def test_given_help_was_drawn_when_rich_markdown_is_imported_then_it_is_the_real_one(
        self,
    ) -> None:
        script = (
            "from cli.main import main\n"
            "main(['--help'])\n"
            "import sys, typer.rich_utils as utils, rich.markdown, rich.traceback\n"
            "print('MARK', 'markdown_it' in sys.modules, rich.markdown.Markdown.__module__)\n"
            "print('MARK', type(utils.Markdown('**x**')).__module__)\n"
            "try:\n"
            "    raise ValueError('x')\n"
            "except ValueError as exc:\n"
            "    tb = utils.Traceback.from_exception(type(exc), exc, exc.__traceback__)\n"
            "print('MARK', type(tb).__name__, type(tb).__module__)\n"
        )
        marks = [line for line in _run_python(script).splitlines() if line.startswith("MARK")]
        assert marks == [
            "MARK True rich.markdown",
            "MARK rich.markdown",
            "MARK Traceback rich.traceback",
        ]


def _modules_loaded(*argv: str) -> list[str]:
    """The cli modules `carepath ARGV` imported, in a fresh interpreter."""
    script = (
        "import json, sys\n"
        "from cli.main import main\n"
        f"main({list(argv)!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('cli.'))),"
        " file=sys.__stdout__)\n"
    )
    loaded: list[str] = json.loads(_run_python(script).splitlines()[-1])
    return loaded


class TestGroups:
    def test_given_top_level_help_when_printed_then_no_group_module_is_imported(self) -> None:
        loaded = _modules_loaded("--help")

        assert not [m for m in loaded if m.startswith("cli.commands.")]

    def test_given_one_group_when_run_then_only_its_module_is_imported(self) -> None:
        loaded = _modules_loaded("db", "--help")

        assert [m for m in loaded if m.startswith("cli.commands.")] == ["cli.commands.db"]

    def test_given_every_group_when_its_help_is_asked_then_it_lists_commands(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        for group in GROUPS:
            code = main([group.name, "--help"])
            out = capsys.readouterr().out
            assert code == 0, group.name
            assert "Usage: carepath" in out, group.name

    def test_given_the_top_level_help_then_every_listed_group_and_the_global_options_show(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("COLUMNS", "120")
        assert main(["--help"]) == 0
        out = capsys.readouterr().out
        for group in GROUPS:
            assert (group.name in out) != group.hidden, group.name
        for option in ("--token", "--api-url", "--json", "--install-completion"):
            assert option in out
        assert app.info.name == "carepath"


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
