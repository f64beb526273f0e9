"""The size curve's table: τ / ρ of runs that read the same captions through models of different sizes.

    python benchmarks/size_curve.py results/summary.csv --run encoder=minilm --run encoder_mpnet=mpnet \
        --run llmvs=smollm2 --run llmvs@qwen2_5_coder_0_5b=models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
        --out benchmarks/results-cpu2/size-curve.csv

Each `--run RUN[@LLM]=SPEC` names a results row (of the setting whose `llm` column is LLM, default
smollm2) and the model whose features it reads (a sentence encoder spec of llmvs.encoders, or an LLM
spec of llmvs.model_store); the parameters are counted from the model's own safetensors headers (no
weights are loaded).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parameter_count(folder: Path) -> int:
    """Parameters stored in a model folder's safetensors files (tied weights counted once)."""
    import math

    from safetensors import safe_open

    seen, total = set(), 0
    for path in sorted(folder.rglob("*.safetensors")):
        with safe_open(str(path), "pt") as f:
            for name in f.keys():
                shape = tuple(f.get_slice(name).get_shape())
                if name.endswith("lm_head.weight") and any(k.endswith("embed_tokens.weight") for k in seen):
                    continue  # tied to the input embedding in the models that share it
                seen.add(name)
                total += math.prod(shape)
    return total


def model_folder(spec: str) -> Path:
    from llmvs.encoders import SHIPPED, resolve_encoder

    if spec in SHIPPED:
        return resolve_encoder(spec)[0]
    from llmvs.llm import resolve_llm

    return resolve_llm(spec)[0]


def main() -> int:
    import pandas as pd

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("summary", help="summary.csv of `llmvs aggregate`")
    p.add_argument("--run", action="append", required=True, metavar="RUN[@LLM]=SPEC")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    summary = pd.read_csv(a.summary)
    rows = []
    for item in a.run:
        run, _, spec = item.partition("=")
        run, _, llm = run.partition("@")
        folder = model_folder(spec)
        for r in summary[(summary.row == run) & (summary.llm == (llm or "smollm2"))
                         & (summary.source == "measured")].itertuples():
            rows.append({"run": run, "model": spec, "parameters": parameter_count(folder), "dataset": r.dataset,
                         "tau": r.tau_mean, "tau_split_std": r.tau_std, "tau_seed_std": r.tau_seed_std,
                         "rho": r.rho_mean, "n_seeds": r.n_seeds})
    frame = pd.DataFrame(rows).sort_values(["dataset", "parameters"])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(a.out, index=False, float_format="%.4f")
    print(frame.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
