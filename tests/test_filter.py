"""Reward-guided corpus filtering: extraction per format, policies, sharding, accounting, resume,
and (slow) the Ray Data job end to end with a tiny random-init reward model."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from fcrm_ray.config import ConfigError, load_config
from fcrm_ray.filter import run as filter_run
from fcrm_ray.filter.config import FilterConfig
from fcrm_ray.filter.extract import UNIT_COLUMNS, extract_row
from fcrm_ray.filter.policy import QuantileSketch, fit_policy

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                           "parameters": {"type": "object", "properties": {
                                               "city": {"type": "string"}, "unit": {"type": "string"}},
                                               "required": ["city"]}}}]


def _tc(name, args):
    return {"type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


# --- extraction --------------------------------------------------------------------------------

def test_openai_row_gives_one_unit_per_call_turn_with_preceding_context():
    row = {"id": "r1", "tools": TOOLS, "messages": [
        {"role": "user", "content": "Weather in Paris and then Rome?"},
        {"role": "assistant", "content": "", "tool_calls": [_tc("get_weather", {"city": "Paris"})]},
        {"role": "tool", "content": "sunny"},
        {"role": "assistant", "content": "", "tool_calls": [_tc("get_weather", {"city": "Rome", "unit": "celsius"})]},
        {"role": "assistant", "content": "Sunny in Paris."},
    ]}
    units, bad = extract_row(row, row_id="f:0")
    assert bad == [] and len(units) == 2
    assert all(set(u) == set(UNIT_COLUMNS) for u in units)
    first, second = units
    assert json.loads(first["candidate"]) == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert json.loads(second["candidate"]) == [{"name": "get_weather", "arguments": {"city": "Rome", "unit": "celsius"}}]
    assert len(json.loads(first["conversation"])) == 1
    ctx = json.loads(second["conversation"])
    assert [m["role"] for m in ctx] == ["user", "assistant", "tool"] and ctx[1]["tool_calls"]
    assert first["unit_id"] != second["unit_id"] and first["format"] == "openai" and first["row_id"] == "f:0"
    assert json.loads(first["tools"])[0]["name"] == "get_weather"


def test_xlam_row():
    row = {"id": 7, "query": "Weather in Oslo?",
           "tools": json.dumps([{"name": "get_weather", "description": "w",
                                 "parameters": {"city": {"type": "str", "description": "c"},
                                                "unit": {"type": "str, optional", "default": "c"}}}]),
           "answers": json.dumps([{"name": "get_weather", "arguments": {"city": "Oslo"}}])}
    units, bad = extract_row(row, source="xl")
    assert bad == [] and len(units) == 1
    u = units[0]
    assert u["format"] == "xlam" and u["source"] == "xl"
    assert json.loads(u["candidate"]) == [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    assert json.loads(u["conversation"]) == [{"role": "user", "content": "Weather in Oslo?"}]


def test_sharegpt_row_with_function_call_turns():
    row = {"tools": json.dumps([TOOLS[0]["function"]]), "source": "glaive", "conversations": [
        {"from": "human", "value": "Weather in Lima?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Lima"}})},
        {"from": "observation", "value": "{\"temp\": 20}"},
        {"from": "gpt", "value": "20 degrees."},
    ]}
    units, bad = extract_row(row)
    assert bad == [] and len(units) == 1
    assert units[0]["source"] == "glaive" and units[0]["format"] == "sharegpt"
    assert json.loads(units[0]["candidate"])[0]["arguments"] == {"city": "Lima"}


@pytest.mark.parametrize("row, tag", [
    ("just text", "malformed row"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "tools": TOOLS},
     "no call turn"),
    ({"messages": [{"role": "user", "content": "hi"},
                   {"role": "assistant", "tool_calls": [_tc("get_weather", {"city": "X"})]}], "tools": []}, ""),
    ({"query": "q", "tools": "[not json", "answers": "[]"}, ""),
    ({"something": 1}, "unknown format: cannot detect format"),
])
def test_unusable_rows_become_bad_items_with_a_reason(row, tag):
    units, bad = extract_row(row)
    assert units == [] and len(bad) == 1
    assert isinstance(bad[0][1], str) and bad[0][1]
    assert tag in bad[0][1]


def test_one_bad_turn_does_not_lose_the_good_one():
    row = {"tools": TOOLS, "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": [_tc("get_weather", {"city": "A"})]},
        {"role": "tool", "content": "ok"},
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": "{oops"}}]},
    ]}
    units, bad = extract_row(row)
    assert len(units) == 1 and len(bad) == 1


# --- policies ----------------------------------------------------------------------------------

def _sketches(rewards, sources):
    sk = {"*": QuantileSketch(1000)}
    for r, s in zip(rewards, sources):
        sk["*"].add(r)
        sk.setdefault(s, QuantileSketch(1000)).add(r)
    return sk


def test_threshold_policy():
    p = fit_policy("threshold", threshold=0.5)
    assert p.keep(0.5, "a") and p.keep(2.0, "b") and not p.keep(0.49, "a") and not p.keep(None, "a")


def test_top_fraction_keeps_exactly_the_top_k():
    rng = random.Random(0)
    rewards = [rng.gauss(0, 1) for _ in range(101)]
    for frac in (0.1, 0.25, 0.5, 0.9, 1.0):
        p = fit_policy("top_fraction", fraction=frac, sketches=_sketches(rewards, ["s"] * 101))
        kept = [r for r in rewards if p.keep(r, "s")]
        assert len(kept) == math.ceil(frac * 101 - 1e-9)
        if len(kept) < 101:
            assert min(kept) > max(r for r in rewards if r not in kept)
        assert p.exact


def test_per_source_top_fraction_is_per_source():
    rewards = [float(i) for i in range(10)] + [float(100 + i) for i in range(10)]
    sources = ["low"] * 10 + ["high"] * 10
    per = fit_policy("per_source_top_fraction", fraction=0.3, sketches=_sketches(rewards, sources))
    kept = [(r, s) for r, s in zip(rewards, sources) if per.keep(r, s)]
    assert sorted(r for r, s in kept if s == "low") == [7.0, 8.0, 9.0]
    assert sorted(r for r, s in kept if s == "high") == [107.0, 108.0, 109.0]
    glob = fit_policy("top_fraction", fraction=0.3, sketches=_sketches(rewards, sources))
    assert all(s == "high" for r, s in zip(rewards, sources) if glob.keep(r, s))


def test_sketch_beyond_capacity_is_a_close_estimate():
    rng = random.Random(1)
    s = QuantileSketch(capacity=2000, seed=3)
    vals = [rng.random() for _ in range(50_000)]
    s.extend(vals)
    assert not s.exact and s.count == 50_000
    assert abs(s.top_threshold(0.2) - 0.8) < 0.03  # uniform: the top 20% start at 0.8


# --- sharding ----------------------------------------------------------------------------------

def test_shards_cover_every_row_once_parquet_and_jsonl(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": i, "x": "v"} for i in range(23)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet", row_group_size=5)
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:7]) + "\n\nnot json\n")
    shards = filter_run.plan_shards(str(tmp_path), shard_rows=4)
    assert shards == filter_run.plan_shards(str(tmp_path), shard_rows=4)  # deterministic
    got = [(s["file"], i, r) for s in shards for i, r in filter_run.read_shard(s)]
    a = [r for f, _, r in got if f.endswith("a.parquet")]
    b = [r for f, _, r in got if f.endswith("b.jsonl")]
    assert [r["id"] for r in a] == list(range(23))
    assert [r["id"] for r in b[:7]] == list(range(7)) and b[7] == "not json" and len(b) == 8
    assert len(filter_run.plan_shards(str(tmp_path), shard_rows=4, limit=10)) == 3


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="input.path"):
        load_config(FilterConfig, None, ["out=x", "model.path=m"])
    with pytest.raises(ConfigError, match="policy.fraction"):
        load_config(FilterConfig, None, ["input.path=x", "out=x", "model.path=m", "policy.fraction=0"])
    with pytest.raises(ConfigError, match="model.path"):
        load_config(FilterConfig, None, ["input.path=x", "out=x"])


@pytest.mark.parametrize("old, new", [("scoring.model_path=m", "`model.path`"), ("scoring.max_length=64", "`model.max_length`"),
                                      ("scoring.num_actors=2", "`actors.num_actors`"), ("output.dir=x", "`out`"),
                                      ("ray_address=auto", "`ray.address`")])
def test_old_keys_fail_naming_the_new_key(old, new, tmp_path):
    with pytest.raises(ConfigError, match=f"`{old.split('=')[0]}`.*renamed: use {new}"):
        load_config(FilterConfig, None, ["input.path=x", "out=x", old])
    yaml = tmp_path / "old.yaml"  # the same in a YAML file
    key, value = old.split("=")
    head, _, leaf = key.rpartition(".")
    yaml.write_text(f"{head}:\n  {leaf}: {value}\n" if head else f"{leaf}: {value}\n")
    with pytest.raises(ConfigError, match=f"renamed: use {new}"):
        load_config(FilterConfig, yaml, ["input.path=x"])


# --- the Ray Data job (slow) -------------------------------------------------------------------

def build_corpus(out_dir, n_examples=60, seed=0):
    """A mixed-format tool-call SFT corpus from BFCL: correct and mutated (wrong) calls as
    OpenAI / xLAM / ShareGPT rows, plus a few unusable rows. Returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fcrm_ray.data.sources import read_bfcl
    from fcrm_ray.toolcall.mutate import mutate_all

    rng = random.Random(seed)
    rows = []
    for e, ex in enumerate(itertools.islice(read_bfcl(["simple_python", "multiple"]), n_examples)):
        calls = [r.canonical_call() for r in ex.reference]
        variants = [calls] + [m.calls for m in mutate_all(ex, rng)[:2] if m.calls]
        for j, cs in enumerate(variants):
            kind = (e + j) % 3  # every format gets correct and mutated calls
            tools = [t.to_openai() for t in ex.tools]
            if kind == 0:
                rows.append({"id": f"{ex.id}-{j}", "source": "bfcl-openai", "tools": json.dumps(tools),
                             "messages": json.dumps(ex.conversation + [{"role": "assistant", "content": "",
                                                    "tool_calls": [_tc(c.name, c.arguments) for c in cs]}])})
            elif kind == 1:
                rows.append({"id": f"{ex.id}-{j}", "source": "bfcl-xlam", "query": ex.conversation[-1]["content"],
                             "tools": json.dumps([t.to_dict() for t in ex.tools]),
                             "answers": json.dumps([c.to_dict() for c in cs])})
            else:
                rows.append({"id": f"{ex.id}-{j}", "source": "bfcl-sharegpt", "tools": json.dumps([t.to_dict() for t in ex.tools]),
                             "conversations": json.dumps([{"from": "human", "value": ex.conversation[-1]["content"]},
                                                          {"from": "function_call", "value": json.dumps([c.to_dict() for c in cs])}])})
    rows += [{"id": "bad-1", "source": "junk", "messages": json.dumps([{"role": "user", "content": "hi"}]), "tools": "[]"},
             {"id": "bad-2", "source": "junk", "query": "q", "tools": "{", "answers": "[]"}]
    # Parquet needs one schema: every row gets every column (empty string = absent).
    cols = sorted({k for r in rows for k in r})
    table = pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in rows])
    out_dir.mkdir(parents=True, exist_ok=True)
    half = len(rows) // 2
    pq.write_table(table.slice(0, half), out_dir / "part-0.parquet")
    with open(out_dir / "part-1.jsonl", "w") as fh:
        for r in rows[half:]:
            fh.write(json.dumps({k: v for k, v in r.items()}) + "\n")
        fh.write("{broken json\n")
    return len(rows) + 1


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()



