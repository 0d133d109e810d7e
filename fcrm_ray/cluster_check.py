"""`fcrm cluster check CLUSTER_YAML CONFIG`: will every stage's Ray resource requests fit a node
type of the cluster, and how many nodes of which type will each stage ask for?

    fcrm cluster check clusters/aws-gpu.yaml configs/pipeline/gpu.yaml
    fcrm cluster check clusters/kuberay/raycluster.yaml configs/filter.yaml actors.num_actors=16

A job whose request matches no node type pends forever on an autoscaling cluster (Ray only warns);
this check finds that before anything is launched. It needs no Ray cluster and no cloud account:

1. node types (`node_types`): a Ray cluster-launcher YAML (`available_node_types`) or a KubeRay
   RayCluster manifest (head + worker groups). Launcher node types name cloud instance types; the
   CPU/GPU/memory of those come from `INSTANCE_TYPES` (published figures, see docs/capacity.md)
   and explicit `resources:` in the YAML win, as in Ray's own autofill. KubeRay groups follow
   Ray's KubeRay rules (ray/autoscaler/_private/kuberay/autoscaling_config.py): rayStartParams
   num-cpus/num-gpus/memory/resources, else the Ray container's limits (then requests).
2. requests (`stage_requests`): each stage's typed config (the same dataclasses and overrides the
   stage itself loads) turned into the Ray requests its code makes: Ray Data actor pools
   (filter/generate/eval `map_batches(compute=ActorPoolStrategy)`), Ray Data tasks (1 CPU each),
   vLLM engines (`ray.data.llm`: TP*PP bundles of {GPU: 1, CPU: 1} in a PACK placement group per
   replica, plus `accelerator_type:X`), Ray Train workers (one PACK placement group of
   `num_workers` x `resources_per_worker`), Serve replicas (`ray_actor_options` x max_replicas),
   and work done inside the job's driver process (eval bon, local eval backends).
3. placement (`plan`): every bundle must fit one node type; the node count at the configured
   concurrency is first-fit-decreasing bin packing onto the chosen type, and must stay within
   the type's max_workers. A request that fits no node type is an error naming the stage, the
   request and the closest node type with what it lacks.

What it does not know: whether a model's weights fit a GPU's memory (Ray's `GPU` resource is a
count), and Ray Data's elastic task parallelism beyond one node (tasks use what is free).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from fcrm_ray.config import ConfigError

GiB = 1024**3
# Ray reserves this share of a node's RAM for the object store and offers the rest as the
# `memory` resource (ray_constants.DEFAULT_OBJECT_STORE_MEMORY_PROPORTION; the AWS autofill in
# ray/autoscaler/_private/aws/node_provider.py does the same).
OBJECT_STORE_PROPORTION = 0.3

# Instance types our launcher files use: vCPUs, GPUs (count, Ray accelerator_type), RAM in GiB.
# Figures as published by the vendors (AWS: aws.amazon.com/ec2/instance-types/{m6i,g6e,p5}/;
# GCP: cloud.google.com/compute/docs/general-purpose-machines#n2_machines and
# cloud.google.com/compute/docs/accelerator-optimized-machines). Add a row to use another type.
INSTANCE_TYPES: dict[str, dict[str, Any]] = {
    # AWS
    "m6i.4xlarge": {"CPU": 16, "GPU": 0, "memory_gib": 64},
    "m6i.8xlarge": {"CPU": 32, "GPU": 0, "memory_gib": 128},
    "g6e.12xlarge": {"CPU": 48, "GPU": 4, "accelerator": "L40S", "memory_gib": 384},
    "p5.48xlarge": {"CPU": 192, "GPU": 8, "accelerator": "H100", "memory_gib": 2048},
    # GCP (GB as published, read as GiB: within 7%, and only ever compared to requests)
    "n2-standard-16": {"CPU": 16, "GPU": 0, "memory_gib": 64},
    "n2-standard-32": {"CPU": 32, "GPU": 0, "memory_gib": 128},
    "g2-standard-48": {"CPU": 48, "GPU": 4, "accelerator": "L4", "memory_gib": 192},
    "a2-ultragpu-8g": {"CPU": 96, "GPU": 8, "accelerator": "A100-80G", "memory_gib": 1360},
    "a3-highgpu-8g": {"CPU": 208, "GPU": 8, "accelerator": "H100", "memory_gib": 1872},
}

STAGE_KINDS = ("bench", "generate", "train", "pairwise", "bon", "robustness", "serve", "filter", "report")


# --- node types -----------------------------------------------------------------------------------

@dataclass
class NodeType:
    name: str
    resources: dict[str, float]  # Ray resources of one node: CPU, GPU, memory (bytes), custom
    max_workers: int
    head: bool = False

    def describe(self) -> str:
        return _fmt(self.resources)


def _fmt(res: dict[str, float]) -> str:
    parts = []
    for k in sorted(res, key=lambda k: (k not in ("CPU", "GPU", "memory"), k)):
        v = res[k]
        if k == "memory":
            parts.append(f"memory={v / GiB:.0f}GiB")
        else:
            parts.append(f"{k}={v:g}")
    return "{" + ", ".join(parts) + "}"


def _k8s_quantity(q: Any) -> float:
    """Kubernetes quantity -> number (`500m` -> 0.5, `64Gi` -> bytes, `8` -> 8)."""
    s = str(q).strip()
    m = re.fullmatch(r"([0-9.]+)\s*(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?", s)
    if not m:
        raise ConfigError(f"not a Kubernetes quantity: {q!r}")
    mult = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}[m.group(2)]
    return float(m.group(1)) * mult


def _launcher_node_types(cfg: dict, where: str) -> list[NodeType]:
    types = cfg.get("available_node_types")
    if not isinstance(types, dict) or not types:
        raise ConfigError(f"{where}: `available_node_types` is missing or empty")
    head = cfg.get("head_node_type")
    out = []
    for name, t in types.items():
        nc = t.get("node_config") or {}
        itype = nc.get("InstanceType") or nc.get("machineType") or ""
        res: dict[str, float] = {}
        if itype:
            spec = INSTANCE_TYPES.get(itype)
            if spec is None and not {"CPU", "GPU"} <= set(t.get("resources") or {}):
                raise ConfigError(f"{where}: node type `{name}`: instance type {itype!r} is not in "
                                  f"fcrm_ray.cluster_check.INSTANCE_TYPES; add it there or give the node type "
                                  f"explicit `resources: {{CPU: .., GPU: .., memory: ..}}`")
            if spec:
                res = {"CPU": spec["CPU"], "GPU": spec["GPU"],
                       "memory": spec["memory_gib"] * GiB * (1 - OBJECT_STORE_PROPORTION)}
                if spec.get("accelerator"):
                    res[f"accelerator_type:{spec['accelerator']}"] = 1
        res.update({k: float(v) for k, v in (t.get("resources") or {}).items()})  # explicit wins, as in Ray
        res = {k: v for k, v in res.items() if v}
        is_head = name == head
        out.append(NodeType(name, res, 1 if is_head else int(t.get("max_workers", cfg.get("max_workers", 0))),
                            head=is_head))
    return out


def _kuberay_group(group: dict, is_head: bool, where: str) -> NodeType:
    name = "head" if is_head else group.get("groupName", "?")
    params = {k: str(v) for k, v in (group.get("rayStartParams") or {}).items()}
    try:
        container = group["template"]["spec"]["containers"][0]
    except (KeyError, IndexError, TypeError):
        raise ConfigError(f"{where}: group `{name}` has no template.spec.containers[0]") from None
    k8s = container.get("resources") or {}
    pools = [k8s.get("limits") or {}, k8s.get("requests") or {}]

    def from_k8s(pred) -> float | None:
        for pool in pools:
            for k, v in pool.items():
                if pred(k):
                    return _k8s_quantity(v)
        return None

    res: dict[str, float] = {}
    cpu = params.get("num-cpus")
    res["CPU"] = float(cpu) if cpu is not None else math.ceil(from_k8s(lambda k: k == "cpu") or 0)
    gpu = params.get("num-gpus")
    res["GPU"] = float(gpu) if gpu is not None else (from_k8s(lambda k: k.endswith("gpu")) or 0)
    mem = params.get("memory")
    res["memory"] = float(mem) if mem is not None else (from_k8s(lambda k: k == "memory") or 0)
    custom = params.get("resources")
    if custom:  # rayStartParams.resources: '"{\"accelerator_type:H100\": 1}"' (a quoted JSON string)
        try:
            res.update({k: float(v) for k, v in json.loads(custom.strip().strip("'\"").replace('\\"', '"')).items()})
        except (ValueError, AttributeError):
            raise ConfigError(f"{where}: group `{name}`: rayStartParams.resources is not a JSON object: {custom!r}") from None
    res = {k: v for k, v in res.items() if v}
    return NodeType(name, res, 1 if is_head else int(group.get("maxReplicas", group.get("replicas", 0))), head=is_head)


def node_types(path: str | Path) -> list[NodeType]:
    """The node types of a launcher YAML or of the RayCluster in a KubeRay manifest."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"CLUSTER_YAML: no such file: {path}")
    docs = [d for d in yaml.safe_load_all(p.read_text()) if isinstance(d, dict)]
    for d in docs:
        if d.get("kind") == "RayCluster":
            spec = d.get("spec") or {}
            if "headGroupSpec" not in spec:
                raise ConfigError(f"{path}: RayCluster without spec.headGroupSpec")
            return [_kuberay_group(spec["headGroupSpec"], True, str(p))] + [
                _kuberay_group(g, False, str(p)) for g in spec.get("workerGroupSpecs") or []]
        if "available_node_types" in d:
            return _launcher_node_types(d, str(p))
    raise ConfigError(f"{path}: neither a Ray cluster-launcher YAML (available_node_types) nor a KubeRay RayCluster")


