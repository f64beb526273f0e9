"""Validation sweep: options for a run, judged on validation videos only, with several seeds per split.

For each option, dataset and split, `llmvs.train.train_split` fits `--seeds` models (the same fitting
and validation videos, other initialisations) and each model is scored on the split's validation
videos (a seeded 20 % of its training keys) with the benchmark protocol on the shipped KTS shots.
Test videos are never loaded. Options that differ only in the evaluation key `smooth_steps` share
their models. One row per option x dataset x split x seed goes to a CSV (resumable); `--table`
prints per option the mean over splits and seeds, the spread over splits and over seeds, and, against
`--reference`, in how many splits the option beats it by more than the seed spread.

    python benchmarks/validation_sweep.py --results results --options headline encoder --seeds 3
    python benchmarks/validation_sweep.py --table --reference headline
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# the trainer's base: config.yaml's `training` block (the embedded default), one option's keys over it
BASE = {"d_model": 128, "dim_feedforward": 256, "epochs": 20, "lr": 1e-4, "attention_dropout": 0.0, "metrics_every": 5}
HEADLINE = {"features": "qa", "epochs": 40, "metrics_every": 1, "loss": "pearson"}

# name -> (embeddings folder(s) under <results>/<dataset>/embeddings/<captioner>/: "llm" = the LLM's,
#          training keys over BASE, evaluation key smooth_steps, datasets (None = both))
OPTIONS = {
    "headline": ("llm", HEADLINE, 12, None),
    "headline, unsmoothed": ("llm", HEADLINE, 0, None),
    "encoder q_text+c": ("minilm", {**HEADLINE, "features": ["q_text", "c"]}, 12, None),
    "encoder q_text+c+title": ("minilm", {**HEADLINE, "features": ["q_text", "c", "title_sim", "title_sim_max"]}, 12,
                               None),
    "tfidf q_text+c": ("tfidf", {**HEADLINE, "features": ["q_text", "c"]}, 12, None),
    "headline + encoder": (["llm", "minilm"], {**HEADLINE, "features": ["qa", "minilm:q_text", "minilm:c"]}, 12, None),
    "headline + encoder + title": (["llm", "minilm"], {**HEADLINE, "features": [
        "qa", "minilm:q_text", "minilm:c", "title_sim", "title_sim_max"]}, 12, None),
    # the LLM's states under the title-conditioned prompt (presets/title-prompt.yaml writes them)
    "headline, title prompt": ("smollm2_title", HEADLINE, 12, ["tvsum"]),
    "headline, shot loss": ("llm", {**HEADLINE, "loss": "shot_pearson"}, 12, ["summe"]),
    "headline, users target": ("llm", {**HEADLINE, "target": "users"}, 12, None),
    "encoder q_text+c, shot loss": ("minilm", {**HEADLINE, "features": ["q_text", "c"], "loss": "shot_pearson"}, 12,
                                    ["summe"]),
}


def model_key(options: dict, name: str) -> str:
    """Work folder of an option's models: options with the same features and training keys share it."""
    encoder, keys, _, _ = options[name]
    return "".join(c if c.isalnum() else "_" for c in json.dumps([encoder, keys], sort_keys=True))[:150]


def pipeline_model(res: Path, dataset: str, captioner: str, llm: str, split: int, cfg, emb) -> Path | None:
    """The folder of a pipeline run's model of this split trained with exactly these keys on these
    embeddings (its seeds are the same models the sweep would train), if there is one."""
    import torch

    from llmvs.run_config import TrainConfig
    from llmvs.train import folders

    for path in sorted((res / dataset / "runs" / captioner / llm).glob(f"*/split{split}/model.pt")):
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if TrainConfig(**ckpt["train_config"]) == cfg and ckpt["feature_schema"]["source"] == folders(emb):
            return path.parent
    return None


def run_one(job: dict) -> list[dict]:
    """Train (or reuse) one option's models on one split; score every option sharing them, every seed."""
    import torch

    from llmvs.checkpoints import checkpoint_scores, load_scorers
    from llmvs.datasets import read_annotations
    from llmvs.embeddings import load_video_features
    from llmvs.evaluation import video_metrics
    from llmvs.run_config import TrainConfig
    from llmvs.shots import read_shots
    from llmvs.train import train_split

    torch.set_num_threads(1)
    res, ds, split = Path(job["results"]), job["dataset"], job["split"]
    sources = [job["encoder"]] if isinstance(job["encoder"], str) else job["encoder"]
    emb = [res / ds / "embeddings" / job["captioner"] / (job["llm"] if e == "llm" else e) for e in sources]
    emb = emb[0] if len(emb) == 1 else emb
    cfg = TrainConfig.from_dict({**BASE, **job["training"], "seeds": job["seeds"]})
    out = pipeline_model(res, ds, job["captioner"], job["llm"], split, cfg, emb) or (
        Path(job["work"]) / job["model_key"] / ds / f"split{split}")
    t = time.perf_counter()
    if not (out / "model.pt").exists():
        train_split(res / ds / "annotations.parquet", emb, job["splits"][ds], split, cfg, out,
                    shots_dir=res / ds / "shots")
    seconds = time.perf_counter() - t
    models, ckpt = load_scorers(out / "model.pt")
    videos = read_annotations(res / ds / "annotations.parquet")
    val = {k: (load_video_features(emb, videos[k], cfg.features), read_shots(res / ds / "shots" / f"{k}.parquet",
                                                                           videos[k].n_frames))
           for k in ckpt["val_keys"]}
    rows = []
    for name, sigma in job["scored"]:
        for seed, model in enumerate(models):
            metrics = [video_metrics(videos[k], checkpoint_scores(model, ckpt, x, scorer=out, features=emb,
                                                                  smooth_steps=sigma), cps)
                       for k, (x, cps) in val.items()]
            rows.append({"option": name, "dataset": ds, "split": split, "seed": seed, "n_val": len(metrics),
                         **{f"val_{m}": float(np.mean([r[m] for r in metrics])) for m in ("tau", "rho", "f1")},
                         "train_seconds": round(seconds / len(models), 1),
                         "selected_epoch": ckpt["seeds"][seed]["selected_epoch"][0]})
    return rows


