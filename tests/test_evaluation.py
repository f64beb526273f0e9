import math

import numpy as np
import pytest

from llmvs import LlmvsError
from llmvs.evaluation import (f1_score, frame_scores, knapsack, knapsack_summary, summe_correlation,
                              tvsum_correlation, tvsum_user_summaries)


def reference_knapsack(W, wt, val):
    """The classic pure-Python DP of the benchmark code, for comparison."""
    n = len(val)
    K = [[0 for _ in range(W + 1)] for _ in range(n + 1)]
    for i in range(n + 1):
        for w in range(W + 1):
            if i == 0 or w == 0:
                K[i][w] = 0
            elif wt[i - 1] <= w:
                K[i][w] = max(val[i - 1] + K[i - 1][w - wt[i - 1]], K[i - 1][w])
            else:
                K[i][w] = K[i - 1][w]
    selected, w = [], W
    for i in range(n, 0, -1):
        if K[i][w] != K[i - 1][w]:
            selected.insert(0, i - 1)
            w -= wt[i - 1]
    return selected


def test_knapsack_earlier_shots_win_exact_ties():
    # two equal shots, room for one: the first is kept
    assert knapsack([0.5, 0.5], [3, 3], 4) == [0]
    # equal scores: more (shorter) shots beat one long shot of the same total value per shot
    assert knapsack([1.0, 1.0, 1.0], [4, 2, 2], 4) == [1, 2]
    assert knapsack([0.2, 0.9, 0.4], [2, 2, 2], 4) == [1, 2]
    assert knapsack([0.3], [5], 4) == []


@pytest.mark.parametrize("seed", range(20))
def test_knapsack_matches_reference_dp(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 25))
    weights = rng.integers(1, 40, n).tolist()
    # coarse values create many exact ties
    values = (rng.integers(0, 4, n) / 4).tolist() if seed % 2 else rng.random(n).tolist()
    W = int(rng.integers(0, sum(weights) + 1))
    assert knapsack(values, weights, W) == reference_knapsack(W, weights, values)


def test_knapsack_summary_budget_and_zero_order_hold():
    n_frames, picks = 100, np.arange(0, 100, 15)
    scores = np.array([0, 0, 1, 1, 0, 0, 0], np.float32)  # steps 2-3 cover frames 30..59
    assert np.array_equal(frame_scores(scores, n_frames, picks)[29:31], [0, 1])
    cps = np.array([[0, 29], [30, 44], [45, 59], [60, 99]])
    summary = knapsack_summary(scores, cps, n_frames, picks)
    assert summary.sum() == 15 == math.floor(0.15 * n_frames)
    assert summary[30:45].all() and not summary[45:].any()
    for budget in (0.05, 0.3, 0.5):
        assert knapsack_summary(np.random.default_rng(1).random(7), cps, n_frames, picks, budget).sum() <= budget * n_frames


def test_knapsack_summary_bad_input():
    picks = np.arange(0, 100, 15)
    cps = np.array([[0, 49], [50, 99]])
    with pytest.raises(LlmvsError, match="7 picks"):
        knapsack_summary(np.zeros(5), cps, 100, picks)
    with pytest.raises(LlmvsError, match="NaN"):
        knapsack_summary(np.full(7, np.nan), cps, 100, picks)
    with pytest.raises(LlmvsError, match="cover"):
        knapsack_summary(np.zeros(7), np.array([[0, 49], [50, 98]]), 100, picks)
    with pytest.raises(LlmvsError, match="contiguous"):
        knapsack_summary(np.zeros(7), np.array([[0, 49], [51, 99]]), 100, picks)


def test_summe_correlation_binary_vs_user_fraction():
    users = np.array([[1, 1, 0, 0, 0], [1, 0, 0, 0, 1], [1, 1, 0, 0, 0]], bool)
    tau, rho = summe_correlation(np.array([1, 1, 0, 0, 0], bool), users)
    assert tau > 0.7 and rho > 0.8
    # constant summary (nothing fits the budget): defined as no correlation, not NaN
    assert summe_correlation(np.zeros(5, bool), users) == (0.0, 0.0)
    with pytest.raises(LlmvsError, match="4 frames"):
        summe_correlation(np.zeros(4, bool), users)


def test_tvsum_correlation_protocol():
    rng = np.random.default_rng(0)
    annot = rng.integers(1, 6, (3, 100))
    steps = annot[:, ::15].mean(axis=0)
    tau, rho = tvsum_correlation(steps, annot)
    assert 0 < tau <= rho <= 1
    # identical to one annotator -> that annotator contributes exactly 1
    tau1, _ = tvsum_correlation(annot[0, ::15], annot[:1])
    assert tau1 == pytest.approx(1.0)
    assert tvsum_correlation(np.ones(7), annot) == (0.0, 0.0)
    with pytest.raises(LlmvsError, match="6 step scores for 7 steps"):
        tvsum_correlation(np.ones(6), annot)
    with pytest.raises(LlmvsError, match="NaN"):
        tvsum_correlation(np.r_[np.ones(6), np.nan], annot)


def test_tvsum_mean_annotator_reference(tvsum):
    """DESIGN §3: the per-frame annotator mean at the picks scores tau .3782, rho .4732."""
    scores = np.array([tvsum_correlation(v.gtscore, v.user_scores) for v in tvsum.values()])
    tau, rho = scores.mean(axis=0)
    assert tau == pytest.approx(0.3782, abs=5e-4)
    assert rho == pytest.approx(0.4732, abs=5e-4)


def test_f1_max_and_avg():
    summary = np.array([1, 1, 0, 0], bool)
    users = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0]], bool)
    assert f1_score(summary, users, "max") == pytest.approx(100.0)
    assert f1_score(summary, users, "avg") == pytest.approx((100 + 0 + 200 * 1 * 0.5 / 1.5) / 3)
    assert f1_score(np.zeros(4, bool), users) == 0.0
    # shorter vectors are zero-padded
    assert f1_score(np.array([1, 1], bool), users, "max") == pytest.approx(100.0)
    with pytest.raises(LlmvsError):
        f1_score(summary, users, "median")


def test_tvsum_user_summaries_follow_each_annotator():
    annot = np.array([[5] * 10 + [1] * 90, [1] * 90 + [5] * 10])
    cps = np.array([[0, 9], [10, 89], [90, 99]])
    us = tvsum_user_summaries(annot, cps, 100)
    assert us[0, :10].all() and us[0].sum() == 10
    assert us[1, 90:].all() and us[1].sum() == 10
