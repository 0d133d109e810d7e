"""Ray Serve reward service: batched reward-model deployments behind a FastAPI ingress.

`fcrm serve --config configs/serve.yaml` (see `fcrm_ray.serve.app`); request/response models in
`schemas`, a retrying HTTP client in `client`.
"""
