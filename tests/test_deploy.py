"""deploy/: what can be checked without Docker or a cluster.

The compose file and the Kubernetes manifests run the Procfile's processes, set only settings
that gitstats knows, probe real routes, mount the App's key where the settings say, and scale the
workers on the queue-depth gauge; the image installs every package and runs as a non-root user.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from contract.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KNOWN_SETTINGS = {name.upper() for name in Settings.model_fields}
APP_KEY = "github-app.pem"

Doc = dict[str, Any]


def procfile() -> dict[str, list[str]]:
    """The Procfile's processes as argument lists, e.g. {"web": ["python", "-m", "service"]}."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    pairs = [line.split(":", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): shlex.split(command) for name, command in pairs}


def argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else command


def compose_services() -> dict[str, Doc]:
    """The compose services that run the gitstats image (not Valkey, MinIO or mc)."""
    services: dict[str, Doc] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    return {name: s for name, s in services.items() if s.get("image", "").startswith("gitstats")}


def manifests() -> list[Doc]:
    docs = (yaml.safe_load_all(path.read_text()) for path in sorted(KUBERNETES.glob("*.yaml")))
    return [doc for file_docs in docs for doc in file_docs if doc]


def objects(kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in manifests() if doc["kind"] == kind}


def containers() -> dict[str, Doc]:
    """Every Deployment's containers, keyed "deployment/container"."""
    return {
        f"{name}/{container['name']}": container
        for name, deployment in objects("Deployment").items()
        for container in deployment["spec"]["template"]["spec"]["containers"]
    }


