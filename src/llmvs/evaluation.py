"""The benchmark evaluation protocol, exactly as the LLMVS/PGL-SUM/CSTA code computes it.

- `knapsack_summary`: step scores -> frame scores (zero-order hold) -> float32 shot means ->
  0/1 knapsack with capacity floor(budget * n_frames), classic DP in shot order, backtracking
  that keeps a shot iff its table cell differs from the one above (on exact ties the selection whose
  last shot comes earliest wins).
- `summe_correlation`: the binary summary vs the per-frame fraction of users (full frame rate).
- `tvsum_correlation`: step scores vs each annotator's raw scores at frames 0, 15, 30, ...,
  averaged over annotators.
- `f1_score`: precision/recall of a summary against each user summary (percent), max or mean.
- `video_metrics`: all of them for one benchmark video's step scores, as its benchmark defines them.

Kendall is tau-b, Spearman is scipy's. A constant prediction carries no ranking: its
correlation is defined as 0 (scipy would give NaN, which would poison the split mean).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import kendalltau, spearmanr

from llmvs import LlmvsError
from llmvs.datasets import STEP


def _finite(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.size == 0:
        raise LlmvsError(f"{name} is empty")
    if not np.all(np.isfinite(x)):
        raise LlmvsError(f"{name} contains {int((~np.isfinite(x)).sum())} NaN/inf value(s)")
    return x


def frame_scores(step_scores, n_frames: int, picks) -> np.ndarray:
    """Zero-order hold: step i's score covers frames picks[i] .. picks[i+1]-1 (the last to the end)."""
    scores = _finite("step scores", step_scores).astype(np.float32)
    picks = np.asarray(picks, dtype=np.int64)
    if len(scores) != len(picks):
        raise LlmvsError(f"{len(scores)} step scores for {len(picks)} picks")
    bounds = np.append(picks, n_frames)
    return np.repeat(scores, np.diff(bounds)).astype(np.float32)


def check_shots(change_points, n_frames: int) -> np.ndarray:
    """Validate inclusive [start, end] shots that exactly tile [0, n_frames - 1]."""
    cps = np.asarray(change_points, dtype=np.int64).reshape(-1, 2)
    if len(cps) == 0 or cps[0, 0] != 0 or cps[-1, 1] != n_frames - 1:
        raise LlmvsError(f"shots must cover frames 0..{n_frames - 1}")
    if np.any(cps[:, 1] < cps[:, 0]) or np.any(cps[1:, 0] != cps[:-1, 1] + 1):
        raise LlmvsError("shots must be contiguous, non-empty [start, end] ranges")
    return cps


def knapsack(values, weights, capacity: int) -> list[int]:
    """0/1 knapsack, classic (n+1) x (W+1) DP in item order; returns the selected item indices.

    Vectorised over capacities, with the same float64 additions and the same backtracking rule as
    the reference implementation, so its selections match it exactly (ties included).
    """
    n = len(values)
    table = np.zeros((n + 1, capacity + 1), dtype=np.float64)
    for i in range(1, n + 1):
        w, v = int(weights[i - 1]), float(values[i - 1])
        prev, row = table[i - 1], table[i]
        row[:] = prev
        if w <= capacity:
            row[w:] = np.maximum(v + prev[: capacity + 1 - w], prev[w:])
        row[0] = 0.0
    selected, w = [], capacity
    for i in range(n, 0, -1):
        if table[i, w] != table[i - 1, w]:
            selected.append(i - 1)
            w -= int(weights[i - 1])
    return selected[::-1]


def shot_scores(frame_level: np.ndarray, change_points: np.ndarray) -> list[float]:
    """Float32 mean of the frame scores over each inclusive shot, as Python floats."""
    return [float(frame_level[s:e + 1].mean()) for s, e in change_points]


def knapsack_summary(step_scores, change_points, n_frames: int, picks, budget: float = 0.15) -> np.ndarray:
    """bool[n_frames]: the frames of the shots a 0/1 knapsack selects under `budget` x n_frames."""
    if not 0 < budget <= 1:
        raise LlmvsError(f"budget must be in (0, 1], got {budget}")
    cps = check_shots(change_points, n_frames)
    frames = frame_scores(step_scores, n_frames, picks)
    lengths = cps[:, 1] - cps[:, 0] + 1
    chosen = knapsack(shot_scores(frames, cps), lengths, int(math.floor(budget * n_frames)))
    summary = np.zeros(n_frames, dtype=bool)
    for s in chosen:
        summary[cps[s, 0]:cps[s, 1] + 1] = True
    return summary