# --- requests -------------------------------------------------------------------------------------

@dataclass
class Request:
    """One kind of Ray work of a stage: `replicas` x (a group of `bundles` that Ray places together:
    one bundle for an actor or task, several for a PACK placement group)."""

    stage: str
    what: str
    bundles: list[dict[str, float]]
    replicas: int = 1
    elastic: bool = False  # Ray Data tasks: as many as free CPUs allow, at least one
    driver: bool = False  # runs in the job's driver process: placed by the job's entrypoint resources

    def bundle_text(self) -> str:
        b = self.bundles
        return _fmt(b[0]) if len(b) == 1 else f"{len(b)} x {_fmt(b[0])} (PACK placement group)"


def _res(cpu: float = 0, gpu: float = 0, accelerator: str = "") -> dict[str, float]:
    r = {"CPU": float(cpu), "GPU": float(gpu)}
    if accelerator:
        r[f"accelerator_type:{accelerator}"] = 0.001  # what Ray adds for accelerator_type=X
    return {k: v for k, v in r.items() if v}


def _typed(schema, path: str, overrides: Sequence[str], sections: Sequence[str]):
    """The stage's own config dataclass with the stage's overrides, validating only the sections
    that decide resources (a path that exists only on the cluster is not this check's business)."""
    from fcrm_ray.config import load_config

    return load_config(schema, path or None, overrides, sections=sections)


