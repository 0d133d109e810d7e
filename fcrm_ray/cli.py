"""`fcrm`: one command, one subcommand per stage. Each stage module owns its `main(argv)`;
this file only dispatches, importing the stage lazily so `fcrm verify` never loads torch or Ray."""

from __future__ import annotations

import importlib
import sys

# (command words) -> "module:function"; each function takes argv (list[str]) and returns an exit code.
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("bench", "build"): ("fcrm_ray.data.bench:main", "build an FC-RewardBench-format pair set from BFCL"),
    ("verify",): ("fcrm_ray.data.verify_file:main", "verify candidate calls against references (JSONL)"),
    ("generate",): ("fcrm_ray.generate.run:main", "synthesise preference pairs with Ray Data"),
    ("train",): ("fcrm_ray.train.run:main", "train a Bradley-Terry reward model with Ray Train"),
    ("eval", "pairwise"): ("fcrm_ray.evaluate.pairwise:main", "pairwise accuracy on a pair set"),
    ("eval", "bon"): ("fcrm_ray.evaluate.bon:main", "Best-of-N reranking"),
    ("eval", "robustness"): ("fcrm_ray.evaluate.robustness:main", "accuracy under input perturbations"),
    ("report",): ("fcrm_ray.evaluate.report:main", "HTML/Markdown report over eval runs"),
    ("serve",): ("fcrm_ray.serve.app:main", "Ray Serve reward service"),
    ("gateway",): ("fcrm_ray.gateway.app:main", "Best-of-N gateway in front of an OpenAI-compatible server"),
    ("filter",): ("fcrm_ray.filter.run:main", "reward-guided filtering of an SFT corpus"),
    ("models", "prepare"): ("fcrm_ray.local_models:main", "convert a packaged model into a local HF folder (cached)"),
    ("cluster", "check"): ("fcrm_ray.cluster_check:main", "will every stage fit a node type of a cluster file?"),
    ("pipeline",): ("fcrm_ray.pipeline:main", "run the stages end to end (configs/pipeline/*.yaml)"),
    ("quickstart",): ("fcrm_ray.pipeline:quickstart", "CPU end-to-end demo (configs/pipeline/cpu.yaml)"),
    ("machine",): ("fcrm_ray.machine:main", "what this machine can run: CPU, native bf16, GPUs, vLLM build, Ray"),
}


def _usage() -> str:
    lines = ["usage: fcrm <command> [options]", "", "commands:"]
    for words, (_, help_) in COMMANDS.items():
        lines.append(f"  {' '.join(words):<18} {help_}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for n in (2, 1):
        words = tuple(argv[:n])
        if words in COMMANDS:
            target = COMMANDS[words][0]
            mod_name, fn_name = target.split(":")
            fn = getattr(importlib.import_module(mod_name), fn_name)
            prog = "fcrm " + " ".join(words)
            from fcrm_ray.config import ConfigError
            from fcrm_ray.toolcall.schema import SchemaError
            try:
                return int(fn(argv[n:], prog=prog) or 0)
            except (ConfigError, SchemaError, FileNotFoundError) as e:
                print(f"{prog}: error: {e}", file=sys.stderr)
                return 2
    print(_usage(), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
    return 0 if argv[:1] in (["-h"], ["--help"]) else 2


if __name__ == "__main__":
    sys.exit(main())
