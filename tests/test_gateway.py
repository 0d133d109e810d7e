"""The Best-of-N gateway without Ray: the pure core (candidates from upstream responses, selection
= `fcrm eval bon`'s, response and SSE shaping) and the request handling against a small fake
upstream on loopback (slow, 5xx, 429, malformed JSON, unparseable candidates, an upstream that
ignores `n`), with auth and limits as `fcrm serve`. The scorer here is a fake; the real reward
model and a real vLLM upstream are in test_gateway_e2e.py."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from fcrm_ray.config import ConfigError, load_config
from fcrm_ray.evaluate import metrics as M
from fcrm_ray.gateway import core
from fcrm_ray.gateway.config import GatewayConfig
from fcrm_ray.gateway.service import Gateway, gateway_api
from fcrm_ray.gateway.upstream import make_client
from fcrm_ray.serve.guard import RequestError
from fcrm_ray.toolcall.verify import canonical_key
from gateway_fakes import fake_upstream_app, serve_in_thread

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
MESSAGES = [{"role": "user", "content": "Weather in Paris?"}]


def _resp(*messages, usage=(10, 5)):
    return {"choices": [{"index": i, "message": m, "finish_reason": "tool_calls"} for i, m in enumerate(messages)],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}}


def _tc(city, cid="c1"):
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": cid, "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}]}


# --- pure core ---------------------------------------------------------------------------------

def test_candidates_read_tool_calls_text_calls_and_prose():
    cands = core.candidates_from_responses([
        _resp(_tc("Paris"), {"role": "assistant", "content": '<tool_call>{"name": "get_weather", '
                                                             '"arguments": {"city": "Rome"}}</tool_call>'}),
        _resp({"role": "assistant", "content": "no idea"},
              {"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": "{bad"}}]})])
    assert [c.calls[0].arguments["city"] if c.calls else None for c in cands] == ["Paris", "Rome", None, None]
    assert cands[0].key == canonical_key([{"name": "get_weather", "arguments": {"city": "Paris"}}])
    assert cands[2].key.startswith(M.UNPARSEABLE_KEY_PREFIX) and cands[3].key.startswith(M.UNPARSEABLE_KEY_PREFIX)
    assert json.loads(cands[0].text) == [{"name": "get_weather", "arguments": {"city": "Paris"}}]


def test_choices_are_ordered_by_index_and_usage_is_summed():
    r = _resp(_tc("A"), _tc("B"))
    r["choices"].reverse()
    assert [c.calls[0].arguments["city"] for c in core.candidates_from_responses([r])] == ["A", "B"]
    assert core.sum_usage([_resp(_tc("A")), _resp(_tc("B"), usage=(3, 4)), {"no": "usage"}]) == {
        "prompt_tokens": 13, "completion_tokens": 9, "total_tokens": 22}


@pytest.mark.parametrize("rule,sel", [("rm", "rm"), ("vote", "vote_sum"), ("majority", "majority_rm"), ("first", "first")])
def test_selection_is_the_eval_bon_pick(rule, sel):
    keys = ["a", "b", "b", "c", "unparseable:x"]
    raw = [0.1, None, 0.3, 2.0, float("nan")]
    picked, filled, flags = core.select(raw, keys, rule, 2.0)
    ref_filled, ref_flags = M.fill_unscorable_rewards(raw)
    assert (filled, flags) == (ref_filled, ref_flags)
    expect = 0 if sel == "first" else M.pool_picks(ref_filled, keys, len(keys), 2.0).get(sel)
    assert picked == expect
    assert flags == [False, True, False, False, True]


def test_unscorable_candidates_rank_last_under_rm():
    picked, filled, _ = core.select([None, -5.0, None], ["a", "b", "c"], "rm")
    assert picked == 1 and filled[0] < -5.0 and filled[2] < -5.0


def test_plan_decides_best_of_n_and_names_bad_fields():
    sel = load_config(GatewayConfig, None, ["upstream.url=http://x/v1", "model.path=rm"]).selection
    p = core.plan_request({"model": "m", "messages": MESSAGES, "tools": TOOLS, "n": 8, "temperature": 0.7}, sel)
    assert p.best_of_n and p.n == 8 and p.rule == "vote"
    assert core.plan_request({"messages": MESSAGES, "tools": TOOLS, "tool_choice": "none"}, sel).best_of_n is False
    assert core.plan_request({"messages": MESSAGES}, sel).best_of_n is False
    p = core.plan_request({"messages": MESSAGES, "tools": TOOLS, "fcrm": {"rule": "rm", "n": 2}}, sel)
    assert (p.n, p.rule) == (2, "rm")
    body = core.upstream_body(p, 1, "up", seed_offset=3)
    assert "fcrm" not in body and body["n"] == 1 and body["model"] == "up" and "seed" not in body
    for bad, field in [({"messages": []}, "messages"), ({"messages": [{"role": "robot", "content": "x"}]},
                                                         "messages[0].role"),
                       ({"messages": MESSAGES, "tools": TOOLS, "n": 0}, "n"),
                       ({"messages": MESSAGES, "tools": TOOLS, "n": 99}, "n"),
                       ({"messages": MESSAGES, "tools": TOOLS, "fcrm": {"rule": "best"}}, "fcrm.rule"),
                       ({"messages": MESSAGES, "tools": [{"type": "function"}]}, "tools"), ([1], "body")]:
        with pytest.raises(RequestError) as e:
            core.plan_request(bad, sel)
        assert e.value.status == 422 and e.value.field == field, (bad, e.value)


def test_response_is_openai_shaped_and_streams_as_chunks():
    cands = core.candidates_from_responses([_resp(_tc("Paris", "up1"), {"role": "assistant", "content": "prose"})])
    out = core.completion_response(cands, 0, [1.0, 0.0], [False, False], model="m", usage={"total_tokens": 3},
                                   rule="rm", n_asked=2, extension=True, completion_id="chatcmpl-1", created=5)
    msg = out["choices"][0]["message"]
    assert out["object"] == "chat.completion" and out["choices"][0]["finish_reason"] == "tool_calls"
    assert msg["tool_calls"] == [{"id": "up1", "type": "function",
                                  "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    assert out["fcrm"]["candidates"][1] == {"index": 1, "calls": None, "content": "prose", "reward": 0.0,
                                            "unscorable": False, "parse_error": cands[1].parse_error, "error": None}
    chunks = core.stream_chunks(out, include_usage=True)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls" and chunks[-1]["usage"] == {"total_tokens": 3}
    lines = core.sse_lines(chunks)
    assert lines[-1] == b"data: [DONE]\n\n" and all(x.startswith(b"data: ") for x in lines)
    # a pick whose calls came as text gets generated ids
    text = core.candidates_from_responses([_resp({"role": "assistant", "content": '{"name": "f", "arguments": {}}'})])
    m, finish = core.chosen_message(text[0])
    assert finish == "tool_calls" and m["content"] is None and m["tool_calls"][0]["id"].startswith("call_")


def test_config_rejects_bad_values_naming_the_key():
    for override, key in [("upstream.url=localhost:8000", "upstream.url"), ("upstream.n_mode=some", "upstream.n_mode"),
                          ("selection.rule=best", "selection.rule"), ("selection.n=40", "selection.n"),
                          ("host=0.0.0.0", "auth_token")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(GatewayConfig, None, ["upstream.url=http://x/v1", "model.path=rm", override])


# --- request handling against a fake upstream ------------------------------------------------------

async def fake_score(tools, messages, texts):
    """Rewards: Paris 1.0, Rome 0.5, other calls 0.0; text that mentions "boom" breaks scoring."""
    out = []
    for t in texts:
        if "Oslo" in t:
            out.append({"error": "score failed: RuntimeError: boom"})
        else:
            out.append(1.0 if "Paris" in t else 0.5 if "Rome" in t else None if not t else 0.0)
    return out


@pytest.fixture(scope="module")
def upstream():
    calls: list = []
    with serve_in_thread(fake_upstream_app(calls)) as url:
        yield url, calls


def _gateway(url, *overrides, score=fake_score):
    cfg = load_config(GatewayConfig, None, [f"upstream.url={url}/v1", "model.path=rm", "upstream.timeout_s=1",
                                            "upstream.retries=1", "upstream.retry_backoff_s=0.01", *overrides])
    state = {}
    api = gateway_api(state)
    state["gateway"] = Gateway(cfg, make_client(cfg.upstream), score)
    state["settings"].update(token=cfg.resolved_token(), max_body_bytes=cfg.limits.max_body_bytes, route_prefix="/")
    api.state.gateway = state["gateway"]
    return state["gateway"], api


def _post(api, body, headers=None, raw=None):
    async def go():
        gw = api.state.gateway
        gw.client = make_client(gw.cfg.upstream)  # a pool per event loop: each call runs its own loop
        transport = httpx.ASGITransport(app=api)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
                return await c.post("/v1/chat/completions", content=raw if raw is not None else json.dumps(body),
                                    headers={"content-type": "application/json", **(headers or {})})
        finally:
            await gw.client.aclose()

    return asyncio.run(go())


def _req(model, **kw):
    return {"model": model, "messages": MESSAGES, "tools": TOOLS, **kw}


def test_best_of_n_picks_by_rule_and_reports_candidates(upstream):
    url, calls = upstream
    gw, api = _gateway(url)
    calls.clear()
    r = _post(api, _req("ok", n=4, fcrm={"rule": "rm", "candidates": True}))
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(calls) == 1 and calls[0]["n"] == 4 and "fcrm" not in calls[0]
    assert json.loads(out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert out["usage"] == {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    ext = out["fcrm"]
    assert ext["rule"] == "rm" and ext["received"] == 4 and [c["reward"] for c in ext["candidates"]][:2] == [1.0, 0.5]
    assert ext["candidates"][3]["error"] and ext["candidates"][3]["unscorable"]  # Oslo broke scoring: alone
    assert ext["stats"]["asked"] == 4 and ext["stats"]["scored"] == 3
    # majority over canonical calls: Paris x2 of the first 4 (Paris, Rome, Paris, Oslo)
    out = _post(api, _req("ok", n=4, fcrm={"rule": "majority"})).json()
    assert "fcrm" not in out and json.loads(
        out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert gw.counts["bon_requests"] == 2 and gw.counts["candidates_asked"] == 8


def test_upstream_ignoring_n_is_topped_up_with_parallel_calls(upstream):
    url, calls = upstream
    _, api = _gateway(url)
    calls.clear()
    out = _post(api, _req("ignore-n", n=3, seed=7, fcrm={"candidates": True})).json()
    assert out["fcrm"]["received"] == 3 and out["fcrm"]["stats"]["upstream_calls"] == 3
    assert [c["n"] for c in calls] == [3, 1, 1] and sorted(c["seed"] for c in calls[1:]) == [8, 9]
    _, api = _gateway(url, "upstream.n_mode=parallel")
    calls.clear()
    out = _post(api, _req("ok", n=3, fcrm={"candidates": True})).json()
    assert [c["n"] for c in calls] == [1, 1, 1] and out["fcrm"]["received"] == 3


def test_retries_on_5xx_then_succeeds(upstream):
    url, calls = upstream
    _, api = _gateway(url)
    calls.clear()
    r = _post(api, _req("503-once", n=2))
    assert r.status_code == 200 and len(calls) == 2


@pytest.mark.parametrize("model,status", [("429", 429), ("400", 400), ("malformed", 502), ("slow", 504)])
def test_all_candidates_failing_gives_the_upstream_status_and_error(upstream, model, status):
    url, calls = upstream
    _, api = _gateway(url, "upstream.timeout_s=0.3")
    calls.clear()
    r = _post(api, _req(model, n=2))
    assert r.status_code == status, r.text
    err = r.json()["error"]
    if model == "429":
        assert err["message"] == "rate limited" and len(calls) == 2  # retried once, then passed through
    if model == "400":
        # a 400 to `n` is tried once more as n=1 calls (upstreams that refuse `n`), never retried as such
        assert err["param"] == "temperature" and [c["n"] for c in calls] == [2, 1, 1]
    if model in ("malformed", "slow"):
        assert "malformed" in err["message"] or "timed out" in err["message"]


def test_partial_failures_keep_the_rest_and_min_candidates(upstream):
    url, calls = upstream
    _, api = _gateway(url, "upstream.n_mode=parallel", "upstream.retries=0")
    calls.clear()
    out = _post(api, _req("every-other-500", n=4, fcrm={"candidates": True})).json()
    assert out["fcrm"]["received"] == 2 and out["fcrm"]["stats"]["upstream_errors"] == 2
    _, api = _gateway(url, "upstream.n_mode=parallel", "upstream.retries=0", "selection.min_candidates=3")
    calls.clear()
    r = _post(api, _req("every-other-500", n=4))
    assert r.status_code == 502 and "min_candidates" in r.json()["error"]["message"]


def test_request_timeout(upstream):
    url, _ = upstream
    _, api = _gateway(url, "selection.request_timeout_s=0.2", "upstream.timeout_s=5")
    r = _post(api, _req("slow", n=1))
    assert r.status_code == 504 and "request_timeout_s" in r.json()["error"]["message"]


def test_unparseable_and_text_candidates(upstream):
    url, _ = upstream
    _, api = _gateway(url)
    out = _post(api, _req("unparseable", n=3, fcrm={"rule": "first", "candidates": True})).json()
    # `first` keeps the prose (a control); its message is text, not tool calls
    assert out["choices"][0]["message"]["content"] == "I would rather not call anything."
    assert out["choices"][0]["finish_reason"] != "tool_calls" and out["fcrm"]["candidates"][0]["calls"] is None
    out = _post(api, _req("unparseable", n=3, fcrm={"rule": "vote"})).json()  # prose forms no group
    assert out["choices"][0]["message"]["tool_calls"]
    out = _post(api, _req("bad-args", n=2, fcrm={"rule": "majority", "candidates": True})).json()
    assert out["fcrm"]["candidates"][0]["calls"] is None and out["fcrm"]["picked"] in (0, 1)
    out = _post(api, _req("text-calls", n=2, fcrm={"rule": "rm"})).json()  # calls in text -> OpenAI tool_calls
    tc = out["choices"][0]["message"]["tool_calls"][0]
    assert tc["id"].startswith("call_") and json.loads(tc["function"]["arguments"]) == {"city": "Paris"}


def test_streaming_best_of_n_and_pass_through(upstream):
    url, calls = upstream
    _, api = _gateway(url)
    r = _post(api, _req("ok", n=2, stream=True, stream_options={"include_usage": True}))
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [x[len("data: "):] for x in r.text.split("\n\n") if x]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert chunks[-1]["usage"]["total_tokens"] == 20
    calls.clear()
    r = _post(api, {"model": "plain", "messages": MESSAGES, "temperature": 0.5})
    assert r.json()["choices"][0]["message"]["content"] == "plain answer" and calls[0] == {
        "model": "plain", "messages": MESSAGES, "temperature": 0.5}  # unchanged
    r = _post(api, {"model": "plain", "messages": MESSAGES, "stream": True})
    assert "plain " in r.text and r.text.rstrip().endswith("[DONE]")
    r = _post(api, {"model": "400", "messages": MESSAGES, "tools": TOOLS, "tool_choice": "none"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"  # passed through, not retried


def test_auth_and_limits_as_fcrm_serve(upstream, monkeypatch):
    url, _ = upstream
    monkeypatch.setenv("FCRM_GATEWAY_TOKEN", "s3cret")
    _, api = _gateway(url, "limits.max_body_bytes=2000", "limits.max_string_chars=100")
    assert _post(api, _req("ok")).status_code == 401
    ok = {"Authorization": "Bearer s3cret"}
    assert _post(api, _req("ok", n=1), headers=ok).status_code == 200
    r = _post(api, None, headers=ok, raw=b'{"messages": [' + b" " * 3000 + b"]}")
    assert r.status_code == 413 and r.json()["field"] == "body"
    r = _post(api, None, headers=ok, raw=b"{nope")
    assert r.status_code == 400 and r.json()["field"] == "body"
    r = _post(api, _req("ok", messages=[{"role": "user", "content": "x" * 500}]), headers=ok)
    assert r.status_code == 422 and r.json()["field"] == "messages[0].content"


def test_upstream_key_goes_in_the_header_only(upstream, monkeypatch, caplog):
    url, calls = upstream
    monkeypatch.setenv("FCRM_UPSTREAM_API_KEY", "sk-upstream-secret")
    gw, api = _gateway(url)
    assert gw.client.headers["authorization"] == "Bearer sk-upstream-secret"
    calls.clear()
    with caplog.at_level("DEBUG"):
        _post(api, _req("ok", n=2))
    assert "sk-upstream-secret" not in caplog.text and "Weather in Paris" not in caplog.text
    assert "sk-upstream-secret" not in json.dumps(calls)


def test_pure_core_needs_no_ray_or_torch():
    import subprocess
    import sys

    code = "import sys, fcrm_ray.gateway.core, fcrm_ray.gateway.upstream; print('ray' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["False", "False"], out.stderr[-2000:]
