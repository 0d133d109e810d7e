"""Autoscaling exercised for real on one machine: Ray's fake multi-node provider (the
`FakeMultiNodeProvider` that `ray.cluster_utils.AutoscalingCluster` and Ray's own autoscaler
tests use) starts and stops whole Ray nodes of the worker types of clusters/*.yaml (`cpu_data`,
`gpu_gen`, `gpu_train`; GPUs are logical, so the CPU code paths run). `fcrm filter` is submitted as
a Ray job; the tests assert that nodes of the right types came up, that the stages ran on them,
that the cluster went back to zero workers after the idle timeout, and that a worker node killed
mid-run (its raylet and every process of the node, SIGKILL) loses and duplicates nothing.

Why not `AutoscalingCluster.start()` itself: it runs `ray stop --force`, which kills every Ray
process on the machine (other sessions' too), and its template `fake_multi_node/example.yaml` is
not in Ray's wheel. So the head is started with `ray.cluster_utils.Cluster` (it stops only its own
processes) plus the same autoscaling config and environment AutoscalingCluster sets, under a
private RAY_TMPDIR so no other `ray.init()` on this machine can find this cluster.
"""

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fcrm_ray import cluster_check as cc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024**2
# Scaled-down twins of clusters/aws-gpu.yaml's worker types (same names, accelerator labels).
WORKER_TYPES = {
    "cpu_data": {"resources": {"CPU": 2, "object_store_memory": 150 * MiB}, "min_workers": 0, "max_workers": 2,
                 "node_config": {}},
    "gpu_gen": {"resources": {"CPU": 1, "GPU": 1, "accelerator_type:L40S": 1, "object_store_memory": 150 * MiB},
                "min_workers": 0, "max_workers": 2, "node_config": {}},
    "gpu_train": {"resources": {"CPU": 1, "GPU": 2, "accelerator_type:H100": 1, "object_store_memory": 150 * MiB},
                  "min_workers": 0, "max_workers": 1, "node_config": {}},
}
IDLE_TIMEOUT_S = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_type_of(resources: dict) -> str:
    for name, t in WORKER_TYPES.items():
        marker = [k for k in t["resources"] if k.startswith("accelerator_type:")]
        if marker and resources.get(marker[0]):
            return name
    return "cpu_data" if resources.get("CPU") else "head"


