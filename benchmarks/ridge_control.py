"""The ridge control (llmvs.ridge) on the five official splits of both benchmarks, every test video.

For each feature set and split: `ridge_split` (λ and σ chosen on the trainer's validation videos,
TVSum by validation τ, SumMe by validation MSE; refitted on every training video), SumMe and TVSum
F1 on the shipped KTS shots. Rows: one per dataset x features x split (test means over its videos,
the chosen λ and σ), then the mean ± std over splits (std with ddof 0, as `llmvs aggregate`).
`--no-refit` rows come beside, as a reading of the refit decision (not used to make it).

    python benchmarks/ridge_control.py --root R --encoder minilm --out benchmarks/results-cpu2/ridge-control.csv
    # R/{summe,tvsum}/annotations.parquet and R/{dataset}/embeddings/blip/minilm/video_N.arrow (llmvs encode)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

FEATURES = {"emb": ["q_text", "c"],
            "emb+title": ["q_text", "c", "title_sim", "title_sim_max", "title_sim_tfidf", "title_sim_tfidf_max"]}


def main() -> int:
    import pandas as pd

    from llmvs.datasets import default_data_dir
    from llmvs.io import atomic_path
    from llmvs.ridge import load_ridge, ridge_split

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="folder with {dataset}/annotations.parquet and the embeddings")
    p.add_argument("--encoder", default="minilm", help="embeddings folder name under {dataset}/embeddings/blip/")
    p.add_argument("--datasets", nargs="+", default=["tvsum", "summe"])
    p.add_argument("--out", required=True)
    a = p.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in a.datasets:
            root = Path(a.root) / dataset
            splits = default_data_dir() / "splits" / f"{dataset}_splits.json"
            for name, features in FEATURES.items():
                for refit in (True, False):
                    for split in range(5):
                        out = Path(tmp) / dataset / name / str(refit) / f"split{split}"
                        start = time.perf_counter()
                        videos = ridge_split(root / "annotations.parquet", root / "embeddings" / "blip" / a.encoder,
                                             splits, split, features, out, refit=refit)
                        grid = pd.read_csv(out / "validation.csv")
                        meta = load_ridge(out / "model.npz")["meta"]
                        chosen = {"lambda": meta["lambda"], "sigma": meta["sigma"]}
                        best = grid[(grid["lambda"] == chosen["lambda"]) & (grid["sigma"] == chosen["sigma"])].iloc[0]
                        m = pd.DataFrame(videos)
                        rows.append({"dataset": dataset, "features": name, "refit": refit, "split": split,
                                     "n_videos": len(m), "tau": m.tau.mean(), "rho": m.rho.mean(), "f1": m.f1.mean(),
                                     **chosen, **{k: best[k] for k in ("val_tau", "val_rho", "val_loss") if k in best},
                                     "seconds": time.perf_counter() - start})
                        r = rows[-1]
                        print(f"{dataset} {name} refit={refit} split {split}: tau {r['tau']:.3f} rho {r['rho']:.3f} "
                              f"f1 {r['f1']:.1f}  λ {r['lambda']:g} σ {r['sigma']:g}  ({r['seconds']:.1f} s)", flush=True)
    frame = pd.DataFrame(rows)
    summary = []
    for (dataset, name, refit), g in frame.groupby(["dataset", "features", "refit"], sort=False):
        row = {"dataset": dataset, "features": name, "refit": refit, "split": "mean", "n_videos": g.n_videos.sum()}
        for col in ("tau", "rho", "f1"):
            row[col], row[f"{col}_std"] = g[col].mean(), g[col].std(ddof=0)
        row["lambda"] = " ".join(f"{x:g}" for x in g["lambda"])
        row["sigma"] = " ".join(f"{x:g}" for x in g["sigma"])
        summary.append(row)
    out = pd.concat([frame, pd.DataFrame(summary)], ignore_index=True)
    with atomic_path(a.out) as tmp:
        out.to_csv(tmp, index=False, float_format="%.4f")
    print(pd.DataFrame(summary).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
