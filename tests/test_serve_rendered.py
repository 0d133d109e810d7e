"""Issue 17, serve side: rendered chat in, tool-aware rewards out.

Queries are built the way an RL framework builds them: a real `transformers` tokenizer with a
tool-calling chat template (tests/fixtures/chat_templates) renders the prompt with `tools=` and
the assistant's tool-call turn; the reward service must read the catalog, conversation and call
back and score them through the same rendering as `/v1/rewards`. Also: the unparsed rule, the
verifier in the reward (labels / reference, reward.mode), the client's retry and concurrency
behaviour, and (slow) OpenRLHF's own remote-RM client against a running `fcrm serve`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from fcrm_ray.config import load_config
from fcrm_ray.serve import app as serve_app
from fcrm_ray.serve.client import RewardClient, RewardServiceError
from fcrm_ray.serve.config import ServeConfig
from fcrm_ray.toolcall.schema import normalize_tools

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "tests" / "fixtures" / "chat_templates"
SPECIAL = {
    "qwen2_5": dict(eos_token="<|im_end|>", pad_token="<|endoftext|>"),
    "qwen3": dict(eos_token="<|im_end|>", pad_token="<|endoftext|>"),
    "hermes2pro": dict(bos_token="<|begin_of_text|>", eos_token="<|im_end|>"),
    "llama3_1": dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"),
    "mistral_v0_3": dict(bos_token="<s>", eos_token="</s>"),
}
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit"}},
        "required": ["city"]}}}]
SYSTEM = {"role": "system", "content": "You are a careful travel assistant."}
USER = {"role": "user", "content": "What's the weather in Paris, in celsius?"}
RIGHT = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
WRONG = {"name": "get_weather", "arguments": {"city": "London", "unit": "celsius"}}
LABEL = json.dumps([{"get_weather": {"city": ["Paris"], "unit": ["celsius", ""]}}])


@lru_cache(maxsize=None)
def tokenizer(name: str):
    """A real PreTrainedTokenizerFast (tiny word-level vocabulary, no hub) carrying the template."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    special = SPECIAL[name]
    vocab = {"[UNK]": 0, **{t: i + 1 for i, t in enumerate(special.values())}}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")),
                                   unk_token="[UNK]", chat_template=(TEMPLATES / f"{name}.jinja").read_text(), **special)


