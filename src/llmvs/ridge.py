"""A ridge-regression control: a split's step features -> `gtscore`, in closed form, smoothed over time.

No aggregator, no gradient descent: what a linear read-out of the caption features reaches. Per
split (the trainer's protocol, llmvs.train): the validation videos are the trainer's seeded subset
of the training keys (`validation_keys(train_keys, 0.2, seed + split)`, seed 1112); the rest fit.
Features are z-scored by the fitting videos' steps; the regression solves
(XᵀX + λI) w = Xᵀ(y - ȳ) with an unpenalised intercept; the step scores are Gaussian-smoothed over
time (σ in steps, `llmvs.train.smooth_scores`). λ and σ are chosen on the validation videos only:
- TVSum: the largest mean validation Kendall τ (`tvsum_correlation`, no shots needed);
- SumMe: the smallest mean validation MSE against `gtscore` — its τ goes through a knapsack over
  the shots, a binary summary that on four validation videos barely tells settings apart (random
  scores read .13 there), while the MSE uses every step.
Then the chosen (λ, σ) is refitted on every training video (fit + validation, z-scored again), as a
cross-validated choice of a closed-form model usually is; `refit=False` keeps the fit-only model.
Test videos are read only after the model is saved.

Writes `model.npz` (weights, standardisation, λ, σ, the split's keys), `validation.csv` (the grid),
and, as `llmvs evaluate` does, `scores.parquet` and `metrics.csv` of the test videos.

    llmvs ridge --annotations A --embeddings-dir E --splits S --split 0 --features q_text c --out-dir D
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llmvs import LlmvsError

# sum-of-squares units (a z-scored column adds ~1 per step: ~15k TVSum fitting steps); large λ leads to
# w ∝ Xᵀy, whose ranking within a video stays meaningful, so the grid reaches well past the data term
LAMBDAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7)
SIGMAS = (0.0, 1.0, 2.0, 4.0, 8.0, 12.0, 16.0)
SELECTIONS = ("val_tau", "val_loss")
DEFAULT_SELECTION = {"tvsum": "val_tau", "summe": "val_loss"}
FORMAT = "llmvs-ridge/1"


def standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations (a constant column keeps std 1: it is then all zeros)."""
    x = np.asarray(x, np.float64)
    std = x.std(axis=0)
    return x.mean(axis=0), np.where(std > 1e-8, std, 1.0)


def ridge_solve(x: np.ndarray, y: np.ndarray, lambdas) -> list[tuple[np.ndarray, float]]:
    """(w, b) minimising |y - xw - b|² + λ|w|² for each λ (intercept b unpenalised): the centred normal
    equations (XᵀX + λI) w = Xᵀ(y - ȳ), solved by Cholesky, b = ȳ - x̄w."""
    from scipy.linalg import solve

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    xm, ym = x.mean(axis=0), y.mean()
    xc = x - xm
    gram, r = xc.T @ xc, xc.T @ (y - ym)
    out = []
    for lam in lambdas:
        if not lam > 0:
            raise LlmvsError(f"ridge λ must be > 0, not {lam!r}")
        w = solve(gram + lam * np.eye(len(gram)), r, assume_a="pos")
        out.append((w, float(ym - xm @ w)))
    return out


def predict(model: dict, x: np.ndarray, smooth: bool = True) -> np.ndarray:
    """One video's step scores from a ridge model (the dict `load_ridge` returns): raw, then smoothed."""
    from llmvs.checkpoints import smooth_scores

    x = np.asarray(x, np.float64)
    if x.shape[1] != len(model["w"]):
        raise LlmvsError(f"{x.shape[1]}-d features, but the ridge model was fitted on {len(model['w'])}-d ones")
    raw = ((x - model["mean"]) / model["std"]) @ model["w"] + model["b"]
    return smooth_scores(raw, float(model["sigma"])) if smooth else raw


def _mean_metrics(videos, keys, preds, shots) -> dict:
    """Mean validation τ/ρ (the benchmark's protocol) and MSE against gtscore of smoothed predictions."""
    from llmvs.evaluation import video_metrics

    rows = [video_metrics(videos[k], preds[k], shots.get(k)) for k in keys]
    out = {"val_loss": float(np.mean([np.mean((preds[k] - videos[k].gtscore) ** 2) for k in keys]))}
    for m in ("tau", "rho"):
        vals = [r[m] for r in rows if m in r]
        if vals:
            out[f"val_{m}"] = float(np.mean(vals))
    return out


def choose(videos, feats: dict, fit_keys, val_keys, lambdas, sigmas, selection: str, shots: dict):
    """((λ, σ), grid rows): every setting fitted on `fit_keys`, scored on `val_keys` by `selection`.
    Needs the features of the fitting and validation videos only."""
    from llmvs.checkpoints import smooth_scores

    mean, std = standardizer(np.concatenate([feats[k] for k in fit_keys]))
    x = (np.concatenate([feats[k] for k in fit_keys]) - mean) / std
    y = np.concatenate([videos[k].gtscore for k in fit_keys])
    val_x = {k: (feats[k] - mean) / std for k in val_keys}
    grid = []
    for lam, (w, b) in zip(lambdas, ridge_solve(x, y, lambdas)):
        raw = {k: val_x[k] @ w + b for k in val_keys}
        for sigma in sigmas:
            preds = {k: smooth_scores(raw[k], sigma) for k in val_keys}
            grid.append({"lambda": lam, "sigma": sigma, **_mean_metrics(videos, val_keys, preds, shots)})
    if selection not in grid[0]:
        raise LlmvsError(f"selection {selection} needs shots of the validation videos")
    # first best in grid order (smaller λ, then smaller σ) on exact ties
    best = (min if selection == "val_loss" else max)(grid, key=lambda r: r[selection])
    return (best["lambda"], best["sigma"]), grid


