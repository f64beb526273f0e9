"""`llmvs evaluate-scores` (llmvs.score_files): another method's scores under the benchmark protocol.

Expected values come from elsewhere: the project's own evaluate stage (oracle and random controls),
scipy called directly, a brute-force knapsack on a four-shot video, the published-protocol numbers
in data/SOURCES.md and the README.
"""

import csv
import zlib

import h5py
import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from conftest import DATA

from llmvs.cli import main
from llmvs.datasets import kts_path, load_change_points, load_splits
from llmvs.h5 import benchmark_entries, write_eccv16
from llmvs.score_files import evaluate_scores, protocol_metrics, rank0_shard, tvsum_rhos
from llmvs.evaluation import video_metrics
from test_h5 import edited, fails, replace

SPLITS = DATA / "splits" / "summe_splits.json"


def all_test_keys(dataset):
    return sorted({k for s in load_splits(dataset, DATA) for k in s["test_keys"]}, key=lambda k: int(k[6:]))


def random_steps(videos, seed=7):
    rng = np.random.default_rng(seed)
    return {k: rng.random(v.n_steps) for k, v in videos.items()}


def write_csv(path, videos, scores, by_name=False, frame_index=False):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "frame_index", "score"] if frame_index else ["video", "score"])
        for k, s in scores.items():
            key = videos[k].name if by_name else k
            for i, x in zip(videos[k].picks, s):
                w.writerow([key, int(i), repr(float(x))] if frame_index else [key, repr(float(x))])
    return path


def per_video(report):
    return {r["video"]: r for r in report.per_video}


def row(report, method, reading):
    return next(r for r in report.rows if (r["method"], r["reading"]) == (method, reading))


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    """The project's evaluate stage on SumMe (KTS shots): oracle and random rows of the five splits."""
    from llmvs.datasets import write_annotations
    from llmvs.scoring import evaluate_split
    from llmvs.shots import run_shots

    root = tmp_path_factory.mktemp("stage")
    write_annotations("summe", root / "annotations.parquet", DATA)
    for k in all_test_keys("summe"):
        run_shots(root / "shots" / f"{k}.parquet", change_points=kts_path("summe", DATA),
                  annotations=root / "annotations.parquet", video=k)
    return {m: [evaluate_split(root / "annotations.parquet", SPLITS, s, m, root / m / str(s), shots_dir=root / "shots")
                for s in range(5)] for m in ("oracle", "random")}


@pytest.fixture(scope="module")
def summe_h5(tmp_path_factory):
    """All 25 SumMe videos in the eccv16 layout (no features)."""
    out = tmp_path_factory.mktemp("h5") / "summe.h5"
    write_eccv16(out, benchmark_entries("summe", data_dir=DATA))
    return out


# --- the numbers ----------------------------------------------------------------------------

def test_oracle_and_random_reproduce_the_evaluate_stage(tmp_path, capsys, summe, stage):
    scores = write_csv(tmp_path / "oracle.csv", summe, {k: v.gtscore for k, v in summe.items()}, by_name=True)
    report = evaluate_scores(scores, "summe", checkpoints=2, data_dir=DATA)
    got = per_video(report)
    for method, prefix in (("oracle", ""), ("random", "random_")):
        for split_rows in stage[method]:
            for r in split_rows:
                assert [got[r["video"]][prefix + m] for m in ("tau", "rho", "f1")] == [r["tau"], r["rho"], r["f1"]]
        for m in ("tau", "rho", "f1"):
            split_means = [np.mean([r[m] for r in rows]) for rows in stage[method]]
            reading = row(report, "scores" if method == "oracle" else "random", "honest")
            assert reading[m] == pytest.approx(np.mean(split_means), abs=1e-12)
            assert reading[m + "_std"] == pytest.approx(np.std(split_means), abs=1e-12)
    # data/SOURCES.md: on the KTS shots, random reads tau .138 / rho .153 and the oracle .422 / .471
    assert main(["evaluate-scores", str(scores), "--dataset", "summe", "--checkpoints", "2",
                 "--data-dir", str(DATA)]) == 0
    out = capsys.readouterr().out
    assert "honest (every test video)                         0.422 ± 0.039   0.471 ± 0.042" in out
    assert "  random (seed 0), the reference                  0.138 ± 0.043   0.153 ± 0.048" in out
    assert "25 with step scores (one per 15th frame), 0 with frame scores" in out


