"""What the hardware a stage runs on can do: native bf16 and how many threads to use.

Every stage that runs a model (train, eval, filter, serve) asks here instead of guessing:

- `resolve_autocast("auto", device)` picks bf16 autocast only where the device runs bf16 matmuls
  natively: CUDA GPUs that report bf16 support, x86 CPUs with AVX512-BF16 or AMX whose kernels
  are not capped below those instruction sets (`ATEN_CPU_CAPABILITY`, `ONEDNN_MAX_CPU_ISA`).
  Elsewhere PyTorch emulates bf16 and a MiniLM step runs more than 10x slower than fp32, so `auto`
  means fp32 there and an explicit `bf16` warns.
- `torch_threads()` gives the intra-op thread count for this process: the CPUs Ray assigned to
  the current actor or task when there is one (a Ray worker otherwise starts with
  `OMP_NUM_THREADS=1`), else the CPUs this process may run on.
"""

from __future__ import annotations

import logging
import os

from fcrm_ray.common.scorer import AUTOCAST_MODES

log = logging.getLogger(__name__)

# oneDNN ISA names below the first one with native bf16 (avx512_core_bf16); a cap at one of these
# means bf16 is emulated even on a CPU that has the instructions.
_ONEDNN_NO_BF16 = ("sse41", "avx", "avx2", "avx2_vnni", "avx2_vnni_2", "avx512_core", "avx512_core_vnni")


def cpu_bf16_native() -> tuple[bool, str]:
    """(native, reason): whether this CPU runs bf16 matmuls natively under PyTorch."""
    import torch

    flags = []
    if torch.cpu._is_avx512_bf16_supported():
        flags.append("AVX512-BF16")
    if torch.cpu._is_amx_tile_supported():
        flags.append("AMX")
    if not flags:
        return False, "CPU has neither AVX512-BF16 nor AMX (bf16 would be emulated)"
    capability = torch.backends.cpu.get_cpu_capability()
    if "AVX512" not in capability.upper():
        return False, f"CPU has {'/'.join(flags)} but PyTorch's kernels run at {capability} (ATEN_CPU_CAPABILITY)"
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().lower()
    if isa in _ONEDNN_NO_BF16:
        return False, f"CPU has {'/'.join(flags)} but ONEDNN_MAX_CPU_ISA={isa} caps oneDNN below bf16"
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False, "oneDNN reports no bf16 support"
    return True, f"CPU has {'/'.join(flags)} (native bf16)"


def bf16_native(device_type: str) -> tuple[bool, str]:
    """(native, reason) for `cpu` or `cuda`."""
    if device_type == "cuda":
        import torch

        if not torch.cuda.is_available():
            return False, "no CUDA device"
        ok = torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name()
        return ok, f"{name} {'supports' if ok else 'does not support'} bf16"
    return cpu_bf16_native()


def resolve_autocast(requested: str, device_type: str = "cpu", weights_dtype: str = "float32") -> tuple[str, str]:
    """`auto` | `bf16` | `none` -> (`bf16` | `none`, reason). `auto` over weights that are not fp32
    (already bf16/fp16) means no autocast. An explicit `bf16` on hardware without native bf16 is
    kept (the user asked) with a loud warning."""
    if requested not in AUTOCAST_MODES:
        raise ValueError(f"autocast: expected one of {AUTOCAST_MODES}, got {requested!r}")
    if requested == "none":
        return "none", "autocast=none (fp32)"
    if requested == "auto" and weights_dtype != "float32":
        return "none", f"weights in {weights_dtype}"
    native, why = bf16_native(device_type)
    if requested == "auto":
        return ("bf16", f"auto -> bf16: {why}") if native else ("none", f"auto -> fp32: {why}")
    if not native:
        log.warning("autocast=bf16 requested but %s: expect it to run >10x slower than fp32; "
                    "use autocast=auto", why)
        return "bf16", f"bf16 as configured, NOT native: {why}"
    return "bf16", f"bf16 as configured: {why}"


def available_cpus() -> int:
    """CPUs this process may run on (affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def ray_assigned_cpus() -> int | None:
    """Whole CPUs Ray assigned to the current actor/task, or None outside a Ray worker."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        ctx = ray.get_runtime_context()
        if ctx.worker.mode != ray.WORKER_MODE:
            return None
        cpus = ctx.get_assigned_resources().get("CPU")
    except Exception:  # not in a worker, or an old Ray without the API
        return None
    return max(1, int(round(cpus))) if cpus else None


def torch_threads(requested: int = 0) -> int:
    """Intra-op threads to use: `requested` if > 0, else Ray's assignment, else all available CPUs."""
    if requested > 0:
        return requested
    return ray_assigned_cpus() or available_cpus()


def set_torch_threads(requested: int = 0) -> int:
    """Set torch's intra-op threads (see `torch_threads`) and return the number set."""
    import torch

    n = torch_threads(requested)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


__all__ = ["AUTOCAST_MODES", "bf16_native", "cpu_bf16_native", "resolve_autocast", "torch_threads",
           "set_torch_threads", "available_cpus", "ray_assigned_cpus"]
