"""A small fake OpenAI-compatible upstream for the gateway's fault tests, served by uvicorn on
loopback in a thread. The request's `model` picks the behaviour (see `fake_upstream_app`)."""

# No `from __future__ import annotations`: FastAPI reads the route signatures at definition time.

import asyncio
import json
import socket
import threading
import time
from contextlib import contextmanager

CITIES = ["Paris", "Rome", "Paris", "Oslo", "Paris", "Rome", "Lima", "Paris"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(city: str, i: int) -> dict:
    return {"id": f"call_up_{i}", "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}


def _completion(choices: list[dict], model: str) -> dict:
    return {"id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": model, "choices": choices,
            "usage": {"prompt_tokens": 10, "completion_tokens": 5 * len(choices), "total_tokens": 10 + 5 * len(choices)}}


def fake_upstream_app(calls: list):
    """Behaviours by `model`: ok (honours n, tool_calls), ignore-n (always one choice), slow
    (sleeps 3 s), 503-once (first call 503, then ok), 429 (always 429), 400 (a client error),
    malformed (200 with a body that is not JSON), unparseable (choice 0 prose, others calls),
    text-calls (calls as `<tool_call>` text in content), bad-args (arguments not JSON), every-other-500
    (odd calls 500). Every request body is appended to `calls`."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

    api = FastAPI()

    @api.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "fake", "object": "model"}]}

    @api.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        calls.append(body)
        kind, n = body.get("model"), int(body.get("n") or 1)
        seed = int(body.get("seed") or 0)
        if kind == "slow":
            await asyncio.sleep(3)
        if kind == "429":
            return JSONResponse({"error": {"message": "rate limited", "type": "rate_limit", "code": 429}},
                                status_code=429)
        if kind == "400":
            return JSONResponse({"error": {"message": "bad temperature", "type": "invalid_request_error",
                                           "param": "temperature", "code": 400}}, status_code=400)
        if kind == "503-once" and sum(c.get("model") == "503-once" for c in calls) == 1:
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        if kind == "every-other-500" and len(calls) % 2 == 0:
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if kind == "malformed":
            return PlainTextResponse("{not json", media_type="application/json")
        if not body.get("tools"):  # plain chat: echo, streamed when asked
            msg = {"role": "assistant", "content": "plain answer"}
            if body.get("stream"):
                async def sse():
                    for part in ("plain ", "answer"):
                        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": kind,
                                 "choices": [{"index": 0, "delta": {"content": part}, "finish_reason": None}]}
                        yield f"data: {json.dumps(chunk)}\n\n"
                    yield "data: [DONE]\n\n"
                return StreamingResponse(sse(), media_type="text/event-stream")
            return _completion([{"index": 0, "message": msg, "finish_reason": "stop"}], kind)
        if kind == "ignore-n":
            n = 1
        choices = []
        for i in range(n):
            j = i + seed
            city = CITIES[j % len(CITIES)]
            if kind == "unparseable" and i == 0:
                msg = {"role": "assistant", "content": "I would rather not call anything."}
            elif kind == "text-calls":
                msg = {"role": "assistant",
                       "content": f'<tool_call>{{"name": "get_weather", "arguments": {{"city": "{city}"}}}}</tool_call>'}
            elif kind == "bad-args" and i == 0:
                msg = {"role": "assistant", "content": None,
                       "tool_calls": [{"id": "x", "type": "function",
                                       "function": {"name": "get_weather", "arguments": "{city: Paris"}}]}
            else:
                msg = {"role": "assistant", "content": None, "tool_calls": [_call(city, j)]}
            choices.append({"index": i, "message": msg, "finish_reason": "tool_calls"})
        return _completion(choices, kind)

    return api


@contextmanager
def serve_in_thread(app, port: int | None = None):
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a daemon thread; yields its base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=10)


TOOL_JSON = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TRAIN_CITIES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Tokyo"]


def build_tool_calling_lm(out, steps: int = 300):
    """A tiny causal LM (2-layer Qwen3, head_dim 32 for vLLM's CPU attention) with a byte-level
    BPE tokenizer, trained for a few seconds to answer "weather in <city>?" with a Hermes
    `<tool_call>{...}</tool_call>`: so a real `vllm serve --tool-call-parser hermes` returns parsed
    tool calls, and samples at temperature 1 differ (the city is not always right)."""
    from pathlib import Path

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    from fcrm_ray.generate.backends import TINY_CHAT_TEMPLATE

    out = Path(out)
    if (out / "config.json").is_file():
        return out
    tools = [TOOL_JSON]
    pairs = []
    for city in TRAIN_CITIES:
        msgs = [{"role": "user", "content": f"weather in {city}?"}]
        call = json.dumps({"name": "get_weather", "arguments": {"city": city}})
        pairs.append((msgs, f"<tool_call>\n{call}\n</tool_call>"))
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    eos = "<|endoftext|>"
    tok = None
    corpus = [json.dumps(tools)] + [m[0]["content"] + a for m, a in pairs]
    tk.train_from_iterator(corpus * 10, trainers.BpeTrainer(vocab_size=600, special_tokens=[eos],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token=eos, pad_token=eos)
    tok.chat_template = TINY_CHAT_TEMPLATE
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=2048,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(cfg)
    seqs = []
    for msgs, answer in pairs:
        prompt = tok.apply_chat_template(msgs, tools=tools, add_generation_prompt=True, tokenize=False)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        seqs.append((p_ids + a_ids, [-100] * len(p_ids) + a_ids))
    width = max(len(s) for s, _ in seqs)
    ids = torch.tensor([s + [tok.pad_token_id] * (width - len(s)) for s, _ in seqs])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in seqs])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.replace(out)
    return out
