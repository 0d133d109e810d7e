"""Reward-model training on Ray Train (`fcrm train`): config, data, loss, DeepSpeed config, loop, recipe."""