@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    return d, build_corpus(d)


def _cfg(corpus_dir, out, rm, *extra):
    return load_config(FilterConfig, None, [
        f"input.path={corpus_dir}", f"out={out}", f"model.path={rm}", "input.shard_rows=40",
        "model.batch_size=32", "actors.batch_size=32", "model.max_length=256", "actors.num_cpus_per_actor=1", *extra])


def _read(out, part):
    import pyarrow.parquet as pq

    files = sorted((out / part).glob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


@pytest.mark.slow
def test_filter_end_to_end_accounting_and_outputs(ray_local, tiny_rm, corpus, tmp_path):
    corpus_dir, n_rows = corpus
    out = tmp_path / "run"
    stats = filter_run.run(_cfg(corpus_dir, out, tiny_rm, "policy.kind=top_fraction", "policy.fraction=0.25"))
    assert stats["rows_in"] == n_rows
    kept, dropped, quar = _read(out, "kept"), _read(out, "dropped"), _read(out, "quarantine")
    assert (len(kept), len(dropped), len(quar)) == (stats["kept"], stats["dropped"], stats["quarantined"])
    assert stats["units_in"] == stats["kept"] + stats["dropped"] + stats["quarantined"]
    assert stats["quarantined_items"] >= 3  # two unusable rows + the broken JSON line
    ids = [r["unit_id"] + r["row_id"] for r in kept + dropped]
    assert len(ids) == len(set(ids))
    # top 25%: the ceil(0.25 n) best, plus any unit tied with the last of them (two units can
    # render to the same text and get the same reward), all above every dropped one
    rewards = sorted((r["reward"] for r in kept + dropped), reverse=True)
    k = -(-len(rewards) // 4)
    assert len(kept) == sum(r >= rewards[k - 1] for r in rewards) >= k
    assert min(r["reward"] for r in kept) >= max(r["reward"] for r in dropped)
    assert {r["source"] for r in kept + dropped} == {"bfcl-openai", "bfcl-xlam", "bfcl-sharegpt"}
    saved = json.loads((out / "stats.json").read_text())
    assert saved["kept"] == stats["kept"] and (out / "reward_hist.png").stat().st_size > 1000
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["scored"]) == stats["shards"]

    # A different policy on the same run re-splits without re-scoring (same rewards).
    before = {r["unit_id"] + r["row_id"]: r["reward"] for r in kept + dropped}
    stats2 = filter_run.run(_cfg(corpus_dir, out, tiny_rm, "policy.kind=per_source_top_fraction", "policy.fraction=0.5"))
    after = {r["unit_id"] + r["row_id"]: r["reward"] for r in _read(out, "kept") + _read(out, "dropped")}
    assert after == before and stats2["units_in"] == stats["units_in"]
    for src, k in stats2["kept_by_source"].items():
        total = k + stats2["dropped_by_source"].get(src, 0)
        assert k == -(-total // 2)

    # A different model in the same output dir is refused, naming the key.
    with pytest.raises(ConfigError, match="`out`"):
        filter_run.run(_cfg(corpus_dir, out, str(tmp_path / "other-model")))


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_filter_resume_after_kill_has_no_duplicates_or_gaps(ray_local, tiny_rm, corpus, tmp_path):
    corpus_dir, n_rows = corpus
    out = tmp_path / "run"
    cfg = _cfg(corpus_dir, out, tiny_rm, "policy.kind=threshold", "policy.threshold=0.0")

    def die_after_two(done, total):
        if done >= 2:
            raise _Killed()

    with pytest.raises(_Killed):
        filter_run.run(cfg, progress=die_after_two)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["scored"]) == 2 and not manifest.get("complete")
    # a half-written file of the killed run must not be picked up
    (out / "scored" / ".0000-000000040.parquet.tmp-999").write_bytes(b"garbage")

    stats = filter_run.run(cfg)
    ref_out = tmp_path / "fresh"
    ref = filter_run.run(_cfg(corpus_dir, ref_out, tiny_rm, "policy.kind=threshold", "policy.threshold=0.0"))
    for k in ("rows_in", "units_in", "kept", "dropped", "quarantined"):
        assert stats[k] == ref[k], k
    resumed = sorted((r["unit_id"], r["row_id"], round(r["reward"], 5)) for r in _read(out, "kept") + _read(out, "dropped"))
    fresh = sorted((r["unit_id"], r["row_id"], round(r["reward"], 5)) for r in _read(ref_out, "kept") + _read(ref_out, "dropped"))
    assert resumed == fresh
    assert len({(u, r) for u, r, _ in resumed}) == len(resumed)


def test_serve_backend_sends_units_to_the_service_in_chunks():
    """scoring.backend=serve with serve_url: units go to POST /v1/rewards as batched items."""
    import httpx

    from fcrm_ray.filter.config import ScoringConfig
    from fcrm_ray.serve.client import RewardClient

    seen = []

    def handler(request):
        body = json.loads(request.content)
        seen.append(len(body["items"]))
        return httpx.Response(200, json={"model": "m", "results": [
            {"rewards": [float(len(it["candidates"][0]))]} for it in body["items"]]})

    scorer = filter_run.UnitScorer(ScoringConfig(backend="serve", serve_url="http://rm"))
    scorer._client = RewardClient("http://rm", transport=httpx.MockTransport(handler))
    cands = [json.dumps([{"name": "get_weather", "arguments": {"city": "x" * i}}]) for i in range(70)]
    conv = json.dumps([{"role": "user", "content": "hi"}])
    got = scorer.score([json.dumps(TOOLS)] * 70, [conv] * 70, cands)
    assert got == [float(len(c)) for c in cands] and seen == [64, 6]


def _actor_handles(class_part: str):
    """Live actors whose class name contains `class_part` (Ray Data pool actors are anonymous:
    looked up in the GCS table, a private API, tests only)."""
    import ray
    from ray._private import state

    cw = ray._private.worker.global_worker.core_worker
    return [cw.get_actor_handle(ray.ActorID.from_hex(aid)) for aid, a in state.actors().items()
            if class_part in a.get("ActorClassName", "") and a.get("State") == "ALIVE"]


@pytest.mark.slow
def test_killed_scoring_actor_restarts_and_loses_nothing(ray_local, tiny_rm, corpus, tmp_path):
    """`ray.kill` on the scoring pool's actor mid-run: Ray restarts it and resubmits its batch;
    the run's counts and its (unit, reward) set equal an uninterrupted run's."""
    import threading
    import time

    import ray

    corpus_dir, _ = corpus
    extra = ("policy.kind=threshold", "policy.threshold=0.0", "model.batch_size=4", "actors.batch_size=4")
    ref = filter_run.run(_cfg(corpus_dir, tmp_path / "fresh", tiny_rm, *extra))
    out = tmp_path / "killed"
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(stats=filter_run.run(_cfg(corpus_dir, out, tiny_rm, *extra))),
                         daemon=True)
    t.start()
    killed = 0
    deadline = time.time() + 120
    while t.is_alive() and time.time() < deadline and not killed:
        handles = _actor_handles("ScoreUnits")
        if handles and (out / "scored").is_dir():  # the pool is up and scoring
            ray.kill(handles[0], no_restart=False)
            killed += 1
        time.sleep(0.05)
    t.join(timeout=300)
    assert killed == 1, "the scoring actor was not killed mid-run"
    stats = result["stats"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest.get("complete")
    for k in ("rows_in", "units_in", "kept", "dropped", "quarantined"):
        assert stats[k] == ref[k], k
    got = sorted((r["unit_id"], round(r["reward"], 5)) for r in _read(out, "kept") + _read(out, "dropped"))
    fresh = sorted((r["unit_id"], round(r["reward"], 5)) for r in _read(tmp_path / "fresh", "kept") + _read(tmp_path / "fresh", "dropped"))
    assert got == fresh and len({u for u, _ in got}) == len(got)
    print(f"[scoring actor kill] units {stats['units_in']}: kept {stats['kept']}, dropped {stats['dropped']}, "
          f"quarantined {stats['quarantined']}; identical to the uninterrupted run")
