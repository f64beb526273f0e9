import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
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


def tie_rule(values, weights, capacity):
    """The optimal subsets by brute force, and the one the tie rule picks.

    Backtracking keeps the last shot only when no optimal set without it exists, then recurses on
    the earlier shots: of the optimal sets it picks the one that leaves out the latest shots,
    i.e. the smallest when the 0/1 vectors are compared from the last shot backwards.
    """
    n = len(values)
    subsets = [s for s in itertools.product((0, 1), repeat=n) if np.dot(s, weights) <= capacity]
    best = max(float(np.dot(s, values)) for s in subsets)
    optimal = [s for s in subsets if float(np.dot(s, values)) == best]  # quarter values: sums are exact
    chosen = min(optimal, key=lambda s: s[::-1])
    return optimal, [i for i in range(n) if chosen[i]]


def test_knapsack_earlier_shots_win_exact_ties():
    # two equal shots, room for one: the first is kept
    assert knapsack([0.5, 0.5], [3, 3], 4) == [0]
    # one shot or two shorter ones worth exactly as much: backtracking from the last shot drops it
    # whenever an equally good set exists without it, so the set whose latest shot is earliest wins
    assert knapsack([0.5, 0.25, 0.25], [2, 1, 1], 2) == [0]
    assert knapsack([0.25, 0.25, 0.5], [1, 1, 2], 2) == [0, 1]
    assert knapsack([0.25, 0.5, 0.25], [1, 2, 1], 2) == [1]  # not [0, 2]: it holds shot 2
    # no tie: the better set wins wherever it is
    assert knapsack([1.0, 1.0, 1.0], [4, 2, 2], 4) == [1, 2]
    assert knapsack([0.3], [5], 4) == []


@pytest.mark.parametrize("seed", range(10))
def test_knapsack_tie_rule_on_real_ties(seed):
    """Quarter-valued shots with several optimal sets: the DP picks exactly the one the rule names."""
    rng = np.random.default_rng(seed)
    for _ in range(100):  # draw until this seed gives a genuine tie (a few draws at most)
        n = int(rng.integers(4, 11))
        values, weights = (rng.integers(0, 4, n) / 4).tolist(), rng.integers(1, 6, n).tolist()
        capacity = int(rng.integers(1, sum(weights)))
        optimal, expected = tie_rule(values, weights, capacity)
        if len(optimal) > 1:
            break
    assert len(optimal) > 1
    assert knapsack(values, weights, capacity) == expected == reference_knapsack(capacity, weights, values)


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
    # by hand, against the user fraction [1, 2/3, 0, 0, 1/3]: the 6 pairs untied in the summary all
    # concord; 4 pairs are tied in the summary and 1 in the fraction, so tau-b = 6 / sqrt(6 * 9).
    # Ranks [4.5, 4.5, 2, 2, 2] and [5, 4, 1.5, 1.5, 3]: rho = 7.5 / sqrt(7.5 * 9.5).
    assert tau == pytest.approx(6 / math.sqrt(54), abs=1e-12) and round(tau, 4) == 0.8165
    assert rho == pytest.approx(math.sqrt(7.5 / 9.5), abs=1e-12) and round(rho, 4) == 0.8885
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


REFERENCE = ROOT / "benchmarks" / "reference" / "tvsum_annotator_mean.py"


def test_tvsum_mean_annotator_reference(tvsum):
    """The per-frame annotator mean at the picks scores tau .3782, rho .4732: computed by llmvs,
    and independently by `benchmarks/reference/tvsum_annotator_mean.py` (gzip, numpy and scipy
    on the annotation file, no llmvs), video by video."""
    source = REFERENCE.read_text()
    assert "import llmvs" not in source and "from llmvs" not in source
    out = ROOT / "benchmarks" / "reference" / "tvsum_annotator_mean.json"
    reference = json.loads(out.read_text())
    scores = {v.name: tvsum_correlation(v.gtscore, v.user_scores) for v in tvsum.values()}
    assert set(scores) == set(reference["per_video"]) and len(scores) == 50
    for name, (tau, rho) in scores.items():
        assert (tau, rho) == pytest.approx(reference["per_video"][name], abs=1e-4), name
    tau, rho = np.mean(list(scores.values()), axis=0)
    assert (tau, rho) == pytest.approx((reference["tau"], reference["rho"]), abs=1e-4)
    assert (round(tau, 4), round(rho, 4)) == (0.3782, 0.4732)


def test_tvsum_reference_script_reproduces_its_file(tmp_path):
    """The committed JSON is what the script writes."""
    out = tmp_path / "ref.json"
    proc = subprocess.run([sys.executable, str(REFERENCE), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "50 videos: tau 0.3782, rho 0.4732" in proc.stdout
    assert out.read_text() == REFERENCE.with_suffix(".json").read_text()


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
