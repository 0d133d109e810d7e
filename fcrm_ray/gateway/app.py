"""`fcrm gateway`: Best-of-N tool calls from any OpenAI-compatible server, by changing one URL.

    fcrm gateway --upstream http://127.0.0.1:8001/v1 --config configs/gateway.yaml model.path=runs/rm-minilm
    # clients point at http://127.0.0.1:8000/v1 instead of the upstream

`POST /v1/chat/completions`: a request with `tools` (and `tool_choice` not "none") gets n
candidates from the upstream (its `n` parameter, or n parallel calls: `upstream.n_mode`), each read
as tool calls (the upstream's `tool_calls`, or calls in its text: `toolcall.parse`), scored by the
reward model (the reward service's `RewardModel` deployment and micro-batcher), and one is picked by
the rule (`rm`, reward-weighted `vote`, `majority`, `first`: `selection.rule_by_n`, or the
request's `fcrm.rule`) with the selection code of `fcrm eval bon` (`evaluate.metrics.pick`). The
answer is a standard `chat.completion` with OpenAI `tool_calls`, `usage` summed over all
candidates; `"fcrm": {"candidates": true}` in the request adds every candidate's calls and reward;
`stream: true` gets the pick as SSE chunks. Any other request is passed through unchanged
(streaming relayed). `GET /v1/models` is the upstream's.

Failure: per-call timeout and retries with backoff on 429/5xx (`upstream.*`), a whole-request
timeout (`selection.request_timeout_s`); candidates that failed are left out, fewer than
`selection.min_candidates` is a 502, and when every call failed the client gets the upstream's
status and error. A candidate that breaks scoring ranks last alone. Auth (a bearer token for any
non-loopback host), body and shape limits and 4xx naming the field as `fcrm serve`
(`serve.guard`). Logs carry per-request counts and timings, never bodies or the upstream token.

Metrics: Ray Serve counters `fcrm_gateway_<name>` (requests, bon_requests, passthrough_requests,
candidates_asked / _received / _scored, upstream_errors, failed_requests) on Ray's metrics export
port, like `fcrm serve`; `GET /stats` gives this replica's counts.
"""

import asyncio
import os
import sys

from ray import serve

from fcrm_ray.config import ConfigError, config_arg_parser, from_dict, load_config, to_dict
from fcrm_ray.gateway.config import GatewayConfig
from fcrm_ray.gateway.service import COUNTERS, Gateway, gateway_api, install
from fcrm_ray.models import RewardModelError, check_reward_model_dir
from fcrm_ray.paths import resolve_model_path
from fcrm_ray.serve.deployments import deployment_options, reward_model_deployment
from fcrm_ray.serve.lifecycle import run_serve_app
from fcrm_ray.serve.replicas import ServiceState, call_model

def deployment_score(cfg: GatewayConfig, handle):
    """A `ScoreFn` over the reward model deployment (dead replicas retried as in `fcrm serve`)."""
    state = ServiceState()

    async def score(tools: list, messages: list, texts: list) -> list:
        return list(await call_model(cfg, state, cfg.model.name,
                                     lambda: handle.score_group.remote(tools, messages, texts)))

    return score


def local_score(model_cfg):
    """A `ScoreFn` with the reward model in this process (tests, benchmarks): the same
    `RewardBackend` a model replica runs, off the event loop."""
    from fcrm_ray.serve.backend import RewardBackend

    backend = RewardBackend(model_cfg)

    async def score(tools: list, messages: list, texts: list) -> list:
        return await asyncio.to_thread(backend.score_units, [("cand", tools, messages, t) for t in texts])

    return score


def _counters() -> dict:
    from ray.serve import metrics

    return {k: metrics.Counter(f"fcrm_gateway_{k}", description=f"fcrm gateway: {k.replace('_', ' ')}")
            for k in COUNTERS}


def _deployment():
    api = gateway_api()  # reads the replica's gateway, `install`ed below

    @serve.deployment
    @serve.ingress(api)
    class GatewayIngress:
        """HTTP front of the gateway: upstream calls, scoring through the model deployment, picking."""

        def __init__(self, cfg: dict, token: str, model_handle):
            self.cfg = from_dict(GatewayConfig, cfg)
            # the upstream client is made on first use, in the replica's serving event loop
            install(Gateway(self.cfg, None, deployment_score(self.cfg, model_handle), _counters()),
                    {"token": token, "max_body_bytes": self.cfg.limits.max_body_bytes,
                     "route_prefix": self.cfg.route_prefix})

    return GatewayIngress


def ingress_options(cfg: GatewayConfig) -> dict:
    return {"name": "GatewayIngress", "num_replicas": cfg.ingress.num_replicas,
            "max_ongoing_requests": cfg.ingress.max_ongoing_requests,
            "ray_actor_options": {"num_cpus": cfg.ingress.num_cpus}}


def build_app(cfg: GatewayConfig):
    """The bound Serve application: the gateway ingress and the reward service's model deployment."""
    model = reward_model_deployment().options(**deployment_options(cfg.model)).bind(to_dict(cfg.model))
    return _deployment().options(**ingress_options(cfg)).bind(to_dict(cfg), cfg.resolved_token(), model)


def app_builder(args: dict):
    """`serve run fcrm_ray.gateway.app:app_builder config=configs/gateway.yaml`."""
    overrides = args.get("overrides") or []
    if isinstance(overrides, str):
        overrides = overrides.split()
    return build_app(load_config(GatewayConfig, args.get("config") or None, list(overrides)))


def main(argv: list[str] | None = None, prog: str = "fcrm gateway") -> int:
    parser = config_arg_parser(prog, "Best-of-N gateway in front of an OpenAI-compatible server (Ray Serve)")
    parser.add_argument("--upstream", help="upstream base URL, e.g. http://127.0.0.1:8001/v1 (upstream.url)")
    parser.add_argument("--model", help="reward model folder (model.path)")
    parser.add_argument("--metrics-export-port", type=int, default=0,
                        help="Prometheus port of the local Ray node's metrics agent (when fcrm starts Ray)")
    args = parser.parse_intermixed_args(argv)
    flags = [f"{k}={v}" for k, v in (("upstream.url", args.upstream), ("model.path", args.model)) if v]
    cfg = load_config(GatewayConfig, args.config, flags + list(args.overrides))
    try:
        check_reward_model_dir(resolve_model_path(cfg.model.path))
    except (RewardModelError, FileNotFoundError) as e:
        raise ConfigError(f"config key `model.path`: {e}") from None
    # the upstream URL may carry credentials in userinfo: the banner prints only its host part
    return run_serve_app(
        prog, cfg, lambda: build_app(cfg), cfg.selection.request_timeout_s + 5,
        lambda: f"fcrm gateway: http://{cfg.host}:{cfg.port}{cfg.route_prefix.rstrip('/')}/v1 -> "
                f"{_safe_url(cfg.upstream.url)} (auth {'on' if cfg.resolved_token() else 'off'}, "
                f"upstream key {'set' if cfg.upstream.api_key() else 'unset'})", args.metrics_export_port)


def _safe_url(url: str) -> str:
    import httpx

    u = httpx.URL(url)
    return str(u.copy_with(username=None, password=None)) if u.userinfo else url


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