def fit(feats: dict, videos, keys, lam: float, sigma: float) -> dict:
    """A ridge model fitted on `keys` with fixed λ and σ (standardised by those videos)."""
    mean, std = standardizer(np.concatenate([feats[k] for k in keys]))
    x = (np.concatenate([feats[k] for k in keys]) - mean) / std
    (w, b), = ridge_solve(x, np.concatenate([videos[k].gtscore for k in keys]), [lam])
    return {"w": w, "b": b, "mean": mean, "std": std, "lam": lam, "sigma": sigma}


def save_ridge(model: dict, meta: dict, path) -> None:
    from llmvs.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, w=model["w"], b=model["b"], mean=model["mean"], std=model["std"], lam=model["lam"],
                     sigma=model["sigma"], meta=np.array(json.dumps({"format": FORMAT, **meta})))


def load_ridge(path) -> dict:
    """A saved ridge model: arrays w, b, mean, std, lam, sigma and `meta` (dict)."""
    path = Path(path)
    if not path.exists():
        raise LlmvsError(f"{path}: missing ridge model (run `llmvs ridge`)")
    try:
        with np.load(path) as z:
            model = {k: z[k] for k in ("w", "b", "mean", "std", "lam", "sigma")}
            model["meta"] = json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError) as err:
        raise LlmvsError(f"{path}: not a readable ridge model ({err})") from None
    if model["meta"].get("format") != FORMAT:
        raise LlmvsError(f"{path}: not a {FORMAT} model")
    return model


def _split_shots(videos, keys, shots_dir):
    """Shots of `keys`: the pipeline's shots folder, else the benchmark's shipped KTS change points."""
    if shots_dir:
        from llmvs.shots import read_shots

        return {k: read_shots(Path(shots_dir) / f"{k}.parquet", videos[k].n_frames) for k in keys}
    from llmvs.datasets import kts_path, load_change_points

    dataset = videos[keys[0]].dataset
    return load_change_points(kts_path(dataset), {k: videos[k] for k in keys})


def ridge_split(annotations, embeddings_dir, splits_file, split: int, features, out_dir, *, shots_dir=None,
                lambdas=LAMBDAS, sigmas=SIGMAS, selection: str | None = None, seed: int = 1112,
                val_fraction: float = 0.2, refit: bool = True) -> list[dict]:
    """Fit, choose and test the ridge control on one split (see the module docstring); returns the
    test videos' metric rows, as `llmvs.scoring.evaluate_split` does."""
    import pandas as pd
    import pyarrow as pa

    from llmvs.datasets import read_annotations
    from llmvs.embeddings import feature_names
    from llmvs.io import atomic_path, read_splits, write_parquet
    from llmvs.embeddings import load_video_features
    from llmvs.evaluation import video_metrics
    from llmvs.train import validation_keys

    features = feature_names(features)
    videos = read_annotations(annotations)
    train_keys, test_keys = read_splits(splits_file, split)
    missing = sorted(set(train_keys + test_keys) - set(videos))
    if missing:
        raise LlmvsError(f"{annotations}: split {split} names unknown videos {missing[:5]}")
    dataset = videos[train_keys[0]].dataset
    selection = selection or DEFAULT_SELECTION[dataset]
    if selection not in SELECTIONS:
        raise LlmvsError(f"unknown ridge selection {selection!r}: expected one of {SELECTIONS}")
    val_keys = validation_keys(train_keys, val_fraction, seed + split)  # the trainer's own call
    fit_keys = [k for k in train_keys if k not in val_keys]
    if not val_keys or not fit_keys:
        raise LlmvsError(f"split {split}: {len(fit_keys)} fitting and {len(val_keys)} validation videos; need both")
    # the choice sees the training videos only: test features are loaded after the model is saved
    feats = {k: load_video_features(embeddings_dir, videos[k], features) for k in fit_keys + val_keys}
    val_shots = _split_shots(videos, val_keys, shots_dir) if selection == "val_tau" and dataset == "summe" else {}
    (lam, sigma), grid = choose(videos, feats, fit_keys, val_keys, lambdas, sigmas, selection, val_shots)
    model = fit(feats, videos, fit_keys + val_keys if refit else fit_keys, lam, sigma)
    out_dir = Path(out_dir)
    meta = {"split": split, "features": features, "input_dim": int(len(model["w"])), "selection": selection,
            "lambda": lam, "sigma": sigma, "refit": refit, "seed": seed + split, "fit_keys": fit_keys,
            "val_keys": val_keys, "test_keys": test_keys, "source": str(embeddings_dir)}
    save_ridge(model, meta, out_dir / "model.npz")
    with atomic_path(out_dir / "validation.csv") as tmp:
        pd.DataFrame(grid).to_csv(tmp, index=False, float_format="%.6f")

    model = load_ridge(out_dir / "model.npz")  # the test videos are scored by the saved model
    shots = _split_shots(videos, test_keys, shots_dir)
    rows, score_rows = [], []
    for key in test_keys:
        v = videos[key]
        scores = predict(model, load_video_features(embeddings_dir, v, features))
        rows.append({"video": key, "n_steps": v.n_steps, **video_metrics(v, scores, shots[key])})
        score_rows.append((key, v.picks, scores.astype(np.float32)))
    table = pa.table({"video": [k for k, _, _ in score_rows],
                      "frame_index": pa.array([p for _, p, _ in score_rows], pa.list_(pa.int64())),
                      "score": pa.array([s for _, _, s in score_rows], pa.list_(pa.float32()))})
    write_parquet(table, out_dir / "scores.parquet", metadata={"method": "ridge", "split": split})
    with atomic_path(out_dir / "metrics.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6f")
    return rows
