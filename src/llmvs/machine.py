"""What machine produced a result: CPU model and the instruction sets that change floating-point
results or speed (AVX2, AVX-512, bfloat16, AMX), core count, GPU, torch version.

Another CPU kind computes bfloat16 LLM states with other kernels, and training amplifies such
differences; the results tables say where they were made (`machine.json` beside `summary.csv`).

    describe()  # {"cpu": "AMD EPYC", "flags": ["avx2"], "cores": 2, "gpu": None, "torch": "2.13.0+cpu", ...}
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def _cpuinfo() -> tuple[str, set[str]]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model, flags = platform.processor() or platform.machine(), set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() in ("flags", "Features"):
            flags = set(value.split())
    return model, flags


def describe() -> dict:
    """The machine this process runs on (see the module docstring)."""
    import torch

    model, flags = _cpuinfo()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": model, "flags": [f for f in FLAGS if f in flags], "cores": os.cpu_count(), "gpu": gpu,
            "torch": torch.__version__, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "python": platform.python_version(), "system": platform.platform()}


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX); without it PyTorch emulates
    bfloat16 matmuls and the LLM stage runs about 8x slower than in float32."""
    return bool(_cpuinfo()[1] & {"avx512_bf16", "amx_bf16"})
