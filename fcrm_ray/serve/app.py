"""`fcrm serve`: the reward service as a Ray Serve application.

    fcrm serve --config configs/serve.yaml [key=value ...]   # e.g. models.fcrm-rm.path=runs/rm-minilm
    fcrm serve --config configs/serve.yaml --emit-config configs/serve_deploy.yaml   # for `serve deploy`
    serve run fcrm_ray.serve.app:app_builder config=configs/serve.yaml              # Serve's own CLI

Shape: one FastAPI ingress deployment (`RewardIngress`: auth, size limits, validation, fan-out)
and one batched deployment per reward model (`RewardModel_<name>`):

- batching: every candidate is one call of `RewardModelDeployment.score_unit`, a `@serve.batch`
  method, so candidates of concurrent requests share a forward pass. `models[].max_batch_size`
  (candidates per forward) and `batch_wait_timeout_s` are applied at replica start with
  `set_max_batch_size` / `set_batch_wait_timeout_s` (the decorator's arguments are fixed at import).
- `max_ongoing_requests` defaults to 2 x max_batch_size: Serve's default (5, autoscaling target 2)
  would cap a replica at 5 concurrent requests and starve a batch of 32. The autoscaling target
  defaults to max_batch_size (one full batch in flight per replica).
- `autoscaling` (min/max replicas, target ongoing requests) and `ray_actor_options` (num_gpus,
  num_cpus) per model come from the config.
- safety: the proxy binds `host` (127.0.0.1 unless configured); a non-loopback host needs a bearer
  token (ServeConfig.validate). With a token every route but `/healthz` needs
  `Authorization: Bearer <token>` (401 otherwise). Bodies over `limits.max_body_bytes` get 413;
  malformed JSON, wrong types and too many items/candidates get 422 with `detail` naming the
  field (e.g. `items[0].candidates`); nothing a client sends takes a replica down.
- scoring goes through `fcrm_ray.scoring.RewardScorer`, the same function eval and filter use.

Routes: `POST /v1/rewards`, `POST /get_reward` (OpenRLHF remote RM), `GET /healthz`, `GET /v1/models`.

    curl -s localhost:8000/v1/rewards -H 'content-type: application/json' -d '{
      "tools": [{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
      "messages": [{"role": "user", "content": "Weather in Paris?"}],
      "candidates": ["[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]",
                     [{"name": "get_weather", "arguments": {"city": "Rome"}}]],
      "reference": [{"get_weather": {"city": ["Paris"]}}]}'
    # -> {"model": "fcrm-rm", "rewards": [r1, r2], "results": [{"rewards": [...], "verdicts": [...]}]}
    curl -s localhost:8000/get_reward -H 'content-type: application/json' \
      -d '{"query": ["<prompt><response>"], "prompts": ["<prompt>"]}'
    # -> {"rewards": [...], "scores": [...], "extra_logs": {"unscorable": [...]}}
    # with a token: -H "Authorization: Bearer $FCRM_SERVE_TOKEN"

OpenRLHF: start `fcrm serve` and pass `--remote_rm_url http://HOST:PORT/get_reward` to
`openrlhf.cli.train_ppo_ray` (newer releases: `--reward.remote_url`). OpenRLHF POSTs
`{"query": [...], "prompts": [...], "labels": [...]}` and reads `rewards` (also `scores`,
`extra_logs`); its client sends no auth header, so keep the token off (loopback / private network)
or put a proxy in front.

Metrics: Ray Serve's own Prometheus metrics (`ray_serve_num_http_requests`,
`ray_serve_deployment_processing_latency_ms`, `ray_serve_batch_*` ...) are exported by each node's
metrics agent on Ray's metrics export port (`ray start --metrics-export-port=8080`, or
`ray.init(_metrics_export_port=...)`; `fcrm serve` sets it from `metrics_export_port` when it
starts Ray itself); scrape `http://NODE:PORT/metrics`.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures (`request: Request`,
# a name local to `_deployments`) at definition time.

import asyncio
import json
import os
import math
import sys
from pathlib import Path
from typing import Any

from fcrm_ray.config import ConfigError, config_arg_parser, from_dict, load_config, to_dict
from fcrm_ray.serve.config import ModelConfig, ServeConfig

# --- scoring backend (runs inside model replicas) -----------------------------------------------


class RewardBackend:
    """A `RewardScorer` plus the glue to score a batch of mixed units in as few forwards as possible.

    Units: `("cand", tools, messages, candidate)` - candidates of one request share the *same*
    tools/messages objects, so they are regrouped by identity and scored as groups;
    `("text", prompt, completion)` - pre-rendered text (OpenRLHF queries)."""

    def __init__(self, mcfg: ModelConfig):
        from fcrm_ray.scoring import RewardScorer

        self.cfg = mcfg
        self.scorer = RewardScorer(mcfg.path, batch_size=mcfg.max_batch_size, max_length=mcfg.max_length,
                                   device=mcfg.device, dtype=mcfg.dtype, trust_remote_code=mcfg.trust_remote_code)

    def score_units(self, units: list[tuple]) -> list[float]:
        out: list[float | None] = [None] * len(units)
        groups: dict[int, list[int]] = {}
        texts: list[int] = []
        for i, u in enumerate(units):
            if u[0] == "text":
                texts.append(i)
            else:
                groups.setdefault(id(u[2]), []).append(i)
        if texts:
            scores = self.scorer.score_texts([units[i][1] for i in texts], [units[i][2] for i in texts])
            for i, s in zip(texts, scores):
                out[i] = s
        if groups:
            idx = list(groups.values())
            specs = [(units[g[0]][1], units[g[0]][2], [units[i][3] for i in g]) for g in idx]
            score_groups = getattr(self.scorer, "score_groups", None)
            if score_groups is not None:  # one padded forward over all groups of the batch
                results = score_groups(specs)
            else:
                results = [self.scorer.score_candidates(t, m, c) for t, m, c in specs]
            for g, res in zip(idx, results):
                for i, s in zip(g, res):
                    out[i] = s
        return [_finite(s) for s in out]

    def info(self) -> dict:
        info = getattr(self.scorer, "model_info", None)
        return dict(info()) if callable(info) else {}


def _finite(x: Any) -> float | None:
    """Scores that cannot be computed (e.g. a candidate longer than max_length) come back as None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# --- request handling (pure async functions over deployment handles; testable without Serve) ------

