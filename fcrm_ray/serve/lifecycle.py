"""How `fcrm serve` and `fcrm gateway` run a Serve application: start or join Ray, deploy, say
where it listens, block until Ctrl-C / SIGTERM, and clean up (on a shared cluster only our app is
removed; a Ray this process started goes down with `ray.shutdown()` and takes Serve with it;
`serve.shutdown()` first only adds its controller's 30 s timeout on a busy machine)."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any, Callable

import ray
from ray import serve

from fcrm_ray.common.ray_cluster import ray_init


def run_serve_app(prog: str, cfg: Any, build: Callable[[], Any], request_timeout_s: float,
                  banner: Callable[[], str], metrics_export_port: int = 0) -> int:
    """Deploy `build()` (a bound Serve app) as `cfg.app_name` at `cfg.route_prefix` on
    `cfg.host:cfg.port`; print `banner()` once deployed. `cfg`: a stage config with `ray`, `host`,
    `port`, `app_name`, `route_prefix` and `blocking`."""
    local = cfg.ray.starts_local()
    init = {"_metrics_export_port": metrics_export_port} if metrics_export_port and local else {}
    if local and os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        # Ray (2.60) binds its own gRPC ports on every interface and turns a loopback node IP into
        # the reachable one, so a local Ray cannot be kept on loopback; its token auth (on by
        # default for local clusters since 2.59) is what keeps those ports closed. Say so.
        print(f"{prog}: warning: RAY_AUTH_MODE=disabled - the local Ray's ports listen beyond loopback "
              "without authentication", file=sys.stderr, flush=True)
    ray_init(cfg.ray, dashboard=None, **init)

    def _stop(*_):  # SIGTERM (systemd, Kubernetes, `kill`) shuts down like Ctrl-C
        raise KeyboardInterrupt

    if cfg.blocking:
        signal.signal(signal.SIGTERM, _stop)
    deployed = False
    try:
        serve.start(http_options={"host": cfg.host, "port": cfg.port, "request_timeout_s": request_timeout_s})
        serve.run(build(), name=cfg.app_name, route_prefix=cfg.route_prefix, blocking=False)
        deployed = True
        print(banner(), flush=True)
        while cfg.blocking:
            time.sleep(3600)
    except KeyboardInterrupt:  # also while still deploying: the app must not outlive us
        pass
    finally:
        if (cfg.blocking or not deployed) and not local:
            serve.delete(cfg.app_name)
        ray.shutdown()
    return 0
