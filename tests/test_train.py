import numpy as np
import pandas as pd
import pytest
import torch

from conftest import write_features
from llmvs import LlmvsError
from llmvs.embeddings import feature_matrix, read_embeddings
from llmvs.aggregator import GlobalAggregator
from llmvs.checkpoints import load_model, load_scorers, smooth_scores
from llmvs.report import aggregate
from llmvs.scoring import evaluate_split
from llmvs.run_config import TrainConfig, model_config
from llmvs.train import train_split, validation_keys, video_losses


def aggregator(input_dim: int, **keys) -> GlobalAggregator:
    """The aggregator a run with these training keys trains (the paper's architecture otherwise)."""
    return GlobalAggregator(model_config(TrainConfig(**keys), input_dim))


@pytest.mark.parametrize("features", ["qa", "q", "a", ["c", "q"]])
@pytest.mark.parametrize("kind", ["attention", "mlp"])
def test_model_variants_shapes(features, kind, tmp_path):
    rng = np.random.default_rng(0)
    cols = {k: rng.random((9, 12)).astype(np.float16).astype(np.float32) for k in ("q", "a", "c")}
    write_features(tmp_path / "v.arrow", np.arange(0, 135, 15), cols)
    x = feature_matrix(read_embeddings(tmp_path / "v.arrow"), features)
    model = GlobalAggregator(model_config(TrainConfig(features=features, aggregator=kind, d_model=32, dim_feedforward=64,
                                                      positional_encoding=kind == "attention"), x.shape[1])).eval()
    out = model(torch.as_tensor(x)[None])
    assert out.shape == (1, 9) and bool(((out > 0) & (out < 1)).all())
    assert (model.encoder is None) == (kind == "mlp")
    expected = {"qa": np.maximum(cols["q"], cols["a"]), "q": cols["q"], "a": cols["a"]}.get(
        features if isinstance(features, str) else "", None)
    if expected is None:
        expected = np.concatenate([cols["c"], cols["q"]], axis=1)
    assert np.array_equal(x, expected)


def test_paper_head_dimensions():
    model = aggregator(5120)
    widths = [m.out_features for m in model.head if isinstance(m, torch.nn.Linear)]
    assert widths == [1024, 512, 256, 128, 1]
    assert len(model.encoder.layers) == 3 and model.encoder.layers[0].self_attn.num_heads == 2


def test_validation_keys_are_deterministic_and_from_training():
    train = [f"video_{i}" for i in range(1, 21)]
    v = validation_keys(train, 0.2, 7)
    assert v == validation_keys(train, 0.2, 7) and len(v) == 4 and set(v) <= set(train)
    assert validation_keys(train, 0.0, 7) == []


def test_unknown_training_key_is_named():
    with pytest.raises(LlmvsError, match="unknown training key.*lerning_rate"):
        TrainConfig.from_dict({"lerning_rate": 1})


def test_video_losses_ignore_padding_and_match_numpy():
    rng = np.random.default_rng(3)
    pred, y = rng.random((2, 9)), rng.random((2, 9))
    pad = np.zeros((2, 9), bool)
    pad[1, 6:] = True  # the second video has 6 steps; its padded tail must not count
    t = lambda a: torch.as_tensor(a)  # noqa: E731
    mse = video_losses(t(pred), t(y), t(pad), "mse").numpy()
    pearson = video_losses(t(pred), t(y), t(pad), "pearson").numpy()
    for i, n in enumerate((9, 6)):
        assert mse[i] == pytest.approx(np.mean((pred[i, :n] - y[i, :n]) ** 2), rel=1e-12)
        assert pearson[i] == pytest.approx(1 - np.corrcoef(pred[i, :n], y[i, :n])[0, 1], rel=1e-6)
    # blind to each video's level and scale: only the ranking-like shape of the scores counts
    assert video_losses(t(3 * pred + 1), t(y), t(pad), "pearson").numpy() == pytest.approx(pearson, rel=1e-6)
    with pytest.raises(LlmvsError, match="unknown loss 'rank'"):
        TrainConfig.from_dict({"loss": "rank"})


