"""fcrm-ray: outcome reward models for tool-calling LLMs, on Ray."""

__version__ = "0.1.0"
