"""Evaluation of reward models: FC-RewardBench pairwise accuracy (`pairwise`, scored by `scorers` /
the LLM `judge`), Best-of-N reranking (`bon`), robustness to input perturbations (`robustness`,
`perturb`) and reports (`report`). `metrics` holds the pure metric functions they share."""
