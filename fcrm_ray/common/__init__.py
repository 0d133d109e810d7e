"""What every stage shares, under the same keys in every stage config: the scoring model's settings
(`scorer.ScorerConfig`, key `model`), the Ray connection (`ray_cluster.RayConfig`, key `ray`, and
`ray_init`, the one place Ray is started or joined) and the scoring actor pool
(`ray_cluster.ActorPoolConfig`, key `actors`); and the atomic file writes of resumable run
directories (`atomic`). docs/architecture.md has the vocabulary table. (Nothing is imported
here, so that reading a config does not import Ray.)"""