def rank_correlation(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Kendall tau-b and Spearman rho; 0 when either side is constant (no ranking to compare)."""
    # parity: scipy (and the authors' code) returns NaN here, which turns a whole split mean into NaN
    if np.all(pred == pred[0]) or np.all(truth == truth[0]):
        return 0.0, 0.0
    tau = kendalltau(pred, truth, variant="b").statistic
    rho = spearmanr(pred, truth).statistic
    return float(tau), float(rho)


def summe_correlation(machine_summary, user_summaries) -> tuple[float, float]:
    """SumMe protocol: binary summary vs the per-frame fraction of users selecting each frame."""
    summary = _finite("machine summary", machine_summary).astype(np.float64).ravel()
    users = np.asarray(user_summaries, dtype=np.float64)
    if users.ndim != 2 or users.shape[1] != summary.shape[0]:
        raise LlmvsError(f"summary has {summary.shape[0]} frames, user summaries have shape {users.shape}")
    return rank_correlation(summary, users.mean(axis=0))


def tvsum_correlation(step_scores, annotator_frame_scores) -> tuple[float, float]:
    """TVSum protocol: step scores vs each annotator's raw scores at frames 0, 15, ...; mean over annotators."""
    pred = _finite("step scores", step_scores).astype(np.float64).ravel()
    annot = np.asarray(annotator_frame_scores, dtype=np.float64)
    if annot.ndim != 2:
        raise LlmvsError(f"annotator scores must be 2-D (annotators x frames), got shape {annot.shape}")
    sampled = annot[:, ::STEP]
    if sampled.shape[1] != pred.shape[0]:
        raise LlmvsError(f"{pred.shape[0]} step scores for {sampled.shape[1]} steps "
                         f"(ceil({annot.shape[1]} frames / {STEP}))")
    pairs = np.array([rank_correlation(pred, a) for a in sampled])
    return float(pairs[:, 0].mean()), float(pairs[:, 1].mean())


def f1_score(machine_summary, user_summaries, mode: str = "max") -> float:
    """F-measure (percent) of the summary against each user summary; `max` (SumMe) or `avg` (TVSum)."""
    if mode not in ("max", "avg"):
        raise LlmvsError(f"f1 mode must be 'max' or 'avg', got {mode!r}")
    summary = np.asarray(machine_summary, dtype=bool).ravel()
    users = np.atleast_2d(np.asarray(user_summaries, dtype=bool))
    n = max(summary.shape[0], users.shape[1])  # zero-pad to equal length, as the reference does
    summary = np.pad(summary, (0, n - summary.shape[0]))
    users = np.pad(users, ((0, 0), (0, n - users.shape[1])))
    scores = []
    for user in users:
        overlap = float(np.sum(summary & user))
        precision = overlap / summary.sum() if summary.sum() else 0.0
        recall = overlap / user.sum() if user.sum() else 0.0
        scores.append(0.0 if precision + recall == 0 else 200 * precision * recall / (precision + recall))
    return float(max(scores) if mode == "max" else np.mean(scores))


def tvsum_user_summaries(annotator_frame_scores, change_points, n_frames: int, budget: float = 0.15) -> np.ndarray:
    """bool [annotators, n_frames]: each annotator's 15 % knapsack summary over the given shots."""
    annot = np.asarray(annotator_frame_scores, dtype=np.float32)
    cps = check_shots(change_points, n_frames)
    lengths = cps[:, 1] - cps[:, 0] + 1
    capacity = int(math.floor(budget * n_frames))
    out = np.zeros(annot.shape, dtype=bool)
    for u, frames in enumerate(annot):
        for s in knapsack(shot_scores(frames, cps), lengths, capacity):
            out[u, cps[s, 0]:cps[s, 1] + 1] = True
    return out


def video_metrics(video, scores: np.ndarray, change_points: np.ndarray | None, users=None,
                  frame_level: bool = False) -> dict:
    """tau, rho (dataset protocol) and F1 for one video's step scores (`frame_level`: one score per
    frame, which the knapsack takes frame by frame and the TVSum correlation at frames 0, 15, ...).

    `users`: TVSum's per-annotator knapsack summaries under these shots, when already computed. A video
    read from an eccv16 h5 brings its own user summaries (`video.user_summary`): F1 is computed against
    those (SumMe's equal ours, in any user order; TVSum's replace the knapsacks of our annotations)."""
    scores = np.asarray(scores)
    picks = np.arange(video.n_frames) if frame_level else video.picks
    out = {}
    h5_users = video.user_summary
    if video.dataset == "tvsum":
        out["tau"], out["rho"] = tvsum_correlation(scores[video.picks] if frame_level else scores, video.user_scores)
    if change_points is not None:
        summary = knapsack_summary(scores, change_points, video.n_frames, picks)
        if video.dataset == "summe":
            out["tau"], out["rho"] = summe_correlation(summary, video.user_summaries)
            out["f1"] = f1_score(summary, video.user_summaries if h5_users is None else h5_users, "max")
        else:
            if h5_users is not None:
                users = h5_users
            elif users is None:
                users = tvsum_user_summaries(video.user_scores, change_points, video.n_frames)
            out["f1"] = f1_score(summary, users, "avg")
    return out
