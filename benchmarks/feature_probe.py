"""What the stored features carry, judged on validation videos only: a ridge probe per column.

For every feature column (and the TF-IDF control) and every split: z-score the columns on the
split's fitting videos (its training keys minus the seeded 20 % validation subset the trainer
holds out), fit a ridge regression of `gtscore` on the steps, score the validation videos with the
benchmark protocol. Also reports how much the column varies between adjacent windows (mean cosine
similarity of neighbouring steps: close to 1 = the pooling barely sees the window change).
Test videos are never loaded.

    python benchmarks/feature_probe.py --results results --out benchmarks/results-cpu2/feature-probe.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

# a column name or a list of them from the LLM stage's files; "tfidf" is the control's q_text+c, and
# "captions:..." names columns of benchmarks/caption_states.py (each caption encoded alone)
COLUMNS = ["q", "q_mean", "q_text", "q_text_mean", "c", "c_mean", "a", "a_mean", "mid_q_text_mean", "mid_c_mean",
           "qa", ["q_text_mean", "c_mean"], "tfidf", "captions:q_text+c", "captions:q_text_mean+c",
           "captions:mid_q_text_mean+mid_c"]


def source(spec, llm: str):
    """(embeddings folder name, column spec) of a COLUMNS entry."""
    if spec == "tfidf":
        return "tfidf", ["q_text", "c"]
    if isinstance(spec, str) and spec.startswith("captions:"):
        return f"{llm}-captions", spec.split(":", 1)[1].split("+")
    return llm, spec


def main() -> int:
    import pandas as pd

    from llmvs.datasets import read_annotations
    from llmvs.embeddings import feature_matrix, read_embeddings
    from llmvs.shots import read_shots
    from llmvs.evaluation import video_metrics
    from llmvs.train import validation_keys

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results")
    p.add_argument("--captioner", default="blip")
    p.add_argument("--llm", default="smollm2")
    p.add_argument("--ridge", type=float, default=1000.0, help="ridge penalty on z-scored columns")
    p.add_argument("--out", default="benchmarks/results-cpu2/feature-probe.csv")
    a = p.parse_args()
    res = Path(a.results)
    data = Path(__file__).resolve().parents[1] / "data" / "splits"
    rows = []
    for ds in ("tvsum", "summe"):
        videos = read_annotations(res / ds / "annotations.parquet")
        splits = json.loads((data / f"{ds}_splits.json").read_text())
        cache: dict = {}

        def x(key, spec):
            enc, spec = source(spec, a.llm)
            tag = (key, json.dumps(spec), enc)
            if tag not in cache:
                cache[tag] = feature_matrix(read_embeddings(res / ds / "embeddings" / a.captioner / enc / f"{key}.arrow"), spec)
            return cache[tag]

        for spec in COLUMNS:
            name = "+".join(spec) if isinstance(spec, list) else spec
            taus, rhos = [], []
            for i, split in enumerate(splits):
                val = validation_keys(split["train_keys"], 0.2, 1112 + i)  # the trainer's default subset
                fit = [k for k in split["train_keys"] if k not in val]
                xf = np.concatenate([x(k, spec) for k in fit])
                yf = np.concatenate([videos[k].gtscore for k in fit])
                mu, sd = xf.mean(0), xf.std(0) + 1e-6
                z = (xf - mu) / sd
                w = np.linalg.solve(z.T @ z + a.ridge * np.eye(z.shape[1]), z.T @ (yf - yf.mean()))
                metrics = [video_metrics(videos[k], ((x(k, spec) - mu) / sd) @ w,
                                         read_shots(res / ds / "shots" / f"{k}.parquet", videos[k].n_frames)) for k in val]
                taus.append(np.mean([m["tau"] for m in metrics]))
                rhos.append(np.mean([m["rho"] for m in metrics]))
            cos = []
            for k in videos:
                f = x(k, spec)
                f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
                cos.append(float((f[1:] * f[:-1]).sum(1).mean()))
            rows.append({"dataset": ds, "column": name, "val_tau": np.mean(taus), "val_tau_std": np.std(taus),
                         "val_rho": np.mean(rhos), "adjacent_cosine": np.mean(cos)})
            print(f"{ds} {name}: val tau {np.mean(taus):.3f} ± {np.std(taus):.3f}, rho {np.mean(rhos):.3f}, "
                  f"adjacent cosine {np.mean(cos):.3f}", flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(a.out, index=False, float_format="%.4f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