def test_tvsum_oracle_by_scipy_and_the_readme(tmp_path, tvsum):
    scores = tmp_path / "oracle.npz"
    np.savez(scores, **{k: v.gtscore for k, v in tvsum.items()})
    report = evaluate_scores(scores, "tvsum", checkpoints=2, data_dir=DATA)
    v = tvsum["video_5"]
    annot = v.user_scores[:, ::15].astype(np.float64)
    tau = np.mean([kendalltau(v.gtscore, a).statistic for a in annot])
    rho = np.mean([spearmanr(v.gtscore, a).statistic for a in annot])
    assert per_video(report)["video_5"]["tau"] == pytest.approx(tau, abs=1e-12)
    assert per_video(report)["video_5"]["rho"] == pytest.approx(rho, abs=1e-12)
    honest = row(report, "scores", "honest")  # README: oracle .379 ± .018 / .475 ± .023
    assert [round(honest[m], 3) for m in ("tau", "tau_std", "rho", "rho_std")] == [.379, .018, .475, .023]
    rand = row(report, "random", "honest")  # README: random .000 ± .005 / .000 ± .006
    assert [round(abs(rand[m]), 3) for m in ("tau", "tau_std", "rho", "rho_std")] == [0, .005, 0, .006]


def test_a_four_shot_video_by_brute_force_and_scipy(tmp_path, summe, summe_h5):
    """video_12 given four shots through --h5: the knapsack is checked against every subset."""
    from itertools import combinations

    v = summe["video_12"]  # 950 frames: capacity floor(0.15 * 950) = 142
    cps = np.array([[0, 59], [60, 119], [120, 899], [900, 949]])
    h5 = edited(summe_h5, tmp_path, lambda f: (replace(f["video_12"], "change_points", cps.astype(np.int32)),
                                               replace(f["video_12"], "n_frame_per_seg", np.int32([60, 60, 780, 50]))))
    scores = random_steps(summe)
    path = tmp_path / "s.npz"
    np.savez(path, **scores)
    got = per_video(evaluate_scores(path, "summe", h5=h5, checkpoints=2, data_dir=DATA))["video_12"]
    frames = np.repeat(scores["video_12"], np.diff(np.append(v.picks, v.n_frames)))
    means = [frames[s:e + 1].astype(np.float32).mean() for s, e in cps]
    lengths = cps[:, 1] - cps[:, 0] + 1
    subsets = [c for n in range(5) for c in combinations(range(4), n) if lengths[list(c)].sum() <= 142]
    best = max(subsets, key=lambda c: sum(means[i] for i in c))
    summary = np.zeros(v.n_frames)
    for i in best:
        summary[cps[i, 0]:cps[i, 1] + 1] = 1
    users = v.user_scores > 0
    assert got["tau"] == pytest.approx(kendalltau(summary, users.mean(axis=0)).statistic, abs=1e-12)
    assert got["rho"] == pytest.approx(spearmanr(summary, users.mean(axis=0)).statistic, abs=1e-12)
    f1 = []
    for u in users:
        hit = (summary * u).sum()
        p, r = hit / summary.sum(), hit / u.sum()
        f1.append(0.0 if hit == 0 else 200 * p * r / (p + r))
    assert got["f1"] == pytest.approx(max(f1), abs=1e-9)


def test_scores_through_an_exported_h5_equal_the_shipped_kts_shots(tmp_path, summe, summe_h5):
    path = tmp_path / "s.npz"
    np.savez(path, **random_steps(summe))
    through_h5 = evaluate_scores(path, "summe", h5=summe_h5, checkpoints=2, data_dir=DATA)
    shipped = evaluate_scores(path, "summe", checkpoints=2, data_dir=DATA)
    assert through_h5.per_video == shipped.per_video and through_h5.rows == shipped.rows
    assert str(summe_h5) in through_h5.shots


def test_frame_scores_are_detected_by_length(tmp_path, capsys, summe, tvsum):
    steps = random_steps(summe)
    frames = {k: np.repeat(s, np.diff(np.append(summe[k].picks, summe[k].n_frames))) for k, s in steps.items()}
    np.savez(tmp_path / "steps.npz", **steps)
    np.savez(tmp_path / "frames.npz", **frames)
    a = evaluate_scores(tmp_path / "steps.npz", "summe", checkpoints=2, data_dir=DATA)
    b = evaluate_scores(tmp_path / "frames.npz", "summe", checkpoints=2, data_dir=DATA)
    assert {r["kind"] for r in b.per_video} == {"frame"}
    strip = lambda rows: [{k: x for k, x in r.items() if k != "kind"} for r in rows]  # noqa: E731
    assert strip(a.per_video) == strip(b.per_video) and a.rows == b.rows
    # TVSum: the correlation reads frame scores at frames 0, 15, ...
    v = tvsum["video_10"]
    cps = load_change_points(kts_path("tvsum", DATA), {"video_10": v})["video_10"]
    step = np.random.default_rng(3).random(v.n_steps)
    frame = np.repeat(step, np.diff(np.append(v.picks, v.n_frames)))
    assert protocol_metrics(v, frame, "frame", cps, None) == {**video_metrics(v, step, None), "f1": pytest.approx(
        video_metrics(v, step, cps)["f1"])}
    assert main(["evaluate-scores", str(tmp_path / "frames.npz"), "--dataset", "summe", "--checkpoints", "1",
                 "--data-dir", str(DATA)]) == 0
    assert "0 with step scores (one per 15th frame), 25 with frame scores (one per frame" in capsys.readouterr().out


