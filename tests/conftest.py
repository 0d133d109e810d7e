import os

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def bfcl_dir():
    from fcrm_ray.paths import bfcl_data_dir

    return bfcl_data_dir()


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    """A tiny random-init BERT reward model saved with save_pretrained (one per test module)."""
    from fcrm_ray.models import build_tiny_bert_rm

    return str(build_tiny_bert_rm(tmp_path_factory.mktemp("rm") / "tiny-bert-rm"))
