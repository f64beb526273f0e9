"""Which epoch to keep: the selection rules of `llmvs train`, compared honestly on validation.

A rule that picks the epoch by validation tau, then is scored by validation tau on the same videos,
looks better than it is. So each validation video is scored at the epoch the rule picks from the
*other* validation videos of its split (leave one video out), for every rule alike: `val_loss` (the
default), `val_tau`, `val_rho` (each on the other videos' unsmoothed scores, as the trainer sees
them) and `last` (no selection). The score is the held-out video's tau/rho after the run's
smoothing, as evaluation reads it. One training per dataset x split serves every rule: its
per-video, per-epoch validation numbers are recorded while it trains. Test videos are never loaded.

    python benchmarks/selection_sweep.py --results results --out benchmarks/results-cpu2/selection-sweep.csv
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from validation_sweep import BASE, HEADLINE, split_files
RULES = ("val_loss", "val_tau", "val_rho", "last")


def per_video_log(job: dict) -> list[dict]:
    """Train one split; every (epoch, validation video) as loss, raw tau/rho and smoothed tau/rho."""
    import torch

    import llmvs.evaluation as evaluation
    import llmvs.train as train
    from llmvs.checkpoints import smooth_scores
    from llmvs.run_config import EVALUATION_KEYS, TrainConfig

    torch.set_num_threads(1)
    res, ds, split = Path(job["results"]), job["dataset"], job["split"]
    keys = {k: v for k, v in job["training"].items() if k not in EVALUATION_KEYS}
    cfg = TrainConfig.from_dict({**keys, "metrics_every": 1})
    sigma = job["training"].get("smooth_steps", 0.0)
    # the trainer scores every validation video once per epoch through video_metrics: record each call
    rows, real = [], evaluation.video_metrics

    def recording(video, scores, change_points, users=None):
        out = real(video, scores, change_points, users)
        smooth = real(video, smooth_scores(scores, sigma), change_points, users)
        pred, y = torch.as_tensor(scores)[None], torch.as_tensor(video.gtscore)[None]
        loss = train.video_losses(pred, y, torch.zeros_like(y, dtype=torch.bool), cfg.loss)[0]
        rows.append({"video": video.key, "loss": float(loss), "tau": out["tau"], "rho": out["rho"],
                     "smooth_tau": smooth["tau"], "smooth_rho": smooth["rho"]})
        return out

    evaluation.video_metrics = recording
    try:
        ckpt = train.train_split(res / ds / "annotations.parquet", res / ds / "embeddings" / job["embeddings"],
                                 job["splits"][ds], split, cfg, Path(job["work"]) / ds / f"split{split}",
                                 shots_dir=res / ds / "shots")
    finally:
        evaluation.video_metrics = real
    n = len(ckpt["val_keys"])
    return [{"dataset": ds, "split": split, "epoch": i // n + 1, **r} for i, r in enumerate(rows)]


def choose(log, rule: str, videos) -> int:
    """The epoch `rule` keeps, judged on `videos` only (ties: the earliest, as the trainer)."""
    g = log[log.video.isin(videos)].groupby("epoch")[["loss", "tau", "rho"]].mean()
    if rule == "last":
        return int(g.index.max())
    return int((-g["loss"] if rule == "val_loss" else g[rule[4:]]).idxmax())


def compare(log) -> list[dict]:
    """Per dataset, split and rule: held-out (leave one video out) and in-sample validation tau/rho."""
    rows = []
    for (ds, split), g in log.groupby(["dataset", "split"]):
        videos = sorted(g.video.unique())
        for rule in RULES:
            held = []
            for v in videos:
                e = choose(g, rule, [o for o in videos if o != v])
                held.append(g[(g.video == v) & (g.epoch == e)].iloc[0])
            e_all = choose(g, rule, videos)
            inside = g[g.epoch == e_all]
            rows.append({"dataset": ds, "split": split, "rule": rule, "n_val": len(videos),
                         "heldout_tau": np.mean([h.smooth_tau for h in held]),
                         "heldout_rho": np.mean([h.smooth_rho for h in held]),
                         "insample_tau": inside.smooth_tau.mean(), "insample_rho": inside.smooth_rho.mean(),
                         "epoch_all": e_all, "epochs_heldout": " ".join(str(int(h.epoch)) for h in held)})
    return rows


def table(frame) -> str:
    lines = ["| selection | TVSum held-out τ / ρ | SumMe held-out τ / ρ | TVSum in-sample τ | SumMe in-sample τ |",
             "| --- | --- | --- | --- | --- |"]
    for rule in RULES:
        cells, inside = [], []
        for ds in ("tvsum", "summe"):
            d = frame[(frame.dataset == ds) & (frame.rule == rule)]
            cells.append(f"{d.heldout_tau.mean():.3f} ± {d.heldout_tau.std(ddof=0):.3f} / {d.heldout_rho.mean():.3f}")
            inside.append(f"{d.insample_tau.mean():.3f}")
        lines.append(f"| `{rule}` | {cells[0]} | {cells[1]} | {inside[0]} | {inside[1]} |")
    return "\n".join(lines)


def main() -> int:
    import json
    from multiprocessing import get_context

    import pandas as pd

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="pipeline results folder (annotations, shots, embeddings)")
    p.add_argument("--embeddings", default="blip/smollm2", help="<captioner>/<encoder> under each embeddings folder")
    p.add_argument("--training", default=json.dumps({**BASE, **HEADLINE, "smooth_steps": 12}),
                   help="training keys as JSON, and the evaluation key smooth_steps (default: the headline run's)")
    p.add_argument("--datasets", nargs="*", default=["tvsum", "summe"])
    p.add_argument("--splits", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", default="/tmp/llmvs-selection")
    p.add_argument("--out", default="benchmarks/results-cpu2/selection-sweep.csv")
    p.add_argument("--table", action="store_true", help="print the Markdown table of --out and exit")
    a = p.parse_args()
    out = Path(a.out)
    if not a.table:
        splits = split_files()
        jobs = [{"dataset": ds, "split": s, "results": a.results, "embeddings": a.embeddings, "splits": splits,
                 "training": json.loads(a.training), "work": a.work} for ds in a.datasets for s in a.splits]
        with get_context("spawn").Pool(a.workers) as pool:
            log = pd.DataFrame([r for rows in pool.imap_unordered(per_video_log, jobs) for r in rows])
        log.to_csv(out.with_name(out.stem + "-per-video.csv"), index=False, float_format="%.5f")
        pd.DataFrame(compare(log)).to_csv(out, index=False, float_format="%.4f")
    print(table(pd.read_csv(out)))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