def _data_tasks(stage: str, what: str = "Ray Data read/extract tasks") -> Request:
    # Ray Data tasks default to num_cpus=1 and run as many at once as CPUs are free
    return Request(stage, what, [_res(cpu=1)], elastic=True)


def _driver(stage: str, what: str, device: str) -> Request | None:
    return Request(stage, what, [_res(gpu=1)], driver=True) if device.startswith("cuda") else None


def stage_requests(kind: str, path: str = "", overrides: Sequence[str] = (), name: str = "") -> list[Request]:
    """The Ray requests of one stage, mirroring what its code asks Ray for."""
    name = name or kind
    reqs: list[Request | None] = []
    if kind == "filter":
        from fcrm_ray.filter.config import FilterConfig

        cfg = _typed(FilterConfig, path, overrides, ["scoring", "actors"])
        s, pool = cfg.scoring, cfg.actors
        reqs.append(_data_tasks(name))
        if s.backend == "serve":  # fcrm_ray/filter/run.py: run_scoring
            reqs.append(Request(name, "scoring clients (serve backend)", [_res(cpu=0.1)], s.serve_concurrency))
        else:
            reqs.append(Request(name, "scoring actor pool (actors.num_actors)",
                                [_res(pool.num_cpus_per_actor, pool.num_gpus_per_actor)], pool.num_actors))
    elif kind == "generate":
        from fcrm_ray.generate.config import GenerateConfig

        cfg = _typed(GenerateConfig, path, overrides, ["generators"])
        reqs.append(_data_tasks(name, "Ray Data read/judge/dedup tasks"))
        for i, g in enumerate(cfg.generators):
            if not g.enabled:
                continue
            tag = f"generators[{i}] {g.tag()}"
            if g.backend == "vllm":  # ray.data.llm vLLMEngineStage: TP*PP bundles per engine replica
                v = g.vllm
                n = v.tensor_parallel_size * v.pipeline_parallel_size
                reqs.append(Request(name, f"{tag}: vLLM engine replicas (vllm.replicas)",
                                    [_res(1, 1, v.accelerator_type)] * n, v.replicas))
            elif g.backend == "hf" or g.compute == "actors":
                reqs.append(Request(name, f"{tag}: actor pool (max_actors)", [_res(g.num_cpus, g.num_gpus)],
                                    g.max_actors))
            else:
                reqs.append(Request(name, f"{tag}: mutation tasks", [_res(g.num_cpus)], elastic=True))
    elif kind == "train":
        from fcrm_ray.train.config import TrainConfig

        sc = _typed(TrainConfig, path, overrides, ["scaling"]).scaling
        # run.run_training: ScalingConfig(num_workers, resources_per_worker); Ray Train v2 puts
        # the workers in one PACK placement group and its controller takes no CPU
        bundle = _res(sc.cpus_per_worker, sc.gpus_per_worker if sc.use_gpu else 0)
        reqs.append(_data_tasks(name, "Ray Data tokenisation tasks"))
        reqs.append(Request(name, "Ray Train workers (scaling.num_workers)", [bundle] * sc.num_workers, 1))
    elif kind in ("pairwise", "robustness"):
        from fcrm_ray.evaluate.config import PairwiseConfig, RobustnessConfig

        cfg = _typed(PairwiseConfig if kind == "pairwise" else RobustnessConfig, path, overrides, ["actors"])
        if cfg.backend == "ray":
            reqs.append(_data_tasks(name, "Ray Data render tasks"))
            reqs.append(Request(name, "scoring actor pool (actors.num_actors)",
                                [_res(cfg.actors.num_cpus_per_actor, cfg.actors.num_gpus_per_actor)], cfg.actors.num_actors))
        else:
            reqs.append(_driver(name, "in-process scoring (backend=local)", cfg.model.device))
        if getattr(cfg, "scorer", "rm") == "vllm_judge":
            reqs.append(_driver(name, "in-process vLLM judge", "cuda"))
    elif kind == "bon":
        from fcrm_ray.evaluate.config import BonConfig

        cfg = _typed(BonConfig, path, overrides, [])
        reqs.append(_driver(name, "in-process scoring (eval bon)", cfg.model.device))
        if cfg.pools.backend in ("hf", "vllm"):
            reqs.append(_driver(name, "in-process pool generation (--build-pools)",
                                "cuda" if cfg.pools.backend == "vllm" else cfg.pools.device))
    elif kind == "serve":
        from fcrm_ray.serve.config import ServeConfig

        cfg = _typed(ServeConfig, path, overrides, ["models", "ingress"])
        reqs.append(Request(name, "ingress replicas", [_res(cfg.ingress.num_cpus)], cfg.ingress.num_replicas))
        for model_name, m in cfg.models.items():
            o = m.ray_actor_options
            reqs.append(Request(name, f"model `{model_name}` replicas (autoscaling.max_replicas)",
                                [_res(o.num_cpus, o.num_gpus)], m.autoscaling.max_replicas))
    elif kind in ("bench", "report"):
        pass  # plain Python in the driver, no Ray resources
    else:
        raise ConfigError(f"unknown stage kind {kind!r}; expected one of {STAGE_KINDS}")
    return [r for r in reqs if r is not None]