def rendered(name: str, call: dict | None, messages=(SYSTEM, USER), tools=TOOLS, text: str = "") -> tuple[str, str]:
    """(prompt, response) as the policy's tokenizer renders them (response: the rest of the full
    rendering with the assistant turn: the call, or `text` when call is None)."""
    tok = tokenizer(name)
    msgs = list(messages)
    turn = {"role": "assistant", "content": text} if call is None else {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call00001", "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]}
    prompt = tok.apply_chat_template(msgs, tools=tools, add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(msgs + [turn], tools=tools, tokenize=False)
    if not full.startswith(prompt):
        # Mistral's template folds the system prompt into the LAST user turn, so a finished
        # conversation renders differently from the generation prompt; the policy's response is
        # what it writes after the prompt's final [/INST].
        assert name == "mistral_v0_3"
        return prompt, full[full.rfind("[/INST]") + len("[/INST]"):]
    return prompt, full[len(prompt):]


def _cfg(*overrides: str) -> ServeConfig:
    return load_config(ServeConfig, None, ["models.fcrm-rm.path=/nonexistent/rm", "limits.model_retry_backoff_s=0",
                                           *overrides])


def _recording_models(calls: list, score=lambda c: 1.0):
    async def score_group(tools, messages, candidates):
        calls.append((tools, messages, list(candidates)))
        return [score(c) for c in candidates]

    async def score_texts(prompts, completions):
        calls.append(("text", list(prompts), list(completions)))
        return [2.0 for _ in completions]

    async def info():
        return {"details": {"reward_lower_bound": 10.0}}

    ns = lambda f: SimpleNamespace(remote=f)  # noqa: E731
    return {"fcrm-rm": SimpleNamespace(score_group=ns(score_group), score_texts=ns(score_texts), info=ns(info))}


def _run(handler, body, cfg=None, models=None):
    out = asyncio.run(handler(cfg or _cfg(), models, json.dumps(body).encode()))
    if hasattr(out, "status_code"):
        return out.status_code, json.loads(out.body)
    return 200, out


FAMILIES = sorted(SPECIAL)


@pytest.mark.parametrize("name", FAMILIES)
def test_get_reward_reads_catalog_messages_and_call_from_rendered_text(name):
    calls: list = []
    prompt, response = rendered(name, RIGHT)
    status, out = _run(serve_app.handle_get_reward, {"query": [prompt + response], "prompts": [prompt]},
                       models=_recording_models(calls))
    assert status == 200, out
    assert out["rewards"] == [1.0] and out["extra_logs"]["no_catalog"] == [0.0] and out["extra_logs"]["no_call"] == [0.0]
    (tools, messages, cands), = calls  # one candidate scored through the structured path
    assert [t.to_dict() for t in normalize_tools(tools)] == [t.to_dict() for t in normalize_tools(TOOLS)]
    assert messages[-1]["role"] == "user" and "Paris" in messages[-1]["content"]
    from fcrm_ray.toolcall.parse import parse_calls

    got = parse_calls(cands[0]).calls
    assert [(c.name, c.arguments) for c in got] == [(RIGHT["name"], RIGHT["arguments"])]
    # without `prompts` the query is split after the family's last assistant header
    calls.clear()
    if name != "mistral_v0_3" or "[/INST]" in prompt:
        status, out2 = _run(serve_app.handle_get_reward, {"query": [prompt + response]}, models=_recording_models(calls))
        assert status == 200 and out2["extra_logs"]["no_catalog"] == [0.0] and len(calls) == 1


@pytest.mark.parametrize("rule", ["penalty", "raw_text"])
def test_unparsed_queries_follow_the_configured_rule(rule):
    calls: list = []
    no_tools = rendered("qwen2_5", RIGHT, tools=None)
    no_call = rendered("qwen2_5", None, text="It is sunny in Paris.")
    good = rendered("qwen2_5", RIGHT)
    queries = [p + r for p, r in (no_tools, no_call, good)]
    status, out = _run(serve_app.handle_get_reward, {"query": queries, "prompts": [no_tools[0], no_call[0], good[0]]},
                       cfg=_cfg(f"reward.unparsed={rule}"), models=_recording_models(calls))
    assert status == 200, out
    logs = out["extra_logs"]
    assert logs["no_catalog"] == [1.0, 0.0, 0.0] and logs["no_call"] == [0.0, 1.0, 0.0]
    if rule == "penalty":
        assert out["rewards"][:2] == [-11.0, -11.0] and logs["unscorable"] == [1.0, 1.0, 0.0]
        assert len(calls) == 1  # only the parsed query reached the model
    else:
        assert out["rewards"] == [2.0, 2.0, 1.0]  # raw text scored (fake: 2.0), parsed via the candidate path
        assert calls[1][0] == "text" and calls[1][2][1].startswith("It is sunny")


def _backend_models(backend):
    async def score_group(tools, messages, candidates):
        return backend.score_units([("cand", tools, messages, c) for c in candidates])

    async def score_texts(prompts, completions):
        return backend.score_units([("text", p, c) for p, c in zip(prompts, completions)])

    async def info():
        return {"details": {"reward_lower_bound": backend.lower_bound}}

    ns = lambda f: SimpleNamespace(remote=f)  # noqa: E731
    return {"fcrm-rm": SimpleNamespace(score_group=ns(score_group), score_texts=ns(score_texts), info=ns(info))}


@pytest.fixture(scope="module", params=["bert", "qwen3"])
def backend(request, tmp_path_factory):
    from fcrm_ray.models import build_tiny_bert_rm, build_tiny_qwen3_rm
    from fcrm_ray.serve.config import ModelConfig

    build = build_tiny_bert_rm if request.param == "bert" else build_tiny_qwen3_rm
    path = build(tmp_path_factory.mktemp("rm") / request.param)
    return serve_app.RewardBackend(ModelConfig(name="rm", path=str(path), batch_size=8, max_length=512))


@pytest.mark.parametrize("name", FAMILIES)
def test_rendered_text_gets_the_reward_of_the_structured_item(backend, name):
    """/get_reward on the policy's rendered text == /v1/rewards on the same tools, messages and
    call (the RM's own rendering of them), for a right and a wrong call."""
    models = _backend_models(backend)
    for call in (RIGHT, WRONG):
        prompt, response = rendered(name, call)
        _, got = _run(serve_app.handle_get_reward, {"query": [prompt + response], "prompts": [prompt]}, models=models)
        _, want = _run(serve_app.handle_rewards, {"tools": TOOLS, "messages": [SYSTEM, USER], "candidates": [[call]]},
                       models=models)
        assert got["extra_logs"]["no_catalog"] == [0.0]
        if name == "mistral_v0_3":  # its template folds the system prompt into the user turn
            _, want = _run(serve_app.handle_rewards, {"tools": TOOLS, "messages": [
                {"role": "user", "content": SYSTEM["content"] + "\n\n" + USER["content"]}], "candidates": [[call]]},
                models=models)
        assert got["rewards"][0] == pytest.approx(want["rewards"][0], abs=1e-4), name
        # the /v1/rewards text variant gives the same
        _, via_text = _run(serve_app.handle_rewards, {"items": [{"text": prompt + response, "prompt": prompt}]},
                           models=models)
        assert via_text["results"][0]["parsed"] is True
        assert via_text["results"][0]["rewards"][0] == pytest.approx(got["rewards"][0], abs=1e-6)


@pytest.mark.parametrize("label", [LABEL, json.dumps([RIGHT]), [RIGHT], json.loads(LABEL)])
def test_labels_add_verdicts_and_error_types(label):
    calls: list = []
    qs = [rendered("qwen3", RIGHT), rendered("qwen3", WRONG), rendered("qwen3", None, text="no idea")]
    status, out = _run(serve_app.handle_get_reward, {"query": [p + r for p, r in qs], "prompts": [p for p, _ in qs],
                                                      "labels": [label] * 3}, models=_recording_models(calls))
    assert status == 200, out
    logs = out["extra_logs"]
    assert logs["verifier_correct"] == [1.0, 0.0, 0.0]
    assert out["error_types"] == ["", "incorrect_parameter_value", "incorrect_output_format"]
    assert logs["verifier_error/incorrect_parameter_value"] == [0.0, 1.0, 0.0]
    assert all(len(v) == 3 and all(isinstance(x, float) for x in v) for v in logs.values())


@pytest.mark.parametrize("mode", ["rm", "verifier", "mix"])
def test_reward_mode_combines_model_and_verifier(mode):
    scores = {True: 0.5, False: 0.7}  # the fake RM prefers the wrong call

    def score(c):
        return scores["Paris" in str(c)]

    qs = [rendered("qwen2_5", RIGHT), rendered("qwen2_5", WRONG)]
    body = {"query": [p + r for p, r in qs], "prompts": [p for p, _ in qs], "labels": [LABEL, LABEL]}
    status, out = _run(serve_app.handle_get_reward, body, cfg=_cfg(f"reward.mode={mode}", "reward.verifier_weight=2"),
                       models=_recording_models([], score))
    assert status == 200, out
    want = {"rm": [0.5, 0.7], "verifier": [1.0, -1.0], "mix": [0.5 + 2.0, 0.7 - 2.0]}[mode]
    assert out["rewards"] == pytest.approx(want)
    # /v1/rewards: the same rule, with the model's own rewards alongside
    item = {"tools": TOOLS, "messages": [USER], "candidates": [[RIGHT], [WRONG]], "reference": json.loads(LABEL)}
    status, out = _run(serve_app.handle_rewards, item, cfg=_cfg(f"reward.mode={mode}", "reward.verifier_weight=2"),
                       models=_recording_models([], score))
    assert out["rewards"] == pytest.approx(want)
    assert [v["correct"] for v in out["results"][0]["verdicts"]] == [True, False]
    if mode == "mix":
        assert out["results"][0]["model_rewards"] == pytest.approx([0.5, 0.7])
    if mode == "verifier":  # no reference, no verifier reward: a 422 naming the field
        status, out = _run(serve_app.handle_get_reward, {"query": ["x"]}, cfg=_cfg("reward.mode=verifier"),
                           models=_recording_models([]))
        assert status == 422 and out["field"] == "labels"


def test_bad_labels_are_a_422_naming_the_label():
    status, out = _run(serve_app.handle_get_reward, {"query": ["a", "b"], "labels": ["", "{not json"]},
                       models=_recording_models([]))
    assert status == 422 and out["field"] == "labels[1]"


# --- our client: retries and bounded concurrency -----------------------------------------------------

def test_client_retries_429_and_5xx_with_backoff_not_other_4xx():
    seen = []

    def handler(request):
        seen.append(1)
        if len(seen) == 1:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"detail": "slow down"})
        if len(seen) == 2:
            return httpx.Response(503, json={"detail": "replica restarting"})
        return httpx.Response(200, json={"rewards": [1.0], "scores": [0.7], "extra_logs": {}})

    rc = RewardClient("http://rm", retries=3, backoff=0.0, transport=httpx.MockTransport(handler))
    assert rc.get_reward(["q"])["rewards"] == [1.0] and len(seen) == 3 and rc.retried == 2
    for status in (400, 401, 404, 413, 422):
        seen.clear()
        rc = RewardClient("http://rm", retries=3, backoff=0.0,
                          transport=httpx.MockTransport(lambda r: (seen.append(1), httpx.Response(status, json={"detail": "no"}))[1]))
        with pytest.raises(RewardServiceError) as e:
            rc.get_reward(["q"])
        assert e.value.status == status and len(seen) == 1


