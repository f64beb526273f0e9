"""Does an LLM fit the fast path? Its prompt lengths and how often it answers in the "Score: N" format.

The fast path feeds the answer prefix "Score: " with the query and keeps a window only where the model's
own greedy choice agrees with it; any other window takes the plain path (`generate`, batch 1, many times
slower). A chat model follows the examples' format; a base model may continue the captions instead. Also
the prompt lengths, which matter for models with a sliding attention window (e.g. gemma-3's 512 tokens).

Random windows of each benchmark's shipped captions (examples from the other benchmark, as the LLM stage
builds them), one forward pass each, the LM head only at the answer prefix's positions:

    python benchmarks/answer_format.py --llm models/gemma-3-270m-q4_k_m.gguf --windows 20 \
        --out benchmarks/results-cpu2-xeon/answer-format-gemma-3-270m.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def sample_windows(dataset: str, n: int, seed: int = 0) -> list[str]:
    """`n` windows at random steps of random videos of the benchmark's shipped captions."""
    import numpy as np

    from llmvs.datasets import load_caption_json, shipped_captions_path
    from llmvs.prompt_builder import format_window

    captions = load_caption_json(shipped_captions_path(dataset))
    keys = sorted(captions)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        caps = captions[keys[rng.integers(len(keys))]]["captions"]
        out.append(format_window(caps, int(rng.integers(len(caps)))))
    return out


def answers_in_format(model, builder, window: str) -> tuple[bool, int]:
    """(whether the greedy answer starts with the answer prefix, the prompt's tokens with the score's):
    the fast path's own check, from one forward pass."""
    import torch

    forced = builder.answer_prefix_ids
    query = builder.encode(builder.query_text(window))
    ids = torch.tensor([builder.prefix_ids + query + forced])
    with torch.no_grad():
        h = model.model(input_ids=ids).last_hidden_state[0]
    start = len(builder.prefix_ids) + len(query) - 1
    choice = model.get_output_embeddings()(h[start:start + len(forced)]).argmax(-1).tolist()
    return choice == forced, ids.shape[1] + 2  # the score is one or two tokens


def answer_format(llm: str, n_windows: int, seed: int = 0) -> dict:
    import numpy as np
    import torch

    from llmvs.llm import load_llm
    from llmvs.prompt_builder import PromptBuilder, resolve_exemplars

    torch.set_num_threads(1)
    tok, model, model_id = load_llm(llm, "float32", "cpu")
    out = {"llm": model_id, "sliding_window": getattr(model.config, "sliding_window", None), "datasets": {}}
    for dataset in ("summe", "tvsum"):
        builder = PromptBuilder(tok, resolve_exemplars("auto", dataset, seed))
        checks = [answers_in_format(model, builder, w) for w in sample_windows(dataset, n_windows, seed)]
        lengths = [n for _, n in checks]
        out["datasets"][dataset] = {"prefix_tokens": len(builder.prefix_ids), "windows": n_windows,
                                    "in_format": sum(ok for ok, _ in checks), "prompt_tokens_max": max(lengths),
                                    "prompt_tokens_median": float(np.median(lengths))}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--llm", required=True, help="a model spec of llmvs.model_store (smollm2, hub id, .gguf, folder)")
    p.add_argument("--windows", type=int, default=20, help="random windows per benchmark")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    result = answer_format(a.llm, a.windows)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
