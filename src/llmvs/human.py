"""Human agreement baseline: pairwise leave-one-out between annotators.

Each annotator in turn is the "prediction" and is scored against the others:
- TVSum, under the model protocol: annotator i's scores at frames 0, 15, ... vs every other
  annotator (`tvsum_correlation`), mean over i -> video -> all 50 videos (published .177/.204).
- SumMe, as the published Human row was computed: every ordered pair (i, j), i != j, of the raw
  GT `user_score` columns at full frame rate, mean over pairs -> video (published .205/.213).
  (The model protocol on SumMe correlates binary summaries; this row does not.)
"""

from __future__ import annotations

import numpy as np

from llmvs.datasets import STEP, Video
from llmvs.evaluation import rank_correlation, tvsum_correlation


def human_agreement(video: Video) -> tuple[float, float]:
    """(tau, rho) of one video's annotators against each other."""
    users = video.user_scores
    if video.dataset == "tvsum":
        pairs = [tvsum_correlation(users[i, ::STEP], np.delete(users, i, axis=0)) for i in range(len(users))]
    else:
        u = users.astype(np.float64)
        pairs = [rank_correlation(u[i], u[j]) for i in range(len(u)) for j in range(len(u)) if i != j]
    tau, rho = np.mean(pairs, axis=0)
    return float(tau), float(rho)


def write_human_table(datasets, out, data_dir=None) -> None:
    """CSV: dataset, video, tau, rho, one row per video plus a `mean` row per dataset."""
    import pandas as pd

    from llmvs.datasets import load_dataset
    from llmvs.io import atomic_path

    rows = []
    for name in datasets:
        per_video = [(v.key, *human_agreement(v)) for v in load_dataset(name, data_dir).values()]
        rows += [{"dataset": name, "video": k, "tau": t, "rho": r} for k, t, r in per_video]
        rows.append({"dataset": name, "video": "mean",
                     "tau": float(np.mean([t for _, t, _ in per_video])),
                     "rho": float(np.mean([r for _, _, r in per_video]))})
    with atomic_path(out) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6f")