def test_every_file_format_and_key_style_gives_the_same_numbers(tmp_path, summe):
    scores = random_steps(summe)
    files = [write_csv(tmp_path / "by_name.csv", summe, scores, by_name=True),
             write_csv(tmp_path / "indexed.csv", summe, scores, frame_index=True)]
    np.savez(tmp_path / "s.npz", **scores)
    np.save(tmp_path / "s.npy", {summe[k].caption_key: s for k, s in scores.items()})  # underscores for spaces
    with h5py.File(tmp_path / "s.h5", "w") as f:
        for k, s in scores.items():
            f.create_dataset(k, data=s[:, None].astype(np.float32))  # (n, 1) is a vector too
    files += [tmp_path / "s.npz", tmp_path / "s.npy", tmp_path / "s.h5"]
    reports = [evaluate_scores(p, "summe", checkpoints=1, data_dir=DATA) for p in files]
    for r in reports[1:]:  # float32 in the h5 changes nothing: the knapsack reads float32 frame scores
        assert r.per_video == reports[0].per_video and r.rows == reports[0].rows


def test_as_authors_rows(tmp_path, summe, tvsum):
    assert [rank0_shard(s["test_keys"]) for s in load_splits("summe", DATA)][0] == ["video_16"]
    # TVSum: test keys #0 and #5
    assert [rank0_shard(s["test_keys"]) for s in load_splits("tvsum", DATA)][0] == ["video_14", "video_43"]
    np.savez(tmp_path / "s.npz", **random_steps(summe))
    report = evaluate_scores(tmp_path / "s.npz", "summe", checkpoints=3, data_dir=DATA)
    got, splits = per_video(report), load_splits("summe", DATA)
    first = [got[s["test_keys"][0]]["rho"] for s in splits]
    assert row(report, "scores", "as_authors")["rho"] == pytest.approx(np.mean(first), abs=1e-12)
    # random: per split, the best of 3 seeded draws by the shard's rho (the authors' best-rho checkpoint)
    kts = load_change_points(kts_path("summe", DATA), summe)
    chosen = []
    for i, s in enumerate(splits):
        key = s["test_keys"][0]
        draws = np.random.default_rng([0, zlib.crc32(key.encode()), i + 1]).random((3, summe[key].n_steps))
        metrics = [video_metrics(summe[key], d, kts[key]) for d in draws]
        chosen.append(max(metrics, key=lambda m: m["rho"]))
    for m in ("tau", "rho", "f1"):
        assert row(report, "random", "as_authors")[m] == pytest.approx(np.mean([c[m] for c in chosen]), abs=1e-12)
    # TVSum picks its best draw by a vectorised rho: the same as the protocol's
    from llmvs.evaluation import tvsum_correlation

    v = tvsum["video_14"]
    draws = np.random.default_rng(0).random((4, v.n_steps))
    np.testing.assert_allclose(tvsum_rhos(draws, v.user_scores),
                               [tvsum_correlation(d, v.user_scores)[1] for d in draws], atol=1e-12)


def test_the_printed_table_and_the_per_video_csv(tmp_path, capsys, summe):
    import pandas as pd

    np.savez(tmp_path / "s.npz", **random_steps(summe))
    assert main(["evaluate-scores", str(tmp_path / "s.npz"), "--dataset", "summe", "--checkpoints", "2",
                 "--data-dir", str(DATA), "--out", str(tmp_path / "per_video.csv")]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "per_video.csv")
    assert list(table.columns) == ["video", "name", "kind", "n_steps", "n_frames", "test_splits", "tau", "rho", "f1",
                                   "random_tau", "random_rho", "random_f1"]
    assert len(table) == 25 and table.loc[table.video == "video_25", "test_splits"].item() == "0;3;4"
    for line in ("as_authors (rank-0 shard: the first test key)", "  random, best of 2 draws per split",
                 "as_authors: a score file has no checkpoints, so its row is only the rank-0 shard average"):
        assert line in out


