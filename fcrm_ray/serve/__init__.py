"""Ray Serve reward service: batched reward-model deployments behind a FastAPI ingress.

`fcrm serve --config configs/serve.yaml` (see `fcrm_ray.serve.app`). The serve kit, by seam, used by
the reward service and the Best-of-N gateway (`fcrm_ray.gateway`) alike: `backend` (the reward
model in a replica), `batching` (the micro-batcher), `guard` (auth, body and shape limits,
`RequestError`), `replicas` (retrying calls to model deployments), `handlers` (the reward routes),
`deployments` (the Serve deployments and their options); request/response models in `schemas`, a
retrying HTTP client in `client`.
"""
