"""Gemma 3 270M (real weights, `pkg:gemma3-270m`) through the causal-LM reward-model path: one BOS
in every scored sequence, truncated or not, and the same scores for tool-aware chat-template
renderings through the shared-prefix scorer, the plain full-sequence scorer and the trainer's
encoding. The folder comes from the user's model cache (`local_models.gemma3_270m_dir`, built from
the PyPI GGUF when missing: 1.5-2.5 min on 2 cores). Without the package the tests skip, except
under `CI=true` (scripts/setup.sh installs it), where they fail."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import os

import pytest

from fcrm_ray import local_models as lm

pytestmark = pytest.mark.slow

TOOLS = [{"name": "get_weather", "description": "Current weather for a location.",
          "parameters": {"type": "object", "required": ["city"], "properties": {
              "city": {"type": "string", "description": "City name, e.g. 'San Francisco, CA'"},
              "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}}}},
         {"name": "get_stock_price", "description": "Latest price of a stock by ticker symbol.",
          "parameters": {"type": "object", "required": ["ticker"], "properties": {"ticker": {"type": "string"}}}}]
CONV = [{"role": "user", "content": "What's the weather in San Francisco in fahrenheit, and Apple's share price?"}]
CANDIDATES = [
    '[{"name": "get_weather", "arguments": {"city": "San Francisco, CA", "unit": "fahrenheit"}}, '
    '{"name": "get_stock_price", "arguments": {"ticker": "AAPL"}}]',
    '[{"name": "get_weather", "arguments": {"city": "San Francisco", "unit": "celsius"}}]',
    "get_stock_price(ticker='Apple')",
    "I cannot help with that.",  # not a call: rendered verbatim as the answer
]
# a catalog long enough that prompt + call pass Gemma 3's 512-token sliding window
LONG_TOOLS = TOOLS + [{"name": f"lookup_{i}", "description": f"Look up record kind {i} in the archive by its key.",
                       "parameters": {"type": "object", "required": ["key"], "properties": {
                           "key": {"type": "string", "description": "The record key"}}}} for i in range(40)]


def _installed(dist: str) -> bool:
    try:
        md.distribution(dist)
    except md.PackageNotFoundError:
        return False
    return dist != "gguf" or importlib.util.find_spec("gguf") is not None


@pytest.fixture(scope="module")
def gemma_rm(tmp_path_factory):
    """A Gemma 3 270M reward model folder: the backbone with a seeded fresh score head."""
    missing = [p for p in (lm.GEMMA3_270M_PACKAGE, "gguf") if not _installed(p)]
    if missing:
        msg = f"not installed: {', '.join(missing)} ({lm.INSTALL_HINT})"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    import torch

    from fcrm_ray.models import init_reward_model

    torch.manual_seed(0)
    model, tok = init_reward_model(str(lm.gemma3_270m_dir()))
    assert type(model).__name__ == "Gemma3TextForSequenceClassification"
    assert not hasattr(model, "lm_head")  # the tied LM head is not built
    out = tmp_path_factory.mktemp("gemma_rm") / "rm"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_one_bos_first_with_and_without_truncation(gemma_rm):
    from fcrm_ray.models import encode_for_reward, load_tokenizer
    from fcrm_ray.toolcall.render import render

    tok = load_tokenizer(str(gemma_rm))
    r = render(tok, TOOLS, CONV, CANDIDATES[0])
    assert r.prompt.startswith("<bos>")  # the template writes it; the tokenizer adds one too
    for max_length, cut in ((2048, False), (200, True)):
        ids, truncated = encode_for_reward(tok, r.prompt, r.completion, max_length, 16)
        assert truncated == cut and len(ids) <= max_length
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


@pytest.mark.parametrize("tools, max_length", [(TOOLS, 512), (TOOLS, 200), (LONG_TOOLS, 2048)])
def test_shared_prefix_scores_equal_the_plain_path(gemma_rm, tools, max_length):
    import torch

    from fcrm_ray.models import encode_for_reward, forward_rewards
    from fcrm_ray.scoring import RewardScorer
    from fcrm_ray.toolcall.render import render

    fast = RewardScorer(str(gemma_rm), max_length=max_length, shared_prefix=True, batch_size=4)
    plain = RewardScorer(str(gemma_rm), max_length=max_length, shared_prefix=False, batch_size=4)
    assert fast.shared_prefix and not plain.shared_prefix
    got = fast.score_candidates(json.dumps(tools), json.dumps(CONV), CANDIDATES)
    # untruncated, every candidate goes through the prefix cache; cut to 200 tokens, each keeps a
    # different length of the catalog (room depends on its call) and is scored whole
    assert fast.stats["shared_candidates" if max_length > 200 else "full_sequences"] == len(CANDIDATES)
    want = plain.score_candidates(json.dumps(tools), json.dumps(CONV), CANDIDATES)
    # the trainer's encoding, one sequence at a time through the model's own forward
    tok = plain.tokenizer
    lengths, trained = [], []
    for c in CANDIDATES:
        r = render(tok, tools, CONV, c)
        ids, _ = encode_for_reward(tok, r.prompt, r.completion, max_length, 16)
        lengths.append(len(ids))
        with torch.inference_mode():
            trained.append(forward_rewards(plain.model, torch.tensor([ids]), None).item())
    if tools is LONG_TOOLS:
        assert min(lengths) > 600  # past the sliding window: its masks must agree on both paths
    assert len(set(round(s, 3) for s in want)) == len(CANDIDATES)  # distinct: a real comparison
    for a, b, c in zip(got, want, trained):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-4) and b == pytest.approx(c, rel=1e-4, abs=1e-4)
