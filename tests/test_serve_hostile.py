"""Issue 16: the reward service under hostile and heavy use (fast tests, no Ray Serve).

1. every host that binds beyond loopback needs a token (an empty host included);
2. a poisoned unit in a batch fails alone (backend and micro-batcher), the others are scored;
3. an unscorable candidate gets less than any scorable one: the head's provable bound holds on
   random and saturated inputs, and the per-response cap holds for a configured penalty;
4. each listed hostile body gets its 4xx (never a 500) and the body limit holds while reading;
5. readiness is false while no model replica can answer.
Live versions (a real Serve app) are in test_serve_api.py and test_serve_faults.py."""

from __future__ import annotations

import asyncio
import json
import random
from types import SimpleNamespace

import pytest

from fcrm_ray.config import ConfigError, load_config
from fcrm_ray.serve import app as serve_app
from fcrm_ray.serve.config import ServeConfig

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
MESSAGES = [{"role": "user", "content": "Weather in Paris?"}]
GOOD = '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'
BAD = '[{"name": "get_weather", "arguments": {"city": "London"}}]'


def _cfg(*overrides: str) -> ServeConfig:
    return load_config(ServeConfig, None, ["models.fcrm-rm.path=/nonexistent/rm", *overrides])


# --- 1. no open door ---------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["", "0.0.0.0", "::", "[::]", "myhost.internal", "10.1.2.3", "192.0.2.2"])
def test_every_non_loopback_host_needs_a_token(monkeypatch, host):
    monkeypatch.delenv("FCRM_SERVE_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="auth_token"):
        _cfg(f"host='{host}'")
    assert _cfg(f"host='{host}'", "auth_token=s3cret").host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_hosts_need_no_token(monkeypatch, host):
    monkeypatch.delenv("FCRM_SERVE_TOKEN", raising=False)
    assert _cfg(f"host='{host}'").resolved_token() == ""


# --- 2. one bad unit fails alone ------------------------------------------------------------------

@pytest.fixture(scope="module")
def bert_backend(tmp_path_factory):
    from fcrm_ray.models import build_tiny_bert_rm
    from fcrm_ray.serve.config import ModelConfig

    path = build_tiny_bert_rm(tmp_path_factory.mktemp("rm") / "bert")
    return serve_app.RewardBackend(ModelConfig(name="rm", path=str(path), batch_size=8, max_length=256))


@pytest.fixture(scope="module")
def qwen_backend(tmp_path_factory):
    from fcrm_ray.models import build_tiny_qwen3_rm
    from fcrm_ray.serve.config import ModelConfig

    path = build_tiny_qwen3_rm(tmp_path_factory.mktemp("rm") / "qwen")
    return serve_app.RewardBackend(ModelConfig(name="rm", path=str(path), batch_size=8, max_length=256))


POISON = [  # messages the ingress now rejects; here they reach the replica directly
    [{"role": "user", "content": "hi", "tool_calls": 5}],
    [{"role": "assistant", "content": "", "tool_calls": [{"function": "x"}]}],
    [{"role": "user", "content": "hi"}, 7],
]


@pytest.mark.parametrize("backend_name", ["bert_backend", "qwen_backend"])
def test_poisoned_unit_in_a_batch_fails_alone(request, backend_name):
    backend = request.getfixturevalue(backend_name)
    good = [("cand", TOOLS, MESSAGES, c) for c in (GOOD, BAD, GOOD, BAD, GOOD)]
    alone = backend.score_units(good)
    assert all(isinstance(x, float) for x in alone)
    errors = 0
    for poison in POISON:
        units = good[:2] + [("cand", TOOLS, poison, GOOD)] + good[2:]
        out = backend.score_units(units)
        if isinstance(out[2], dict):  # a lenient chat template may render some of them anyway
            assert out[2]["error"].startswith("render failed"), out[2]
            errors += 1
        rest = out[:2] + out[3:]
        assert rest == pytest.approx(alone, abs=1e-5)  # the neighbours get their own rewards
    assert errors == (3 if backend_name == "bert_backend" else 2)  # qwen ignores tool_calls on a user turn


def test_micro_batcher_batches_what_queued_and_isolates_failures():
    """The next batch is everything that queued during the running forward (not what arrived in
    a fixed window), and a failing batch function fails only its own batch."""
    seen: list[list] = []

    def fn(units):
        import time

        seen.append(list(units))
        time.sleep(0.05)  # a forward; the others queue meanwhile
        if "boom" in units:
            raise RuntimeError("boom")
        return [u * 2 for u in units]

    async def main():
        b = serve_app.MicroBatcher(fn, max_batch_size=16, wait_s=0.0)
        first = asyncio.ensure_future(b.submit(1))
        await asyncio.sleep(0.01)  # the first forward is running
        rest = await asyncio.gather(*(b.submit(i) for i in range(2, 12)))
        failed = await asyncio.gather(b.submit("boom"))
        after = await b.submit(21)
        return await first, rest, failed, after, b

    first, rest, failed, after, b = asyncio.run(main())
    assert first == 2 and rest == [2 * i for i in range(2, 12)] and after == 42
    assert seen[0] == [1] and seen[1] == list(range(2, 12))  # 10 queued during one forward -> one batch
    assert failed[0]["error"].startswith("batch failed: RuntimeError")
    assert b.batches == 4 and b.units == 13


def test_micro_batcher_respects_max_batch_size():
    seen: list[int] = []

    def fn(units):
        seen.append(len(units))
        return list(units)

    async def main():
        b = serve_app.MicroBatcher(fn, max_batch_size=4, wait_s=0.01)
        return await asyncio.gather(*(b.submit(i) for i in range(10)))

    assert asyncio.run(main()) == list(range(10))
    assert max(seen) <= 4 and sum(seen) == 10 and seen[0] == 4  # the idle wait collected a full batch


# --- 3. unscorable < every scorable reward ---------------------------------------------------------

def _random_texts(rng: random.Random, n: int) -> list[tuple[str, str]]:
    words = ["get_weather", "city", "Paris", "[CALL]", "[USER]", "{", "}", "12", "-3.5", "null", "error", "<tool_call>",
             "the", "of", "unknown", "zzz", "!!!", "[TOOLS]"]
    return [(" ".join(rng.choice(words) for _ in range(rng.randint(1, 60))),
             " " + " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))) for _ in range(n)]


@pytest.mark.parametrize("backend_name", ["bert_backend", "qwen_backend"])
def test_head_bound_holds_on_random_and_saturated_heads(request, backend_name):
    import torch

    backend = request.getfixturevalue(backend_name)
    model = backend.scorer.model
    bound = backend.lower_bound
    assert bound is not None and bound > 0
    texts = _random_texts(random.Random(0), 64)
    scores = backend.scorer.score_texts([p for p, _ in texts], [c for _, c in texts])
    assert min(scores) > -bound
    # Drive the head to its extreme and check the bound still holds: BERT's pooler forced to
    # tanh = -sign(w) (the worst case, r = -|w|_1 + b), Qwen's final norm scaled up 50x.
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        with torch.no_grad():
            if hasattr(model, "classifier"):
                w = model.classifier.weight.reshape(-1)
                model.bert.pooler.dense.weight.zero_()
                model.bert.pooler.dense.bias.copy_(-1000.0 * torch.sign(w))
            else:
                model.model.norm.weight.mul_(50.0)
        new_bound = serve_app.head_lower_bound(model)
        scores = backend.scorer.score_texts([p for p, _ in texts], [c for _, c in texts])
        assert min(scores) >= -new_bound - 1e-4  # tanh rounds to exactly -1 in float: the margin covers it
        floor = serve_app.unscorable_value(load_config(ServeConfig, None, ["models.m.path=x"]).reward, new_bound, [])
        assert floor < min(scores)
        if hasattr(model, "classifier"):
            assert min(scores) < -0.99 * new_bound  # the bound is tight for BERT-style heads
    finally:
        model.load_state_dict(saved)


def _fake_models(scores_by_candidate: dict[str, float | None], bound: float | None = 5.0):
    async def score_group(tools, messages, candidates):
        return [scores_by_candidate.get(c if isinstance(c, str) else json.dumps(c), 0.0) for c in candidates]

    async def score_texts(prompts, completions):
        return [scores_by_candidate.get(c, 0.0) for c in completions]

    async def info():
        return {"details": {"reward_lower_bound": bound}}

    async def ready():
        return True

    ns = lambda f: SimpleNamespace(remote=f)  # noqa: E731
    return {"fcrm-rm": SimpleNamespace(score_group=ns(score_group), score_texts=ns(score_texts), info=ns(info),
                                       ready=ns(ready))}


def _run(handler, body, cfg, models):
    out = asyncio.run(handler(cfg, models, json.dumps(body).encode()))
    if hasattr(out, "status_code"):
        return out.status_code, json.loads(out.body)
    return 200, out


@pytest.mark.parametrize("penalty, bound", [("auto", 5.0), ("auto", None), ("0", 5.0), ("100", 5.0), ("-1000", 5.0)])
def test_unscorable_gets_less_than_every_scorable_reward(penalty, bound):
    cfg = _cfg(f"reward.unscorable_reward={penalty}")
    scores = {GOOD: -3.5, BAD: -4.9, "": None, "LONG": None}
    models = _fake_models(scores, bound)
    status, out = _run(serve_app.handle_rewards, {"tools": TOOLS, "messages": MESSAGES,
                                                   "candidates": [GOOD, "", BAD, "LONG"]}, cfg, models)
    assert status == 200, out
    r, flags = out["rewards"], out["results"][0]["unscorable"]
    assert flags == [False, True, False, True]
    assert max(r[1], r[3]) < min(r[0], r[2])
    if penalty == "auto" and bound is not None:
        assert r[1] == -bound - 1.0  # the head's bound minus the margin
    if penalty == "-1000":
        assert r[1] == -1000.0
    # /get_reward: the same rule, flagged in extra_logs (raw text: these queries carry no catalog)
    cfg = _cfg(f"reward.unscorable_reward={penalty}", "reward.unparsed=raw_text")
    status, out = _run(serve_app.handle_get_reward, {"query": ["p" + GOOD, "p", "p" + BAD, "pLONG"],
                                                      "prompts": ["p"] * 4}, cfg, models)
    assert status == 200, out
    r = out["rewards"]
    assert out["extra_logs"]["unscorable"] == [0.0, 1.0, 0.0, 1.0]
    assert max(r[1], r[3]) < min(r[0], r[2])
    assert out["scores"][1] < out["scores"][0]


def test_unscorable_value_rule():
    rc = _cfg().reward
    assert serve_app.unscorable_value(rc, 7.0, []) == -8.0
    assert serve_app.unscorable_value(rc, 7.0, [-20.0, 3.0]) == -21.0  # capped below the response's lowest
    assert serve_app.unscorable_value(rc, None, []) == serve_app.FALLBACK_FLOOR
    with pytest.raises(ConfigError, match="unscorable_reward"):
        _cfg("reward.unscorable_reward=lots")


# --- 4. hostile bodies get their 4xx -----------------------------------------------------------------

def _item(**kw):
    return {"tools": TOOLS, "messages": MESSAGES, "candidates": [GOOD], **kw}


HOSTILE = [
    ("5,000-digit integer", ('{"tools": [], "messages": [{"role": "user", "content": "x"}], "candidates": ["x"], '
                             '"id": ' + "9" * 5000 + "}").encode(), 400, "body"),
    ("5,000-digit integer in a query", ('{"query": [' + "9" * 5000 + "]}").encode(), 400, "body"),
    ("deep nesting in reference", json.dumps(_item(reference=[{"f": {"a": [json.loads("[" * 900 + "]" * 900)]}}])).encode(),
     422, "reference[0].f.a[0]"),
    ("deep nesting in a message", json.dumps(_item(messages=[{"role": "user", "content": json.loads("[" * 200 + "]" * 200)}])).encode(),
     422, "messages[0].content"),
    ("tool_calls = 5", json.dumps(_item(messages=[{"role": "user", "content": "x", "tool_calls": 5}])).encode(),
     422, "messages[0].tool_calls"),
    ("tool_calls = [{function: 'x'}]", json.dumps(_item(messages=[{"role": "assistant", "tool_calls": [{"function": "x"}]}])).encode(),
     422, "messages[0].tool_calls[0].function"),
    ("tool_calls without a name", json.dumps(_item(messages=[{"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}])).encode(),
     422, "messages[0].tool_calls[0].function.name"),
    ("unknown role", json.dumps(_item(messages=[{"role": "wizard", "content": "x"}])).encode(), 422, "messages[0].role"),
    ("a message that is not an object", json.dumps(_item(messages=[{"role": "user", "content": "x"}, 7])).encode(),
     422, "messages[1]"),
    ("3 MB tool name", json.dumps(_item(tools=[{"type": "function", "function": {"name": "f" * 3_000_000, "parameters": {}}}])).encode(),
     422, "tools[0].function.name"),
    ("huge key", json.dumps(_item(reference=[{"g" * 1000: {"a": [1]}}])).encode(), 422, "reference[0]"),
    ("malformed JSON", b'{"tools": [', 400, "body"),
    ("not UTF-8", b'\xff\xfe{"a": 1}', 400, "body"),
    ("batched item with bad tool_calls", json.dumps({"items": [_item(), _item(messages=[{"role": "user", "tool_calls": "x"}])]}).encode(),
     422, "items[1].messages[0].tool_calls"),
]


@pytest.mark.parametrize("name, body, status, field", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bodies_get_their_4xx(name, body, status, field):
    cfg = _cfg("limits.max_body_bytes=8000000")
    handler = serve_app.handle_get_reward if body.startswith(b'{"query"') else serve_app.handle_rewards
    out = asyncio.run(handler(cfg, _fake_models({}), body))
    assert out.status_code == status, (name, out.body[:300])
    got = json.loads(out.body)
    assert got["field"].startswith(field), got
    assert got["detail"]


def test_body_limit_enforced_while_reading():
    """A chunked upload is refused as soon as it passes the limit, not after it is held whole."""
    consumed = []

    class FakeRequest:
        async def stream(self):
            for i in range(1000):
                consumed.append(i)
                yield b"x" * 1000

    with pytest.raises(serve_app.RequestError) as e:
        asyncio.run(serve_app.read_body(FakeRequest(), 10_000))
    assert e.value.status == 413 and e.value.field == "body"
    assert len(consumed) == 11  # stopped at the chunk that crossed 10,000 bytes


# --- 5. readiness --------------------------------------------------------------------------------

def _health(ready_impl, timeout="0.3"):
    cfg = _cfg(f"limits.health_timeout_s={timeout}")
    models = _fake_models({})
    models["fcrm-rm"].ready = SimpleNamespace(remote=ready_impl)
    return asyncio.run(serve_app.handle_healthz(cfg, models, serve_app.ServiceState()))


def test_readiness_false_while_no_replica_can_score():
    from ray.exceptions import ActorDiedError

    async def ok():
        return True

    async def dead():
        raise ActorDiedError()

    async def hangs():
        await asyncio.sleep(30)

    status, body = _health(ok)
    assert status == 200 and body == {"status": "ok", "models": {"fcrm-rm": "ready"}}
    status, body = _health(dead)
    assert status == 503 and body["status"] == "unavailable" and "ActorDiedError" in body["models"]["fcrm-rm"]
    status, body = _health(hangs)
    assert status == 503 and "no answer" in body["models"]["fcrm-rm"]


def test_ingress_retries_a_dead_replica_then_503():
    from ray.exceptions import ActorDiedError

    calls = []

    async def flaky(tools, messages, candidates):
        calls.append(1)
        if len(calls) < 3:
            raise ActorDiedError()  # the first two land on the dead replica
        return [1.0 for _ in candidates]

    models = _fake_models({})
    models["fcrm-rm"].score_group = SimpleNamespace(remote=flaky)
    cfg = _cfg("limits.model_retry_backoff_s=0")
    status, out = _run(serve_app.handle_rewards, _item(), cfg, models)
    assert status == 200 and out["rewards"] == [1.0] and len(calls) == 3
    calls.clear()
    status, out = _run(serve_app.handle_rewards, _item(), _cfg("limits.model_retry_backoff_s=0", "limits.model_retries=1"),
                       models)
    assert status == 503 and len(calls) == 2
