"""The `evaluate` stage: step scores for every test video of a split, and their metrics.

Methods: `model` (a trained checkpoint), `feature` (one 1-d column of the embeddings as it is, no
training: e.g. each caption's similarity to the video's title), `zero_shot` (the LLM's parsed greedy answer scores, no
training; unparsable answers take the video's median answer), `zero_shot_expected` (the expected
score sum_k k p(k) over the scale, read from the same forward pass: it ranks where greedy answers
tie), and two controls that calibrate
the protocol under the same shots: `random` (seeded uniform scores) and `oracle` (the
ground-truth gtscore itself: the ceiling reachable with these shots).

Writes `scores.parquet` (video, seed, frame_index, score) and `metrics.csv` (video, [seed,] n_steps,
tau, rho, f1; `seed` numbers the models of a checkpoint trained with several seeds).

`reading="as_authors"` reads a split as the published numbers most likely were (official-protocol
§8.2): only the rank-0 shard of its test videos is scored, a trained model is the one its training kept
by that shard's rho (selection shard_rho), and `random` is the best of `checkpoints` seeded draws by
the shard's rho (llmvs.score_files.best_random_draw), as a checkpoint chosen on it.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from llmvs import LlmvsError


def zero_shot_scores(answer_scores: np.ndarray, source="") -> np.ndarray:
    """The answers' scores; an unparsable answer takes the video's median answer."""
    s = np.asarray(answer_scores, dtype=np.float64)
    if np.all(np.isnan(s)):
        raise LlmvsError(f"{source}: no answer of the LLM holds a number, so there are no zero-shot scores")
    return np.where(np.isnan(s), np.nanmedian(s), s)


def feature_scores(emb, column: str) -> np.ndarray:
    """A 1-d feature column of one video's embeddings as its step scores."""
    x = emb.features(column)
    if x.shape[1] != 1:
        raise LlmvsError(f"{emb.path}: column {column} is {x.shape[1]}-d; method feature scores by a 1-d column")
    return x[:, 0].astype(np.float64)


