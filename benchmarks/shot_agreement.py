"""Detected shots against the benchmark's own eccv16 KTS shots, and what they do to SumMe's random control.

For every SumMe and TVSum video, shots are detected on each signal (the shipped BLIP captions'
TF-IDF; a column, default `q`, of each embeddings folder given, rows L2-normalised) with each count
rule (`fixed`: one shot per 4 s; `kts`: the KTS rule at every `--penalties` value; both with shots
of at least 1 s) and compared with the shipped eccv16 KTS shots. A boundary is the first frame of
every shot but the first. A detected boundary matches at most one reference boundary within
+-`--tolerance` seconds: a one-to-one matching of maximum size (a greedy pass in time order finds
one for 1-D windows). Precision, recall and F per video, then their means over the videos of a
dataset ("all": the 75 videos). `mean_shot_s` is all seconds over all shots; `video_shot_s_min/max`
the range of the videos' own means; `detect_s` the seconds that detecting a dataset's shots took.

SumMe's `random` control (the project's seeded scores, `scoring.py`) is then scored under each kind
of shots: tau/rho of the knapsack summary, mean over each official split's test videos, then over
the five splits. Under the eccv16 shots it gives the headline's control (tau about .138); the
`lengths-shuffled` row keeps each video's eccv16 shot lengths in a seeded random order.

    python benchmarks/shot_agreement.py --embeddings summe=results/summe/embeddings/blip/smollm2 \\
        --embeddings tvsum=results/tvsum/embeddings/blip/smollm2 --embeddings summe=results/summe/embeddings/blip/tfidf:c
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

import numpy as np


def matched(detected, reference, tol: float) -> int:
    """Size of a maximum one-to-one matching of sorted boundaries lying within +-tol of each other."""
    i = j = hits = 0
    while i < len(detected) and j < len(reference):
        if abs(detected[i] - reference[j]) <= tol:
            hits, i, j = hits + 1, i + 1, j + 1
        elif detected[i] < reference[j]:  # too early for this and every later reference boundary
            i += 1
        else:
            j += 1
    return hits


def agreement(shots, reference, tol: float) -> tuple[float, float, float]:
    """Boundary precision, recall and F of `shots` against `reference` (both int [n, 2] inclusive)."""
    det, ref = shots[1:, 0], reference[1:, 0]
    hits = matched(det, ref, tol)
    p = hits / len(det) if len(det) else float(len(ref) == 0)
    r = hits / len(ref) if len(ref) else float(len(det) == 0)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def tile(lengths) -> np.ndarray:
    """Inclusive [start, end] shots of the given lengths, one after the other from frame 0."""
    ends = np.cumsum(lengths)
    return np.stack([ends - lengths, ends - 1], axis=1)


def random_control(videos, shots, splits) -> tuple[float, float]:
    """SumMe tau/rho of the seeded random scores under `shots`: split means of test videos, then their mean."""
    from llmvs.evaluation import knapsack_summary, summe_correlation

    per_video = {}
    for key, v in videos.items():
        scores = np.random.default_rng([0, zlib.crc32(key.encode())]).random(v.n_steps)  # as scoring.py
        per_video[key] = summe_correlation(knapsack_summary(scores, shots[key], v.n_frames, v.picks), v.user_summaries)
    split_means = [np.mean([per_video[k] for k in s["test_keys"]], axis=0) for s in splits]
    return tuple(float(x) for x in np.mean(split_means, axis=0))


def main() -> int:
    import pandas as pd

    from llmvs.datasets import (kts_path, load_caption_json, load_change_points, load_dataset, load_splits,
                                shipped_captions_path)
    from llmvs.embeddings import read_embeddings
    from llmvs.shots import caption_features, detect_shots

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--embeddings", action="append", default=[], metavar="DATASET=FOLDER[:COLUMN]",
                   help="an embeddings folder as a signal (column default q); repeat per dataset and folder")
    p.add_argument("--penalties", default="0.5,1,1.25,1.5,1.75,2,2.5,3,4", help="KTS penalty weights (cpd_auto's vmax)")
    p.add_argument("--tolerance", type=float, default=1.0, help="seconds either side of a reference boundary")
    p.add_argument("--out", default="benchmarks/results-cpu2/shot-agreement.csv")
    a = p.parse_args()
    rules = [("fixed", None)] + [("kts", float(x)) for x in a.penalties.split(",")]
    folders: dict[str, list[tuple[str, Path, str]]] = {"summe": [], "tvsum": []}
    for spec in a.embeddings:
        ds, _, rest = spec.partition("=")
        folder, _, column = rest.partition(":")
        if ds not in folders or not folder:
            p.error(f"--embeddings {spec}: expected summe=FOLDER[:COLUMN] or tvsum=FOLDER[:COLUMN]")
        folders[ds].append((f"{Path(folder).name}/{column or 'q'}", Path(folder), column or "q"))

    per_video = []  # one row per dataset, signal, rule, video
    summary = []
    for ds in ("summe", "tvsum"):
        videos = load_dataset(ds)
        reference = load_change_points(kts_path(ds), videos)
        captions = load_caption_json(shipped_captions_path(ds))
        signals = {"captions-tfidf": {k: caption_features(captions[v.caption_key]["captions"])
                                      for k, v in videos.items()}}
        for name, folder, column in folders[ds]:
            signals[name] = {}
            for k, v in videos.items():
                if not (folder / f"{k}.arrow").exists():
                    continue  # a folder still being written: its videos so far
                emb = read_embeddings(folder / f"{k}.arrow")
                if not np.array_equal(emb.frame_index, v.picks):
                    raise SystemExit(f"{emb.path}: its frame_index is not {k}'s sampled frames")
                x = emb.features(column).astype(np.float64)
                signals[name][k] = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        # a control: each video's eccv16 shot lengths in a seeded random order (same lengths, other boundaries)
        rng = np.random.default_rng(0)
        shuffled = {k: tile(rng.permutation(c[:, 1] - c[:, 0] + 1)) for k, c in reference.items()}
        kinds = [("eccv16-kts", "reference", None, reference, float("nan")),
                 ("eccv16-kts", "lengths-shuffled", None, shuffled, float("nan"))]
        for name, feats in signals.items():
            if not feats:
                print(f"{ds} {name}: no embeddings files yet, left out", file=sys.stderr)
                continue
            for rule, penalty in rules:
                clock, options = time.perf_counter(), {"penalty": penalty} if rule == "kts" else {}
                shots = {k: detect_shots(x, videos[k].n_frames, videos[k].picks, videos[k].fps, count=rule, **options)
                         for k, x in feats.items()}
                kinds.append((name, rule, penalty, shots, time.perf_counter() - clock))
        for signal, rule, penalty, shots, seconds in kinds:
            rows = []
            for k, cps in shots.items():
                prec, rec, f = agreement(cps, reference[k], a.tolerance * videos[k].fps)
                rows.append({"dataset": ds, "signal": signal, "rule": rule, "penalty": penalty, "video": k,
                             "precision": prec, "recall": rec, "f1": f, "shots": len(cps),
                             "frames": videos[k].n_frames, "seconds_of_video": videos[k].n_frames / videos[k].fps})
            per_video += rows
            row = summarise(pd.DataFrame(rows))
            row["detect_s"] = seconds
            if ds == "summe" and len(shots) == len(videos):
                row["random_tau"], row["random_rho"] = random_control(videos, shots, load_splits("summe"))
            summary.append(row)
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    both = pd.DataFrame(per_video)
    for (signal, rule, penalty), group in both.groupby(["signal", "rule", "penalty"], dropna=False, sort=False):
        if group["dataset"].nunique() == 2:
            summary.append({**summarise(group), "dataset": "all"})
    table = pd.DataFrame(summary)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(a.out, index=False, float_format="%.4f")
    print(table.to_string(index=False, float_format="%.3f"))
    return 0


def summarise(rows) -> dict:
    """Mean precision/recall/F over the videos of `rows`, their count, the mean shot length and the range
    of the videos' own mean shot lengths (a rule that leaves some videos whole and cuts others at every
    step shows there)."""
    first = rows.iloc[0]
    per_video = rows["seconds_of_video"] / rows["shots"]
    return {"dataset": first["dataset"], "signal": first["signal"], "rule": first["rule"], "penalty": first["penalty"],
            "videos": len(rows), "precision": rows["precision"].mean(), "recall": rows["recall"].mean(),
            "f1": rows["f1"].mean(), "mean_shot_s": rows["seconds_of_video"].sum() / rows["shots"].sum(),
            "video_shot_s_min": per_video.min(), "video_shot_s_max": per_video.max()}


if __name__ == "__main__":
    sys.exit(main())
