"""deploy/kubernetes/ parses, and each workload has probes, resources, file secrets and
a non-root security context; every CAREPATH_* name it uses is a setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.main import parse_only
from workers.secret_files import FILE_SUFFIX, secret_field_names
from workers.settings import Settings

KUBERNETES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"

Manifest = dict[str, Any]


def _manifests() -> list[Manifest]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text("utf-8"))
    found = []
    for name in kustomization["resources"]:
        found += [d for d in yaml.safe_load_all((KUBERNETES / name).read_text("utf-8")) if d]
    return found


def _of_kind(kind: str) -> list[Manifest]:
    return [m for m in _manifests() if m["kind"] == kind]


def _named(kind: str, name: str) -> Manifest:
    (found,) = [m for m in _of_kind(kind) if m["metadata"]["name"] == name]
    return found


def _workloads() -> list[Manifest]:
    return _of_kind("Deployment") + _of_kind("Job")


def _containers(workload: Manifest) -> list[dict[str, Any]]:
    return list(workload["spec"]["template"]["spec"]["containers"])


def _env_names(container: dict[str, Any]) -> list[str]:
    return [entry["name"] for entry in container.get("env", [])]


def _settings_names() -> set[str]:
    names = {f"CAREPATH_{name}".upper() for name in Settings.model_fields}
    return names | {f"CAREPATH_{n}{FILE_SUFFIX}".upper() for n in secret_field_names(Settings)}


def test_every_manifest_in_the_directory_is_listed_and_parses() -> None:
    listed = set(
        yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text("utf-8"))["resources"]
    )
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    for manifest in _manifests():
        assert {"apiVersion", "kind", "metadata"} <= set(manifest), manifest


def test_the_api_the_worker_and_the_migration_are_there() -> None:
    assert _containers(_named("Deployment", "carepath-api"))[0]["args"] == ["api"]
    assert _containers(_named("Deployment", "carepath-worker"))[0]["args"] == ["worker"]
    assert _containers(_named("Job", "carepath-migrate"))[0]["args"] == ["db", "migrate"]
    for workload in _workloads():
        parse_only(_containers(workload)[0]["args"])


def test_the_api_service_selects_the_api_pods_on_their_http_port() -> None:
    service = _named("Service", "carepath-api")
    api = _named("Deployment", "carepath-api")
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in _containers(api)[0]["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in ports


@pytest.mark.parametrize("name", ["carepath-api", "carepath-worker"])
def test_long_running_containers_have_liveness_and_readiness_probes(name: str) -> None:
    for container in _containers(_named("Deployment", name)):
        assert container.get("livenessProbe"), f"{name} has no liveness probe"
        assert container.get("readinessProbe"), f"{name} has no readiness probe"


def test_the_api_probes_livez_and_readyz() -> None:
    (container,) = _containers(_named("Deployment", "carepath-api"))
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_the_worker_probes_with_its_health_module() -> None:
    (container,) = _containers(_named("Deployment", "carepath-worker"))
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"] == ["python", "-m", "workers.health"]


def test_every_container_has_resource_requests_and_limits() -> None:
    for workload in _workloads():
        for container in _containers(workload):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), (
                    f"{workload['metadata']['name']}: {bound} lack cpu or memory"
                )


def test_every_pod_runs_as_a_non_root_user_without_privileges() -> None:
    for workload in _workloads():
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context.get("privileged", False) is False, name


def test_every_carepath_variable_is_a_setting() -> None:
    known = _settings_names()
    used = {
        name
        for workload in _workloads()
        for container in _containers(workload)
        for name in _env_names(container)
    }
    used |= {name for config in _of_kind("ConfigMap") for name in config.get("data", {})}
    unknown = {n for n in used if n.startswith("CAREPATH_") and n not in known}
    assert not unknown, f"not settings: {sorted(unknown)}"


def test_secrets_are_files_from_the_mounted_secret_never_values() -> None:
    secret_names = {f"CAREPATH_{n}".upper() for n in secret_field_names(Settings)}
    for config in _of_kind("ConfigMap"):
        assert not secret_names & set(config.get("data", {})), "a secret in a ConfigMap"
    for workload in _workloads():
        pod = workload["spec"]["template"]["spec"]
        secret_volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
        for container in pod["containers"]:
            mounts = {
                m["mountPath"]: secret_volumes[m["name"]]
                for m in container["volumeMounts"]
                if m["name"] in secret_volumes
            }
            for entry in container.get("env", []):
                assert entry["name"] not in secret_names, f"{entry['name']} given as a value"
                assert "valueFrom" not in entry, f"{entry['name']}: use a file, not an env secret"
                if not entry["name"].endswith(FILE_SUFFIX):
                    continue
                directory, _, file = entry["value"].rpartition("/")
                assert directory in mounts, f"{entry['name']} names an unmounted file"
                keys = {item["path"] for item in mounts[directory]["items"]}
                assert file in keys, f"{entry['name']}: {file} is not projected"


def test_secret_keys_are_the_files_deploy_init_writes(tmp_path: Path) -> None:
    from cli.deploy import init_deployment

    written = init_deployment(tmp_path / "s", tmp_path / ".env")
    files = {p.name for p in written.directory.iterdir() if p.is_file()}
    for workload in _workloads():
        for volume in workload["spec"]["template"]["spec"]["volumes"]:
            for item in volume.get("secret", {}).get("items", []):
                assert item["key"] in files, item["key"]
