"""Validation sweep: every training/feature option tried for the headline run, judged on validation only.

For each option, dataset and split, `llmvs.train.train_split` fits on the split's fitting videos
(the training keys minus a seeded 20 % validation subset) and the resulting checkpoint (an
ensemble's mean where the option has several members) is scored on that validation subset with
the benchmark protocol. Test videos are never loaded. One row per option x dataset x split goes to
a CSV; `--table` prints the mean over splits as Markdown (docs/tried.md holds the result).

    python benchmarks/validation_sweep.py --results results --out benchmarks/results-cpu2/validation-sweep.csv
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# the trainer's base in this sweep; "qa, 40 epochs" is the previous default for comparison
BASE = {"d_model": 128, "dim_feedforward": 256, "epochs": 20, "lr": 1e-4, "attention_dropout": 0.0, "metrics_every": 5}

# name -> (embeddings encoder: "llm", "tfidf" or "captions" (benchmarks/caption_states.py), training keys over BASE)
OPTIONS = {
    "qa, 40 epochs, attention dropout 0.1": ("llm", {"features": "qa", "epochs": 40, "attention_dropout": None,
                                                     "metrics_every": 1}),
    "qa (paper)": ("llm", {"features": "qa"}),
    "q": ("llm", {"features": "q"}),
    "q_text": ("llm", {"features": "q_text"}),
    "c": ("llm", {"features": "c"}),
    "q_text+c": ("llm", {"features": ["q_text", "c"]}),
    "q_text_mean+c_mean": ("llm", {"features": ["q_text_mean", "c_mean"]}),
    "mid_q_text+mid_c": ("llm", {"features": ["mid_q_text", "mid_c"]}),
    "mid_q_text_mean+mid_c_mean": ("llm", {"features": ["mid_q_text_mean", "mid_c_mean"]}),
    "tfidf q_text+c": ("tfidf", {"features": ["q_text", "c"]}),
    "qa, pearson loss": ("llm", {"features": "qa", "loss": "pearson"}),
    "qa, 40 epochs, attention dropout 0.1, pearson loss": ("llm", {"features": "qa", "epochs": 40, "attention_dropout": None,
                                                                   "metrics_every": 1, "loss": "pearson"}),
    "q_text_mean+c_mean, pearson loss": ("llm", {"features": ["q_text_mean", "c_mean"], "loss": "pearson"}),
    "qa, MLP, pearson loss": ("llm", {"features": "qa", "aggregator": "mlp", "loss": "pearson"}),
    "qa, MLP": ("llm", {"features": "qa", "aggregator": "mlp"}),
    "tfidf q_text+c, MLP": ("tfidf", {"features": ["q_text", "c"], "aggregator": "mlp"}),
    "captions q_text_mean+c": ("captions", {"features": ["q_text_mean", "c"]}),
    "captions mid_q_text_mean+mid_c": ("captions", {"features": ["mid_q_text_mean", "mid_c"]}),
    "captions q_text+c, MLP": ("captions", {"features": ["q_text", "c"], "aggregator": "mlp"}),
    "captions q_text_mean+c, MLP": ("captions", {"features": ["q_text_mean", "c"], "aggregator": "mlp"}),
    "captions q_text+c, MLP, 100 epochs": ("captions", {"features": ["q_text", "c"], "aggregator": "mlp", "epochs": 100}),
}
HEADLINE = OPTIONS["qa, 40 epochs, attention dropout 0.1, pearson loss"]
OPTIONS.update({f"qa, 40 epochs, attention dropout 0.1, pearson loss, smoothed σ {s}": (
    HEADLINE[0], {**HEADLINE[1], "smooth_steps": s}) for s in (4, 8, 12, 16)})
OPTIONS.update({f"{name}, smoothed σ 8": (OPTIONS[name][0], {**OPTIONS[name][1], "smooth_steps": 8})
                for name in ("qa (paper)", "tfidf q_text+c")})
# cheaper trainings of the headline (no attention dropout: ~1.4x faster per epoch on a CPU; or half the epochs)
OPTIONS.update({
    "qa, 40 epochs, pearson loss": ("llm", {**HEADLINE[1], "attention_dropout": 0.0}),
    "qa, 20 epochs, attention dropout 0.1, pearson loss": ("llm", {**HEADLINE[1], "epochs": 20})})
OPTIONS.update({f"{name}, smoothed σ 12": (OPTIONS[name][0], {**OPTIONS[name][1], "smooth_steps": 12})
                for name in ("qa, 40 epochs, pearson loss", "qa, 20 epochs, attention dropout 0.1, pearson loss")})

# each video's mean step subtracted first (`center`): the windows of one video share most of their pooled
# state, and ranking within a video needs only what differs
NEW_HEADLINE = OPTIONS["qa, 40 epochs, pearson loss"][1]
OPTIONS.update({
    "qa, 40 epochs, pearson loss, centred": ("llm", {**NEW_HEADLINE, "center": True}),
    "q_text_mean+c_mean, 40 epochs, pearson loss, centred": (
        "llm", {**NEW_HEADLINE, "features": ["q_text_mean", "c_mean"], "center": True}),
    "tfidf q_text+c, 40 epochs, pearson loss": ("tfidf", {**NEW_HEADLINE, "features": ["q_text", "c"]}),
    "tfidf q_text+c, 40 epochs, pearson loss, centred": ("tfidf", {**NEW_HEADLINE, "features": ["q_text", "c"],
                                                                   "center": True})})
OPTIONS.update({f"{name}, smoothed σ 12": (OPTIONS[name][0], {**OPTIONS[name][1], "smooth_steps": 12})
                for name in ("qa, 40 epochs, pearson loss, centred", "q_text_mean+c_mean, 40 epochs, pearson loss, centred",
                             "tfidf q_text+c, 40 epochs, pearson loss", "tfidf q_text+c, 40 epochs, pearson loss, centred")})


def model_slug(name: str, options: dict) -> str:
    """Work folder of an option's models. Smoothing is applied after training, so an option that differs
    from another only in `smooth_steps` reuses that option's models."""
    encoder, keys = options[name]
    if keys.get("smooth_steps"):
        plain = {k: v for k, v in keys.items() if k != "smooth_steps"}
        name = next((n for n, (e, k) in options.items() if e == encoder and k == plain), name)
    return "".join(c if c.isalnum() else "_" for c in name)