# --- faults ---------------------------------------------------------------------------------

def test_faults_are_one_line_errors(tmp_path, capsys, summe, summe_h5):
    scores = random_steps(summe)
    bike = summe["video_4"]  # a test video of splits 0 and 1

    def run(path, *extra):
        return fails(capsys, "evaluate-scores", path, "--dataset", "summe", "--data-dir", DATA, *extra)

    np.savez(tmp_path / "bad_key.npz", **scores, video_99=np.zeros(3))
    assert run(tmp_path / "bad_key.npz") == (f"llmvs: error: {tmp_path / 'bad_key.npz'}: unknown video 'video_99': "
                                             "expected video_1 ... video_25 or a SumMe video name")
    np.savez(tmp_path / "short.npz", **{**scores, "video_4": scores["video_4"][:10]})
    assert run(tmp_path / "short.npz") == (
        f"llmvs: error: {tmp_path / 'short.npz'}: video_4 (Bike Polo): 10 scores, expected {bike.n_steps} step scores "
        f"(one per 15th frame) or {bike.n_frames} frame scores")
    nan = dict(scores, video_4=np.where(np.arange(bike.n_steps) == 5, np.nan, scores["video_4"]))
    write_csv(tmp_path / "nan.csv", summe, nan)
    assert run(tmp_path / "nan.csv") == f"llmvs: error: {tmp_path / 'nan.csv'}: video_4 (Bike Polo): 1 NaN/inf score(s)"
    np.savez(tmp_path / "missing.npz", **{k: s for k, s in scores.items() if k != "video_4"})
    assert run(tmp_path / "missing.npz") == (
        f"llmvs: error: {tmp_path / 'missing.npz'}: no scores for 1 test video(s) of the 5 splits: video_4 (Bike Polo) "
        "(the honest mean needs every test video)")
    np.save(tmp_path / "twice.npy", {**scores, "Bike_Polo": scores["video_4"]})
    assert run(tmp_path / "twice.npy") == (
        f"llmvs: error: {tmp_path / 'twice.npy'}: video_4 (Bike Polo) is given twice, as 'video_4' and 'Bike_Polo'")
    (tmp_path / "s.txt").write_text("x")
    assert run(tmp_path / "s.txt") == (f"llmvs: error: {tmp_path / 's.txt'}: unknown score file type .txt: use .csv, "
                                       ".npz, .npy or .h5")
    np.savez(tmp_path / "ok.npz", **scores)
    assert run(tmp_path / "ok.npz", "--shots", "captions") == (
        "llmvs: error: --shots captions needs --shots-dir: a folder of shots Parquet files ({video_N}.parquet from "
        "`llmvs shots`)")
    bad = edited(summe_h5, tmp_path, lambda f: replace(f["video_4"], "video_name", np.bytes_(b"Scuba")))
    assert run(tmp_path / "ok.npz", "--h5", bad) == (
        f"llmvs: error: {bad}: video_4: video_name is 'Scuba' in the h5, but video_4 is 'Bike Polo' in the annotations")


@pytest.mark.slow
def test_the_reference_table_in_the_docs(tmp_path, summe, tvsum):
    """docs/evaluate-scores.md: the oracle and random rows, as_authors with the default 400 draws."""
    text = (DATA.parent / "docs" / "evaluate-scores.md").read_text()
    cells = {}
    for dataset, videos in (("summe", summe), ("tvsum", tvsum)):
        np.savez(tmp_path / f"{dataset}.npz", **{k: v.gtscore for k, v in videos.items()})
        report = evaluate_scores(tmp_path / f"{dataset}.npz", dataset, data_dir=DATA)
        for method in ("scores", "random"):
            for reading in ("honest", "as_authors"):
                r = row(report, method, reading)
                cell = " / ".join(f"{r[m]:.3f}".replace("-0.000", "0.000").lstrip("0") for m in ("tau", "rho"))
                cells[method, dataset, reading] = f"{cell} / {r['f1']:.1f}"
    for method, label in (("scores", "| `gtscore` as the scores (the ceiling) |"),
                          ("random", "| random (as_authors: best of 400 per split) |")):
        expected = " | ".join(cells[method, d, r] for d in ("summe", "tvsum") for r in ("honest", "as_authors"))
        assert f"{label} {expected} |" in text
