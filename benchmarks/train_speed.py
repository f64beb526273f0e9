"""What one training epoch costs on this machine, and where the time goes.

Times the trainer's own epoch loop (`llmvs.train._fit_member`: forward, loss, backward, AdamW step
and the validation loss, not the correlations; one thread) on the fitting videos of one split, for
the headline's training keys and variants of them: attention dropout 0.1 (the authors' encoder) and
several videos per step (`batch_videos`, padded and masked; one optimizer step per batch). Then
profiles one headline epoch with torch.profiler and sums its operators into groups (attention,
linear layers, dropout masks, the optimizer, the rest).

    python benchmarks/train_speed.py --results results --out benchmarks/results-cpu2/train-speed.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

HEADLINE = {"features": "qa", "d_model": 128, "dim_feedforward": 256, "lr": 1e-4, "attention_dropout": 0.0,
            "metrics_every": 1, "loss": "pearson"}  # config.yaml's `llmvs` run
VARIANTS = {
    "headline": {},
    "attention dropout 0.1 (the previous headline)": {"attention_dropout": None},
    "batch_videos 4": {"batch_videos": 4},
    "batch_videos 8": {"batch_videos": 8},
    "attention dropout 0.1, batch_videos 4": {"attention_dropout": None, "batch_videos": 4},
}
GROUPS = {  # torch.profiler operator name fragments -> group (first match wins)
    "attention": ("attention", "bmm", "softmax"),
    "linear layers": ("aten::mm", "addmm", "aten::linear"),
    "dropout masks": ("bernoulli",),
    "optimizer": ("optimizer", "adamw", "lerp", "addcdiv"),
}


def group(name: str) -> str:
    low = name.lower()
    return next((g for g, parts in GROUPS.items() if any(p.lower() in low for p in parts)), "other")


def main() -> int:
    import numpy as np
    import torch

    from llmvs.datasets import read_annotations
    from llmvs.io import read_splits
    from llmvs.embeddings import load_video_features
    from llmvs.run_config import TrainConfig, model_config
    from llmvs.train import _evaluator, _fit_member, validation_keys

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="pipeline results folder (annotations, embeddings)")
    p.add_argument("--dataset", default="tvsum")
    p.add_argument("--split", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per variant")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    res = Path(a.results)
    videos = read_annotations(res / a.dataset / "annotations.parquet")
    splits = Path(__file__).resolve().parents[1] / "data" / "splits" / f"{a.dataset}_splits.json"
    train_keys, _ = read_splits(splits, a.split)
    base = TrainConfig.from_dict(HEADLINE)
    val = validation_keys(train_keys, base.val_fraction, base.val_seed + a.split)
    fit = [k for k in train_keys if k not in val]
    emb = res / a.dataset / "embeddings" / "blip" / "smollm2"
    feats = {k: load_video_features(emb, videos[k], base.features) for k in fit + val}
    data = {"x": {k: torch.as_tensor(v) for k, v in feats.items()},
            "y": {k: torch.as_tensor(videos[k].gtscore) for k in feats}, "fit": fit, "eval": {"val": val}}
    steps = sum(len(feats[k]) for k in fit)
    evaluate = _evaluator(videos, feats, {k: videos[k].gtscore for k in feats}, {}, {}, loss=base.loss)
    cpu = torch.device("cpu")

    def epochs(keys: dict, n: int) -> float:
        cfg = TrainConfig.from_dict({**HEADLINE, **keys, "epochs": n})
        t = time.perf_counter()
        _fit_member(cfg, model_config(cfg, feats[fit[0]].shape[1]), cfg.seed, data,
                    lambda m, k, metrics=True: evaluate(m, k, False), cpu, "bench")
        return (time.perf_counter() - t) / n

    rows = []
    for name, keys in VARIANTS.items():
        epochs(keys, 1)  # warm-up
        s = epochs(keys, a.epochs)
        rows.append({"kind": "variant", "name": name, "seconds_per_epoch": round(s, 3), "share": ""})
        print(f"{name}: {s:.2f} s/epoch", flush=True)
    from torch.profiler import profile

    with profile() as prof:
        epochs({}, 1)
    totals: dict[str, float] = {}
    for e in prof.key_averages():
        totals[group(e.key)] = totals.get(group(e.key), 0.0) + e.self_cpu_time_total
    whole = sum(totals.values())
    for g, us in sorted(totals.items(), key=lambda kv: -kv[1]):
        rows.append({"kind": "profile (headline epoch)", "name": g, "seconds_per_epoch": round(us / 1e6, 3),
                     "share": round(us / whole, 3)})
        print(f"profile {g}: {us / whole:.0%}", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["kind", "name", "seconds_per_epoch", "share"])
        w.writeheader()
        w.writerows(rows)
    print(f"{a.dataset} split {a.split}: {len(fit)} fitting videos, {steps} steps "
          f"(mean {np.mean([len(feats[k]) for k in fit]):.0f}); wrote {out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