def test_client_many_keeps_concurrency_bounded_and_order():
    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def handler(request):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        body = json.loads(request.content)
        with lock:
            state["now"] -= 1
        return httpx.Response(200, json={"rewards": [float(q) for q in body["query"]], "scores": [0.5] * len(body["query"]),
                                         "extra_logs": {"unscorable": [0.0] * len(body["query"])}})

    rc = RewardClient("http://rm", transport=httpx.MockTransport(handler), max_concurrency=3)
    out = rc.get_reward_many([str(i) for i in range(40)], chunk_size=4)
    assert out["rewards"] == [float(i) for i in range(40)] and len(out["extra_logs"]["unscorable"]) == 40
    assert 1 < state["peak"] <= 3


# --- OpenRLHF's own client against a running `fcrm serve` (slow) --------------------------------------

OPENRLHF_VERSION = "0.11.2"
# The wheel is pure Python but tagged cp311/manylinux1; these flags fetch that file whatever the
# interpreter running the tests.
_PIP_DOWNLOAD = ["--no-deps", "--only-binary=:all:", "--python-version", "3.11", "--platform", "manylinux1_x86_64"]


@pytest.fixture(scope="module")
def openrlhf_executor_cls(request):
    """OpenRLHF's `SingleTurnAgentExecutor` (its remote-RM client: `_fetch_rewards_via_http`), from
    the released wheel (downloaded once into pytest's cache dir, `.pytest_cache/d/`): only
    `openrlhf/utils/agent.py` and the `logging_utils.py` it imports are unpacked, and imported as
    the namespace package `openrlhf.utils` - so neither torch-heavy `__init__`s nor anything
    else of OpenRLHF runs, and nothing is stubbed. Needs aiohttp (a Ray Serve dependency)."""
    cache = Path(request.config.cache.mkdir(f"openrlhf-{OPENRLHF_VERSION}"))
    wheels = sorted(cache.glob(f"openrlhf-{OPENRLHF_VERSION}-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", *_PIP_DOWNLOAD, f"openrlhf=={OPENRLHF_VERSION}",
                        "-d", str(cache), "-q"], check=True, timeout=600)
        wheels = sorted(cache.glob(f"openrlhf-{OPENRLHF_VERSION}-*.whl"))
    src = cache / "src"
    with zipfile.ZipFile(wheels[0]) as z:
        for name in z.namelist():
            for want in ("openrlhf/utils/agent.py", "openrlhf/utils/logging_utils.py"):
                if name.endswith(want):
                    (src / want).parent.mkdir(parents=True, exist_ok=True)
                    (src / want).write_bytes(z.read(name))
    assert not (src / "openrlhf" / "__init__.py").exists()
    sys.path.insert(0, str(src))
    try:
        import importlib

        agent = importlib.import_module("openrlhf.utils.agent")
        yield agent.SingleTurnAgentExecutor
    finally:
        sys.path.remove(str(src))
        for k in [k for k in sys.modules if k == "openrlhf" or k.startswith("openrlhf.")]:
            del sys.modules[k]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fcrm_serve(tmp_path_factory):
    """`fcrm serve` as a user starts it (the CLI, its own local Ray), a tiny Qwen3 RM, loopback."""
    from fcrm_ray.models import build_tiny_qwen3_rm

    rm = build_tiny_qwen3_rm(tmp_path_factory.mktemp("rm") / "qwen3")
    port = _free_port()
    fcrm = Path(sys.executable).with_name("fcrm")
    cmd = [str(fcrm)] if fcrm.exists() else [sys.executable, "-m", "fcrm_ray.cli"]
    log = tmp_path_factory.mktemp("log") / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd + ["serve", "--config", str(REPO / "configs" / "serve.yaml"),
                                       f"models.fcrm-rm.path={rm}", f"port={port}", "ray.address=local",
                                       "models.fcrm-rm.max_length=1024", "models.fcrm-rm.ray_actor_options.num_cpus=0.5",
                                       "ingress.num_cpus=0.1", "app_name=fcrm-openrlhf"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "fcrm serve did not become ready: " + log.read_text()[-3000:]
            time.sleep(1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)  # `fcrm serve` shuts its own Ray down on SIGTERM
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.mark.slow
def test_openrlhf_client_gets_tool_aware_rewards_from_fcrm_serve(openrlhf_executor_cls, fcrm_serve):
    url = fcrm_serve
    executor = openrlhf_executor_cls(remote_rm_url=f"{url}/get_reward")
    qs = [rendered("qwen2_5", RIGHT), rendered("qwen2_5", WRONG), rendered("qwen2_5", None, text="I cannot help.")]
    queries, prompts = [p + r for p, r in qs], [p for p, _ in qs]
    got = asyncio.run(executor._fetch_rewards_via_http(queries, prompts, [LABEL] * 3))
    assert len(got) == 1  # one server: one request with all three queries
    info = got[0]
    assert len(info["rewards"]) == 3 and all(isinstance(x, float) for x in info["rewards"])
    logs = info["extra_logs"]
    assert logs["no_catalog"] == [0.0, 0.0, 0.0] and logs["no_call"] == [0.0, 0.0, 1.0]
    assert logs["verifier_correct"] == [1.0, 0.0, 0.0]
    assert info["error_types"] == ["", "incorrect_parameter_value", "incorrect_output_format"]
    assert info["rewards"][2] < min(info["rewards"][:2])  # no call: the unscorable penalty
    # OpenRLHF turns every extra_logs entry into a tensor: they must all be float lists
    assert all(isinstance(v, list) and all(isinstance(x, float) for x in v) for v in logs.values())
    # the tool-aware reward equals /v1/rewards on the same tools, messages and call
    with RewardClient(url, retries=2, timeout=60) as rc:
        want = rc.rewards(TOOLS, [SYSTEM, USER], [[RIGHT], [WRONG]])["rewards"]
    assert info["rewards"][:2] == pytest.approx(want, abs=1e-4)
    # a single query per request, as rollouts send them
    one = asyncio.run(executor._fetch_rewards_via_http(queries[:1], prompts[:1], [LABEL]))
    assert one[0]["rewards"] == pytest.approx(info["rewards"][:1], abs=1e-4)


def test_reward_config_is_validated_naming_the_key():
    from fcrm_ray.config import ConfigError

    for override, key in (("reward.mode=both", "reward.mode"), ("reward.unparsed=zero", "reward.unparsed"),
                          ("reward.chat_family=gpt9", "reward.chat_family"),
                          ("reward.unscorable_margin=0", "reward.unscorable_margin"),
                          ("reward.verifier_weight=-1", "reward.verifier_weight")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            _cfg(override)
    c = load_config(ServeConfig, str(REPO / "configs" / "serve.yaml"), [])
    assert (c.reward.mode, c.reward.unparsed, c.reward.unscorable_reward) == ("rm", "penalty", "auto")
