"""The cluster files are valid: the `ray up` config passes Ray's own schema and
defaults, the RayJob has the KubeRay fields a GPU autoscaling job needs, the runtime env
is working-dir only and accepted by Ray, and the image installs the pinned stack."""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

import pytest
import yaml

from pipelines.cli import build_parser

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


def load(name: str):
    return yaml.safe_load((CLUSTER / name).read_text())


def image_of_dockerfile_comment() -> str:
    match = re.search(r"docker build -f cluster/Dockerfile -t (\S+) \.", (CLUSTER / "Dockerfile").read_text())
    assert match, "Dockerfile should document its build command and tag"
    return match.group(1)


def test_ray_up_config_passes_rays_schema() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load("cluster.yaml")
    # what `ray up` does before launching anything: fill defaults, then validate
    validate_config(prepare_config(copy.deepcopy(config)))
    bad = copy.deepcopy(config)
    bad["available_node_types"]["head"]["gpus"] = 1
    with pytest.raises(Exception, match="Additional properties are not allowed"):
        validate_config(prepare_config(bad))


def test_ray_up_config_has_cpu_head_and_autoscaling_gpu_workers() -> None:
    config = load("cluster.yaml")
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    gpu = [t for t in workers if t["resources"].get("GPU", 0) >= 1]
    assert gpu, "a GPU worker group is required"
    assert all(t["min_workers"] < t["max_workers"] for t in gpu), "GPU workers must autoscale"
    assert config["docker"]["image"] == image_of_dockerfile_comment()
    start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start
    assert "RAY_AUTH_MODE=token" in start
    assert any("/mnt/shared" in option for option in config["docker"]["run_options"])


def test_rayjob_manifest_has_kuberay_fields() -> None:
    job = load("rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    yaml.safe_load(spec["runtimeEnvYAML"])
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head["resources"]["limits"]
    (group,) = cluster["workerGroupSpecs"]
    worker = group["template"]["spec"]["containers"][0]
    assert int(worker["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert group["minReplicas"] < group["maxReplicas"]
    for container in (head, worker):
        assert container["image"] == image_of_dockerfile_comment()
        assert {"name": "shared", "mountPath": "/mnt/shared"} in container["volumeMounts"]
        assert {e["name"] for e in container["env"]} >= {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}


def test_entrypoint_parses_with_the_real_cli() -> None:
    words = shlex.split(load("rayjob.yaml")["spec"]["entrypoint"])
    assert words[0] == "mmrphys"
    parser, module = build_parser(words[1:])
    args = parser.parse_args(words[1:])
    assert module is not None and args.command == words[1]


def test_runtime_env_is_working_dir_only_and_accepted_by_ray() -> None:
    from ray.runtime_env import RuntimeEnv

    env = load("runtime_env.yaml")
    assert set(env) == {"working_dir", "excludes"}, "pip/conda/image sections reinstall per job"
    RuntimeEnv(**env)
    for heavy in (".venv", ".git", "*.db", "mlruns"):
        assert heavy in env["excludes"]


def test_dockerfile_installs_the_pinned_stack() -> None:
    text = (CLUSTER / "Dockerfile").read_text()
    assert text.startswith("#") and re.search(r"^FROM python:3\.11", text, re.M)
    pyproject = (CLUSTER.parent / "pyproject.toml").read_text()
    torch_pin = re.search(r'"(torch==[^"]+)"', pyproject).group(1)
    assert f'"{torch_pin}"' in text
    for package in ("mmrphys", "pipelines", "tune_spaces"):
        assert f"COPY {package} {package}" in text


def test_storage_layout_is_documented() -> None:
    text = (CLUSTER / "storage.md").read_text()
    for item in ("shards/", "ray_results/", "MLFLOW_TRACKING_URI", "mlflow.db"):
        assert item in text
