"""Cluster files validate: launcher YAMLs against Ray's own schema, KubeRay manifests structurally,
and every job they submit points at an entrypoint and config that exist in the repo."""

import copy
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = sorted((ROOT / "clusters").glob("*-gpu.yaml"))
KUBERAY = sorted((ROOT / "clusters" / "kuberay").glob("*.yaml"))


def _validate_launcher(cfg: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = prepare_config(copy.deepcopy(cfg))
    validate_config(cfg)
    return cfg


def test_launcher_files_exist():
    assert {p.name for p in LAUNCHER} >= {"aws-gpu.yaml", "gcp-gpu.yaml"}


@pytest.mark.parametrize("path", LAUNCHER, ids=lambda p: p.name)
def test_launcher_yaml_validates_with_ray_schema(path):
    cfg = _validate_launcher(yaml.safe_load(path.read_text()))
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    workers = {k: v for k, v in types.items() if k != cfg["head_node_type"]}
    gpu_types = [k for k in workers if k.startswith("gpu")]
    assert len(gpu_types) >= 2, "need generation and training GPU worker types"
    for name in workers:
        assert workers[name]["min_workers"] <= workers[name]["max_workers"]
    assert cfg["idle_timeout_minutes"] > 0
    assert any("[gpu]" in c for c in cfg["setup_commands"]), "workers must install the project's GPU extra"


@pytest.mark.parametrize("path", LAUNCHER, ids=lambda p: p.name)
def test_launcher_schema_rejects_broken_copy(path):
    cfg = yaml.safe_load(path.read_text())
    cfg["available_node_types"]["head"]["not_a_field"] = 1
    with pytest.raises(jsonschema.ValidationError):
        _validate_launcher(cfg)


def _docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _check_pod_template(tpl, where):
    containers = tpl["spec"]["containers"]
    assert containers, f"{where}: no containers"
    for c in containers:
        assert c.get("image"), f"{where}: container without image"
        res = c.get("resources", {})
        assert res.get("limits"), f"{where}: container without resource limits"


def test_kuberay_raycluster_structure():
    (cluster,) = [d for p in KUBERAY for d in _docs(p) if d["kind"] == "RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    _check_pod_template(spec["headGroupSpec"]["template"], "head")
    gpu_groups = 0
    for g in spec["workerGroupSpecs"]:
        assert g["groupName"]
        assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        _check_pod_template(g["template"], g["groupName"])
        limits = g["template"]["spec"]["containers"][0]["resources"]["limits"]
        gpu_groups += "nvidia.com/gpu" in limits
    assert gpu_groups >= 2


def test_kuberay_jobs_point_at_real_entrypoints():
    cluster_name = [d for p in KUBERAY for d in _docs(p) if d["kind"] == "RayCluster"][0]["metadata"]["name"]
    jobs = [d for p in KUBERAY for d in _docs(p) if d["kind"] == "RayJob"]
    assert {j["metadata"]["name"] for j in jobs} >= {"fcrm-generate", "fcrm-train", "fcrm-eval", "fcrm-filter"}
    for j in jobs:
        spec = j["spec"]
        assert spec["clusterSelector"]["ray.io/cluster"] == cluster_name
        argv = shlex.split(spec["entrypoint"])
        assert argv[0] == "python"
        assert (ROOT / argv[1]).is_file(), f"{j['metadata']['name']}: missing {argv[1]}"
        cfg = argv[argv.index("--config") + 1]
        assert (ROOT / cfg).is_file(), f"{j['metadata']['name']}: missing {cfg}"
        yaml.safe_load(spec["runtimeEnvYAML"])


def test_kuberay_declared_accelerators_are_pinned_by_node_selector():
    """A worker group that declares `accelerator_type:X` to the autoscaler (so it can start from
    zero for requests pinned to X) must also land only on X nodes."""
    import json

    (cluster,) = [d for p in KUBERAY for d in _docs(p) if d["kind"] == "RayCluster"]
    declared = 0
    for g in cluster["spec"]["workerGroupSpecs"]:
        custom = (g.get("rayStartParams") or {}).get("resources")
        if not custom:
            continue
        res = json.loads(custom.strip("'\"").replace('\\"', '"'))
        for key in (k for k in res if k.startswith("accelerator_type:")):
            declared += 1
            product = g["template"]["spec"].get("nodeSelector", {}).get("nvidia.com/gpu.product", "")
            assert key.split(":", 1)[1].split("-")[0] in product, (g["groupName"], key, product)
    assert declared >= 2