def config_requests(path: str, overrides: Sequence[str] = (), stage: str = "") -> list[Request]:
    """Requests of a pipeline config (every stage it runs, with its overrides) or of one stage config
    (its kind from `stage`, else from its keys)."""
    from omegaconf import OmegaConf

    from fcrm_ray.config import load_yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"CONFIG: no such file: {path}")
    raw = OmegaConf.to_container(load_yaml(p)) or {}  # with its `extends:` base merged in
    kind = stage or _sniff_kind(raw, path)
    if kind != "pipeline":
        return stage_requests(kind, path, overrides)
    from fcrm_ray.pipeline import PipelineConfig

    pc = _typed(PipelineConfig, path, overrides, [])
    out = []
    for s in pc.stages:
        sc = getattr(pc, s, None)
        if sc is None:
            continue
        overrides = [*sc.pool_overrides, *sc.overrides] if s == "bon" else sc.overrides
        try:
            out += stage_requests(s, sc.config, overrides, name=s)
        except ConfigError as e:
            raise ConfigError(f"stage `{s}` ({sc.config or 'defaults'}): {e}") from None
    return out


def _sniff_kind(raw: dict, path: str) -> str:
    keys = set(raw)
    for kind, need in (("pipeline", {"stages"}), ("generate", {"generators"}), ("train", {"scaling"}),
                       ("filter", {"scoring", "policy"}), ("serve", {"models"}), ("bon", {"ns"}),
                       ("robustness", {"perturbations"}), ("pairwise", {"scorer"})):
        if need <= keys:
            return kind
    raise ConfigError(f"{path}: cannot tell which stage this config is for; pass --stage "
                      f"(one of {('pipeline',) + STAGE_KINDS})")


