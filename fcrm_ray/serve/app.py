"""`fcrm serve`: the reward service as a Ray Serve application.

    fcrm serve --config configs/serve.yaml [key=value ...]   # e.g. models.fcrm-rm.path=runs/rm-minilm
    fcrm serve --config configs/serve.yaml --emit-config configs/serve_deploy.yaml   # for `serve deploy`
    serve run fcrm_ray.serve.app:app_builder config=configs/serve.yaml              # Serve's own CLI

Shape: one FastAPI ingress deployment (`RewardIngress`: auth, size limits, validation, fan-out)
and one deployment per reward model (`RewardModel_<name>`):

- batching: every candidate of every request goes into the model replica's `MicroBatcher`; one
  forward runs at a time, and the next batch is everything that queued meanwhile (up to
  `models.<name>.batch_size`). `batch_wait_timeout_s` is how long an idle replica waits for company.
  See `MicroBatcher` for why this is not `@serve.batch`.
- `max_ongoing_requests` defaults to 2 x batch_size (Serve's default of 5 would cap the queue
  a batch is taken from); the autoscaling target defaults to batch_size.
- `autoscaling` (min/max replicas, target ongoing requests) and `ray_actor_options` (num_gpus,
  num_cpus) per model come from the config.
- isolation: the ingress validates everything a renderer reads (messages, tool_calls, tools,
  references, nesting depth, string and name lengths) and answers 4xx naming the field; inside
  a model replica a unit that still fails to render or score fails alone (its item gets `error`
  and null rewards, `/get_reward` flags it in `extra_logs.error`), its batch neighbours are scored.
- unscorable candidates (empty, longer than max_length) get `reward.unscorable_reward` (default:
  strictly below anything the model's head can output; see `RewardConfig`), flagged `unscorable`.
- a model replica that dies mid-request: the ingress retries the call (`limits.model_retries`)
  so with >= 2 replicas the survivor answers; with none left, 503 + Retry-After.
- `/healthz` is readiness: 200 only when every model deployment answers (a replica answers after
  its warm-up forward), else 503. It and Ray Serve's own `/-/healthz` and `/-/routes` (served by
  the proxy, outside this app: they show app names and route prefixes) need no token; every
  other route needs `Authorization: Bearer <token>` when a token is set (401 otherwise).
- safety: the proxy binds `host` (127.0.0.1 unless configured); a host that is not loopback
  (including "") needs a bearer token (ServeConfig.validate). Bodies over
  `limits.max_body_bytes` get 413 (also chunked ones, counted while reading); a body that is not
  readable JSON gets 400; JSON of the wrong shape or over a limit gets 422 with `detail` and
  `field` naming the place (e.g. `items[0].candidates`).
- rendered chat in: `/get_reward` queries and `{"text"}` items are read back into tools, messages
  and the response (`toolcall.chat_parse`, `reward.chat_family`) and scored like a `/v1/rewards`
  candidate (`text_work`); no catalog or no call -> `reward.unparsed` (penalty | raw_text), flagged.
- verifier in the reward: a reference (`reference` / `labels`) adds the verifier's verdicts;
  `reward.mode` rm | verifier | mix combines them (`combine`).
- scoring goes through `fcrm_ray.scoring.RewardScorer`, the same function eval and filter use.

Code: this module is the application (build, `serve deploy` config, CLI); the parts live in the
serve kit by seam, shared with `fcrm gateway`: `serve.backend` (RewardBackend, head bounds),
`serve.batching` (MicroBatcher), `serve.guard` (auth, limits, RequestError), `serve.replicas`
(model calls with retries), `serve.handlers` (the routes' logic), `serve.deployments`.

Routes: `POST /v1/rewards`, `POST /get_reward` (OpenRLHF remote RM), `GET /healthz` (readiness),
`GET /v1/models`.

    curl -s localhost:8000/v1/rewards -H 'content-type: application/json' -d '{
      "tools": [{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
      "messages": [{"role": "user", "content": "Weather in Paris?"}],
      "candidates": ["[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]",
                     [{"name": "get_weather", "arguments": {"city": "Rome"}}]],
      "reference": [{"get_weather": {"city": ["Paris"]}}]}'
    # -> {"model": "fcrm-rm", "rewards": [r1, r2], "results": [{"rewards": [...], "verdicts": [...]}]}
    curl -s localhost:8000/get_reward -H 'content-type: application/json' \
      -d '{"query": ["<prompt><response>"], "prompts": ["<prompt>"]}'
    # -> {"rewards": [...], "scores": [...], "extra_logs": {"unscorable": [...], "error": [...]}}
    # with a token: -H "Authorization: Bearer $FCRM_SERVE_TOKEN"

OpenRLHF: start `fcrm serve` and pass `--remote_rm_url http://HOST:PORT/get_reward` to
`openrlhf.cli.train_ppo_ray` (newer releases: `--reward.remote_url`). OpenRLHF POSTs
`{"query": [...], "prompts": [...], "labels": [...]}` and reads `rewards` (also `scores`,
`extra_logs`); its client sends no auth header, so keep the token off (loopback / private network)
or put a proxy in front.

Metrics: Ray Serve's own Prometheus metrics (`ray_serve_num_http_requests`,
`ray_serve_deployment_processing_latency_ms` ...; batch sizes are in `GET /v1/models`) are exported by each node's
metrics agent on Ray's metrics export port (`ray start --metrics-export-port=8080`, or
`ray.init(_metrics_export_port=...)`; `fcrm serve` sets it from `metrics_export_port` when it
starts Ray itself); scrape `http://NODE:PORT/metrics`.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures (`request: Request`)
# at definition time.

import sys
from pathlib import Path

from fcrm_ray.config import ConfigError, config_arg_parser, load_config, to_dict
from fcrm_ray.models import RewardModelError, check_reward_model_dir
from fcrm_ray.paths import resolve_model_path
from fcrm_ray.serve.config import ServeConfig
# The serve kit, split by seam; re-exported here, the names `fcrm serve` has always had.
from fcrm_ray.serve.backend import FALLBACK_FLOOR, RewardBackend, head_lower_bound  # noqa: F401
from fcrm_ray.serve.batching import MicroBatcher  # noqa: F401
from fcrm_ray.serve.deployments import _deployments, deployment_options, ingress_options
from fcrm_ray.serve.lifecycle import run_serve_app
from fcrm_ray.serve.guard import (SETTINGS, RequestError, check_shape, parse_body, read_body,  # noqa: F401
                                  token_ok)
from fcrm_ray.serve.handlers import (Work, combine, handle_get_reward, handle_healthz, handle_rewards,  # noqa: F401
                                     parse_reference, split_query, text_work, unscorable_value)
from fcrm_ray.serve.replicas import ServiceState, call_model, replica_unavailable  # noqa: F401


def build_app(cfg: ServeConfig):
    """The bound Serve application (for `serve.run`, tests and `serve run`)."""
    model_cls, ingress_cls = _deployments()
    models = {m.name: model_cls.options(**deployment_options(m)).bind(to_dict(m)) for m in cfg.models.values()}
    return ingress_cls.options(**ingress_options(cfg)).bind(to_dict(cfg), cfg.resolved_token(), **models)


def app_builder(args: dict):
    """Serve application builder: `import_path: fcrm_ray.serve.app:app_builder` with
    `args: {config: configs/serve.yaml, overrides: [...]}` (what `serve deploy` and `serve run` call)."""
    overrides = args.get("overrides") or []
    if isinstance(overrides, str):
        overrides = overrides.split()
    return build_app(load_config(ServeConfig, args.get("config") or None, list(overrides)))


def deploy_config(cfg: ServeConfig, config_path: str | None, overrides: list[str]) -> dict:
    """A `serve deploy`-able config (Serve's ServeDeploySchema) for this ServeConfig. The token is
    never written: replicas read it from `auth_token_env` (set it in the runtime_env/cluster)."""
    safe = [o for o in overrides if not o.startswith("auth_token=")]
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": cfg.host, "port": cfg.port, "request_timeout_s": cfg.limits.request_timeout_s},
        "applications": [{
            "name": cfg.app_name,
            "route_prefix": cfg.route_prefix,
            "import_path": "fcrm_ray.serve.app:app_builder",
            "args": {"config": config_path or "", "overrides": safe},
            "deployments": [ingress_options(cfg)] + [deployment_options(m) for m in cfg.models.values()],
        }],
    }


def main(argv: list[str] | None = None, prog: str = "fcrm serve") -> int:
    parser = config_arg_parser(prog, "Serve reward models over HTTP with Ray Serve")
    parser.add_argument("--emit-config", metavar="FILE", help="write a `serve deploy` YAML and exit")
    parser.add_argument("--metrics-export-port", type=int, default=0,
                        help="Prometheus port of the local Ray node's metrics agent (when fcrm starts Ray)")
    args = parser.parse_args(argv)
    cfg = load_config(ServeConfig, args.config, args.overrides)
    if args.emit_config:
        import yaml  # local: PyYAML is no declared dependency (a dev extra; here through omegaconf)

        text = yaml.safe_dump(deploy_config(cfg, args.config, list(args.overrides)), sort_keys=False)
        Path(args.emit_config).parent.mkdir(parents=True, exist_ok=True)
        Path(args.emit_config).write_text(
            "# Generated by `fcrm serve --emit-config`; deploy with `serve deploy " + args.emit_config + "`.\n" + text)
        print(f"wrote {args.emit_config}")
        return 0
    for m in cfg.models.values():  # fail here, not in a replica restart loop
        try:
            check_reward_model_dir(resolve_model_path(m.path))
        except (RewardModelError, FileNotFoundError) as e:
            raise ConfigError(f"config key `models.{m.name}.path`: {e}") from None

    return run_serve_app(
        prog, cfg, lambda: build_app(cfg), cfg.limits.request_timeout_s,
        lambda: f"fcrm serve: {', '.join(cfg.models)} on http://{cfg.host}:{cfg.port}{cfg.route_prefix} "
                f"(auth {'on' if cfg.resolved_token() else 'off'})", args.metrics_export_port)


if __name__ == "__main__":
    sys.exit(main())
