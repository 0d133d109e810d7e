"""The restorability check of training checkpoints (pure: no torch, no Ray)."""

import json

from fcrm_ray.train.checkpoint import (CKPT_META, checkpoint_problem, files_under, foreign_checkpoints, identity_changes,
                                       run_identity, write_manifest)


def _checkpoint(d, world=2):
    d.mkdir()
    (d / CKPT_META).write_text(json.dumps({"step": 4, "world_size": world, "history": []}))
    (d / "ds").mkdir()
    for rank in range(world):
        (d / "ds" / f"shard{rank}.pt").write_bytes(b"x" * (100 + rank))
    # each rank lists what it wrote (rank 0 also meta.json)
    write_manifest(d, 0, [d / CKPT_META, d / "ds" / "shard0.pt"])
    for rank in range(1, world):
        write_manifest(d, rank, [d / "ds" / f"shard{rank}.pt"])
    return d


def test_complete_checkpoint_passes(tmp_path):
    assert checkpoint_problem(_checkpoint(tmp_path / "c")) is None
    assert checkpoint_problem(_checkpoint(tmp_path / "one", world=1)) is None


def test_truncated_file_is_detected(tmp_path):
    d = _checkpoint(tmp_path / "c")
    (d / "ds" / "shard1.pt").write_bytes(b"x" * 10)
    assert "ds/shard1.pt has 10 bytes, 101 were written" in checkpoint_problem(d)


def test_missing_file_manifest_or_meta_is_detected(tmp_path):
    d = _checkpoint(tmp_path / "a")
    (d / "ds" / "shard0.pt").unlink()
    assert checkpoint_problem(d) == "ds/shard0.pt is missing (listed by rank 0)"
    d = _checkpoint(tmp_path / "b")
    (d / "manifest-rank1.json").unlink()
    assert "manifest-rank1.json is missing (rank 1 of 2" in checkpoint_problem(d)
    d = _checkpoint(tmp_path / "c")
    (d / CKPT_META).unlink()
    assert checkpoint_problem(d) == "meta.json is missing"
    assert "is not a directory" in checkpoint_problem(tmp_path / "nope")


def test_unreadable_meta_or_manifest_is_detected(tmp_path):
    d = _checkpoint(tmp_path / "a")
    (d / CKPT_META).write_text('{"step": ')
    assert checkpoint_problem(d).startswith("meta.json is unreadable")
    d = _checkpoint(tmp_path / "b")
    (d / CKPT_META).write_text('{"history": []}')
    assert checkpoint_problem(d).startswith("meta.json is unreadable (KeyError")
    d = _checkpoint(tmp_path / "c")
    (d / "manifest-rank0.json").write_text("[1, 2")
    assert checkpoint_problem(d).startswith("manifest-rank0.json is unreadable")


def test_files_under_lists_nested_files(tmp_path):
    d = _checkpoint(tmp_path / "c")
    names = sorted(str(p.relative_to(d)) for p in files_under(d))
    assert names == ["ds/shard0.pt", "ds/shard1.pt", "manifest-rank0.json", "manifest-rank1.json", "meta.json"]


def test_run_identity_keeps_what_decides_the_model():
    cfg = {"model": {"path": "m"}, "data": {"train_path": "a", "max_eval_rows": 100},
           "train": {"lr": 1e-4, "num_threads": 2, "autocast": "auto"}, "ckpt": {"name": "x"}}
    ident = run_identity(cfg)
    assert ident == {"model.path": "m", "data.train_path": "a", "train.lr": 1e-4}
    other = run_identity({**cfg, "data": {"train_path": "b", "max_eval_rows": 5},
                          "train": {"lr": 1e-4, "num_threads": 1, "autocast": "none"}})
    assert identity_changes(ident, other) == ["data.train_path: 'a' -> 'b'"]
    assert identity_changes(ident, ident) == []
    assert identity_changes(None, other) == []  # written before identities were recorded
    # a setting added since the checkpoint was written: the old run had its default
    newer = {**ident, "train.listwise_weight": 0.0}
    assert identity_changes(ident, newer, {"train.listwise_weight": 0.0}) == []
    assert identity_changes(ident, {**ident, "train.listwise_weight": 0.5}, {"train.listwise_weight": 0.0}) == [
        "train.listwise_weight: 0.0 -> 0.5"]
    assert identity_changes(ident, newer) == ["train.listwise_weight: None -> 0.0"]  # no defaults given


def test_foreign_checkpoints_name_the_differing_keys(tmp_path):
    ident = {"data.train_path": "a", "train.lr": 1e-4}
    for name, saved in (("checkpoint_0000002", ident), ("checkpoint_0000004", {**ident, "train.lr": 3e-4})):
        (tmp_path / name).mkdir()
        (tmp_path / name / CKPT_META).write_text(json.dumps({"step": 2, "run": saved}))
    (tmp_path / "checkpoint_0000006").mkdir()
    (tmp_path / "checkpoint_0000006" / CKPT_META).write_text("{not json")  # skipped here, reported at restore
    assert foreign_checkpoints(tmp_path, ident) == ["checkpoint_0000004: train.lr: 0.0003 -> 0.0001"]
    assert foreign_checkpoints(tmp_path / "absent", ident) == []