# --- placement ------------------------------------------------------------------------------------

def fits(bundle: dict[str, float], node: NodeType) -> bool:
    return all(node.resources.get(k, 0) >= v - 1e-9 for k, v in bundle.items() if v > 0)


def _shortfall(bundle: dict[str, float], node: NodeType) -> dict[str, float]:
    return {k: v - node.resources.get(k, 0) for k, v in bundle.items() if node.resources.get(k, 0) < v - 1e-9}


def closest(bundle: dict[str, float], types: list[NodeType]) -> tuple[NodeType, dict[str, float]]:
    """The node type that lacks the least (relative shortfall summed over resources)."""
    def score(t):
        return sum(min(1.0, d / bundle[k]) for k, d in _shortfall(bundle, t).items())
    best = min(types, key=lambda t: (score(t), t.resources.get("GPU", 0)))
    return best, _shortfall(bundle, best)


def pack(bundles: list[dict[str, float]], node: NodeType) -> int:
    """Nodes of this type that first-fit-decreasing packing needs for these bundles."""
    free: list[dict[str, float]] = []
    for b in sorted(bundles, key=lambda b: (b.get("GPU", 0), b.get("CPU", 0)), reverse=True):
        for f in free:
            if all(f.get(k, 0) >= v - 1e-9 for k, v in b.items()):
                break
        else:
            free.append(dict(node.resources))
            f = free[-1]
        for k, v in b.items():
            f[k] = f.get(k, 0) - v
    return len(free)


