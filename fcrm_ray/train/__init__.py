"""Reward-model training on Ray Train (`fcrm train`): config, data, packing, loss, DeepSpeed config,
checkpoint files, the worker loop, its crash-injection test hook (faults), and the recipe (driver)."""
