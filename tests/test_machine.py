"""`fcrm machine`: the report names this machine's CPU precision and vLLM's kernel set the way
the libraries themselves decide them."""

import json

import torch

from fcrm_ray.hardware import cpu_bf16_native
from fcrm_ray.machine import main


def test_machine_report_agrees_with_the_probes(capsys):
    assert main(["--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["bf16_native_cpu"] is cpu_bf16_native()[0]
    assert r["precision_auto_picks"] == ("bf16" if r["bf16_native_cpu"] or r["gpus"] else "fp32")
    assert r["torch"] == torch.__version__ and r["ray"] and r["transformers"]
    if r["vllm"] and not r["gpus"]:
        avx512 = torch.cpu._is_avx512_supported()
        assert r["vllm_cpu_kernels"].startswith("_C_AVX2" if not avx512 else "_C")