def summary(frame, reference: str | None = None) -> list[dict]:
    """Per option and dataset: mean, spread over splits (of the seed means) and over seeds (of the split
    means), and against `reference` the splits where the option's seed mean is higher by more than the
    two options' seed spread in that split (the larger of the two standard deviations over seeds)."""
    out = []
    for (option, ds), g in frame.groupby(["option", "dataset"], sort=False):
        splits = g.groupby("split").val_tau
        row = {"option": option, "dataset": ds, "n_splits": splits.ngroups, "n_seeds": int(g.seed.nunique()),
               "val_tau": g.val_tau.mean(), "val_rho": g.val_rho.mean(),
               "split_std": splits.mean().std(ddof=0), "seed_std": g.groupby("seed").val_tau.mean().std(ddof=1)}
        ref = frame[(frame.option == reference) & (frame.dataset == ds)]
        if reference and option != reference and len(ref):
            mine, theirs = splits.mean(), ref.groupby("split").val_tau.mean()
            noise = np.maximum(splits.std(ddof=1), ref.groupby("split").val_tau.std(ddof=1))
            common = mine.index.intersection(theirs.index)
            diff = mine[common] - theirs[common]
            row.update(vs_reference=diff.mean(), splits_above_noise=int((diff > noise[common]).sum()),
                       splits_below_noise=int((diff < -noise[common]).sum()), splits_compared=len(common))
        out.append(row)
    return out


def table(csv: Path, reference: str | None) -> str:
    import pandas as pd

    rows = summary(pd.read_csv(csv), reference)
    head = "| option | dataset | val τ / ρ | ± splits | ± seeds | seeds | vs " + (reference or "—") + " |"
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        vs = (f"{r['vs_reference']:+.3f}: above in {r['splits_above_noise']}, below in {r['splits_below_noise']} "
              f"of {r['splits_compared']}" if "vs_reference" in r else "—")
        lines.append(f"| {r['option']} | {r['dataset']} | {r['val_tau']:.3f} / {r['val_rho']:.3f} | "
                     f"{r['split_std']:.3f} | {r['seed_std']:.3f} | {r['n_seeds']} | {vs} |")
    return "\n".join(lines)


def split_files() -> dict:
    data = Path(__file__).resolve().parents[1] / "data" / "splits"
    return {ds: str(data / f"{ds}_splits.json") for ds in ("summe", "tvsum")}


def main() -> int:
    from multiprocessing import get_context

    import pandas as pd

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="pipeline results folder (annotations, shots, embeddings)")
    p.add_argument("--captioner", default="blip")
    p.add_argument("--llm", default="smollm2")
    p.add_argument("--options", nargs="*", help="names from OPTIONS (default: all)")
    p.add_argument("--datasets", nargs="*", default=["tvsum", "summe"])
    p.add_argument("--splits", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--seeds", type=int, default=3, help="models per split (training key seeds)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", default="/tmp/llmvs-sweep")
    p.add_argument("--out", default="benchmarks/results-cpu2/validation-seeds.csv")
    p.add_argument("--table", action="store_true", help="print the Markdown table of --out and exit")
    p.add_argument("--reference", default="headline", help="the option the table compares every other with")
    a = p.parse_args()
    out = Path(a.out)
    if a.table:
        print(table(out, a.reference))
        return 0
    names = a.options or list(OPTIONS)
    done = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=["option", "dataset", "split"])
    have = set(zip(done.option, done.dataset, done.split))
    jobs: dict[tuple, dict] = {}
    for name in names:
        encoder, keys, sigma, datasets = OPTIONS[name]
        for ds in a.datasets:
            for split in a.splits:
                if (datasets and ds not in datasets) or (name, ds, split) in have:
                    continue
                key = (model_key(OPTIONS, name), ds, split)
                job = jobs.setdefault(key, {"model_key": key[0], "encoder": encoder, "training": keys, "dataset": ds,
                                            "split": split, "results": a.results, "captioner": a.captioner,
                                            "llm": a.llm, "splits": split_files(), "work": a.work, "seeds": a.seeds,
                                            "scored": []})
                job["scored"].append((name, sigma))
    with get_context("spawn").Pool(a.workers) as pool:
        for i, rows in enumerate(pool.imap_unordered(run_one, list(jobs.values())), 1):
            done = pd.concat([done, pd.DataFrame(rows)], ignore_index=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            done.to_csv(out, index=False, float_format="%.4f")
            for r in rows[::a.seeds]:
                part = [x["val_tau"] for x in rows if x["option"] == r["option"]]
                print(f"[{i}/{len(jobs)}] {r['option']} {r['dataset']} split {r['split']}: val tau "
                      f"{np.mean(part):.3f} (seeds {', '.join(f'{x:.3f}' for x in part)}; {r['train_seconds']} s a seed)",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