def run_one(job: dict) -> dict:
    import torch

    from llmvs.datasets import read_annotations
    from llmvs.shots import read_shots
    from llmvs.train import (TrainConfig, load_model, load_video_features, predict, smooth_scores, train_split,
                             video_metrics)

    torch.set_num_threads(1)
    res, ds, split = Path(job["results"]), job["dataset"], job["split"]
    encoder = {"llm": job["llm"], "captions": f"{job['llm']}-captions"}.get(job["encoder"], job["encoder"])
    emb = res / ds / "embeddings" / job["captioner"] / encoder
    other = "tvsum" if ds == "summe" else "summe"
    cfg = TrainConfig.from_dict({**BASE, **job["training"]})
    out = Path(job["work"]) / job["slug"] / ds / f"split{split}"
    t = time.perf_counter()
    if cfg.smooth_steps and (out / "model.pt").exists():  # the unsmoothed option's model, already trained
        seconds = float("nan")
    else:
        train_split(res / ds / "annotations.parquet", emb, job["splits"][ds], split, cfg, out,
                    shots_dir=res / ds / "shots",
                    extra_annotations=res / other / "annotations.parquet" if cfg.augment else None,
                    extra_embeddings_dir=res / other / "embeddings" / job["captioner"] / encoder if cfg.augment else None)
        seconds = time.perf_counter() - t
    model, ckpt = load_model(out / "model.pt")
    videos = read_annotations(res / ds / "annotations.parquet")
    rows = []
    for k in ckpt["val_keys"]:
        v = videos[k]
        scores = smooth_scores(predict(model, load_video_features(emb, v, cfg.features)), cfg.smooth_steps)
        rows.append(video_metrics(v, scores, read_shots(res / ds / "shots" / f"{k}.parquet", v.n_frames)))
    return {"option": job["option"], "dataset": ds, "split": split, "n_val": len(rows),
            **{f"val_{m}": float(np.mean([r[m] for r in rows])) for m in ("tau", "rho", "f1")},
            "train_seconds": round(seconds, 1), "selected_epoch": json.dumps(ckpt["selected_epoch"])}