class FakeAutoscalingCluster:
    """A head with 0 CPUs for tasks and an autoscaler that starts/stops real Ray nodes locally."""

    def __init__(self, worker_types: dict, idle_timeout_s: float):
        self.worker_types = worker_types
        self.idle_timeout_s = idle_timeout_s
        self.pids: set[int] = set()

    def start(self):
        import ray
        from ray.cluster_utils import Cluster

        # short: Unix socket paths under it must stay below 108 bytes
        self.tmp = tempfile.mkdtemp(prefix="fcrm-ac-", dir="/tmp")
        self._env = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "RAY_FAKE_CLUSTER", "AUTOSCALER_UPDATE_INTERVAL_S")}
        os.environ.update(RAY_TMPDIR=self.tmp, RAY_FAKE_CLUSTER="1", AUTOSCALER_UPDATE_INTERVAL_S="1")
        port, self.dashboard_port = _free_port(), _free_port()
        ip = ray._private.services.get_node_ip_address()
        types = dict(self.worker_types)
        types["ray.head.default"] = {"resources": {}, "node_config": {}, "max_workers": 0}
        config = {
            "cluster_name": "fcrm-fake", "max_workers": sum(t["max_workers"] for t in self.worker_types.values()),
            "upscaling_speed": 1.0, "idle_timeout_minutes": self.idle_timeout_s / 60,
            # as Ray's fake_multi_node/example.yaml: no SSH updaters, nodes known by their node id
            "provider": {"type": "fake_multinode", "gcs_address": f"{ip}:{port}", "use_node_id_as_ip": True,
                         "disable_node_updaters": True, "disable_launch_config_check": True},
            "auth": {}, "docker": {}, "available_node_types": types, "head_node_type": "ray.head.default",
            "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
            "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [], "setup_commands": [],
            "head_setup_commands": [], "worker_setup_commands": [], "head_start_ray_commands": [],
            "worker_start_ray_commands": [],
        }
        cfg_path = Path(self.tmp) / "autoscaling.json"
        cfg_path.write_text(json.dumps(config))
        self.cluster = Cluster(initialize_head=True, head_node_args=dict(
            # own ports: another Ray on this machine may hold the defaults (e.g. the agent's 52365)
            gcs_server_port=port, num_cpus=0, include_dashboard=True, dashboard_port=self.dashboard_port,
            dashboard_agent_listen_port=_free_port(),
            autoscaling_config=str(cfg_path), object_store_memory=150 * MiB))
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self._wait(lambda: self._dashboard_up(), 120, "the dashboard did not come up")
        return self

    def _dashboard_up(self) -> bool:
        try:
            self.nodes()
            return True
        except Exception:
            return False

    @staticmethod
    def _wait(pred, timeout_s, what):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if pred():
                return
            time.sleep(1)
        raise AssertionError(what)

    def nodes(self) -> list[dict]:
        """All nodes the GCS knows (ALIVE and DEAD), each with its type."""
        from ray.util.state import list_nodes

        out = []
        for n in list_nodes(address=self.address, detail=True, limit=1000, raise_on_missing_output=False):
            d = n if isinstance(n, dict) else n.__dict__
            out.append({"node_id": d["node_id"], "state": d["state"], "is_head": d["is_head_node"],
                        "type": "head" if d["is_head_node"] else node_type_of(d["resources_total"])})
        return out

    def alive_workers(self) -> list[dict]:
        return [n for n in self.nodes() if n["state"] == "ALIVE" and not n["is_head"]]

    def kill_node(self, node_id: str) -> list[int]:
        """SIGKILL the node: its raylet (object store included) and every process of that node."""
        import psutil

        victims = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if node_id in cmd and self.tmp in cmd:
                victims.append(p)
        raylets = [p for p in victims if "raylet" in p.name()]
        assert raylets, f"no raylet found for node {node_id}"
        for r in raylets:
            victims += r.children(recursive=True)
        for p in {v.pid: v for v in victims}.values():
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        return sorted({v.pid for v in victims})

    def own_processes(self):
        import psutil

        return [p for p in psutil.process_iter(["pid", "cmdline"]) if self.tmp in " ".join(p.info["cmdline"] or [])]

    def shutdown(self):
        import psutil

        try:
            self.cluster.shutdown()
        finally:
            # worker nodes belong to the (now stopped) autoscaler: end what is left of this
            # cluster, found by its private temp dir, by pid
            deadline = time.time() + 30
            while self.own_processes() and time.time() < deadline:
                for p in self.own_processes():
                    try:
                        p.kill()
                    except psutil.NoSuchProcess:
                        pass
                time.sleep(1)
            for k, v in self._env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def fake_cluster():
    c = FakeAutoscalingCluster(WORKER_TYPES, IDLE_TIMEOUT_S).start()
    try:
        yield c
    finally:
        c.shutdown()
        assert not c.own_processes(), "processes of the simulated cluster outlived it"



@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from test_filter import build_corpus

    d = tmp_path_factory.mktemp("corpus")
    build_corpus(d, n_examples=60)
    # three copies: enough shards that a node can be killed with work done and work left
    for i in (1, 2):
        for f in list(d.glob("part-*")):
            if "-copy" not in f.name:
                shutil.copy(f, d / f"{f.stem}-copy{i}{f.suffix}")
    return d


