"""docker-compose.yml and the Dockerfile agree with the code they run.

No Docker engine runs where the tests run, so the compose stack is checked by
reading it: the environment it gives CarePath containers must be settings the
Settings model reads, the commands must parse with the real `carepath` parser,
start-up order must wait for healthy servers and finished one-shot jobs, and the
image must not run as root. When Debian's `docker-compose` is installed, its own
validator (`config -q`, needs no engine) runs as well.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from typer._click.exceptions import ClickException

from cli.deploy import ENV_DIR, ENV_GID, ENV_UID, init_deployment
from cli.main import parse_only
from testing.compose import (
    COMPOSE_FILE,
    ROOT,
    Service,
    as_list,
    container_environment,
    environment,
    secret_files,
    service_secrets,
    services,
)
from testing.tools import missing_tool
from workers.secret_files import FILE_SUFFIX, secret_field_names
from workers.settings import SEARCH_ATTRIBUTES, Settings

DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
_services = services
_environment = environment
_as_list = as_list


@pytest.fixture
def deploy_dir(tmp_path: Path) -> Path:
    """What `carepath deploy init` writes, in a temporary directory."""
    return init_deployment(tmp_path / "secrets", tmp_path / ".env").directory


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
    """What the settings read: each field's variable, and a secret's `<NAME>_FILE`."""
    prefix = Settings.model_config.get("env_prefix", "")
    names = set()
    for field_name, field in Settings.model_fields.items():
        names.add(f"{prefix}{field_name}".upper())
        if isinstance(field.validation_alias, str):
            names.add(field.validation_alias.upper())
    names |= {f"{prefix}{name}{FILE_SUFFIX}".upper() for name in secret_field_names(Settings)}
    return names


def _secret_variables() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in secret_field_names(Settings)}


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
        self, argv: tuple[str, ...], deploy_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        name, _ = _service_running(*argv)
        for var in _settings_env_names():
            monkeypatch.delenv(var, raising=False)
        for var, value in container_environment(name, deploy_dir).items():
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
        for name, svc in _built_services().items():
            argv = _carepath_argv(name, svc)
            try:
                parse_only(argv)
            except ClickException as exc:
                pytest.fail(
                    f"service {name!r} runs `carepath {' '.join(argv)}`, which the CLI "
                    f"rejects ({exc.format_message()}); see cli.main"
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
    def test_waits_for_healthy_servers_and_finished_migration(
        self, argv: tuple[str, ...], deploy_dir: Path
    ) -> None:
        name, svc = _service_running(*argv)
        env = container_environment(name, deploy_dir)
        deps = _depends_on(svc)
        temporal_host = env["CAREPATH_TEMPORAL_ADDRESS"].rsplit(":", 1)[0]
        db_url = Path(env["CAREPATH_DATABASE_URL_FILE"]).read_text(encoding="utf-8").strip()
        db_host = urlsplit(db_url).hostname
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


def test_every_service_has_an_image_or_a_build() -> None:
    for name, svc in _services().items():
        assert "image" in svc or "build" in svc, f"service {name!r} has neither image nor build"


def _docker_compose() -> str:
    """The docker-compose binary (it validates a file without any Docker engine)."""
    found = shutil.which("docker-compose")
    if found is None:
        missing_tool("docker-compose is not installed: `apt-get install -y docker-compose`")
    assert found is not None
    return found


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """`docker-compose config -q` (needs no engine), with the `.env` values deploy init gives."""
    docker_compose = _docker_compose()
    written = init_deployment(tmp_path / "secrets", tmp_path / ".env")
    env = {
        **os.environ,
        ENV_DIR: str(written.directory),
        ENV_UID: str(os.getuid()),
        ENV_GID: str(os.getgid()),
    }
    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}"


def test_given_no_deploy_init_when_compose_reads_the_file_then_it_names_the_command(
    tmp_path: Path,
) -> None:
    docker_compose = _docker_compose()
    env = {k: v for k, v in os.environ.items() if k not in {ENV_DIR, ENV_UID, ENV_GID}}
    empty_env = tmp_path / ".env"
    empty_env.write_text("", encoding="utf-8")
    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE_FILE), "--env-file", str(empty_env), "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "carepath deploy init" in result.stderr


class TestSecrets:
    def test_no_carepath_secret_is_given_in_clear(self) -> None:
        clear = {
            f"{name}: {var}"
            for name, svc in _services().items()
            for var in _environment(svc)
            if var.upper() in _secret_variables()
        }
        assert not clear, f"secrets in `environment` (use CAREPATH_<NAME>_FILE): {sorted(clear)}"

    @pytest.mark.parametrize(
        "name", ["carepath-db", "carepath-migrate", "carepath-worker", "carepath-api", "grafana"]
    )
    def test_no_password_or_key_is_given_in_clear(self, name: str) -> None:
        suspicious = re.compile(r"(PASSWORD|PASSWD|PWD|SECRET|TOKEN|KEYS?|DATABASE_URL|OWNER_URL)$")
        clear = [
            var
            for var, value in _environment(_services()[name]).items()
            if suspicious.search(var.upper()) and value
        ]
        assert not clear, f"{name} gives {clear} in clear; mount a secret and name its file"

    def test_every_file_variable_names_a_mounted_secret(self, deploy_dir: Path) -> None:
        for name in _services():
            env = container_environment(name, deploy_dir)  # asserts each is mounted
            for var, value in env.items():
                if var.endswith(FILE_SUFFIX) and value.startswith(str(deploy_dir)):
                    assert Path(value).is_file(), f"{name}: {var} -> {value} is not written"

    def test_deploy_init_writes_every_declared_secret(self, deploy_dir: Path) -> None:
        files = secret_files(deploy_dir)
        declared_and_used = {s for svc in _services().values() for s in service_secrets(svc)}
        assert declared_and_used <= set(files), "a service mounts a secret not declared"
        for secret, path in files.items():
            assert path.is_file(), f"`carepath deploy init` does not write {path} ({secret})"
            assert stat.S_IMODE(path.stat().st_mode) == 0o600

    @pytest.mark.parametrize("argv", [("worker",), ("api",), ("db", "migrate")])
    def test_carepath_containers_run_as_the_secrets_owner_not_root(
        self, argv: tuple[str, ...]
    ) -> None:
        _, svc = _service_running(*argv)
        user = str(svc.get("user", ""))
        assert "CAREPATH_COMPOSE_UID" in user, user
        assert "CAREPATH_COMPOSE_GID" in user, user

    def test_the_api_is_given_its_users_file(self, deploy_dir: Path) -> None:
        name, _ = _service_running("api")
        users = Path(container_environment(name, deploy_dir)["CAREPATH_USERS_FILE"])
        assert users == deploy_dir / "users.yaml"

    def test_the_worker_is_given_a_checkpoint_key(self, deploy_dir: Path) -> None:
        name, _ = _service_running("worker")
        assert "CAREPATH_CHECKPOINT_KEY_FILE" in container_environment(name, deploy_dir)


class TestMonitoring:
    def test_prometheus_scrapes_the_api_and_the_worker(self) -> None:
        config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
        targets = {
            target
            for job in config["scrape_configs"]
            if job.get("metrics_path", "/metrics") == "/metrics"
            for static in job.get("static_configs", [])
            for target in static["targets"]
        }
        api_name, api = _service_running("api")
        worker_name, worker = _service_running("worker")
        api_port = _environment(api)["CAREPATH_API_PORT"]
        worker_env = _environment(worker)
        assert worker_env["CAREPATH_WORKER_METRICS_HOST"] == "0.0.0.0"
        worker_port = worker_env["CAREPATH_WORKER_METRICS_PORT"]
        assert f"{api_name}:{api_port}" in targets
        assert f"{worker_name}:{worker_port}" in targets

    def test_prometheus_is_given_its_config(self) -> None:
        volumes = [str(v) for v in _services()["prometheus"]["volumes"]]
        assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes

    def test_grafana_provisions_the_prometheus_datasource_and_the_dashboards(self) -> None:
        datasources = [
            source
            for path in (GRAFANA_PROVISIONING / "datasources").glob("*.yml")
            for source in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
        ]
        prometheus = [d for d in datasources if d["uid"] == "prometheus"]
        assert prometheus
        assert prometheus[0]["type"] == "prometheus"
        assert urlsplit(prometheus[0]["url"]).hostname == "prometheus"
        providers = [
            provider
            for path in (GRAFANA_PROVISIONING / "dashboards").glob("*.yml")
            for provider in yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]
        ]
        volumes = [str(v) for v in _services()["grafana"]["volumes"]]
        mounted = {v.split(":")[1]: v.split(":")[0] for v in volumes}
        assert mounted["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
        paths = {p["options"]["path"] for p in providers}
        assert paths == {"/var/lib/grafana/dashboards"}
        assert mounted["/var/lib/grafana/dashboards"] == "./deploy/grafana/dashboards"

    def test_the_temporal_ui_decodes_through_the_api_codec_endpoint(self) -> None:
        _, api = _service_running("api")
        ui = _environment(_services()["temporal-ui"])
        endpoint = urlsplit(ui["TEMPORAL_CODEC_ENDPOINT"])
        api_port = _environment(api)["CAREPATH_API_PORT"]
        assert endpoint.path == "/codec"
        assert str(endpoint.port) == api_port
        published = [str(p) for p in _services()["temporal-ui"]["ports"]]
        origin = _environment(api)["CAREPATH_CODEC_UI_ORIGIN"]
        assert any(p.endswith(f":{urlsplit(origin).port}") for p in published)


class TestDatabaseInit:
    def test_the_init_script_is_mounted_and_executable(self) -> None:
        volumes = [str(v) for v in _services()["carepath-db"]["volumes"]]
        assert "./deploy/postgres/initdb:/docker-entrypoint-initdb.d:ro" in volumes
        scripts = sorted((ROOT / "deploy" / "postgres" / "initdb").glob("*.sh"))
        assert scripts
        assert all(os.access(p, os.X_OK) for p in scripts)