def deployment_running(process: str) -> tuple[str, Doc, Doc]:
    """(name, pod spec, container) of the Deployment whose container runs a Procfile process."""
    for name, deployment in objects("Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            if argv(container["command"]) == procfile()[process]:
                return name, pod, container
    raise AssertionError(f"no Deployment runs the Procfile's {process!r} process")


def container_env(container: Doc) -> dict[str, str | None]:
    """A container's environment: ConfigMaps and Secrets through envFrom, then `env` (values of
    secretKeyRef entries are None)."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(objects("ConfigMap")[source["configMapRef"]["name"]]["data"])
        else:
            env.update(dict.fromkeys(objects("Secret")[source["secretRef"]["name"]]["stringData"]))
    for entry in container.get("env", []):
        if key_ref := entry.get("valueFrom", {}).get("secretKeyRef"):
            assert key_ref["key"] in objects("Secret")[key_ref["name"]]["stringData"], entry
        env[entry["name"]] = entry.get("value")
    return env


def dockerfile(instruction: str) -> list[str]:
    """The arguments of every `instruction` line of deploy/Dockerfile."""
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    return [line.split(None, 1)[1] for line in lines if line.split(None, 1)[:1] == [instruction]]


@pytest.mark.parametrize(
    "path",
    [DEPLOY / "compose.yaml", *sorted(KUBERNETES.glob("*.yaml"))],
    ids=lambda path: str(path.relative_to(DEPLOY)),
)
def test_yaml_parses(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert docs and all(isinstance(doc, dict) for doc in docs)
    if path.parent == KUBERNETES:
        assert all({"apiVersion", "kind"} <= doc.keys() for doc in docs)


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    files = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(listed) == sorted(files)


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_commands_are_the_procfile_processes(where: str) -> None:
    if where == "compose":
        commands = {name: argv(s["command"]) for name, s in compose_services().items()}
    else:
        commands = {name: argv(c["command"]) for name, c in containers().items()}
    processes = procfile()
    assert set(processes) == {"web", "worker"}
    for name, command in commands.items():
        assert command in processes.values(), f"{name}: {command} is not a Procfile command"
    for process, command in processes.items():
        assert command in commands.values(), f"the Procfile's {process!r} is never run"


def test_compose_runs_two_workers_and_keeps_only_the_bucket() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    workers = [s for s in compose_services().values() if argv(s["command"]) == procfile()["worker"]]
    assert sum(s.get("deploy", {}).get("replicas", 1) for s in workers) >= 2
    assert list(compose["volumes"]) == ["minio-data"]
    assert not any(s.get("volumes") for s in compose_services().values())
    for service in compose_services().values():
        assert service["depends_on"]["valkey"]["condition"] == "service_healthy"
        assert "service_completed_successfully" in {
            d["condition"] for d in service["depends_on"].values()
        }


def test_compose_environment_is_known_settings() -> None:
    for name, service in compose_services().items():
        unknown = set(service["environment"]) - KNOWN_SETTINGS
        assert not unknown, f"{name} sets what Settings does not know: {sorted(unknown)}"


def test_kubernetes_environment_is_known_settings() -> None:
    for name, container in containers().items():
        unknown = set(container_env(container)) - KNOWN_SETTINGS
        assert not unknown, f"{name} sets what Settings does not know: {sorted(unknown)}"
    # The Secret's other keys are settings too: only the key file is not an environment variable.
    secret_keys = {key for s in objects("Secret").values() for key in s["stringData"]}
    assert secret_keys - {APP_KEY} <= KNOWN_SETTINGS


def test_probes_are_real_routes() -> None:
    routes = set(re.findall(r'@routes\.get\("([^"]+)"\)', (ROOT / "service/health.py").read_text()))
    _, _, web = deployment_running("web")
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz"} <= routes
    (compose_web,) = [
        s for s in compose_services().values() if argv(s["command"]) == procfile()["web"]
    ]
    assert "/readyz" in " ".join(compose_web["healthcheck"]["test"])
    _, _, worker = deployment_running("worker")
    # arq's own check of the settings the worker runs on (`python -m worker` runs worker.main).
    assert procfile()["worker"] == ["python", "-m", "worker"]
    probe = worker["livenessProbe"]["exec"]["command"]
    assert probe == ["arq", "--check", "worker.main.WorkerSettings"]
    assert "from worker.main import run_worker" in (ROOT / "worker/__main__.py").read_text()


def test_pods_run_as_non_root_on_a_read_only_root() -> None:
    for process in ("web", "worker"):
        _, pod, container = deployment_running(process)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        mounts = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs}
        assert "/tmp" in mounts
        if process == "worker":
            work_dir = PurePosixPath(str(container_env(container)["WORK_DIR"]))
            assert any(work_dir.is_relative_to(mount) for mount in mounts)


def test_keda_scales_the_workers_on_queue_depth() -> None:
    worker_name, _, _ = deployment_running("worker")
    (scaled,) = objects("ScaledObject").values()
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker_name
    assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
    (trigger,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
    assert "gitstats_queue_depth" in trigger["metadata"]["query"]
    # The gauge the web process serves on GET /metrics (tests/test_metrics.py reads it there).
    assert '"gitstats_queue_depth"' in (ROOT / "service/metrics.py").read_text()
    assert float(trigger["metadata"]["threshold"]) > 0


def test_app_key_is_mounted_where_the_settings_point() -> None:
    (secret,) = objects("Secret").values()
    assert "PRIVATE KEY" in secret["stringData"][APP_KEY]
    _, pod, worker = deployment_running("worker")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted = {
        f"{mount['mountPath']}/{item['path']}"
        for mount in worker["volumeMounts"]
        if mount.get("readOnly") and "secret" in volumes[mount["name"]]
        for item in volumes[mount["name"]]["secret"]["items"]
        if item["key"] == APP_KEY
    }
    assert container_env(worker)["GITHUB_PRIVATE_KEY_PATH"] in mounted
    # In compose, the key is a secret file under /run/secrets.
    for service in compose_services().values():
        if path := service["environment"].get("GITHUB_PRIVATE_KEY_PATH"):
            targets = {secret["target"] for secret in service["secrets"]}
            assert PurePosixPath(path).parent == PurePosixPath("/run/secrets")
            assert PurePosixPath(path).name in targets


def test_dockerfile() -> None:
    assert all(re.fullmatch(r"python:3\.\d+-slim( AS \w+)?", base) for base in dockerfile("FROM"))
    user = dockerfile("USER")[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert json.loads(dockerfile("CMD")[-1]) == procfile()["web"]
    assert dockerfile("EXPOSE") == ["8080"]


def test_image_installs_every_package() -> None:
    """`pip install .` in the image ships what pyproject's package list finds: all of it."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    include = find["find"].get("include", ["*"])
    tops = [d for d in ROOT.iterdir() if (d / "__init__.py").is_file() and d.name != "tests"]
    packages = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in tops
        for init in top.rglob("__init__.py")
    }
    missed = {p for p in packages if not any(fnmatch.fnmatchcase(p, i) for i in include)}
    assert not missed, f"pyproject.toml leaves out {sorted(missed)}"
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    needed = {"pyproject.toml", "README.md", *(p.split(".")[0] for p in packages)}
    assert not {n for n in needed for pattern in ignored if fnmatch.fnmatchcase(n, pattern)}