@dataclass
class Placement:
    request: Request
    node_type: str = ""
    nodes: int = 0  # nodes of node_type at the configured concurrency
    per_replica_nodes: int = 0  # nodes one replica (placement group) spans
    error: str = ""
    note: str = ""
    spill: dict[str, int] = field(default_factory=dict)  # nodes per type when one type cannot hold it


@dataclass
class Report:
    cluster: str
    config: str
    node_types: list[NodeType]
    placements: list[Placement] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [p.error for p in self.placements if p.error]

    def nodes_by_stage(self) -> dict[str, dict[str, int]]:
        """Nodes per type that each stage asks for when all its requests run at once (a stage's
        actor pools and engines run concurrently, so their bundles share nodes)."""
        bundles: dict[str, dict[str, list]] = {}
        spilled: dict[str, dict[str, int]] = {}
        for p in self.placements:
            for t, n in p.spill.items():
                spilled.setdefault(p.request.stage, {})[t] = spilled.get(p.request.stage, {}).get(t, 0) + n
            if p.node_type and not p.request.driver and not p.spill:
                r = p.request
                bundles.setdefault(r.stage, {}).setdefault(p.node_type, []).extend(r.bundles * r.replicas)
        types = {t.name: t for t in self.node_types}
        out = {s: {t: pack(b, types[t]) for t, b in per.items()} for s, per in bundles.items()}
        for s, per in spilled.items():
            for t, n in per.items():
                out.setdefault(s, {})[t] = out.get(s, {}).get(t, 0) + n
        return out


def place(req: Request, types: list[NodeType]) -> Placement:
    workers = [t for t in types if not t.head]
    head = next((t for t in types if t.head), None)
    if req.driver and head is not None and fits(req.bundles[0], head):
        return Placement(req, head.name, 0, 1, note="runs in the job's driver process, on the head")
    cands = [t for t in workers if all(fits(b, t) for b in req.bundles)]
    if not cands:
        worst = max(req.bundles, key=lambda b: len(_shortfall(b, closest(b, workers or types)[0])))
        near, short = closest(worst, workers or types)
        return Placement(req, error=(
            f"stage `{req.stage}`: {req.what} requests {_fmt(worst)} per {'bundle' if len(req.bundles) > 1 else 'actor'}"
            f"{' (job driver)' if req.driver else ''}; no node type offers it. Closest: `{near.name}` "
            f"{near.describe()}, short of {_fmt(short)}"))
    wants_gpu = any(b.get("GPU", 0) for b in req.bundles)

    def rank(t: NodeType):
        # Ray's autoscaler keeps CPU-only work off GPU nodes when a CPU type fits; then the type
        # that holds a whole replica on one node, then the fewest nodes, then the smallest node
        return (bool(t.resources.get("GPU")) and not wants_gpu, pack(req.bundles, t), pack(req.bundles * req.replicas, t),
                t.resources.get("GPU", 0), t.resources.get("CPU", 0))
    best = min(cands, key=lambda t: (pack(req.bundles * req.replicas, t) > t.max_workers, *rank(t)))
    if req.driver:
        return Placement(req, best.name, 1, 1, note=(
            "runs in the job's driver process: submit with `ray job submit --entrypoint-num-gpus "
            f"{req.bundles[0].get('GPU', 0):g}` (RayJob spec.entrypointNumGpus) so the driver lands on a "
            f"`{best.name}` node (by default the driver runs on the head, which lacks it)"))
    per = pack(req.bundles, best)
    nodes = pack(req.bundles * req.replicas, best)
    pl = Placement(req, best.name, nodes, per)
    if req.elastic:
        pl.note = f"elastic: at least 1 node, up to {best.max_workers} while tasks queue"
    elif per > 1:
        pl.note = f"one replica spans {per} nodes (PACK placement group; cross-node NCCL is slower)"
    if nodes > best.max_workers:
        # the autoscaler spills what one type cannot hold onto the other types that fit
        left = req.replicas
        for t in sorted(cands, key=rank):
            cap = _replica_capacity(req.bundles, t)
            take = min(left, cap)
            if take:
                pl.spill[t.name] = pack(req.bundles * take, t)
                left -= take
        if left == 0:
            pl.note = "no one node type holds it within max_workers; spread over " + " + ".join(
                f"{n} x {t}" for t, n in pl.spill.items())
            return pl
        pl.spill = {}
        pl.error = (f"stage `{req.stage}`: {req.what} needs {nodes} `{best.name}` nodes at its configured "
                    f"concurrency ({req.replicas} x {req.bundle_text()}), but max_workers of `{best.name}` is "
                    f"{best.max_workers}, and all node types that fit hold {req.replicas - left} of {req.replicas} "
                    f"replicas at their max_workers: the rest would pend forever; lower the concurrency or raise max_workers")
    return pl


