"""`fcrm pipeline` / `fcrm quickstart`: config checks, stage wiring, failure reporting; the job
entrypoints; and (slow) the whole chain submitted with `ray job submit` to a real local head."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fcrm_ray.config import ConfigError, load_config
from fcrm_ray.pipeline import STAGES, Layout, PipelineConfig, StageFailed, run, stage_commands

ROOT = Path(__file__).resolve().parents[1]

# The CPU pipeline shrunk to a few minutes: the same stages and wiring (generate: Gemma 3 270M on
# vLLM's CPU build in a ray.data.llm engine actor, beside mutations), tiny sizes.
TINY = [
    "bench.overrides=[max_examples_per_category=3]",
    "generate.overrides=['sources=[{kind: bfcl, categories: [live_simple], limit: 5}, "
    "{kind: bfcl, categories: [live_multiple], limit: 5}]', generators.1.sampling.n=1, "
    "generators.1.sampling.max_new_tokens=16, output.shard_size=8]",
    "train.overrides=[train.max_steps=2, train.micro_batch_size=4, train.eval_every=0, data.max_length=128, "
    "data.min_prompt_tokens=16, data.max_eval_rows=8, 'data.extra_eval_splits=[]']",
    "pairwise.overrides=[max_rows=16, model.max_length=128, n_boot=50]",
    "bon.pool_overrides=[pools.max_examples=4, pools.pool_size=4]",
    "bon.overrides=[model.max_length=128, n_boot=50, 'ns=[1,2,4]']",
    "filter.corpus_examples=6",
]


@pytest.mark.parametrize("name", ["cpu.yaml", "gpu.yaml"])
def test_pipeline_configs_load_and_point_at_real_stage_configs(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_config(PipelineConfig, ROOT / "configs" / "pipeline" / name)
    assert cfg.stages == list(STAGES)
    for stage in ("bench", "generate", "train", "pairwise", "bon", "serve", "filter"):
        assert (ROOT / getattr(cfg, stage).config).is_file()


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="`stages`"):
        load_config(PipelineConfig, None, ["stages=[bench,deploy]"])
    with pytest.raises(ConfigError, match="`train.config`"):
        load_config(PipelineConfig, None, [f"train.config={tmp_path}/missing.yaml"])


def test_stages_are_wired_output_to_input(tmp_path):
    cfg = load_config(PipelineConfig, None, [f"out={tmp_path}", "train.overrides=[train.max_steps=3]"])
    lay = Layout(tmp_path)
    cmds = {k: [shlex.join(c) for c in v] for k, v in stage_commands(cfg, lay).items()}
    assert f"--out {lay.bench}" in cmds["bench"][0]
    assert f"--out {lay.generate}" in cmds["generate"][0]
    train = cmds["train"][0]
    assert f"data.train_path={lay.bench}" in train and f"data.extra_train_paths=[{lay.generate}]" in train
    assert f"data.test_path={lay.bench}" in train
    assert f"--out {lay.rm}" in train and train.endswith("train.max_steps=3")  # user overrides come last
    assert f"--model {lay.rm}" in cmds["pairwise"][0] and f"--data {lay.bench}" in cmds["pairwise"][0]
    build, score = cmds["bon"]
    assert "--build-pools" in build and f"--out {lay.bon_pools}" in build
    assert f"--candidates {lay.bon_pools}" in score
    assert f"models.fcrm-rm.path={lay.rm}" in cmds["serve"][0]
    assert f"model.path={lay.rm}" in cmds["filter"][0] and f"input.path={lay.corpus}" in cmds["filter"][0]


def _corpus_example_ids(entry: dict) -> list[str]:
    rows = [json.loads(line) for line in Path(entry["labels"]).read_text().splitlines()]
    assert len(rows) == entry["rows"]
    return [r["id"].rsplit("-", 1)[0] for r in rows]  # row id = <example id>-<variant>


@pytest.mark.parametrize("name", ["cpu.yaml", "gpu.yaml"])
def test_filter_corpus_is_drawn_from_held_out_examples_only(name, tmp_path, monkeypatch):
    from fcrm_ray.data.bench import BenchConfig
    from fcrm_ray.data.sources import read_bfcl
    from fcrm_ray.data.splits import assign_split
    from fcrm_ray.filter.sample_corpus import heldout_sample
    from fcrm_ray.generate.config import GenerateConfig
    from fcrm_ray.pipeline import bench_splits, write_filter_corpus

    monkeypatch.chdir(ROOT)
    cfg = load_config(PipelineConfig, ROOT / "configs" / "pipeline" / name, [f"out={tmp_path}"])
    f = cfg.filter
    ids = [ex.id for ex in heldout_sample(f.corpus_examples, bench_splits(cfg), f.corpus_categories, seed=f.seed)]
    assert len(set(ids)) == len(ids) == min(f.corpus_examples, 1000)  # BFCL's non-live side holds 1,000
    cats = {ex.id: ex.category for ex in read_bfcl()}
    bench = load_config(BenchConfig, ROOT / cfg.bench.config, cfg.bench.overrides).splits
    gen = load_config(GenerateConfig, ROOT / cfg.generate.config).splits
    # in neither the train nor the validation split of the benchmark or of `generate`
    assert {assign_split(i, cats[i], bench) for i in ids} == {"test"}
    assert {assign_split(i, cats[i], gen) for i in ids} == {"test"}
    assert len({cats[i] for i in ids}) == 4  # spread over every held-out category
    if name == "cpu.yaml":  # the corpus the stage writes is that draw, the same on every run
        entry = write_filter_corpus(cfg, Layout(tmp_path))
        assert entry["examples"] == len(ids) and entry["rows"] == len(ids) * (1 + f.corpus_wrong_per_example)
        assert list(dict.fromkeys(_corpus_example_ids(entry))) == ids
        assert _corpus_example_ids(write_filter_corpus(cfg, Layout(tmp_path / "again"))) == _corpus_example_ids(entry)


def test_filter_corpus_follows_the_bench_split_and_rejects_train_only_categories(tmp_path, monkeypatch):
    from fcrm_ray.pipeline import write_filter_corpus

    monkeypatch.chdir(ROOT)
    cfg = load_config(PipelineConfig, ROOT / "configs" / "pipeline" / "cpu.yaml",
                      [f"out={tmp_path}", "bench.overrides=['splits.test_categories=[parallel]']", "filter.corpus_examples=7"])
    ids = _corpus_example_ids(write_filter_corpus(cfg, Layout(tmp_path)))
    assert len(set(ids)) == 7 and all(i.startswith("parallel_") and not i.startswith("parallel_multiple") for i in ids)
    cfg = load_config(PipelineConfig, ROOT / "configs" / "pipeline" / "cpu.yaml",
                      [f"out={tmp_path}", "filter.corpus_categories=[live_simple, live_multiple]"])
    with pytest.raises(ConfigError, match="filter.corpus_categories"):
        write_filter_corpus(cfg, Layout(tmp_path / "live"))


def test_a_failing_stage_stops_the_run_and_names_itself(tmp_path):
    cfg = load_config(PipelineConfig, None, [f"out={tmp_path}", "stages=[bench,generate]",
                                             "bench.overrides=[no_such_key=1]"])
    lines = []
    with pytest.raises(StageFailed) as err:
        run(cfg, echo=lines.append)
    assert err.value.stage == "bench" and err.value.rc == 2
    assert "no_such_key" in err.value.log.read_text()
    record = json.loads((tmp_path / "pipeline.json").read_text())
    assert [(s["stage"], s["status"]) for s in record["stages"]] == [("bench", "failed (exit 2)")]
    assert not (tmp_path / "generate").exists()


def test_cli_exit_code_and_message_on_failure(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "jobs" / "pipeline.py"), f"out={tmp_path}", "stages=[bench]",
                        "bench.overrides=[max_examples_per_category=-1]"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 1
    assert "stage `bench` failed with exit code 2" in r.stderr
    assert "max_examples_per_category" in r.stderr  # the stage's own error, from its log tail


@pytest.mark.parametrize("job", sorted(p.name for p in (ROOT / "jobs").glob("*.py")))
def test_job_entrypoints_report_bad_configs_with_exit_2(job, tmp_path):
    argv = [sys.executable, str(ROOT / "jobs" / job), "--config", str(tmp_path / "missing.yaml")]
    if job == "train_rm.py":
        argv += ["--out", str(tmp_path / "rm")]  # required by `fcrm train`
    r = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "missing.yaml" in r.stderr and "Traceback" not in r.stderr


# --- the whole chain as a Ray job (slow) -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """A real `ray start --head` on loopback with its own ports and temp dir; `ray stop` after."""
    bin_dir = Path(sys.executable).parent
    ports = [_free_port() for _ in range(3)]
    temp = Path("/tmp") / f"fcrm-ray-{os.getpid()}-{ports[0]}"  # short: Ray's socket paths have a length limit
    # Ray >= 2.59 turns token auth on for local clusters: give the head and the CLI one token.
    # The job's `python` is whatever the head's PATH finds first: this venv's.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = [str(bin_dir / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={ports[0]}",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={ports[1]}", f"--ray-client-server-port={ports[2]}",
             "--num-cpus=2", f"--temp-dir={temp}", "--disable-usage-stats"]
    r = subprocess.run(start, capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    try:
        yield f"http://127.0.0.1:{ports[1]}", env
    finally:
        stop_ray_cluster(temp)
        subprocess.run(["rm", "-rf", str(temp)], timeout=60)


def stop_ray_cluster(temp_dir: Path, grace_s: float = 15.0) -> None:
    """`ray stop` for one cluster only: `ray stop` kills every Ray process of the machine (other
    sessions' clusters too), so stop the processes started with this cluster's temp dir (GCS,
    raylet, dashboard, monitor) and all their descendants (workers, job drivers, stages)."""
    import psutil

    me = psutil.Process()
    spare = {me.pid, *(p.pid for p in me.parents())}
    procs = {}
    for p in psutil.process_iter(["cmdline"]):
        if p.pid not in spare and str(temp_dir) in " ".join(p.info["cmdline"] or []):
            procs[p.pid] = p
            try:
                procs.update({c.pid: c for c in p.children(recursive=True) if c.pid not in spare})
            except psutil.NoSuchProcess:
                pass
    for p in procs.values():
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(procs.values()), timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_cpu_pipeline_as_a_submitted_ray_job(ray_head, tmp_path):
    address, env = ray_head
    out = tmp_path / "pipeline"
    ray = str(Path(sys.executable).parent / "ray")
    submit = [ray, "job", "submit", "--address", address, "--working-dir", str(ROOT),
              "--runtime-env", str(ROOT / "jobs" / "runtime_env_cpu.yaml"), "--no-wait", "--",
              "python", "jobs/pipeline.py", "--config", "configs/pipeline/cpu.yaml", f"out={out}", *TINY]
    for _ in range(72):  # the head's job agent may take minutes after `ray start` on a loaded machine
        r = subprocess.run(submit, capture_output=True, text=True, env=env, timeout=300)
        if r.returncode == 0 or "No available agent" not in r.stdout + r.stderr:
            break
        time.sleep(5)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    job_id = next(w for line in r.stdout.splitlines() for w in line.replace("'", " ").split() if w.startswith("raysubmit_"))
    deadline = time.monotonic() + 1400
    status = ""
    while time.monotonic() < deadline:
        s = subprocess.run([ray, "job", "status", "--address", address, job_id], capture_output=True, text=True,
                           env=env, timeout=120)
        text = (s.stdout + s.stderr).upper()  # "Job '...' succeeded" / "... status: RUNNING"
        status = next((w for w in ("SUCCEEDED", "FAILED", "STOPPED") if w in text), "")
        if status:
            break
        time.sleep(5)
    got = subprocess.run([ray, "job", "logs", "--address", address, job_id], capture_output=True, text=True,
                         env=env, timeout=120)
    logs = got.stdout + got.stderr
    assert status == "SUCCEEDED", logs[-5000:]

    record = json.loads((out / "pipeline.json").read_text())
    assert [s["stage"] for s in record["stages"]] == list(STAGES)
    assert all(s["status"] == "ok" for s in record["stages"]), record
    by = {s["stage"]: s.get("result") or {} for s in record["stages"]}
    # generate ran the real model through vLLM (CPU build) in the job, one sample per example
    gen = json.loads((out / "generate" / "stats.json").read_text())
    assert gen["by_generator"]["gemma-3-270m"]["candidates"] == 10 and all(gen["checks"].values()), gen
    # the trained RM is a standard SeqCls checkpoint with one label
    cfg = json.loads((out / "rm" / "config.json").read_text())
    assert cfg.get("num_labels", len(cfg.get("id2label", {}))) == 1
    # wiring only: 2 training steps learn nothing; whether training learns is asserted in
    # tests/test_train_quality.py (held-out pairs, well above chance and the untrained model)
    assert 0.0 <= by["pairwise"]["accuracy"] <= 1.0 and by["pairwise"]["n"] > 0
    assert by["bon"]["n"] == 4
    for sel in ("rm", "vote_sum", "vote_max", "first", "random", "majority"):
        assert by["bon"][sel] <= by["bon"]["oracle"]
    corpus = next(s for s in record["stages"] if s["stage"] == "filter")["corpus"]
    assert corpus["split"] == "test" and corpus["examples"] == 6
    assert set(corpus["categories"]) <= {"simple_python", "multiple", "parallel", "parallel_multiple"}
    assert len(by["serve"]["candidates"]) >= 2 and all(isinstance(c["reward"], float) for c in by["serve"]["candidates"])
    f = by["filter"]
    assert f["units_in"] == f["kept"] + f["dropped"] + f["quarantined"]
    assert f["labels"]["kept"]["rows"] + f["labels"]["dropped"]["rows"] == f["kept"] + f["dropped"]
    assert (out / "report" / "report.html").is_file()
    report = (out / "report" / "report.md").read_text()
    assert "Pipeline" in report and "Best-of-N" in report
    assert "[fcrm pipeline] report: ok" in logs  # stage progress reaches the job log
