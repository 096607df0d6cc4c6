"""docker-compose.yml and the Dockerfile agree with the code they run.

No Docker engine runs where the tests run, so the compose stack is checked by
reading it: the environment it gives CarePath containers must be settings the
Settings model reads, the commands must parse with the real `carepath` parser,
start-up order must wait for healthy servers and finished one-shot jobs, and the
image must not run as root. When Debian's `docker-compose` is installed, its own
validator (`config -q`, needs no engine) runs as well.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from cli.main import build_parser
from workers.settings import SEARCH_ATTRIBUTES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

Service = dict[str, Any]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping at the top level"
    return data


def _services() -> dict[str, Service]:
    services = _compose().get("services")
    assert isinstance(services, dict), "docker-compose.yml has no `services` mapping"
    assert services, "docker-compose.yml defines no services"
    return services


def _environment(service: Service) -> dict[str, str]:
    """A service's `environment`, in either of compose's two spellings (mapping or list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {p[0]: (p[1] if len(p) > 1 else "") for p in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return value.split() if isinstance(value, str) else [str(v) for v in value]


def _dockerfile_entrypoint() -> list[str]:
    """The exec-form ENTRYPOINT of the Dockerfile's final stage."""
    entrypoint: list[str] = []
    for line in _final_stage_lines():
        if line.upper().startswith("ENTRYPOINT "):
            entrypoint = yaml.safe_load(line.split(None, 1)[1])
    return entrypoint


def _final_stage_lines() -> list[str]:
    """Dockerfile instructions of the last stage, continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    last_from = max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    return lines[last_from:]


def _built_services() -> dict[str, Service]:
    """Services whose image is built from this repository's Dockerfile."""
    built = {name: svc for name, svc in _services().items() if "build" in svc}
    assert built, "no service is built from the Dockerfile"
    return built


def _carepath_argv(name: str, service: Service) -> list[str]:
    """The arguments a built service passes to `carepath` (entrypoint + command)."""
    entrypoint = _as_list(service.get("entrypoint")) or _dockerfile_entrypoint()
    assert entrypoint[:1] == ["carepath"], (
        f"service {name!r} runs {entrypoint!r}, expected the `carepath` entrypoint"
    )
    return entrypoint[1:] + _as_list(service.get("command"))


def _service_running(*argv: str) -> tuple[str, Service]:
    matches = [
        (name, svc)
        for name, svc in _built_services().items()
        if _carepath_argv(name, svc) == list(argv)
    ]
    assert len(matches) == 1, f"expected one service running `carepath {' '.join(argv)}`"
    return matches[0]


def _depends_on(service: Service) -> dict[str, str]:
    """service name -> condition; the short list form means `service_started`."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def _one_shot_jobs() -> set[str]:
    """Services some other service waits on to *complete*: run-once jobs."""
    return {
        dep
        for svc in _services().values()
        for dep, cond in _depends_on(svc).items()
        if cond == "service_completed_successfully"
    }


def _settings_env_names() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    names = set()
    for field_name, field in Settings.model_fields.items():
        names.add(f"{prefix}{field_name}".upper())
        if isinstance(field.validation_alias, str):
            names.add(field.validation_alias.upper())
    return names


class TestEnvironment:
    def test_every_carepath_variable_is_a_settings_field(self) -> None:
        known = _settings_env_names()
        unknown = {
            f"{name}: {var}"
            for name, svc in _services().items()
            for var in _environment(svc)
            if var.upper().startswith("CAREPATH_") and var.upper() not in known
        }
        assert not unknown, (
            f"CAREPATH_* variables the Settings model does not read: {sorted(unknown)}; "
            f"it reads {sorted(known)}"
        )

    @pytest.mark.parametrize("argv", [("worker",), ("api",), ("db", "migrate")])
    def test_settings_accept_the_values_given(
        self, argv: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        name, svc = _service_running(*argv)
        for var in _settings_env_names():
            monkeypatch.delenv(var, raising=False)
        for var, value in _environment(svc).items():
            monkeypatch.setenv(var, value)
        settings = Settings()
        assert not settings.embedded_temporal, f"{name} would start its own Temporal server"
        assert not settings.embedded_postgres, f"{name} would start its own PostgreSQL"

    def test_api_listens_on_all_interfaces_of_its_container(self) -> None:
        _, api = _service_running("api")
        env = _environment(api)
        assert env.get("CAREPATH_API_HOST") == "0.0.0.0"
        port = env.get("CAREPATH_API_PORT", str(Settings.model_fields["api_port"].default))
        published = [str(p) for p in api.get("ports", [])]
        assert any(p.endswith(f":{port}") for p in published), (
            f"the API port {port} is not published: {published}"
        )


class TestCommands:
    def test_every_carepath_command_parses(self) -> None:
        parser = build_parser()
        for name, svc in _built_services().items():
            argv = _carepath_argv(name, svc)
            try:
                parser.parse_args(argv)
            except SystemExit as exc:
                pytest.fail(
                    f"service {name!r} runs `carepath {' '.join(argv)}`, which the CLI "
                    f"rejects (exit {exc.code}); see cli.main.build_parser()"
                )

    def test_worker_api_and_migration_are_all_run(self) -> None:
        for argv in (("worker",), ("api",), ("db", "migrate")):
            _service_running(*argv)

    def test_search_attributes_registered_match_the_settings(self) -> None:
        scripts = "\n".join(
            " ".join(_as_list(svc.get("command")))
            for svc in _services().values()
            if str(svc.get("image", "")).startswith("temporalio/admin-tools")
        )
        registered = dict(
            re.findall(r"search-attribute create\b[^\n]*?--name\s+(\w+)\s+--type\s+(\w+)", scripts)
        )
        assert registered == SEARCH_ATTRIBUTES


class TestStartupOrder:
    @pytest.mark.parametrize("argv", [("worker",), ("api",)])
    def test_waits_for_healthy_servers_and_finished_migration(self, argv: tuple[str, ...]) -> None:
        name, svc = _service_running(*argv)
        env = _environment(svc)
        deps = _depends_on(svc)
        temporal_host = env["CAREPATH_TEMPORAL_ADDRESS"].rsplit(":", 1)[0]
        db_host = urlsplit(env["CAREPATH_DATABASE_URL"]).hostname
        migrate, _ = _service_running("db", "migrate")
        expected = {
            temporal_host: "service_healthy",
            db_host: "service_healthy",
            migrate: "service_completed_successfully",
        }
        for dep, condition in expected.items():
            assert dep in _services(), f"{name} talks to {dep!r}, which is not a service"
            assert deps.get(dep) == condition, (
                f"{name} must depend on {dep!r} with condition {condition}, has {deps.get(dep)}"
            )

    @pytest.mark.parametrize("argv", [("worker",), ("api",)])
    def test_waits_for_search_attribute_registration(self, argv: tuple[str, ...]) -> None:
        name, svc = _service_running(*argv)
        registering = {
            n
            for n, s in _services().items()
            if "search-attribute create" in " ".join(_as_list(s.get("command")))
        }
        assert registering, "no service registers the custom search attributes"
        deps = _depends_on(svc)
        for job in registering:
            assert deps.get(job) == "service_completed_successfully", (
                f"{name} must wait for {job!r} to complete"
            )

    def test_every_dependency_exists(self) -> None:
        services = _services()
        for name, svc in services.items():
            for dep in _depends_on(svc):
                assert dep in services, f"{name} depends on unknown service {dep!r}"

    def test_every_service_has_a_healthcheck_or_is_a_one_shot_job(self) -> None:
        jobs = _one_shot_jobs()
        missing = [
            name
            for name, svc in _services().items()
            if name not in jobs
            and (not svc.get("healthcheck") or svc["healthcheck"].get("disable"))
        ]
        assert not missing, f"long-running services without a healthcheck: {missing}"

    def test_one_shot_jobs_are_not_restarted_forever(self) -> None:
        for name in _one_shot_jobs():
            policy = str(_services()[name].get("restart", "no"))
            assert policy not in {"always", "unless-stopped"}, (
                f"one-shot job {name!r} has restart: {policy}; it would never complete"
            )

    def test_image_tags_are_pinned(self) -> None:
        for name, svc in _services().items():
            image = str(svc.get("image", ""))
            if "build" in svc or not image:
                continue
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            assert tag, f"service {name!r} uses an image without a tag: {image!r}"
            assert tag != "latest", f"service {name!r} uses unpinned image {image!r}"


class TestDockerfile:
    def test_final_stage_runs_as_a_non_root_user(self) -> None:
        users = [
            ln.split(None, 1)[1] for ln in _final_stage_lines() if ln.upper().startswith("USER ")
        ]
        assert users, "the Dockerfile's final stage sets no USER: the container would run as root"
        user = users[-1].split(":", 1)[0].strip()
        assert user not in {"root", "0"}, f"the final stage runs as {user!r}"

    def test_entrypoint_is_the_carepath_command(self) -> None:
        assert _dockerfile_entrypoint() == ["carepath"]

    def test_installs_without_dev_or_embedded_extras(self) -> None:
        text = DOCKERFILE.read_text(encoding="utf-8")
        assert not re.search(r"\[[^\]]*\b(dev|embedded)\b[^\]]*\]", text), (
            "the image must not install the dev or embedded extras"
        )


def test_compose_file_is_valid() -> None:
    """Structural checks always; Debian's `docker-compose config -q` too when installed."""
    for name, svc in _services().items():
        assert "image" in svc or "build" in svc, f"service {name!r} has neither image nor build"
    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        return
    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}"