def _filter_argv(corpus_dir, out, rm) -> list[str]:
    return [sys.executable, "-m", "fcrm_ray.cli", "filter", "--config", str(ROOT / "configs/filter.yaml"),
            f"input.path={corpus_dir}", f"out={out}", f"model.path={rm}", "input.shard_rows=10",
            "model.batch_size=4", "actors.batch_size=4", "model.max_length=256", "actors.num_cpus_per_actor=1",
            # a logical GPU: the scoring pool needs a `gpu_gen` node, the extract tasks a `cpu_data` one
            "actors.num_gpus_per_actor=1", "policy.kind=threshold", "policy.threshold=0.0", "output.histogram=false"]


def _submit(cluster, argv) -> str:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(cluster.address)
    env = {k: os.environ[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")
           if k in os.environ}
    deadline = time.time() + 120
    while True:  # the head's job agent comes up a little after the dashboard
        try:
            return client.submit_job(entrypoint=" ".join(argv), runtime_env={"env_vars": env})
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.time() > deadline:
                raise
            time.sleep(2)


def _wait_job(cluster, job_id, timeout_s=600, on_poll=None) -> dict[str, dict]:
    """Waits for the job to end; returns every node seen meanwhile. `on_poll()` runs every second."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(cluster.address)
    seen: dict[str, dict] = {}
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for n in cluster.nodes():
            seen[n["node_id"]] = n
        if on_poll:
            on_poll()
        status = client.get_job_status(job_id)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            assert status == JobStatus.SUCCEEDED, client.get_job_logs(job_id)[-4000:]
            return seen
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s}s:\n{client.get_job_logs(job_id)[-4000:]}")


def _scored(out: Path) -> list[tuple[str, str, float]]:
    """(row id = file:line, unit id, reward) of every scored unit."""
    import pyarrow.parquet as pq

    rows = [r for part in ("kept", "dropped") for f in sorted((out / part).glob("*.parquet"))
            for r in pq.read_table(f, columns=["row_id", "unit_id", "reward"]).to_pylist()]
    return sorted((r["row_id"], r["unit_id"], round(r["reward"], 4)) for r in rows)


def _wait_scaled_down(cluster):
    # the idle timeout, plus an autoscaler round and the node's shutdown
    cluster._wait(lambda: not cluster.alive_workers(), IDLE_TIMEOUT_S + 90,
                  f"workers still up after the idle timeout: {cluster.alive_workers()}")


@pytest.fixture(scope="module")
def reference_run(fake_cluster, tiny_rm, corpus, tmp_path_factory):
    """One uninterrupted filter job on the scaled-from-zero cluster."""
    from ray.util.state import list_actors

    assert not fake_cluster.alive_workers(), "the cluster must start at its minimum (0 workers)"
    out = tmp_path_factory.mktemp("filter-ref")
    actors: dict[str, dict] = {}

    def poll():
        for a in list_actors(address=fake_cluster.address, limit=1000, raise_on_missing_output=False):
            d = a if isinstance(a, dict) else a.__dict__
            if "ScoreUnits" in (d.get("class_name") or "") and d.get("node_id"):
                actors[d["actor_id"]] = d

    seen = _wait_job(fake_cluster, _submit(fake_cluster, _filter_argv(corpus, out, tiny_rm)), on_poll=poll)
    return {"out": out, "nodes": seen, "actors": actors}


def test_filter_job_scales_up_the_right_node_types_and_back_down(fake_cluster, reference_run):
    from ray.util.state import list_tasks

    seen = reference_run["nodes"]
    types = {nid: n["type"] for nid, n in seen.items()}
    started = {t for t in types.values() if t != "head"}
    # what `fcrm cluster check` predicts for this config on these node types is what Ray started
    nts = [cc.NodeType(k, {r: float(v) for r, v in t["resources"].items() if r != "object_store_memory"},
                       t["max_workers"]) for k, t in WORKER_TYPES.items()]
    predicted = {cc.place(r, nts).node_type for r in cc.stage_requests(
        "filter", str(ROOT / "configs/filter.yaml"), ["actors.num_gpus_per_actor=1", "model.path=x"])}
    assert predicted == {"cpu_data", "gpu_gen"}
    assert predicted <= started, f"nodes started: {types}"
    # Ray Data also asks the autoscaler for more while its operators are busy; whatever came up
    # must fit one of the stage's requests (a GPU bundle may land on gpu_train once gpu_gen is busy)
    feasible = {t.name for t in nts for r in cc.stage_requests("filter", str(ROOT / "configs/filter.yaml"), [
        "actors.num_gpus_per_actor=1", "model.path=x"]) if all(cc.fits(b, t) for b in r.bundles)}
    assert started <= feasible, f"nodes started: {types}"
    # the stages ran on them: the scoring actors on GPU nodes, the extract tasks on workers
    assert reference_run["actors"], "no scoring actor was seen"
    actor_types = {types[a["node_id"]] for a in reference_run["actors"].values()}
    assert actor_types and all(WORKER_TYPES[t]["resources"].get("GPU") for t in actor_types), actor_types
    tasks = [t if isinstance(t, dict) else t.__dict__
             for t in list_tasks(address=fake_cluster.address, limit=10000, raise_on_missing_output=False)]
    extract = [t for t in tasks if "extract_shard" in (t.get("name") or "") and t.get("node_id")]
    assert extract, sorted({t.get("name") for t in tasks})[:20]
    # CPU tasks run where CPUs are free, never on the 0-CPU head: on the worker nodes the stage
    # started (Ray's GPU-node avoidance is a preference, so on a fast run a gpu_gen node's spare
    # CPU may take every extract task before a cpu_data node has come up)
    extract_types = {types[t["node_id"]] for t in extract}
    assert extract_types and "head" not in extract_types and extract_types <= started, extract_types
    stats = json.loads((reference_run["out"] / "stats.json").read_text())
    assert stats["units_in"] == stats["kept"] + stats["dropped"] + stats["quarantined"] > 0
    t0 = time.time()
    _wait_scaled_down(fake_cluster)
    print(f"[scale] started {sorted(types[n] for n in types if types[n] != 'head')}; scoring actors on "
          f"{sorted(actor_types)}; {len(extract)} extract tasks on {sorted(extract_types)}; back to 0 workers "
          f"{time.time() - t0:.0f}s after the job")


def test_filter_job_survives_a_worker_node_killed_mid_run(fake_cluster, reference_run, tiny_rm, corpus, tmp_path):
    from ray.util.state import list_actors

    _wait_scaled_down(fake_cluster)
    out = tmp_path / "killed"
    n_shards = len(json.loads((reference_run["out"] / "manifest.json").read_text())["scored"])
    killed: dict = {}

    def kill_scoring_node_mid_run():
        if killed:
            return
        m = out / "manifest.json"
        done = len(json.loads(m.read_text())["scored"]) if m.is_file() else 0
        if not 1 <= done < n_shards // 2:
            return
        for a in list_actors(address=fake_cluster.address, limit=1000, raise_on_missing_output=False):
            d = a if isinstance(a, dict) else a.__dict__
            if "ScoreUnits" in (d.get("class_name") or "") and d.get("state") == "ALIVE" and d.get("node_id"):
                killed.update(node=d["node_id"], done=done, pids=fake_cluster.kill_node(d["node_id"]))
                return

    job = _submit(fake_cluster, _filter_argv(corpus, out, tiny_rm))
    seen = _wait_job(fake_cluster, job, on_poll=kill_scoring_node_mid_run)
    assert killed, "the run finished before a node could be killed mid-run"
    assert seen[killed["node"]]["state"] == "DEAD"
    stats = json.loads((out / "stats.json").read_text())
    ref = json.loads((reference_run["out"] / "stats.json").read_text())
    for k in ("rows_in", "units_in", "kept", "dropped", "quarantined"):
        assert stats[k] == ref[k], k
    got, want = _scored(out), _scored(reference_run["out"])
    assert len({(r, u) for r, u, _ in got}) == len(got), "duplicated units"
    assert got == want
    print(f"[node kill] killed node {killed['node'][-8:]} ({len(killed['pids'])} processes) after "
          f"{killed['done']}/{n_shards} shards; {len(got)} scored units identical to the uninterrupted run")
    _wait_scaled_down(fake_cluster)


@pytest.fixture(scope="module")
def generate_setup(tmp_path_factory):
    """A small `fcrm generate` config (mutation + tiny random Qwen3 through transformers) whose hf
    actor asks for a logical GPU, so it runs on a gpu_gen node."""
    from test_generate_pipeline import small_cfg, write_yaml

    from fcrm_ray.generate.backends import build_tiny_causal_lm

    root = tmp_path_factory.mktemp("gen")
    lm = str(build_tiny_causal_lm(root / "tiny-lm"))

    def cfg_file(out: Path) -> Path:
        # enough generation (36 examples x 2 samples x 32 new tokens, one example per batch) that
        # the hf actor stays busy for seconds even on a fast, idle machine: the kill below must
        # land while it generates (with 24 x 8 tokens a quiet CI run finished first)
        cfg = small_cfg(out, lm, limit=36, shard_size=2, hf_tokens=32)
        cfg.generators[2].num_gpus = 1
        cfg.generators[2].batch_size = 1
        return write_yaml(cfg, root / f"{out.name}.yaml")

    return root, cfg_file


def _generate_argv(cfg_path: Path) -> list[str]:
    return [sys.executable, "-m", "fcrm_ray.cli", "generate", "--config", str(cfg_path)]


def test_generate_job_survives_a_worker_node_killed_mid_run(fake_cluster, generate_setup):
    from ray.util.state import list_actors

    from fcrm_ray.data.pairs import read_pairs
    from fcrm_ray.generate.run import RunLayout

    root, cfg_file = generate_setup
    _wait_scaled_down(fake_cluster)
    ref_out = root / "ref"
    _wait_job(fake_cluster, _submit(fake_cluster, _generate_argv(cfg_file(ref_out))))
    n_shards = json.loads((ref_out / "stats.json").read_text())["shards"]
    assert n_shards >= 6

    out = root / "killed"
    done_dir = RunLayout(out).done
    killed: dict = {}

    seen_alive: list[float] = []

    def kill_generator_node_mid_run():
        # shards are flushed only once every generator is done with them, so most finish together
        # at the end: kill the generator's node while it is generating (alive for >= 3 s), before
        # the last shards are written
        if killed:
            return
        done = len(list(done_dir.glob("*.json"))) if done_dir.is_dir() else 0
        if done >= n_shards - 1:
            return
        for a in list_actors(address=fake_cluster.address, limit=1000, raise_on_missing_output=False):
            d = a if isinstance(a, dict) else a.__dict__
            if "HFGenerator" in (d.get("class_name") or "") and d.get("state") == "ALIVE" and d.get("node_id"):
                seen_alive.append(time.time())
                if seen_alive[-1] - seen_alive[0] >= 3:
                    killed.update(node=d["node_id"], done=done, pids=fake_cluster.kill_node(d["node_id"]))
                return

    seen = _wait_job(fake_cluster, _submit(fake_cluster, _generate_argv(cfg_file(out))),
                     on_poll=kill_generator_node_mid_run)
    assert killed, "the run finished before a node could be killed mid-run"
    assert seen[killed["node"]]["type"] == "gpu_gen" and seen[killed["node"]]["state"] == "DEAD"
    stats = json.loads((out / "stats.json").read_text())
    assert all(stats["checks"].values()), stats["checks"]
    got, want = read_pairs(out), read_pairs(ref_out)
    ids = [r["id"] for r in got]
    assert len(ids) == len(set(ids)), "duplicated pairs"
    assert sorted(got, key=lambda r: r["id"]) == sorted(want, key=lambda r: r["id"])
    print(f"[node kill] generate: killed node {killed['node'][-8:]} ({len(killed['pids'])} processes) after "
          f"{killed['done']}/{n_shards} shards; {len(got)} pairs identical to the uninterrupted run")
    _wait_scaled_down(fake_cluster)
