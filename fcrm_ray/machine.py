"""`fcrm machine`: what this machine can run, in one table: CPU and its instruction sets, native
bf16 or not (what `auto` precision picks), GPUs, and the versions of torch, transformers, Ray and
vLLM with the kernel set vLLM's CPU build loads here. Read-only; imports each library only to ask
its version."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import sys
from pathlib import Path


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def vllm_cpu_kernels() -> str:
    """The kernel module vLLM's CPU build imports on this CPU (vllm/platforms/cpu.py, 0.32:
    `_C` with AVX-512 + AVX512-BF16, `_C_AVX512` with AVX-512 only, `_C_AVX2` otherwise)."""
    import torch

    if platform.machine() not in ("x86_64", "AMD64"):
        return f"{platform.machine()} kernels"
    if torch.cpu._is_avx512_supported():
        return "_C (AVX-512 + BF16)" if torch.cpu._is_avx512_bf16_supported() else "_C_AVX512 (AVX-512)"
    return "_C_AVX2 (AVX2)"


def report() -> dict:
    import torch

    from fcrm_ray.hardware import cpu_bf16_native

    native, why = cpu_bf16_native()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    vllm = _version("vllm") or _version("vllm-cpu")
    return {
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native_cpu": native,
        "bf16_reason": why,
        "precision_auto_picks": "bf16" if native or gpus else "fp32",
        "gpus": gpus,
        "transformers": _version("transformers"),
        "ray": _version("ray"),
        "vllm": vllm,
        "vllm_build": ("CUDA" if gpus else "CPU (vllm-cpu)") if vllm else "not installed (scripts/setup.sh installs the CPU build)",
        "vllm_cpu_kernels": vllm_cpu_kernels() if vllm and not gpus else None,
    }


def main(argv: list[str] | None = None, prog: str = "fcrm machine") -> int:
    ap = argparse.ArgumentParser(prog=prog, description="What this machine can run (CPU, bf16, GPUs, vLLM, Ray).")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    r = report()
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="fcrm machine")
    t.add_column("")
    t.add_column("value")
    for k, v in r.items():
        t.add_row(k, "-" if v in (None, []) else ", ".join(v) if isinstance(v, list) else str(v))
    Console().print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