# Per-replica settings the HTTP middleware reads (set in RewardIngress.__init__; each replica is
# its own process, so this is not shared state between replicas).
SETTINGS: dict = {}


class RequestError(Exception):
    """A client error: HTTP status + the field to fix."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message

    def response(self):
        from fastapi.responses import JSONResponse

        headers = {"Retry-After": "1"} if self.status == 503 else None
        return JSONResponse({"detail": str(self), "field": self.field}, status_code=self.status, headers=headers)


def replica_unavailable(e: BaseException) -> RequestError | None:
    """A model replica that died or is being replaced mid-request -> 503 with Retry-After (the
    client retries; Serve routes the retry to a live replica). Any other error stays a 500."""
    try:
        from ray.exceptions import ActorUnavailableError, RayActorError
    except ImportError:  # pragma: no cover - Ray is a dependency
        return None
    if isinstance(e, (RayActorError, ActorUnavailableError)):
        return RequestError(503, "model", f"model replica unavailable ({type(e).__name__}); retry the request")
    return None


async def _scores(awaitable):
    """Await model-deployment calls; a dead replica becomes a RequestError(503)."""
    try:
        return await awaitable
    except Exception as e:
        err = replica_unavailable(e)
        if err is None:
            raise
        raise err from None


def token_ok(header: str, token: str) -> bool:
    import hmac

    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def _route(settings: dict, path: str) -> str:
    return (settings.get("route_prefix") or "/").rstrip("/") + path


def parse_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "body", "not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise RequestError(400, "body", f"malformed JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise RequestError(400, "body", "JSON nested too deeply") from None


def _validation_error(e, strip: str = "") -> RequestError:
    from fcrm_ray.serve.schemas import error_location

    first = e.errors()[0]
    loc = error_location(tuple(first["loc"]))
    if strip and loc.startswith(strip):
        loc = loc[len(strip):].lstrip(".") or "body"
    return RequestError(422, loc, first["msg"])


def _check_len(value: Any, limit: int, field: str, key: str) -> None:
    if isinstance(value, list) and len(value) > limit:
        raise RequestError(422, field, f"{len(value)} entries exceed limits.{key}={limit}")


def _model_handle(cfg: ServeConfig, models: dict, name: str | None):
    m = cfg.model(name)
    if m is None or m.name not in models:
        raise RequestError(422, "model", f"unknown model {name!r}; serving {sorted(models)}")
    return m, models[m.name]


async def handle_rewards(cfg: ServeConfig, models: dict, body: bytes) -> dict:
    """`POST /v1/rewards`: a single item, `{"items": [...]}` or a bare list of items."""
    from pydantic import ValidationError

    from fcrm_ray.serve.schemas import RewardRequest, candidate_payload
    from fcrm_ray.toolcall.schema import SchemaError, normalize_tools, reference_from_bfcl

    try:
        data = parse_body(body)
        single = isinstance(data, dict) and "items" not in data
        if isinstance(data, list):
            data = {"items": data}
        elif single:
            data = dict(data)
            data = {"model": data.pop("model", None), "items": [data]}
        elif not isinstance(data, dict):
            raise RequestError(422, "body", f"expected a JSON object or list, got {type(data).__name__}")
        lim = cfg.limits
        _check_len(data.get("items"), lim.max_items_per_request, "items", "max_items_per_request")
        items = data.get("items")
        for i, it in enumerate(items if isinstance(items, list) else []):  # else: pydantic names it
            if isinstance(it, dict):
                field = "candidates" if single else f"items[{i}].candidates"
                _check_len(it.get("candidates"), lim.max_candidates_per_item, field, "max_candidates_per_item")
        try:
            req = RewardRequest.model_validate(data)
        except ValidationError as e:
            raise _validation_error(e, "items[0]" if single else "") from None
        mcfg, handle = _model_handle(cfg, models, req.model)
        refs, specs = [], []
        for i, it in enumerate(req.items):
            where = "" if single else f"items[{i}]."
            try:
                specs.append(normalize_tools(it.tools))
            except SchemaError as e:
                raise RequestError(422, f"{where}tools", str(e)) from None
            try:
                refs.append(reference_from_bfcl(it.reference) if it.reference is not None else None)
            except SchemaError as e:
                raise RequestError(422, f"{where}reference", str(e)) from None
    except RequestError as e:
        return e.response()
    payloads = [[candidate_payload(c) for c in it.candidates] for it in req.items]
    try:
        scores = await _scores(asyncio.gather(*(handle.score_group.remote(it.tools, it.messages, p)
                                                for it, p in zip(req.items, payloads))))
    except RequestError as e:
        return e.response()
    results = []
    for it, p, s, ref, spec in zip(req.items, payloads, scores, refs, specs):
        res: dict[str, Any] = {"id": it.id, "rewards": list(s)}
        if ref is not None:
            from fcrm_ray.toolcall.verify import verify

            res["verdicts"] = [_verdict(verify(c, ref, spec)) for c in p]
        results.append(res)
    out: dict[str, Any] = {"model": mcfg.name, "results": results}
    if single:
        out["rewards"] = results[0]["rewards"]
    return out


def _verdict(v: Any) -> dict:
    return {"correct": bool(v.correct), "error_type": v.error_type, "detail": str(v.detail or "")}


def split_query(query: str, prompt: str | None) -> tuple[str, str]:
    """(prompt, completion) of an OpenRLHF query: the completion is what follows the prompt.
    Without a usable prompt the whole query is the completion (scored with an empty prompt)."""
    if prompt:
        at = query.find(prompt)
        if at >= 0:
            cut = at + len(prompt)
            return query[:cut], query[cut:]
    return "", query


async def handle_get_reward(cfg: ServeConfig, models: dict, body: bytes) -> dict:
    """`POST /get_reward` (OpenRLHF remote RM). `scores` = sigmoid(reward) in (0, 1), what
    OpenRLHF's dynamic filtering expects; `extra_logs` are per-sample lists it logs to wandb.
    A query the model cannot score (its completion alone exceeds max_length) gets reward 0.0 and
    `extra_logs.unscorable` = 1 rather than failing the whole RL step."""
    from pydantic import ValidationError

    from fcrm_ray.serve.schemas import GetRewardRequest

    try:
        data = parse_body(body)
        if not isinstance(data, dict):
            raise RequestError(422, "body", f"expected a JSON object, got {type(data).__name__}")
        _check_len(data.get("query"), cfg.limits.max_queries_per_request, "query", "max_queries_per_request")
        try:
            req = GetRewardRequest.model_validate(data)
        except ValidationError as e:
            raise _validation_error(e) from None
        n = len(req.query)
        for key in ("prompts", "labels"):
            v = getattr(req, key)
            if v is not None and len(v) != n:
                raise RequestError(422, key, f"has {len(v)} entries, `query` has {n}")
        _, handle = _model_handle(cfg, models, req.model)
    except RequestError as e:
        return e.response()
    prompts = req.prompts or [None] * n
    pairs = [split_query(q, p) for q, p in zip(req.query, prompts)]
    try:
        raw = await _scores(handle.score_texts.remote([p for p, _ in pairs], [c for _, c in pairs]))
    except RequestError as e:
        return e.response()
    rewards = [0.0 if r is None else float(r) for r in raw]
    return {"rewards": rewards,
            "scores": [1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, r)))) for r in rewards],
            "extra_logs": {"unscorable": [1.0 if r is None else 0.0 for r in raw]}}


# --- deployments ---------------------------------------------------------------------------------

def _deployments():
    """Define the deployment classes lazily so importing this module (CLI help, config checks,
    YAML emission) never imports Ray Serve or FastAPI."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from ray import serve

    @serve.deployment
    class RewardModelDeployment:
        """One reward model; `score_unit` is the batched forward (max_batch_size candidates)."""

        def __init__(self, model_cfg: dict):
            self.cfg = from_dict(ModelConfig, model_cfg)
            self.backend = RewardBackend(self.cfg)
            self.score_unit.set_max_batch_size(self.cfg.max_batch_size)
            self.score_unit.set_batch_wait_timeout_s(self.cfg.batch_wait_timeout_s)
            self.batches = self.units = 0  # this replica's batching, reported by /v1/models

        @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
        async def score_unit(self, units: list[tuple]) -> list[float | None]:
            self.batches += 1
            self.units += len(units)
            # In a thread so requests keep queueing (and the next batch fills) during the forward.
            return await asyncio.to_thread(self.backend.score_units, units)

        async def score_group(self, tools: list, messages: list, candidates: list) -> list[float | None]:
            return list(await asyncio.gather(*(self.score_unit(("cand", tools, messages, c)) for c in candidates)))

        async def score_texts(self, prompts: list[str], completions: list[str]) -> list[float | None]:
            return list(await asyncio.gather(*(self.score_unit(("text", p, c)) for p, c in zip(prompts, completions))))

        def info(self) -> dict:
            c = self.cfg
            return {"name": c.name, "path": c.path, "max_batch_size": c.max_batch_size,
                    "batch_wait_timeout_s": c.batch_wait_timeout_s, "max_length": c.max_length,
                    "device": c.device, "dtype": c.dtype,
                    "details": {**_jsonable(self.backend.info()), "batches": self.batches, "candidates": self.units,
                                "mean_batch_size": self.units / self.batches if self.batches else 0.0}}

    api = FastAPI(title="fcrm reward service", version="1")

    @api.middleware("http")
    async def guard(request: Request, call_next):
        # Auth and the size limit run before routing and body parsing, for every route.
        settings = SETTINGS
        token = settings.get("token") or ""
        if token and request.url.path.rstrip("/") != _route(settings, "/healthz"):
            if not token_ok(request.headers.get("authorization", ""), token):
                return JSONResponse({"detail": "missing or wrong bearer token (header `Authorization`)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
        length = request.headers.get("content-length")
        limit = settings.get("max_body_bytes", 0)
        if length and limit and length.isdigit() and int(length) > limit:
            return JSONResponse({"detail": f"body: {length} bytes exceeds limits.max_body_bytes={limit}"},
                                status_code=413)
        return await call_next(request)

    @serve.deployment
    @serve.ingress(api)
    class RewardIngress:
        """HTTP front: validates, enforces limits, fans items out to the model deployments."""

        def __init__(self, cfg: dict, token: str, **models):
            self.cfg = from_dict(ServeConfig, cfg)
            self.models = models  # name -> DeploymentHandle
            SETTINGS.update(token=token, max_body_bytes=self.cfg.limits.max_body_bytes,
                                     route_prefix=self.cfg.route_prefix)

        @api.get("/healthz")
        async def healthz(self) -> dict:
            return {"status": "ok", "models": {n: "ready" for n in self.models}}

        @api.get("/v1/models")
        async def models_info(self) -> dict:
            infos = await asyncio.gather(*(h.info.remote() for h in self.models.values()))
            return {"default": self.cfg.model(None).name, "models": list(infos)}

        @api.post("/v1/rewards")
        async def rewards(self, request: Request):
            return await handle_rewards(self.cfg, self.models, await _body(request, self.cfg))

        @api.post("/get_reward")
        async def get_reward(self, request: Request):
            return await handle_get_reward(self.cfg, self.models, await _body(request, self.cfg))

    return RewardModelDeployment, RewardIngress


async def _body(request, cfg: ServeConfig) -> bytes:
    from fastapi import HTTPException

    body = await request.body()  # chunked uploads carry no content-length: check the real size too
    if len(body) > cfg.limits.max_body_bytes:
        raise HTTPException(413, f"body: {len(body)} bytes exceeds limits.max_body_bytes={cfg.limits.max_body_bytes}")
    return body


def _jsonable(d: Any) -> Any:
    return json.loads(json.dumps(d, default=str))


# --- application ---------------------------------------------------------------------------------

def deployment_options(m: ModelConfig) -> dict:
    """Serve options of one model deployment (also written into the `serve deploy` YAML)."""
    return {
        "name": f"RewardModel_{m.name}",
        "max_ongoing_requests": m.effective_max_ongoing_requests(),
        "autoscaling_config": {
            "min_replicas": m.autoscaling.min_replicas,
            "max_replicas": m.autoscaling.max_replicas,
            "initial_replicas": max(1, m.autoscaling.min_replicas),
            "target_ongoing_requests": m.effective_target_ongoing(),
            "upscale_delay_s": m.autoscaling.upscale_delay_s,
            "downscale_delay_s": m.autoscaling.downscale_delay_s,
        },
        "ray_actor_options": {"num_cpus": m.ray_actor_options.num_cpus, "num_gpus": m.ray_actor_options.num_gpus},
    }


def ingress_options(cfg: ServeConfig) -> dict:
    return {"name": "RewardIngress", "num_replicas": cfg.ingress.num_replicas,
            "max_ongoing_requests": cfg.ingress.max_ongoing_requests,
            "ray_actor_options": {"num_cpus": cfg.ingress.num_cpus}}


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
        import yaml

        text = yaml.safe_dump(deploy_config(cfg, args.config, list(args.overrides)), sort_keys=False)
        Path(args.emit_config).parent.mkdir(parents=True, exist_ok=True)
        Path(args.emit_config).write_text(
            "# Generated by `fcrm serve --emit-config`; deploy with `serve deploy " + args.emit_config + "`.\n" + text)
        print(f"wrote {args.emit_config}")
        return 0
    for m in cfg.models.values():  # fail here, not in a replica restart loop
        from fcrm_ray.models import RewardModelError, check_reward_model_dir
        from fcrm_ray.paths import resolve_model_path

        try:
            check_reward_model_dir(resolve_model_path(m.path))
        except (RewardModelError, FileNotFoundError) as e:
            raise ConfigError(f"config key `models.{m.name}.path`: {e}") from None

    import ray
    from ray import serve

    init = {"address": cfg.ray_address} if cfg.ray_address else {}
    if args.metrics_export_port and not cfg.ray_address:
        init["_metrics_export_port"] = args.metrics_export_port
    ray.init(**init)
    import signal
    import time

    def _stop(*_):  # SIGTERM (systemd, Kubernetes, `kill`) shuts down like Ctrl-C
        raise KeyboardInterrupt

    if cfg.blocking:
        signal.signal(signal.SIGTERM, _stop)
    deployed = False
    try:
        serve.start(http_options={"host": cfg.host, "port": cfg.port, "request_timeout_s": cfg.limits.request_timeout_s})
        serve.run(build_app(cfg), name=cfg.app_name, route_prefix=cfg.route_prefix, blocking=False)
        deployed = True
        print(f"fcrm serve: {', '.join(cfg.models)} on http://{cfg.host}:{cfg.port}{cfg.route_prefix} "
              f"(auth {'on' if cfg.resolved_token() else 'off'})", flush=True)
        while cfg.blocking:
            time.sleep(3600)
    except KeyboardInterrupt:  # also while still deploying: the app must not outlive us
        pass
    finally:
        # A shared cluster keeps running: remove only our app. A Ray instance this process started
        # goes down with `ray.shutdown()` and takes Serve with it (`serve.shutdown()` first only
        # adds its controller's 30 s shutdown timeout on a busy machine).
        if (cfg.blocking or not deployed) and (cfg.ray_address or os.environ.get("RAY_ADDRESS")):
            serve.delete(cfg.app_name)
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
