"""Reward-guided filtering of tool-calling SFT corpora: extract every tool-call turn, score it with
the reward model (Ray Data actor pool or the Serve deployment), keep by policy.

`fcrm filter --config configs/filter.yaml` (see `fcrm_ray.filter.run`)."""
