"""The ridge-regression control (llmvs.ridge): its closed form, its validation-only choice, its outputs."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from llmvs import LlmvsError
from llmvs.cli import main


def test_closed_form_equals_lstsq_and_an_explicit_solve():
    from llmvs.ridge import ridge_solve

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 7)) * rng.uniform(0.1, 5, size=7) + rng.normal(size=7)
    y = x @ rng.normal(size=7) + 3 + rng.normal(size=60)
    lambdas = [0.1, 10.0, 1000.0]
    for lam, (w, b) in zip(lambdas, ridge_solve(x, y, lambdas)):
        # min |y - xw - b|² + λ|w|² as least squares on rows [x 1; √λ I 0] against [y; 0]
        a = np.block([[x, np.ones((60, 1))], [np.sqrt(lam) * np.eye(7), np.zeros((7, 1))]])
        sol = np.linalg.lstsq(a, np.concatenate([y, np.zeros(7)]), rcond=None)[0]
        np.testing.assert_allclose(w, sol[:7], rtol=1e-9, atol=1e-10)
        assert b == pytest.approx(sol[7], rel=1e-9)
        xc = x - x.mean(0)
        np.testing.assert_allclose(w, np.linalg.solve(xc.T @ xc + lam * np.eye(7), xc.T @ (y - y.mean())), rtol=1e-9)
    with pytest.raises(LlmvsError, match="> 0"):
        ridge_solve(x, y, [0.0])


def test_standardizer_leaves_a_constant_column_at_zero():
    from llmvs.ridge import standardizer

    x = np.column_stack([np.arange(5.0), np.full(5, 2.0)])
    mean, std = standardizer(x)
    z = (x - mean) / std
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(0), [1, 0])


def _split_args(root, out, *extra):
    return ["ridge", "--annotations", str(root / "annotations.parquet"), "--embeddings-dir", str(root / "emb"),
            "--splits", str(root / "splits.json"), "--split", "0", "--features", "q", "a",
            "--shots-dir", str(root / "shots"), "--out-dir", str(out), *extra]


def test_the_choice_reads_no_test_video(tiny_benchmark, tmp_path, monkeypatch):
    import llmvs.embeddings
    import llmvs.ridge

    loaded, seen_at_choice = [], []
    load = llmvs.embeddings.load_video_features
    monkeypatch.setattr(llmvs.embeddings, "load_video_features", lambda d, v, f: loaded.append(v.key) or load(d, v, f))
    choose = llmvs.ridge.choose

    def recording_choose(videos, feats, *args, **kwargs):
        seen_at_choice.extend(loaded)
        assert set(feats) == set(loaded)  # the choice gets only what was loaded so far
        return choose(videos, feats, *args, **kwargs)

    monkeypatch.setattr(llmvs.ridge, "choose", recording_choose)
    assert main(_split_args(tiny_benchmark, tmp_path, "--selection", "val_tau")) == 0
    split = json.loads((tiny_benchmark / "splits.json").read_text())[0]
    assert seen_at_choice and set(seen_at_choice) == set(split["train_keys"])
    assert not set(seen_at_choice) & set(split["test_keys"])
    assert loaded[len(seen_at_choice):] == split["test_keys"]  # read after the choice, to be scored


def test_ridge_split_writes_evaluate_outputs_and_a_model(tiny_benchmark, tmp_path):
    from llmvs.datasets import read_annotations
    from llmvs.ridge import LAMBDAS, SIGMAS, fit, load_ridge, predict, ridge_split
    from llmvs.embeddings import load_video_features
    from llmvs.train import validation_keys

    root = tiny_benchmark
    rows = ridge_split(root / "annotations.parquet", root / "emb", root / "splits.json", 1, ["q", "a"], tmp_path,
                       shots_dir=root / "shots")
    split = json.loads((root / "splits.json").read_text())[1]
    model = load_ridge(tmp_path / "model.npz")
    meta = model["meta"]
    # the trainer's validation subset; SumMe chooses by validation MSE
    assert meta["val_keys"] == validation_keys(split["train_keys"], 0.2, 1112 + 1)
    assert meta["fit_keys"] == [k for k in split["train_keys"] if k not in meta["val_keys"]]
    assert meta["test_keys"] == split["test_keys"] and meta["selection"] == "val_loss" and meta["refit"]
    grid = pd.read_csv(tmp_path / "validation.csv")
    assert len(grid) == len(LAMBDAS) * len(SIGMAS)
    chosen = grid[(grid["lambda"] == meta["lambda"]) & (grid["sigma"] == meta["sigma"])]
    assert chosen.val_loss.item() == pytest.approx(grid.val_loss.min(), abs=2e-6)  # the CSV holds 6 decimals

    # refitted on every training video with the chosen setting
    videos = read_annotations(root / "annotations.parquet")
    feats = {k: load_video_features(root / "emb", videos[k], ["q", "a"]) for k in split["train_keys"] + split["test_keys"]}
    again = fit(feats, videos, meta["fit_keys"] + meta["val_keys"], meta["lambda"], meta["sigma"])
    np.testing.assert_allclose(model["w"], again["w"])

    # evaluate_split's formats: scores.parquet (video, frame_index, score) and metrics.csv (video, n_steps, tau, rho, f1)
    scores = pq.read_table(tmp_path / "scores.parquet")
    assert scores.column_names == ["video", "frame_index", "score"]
    assert json.loads(scores.schema.metadata[b"method"]) == "ridge"
    (test_key,) = split["test_keys"]
    np.testing.assert_allclose(scores.column("score")[0].as_py(), predict(model, feats[test_key]), rtol=1e-6)
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics.columns) == ["video", "n_steps", "tau", "rho", "f1"] and metrics.video.tolist() == [test_key]
    assert rows[0]["video"] == test_key and np.isfinite(metrics[["tau", "rho", "f1"]].to_numpy()).all()


def test_the_fit_only_model_is_kept_without_refit(tiny_benchmark, tmp_path):
    from llmvs.ridge import load_ridge

    assert main(_split_args(tiny_benchmark, tmp_path, "--no-refit", "--lambdas", "10", "--sigmas", "0", "2")) == 0
    model = load_ridge(tmp_path / "model.npz")
    assert not model["meta"]["refit"] and model["meta"]["lambda"] == 10.0 and len(pd.read_csv(tmp_path / "validation.csv")) == 2


def test_a_damaged_model_file_is_one_clear_error(tmp_path):
    from llmvs.ridge import load_ridge

    (tmp_path / "model.npz").write_bytes(b"nonsense")
    with pytest.raises(LlmvsError, match="not a readable ridge model"):
        load_ridge(tmp_path / "model.npz")
