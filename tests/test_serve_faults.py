"""Fault injection on a live reward service (slow).

- 2 model replicas, one killed while clients send requests: the ingress retries the calls that
  hit the dead replica on the survivor, so clients that do NOT retry see zero failures and no
  wrong score; Serve brings the replica count back.
- 1 model replica killed: `/healthz` turns 503 (readiness false while nothing can score) and
  back to 200 once Serve's replacement has loaded, and scoring works again."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from fcrm_ray.config import load_config
from fcrm_ray.serve import app as serve_app
from fcrm_ray.serve.client import RewardClient
from fcrm_ray.serve.config import ServeConfig

pytestmark = pytest.mark.slow

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
MESSAGES = [{"role": "user", "content": "Weather in Paris?"}]
CANDIDATES = ['[{"name": "get_weather", "arguments": {"city": "Paris"}}]',
              '[{"name": "get_weather", "arguments": {"city": "London"}}]']


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _running_replicas(app: str) -> int:
    from ray import serve

    st = serve.status().applications.get(app)
    if st is None:
        return 0
    return sum(d.replica_states.get("RUNNING", 0) for name, d in st.deployments.items() if name.startswith("RewardModel"))


def _model_replica_actors() -> list[str]:
    import ray

    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["name"].startswith("SERVE_REPLICA::") and "RewardModel" in a["name"])


def test_killed_model_replica_under_load(tmp_path):
    import ray
    from ray import serve

    from fcrm_ray.models import build_tiny_bert_rm

    rm = build_tiny_bert_rm(tmp_path / "rm")
    port, app = _free_port(), "fcrm-faults"
    cfg = load_config(ServeConfig, None, [
        f"models.fcrm-rm.path={rm}", "models.fcrm-rm.batch_size=4", "models.fcrm-rm.batch_wait_timeout_s=0.02",
        "models.fcrm-rm.max_length=128", "models.fcrm-rm.ray_actor_options.num_cpus=0.5",
        "models.fcrm-rm.autoscaling.min_replicas=2", "models.fcrm-rm.autoscaling.max_replicas=2",
        f"port={port}", "ingress.num_cpus=0.1", f"app_name={app}"])
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(serve_app.build_app(cfg), name=app, route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        with RewardClient(url, retries=0, timeout=30) as rc:
            expected = rc.rewards(TOOLS, MESSAGES, CANDIDATES)["rewards"]
        before = _model_replica_actors()
        assert len(before) == 2 and _running_replicas(app) == 2

        n_threads, per_thread = 4, 30
        results: list = []
        done = threading.Event()
        lock = threading.Lock()

        def load():
            with RewardClient(url, retries=0, timeout=60) as c:  # the ingress must absorb the kill
                for _ in range(per_thread):
                    try:
                        got = c.rewards(TOOLS, MESSAGES, CANDIDATES)["rewards"]
                        ok = got == pytest.approx(expected, abs=1e-5)
                        out = ("ok" if ok else "wrong", None)
                    except Exception as e:  # counted: the assertion below wants none
                        out = ("failed", repr(e)[:200])
                    with lock:
                        results.append(out)
                with lock:
                    results.append(("retries", c.retried))

        threads = [threading.Thread(target=load) for _ in range(n_threads)]
        for t in threads:
            t.start()
        while sum(1 for r in results if r[0] != "retries") < 20:  # kill once load is flowing
            time.sleep(0.05)
        victim = before[0]
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        t_kill = time.time()
        for t in threads:
            t.join(timeout=300)
        done.set()
        outcomes = [r[0] for r in results if r[0] != "retries"]
        retries = sum(r[1] for r in results if r[0] == "retries")
        failed = [r[1] for r in results if r[0] == "failed"]
        print(f"[replica kill] requests {len(outcomes)}: ok {outcomes.count('ok')}, wrong {outcomes.count('wrong')}, "
              f"failed {len(failed)}, client retries {retries}: {failed[:3]}")
        assert len(outcomes) == n_threads * per_thread
        assert failed == [] and outcomes.count("wrong") == 0

        # the service recovers: Serve replaces the dead replica
        deadline = time.time() + 120
        def recovered():
            actors = _model_replica_actors()
            return len(actors) == 2 and victim not in actors and _running_replicas(app) == 2

        while time.time() < deadline and not recovered():
            time.sleep(0.5)
        after = _model_replica_actors()
        print(f"[replica kill] replicas back to 2 after {time.time() - t_kill:.1f}s: {after}")
        assert len(after) == 2 and victim not in after and _running_replicas(app) == 2
        with RewardClient(url, retries=2, timeout=30) as rc:
            assert rc.rewards(TOOLS, MESSAGES, CANDIDATES)["rewards"] == pytest.approx(expected, abs=1e-5)
    finally:
        serve.shutdown()
        ray.shutdown()


def test_killed_only_replica_makes_readiness_false_until_replaced(tmp_path):
    import httpx
    import ray
    from ray import serve

    from fcrm_ray.models import build_tiny_bert_rm

    rm = build_tiny_bert_rm(tmp_path / "rm")
    port, app = _free_port(), "fcrm-ready"
    cfg = load_config(ServeConfig, None, [
        f"models.fcrm-rm.path={rm}", "models.fcrm-rm.max_length=128", "models.fcrm-rm.ray_actor_options.num_cpus=0.5",
        f"port={port}", "ingress.num_cpus=0.1", f"app_name={app}", "limits.health_timeout_s=2",
        "limits.model_retries=0"])
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(serve_app.build_app(cfg), name=app, route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30) as h:
            assert h.get("/healthz").status_code == 200
            victim = _model_replica_actors()[0]
            ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
            seen, deadline = [], time.time() + 180
            while time.time() < deadline:
                r = h.get("/healthz")
                seen.append(r.status_code)
                if 503 in seen and r.status_code == 200:
                    break
                time.sleep(0.2)
            print(f"[readiness] /healthz answers after the kill: {seen.count(503)} x 503, then 200")
            assert 503 in seen, "readiness never went false with no replica able to score"
            assert seen[-1] == 200, "readiness never came back"
        with RewardClient(url, retries=2, timeout=30) as rc:
            assert len(rc.rewards(TOOLS, MESSAGES, CANDIDATES)["rewards"]) == 2
    finally:
        serve.shutdown()
        ray.shutdown()
