"""bf16 autocast for the single/ddp strategies: rewards stay fp32 (head in fp32), close to the
fp32 forward, the state dict is untouched; configs that cannot use it are refused by key."""

import pytest
import torch

from fcrm_ray.config import ConfigError, load_config
from fcrm_ray.models import build_tiny_bert_rm, forward_rewards, keep_head_fp32, load_reward_model
from fcrm_ray.train.config import TrainConfig


def test_head_runs_fp32_under_autocast_and_state_dict_is_unchanged(tmp_path):
    model, _ = load_reward_model(str(build_tiny_bert_rm(tmp_path / "rm")))
    model.eval()
    ids = torch.randint(5, model.config.vocab_size, (4, 24))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        ref = forward_rewards(model, ids, mask)
        keys = list(model.state_dict())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain_bf16 = forward_rewards(model, ids, mask)
        keep_head_fp32(model)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = forward_rewards(model, ids, mask)
    bf16_exact = lambda r: torch.equal(r.bfloat16().float(), r.float())  # noqa: E731
    assert bf16_exact(plain_bf16)  # bf16 rewards: close pairs would tie (what the patch is for)
    assert got.dtype == torch.float32 and not bf16_exact(got) and list(model.state_dict()) == keys
    assert torch.allclose(got, ref.float(), atol=5e-2) and not torch.equal(got, ref)
    with torch.no_grad():  # outside autocast the patched head is exact
        assert torch.allclose(forward_rewards(model, ids, mask), ref, atol=1e-6)


def test_autocast_config_checks(tmp_path):
    base = [f"model.path={tmp_path}", f"data.train_path={tmp_path}", "train.strategy=single"]
    assert load_config(TrainConfig, None, base + ["train.autocast=bf16"]).train.autocast == "bf16"
    with pytest.raises(ConfigError, match="train.autocast"):
        load_config(TrainConfig, None, base + ["train.autocast=fp16"])
    with pytest.raises(ConfigError, match="train.autocast"):
        load_config(TrainConfig, None, [f"model.path={tmp_path}", f"data.train_path={tmp_path}", "train.autocast=bf16",
                                             "train.strategy=deepspeed", "scaling.num_workers=2"])