@pytest.mark.parametrize("attention_dropout", [0.0, 0.1])
def test_unpadded_videos_skip_the_mask_with_the_same_numbers(attention_dropout):
    """No mask and an all-False mask give exactly the same scores and gradients in training mode (dropout
    drawn from the same seed), and a padded batch scores each video as it would alone."""
    keys = {"d_model": 32, "dim_feedforward": 64, "attention_dropout": attention_dropout}
    x = torch.as_tensor(np.random.default_rng(5).random((1, 40, 12)), dtype=torch.float32)
    runs = []
    for mask in (torch.zeros(1, 40, dtype=torch.bool), None):
        torch.manual_seed(0)
        model = aggregator(12, **keys).train()
        out = model(x, mask)
        out.sum().backward()
        runs.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    assert torch.equal(runs[0][0], runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    model.eval()
    pad = torch.zeros(2, 40, dtype=torch.bool)
    pad[1, 25:] = True
    both = model(torch.cat([x, x]), pad)
    torch.testing.assert_close(both[1, :25], model(x[:, :25])[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(both[0], model(x)[0])


def test_centred_model_sees_only_what_differs_within_a_video(tiny_benchmark, tmp_path):
    """`center`: adding one vector to every step of a video leaves its scores unchanged; a padded batch
    centres each video by its own steps; with `standardize`, the stored statistics are of centred steps."""
    rng = np.random.default_rng(6)
    x = torch.as_tensor(rng.random((1, 30, 12)), dtype=torch.float32)
    shift = torch.as_tensor(rng.random(12) * 5, dtype=torch.float32)
    model = aggregator(12, d_model=32, dim_feedforward=64, center=True).eval()
    plain = aggregator(12, d_model=32, dim_feedforward=64).eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(x + shift), model(x), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(plain(x + shift), plain(x), rtol=1e-3, atol=1e-4)  # the invariance is the option's
        torch.testing.assert_close(model(x), plain(x - x.mean(1, keepdim=True)))
        pad = torch.zeros(2, 30, dtype=torch.bool)
        pad[1, 18:] = True
        both = model(torch.cat([x, x + shift]), pad)
        torch.testing.assert_close(both[1, :18], model(x[:, :18])[0], rtol=1e-5, atol=1e-6)
    _train(tiny_benchmark, 0, tmp_path / "c", epochs=1, center=True, standardize=True)
    trained, ckpt = load_model(tmp_path / "c" / "model.pt")
    steps = np.concatenate([(f := feature_matrix(read_embeddings(tiny_benchmark / "emb" / f"{k}.arrow"), "qa"))
                            - f.mean(0) for k in ckpt["fit_keys"]])
    member = trained.members[0]  # load_model wraps even one model in an Ensemble
    assert member.cfg.center and np.allclose(member.in_mean.numpy(), steps.mean(0), atol=1e-5)  # ~0: centred
    assert np.allclose(member.in_std.numpy(), steps.std(0, ddof=1), rtol=1e-4)


def test_trainer_masks_only_padded_batches(tiny_benchmark, tmp_path, monkeypatch):
    seen = []
    forward = GlobalAggregator.forward

    def spy(self, x, padding=None):
        if self.training:
            seen.append((x.shape[0], padding))
        return forward(self, x, padding)

    monkeypatch.setattr(GlobalAggregator, "forward", spy)
    _train(tiny_benchmark, 0, tmp_path / "one", epochs=1)
    assert seen and all(b == 1 and p is None for b, p in seen)
    seen.clear()
    _train(tiny_benchmark, 0, tmp_path / "all", epochs=1, batch_videos=3)  # 3 fitting videos, unequal lengths
    assert [b for b, _ in seen] == [3] and seen[0][1] is not None and bool(seen[0][1].any())


def test_pearson_loss_trains_and_selects_by_its_own_validation_loss(tiny_benchmark, tmp_path):
    ckpt = _train(tiny_benchmark, 0, tmp_path / "p", loss="pearson")
    log = pd.read_csv(tmp_path / "p" / "train_log.csv")
    assert ckpt["seeds"][0]["selected_epoch"] == [int(log.epoch[log.val_loss.idxmin()])]
    assert log.val_loss.between(0, 2).all()  # 1 - correlation, not a squared error


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Reference: a normalised Gaussian truncated at 4 sigma over edge-padded scores."""
    r = int(4 * sigma + 0.5)
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return np.convolve(np.pad(x, r, mode="edge"), w / w.sum(), mode="valid")


def test_smoothing_is_an_evaluation_setting_of_the_same_model(tiny_benchmark, tmp_path):
    root = tiny_benchmark
    _train(root, 0, tmp_path / "model")
    for name, sigma in (("plain", 0.0), ("smooth", 2.5)):
        evaluate_split(root / "annotations.parquet", root / "splits.json", 0, "model", tmp_path / name,
                       embeddings_dir=root / "emb", model_path=tmp_path / "model" / "model.pt", shots_dir=root / "shots",
                       smooth_steps=sigma)
    scores = {run: pd.read_parquet(tmp_path / run / "scores.parquet").score[0] for run in ("plain", "smooth")}
    assert len(scores["plain"]) > 20
    np.testing.assert_allclose(scores["smooth"], gaussian_smooth(scores["plain"].astype(np.float64), 2.5), rtol=1e-6)
    assert np.abs(np.diff(scores["smooth"])).sum() < np.abs(np.diff(scores["plain"])).sum()
    short = np.array([.1, .9, .2, .8, .3, .7, .4, .6])  # 8 steps: sigma 12 is capped at 8 / 4 = 2
    np.testing.assert_allclose(smooth_scores(short, 12), gaussian_smooth(short, 2), rtol=1e-12)
    with pytest.raises(LlmvsError, match="smooth_steps must be a number >= 0"):
        evaluate_split(root / "annotations.parquet", root / "splits.json", 0, "model", tmp_path / "bad",
                       embeddings_dir=root / "emb", model_path=tmp_path / "model" / "model.pt", smooth_steps=-1)
    with pytest.raises(LlmvsError, match="unknown training key.*smooth_steps"):
        TrainConfig.from_dict({"smooth_steps": 2})


def test_seeds_share_the_validation_videos_and_are_scored_apart(tiny_benchmark, tmp_path):
    """`seeds: 2` trains two models (the first one exactly as `seeds: 1` does) on the same fitting and
    validation videos; evaluation scores each and `aggregate` reports their spread."""
    root = tiny_benchmark
    one = _train(root, 0, tmp_path / "one")
    two = _train(root, 0, tmp_path / "two", seeds=2)
    assert [t["seed"] for t in two["seeds"]] == [1112, 2112] and two["val_keys"] == one["val_keys"]
    for k, v in one["seeds"][0]["state_dicts"][0].items():
        assert torch.equal(v, two["seeds"][0]["state_dicts"][0][k])
    assert not torch.equal(two["seeds"][0]["state_dicts"][0]["proj.1.weight"], two["seeds"][1]["state_dicts"][0]["proj.1.weight"])
    assert len(load_scorers(tmp_path / "two" / "model.pt")[0]) == 2
    assert set(pd.read_csv(tmp_path / "two" / "train_log.csv").seed) == {0, 1}
    runs = tmp_path / "summe" / "runs" / "blip" / "smollm2" / "qa"
    files = []
    for split in (0, 1):
        _train(root, split, runs / f"split{split}", seeds=2)
        rows = evaluate_split(root / "annotations.parquet", root / "splits.json", split, "model", runs / f"split{split}",
                              embeddings_dir=root / "emb", model_path=runs / f"split{split}" / "model.pt",
                              shots_dir=root / "shots")
        assert [r["seed"] for r in rows] == [0, 1]
        files.append(runs / f"split{split}" / "metrics.csv")
    aggregate(files, tmp_path / "table")
    per = pd.read_csv(tmp_path / "table" / "metrics.csv")  # split x seed means over the test videos
    row = pd.read_csv(tmp_path / "table" / "summary.csv").iloc[0]
    splits, seeds = per.groupby("split").tau.mean(), per.groupby("seed").tau.mean()
    assert (row.n_splits, row.n_seeds) == (2, 2)
    assert row.tau_mean == pytest.approx(per.tau.mean(), abs=1e-4)
    assert row.tau_std == pytest.approx(np.std(splits, ddof=0), abs=1e-4)
    assert row.tau_seed_std == pytest.approx(np.std(seeds, ddof=1), abs=1e-4)


def _train(root, split, out, **kw):
    cfg = TrainConfig.from_dict({"d_model": 32, "dim_feedforward": 64, "epochs": 4, "lr": 1e-3, **kw})
    return train_split(root / "annotations.parquet", root / "emb", root / "splits.json", split, cfg, out,
                       shots_dir=root / "shots")


def test_train_evaluate_aggregate_end_to_end(tiny_benchmark, tmp_path):
    root = tiny_benchmark
    runs = tmp_path / "summe" / "runs" / "blip" / "smollm2"
    for split in (0, 1):
        ckpt = _train(root, split, runs / "qa" / f"split{split}")
        assert ckpt["selection"] == "val_loss" and len(ckpt["val_keys"]) == 1
        assert not set(ckpt["fit_keys"] + ckpt["val_keys"]) & set(ckpt["test_keys"])
        log = pd.read_csv(runs / "qa" / f"split{split}" / "train_log.csv")
        assert list(log.epoch) == [1, 2, 3, 4] and {"train_loss", "val_loss"} <= set(log.columns)
        assert (runs / "qa" / f"split{split}" / "train_curve.png").stat().st_size > 1000
        for method in ("model", "zero_shot", "random", "oracle"):
            run = "qa" if method == "model" else method
            rows = evaluate_split(root / "annotations.parquet", root / "splits.json", split, method,
                                  runs / run / f"split{split}", embeddings_dir=root / "emb",
                                  model_path=runs / "qa" / f"split{split}" / "model.pt", shots_dir=root / "shots")
            assert len(rows) == 1 and {"tau", "rho", "f1"} <= set(rows[0])
    oracle = pd.read_csv(runs / "oracle" / "split0" / "metrics.csv")
    assert oracle.tau.iloc[0] > 0.2 and oracle.f1.iloc[0] > 30  # the ceiling under these shots
    order = ["qa", "zero_shot", "random", "oracle"]  # the config's order, kept in the tables and chart
    files = [str(runs / run / f"split{split}" / "metrics.csv") for run in order for split in (1, 0)]
    aggregate(files, tmp_path, human_csv=None)
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert len(metrics) == 8 and list(dict.fromkeys(metrics.run)) == order and list(metrics.split[:2]) == [0, 1]
    summary = pd.read_csv(tmp_path / "summary.csv")
    ours = summary[summary.source == "measured"]
    assert list(ours.row) == order and (ours.n_splits == 2).all()
    assert {"LLMVS", "Human", "CSTA"} <= set(summary[summary.source == "published"].row)
    assert (tmp_path / "summary.png").stat().st_size > 5000


def test_training_is_deterministic(tiny_benchmark, tmp_path):
    a = _train(tiny_benchmark, 0, tmp_path / "a")
    b = _train(tiny_benchmark, 0, tmp_path / "b")
    for k in a["seeds"][0]["state_dicts"][0]:
        assert torch.equal(a["seeds"][0]["state_dicts"][0][k], b["seeds"][0]["state_dicts"][0][k])
    assert (tmp_path / "a" / "train_log.csv").read_text() == (tmp_path / "b" / "train_log.csv").read_text()


def test_missing_or_mismatched_embeddings_are_clear_errors(tiny_benchmark, tmp_path):
    root = tiny_benchmark
    with pytest.raises(LlmvsError, match=r"video_\d+\.arrow: missing embeddings"):
        train_split(root / "annotations.parquet", tmp_path, root / "splits.json", 0,
                    TrainConfig(epochs=1, d_model=16, dim_feedforward=16), tmp_path / "out")
    emb = tmp_path / "emb"
    emb.mkdir()
    for p in (root / "emb").glob("*.arrow"):
        (emb / p.name).write_bytes(p.read_bytes())
    short = {"q": np.ones((3, 24), np.float32), "a": np.ones((3, 24), np.float32)}
    write_features(emb / "video_8.arrow", np.arange(0, 45, 15), short, answer_score=[5, 5, 5])
    with pytest.raises(LlmvsError, match="video_8.arrow: 3 steps, but video_8 has 86"):
        train_split(root / "annotations.parquet", emb, root / "splits.json", 0,
                    TrainConfig(epochs=1, d_model=16, dim_feedforward=16), tmp_path / "out")
    write_features(emb / "video_12.arrow", np.arange(0, 45, 15), short, answer_score=[5, 5, 5])
    with pytest.raises(LlmvsError, match="video_12.arrow: 3 steps, but video_12 has"):  # the test video of split 0
        evaluate_split(root / "annotations.parquet", root / "splits.json", 0, "zero_shot", tmp_path / "zs",
                       embeddings_dir=emb)
    frames = np.arange(0, 86 * 15, 15)
    frames[40:] += 1  # the right number of steps, but not the picks from step 40 on
    write_features(emb / "video_8.arrow", frames, {k: np.ones((86, 24), np.float32) for k in ("q", "a")},
                   answer_score=[5] * 86)
    with pytest.raises(LlmvsError, match=r"video_8.arrow: step 40 is frame 601, but video_8's step 40 is frame 600 "
                                         r"\(46 of 86 steps differ\)"):
        train_split(root / "annotations.parquet", emb, root / "splits.json", 0,
                    TrainConfig(epochs=1, d_model=16, dim_feedforward=16), tmp_path / "out")


def test_shot_loss_ranks_the_shots_means(tiny_benchmark, tmp_path):
    """`shot_pearson`: 1 - the correlation of the shots' mean predicted and target scores (numpy on the
    shot means as an independent computation); it trains with the shots of every fitting video."""
    from llmvs.train import step_shots

    seg = step_shots([0, 15, 30, 45, 60, 75], [[0, 29], [30, 59], [60, 89]])
    assert seg.tolist() == [0, 0, 1, 1, 2, 2]
    pred, y = np.array([.1, .3, .9, .7, .2, .2]), np.array([0., .2, 1., .6, .1, .5])
    loss = video_losses(torch.as_tensor(pred)[None], torch.as_tensor(y)[None], torch.zeros(1, 6, dtype=torch.bool),
                        "shot_pearson", [torch.as_tensor(seg)])
    means = [np.array([v[seg == s].mean() for s in range(3)]) for v in (pred, y)]
    assert float(loss[0]) == pytest.approx(1 - np.corrcoef(*means)[0, 1], rel=1e-6)  # the 1e-8 guard
    # a shot shorter than a step holds no pick (SumMe's KTS shots have some): it is left out, not NaN
    seg = step_shots([0, 15, 30, 45, 60, 75], [[0, 29], [30, 40], [41, 44], [45, 89]])
    assert seg.tolist() == [0, 0, 1, 3, 3, 3]
    p = torch.as_tensor(pred)[None].requires_grad_()
    loss = video_losses(p, torch.as_tensor(y)[None], torch.zeros(1, 6, dtype=torch.bool), "shot_pearson",
                        [torch.as_tensor(seg)])
    loss.sum().backward()
    means = [np.array([v[seg == s].mean() for s in (0, 1, 3)]) for v in (pred, y)]
    assert float(loss.detach()[0]) == pytest.approx(1 - np.corrcoef(*means)[0, 1], abs=1e-6)
    assert torch.isfinite(p.grad).all()
    ckpt = _train(tiny_benchmark, 0, tmp_path / "shot", loss="shot_pearson", epochs=2)
    log = pd.read_csv(tmp_path / "shot" / "train_log.csv")
    assert ckpt["seeds"][0]["selected_epoch"] == [int(log.epoch[log.val_loss.idxmin()])]
    with pytest.raises(LlmvsError, match="loss shot_pearson needs the shots"):
        train_split(tiny_benchmark / "annotations.parquet", tiny_benchmark / "emb", tiny_benchmark / "splits.json", 0,
                    TrainConfig(epochs=1, d_model=16, dim_feedforward=16, loss="shot_pearson"), tmp_path / "none")


def test_users_target_fits_each_annotators_own_labels(tiny_benchmark, tmp_path, summe, tvsum):
    """`target: users`: the loss against each annotator's labels at the steps, averaged (numpy on the
    kept model's predictions as the independent computation); SumMe's users are binary, TVSum's 20 are 1-5."""
    from llmvs.checkpoints import predict
    from llmvs.datasets import read_annotations
    from llmvs.embeddings import load_video_features
    from llmvs.train import training_targets

    v = summe["video_12"]
    users = training_targets(v, "users")
    raw = v.user_scores[:, v.picks] > 0
    varying = raw.max(1) > raw.min(1)
    assert users.shape == (varying.sum(), v.n_steps) and set(np.unique(users)) == {0.0, 1.0}
    assert (users == raw[varying]).all()
    t = tvsum["video_1"]
    assert training_targets(t, "users").shape == (20, t.n_steps) and set(np.unique(training_targets(t, "users"))) <= {
        1.0, 2.0, 3.0, 4.0, 5.0}
    ckpt = _train(tiny_benchmark, 0, tmp_path / "users", loss="pearson", target="users", epochs=2, selection="last")
    log = pd.read_csv(tmp_path / "users" / "train_log.csv")
    (model,), _ = load_scorers(tmp_path / "users" / "model.pt")
    videos = read_annotations(tiny_benchmark / "annotations.parquet")
    (k,) = ckpt["val_keys"]
    pred = predict(model, load_video_features(tiny_benchmark / "emb", videos[k], "qa")).astype(np.float64)
    expected = np.mean([1 - np.corrcoef(pred, y)[0, 1] for y in training_targets(videos[k], "users")])
    assert log.val_loss.iloc[-1] == pytest.approx(expected, abs=1e-5)
    with pytest.raises(LlmvsError, match="target users trains one video a batch"):
        TrainConfig.from_dict({"target": "users", "batch_videos": 2})
    with pytest.raises(LlmvsError, match="unknown target 'user'"):
        TrainConfig.from_dict({"target": "user"})


def test_features_from_two_sources_that_share_a_column_name(tmp_path, summe):
    """`minilm:q_text` reads the encoder's q_text beside the LLM's qa (both sources have a q_text column)."""
    from llmvs.embeddings import load_video_features

    v = summe["video_8"]
    rng = np.random.default_rng(7)
    llm = {k: rng.random((v.n_steps, 6)).astype(np.float16).astype(np.float32) for k in ("q", "a", "q_text")}
    enc = {"q_text": rng.random((v.n_steps, 4)).astype(np.float16).astype(np.float32)}
    write_features(tmp_path / "smollm2" / "video_8.arrow", v.picks, llm)
    write_features(tmp_path / "minilm" / "video_8.arrow", v.picks, enc)
    x = load_video_features([tmp_path / "smollm2", tmp_path / "minilm"], v, ["qa", "minilm:q_text"])
    np.testing.assert_array_equal(x, np.concatenate([np.maximum(llm["q"], llm["a"]), enc["q_text"]], axis=1))
    plain = load_video_features([tmp_path / "smollm2", tmp_path / "minilm"], v, ["q_text"])
    np.testing.assert_array_equal(plain, llm["q_text"])  # unqualified: the first source that has it


def test_patience_stops_where_the_full_runs_validation_loss_says_with_the_same_epochs(tiny_benchmark, tmp_path):
    keys = {"epochs": 8, "lr": 3e-2, "seeds": 2}
    _train(tiny_benchmark, 0, tmp_path / "full", **keys)
    early = _train(tiny_benchmark, 0, tmp_path / "early", patience=2, **keys)
    log_full = pd.read_csv(tmp_path / "full" / "train_log.csv")
    log_early = pd.read_csv(tmp_path / "early" / "train_log.csv")
    stops = []
    for seed in (0, 1):
        v = log_full[log_full.seed == seed].val_loss.to_numpy()
        stop = next(e for e in range(1, len(v) + 1) if e - 1 - int(np.argmin(v[:e])) >= 2 or e == len(v))
        rows = log_early[log_early.seed == seed]
        assert rows.epoch.max() == stop  # where the full run's losses say, with the same epochs before it
        pd.testing.assert_frame_equal(rows.reset_index(drop=True),
                                      log_full[log_full.seed == seed].head(stop).reset_index(drop=True))
        assert early["seeds"][seed]["selected_epoch"] == [int(np.argmin(v[:stop])) + 1]
        stops.append(stop)
    assert min(stops) < 8  # a model did stop early
    with pytest.raises(LlmvsError, match="patience 2 needs an integer >= 1 and selection val_loss"):
        TrainConfig.from_dict({"patience": 2, "selection": "val_rho"})
