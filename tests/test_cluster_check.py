"""`fcrm cluster check`: every shipped config fits every shipped cluster file; unplaceable requests
are errors naming the stage, the request and the closest node type; node types are read the way
Ray reads them."""

from pathlib import Path

import pytest
import yaml

from fcrm_ray import cluster_check as cc
from fcrm_ray.cli import main as cli_main
from fcrm_ray.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CLUSTERS = sorted((ROOT / "clusters").glob("*-gpu.yaml")) + [ROOT / "clusters" / "kuberay" / "raycluster.yaml"]
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml")
                 if p.parent.name in ("pipeline", "generate", "train", "eval") or p.name in ("filter.yaml", "serve.yaml"))
AWS = ROOT / "clusters" / "aws-gpu.yaml"
KUBERAY = ROOT / "clusters" / "kuberay" / "raycluster.yaml"


def test_every_shipped_config_and_cluster_is_covered():
    assert len(CLUSTERS) == 3
    names = {p.relative_to(ROOT / "configs").as_posix() for p in CONFIGS}
    assert {"pipeline/cpu.yaml", "pipeline/gpu.yaml", "filter.yaml", "serve.yaml", "generate/gpu.yaml",
            "train/qwen3-14b.yaml", "eval/bon.yaml"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
@pytest.mark.parametrize("cluster", CLUSTERS, ids=lambda p: p.name)
def test_shipped_config_fits_shipped_cluster(cluster, config):
    rep = cc.plan(str(cluster), str(config))
    assert rep.errors == []
    assert rep.placements or config.name in ("bon.yaml",) or "pairwise" in config.name or "robustness" in config.name
    types = {t.name: t for t in rep.node_types}
    for p in rep.placements:
        if p.nodes == 0:  # a driver-side request the head itself satisfies
            assert p.request.driver and types[p.node_type].head
            continue
        t = types[p.node_type]
        assert all(cc.fits(b, t) for b in p.request.bundles)
        assert 1 <= p.nodes <= t.max_workers
        # work that asks for no GPU never lands on a GPU node type when a CPU type exists
        if not any(b.get("GPU") for b in p.request.bundles):
            assert not t.resources.get("GPU"), (p.request.what, t.name)


@pytest.mark.parametrize("cluster", CLUSTERS, ids=lambda p: p.name)
def test_gpu_pipeline_plan(cluster):
    rep = cc.plan(str(cluster), str(ROOT / "configs/pipeline/gpu.yaml"))
    by = {(p.request.stage, p.request.what.split(":")[0]): p for p in rep.placements}
    train = by[("train", "Ray Train workers (scaling.num_workers)")]
    assert train.node_type.replace("-", "_") == "gpu_train"
    assert train.per_replica_nodes == 1  # ZeRO-3's 8 workers x {CPU 8, GPU 1} on one 8-GPU node
    qwen32 = by[("generate", "generators[3] Qwen3-32B")]
    assert qwen32.node_type.replace("-", "_") == "gpu_train"  # pinned to H100
    assert len(qwen32.request.bundles) == 2  # TP=2
    bon = by[("bon", "in-process scoring (eval bon)")]
    assert bon.request.driver and "--entrypoint-num-gpus" in bon.note
    nodes = rep.nodes_by_stage()
    # 2+4+2+1+2+2+2 single-GPU engines = 15 GPUs on 4-GPU gen nodes
    assert nodes["generate"][qwen32.node_type.replace("train", "gen")] == 4


def test_unplaceable_request_names_stage_request_and_closest_type(capsys):
    rep = cc.plan(str(AWS), str(ROOT / "configs/filter.yaml"), ["actors.num_gpus_per_actor=16"])
    (err,) = rep.errors
    assert err.startswith("stage `filter`: scoring actor pool")
    assert "GPU=16" in err and "Closest: `gpu_train`" in err and "short of {GPU=8}" in err
    rc = cli_main(["cluster", "check", str(AWS), str(ROOT / "configs/filter.yaml"), "actors.num_gpus_per_actor=16"])
    assert rc == 1
    assert "ERROR stage `filter`" in capsys.readouterr().out


def test_accelerator_type_no_node_offers_is_an_error():
    rep = cc.plan(str(AWS), str(ROOT / "configs/generate/gpu.yaml"), ["generators.3.vllm.accelerator_type=B200"])
    (err,) = rep.errors
    assert "stage `generate`" in err and "Qwen3-32B" in err and "accelerator_type:B200" in err


def test_unplaceable_stage_inside_a_pipeline_is_named(tmp_path):
    pipe = yaml.safe_load((ROOT / "configs/pipeline/gpu.yaml").read_text())
    pipe["train"]["overrides"] = ["scaling.cpus_per_worker=300"]
    p = tmp_path / "pipe.yaml"
    p.write_text(yaml.safe_dump(pipe))
    rep = cc.plan(str(AWS), str(p))
    assert len(rep.errors) == 1 and rep.errors[0].startswith("stage `train`: Ray Train workers")
    assert "CPU=300" in rep.errors[0]
    pipe["filter"]["overrides"] = ["actors.num_actors=0"]
    p.write_text(yaml.safe_dump(pipe))
    with pytest.raises(ConfigError, match="stage `filter` .*actors.num_actors"):
        cc.plan(str(AWS), str(p))


def test_concurrency_beyond_max_workers_spills_then_errors():
    over = ["actors.num_gpus_per_actor=1", "model.device=cuda"]
    # 40 GPUs: more than 8 gen nodes x 4 or 4 train nodes x 8 hold, less than both together
    rep = cc.plan(str(KUBERAY), str(ROOT / "configs/filter.yaml"), ["actors.num_actors=40", *over])
    assert rep.errors == []
    (pool,) = [p for p in rep.placements if "actor pool" in p.request.what]
    assert "spread over 4 x gpu-train + 2 x gpu-gen" in pool.note
    assert rep.nodes_by_stage()["filter"] == {"cpu-data": 1, "gpu-train": 4, "gpu-gen": 2}
    rep = cc.plan(str(KUBERAY), str(ROOT / "configs/filter.yaml"), ["actors.num_actors=65", *over])
    (err,) = rep.errors
    assert "stage `filter`" in err and "max_workers of `gpu-train` is 4" in err
    assert "hold 64 of 65 replicas" in err and "pend forever" in err


def test_kuberay_node_types_match_rays_own_reading():
    from ray.autoscaler._private.kuberay.autoscaling_config import _get_ray_resources_from_group_spec

    doc = next(d for d in yaml.safe_load_all(KUBERAY.read_text()) if d and d["kind"] == "RayCluster")
    ours = {t.name: t.resources for t in cc.node_types(KUBERAY)}
    groups = [("head", doc["spec"]["headGroupSpec"], True)] + [
        (g["groupName"], g, False) for g in doc["spec"]["workerGroupSpecs"]]
    for name, spec, is_head in groups:
        rays = {k: float(v) for k, v in _get_ray_resources_from_group_spec(spec, is_head).items() if v}
        assert ours[name] == rays, name
    assert ours["gpu-train"]["accelerator_type:H100"] == 1


def test_launcher_node_types_from_instance_table_and_explicit_resources(tmp_path):
    types = {t.name: t for t in cc.node_types(AWS)}
    assert types["head"].head and "CPU" not in types["head"].resources  # explicit CPU: 0 wins
    assert types["cpu_data"].resources["CPU"] == 32 and "GPU" not in types["cpu_data"].resources
    assert types["gpu_train"].resources["GPU"] == 8 and types["gpu_train"].max_workers == 4
    cfg = yaml.safe_load(AWS.read_text())
    cfg["available_node_types"]["cpu_data"]["node_config"]["InstanceType"] = "x9z.mega"
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="node type `cpu_data`: instance type 'x9z.mega'"):
        cc.node_types(p)
    cfg["available_node_types"]["cpu_data"]["resources"] = {"CPU": 4, "GPU": 0}
    p.write_text(yaml.safe_dump(cfg))
    assert {t.name: t for t in cc.node_types(p)}["cpu_data"].resources == {"CPU": 4}


