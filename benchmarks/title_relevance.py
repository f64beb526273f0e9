"""Title relevance without training: how well each step's similarity to the video's title ranks TVSum.

Reads the `encode` stage's files of all 50 TVSum videos and scores each title column by the TVSum
protocol (`tvsum_correlation`, mean over videos), raw and Gaussian-smoothed over time
(`llmvs.train.smooth_scores`, σ = 12 steps, edges extended by the nearest score), and also with
scipy's default edges (`reflect`), the smoothing docs/offline-models.md measured with. The raw
columns are scored as stored: equal captions give equal scores, and Kendall's τ-b counts them as
ties (no random tie-break).

    llmvs encode --captions results/tvsum/captions/blip/video_{1..50}.parquet --out E/video_{1..50}.arrow \\
        --annotations results/tvsum/annotations.parquet --encoder minilm
    python benchmarks/title_relevance.py --annotations results/tvsum/annotations.parquet --embeddings-dir E \\
        --out benchmarks/results-cpu2/title-relevance.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

COLUMNS = ("title_sim", "title_sim_max", "title_sim_tfidf", "title_sim_tfidf_max")
SIGMA = 12.0


def main() -> int:
    import pandas as pd
    from scipy.ndimage import gaussian_filter1d

    from llmvs.datasets import read_annotations
    from llmvs.evaluation import tvsum_correlation
    from llmvs.io import atomic_path
    from llmvs.checkpoints import smooth_scores
    from llmvs.embeddings import load_video_embeddings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--annotations", required=True, help="TVSum annotations.parquet")
    p.add_argument("--embeddings-dir", required=True, help="the encode stage's files, one per video")
    p.add_argument("--sigma", type=float, default=SIGMA, help="smoothing sigma in steps")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    videos = read_annotations(a.annotations)
    per_video = []
    for key, v in videos.items():
        emb = load_video_embeddings(a.embeddings_dir, v)
        for col in COLUMNS:
            s = emb.features(col)[:, 0].astype(np.float64)
            for sigma, edges, scores in ((0.0, "", s), (a.sigma, "nearest", smooth_scores(s, a.sigma)),
                                         (a.sigma, "reflect", gaussian_filter1d(s, a.sigma, mode="reflect"))):
                tau, rho = tvsum_correlation(scores, v.user_scores)
                per_video.append({"video": key, "column": col, "sigma": sigma, "edges": edges, "tau": tau, "rho": rho})
    frame = pd.DataFrame(per_video)
    meta = emb.meta
    rows = frame.groupby(["column", "sigma", "edges"], sort=False).agg(tau=("tau", "mean"), rho=("rho", "mean"),
                                                              n_videos=("video", "nunique")).reset_index()
    rows.insert(0, "encoder", meta["encoder"]["id"])
    rows["dataset"] = "tvsum"
    with atomic_path(a.out) as tmp:
        rows.to_csv(tmp, index=False, float_format="%.4f")
    print(rows.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"{Path(a.out)}: {len(videos)} videos, encoder {meta['encoder']['id']} "
          f"({meta['encoder'].get('package', '')} {meta['encoder'].get('version', '')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