def _replica_capacity(bundles: list[dict[str, float]], t: NodeType) -> int:
    """Replicas that max_workers nodes of type t hold."""
    per = pack(bundles, t)
    if per > 1:
        return t.max_workers // per
    k = 1
    while k < 1024 and pack(bundles * (k + 1), t) == 1:
        k += 1
    return k * t.max_workers


def plan(cluster_path: str, config_path: str, overrides: Sequence[str] = (), stage: str = "") -> Report:
    types = node_types(cluster_path)
    rep = Report(str(cluster_path), str(config_path), types)
    rep.placements = [place(r, types) for r in config_requests(config_path, overrides, stage)]
    return rep


def format_report(rep: Report) -> str:
    lines = [f"cluster {rep.cluster}: node types"]
    for t in rep.node_types:
        lines.append(f"  {t.name:<12} {'head' if t.head else f'max_workers={t.max_workers}':<15} {t.describe()}")
    lines.append(f"config {rep.config}: requests")
    for p in rep.placements:
        r = p.request
        count = "elastic" if r.elastic else f"{r.replicas} x"
        if p.error and not p.node_type:
            lines.append(f"  ERROR {p.error}")
            continue
        lines.append(f"  {r.stage:<10} {r.what}: {count} {r.bundle_text()} -> {p.nodes} x {p.node_type}"
                     + (f"  [{p.note}]" if p.note else ""))
        if p.error:
            lines.append(f"  ERROR {p.error}")
    lines.append("nodes per stage (at configured concurrency): " + json.dumps(rep.nodes_by_stage(), sort_keys=True))
    lines.append(f"{len(rep.errors)} error(s)" if rep.errors else "ok: every request fits a node type")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "fcrm cluster check") -> int:
    ap = argparse.ArgumentParser(prog=prog, description="Check that every stage's Ray resource requests fit "
                                 "a node type of a cluster file, and how many nodes each stage asks for")
    ap.add_argument("cluster", metavar="CLUSTER_YAML", help="Ray cluster-launcher YAML or KubeRay RayCluster manifest")
    ap.add_argument("config", metavar="CONFIG", help="pipeline config (configs/pipeline/*.yaml) or one stage's config")
    ap.add_argument("overrides", nargs="*", help="key=value overrides of CONFIG")
    ap.add_argument("--stage", default="", help="the stage CONFIG is for (default: from its keys)")
    ap.add_argument("--json", action="store_true", help="print the plan as JSON")
    args = ap.parse_args(argv)
    rep = plan(args.cluster, args.config, args.overrides, args.stage)
    if args.json:
        print(json.dumps({"errors": rep.errors, "nodes_by_stage": rep.nodes_by_stage(),
                          "placements": [{"stage": p.request.stage, "what": p.request.what,
                                          "bundles": p.request.bundles, "replicas": p.request.replicas,
                                          "node_type": p.node_type, "nodes": p.nodes, "note": p.note,
                                          "error": p.error} for p in rep.placements]}, indent=2))
    else:
        print(format_report(rep))
    return 1 if rep.errors else 0


if __name__ == "__main__":
    sys.exit(main())
