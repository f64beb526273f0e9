"""TVSum reference value, computed without llmvs: the per-frame mean of the 20 annotators, taken
at frames 0, 15, 30, ... and used as the prediction, against each annotator's raw scores at the
same frames (Kendall tau-b, Spearman rho); mean over annotators, then over the 50 videos.

An independent check of `llmvs.evaluation.tvsum_correlation` and of the ground truth rebuilt by
`llmvs.datasets`: it reads the annotation file itself with gzip and numpy and calls scipy.stats
directly. Prints the result and writes it as JSON (default: beside this file).

    python benchmarks/reference/tvsum_annotator_mean.py [--anno data/tvsum/ydata-tvsum50-anno.tsv.gz] [--out X.json]
"""

import argparse
import gzip
import json
import re
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

HERE = Path(__file__).resolve().parent
STEP = 15  # the benchmark samples every 15th frame


def read_annotations(path: Path) -> dict[str, np.ndarray]:
    """YouTube id -> [annotators, frames] scores; one TSV line per (video, annotator):
    id, category, comma-separated 1-5 scores of every frame."""
    videos: dict[str, list] = {}
    with gzip.open(path, "rt") as f:
        for line in f:
            vid, _category, scores = line.rstrip("\n").split("\t")
            videos.setdefault(vid, []).append([int(s) for s in scores.split(",")])
    return {vid: np.array(rows, dtype=np.float64) for vid, rows in videos.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--anno", type=Path, default=HERE.parents[1] / "data" / "tvsum" / "ydata-tvsum50-anno.tsv.gz")
    p.add_argument("--out", type=Path, default=HERE / "tvsum_annotator_mean.json")
    a = p.parse_args()

    per_video = {}
    for vid, scores in read_annotations(a.anno).items():
        sampled = scores[:, ::STEP]
        prediction = sampled.mean(axis=0)
        pairs = [(kendalltau(prediction, user, variant="b").statistic, spearmanr(prediction, user).statistic)
                 for user in sampled]
        # no annotator of TVSum gives one constant score at the sampled frames, so no NaN arises
        assert np.all(np.isfinite(pairs)), vid
        per_video[vid] = [float(x) for x in np.mean(pairs, axis=0)]
    tau, rho = np.mean(list(per_video.values()), axis=0)
    result = {"tau": round(float(tau), 6), "rho": round(float(rho), 6), "n_videos": len(per_video),
              "annotations": str(a.anno.name),
              "per_video": {vid: [round(t, 6), round(r, 6)] for vid, (t, r) in per_video.items()}}
    text = re.sub(r"\[\s+([^][]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", json.dumps(result, indent=1))
    a.out.write_text(text + "\n")  # one line per video
    print(f"TVSum annotator mean as prediction, {len(per_video)} videos: tau {tau:.4f}, rho {rho:.4f} -> {a.out}")


if __name__ == "__main__":
    main()