def test_bad_inputs_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="CLUSTER_YAML: no such file"):
        cc.plan(str(tmp_path / "nope.yaml"), str(ROOT / "configs/filter.yaml"))
    notcluster = tmp_path / "x.yaml"
    notcluster.write_text("a: 1\n")
    with pytest.raises(ConfigError, match="neither a Ray cluster-launcher YAML"):
        cc.node_types(notcluster)
    with pytest.raises(ConfigError, match="cannot tell which stage"):
        cc.plan(str(AWS), str(notcluster))
    with pytest.raises(ConfigError, match="scoring.num_actorz"):
        cc.plan(str(AWS), str(ROOT / "configs/filter.yaml"), ["scoring.num_actorz=3"])
    with pytest.raises(ConfigError, match="actors.batch_size"):
        cc.plan(str(AWS), str(ROOT / "configs/filter.yaml"), ["actors.batch_size=0"])
    assert cli_main(["cluster", "check", str(tmp_path / "nope.yaml"), str(ROOT / "configs/filter.yaml")]) == 2
    assert "CLUSTER_YAML: no such file" in capsys.readouterr().err


def test_check_needs_no_ray():
    import subprocess
    import sys

    code = ("import sys; from fcrm_ray.cluster_check import plan; "
            f"r = plan({str(AWS)!r}, {str(ROOT / 'configs/pipeline/gpu.yaml')!r}); "
            "assert not r.errors; print(sorted(m for m in ('ray', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
