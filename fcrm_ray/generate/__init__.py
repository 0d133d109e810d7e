"""Synthetic preference pairs at scale: generator backends (mutation / transformers / vLLM) on a
streaming Ray Data pipeline that judges every candidate call against the reference and keeps the
wrong ones as `rejected` (see `pipeline.py` for the phases, resume and fault handling)."""
