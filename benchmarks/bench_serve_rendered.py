"""Does `/get_reward` on policy-rendered chat rank correct above wrong calls as well as
`/v1/rewards` on the same items? (issue 17)

    python benchmarks/bench_serve_rendered.py --model-path /tmp/h1/rm --pairs 48 --template qwen2_5

Items: held-out FC-RewardBench-style pairs (`fcrm bench build` output, split `test`, not
obfuscated; a seeded sample of `--pairs`). For each pair the two candidate calls are scored three
ways, with the same reward model and the same handler code the service's ingress runs
(`serve.app.handle_rewards` / `handle_get_reward`, model calls answered in-process by
`serve.app.RewardBackend`, so no HTTP noise):

- `v1_rewards`: `POST /v1/rewards` with tools, messages and the raw candidate texts;
- `get_reward`: `POST /get_reward` with OpenRLHF-style queries: the prompt rendered by a real
  tokenizer's `apply_chat_template(messages, tools=..., add_generation_prompt=True)` (the chat
  template fixture `--template`, Qwen2.5 by default) and the response as that template writes the
  policy's assistant turn (`<tool_call>` blocks; a candidate whose error is the output format keeps
  its raw text); the server parses them back (`toolcall.chat_parse`);
- `raw_text` (before issue 17): the same prompt/response texts scored as plain text.

Reported: pairwise accuracy (chosen reward > rejected reward) per route, the standard deviation
of the rewards, and how many queries were not parsed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPECIAL = {"qwen2_5": dict(eos_token="<|im_end|>", pad_token="<|endoftext|>"),
           "qwen3": dict(eos_token="<|im_end|>", pad_token="<|endoftext|>"),
           "hermes2pro": dict(bos_token="<|begin_of_text|>", eos_token="<|im_end|>"),
           "llama3_1": dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")}


def policy_tokenizer(name: str):
    """A real transformers tokenizer carrying the fixture chat template (tiny vocabulary: only the
    rendered text matters here, never its token ids)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    special = SPECIAL[name]
    vocab = {"[UNK]": 0, **{t: i + 1 for i, t in enumerate(special.values())}}
    text = (REPO / "tests" / "fixtures" / "chat_templates" / f"{name}.jinja").read_text()
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")),
                                   unk_token="[UNK]", chat_template=text, **special)


def render_query(tok, tools: list, messages: list, output: str, keep_raw: bool) -> tuple[str, str]:
    """(prompt, response) the way the policy's template writes them."""
    from fcrm_ray.toolcall.parse import parse_calls

    calls = None if keep_raw else parse_calls(output).calls
    turn = {"role": "assistant", "content": output} if not calls else {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]}
    prompt = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(messages + [turn], tools=tools, tokenize=False)
    assert full.startswith(prompt), "template broke the prefix property"
    return prompt, full[len(prompt):]


def _models(backend):
    async def score_group(tools, messages, candidates):
        return backend.score_units([("cand", tools, messages, c) for c in candidates])

    async def score_texts(prompts, completions):
        return backend.score_units([("text", p, c) for p, c in zip(prompts, completions)])

    async def info():
        return {"details": {"reward_lower_bound": backend.lower_bound}}

    ns = lambda f: SimpleNamespace(remote=f)  # noqa: E731
    return {"rm": SimpleNamespace(score_group=ns(score_group), score_texts=ns(score_texts), info=ns(info))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-path", required=True, help="a trained RM folder (`fcrm train --out`)")
    ap.add_argument("--pairs-path", default="/tmp/h1/bench/pairs.parquet")
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--template", default="qwen2_5", choices=sorted(SPECIAL))
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    import pyarrow.parquet as pq

    from fcrm_ray.config import load_config
    from fcrm_ray.serve.app import RewardBackend, handle_get_reward, handle_rewards
    from fcrm_ray.serve.config import ModelConfig, ServeConfig

    rows = [r for r in pq.read_table(a.pairs_path).to_pylist() if r["split"] == "test" and not r["obfuscated"]]
    rows = random.Random(a.seed).sample(rows, min(a.pairs, len(rows)))
    cfg = load_config(ServeConfig, None, [f"models.rm.path={a.model_path}", f"models.rm.max_length={a.max_length}"])
    backend = RewardBackend(ModelConfig(name="rm", path=a.model_path, batch_size=32, max_length=a.max_length))
    models = _models(backend)
    tok = policy_tokenizer(a.template)

    def call(handler, body):
        out = asyncio.run(handler(cfg, models, json.dumps(body).encode()))
        if hasattr(out, "status_code"):
            raise RuntimeError(out.body[:500])
        return out

    res = {"v1_rewards": [], "get_reward": [], "raw_text": []}
    unparsed = 0
    for n, r in enumerate(rows, 1):
        if n % 10 == 0:
            print(f"[bench_serve_rendered] {n}/{len(rows)} pairs", file=sys.stderr, flush=True)
        tools, messages = json.loads(r["tools"]), json.loads(r["conversation"])
        outs = [r["chosen_output"], r["rejected_output"]]
        v1 = call(handle_rewards, {"tools": tools, "messages": messages, "candidates": outs})["rewards"]
        keep = [False, r["error_type"] == "incorrect_output_format"]
        qs = [render_query(tok, tools, messages, o, k) for o, k in zip(outs, keep)]
        got = call(handle_get_reward, {"query": [p + c for p, c in qs], "prompts": [p for p, _ in qs]})
        unparsed += int(sum(got["extra_logs"]["no_catalog"]) + sum(got["extra_logs"]["no_call"]))
        raw = backend.score_units([("text", p, c) for p, c in qs])
        res["v1_rewards"].append(v1)
        res["get_reward"].append(got["rewards"])
        res["raw_text"].append([x if isinstance(x, float) else float("-inf") for x in raw])
    report = {"model": a.model_path, "pairs": len(rows), "template": a.template, "unparsed_queries": unparsed}
    for k, pairs in res.items():
        flat = [x for p in pairs for x in p if x != float("-inf")]
        report[k] = {"accuracy": round(sum(c > w for c, w in pairs) / len(pairs), 4),
                     "reward_sd": round(statistics.pstdev(flat), 3), "ties": sum(c == w for c, w in pairs)}
    report["same_reward_get_vs_v1"] = sum(abs(g - v) < 1e-4 for gp, vp in zip(res["get_reward"], res["v1_rewards"])
                                          for g, v in zip(gp, vp))
    print(json.dumps(report, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