def table(csv: Path) -> str:
    import pandas as pd

    frame = pd.read_csv(csv)
    rows = ["| option | TVSum val τ / ρ | SumMe val τ / ρ | train s/split |", "| --- | --- | --- | --- |"]
    for option, g in frame.groupby("option", sort=False):
        cells = []
        for ds in ("tvsum", "summe"):
            d = g[g.dataset == ds]
            cells.append(f"{d.val_tau.mean():.3f} ± {d.val_tau.std(ddof=0):.3f} / {d.val_rho.mean():.3f}"
                         if len(d) else "—")
        seconds = g.train_seconds.mean()  # NaN: the models of another option, smoothed
        rows.append(f"| {option} | {cells[0]} | {cells[1]} | {'—' if np.isnan(seconds) else f'{seconds:.0f}'} |")
    return "\n".join(rows)


def add_sweep_arguments(p, work: str, out: str) -> None:
    """The arguments every sweep script shares: which trainings, how many at once, where results go."""
    p.add_argument("--datasets", nargs="*", default=["tvsum", "summe"])
    p.add_argument("--splits", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", default=work)
    p.add_argument("--out", default=out)
    p.add_argument("--table", action="store_true", help="print the Markdown table of --out and exit")


def split_files() -> dict:
    data = Path(__file__).resolve().parents[1] / "data" / "splits"
    return {ds: str(data / f"{ds}_splits.json") for ds in ("summe", "tvsum")}


def main() -> int:
    from multiprocessing import get_context

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="pipeline results folder (annotations, shots, embeddings)")
    p.add_argument("--captioner", default="blip")
    p.add_argument("--llm", default="smollm2")
    p.add_argument("--options", nargs="*", help="names from OPTIONS (default: all)")
    p.add_argument("--extra", help="JSON {name: [encoder, training keys]} of more options")
    add_sweep_arguments(p, work="/tmp/llmvs-sweep", out="benchmarks/results-cpu2/validation-sweep.csv")
    a = p.parse_args()
    if a.table:
        print(table(Path(a.out)))
        return 0
    options = dict(OPTIONS)
    if a.extra:
        options.update({k: tuple(v) for k, v in json.loads(a.extra).items()})
    names = a.options or list(options)
    splits = split_files()
    jobs = [{"option": n, "slug": model_slug(n, options), "encoder": options[n][0],
             "training": options[n][1], "dataset": ds, "split": s, "results": a.results, "captioner": a.captioner,
             "llm": a.llm, "splits": splits, "work": a.work} for n in names for ds in a.datasets for s in a.splits]
    import pandas as pd

    out = Path(a.out)
    done = pd.read_csv(out) if out.exists() else pd.DataFrame()
    if len(done):
        have = set(zip(done.option, done.dataset, done.split))
        jobs = [j for j in jobs if (j["option"], j["dataset"], j["split"]) not in have]
    # smoothed options read their unsmoothed twin's models: they run once those are trained
    smoothed = [j for j in jobs if j["training"].get("smooth_steps")]
    phases = [[j for j in jobs if j not in smoothed], smoothed]
    with get_context("spawn").Pool(a.workers) as pool:
        rows = (row for phase in phases for row in pool.imap_unordered(run_one, phase))
        for i, row in enumerate(rows, 1):
            done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            done.to_csv(out, index=False, float_format="%.4f")
            print(f"[{i}/{len(jobs)}] {row['option']} {row['dataset']} split {row['split']}: "
                  f"val tau {row['val_tau']:.3f} rho {row['val_rho']:.3f} ({row['train_seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
