"""The reward service's Serve deployments: `reward_model_deployment()` (one reward model behind a
`MicroBatcher`; the gateway scores through it too) and `reward_ingress()` (the FastAPI front of
`fcrm serve`), with their Serve options. Classes are made per call: Serve pickles them by value
to the replicas."""

# No `from __future__ import annotations`: FastAPI reads the route signatures (`request: Request`)
# at definition time.

import asyncio
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from fcrm_ray.config import from_dict
from fcrm_ray.serve.backend import RewardBackend
from fcrm_ray.serve.batching import MicroBatcher
from fcrm_ray.serve.config import ModelConfig, ServeConfig
from fcrm_ray.serve.guard import RequestError, add_guard, read_body, reward_settings, set_reward_settings
from fcrm_ray.serve.handlers import handle_get_reward, handle_healthz, handle_rewards
from fcrm_ray.serve.replicas import ServiceState


def reward_model_deployment():
    """The model deployment class (bind it with a `ModelConfig` as a dict; options from
    `deployment_options`)."""

    @serve.deployment
    class RewardModelDeployment:
        """One reward model behind a MicroBatcher (batch_size candidates per forward)."""

        def __init__(self, model_cfg: dict):
            self.cfg = from_dict(ModelConfig, model_cfg)
            self.backend = RewardBackend(self.cfg)
            self.backend.warm_up()  # ready = has scored once
            self.batcher = MicroBatcher(self.backend.score_units, self.cfg.batch_size,
                                        self.cfg.batch_wait_timeout_s)

        async def score_group(self, tools: list, messages: list, candidates: list) -> list:
            return list(await asyncio.gather(*(self.batcher.submit(("cand", tools, messages, c)) for c in candidates)))

        async def score_texts(self, prompts: list[str], completions: list[str]) -> list:
            return list(await asyncio.gather(*(self.batcher.submit(("text", p, c)) for p, c in zip(prompts, completions))))

        def ready(self) -> bool:
            return True

        def info(self) -> dict:
            c, b = self.cfg, self.batcher
            return {"name": c.name, "path": c.path, "max_batch_size": c.batch_size,
                    "batch_wait_timeout_s": c.batch_wait_timeout_s,
                    "max_length": self.backend.scorer.max_length,  # as resolved (training's when null)
                    "device": c.device, "dtype": c.dtype,
                    "details": {**_jsonable(self.backend.info()), "batches": b.batches, "candidates": b.units,
                                "mean_batch_size": b.units / b.batches if b.batches else 0.0,
                                "reward_lower_bound": self.backend.lower_bound}}

    return RewardModelDeployment


def reward_ingress():
    """The FastAPI ingress of `fcrm serve` (bind it with the ServeConfig as a dict, the token, and
    the model deployments by name)."""
    api = FastAPI(title="fcrm reward service", version="1")
    add_guard(api, reward_settings)

    @serve.deployment
    @serve.ingress(api)
    class RewardIngress:
        """HTTP front: validates, enforces limits, fans items out to the model deployments."""

        def __init__(self, cfg: dict, token: str, **models):
            self.cfg = from_dict(ServeConfig, cfg)
            self.models = models  # name -> DeploymentHandle
            self.state = ServiceState()
            set_reward_settings(token=token, max_body_bytes=self.cfg.limits.max_body_bytes,
                                route_prefix=self.cfg.route_prefix)

        @api.get("/healthz")
        async def healthz(self):
            status, body = await handle_healthz(self.cfg, self.models, self.state)
            return JSONResponse(body, status_code=status, headers={"Retry-After": "1"} if status == 503 else None)

        @api.get("/v1/models")
        async def models_info(self) -> dict:
            infos = await asyncio.gather(*(h.info.remote() for h in self.models.values()))
            return {"default": self.cfg.model(None).name, "models": list(infos)}

        @api.post("/v1/rewards")
        async def rewards(self, request: Request):
            try:
                body = await read_body(request, self.cfg.limits.max_body_bytes)
            except RequestError as e:
                return e.response()
            return await handle_rewards(self.cfg, self.models, body, self.state)

        @api.post("/get_reward")
        async def get_reward(self, request: Request):
            try:
                body = await read_body(request, self.cfg.limits.max_body_bytes)
            except RequestError as e:
                return e.response()
            return await handle_get_reward(self.cfg, self.models, body, self.state)

    return RewardIngress


def _deployments():
    """(model deployment class, ingress class), made per call."""
    return reward_model_deployment(), reward_ingress()


def _jsonable(d: Any) -> Any:
    return json.loads(json.dumps(d, default=str))


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
