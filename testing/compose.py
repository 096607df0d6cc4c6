"""docker-compose.yml as data: its services, and what a CarePath container is given.

Used by tests/unit/test_compose.py (the file's structure) and
tests/integration/test_compose_services.py (each CarePath service run with its compose
environment). `container_environment` is the environment compose gives a service, with
every `/run/secrets/<name>` path replaced by the file compose mounts there, taken from
a `carepath deploy init` directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SECRETS_MOUNT = "/run/secrets/"
COMPOSE_DIR_VARIABLE = "CAREPATH_COMPOSE_DIR"

Service = dict[str, Any]

_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping at the top level"
    return data


def services() -> dict[str, Service]:
    found = compose().get("services")
    assert isinstance(found, dict), "docker-compose.yml has no `services` mapping"
    assert found, "docker-compose.yml defines no services"
    return found


def environment(service: Service) -> dict[str, str]:
    """A service's `environment`, in either of compose's two spellings (mapping or list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {p[0]: (p[1] if len(p) > 1 else "") for p in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return value.split() if isinstance(value, str) else [str(v) for v in value]


def interpolate(text: str, variables: dict[str, str]) -> str:
    """`${NAME}`, `${NAME:-default}`, `${NAME:?error}` as compose substitutes them."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise KeyError(f"docker-compose.yml needs {name}, which is not set")
        return variables[name]

    return _INTERPOLATION.sub(one, text)


def secret_files(deploy_dir: Path) -> dict[str, Path]:
    """Secret name -> the host file compose mounts for it, given `deploy init`'s directory."""
    declared = compose().get("secrets") or {}
    variables = {COMPOSE_DIR_VARIABLE: str(deploy_dir)}
    return {name: Path(interpolate(spec["file"], variables)) for name, spec in declared.items()}


def service_secrets(service: Service) -> list[str]:
    """The secrets a service mounts (short syntax, or the `source` of the long one)."""
    return [s if isinstance(s, str) else str(s["source"]) for s in service.get("secrets") or []]


def container_environment(name: str, deploy_dir: Path) -> dict[str, str]:
    """The service's environment, each `/run/secrets/<secret>` made the host file compose
    would mount there; a secret the service does not mount is a failure."""
    service = services()[name]
    files = secret_files(deploy_dir)
    mounted = set(service_secrets(service))
    env = {}
    for variable, value in environment(service).items():
        if value.startswith(SECRETS_MOUNT):
            secret = value.removeprefix(SECRETS_MOUNT)
            assert secret in mounted, (
                f"{name}: {variable} names {value}, a secret it does not mount"
            )
            value = str(files[secret])
        env[variable] = value
    return env
