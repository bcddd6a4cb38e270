"""The Kubernetes manifests of ``compose/kubernetes/``, offline: rendered by the real ``kubectl
kustomize``, validated against Kubernetes' own schemas (``kubernetes-validate``, strict: no unknown
field), and their pod run for real with podman as the kubelet would run it.

The run takes the rendered Deployment's pod spec and nothing else: its user, a read-only root
filesystem, every capability dropped, its env, a writable directory for each emptyDir volume (a tmpfs
for ``medium: Memory``) and the
ConfigMap and Secret laid out as the kubelet mounts them (``config.yaml -> ..data/config.yaml``,
``..data -> ..<timestamp>``). Only the listen port (host network) and the Redis address (a real
``redis-server`` on loopback instead of the ``redis`` Service) change. It proves the gateway writes
nowhere but its volumes, takes its keys from the Secret's ``.env``, answers the probes' paths, and
reloads the ConfigMap when the kubelet swaps ``..data``, without a restart.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO, free_port
from tests.integration.test_container import _logs, _podman, _remove, gateway_image, runtime_args
from tests.store.servers import RedisServer

__all__ = ["gateway_image", "runtime_args"]  # the image fixtures of test_container.py, used here

KUBE_DIR = REPO / "compose" / "kubernetes"
MASTER_KEY = f"sk-kube-test-{uuid.uuid4().hex}"
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="needs kubectl (Debian package kubernetes-client)")


def render(workdir: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of a copy of compose/kubernetes with secrets.env made from its example."""
    kube = workdir / "kubernetes"
    shutil.copytree(KUBE_DIR, kube, ignore=shutil.ignore_patterns("secrets.env"))
    example = (kube / "secrets.env.example").read_text()
    (kube / "secrets.env").write_text(example.replace("GATEWAY_MASTER_KEY=\n", f"GATEWAY_MASTER_KEY={MASTER_KEY}\n")
                                      .replace("OPENAI_API_KEY=\n", "OPENAI_API_KEY=sk-upstream-kube-test-1111\n"))
    assert KUBECTL is not None
    done = subprocess.run([KUBECTL, "kustomize", str(kube)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    if KUBECTL is None:
        pytest.skip("needs kubectl (Debian package kubernetes-client)")
    return render(tmp_path_factory.mktemp("kube"))


def one(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in manifests if d["kind"] == kind and d["metadata"]["name"] == name)


def config_data(manifests: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = one(manifests, "ConfigMap", "llm-gateway-config")["data"]
    return data


def secret_data(manifests: list[dict[str, Any]]) -> dict[str, str]:
    secret = one(manifests, "Secret", "llm-gateway-env")
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


@needs_kubectl
def test_the_manifests_pass_kubernetes_schemas(manifests: list[dict[str, Any]]) -> None:
    import kubernetes_validate  # the test extra; it bundles the schemas (no network)

    for doc in manifests:
        kubernetes_validate.validate(doc, kubernetes_validate.utils.latest_version(), strict=True)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in manifests)
    assert kinds == [("ConfigMap", "llm-gateway-config"), ("Deployment", "llm-gateway"), ("Deployment", "redis"),
                     ("PersistentVolumeClaim", "redis-data"), ("PodDisruptionBudget", "llm-gateway"),
                     ("Secret", "llm-gateway-env"), ("Service", "llm-gateway"), ("Service", "redis")]


@needs_kubectl
def test_the_deployment_is_replicated_probed_non_root_and_read_only(manifests: list[dict[str, Any]]) -> None:
    deployment = one(manifests, "Deployment", "llm-gateway")
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # config.yaml and .env from the ConfigMap and the Secret, as directories (a subPath never updates)
    config_mount = mounts[str(Path(env["GATEWAY_CONFIG"]).parent)]
    assert volumes[config_mount["name"]]["configMap"]["name"] == "llm-gateway-config"
    assert Path(env["GATEWAY_CONFIG"]).name in config_data(manifests)
    env_mount = mounts[str(Path(env["GATEWAY_ENV_FILE"]).parent)]
    assert volumes[env_mount["name"]]["secret"]["secretName"] == "llm-gateway-env"
    assert "subPath" not in config_mount and "subPath" not in env_mount
    # what the gateway writes lives on emptyDirs
    for path in (env["GATEWAY_DATA_DIR"], str(Path(env["GATEWAY_LOCK_FILE"]).parent), "/tmp"):
        assert "emptyDir" in volumes[mounts[path]["name"]], path
    service = one(manifests, "Service", "llm-gateway")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 2906


@needs_kubectl
def test_the_configmap_is_a_valid_config_with_redis_for_shared_state(manifests: list[dict[str, Any]],
                                                                     tmp_path: Path) -> None:
    config = config_data(manifests)["config.yaml"]
    assert yaml.safe_load(config)["storage"]["runtime"] == {"type": "redis", "addr": "redis:6379"}
    (tmp_path / "config.yaml").write_text(config)
    (tmp_path / ".env").write_text(secret_data(manifests)[".env"])
    done = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(tmp_path / "config.yaml"),
                           "--env-file", str(tmp_path / ".env")], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0 and done.stdout.startswith("ok:"), done.stdout + done.stderr


class KubeletVolume:
    """A ConfigMap or Secret volume as the kubelet lays it out, with its atomic ``..data`` swap."""

    def __init__(self, root: Path, files: dict[str, str]):
        self.root = root
        root.mkdir(mode=0o755)
        self.generation = 0
        self.update(files)
        for name in files:
            (root / name).symlink_to(Path("..data") / name)

    def update(self, files: dict[str, str]) -> None:
        self.generation += 1
        old = os.readlink(self.root / "..data") if (self.root / "..data").is_symlink() else None
        fresh = self.root / f"..2026_12_07_00_00_0{self.generation}.000000000"
        fresh.mkdir(mode=0o755)
        for name, text in files.items():
            (fresh / name).write_text(text)
            (fresh / name).chmod(0o644)
        (self.root / "..data_tmp").symlink_to(fresh.name)
        os.replace(self.root / "..data_tmp", self.root / "..data")
        if old is not None:
            shutil.rmtree(self.root / old)


def pod_arguments(manifests: list[dict[str, Any]], workdir: Path, config: str, port: int) -> tuple[list[str],
                                                                                                   KubeletVolume]:
    """``podman run`` arguments for the Deployment's pod spec (see the module docstring)."""
    pod = one(manifests, "Deployment", "llm-gateway")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    security = pod["securityContext"]
    args = ["--network", "host", "--read-only", "--read-only-tmpfs=false", "--cap-drop", "all",
            "--security-opt", "no-new-privileges", "--user", f"{security['runAsUser']}:{security['runAsGroup']}"]
    for item in container["env"]:
        value = str(port) if item["name"] == "GATEWAY_PORT" else item["value"]
        args += ["--env", f"{item['name']}={value}"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_volume: KubeletVolume | None = None
    for mount in container["volumeMounts"]:
        volume, path = volumes[mount["name"]], mount["mountPath"]
        if "emptyDir" in volume and volume["emptyDir"].get("medium") == "Memory":
            args += ["--tmpfs", f"{path}:rw,mode=1777"]
        elif "emptyDir" in volume:  # a directory of the node's, writable by the pod (fsGroup), as the kubelet makes it
            node_dir = workdir / f"emptydir-{mount['name']}"
            node_dir.mkdir()
            node_dir.chmod(0o1777)
            args += ["-v", f"{node_dir}:{path}:rw"]
        elif "configMap" in volume:
            config_volume = KubeletVolume(workdir / mount["name"], {"config.yaml": config})
            args += ["-v", f"{config_volume.root}:{path}:ro"]
        else:
            args += ["-v", f"{KubeletVolume(workdir / mount['name'], secret_data(manifests)).root}:{path}:ro"]
    assert config_volume is not None
    return args, config_volume


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def model_ids(base_url: str) -> set[str]:
    answer = httpx.get(base_url + "/v1/models", headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=5)
    assert answer.status_code == 200, answer.text
    return {m["id"] for m in answer.json()["data"]}


@needs_kubectl
def test_the_pod_runs_read_only_and_reloads_its_configmap(manifests: list[dict[str, Any]], gateway_image: str,
                                                          runtime_args: list[str], redis: RedisServer,
                                                          tmp_path: Path) -> None:
    port = free_port()
    config = config_data(manifests)["config.yaml"].replace("redis:6379", redis.addr)
    args, config_volume = pod_arguments(manifests, tmp_path, config, port)
    name = f"llm-gateway-kube-{uuid.uuid4().hex[:10]}"
    base_url = f"http://127.0.0.1:{port}"
    _podman("run", "-d", "--name", name, *runtime_args, *args, gateway_image, timeout=60, check=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base_url + "/health/readiness", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            pytest.fail(f"the pod never became ready:\n{_logs(name)}")
        assert httpx.get(base_url + "/health/liveliness", timeout=5).text == "I'm alive!"
        assert "fast" in model_ids(base_url)  # the master key came from the Secret's .env
        config_volume.update({"config.yaml": config.replace("fast: openai:gpt-4o-mini",
                                                            "fast: openai:gpt-4o-mini\n  swapped: openai:gpt-4o")})
        deadline = time.monotonic() + 30
        while "swapped" not in model_ids(base_url) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert "swapped" in model_ids(base_url), _logs(name)
        state = _podman("inspect", "--format", "{{.State.Running}} {{.RestartCount}}", name, timeout=30)
        assert state.stdout.split() == ["true", "0"]
        assert "read-only file system" not in _logs(name).lower()
    finally:
        _remove(name)
