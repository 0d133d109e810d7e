"""LLM-as-judge scoring of pairs through vLLM (`fcrm eval pairwise scorer=vllm_judge`):
the yes/no judge prompt, verdict parsing, and the engine run that turns verdicts into scores.

The judge sees the tools, the conversation and ONE candidate and answers yes/no; the score is
P(yes) / (P(yes) + P(no)) from the first generated token's log-probs, or the parsed verdict
(1 / 0, 0.5 if neither) when the top log-probs hold neither word."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping, Sequence

from fcrm_ray.vllm_engine import build_llm, engine_kwargs, sampling_params, token_prompts

JUDGE_SYSTEM = (
    "You are an expert judge of function calls. Given the available tools, a conversation and a "
    "candidate function call for the assistant's next turn, decide whether the candidate is exactly "
    "correct: the right function(s), every required argument, correct argument names, types and values "
    "as the user asked, and nothing extra. Answer with a single word: yes or no."
)


def judge_messages(tools: Any, conversation: Any, candidate: str) -> list[dict]:
    """Chat messages asking a judge model for a yes/no verdict on one candidate call."""
    tools = json.loads(tools) if isinstance(tools, str) else tools
    conversation = json.loads(conversation) if isinstance(conversation, str) else conversation
    convo = "\n".join(f"{m.get('role', 'user')}: {m.get('content') or json.dumps(m.get('tool_calls'), ensure_ascii=False)}"
                      for m in conversation)
    user = (f"## Tools\n{json.dumps(tools, ensure_ascii=False, indent=1)}\n\n## Conversation\n{convo}\n\n"
            f"## Candidate function call\n{candidate}\n\nIs the candidate function call correct? Answer yes or no.")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


_VERDICT_RE = re.compile(r"\b(yes|no|correct|incorrect)\b", re.IGNORECASE)


def parse_verdict(text: str) -> float | None:
    """1.0 for yes/correct, 0.0 for no/incorrect (the first such word after any <think> block), None if absent."""
    text = re.sub(r"<think>.*?</think>", " ", text or "", flags=re.DOTALL)
    m = _VERDICT_RE.search(text)
    if not m:
        return None
    return 1.0 if m.group(1).lower() in ("yes", "correct") else 0.0


def verdict_score(top_logprobs: Mapping[str, float] | None, text: str) -> float:
    """P(yes) / (P(yes) + P(no)) over the first token's top log-probs (token strings are stripped
    and lower-cased, variants summed); else the parsed verdict; 0.5 when the judge said neither."""
    p_yes = p_no = 0.0
    for tok, lp in (top_logprobs or {}).items():
        t = str(tok).strip().lower()
        if t in ("yes", "correct"):
            p_yes += math.exp(lp)
        elif t in ("no", "incorrect"):
            p_no += math.exp(lp)
    if p_yes + p_no > 0:
        return p_yes / (p_yes + p_no)
    v = parse_verdict(text)
    return 0.5 if v is None else v


def score_judge(rows: Sequence[Mapping], model_path: str, jcfg, trust_remote_code: bool = False) -> tuple[list, list, dict]:
    """(chosen, rejected, stats) from a vLLM judge; `jcfg` is the eval config's `judge` section
    (`pairwise.JudgeConfig`). On a GPU, or vLLM's CPU build (`vllm_engine`)."""
    llm = build_llm(model_path, engine_kwargs(tensor_parallel_size=jcfg.tensor_parallel_size,
                                              max_model_len=jcfg.max_model_len,
                                              gpu_memory_utilization=jcfg.gpu_memory_utilization,
                                              trust_remote_code=trust_remote_code),
                    config_key="scorer", what="vllm_judge")
    tok = llm.get_tokenizer()
    prompts = []
    for r in rows:
        for col in ("chosen_output", "rejected_output"):
            prompts.append(tok.apply_chat_template(judge_messages(r["tools"], r["conversation"], r[col]),
                                                   tokenize=False, add_generation_prompt=True,
                                                   **dict(jcfg.chat_template_kwargs)))
    params = sampling_params(temperature=0.0, max_tokens=jcfg.max_tokens, logprobs=jcfg.top_logprobs)
    outs = llm.generate(token_prompts(tok, prompts), params, use_tqdm=False)
    scores = []
    for o in outs:
        c = o.outputs[0]
        first = (c.logprobs or [None])[0] or {}
        top = {getattr(lp, "decoded_token", None) or str(tid): lp.logprob for tid, lp in first.items()}
        scores.append(verdict_score(top, c.text))
    return scores[0::2], scores[1::2], {"backend": "vllm_judge", "prompts": len(prompts)}
