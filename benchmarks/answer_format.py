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


def answer_format(llm: str, n_windows: int, seed: int = 0) -> dict:
    import numpy as np
    import torch

    from llmvs.datasets import load_caption_json, shipped_captions_path
    from llmvs.llm import load_llm
    from llmvs.prompt_builder import PromptBuilder, format_window, resolve_exemplars

    torch.set_num_threads(1)
    tok, model, model_id = load_llm(llm, "float32", "cpu")
    out = {"llm": model_id, "sliding_window": getattr(model.config, "sliding_window", None), "datasets": {}}
    for dataset in ("summe", "tvsum"):
        builder = PromptBuilder(tok, resolve_exemplars("auto", dataset, seed))
        forced = builder.answer_prefix_ids
        captions = load_caption_json(shipped_captions_path(dataset))
        keys = sorted(captions)
        rng = np.random.default_rng(seed)
        in_format, lengths = 0, []
        for _ in range(n_windows):
            caps = captions[keys[rng.integers(len(keys))]]["captions"]
            query = builder.encode(builder.query_text(format_window(caps, int(rng.integers(len(caps))))))
            ids = torch.tensor([builder.prefix_ids + query + forced])
            lengths.append(ids.shape[1] + 2)  # and the score's one or two tokens
            with torch.no_grad():
                h = model.model(input_ids=ids).last_hidden_state[0]
            start = len(builder.prefix_ids) + len(query) - 1
            in_format += model.get_output_embeddings()(h[start:start + len(forced)]).argmax(-1).tolist() == forced
        out["datasets"][dataset] = {"prefix_tokens": len(builder.prefix_ids), "windows": n_windows,
                                    "in_format": in_format, "prompt_tokens_max": max(lengths),
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
