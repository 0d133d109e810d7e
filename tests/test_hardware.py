"""Precision and thread choices from the hardware (`fcrm_ray/hardware.py`) and the scorer's
max_length default from training (`fcrm_ray/scoring.py`)."""

from __future__ import annotations

import logging

import pytest
import torch

from fcrm_ray import hardware
from fcrm_ray.config import load_config
from fcrm_ray.hardware import resolve_autocast


@pytest.fixture()
def cpu(monkeypatch):
    """Set what the probe sees: CPU flags, PyTorch's kernel level, oneDNN's bf16 answer."""
    def set_cpu(avx512_bf16=True, amx=False, capability="AVX512", onednn=True, isa=None):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn, raising=False)
        if isa is None:
            monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        else:
            monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    return set_cpu


def test_auto_is_fp32_without_native_bf16(cpu):
    cpu(avx512_bf16=False, amx=False, capability="AVX2")
    mode, why = resolve_autocast("auto", "cpu")
    assert mode == "none" and "neither AVX512-BF16 nor AMX" in why


def test_auto_is_bf16_with_native_bf16(cpu):
    cpu(avx512_bf16=True)
    assert resolve_autocast("auto", "cpu")[0] == "bf16"
    cpu(avx512_bf16=False, amx=True)
    assert resolve_autocast("auto", "cpu") == ("bf16", "auto -> bf16: CPU has AMX (native bf16)")


@pytest.mark.parametrize("kwargs", [dict(capability="AVX2"), dict(isa="AVX2"), dict(onednn=False)])
def test_capped_kernels_count_as_no_bf16(cpu, kwargs):
    cpu(avx512_bf16=True, **kwargs)  # the CPU has the instructions, but the kernels will not use them
    assert resolve_autocast("auto", "cpu")[0] == "none"


def test_explicit_bf16_without_native_support_warns(cpu, caplog):
    cpu(avx512_bf16=False, amx=False, capability="AVX2")
    with caplog.at_level(logging.WARNING, logger="fcrm_ray.hardware"):
        mode, why = resolve_autocast("bf16", "cpu")
    assert mode == "bf16" and "NOT native" in why
    assert any("slower than fp32" in r.message for r in caplog.records)
    assert resolve_autocast("none", "cpu")[0] == "none"
    with pytest.raises(ValueError, match="autocast"):
        resolve_autocast("fp8", "cpu")


def test_threads():
    assert hardware.torch_threads(3) == 3
    assert hardware.ray_assigned_cpus() is None  # not inside a Ray worker
    assert hardware.torch_threads(0) == hardware.available_cpus() >= 1


def test_train_config_defaults_to_auto():
    from fcrm_ray.train.config import TrainConfig

    cfg = load_config(TrainConfig, "configs/train/cpu.yaml", ["data.train_path=tests"])
    assert cfg.train.autocast == "auto" and cfg.train.num_threads == 0
    with pytest.raises(Exception, match="train.autocast"):
        load_config(TrainConfig, "configs/train/cpu.yaml", ["data.train_path=tests", "train.autocast=fp16"])


def test_scorer_max_length_defaults_to_training(tmp_path, caplog):
    from fcrm_ray.models import build_tiny_bert_rm
    from fcrm_ray.scoring import RewardScorer

    path = build_tiny_bert_rm(tmp_path / "rm")
    assert RewardScorer(str(path)).max_length == 512  # no train_config.yaml: 1024, capped at the model's 512 positions
    (path / "train_config.yaml").write_text("# resolved\ndata:\n  max_length: 96\n")
    assert RewardScorer(str(path)).max_length == 96
    with caplog.at_level(logging.WARNING, logger="fcrm_ray.scoring"):
        assert RewardScorer(str(path), max_length=64).max_length == 64
    assert any("differs from the 96" in r.message for r in caplog.records)


def test_scorer_autocast_auto_follows_the_probe(tmp_path, cpu):
    from fcrm_ray.models import build_tiny_bert_rm
    from fcrm_ray.scoring import RewardScorer

    path = str(build_tiny_bert_rm(tmp_path / "rm"))
    cpu(avx512_bf16=False, amx=False, capability="AVX2")
    assert RewardScorer(path, autocast="auto").autocast == "none"
    cpu(avx512_bf16=True)
    s = RewardScorer(path, autocast="auto")
    assert s.autocast == "bf16"
    exact = RewardScorer(path).score_texts(["[TOOLS] f\n[CALL]"], [" f(x=1)"])[0]
    assert s.score_texts(["[TOOLS] f\n[CALL]"], [" f(x=1)"])[0] == pytest.approx(exact, abs=5e-2)


def test_auto_over_low_precision_weights_is_no_autocast(cpu):
    cpu(avx512_bf16=True)
    assert resolve_autocast("auto", "cpu", "bfloat16") == ("none", "weights in bfloat16")
    assert resolve_autocast("auto", "cpu", "float32")[0] == "bf16"