def evaluate_split(annotations, splits_file, split: int, method: str, out_dir, *, embeddings_dir=None,
                   model_path=None, shots_dir=None, seed: int = 0, smooth_steps: float = 0.0,
                   feature: str | None = None, reading: str = "honest", checkpoints: int = 400) -> list[dict]:
    """Score every test video of a split and write `scores.parquet` and `metrics.csv`; a checkpoint's
    models (one per trained seed) are each scored on their own, in rows told apart by `seed`.
    `smooth_steps`: Gaussian smoothing of the scores over time (sigma in steps; the run's evaluation key).
    `embeddings_dir`: a folder, or a list of folders a model's features are read from."""
    import pandas as pd
    import pyarrow as pa

    from llmvs.checkpoints import checkpoint_scores, load_scorers, smooth_scores
    from llmvs.datasets import read_annotations
    from llmvs.embeddings import load_video_embeddings, load_video_features
    from llmvs.evaluation import video_metrics
    from llmvs.io import atomic_path, read_splits, write_parquet
    from llmvs.run_config import METHODS, READINGS, check_smooth_steps
    from llmvs.score_files import best_random_draw, rank0_shard
    from llmvs.shots import read_shots

    if method not in METHODS or method == "ridge":  # ridge: `llmvs ridge` fits and scores in one job
        raise LlmvsError(f"unknown evaluation method {method!r}: expected one of "
                         f"{', '.join(m for m in METHODS if m != 'ridge')}")
    if method == "feature" and not feature:
        raise LlmvsError("evaluate --method feature needs --features (one 1-d column)")
    smooth_steps = check_smooth_steps(smooth_steps)
    if reading not in READINGS:
        raise LlmvsError(f"unknown reading {reading!r}: expected one of {', '.join(READINGS)}")
    videos = read_annotations(annotations)
    test_keys = read_splits(splits_file, split)[1]
    best_draw = {}
    if reading == "as_authors":  # parity: the authors' printed result covers rank 0's test videos only
        test_keys = rank0_shard(test_keys)
        if method == "random":
            if not shots_dir or checkpoints < 1:
                raise LlmvsError("the as_authors random control needs --shots-dir and --checkpoints >= 1")
            shard_shots = {k: read_shots(Path(shots_dir) / f"{k}.parquet", videos[k].n_frames) for k in test_keys}
            best_draw = best_random_draw(videos, shard_shots, test_keys, seed, split, checkpoints)
    if isinstance(embeddings_dir, (list, tuple)) and len(embeddings_dir) == 1:
        embeddings_dir = embeddings_dir[0]
    several = isinstance(embeddings_dir, (list, tuple))
    if several and method != "model":
        raise LlmvsError(f"evaluate --method {method} reads one embeddings folder, not {len(embeddings_dir)}")
    if method not in ("random", "oracle") and not embeddings_dir:
        raise LlmvsError(f"evaluate --method {method} needs --embeddings-dir")
    models, ckpt = [None], None
    if method == "model":
        # the as_authors reading of a trained run is its epoch with the best rho on the rank-0 shard
        models, ckpt = load_scorers(model_path, "shard_rho" if reading == "as_authors" else None)
        leaked = sorted(set(ckpt.get("fit_keys", [])) & set(test_keys))
        if leaked:
            raise LlmvsError(f"{model_path}: trained on test videos {leaked[:5]}")
    rows, score_rows = [], []
    for key in test_keys:
        v = videos[key]
        cps = read_shots(Path(shots_dir) / f"{key}.parquet", v.n_frames) if shots_dir else None
        if method == "model":
            x = load_video_features(embeddings_dir, v, ckpt["model_config"]["features"])
            arrow = " + ".join(str(Path(d) / f"{key}.arrow") for d in (embeddings_dir if several else [embeddings_dir]))
            scores = [checkpoint_scores(m, ckpt, x, scorer=model_path, features=arrow, smooth_steps=smooth_steps)
                      for m in models]
        elif method == "feature":
            scores = [smooth_scores(feature_scores(load_video_embeddings(embeddings_dir, v), feature), smooth_steps)]
        elif method == "zero_shot":
            emb = load_video_embeddings(embeddings_dir, v)
            scores = [smooth_scores(zero_shot_scores(emb.answer_score, emb.path), smooth_steps)]
        elif method == "zero_shot_expected":
            emb = load_video_embeddings(embeddings_dir, v)
            scores = [smooth_scores(zero_shot_scores(emb.answer_expected, emb.path), smooth_steps)]
        elif method == "random" and best_draw:
            scores = [best_draw[key]]
        elif method == "random":
            rng = np.random.default_rng([seed, zlib.crc32(key.encode())])  # same per video whatever the split
            scores = [rng.random(v.n_steps)]
        else:
            scores = [v.gtscore.astype(np.float64)]
        for s, step_scores in enumerate(scores):
            m = video_metrics(v, np.asarray(step_scores, np.float64), cps)
            rows.append({"video": key, **({"seed": s} if len(scores) > 1 else {}), "n_steps": v.n_steps, **m})
            score_rows.append((key, s, v.picks, np.asarray(step_scores, np.float32)))
    out_dir = Path(out_dir)
    table = pa.table({"video": [k for k, _, _, _ in score_rows],
                      "seed": pa.array([s for _, s, _, _ in score_rows], pa.int32()),
                      "frame_index": pa.array([p for _, _, p, _ in score_rows], pa.list_(pa.int64())),
                      "score": pa.array([x for _, _, _, x in score_rows], pa.list_(pa.float32()))})
    meta = {"method": method, "split": split, "smooth_steps": smooth_steps, "reading": reading}
    if best_draw:
        meta["checkpoints"] = checkpoints
    write_parquet(table, out_dir / "scores.parquet", metadata=meta)
    with atomic_path(out_dir / "metrics.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6f")
    return rows
