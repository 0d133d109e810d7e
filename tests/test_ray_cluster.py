"""`ray_init`, the one place a stage starts or joins Ray: what it passes to `ray.init` (checked
against a stand-in `ray` module, so no Ray starts here) and the Ray start-up notices it hides."""

from __future__ import annotations

import logging
import sys
import types

import pytest

from fcrm_ray.common.ray_cluster import WORKER_SETUP_HOOK, RayConfig, ray_init
from fcrm_ray.config import load_config
from fcrm_ray.train import run as train_run  # before `fake_ray` replaces the `ray` module
from fcrm_ray.train.config import TrainConfig
from ray.llm._internal.common.utils import download_utils  # the real module: `fake_ray` replaces `ray` later


@pytest.fixture
def fake_ray(monkeypatch):
    """A `ray` module whose `init` records its keyword arguments."""
    calls: list[dict] = []
    mod = types.SimpleNamespace(is_initialized=lambda: False, init=lambda **kw: calls.append(kw))
    monkeypatch.setitem(sys.modules, "ray", mod)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    return calls


def test_a_local_ray_with_its_dashboard_tells_its_workers_where_the_state_api_listens(fake_ray):
    assert ray_init(RayConfig(runtime_env={"env_vars": {"HF_HOME": "/x"}, "working_dir": "."}), dashboard=None)
    kw = fake_ray[0]
    assert "include_dashboard" not in kw  # None = Ray's default (on where its dependencies are installed)
    port = kw["dashboard_port"]
    assert isinstance(port, int) and port > 0
    assert kw["runtime_env"] == {"working_dir": ".", "worker_process_setup_hook": WORKER_SETUP_HOOK,
                                 "env_vars": {"HF_HOME": "/x", "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}}


def test_an_explicit_dashboard_port_is_the_one_named(fake_ray):
    ray_init(RayConfig(address="local"), dashboard=True, dashboard_port=8999)
    assert fake_ray[0]["runtime_env"]["env_vars"]["RAY_API_SERVER_ADDRESS"] == "http://127.0.0.1:8999"
    assert fake_ray[0]["include_dashboard"] is True


@pytest.mark.parametrize("cfg, dashboard", [(RayConfig(), False), (RayConfig(address="ray://head:10001"), None),
                                            (RayConfig(address="auto"), True)])
def test_no_state_api_address_without_a_dashboard_or_when_joining_a_cluster(fake_ray, cfg, dashboard):
    ray_init(cfg, dashboard=dashboard)
    assert "dashboard_port" not in fake_ray[0] and "env_vars" not in fake_ray[0]["runtime_env"]


def test_workers_get_the_quiet_hook_unless_the_user_or_the_submitted_job_names_one(fake_ray, monkeypatch):
    ray_init(RayConfig(address="auto"))
    assert fake_ray[-1]["runtime_env"] == {"worker_process_setup_hook": WORKER_SETUP_HOOK}
    ray_init(RayConfig(runtime_env={"worker_process_setup_hook": "mine.setup"}))
    assert fake_ray[-1]["runtime_env"]["worker_process_setup_hook"] == "mine.setup"
    # `ray job submit --runtime-env` with a hook: Ray would refuse a second one in ray.init
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", '{"runtime_env": {"worker_process_setup_hook": "job.setup"}}')
    ray_init(RayConfig(address="auto"))
    assert "runtime_env" not in fake_ray[-1]


def test_the_quiet_hook_runs_on_its_own(monkeypatch):
    """Ray imports the hook by name in each new worker, before anything else of ours."""
    import importlib

    module, name = WORKER_SETUP_HOOK.rsplit(".", 1)
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "ERROR")
    monkeypatch.setattr(logging.getLogger("vllm"), "level", logging.NOTSET)
    getattr(importlib.import_module(module), name)()
    assert logging.getLogger("vllm").level == logging.ERROR


def test_train_starts_its_ray_with_the_state_api(fake_ray, monkeypatch, tmp_path):
    """Ray Train's PlacementGroupCleaner polls the State API every second; without the dashboard
    each poll logged a warning for the whole run."""
    class Started(Exception):
        pass

    def stop_after_init(*args, **kwargs):
        ray_init(*args, **kwargs)
        raise Started

    monkeypatch.setattr(train_run, "ray_init", stop_after_init)
    cfg = load_config(TrainConfig, None, [f"out={tmp_path / 'rm'}", "model.path=pkg:minilm", f"data.train_path={tmp_path}",
                                         f"ckpt.storage_path={tmp_path / 'ckpt'}"])
    with pytest.raises(Started):
        train_run.run_training(cfg)
    assert fake_ray[0].get("include_dashboard") is not False
    assert "RAY_API_SERVER_ADDRESS" in fake_ray[0]["runtime_env"]["env_vars"]


def shown_after_ray_init(logger: logging.Logger, emit) -> list[str]:
    """The messages `logger` lets through when `emit()` logs after `ray_init` set up its filters."""
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: seen.append(r.getMessage())
    logger.addHandler(handler)
    try:
        ray_init(RayConfig())
        emit()
    finally:
        logger.removeHandler(handler)
    return seen


def test_token_auth_notice_is_hidden_and_other_auth_warnings_are_not(fake_ray):
    from ray._private.authentication import authentication_token_setup as auth

    def emit():
        auth._warn_token_auth_enabled()  # what every new local Ray logged at WARNING
        auth._warn_token_auth_disabled()  # actionable: the cluster is open

    seen = shown_after_ray_init(auth.logger, emit)
    assert len(seen) == 1 and seen[0].startswith("Token authentication is disabled")


def test_ray_llm_cloud_mirror_notice_is_hidden_and_its_other_lines_are_not(fake_ray):
    log = download_utils.logger

    def emit():
        log.info("No cloud storage mirror configured")  # what the vLLM generator printed
        log.info("Downloading model files")

    assert shown_after_ray_init(log, emit) == ["Downloading model files"]


def test_ray_llm_engine_stage_notices_are_hidden(fake_ray):
    # the module's logger (importing it imports vLLM; tests/test_vllm_engine.py checks the real run)
    log = logging.getLogger("ray.llm._internal.batch.stages.vllm_engine_stage")

    def emit():
        log.info("Downloading model and tokenizer.")  # a local folder: nothing is downloaded
        log.info("Enabling Ray metrics export for vLLM engine. Metrics will be available at Ray's Prometheus endpoint.")
        log.info("Max pending requests is set to %d", 141)
        log.info("[vLLM] Elapsed time for batch %s with size %d: %s", "c95", 4, 0.6)
        log.warning("Engine failed to start")

    assert shown_after_ray_init(log, emit) == ["Engine failed to start"]
