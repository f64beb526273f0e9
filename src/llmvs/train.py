"""The `train` stage: fit the global aggregator on one split of one benchmark.

MSE against `gtscore`, AdamW, cosine schedule, one video per step (gradient accumulation
optional), fixed and recorded seeds; AMP (fp16) on CUDA. Model selection never looks at test
videos: a deterministic validation subset is carved from the split's training keys and the
checkpoint is chosen by validation loss (`val_loss`, the default), validation correlation
(`val_rho`, `val_tau`) or simply the last epoch (`last`). The paper's protocol (`test_rho`: the epoch with
the best *test* rho) exists only for comparison, and its rows are labelled as such.

Writes `model.pt` (weights, model config, feature schema, selection), `train_log.csv` and
`train_curve.png`.

`train_release` fits the same model on every video of both benchmarks (a seeded validation subset
still chooses the epoch): the default scorer of `llmvs summarize`, shipped in `llmvs/scorers/` with
a model card (rule `release_scorer`).

    llmvs train --annotations A --embeddings-dir E --splits S --split 0 --run-config run.json --out-dir D
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmvs import LlmvsError

SELECTIONS = ("val_loss", "val_rho", "val_tau", "last", "test_rho")
LOSSES = ("mse", "pearson")


@dataclass
class TrainConfig:
    features: str | list = "qa"  # column(s) of the embeddings files (llmvs.embeddings)
    aggregator: str = "attention"
    d_model: int = 256
    layers: int = 3
    heads: int = 2
    dim_feedforward: int = 512
    dropout: float = 0.1
    attention_dropout: float | None = None  # parity: None = dropout (0.1), as the authors' encoder
    metrics_every: int = 1  # validation tau/rho/F1 every this many epochs (the loss every epoch)
    positional_encoding: bool = False
    input_norm: bool = False  # parity: not in the authors' model
    standardize: bool = False  # parity: not in the authors' model; z-score inputs by the fitting videos' statistics
    center: bool = False  # parity: not in the authors' model; subtract each video's mean step from its steps
    epochs: int = 60
    lr: float = 1e-4
    weight_decay: float = 0.01
    t_max: int | None = None  # cosine period in epochs (None = epochs); the authors: 100 of 200
    eta_min: float = 1e-6
    grad_clip: float = 1.0  # parity: the authors clip the global norm at 0.01 (presets/paper.yaml)
    accumulate: int = 1
    val_fraction: float = 0.2
    selection: str = "val_loss"  # parity: the authors pick the best *test* rho (selection: test_rho)
    seed: int = 1112
    amp: bool = True  # used on CUDA only
    ensemble: int = 1  # models trained with different seeds; their step scores are averaged
    batch_videos: int = 1  # videos per forward pass (padded, masked); the loss stays a mean over videos
    augment: bool = False  # the augmented setting: the other benchmark's videos join every fitting set
    loss: str = "mse"  # parity: mean squared error; "pearson": 1 - correlation within each video (rank-like)
    smooth_steps: float = 0.0  # parity: 0; > 0: the trained model's test scores are Gaussian-smoothed over
    # time with this sigma in steps (not during training or selection: a post-processing of the model)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise LlmvsError(f"unknown training key(s): {', '.join(unknown)}")
        cfg = cls(**d)
        if min(cfg.epochs, cfg.accumulate, cfg.ensemble, cfg.batch_videos, cfg.metrics_every) < 1:
            raise LlmvsError("epochs, accumulate, ensemble, batch_videos and metrics_every must be >= 1")
        if cfg.loss not in LOSSES:
            raise LlmvsError(f"unknown loss {cfg.loss!r}: expected one of {LOSSES}")
        if cfg.selection not in SELECTIONS:
            raise LlmvsError(f"unknown selection {cfg.selection!r}: expected one of {SELECTIONS}")
        if not cfg.smooth_steps >= 0:
            raise LlmvsError(f"smooth_steps must be >= 0 (sigma in steps), not {cfg.smooth_steps!r}")
        return cfg


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def validation_keys(train_keys: list[str], fraction: float, seed: int) -> list[str]:
    """A deterministic subset of the training keys (at least one video when fraction > 0)."""
    if fraction <= 0:
        return []
    keys = sorted(train_keys, key=lambda k: int(k.split("_")[-1]) if k.split("_")[-1].isdigit() else k)
    n = max(1, round(fraction * len(keys)))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(keys, size=n, replace=False).tolist())


def load_video_embeddings(embeddings_dir, video):
    """The embeddings file of one video, checked against its steps."""
    from llmvs.embeddings import read_embeddings

    path = Path(embeddings_dir) / f"{video.key}.arrow"
    emb = read_embeddings(path)
    frame_index = emb.frame_index
    if len(frame_index) != video.n_steps or not np.array_equal(frame_index, video.picks):
        raise LlmvsError(f"{path}: {len(frame_index)} steps, but {video.key} has {video.n_steps} "
                         f"(picks 0, 15, ... < {video.n_frames})")
    return emb


def load_video_features(embeddings_dir, video, features) -> np.ndarray:
    """[T, D] features of one video, checked against its step count."""
    from llmvs.embeddings import feature_matrix

    return feature_matrix(load_video_embeddings(embeddings_dir, video), features)


def video_metrics(video, scores: np.ndarray, change_points: np.ndarray | None, users=None) -> dict:
    """tau, rho (dataset protocol) and F1 for one video's step scores.

    `users`: TVSum's per-annotator knapsack summaries under these shots, when already computed."""
    from llmvs.evaluation import (f1_score, knapsack_summary, summe_correlation, tvsum_correlation,
                                  tvsum_user_summaries)

    out = {}
    if video.dataset == "tvsum":
        out["tau"], out["rho"] = tvsum_correlation(scores, video.user_scores)
    if change_points is not None:
        summary = knapsack_summary(scores, change_points, video.n_frames, video.picks)
        if video.dataset == "summe":
            out["tau"], out["rho"] = summe_correlation(summary, video.user_summaries)
            out["f1"] = f1_score(summary, video.user_summaries, "max")
        else:
            if users is None:
                users = tvsum_user_summaries(video.user_scores, change_points, video.n_frames)
            out["f1"] = f1_score(summary, users, "avg")
    return out


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def predict(model, x: np.ndarray) -> np.ndarray:
    import torch

    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        return model(torch.as_tensor(x, device=device)[None]).float()[0].cpu().numpy()


def smooth_scores(scores: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of one video's step scores over time (sigma in steps; 0 = unchanged).

    sigma is capped at a quarter of the video's steps: a wider kernel would turn a short clip's scores
    into a ramp between its two ends (no benchmark video is that short for sigma <= 16: >= 64 steps)."""
    from scipy.ndimage import gaussian_filter1d

    sigma = min(sigma, len(scores) / 4)
    return gaussian_filter1d(scores, sigma, mode="nearest") if sigma > 0 else scores


def checkpoint_scores(model, ckpt: dict, x: np.ndarray, *, scorer, features) -> np.ndarray:
    """A trained checkpoint's step scores for one video: its model's output, then its run's smoothing.
    `scorer` and `features` (the files `ckpt` and `x` came from) name both when their widths differ."""
    expected = ckpt["model_config"]["input_dim"]
    if x.shape[1] != expected:
        raise LlmvsError(f"{features}: {x.shape[1]}-d features, but {scorer} was trained on {expected}-d ones "
                         "(use the scorer of the same LLM and features)")
    return smooth_scores(predict(model, x), ckpt.get("train_config", {}).get("smooth_steps", 0.0))


def _batch(tensors: list, targets: list):
    """Pad videos to one length: (x [B, T, D], y [B, T], padding mask [B, T], True = padding)."""
    import torch

    n = max(len(t) for t in targets)
    x = tensors[0].new_zeros(len(tensors), n, tensors[0].shape[-1])
    y = targets[0].new_zeros(len(targets), n)
    pad = torch.ones(len(targets), n, dtype=torch.bool, device=x.device)
    for i, (t, g) in enumerate(zip(tensors, targets)):
        x[i, :len(g)], y[i, :len(g)], pad[i, :len(g)] = t, g, False
    return x, y, pad


def model_config(cfg: TrainConfig, input_dim: int):
    """The aggregator's architecture from the training keys."""
    from llmvs.model import ModelConfig

    return ModelConfig(input_dim=input_dim, features=cfg.features, aggregator=cfg.aggregator, d_model=cfg.d_model,
                       layers=cfg.layers, heads=cfg.heads, dim_feedforward=cfg.dim_feedforward, dropout=cfg.dropout,
                       attention_dropout=cfg.attention_dropout, positional_encoding=cfg.positional_encoding,
                       input_norm=cfg.input_norm, standardize=cfg.standardize, center=cfg.center)


def video_losses(pred, y, pad, loss: str = "mse"):
    """Each video's loss, [B], over its unpadded steps (pred, y: [B, T]; pad: [B, T], True = padding).

    `mse`: mean squared error. `pearson`: 1 - the correlation of scores and targets within the video,
    blind to each video's level and scale of importance (the benchmarks rank steps within a video)."""
    keep = (~pad).float()
    n = keep.sum(1)
    if loss == "mse":
        return ((pred - y) ** 2 * keep).sum(1) / n
    pc = (pred - (pred * keep).sum(1, keepdim=True) / n[:, None]) * keep
    yc = (y - (y * keep).sum(1, keepdim=True) / n[:, None]) * keep
    return 1 - (pc * yc).sum(1) / ((pc.pow(2).sum(1) * yc.pow(2).sum(1)).sqrt() + 1e-8)


def _evaluator(videos, feats, targets, shots, users, per_dataset=(), loss: str = "mse"):
    """evaluate(model, keys, metrics) -> validation loss, and with `metrics` tau/rho/F1 (means over the
    videos; also per benchmark for `per_dataset`, whose tau/rho follow different protocols)."""
    def video_loss(pred, y):  # video_losses' formulas on one unpadded video, in float64 numpy
        if loss == "mse":
            return np.mean((pred - y) ** 2)
        pc, yc = pred - pred.mean(), y - y.mean()
        return 1 - (pc * yc).sum() / (np.sqrt((pc ** 2).sum() * (yc ** 2).sum()) + 1e-8)

    def evaluate(model, keys, metrics=True):
        if not keys:
            return {}
        preds = {k: predict(model, feats[k]) for k in keys}  # one forward per video for loss and metrics
        out = {"loss": float(np.mean([video_loss(preds[k], targets[k]) for k in keys]))}
        if not metrics:
            return out
        rows = {k: video_metrics(videos[k], preds[k], shots.get(k), users.get(k)) for k in keys}
        for ds in per_dataset:
            for m in ("tau", "rho", "f1"):
                vals = [r[m] for k, r in rows.items() if videos[k].dataset == ds and m in r]
                if vals:
                    out[f"{ds}_{m}"] = float(np.mean(vals))
        for m in ("tau", "rho", "f1"):
            vals = [r[m] for r in rows.values() if m in r]
            if vals:
                out[m] = float(np.mean(vals))
        return out
    return evaluate


def _fit_member(cfg: TrainConfig, mcfg, seed: int, data: dict, evaluate, device, desc: str):
    """Train one model; returns (selected state dict, selected epoch, log rows)."""
    import torch
    from tqdm import tqdm

    from llmvs.model import GlobalAggregator, center_steps

    seed_everything(seed)
    model = GlobalAggregator(mcfg).to(device)
    if mcfg.standardize:  # statistics of the steps as the model sees them
        steps = [center_steps(data["x"][k][None])[0] if mcfg.center else data["x"][k] for k in data["fit"]]
        model.set_standardization(torch.cat(steps))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.t_max or cfg.epochs, eta_min=cfg.eta_min)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    order_rng = np.random.default_rng(seed)
    fit = list(data["fit"])
    log, best, best_state, selected = [], None, None, 0
    for epoch in tqdm(range(1, cfg.epochs + 1), desc=desc, unit="epoch", mininterval=5):
        model.train()
        losses = []
        opt.zero_grad(set_to_none=True)
        # parity: the authors' 5-GPU DDP reshuffles every epoch (a single GPU would not shuffle)
        order = order_rng.permutation(len(fit))
        batches = [order[i:i + cfg.batch_videos] for i in range(0, len(order), cfg.batch_videos)]
        for i, idx in enumerate(batches):
            x, y, pad = _batch([data["x"][fit[j]] for j in idx], [data["y"][fit[j]] for j in idx])
            # no mask where nothing is padded (every batch of one video): the same numbers, and the
            # encoder skips the mask checks and merges (~4 % of a CPU epoch); lengths decide, not a GPU sync
            padded = len({len(data["y"][fit[j]]) for j in idx}) > 1
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                pred = model(x, pad if padded else None).float()
            # each video's own loss, averaged over the videos (= batch of one, accumulated)
            per_video = video_losses(pred, y, pad, cfg.loss)
            loss = per_video.mean()
            scaler.scale(loss / cfg.accumulate).backward()
            losses += per_video.detach().tolist()
            if (i + 1) % cfg.accumulate == 0 or i + 1 == len(batches):
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
        sched.step()
        row = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], "train_loss": float(np.mean(losses))}
        # correlations cost more than the loss: every `metrics_every` epochs unless they select the epoch
        metrics = cfg.selection in ("val_rho", "val_tau", "test_rho") or epoch % cfg.metrics_every == 0 \
            or epoch == cfg.epochs
        for part, keys in data["eval"].items():
            row.update({f"{part}_{m}": v for m, v in evaluate(model, keys, metrics).items()})
        log.append(row)
        key = {"val_loss": -row.get("val_loss", 0.0), "val_rho": row.get("val_rho", 0.0),
               "val_tau": row.get("val_tau", 0.0), "test_rho": row.get("test_rho", 0.0), "last": epoch}[cfg.selection]
        if best is None or key > best:
            best, selected = key, epoch
            best_state = {n: p.detach().cpu().clone() for n, p in model.state_dict().items()}
    return best_state, selected, log


def train_split(annotations, embeddings_dir, splits_file, split: int, cfg: TrainConfig, out_dir,
                shots_dir=None, threads: int | None = None, extra_annotations=None, extra_embeddings_dir=None) -> dict:
    """Fit `cfg.ensemble` aggregators on one split; `extra_*`: the other benchmark (augment: true)."""
    import pandas as pd
    import torch

    from llmvs.datasets import read_annotations
    from llmvs.io import atomic_path, write_text
    from llmvs.shots import read_shots

    if threads:
        torch.set_num_threads(threads)
    from llmvs.io import read_splits

    videos = read_annotations(annotations)
    train_keys, test_keys = read_splits(splits_file, split)
    missing = sorted(set(train_keys + test_keys) - set(videos))
    if missing:
        raise LlmvsError(f"{annotations}: split {split} names unknown videos {missing[:5]}")
    val_keys = validation_keys(train_keys, cfg.val_fraction, cfg.seed + split)
    fit_keys = [k for k in train_keys if k not in val_keys]
    eval_keys = {"val": val_keys, "test": test_keys if cfg.selection == "test_rho" else []}
    needed = fit_keys + val_keys + eval_keys["test"]
    feats = {k: load_video_features(embeddings_dir, videos[k], cfg.features) for k in needed}
    targets = {k: videos[k].gtscore for k in needed}
    extra_keys = []
    if cfg.augment:  # the augmented setting: every video of the other benchmark joins the fitting set
        if not extra_annotations or not extra_embeddings_dir:
            raise LlmvsError("augment: true needs the other benchmark's annotations and embeddings")
        others = read_annotations(extra_annotations)
        for k, v in others.items():
            feats[f"{v.dataset}:{k}"] = load_video_features(extra_embeddings_dir, v, cfg.features)
            targets[f"{v.dataset}:{k}"] = v.gtscore
            extra_keys.append(f"{v.dataset}:{k}")
    shots, users = {}, {}
    if shots_dir:  # validation correlations are logged whatever the selection rule
        from llmvs.evaluation import tvsum_user_summaries

        for k in val_keys + eval_keys["test"]:
            shots[k] = read_shots(Path(shots_dir) / f"{k}.parquet", videos[k].n_frames)
            if videos[k].dataset == "tvsum":  # the annotators' summaries do not change during training
                users[k] = tvsum_user_summaries(videos[k].user_scores, shots[k], videos[k].n_frames)
    if cfg.selection in ("val_rho", "val_tau", "test_rho") and videos[needed[0]].dataset == "summe" and not shots:
        raise LlmvsError(f"selection {cfg.selection} on SumMe needs shots (--shots-dir)")

    device = _device()
    input_dim = next(iter(feats.values())).shape[1]
    mcfg = model_config(cfg, input_dim)
    data = {"x": {k: torch.as_tensor(v, device=device) for k, v in feats.items()},
            "y": {k: torch.as_tensor(v, device=device) for k, v in targets.items()},
            "fit": fit_keys + extra_keys, "eval": eval_keys}
    evaluate = _evaluator(videos, feats, targets, shots, users, loss=cfg.loss)

    states, selected, log = [], [], []
    for member in range(cfg.ensemble):
        seed = cfg.seed + split + 1000 * member
        state, epoch, rows = _fit_member(cfg, mcfg, seed, data, evaluate, device,
                                         f"train split {split}" + (f" member {member}" if cfg.ensemble > 1 else ""))
        states.append(state)
        selected.append(epoch)
        log += [{"member": member, **r} for r in rows]

    out_dir = Path(out_dir)
    ckpt = {"state_dicts": states, "model_config": mcfg.to_dict(), "train_config": cfg.__dict__,
            "selected_epoch": selected, "selection": cfg.selection, "split": split,
            "fit_keys": fit_keys, "extra_fit_keys": extra_keys, "val_keys": val_keys, "test_keys": test_keys,
            "feature_schema": {"features": cfg.features, "input_dim": input_dim,
                               "source": str(embeddings_dir)}, "seed": cfg.seed + split}
    with atomic_path(out_dir / "model.pt") as tmp:
        torch.save(ckpt, tmp)
    frame = pd.DataFrame(log)
    if cfg.ensemble == 1:
        frame = frame.drop(columns="member")
    with atomic_path(out_dir / "train_log.csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
    plot_curve(frame, selected, out_dir / "train_curve.png", title=f"split {split} ({cfg.selection})")
    write_text(json.dumps({"selected_epoch": selected, "selection": cfg.selection}) + "\n",
               out_dir / "selection.json")
    return ckpt


SCORER_FORMAT = "llmvs-scorer/1"  # a release checkpoint: a split checkpoint plus what it expects of the LLM
RELEASE_COMMAND = "snakemake --cores all release_scorer"


def _video_order(key: str):
    tail = key.rsplit("_", 1)[-1]
    return (0, int(tail), key) if tail.isdigit() else (1, 0, key)


def _embeddings_provenance(metas: dict[str, dict], input_dim: int, features) -> dict:
    """What the features came from, identical for every video: LLM id (the embeddings' `model`), hidden
    size, columns, dtype, captioner and exemplar seed; a scorer is only valid for states of that LLM."""
    from llmvs.embeddings import feature_names

    columns = feature_names(features)
    out = {}
    for key in ("model", "hidden_size", "dtype", "captioner", "exemplar_seed"):
        seen = {json.dumps(m.get(key)) for m in metas.values()}
        if len(seen) > 1:
            raise LlmvsError(f"the embeddings mix {key} values {', '.join(sorted(seen))}: train on one setting")
        out[key] = metas[next(iter(metas))].get(key)
    hidden = out["hidden_size"] or input_dim // len(columns)
    if hidden * len(columns) != input_dim:
        raise LlmvsError(f"features {columns} are {input_dim}-d, not {len(columns)} x the LLM's {hidden}-d states")
    return {"llm": out["model"], "hidden_size": int(hidden), "columns": columns, "dtype": out["dtype"],
            "captioner": out["captioner"], "exemplar_seed": out["exemplar_seed"]}


def run_results(summary_csv, run: str, datasets) -> dict[str, dict]:
    """The cross-validated row of `run` per dataset from an aggregate `summary.csv`."""
    import pandas as pd

    try:
        frame = pd.read_csv(summary_csv)
    except (OSError, ValueError) as err:
        raise LlmvsError(f"{summary_csv}: not a readable summary CSV ({err})") from None
    if not {"dataset", "row", "source"} <= set(frame.columns):
        raise LlmvsError(f"{summary_csv}: not a summary CSV (needs columns dataset, row, source)")
    out = {}
    for ds in datasets:
        rows = frame[(frame.row == run) & (frame.source == "measured") & (frame.dataset == ds)]
        if rows.empty:
            raise LlmvsError(f"{summary_csv}: no measured row for run {run!r} on {ds} (run the benchmark first)")
        out[ds] = rows.iloc[0].to_dict()
    return out


def save_checkpoint(ckpt: dict) -> bytes:
    """The bytes torch.save writes for `ckpt`, identical for identical contents: through a buffer,
    because a file target puts its own (temporary, random) name inside the zip archive."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


def train_release(sources, cfg: TrainConfig, out, card, summary, *, run: str = "llmvs", threads: int | None = None,
                  captioner_model: str | None = None) -> dict:
    """Fit the aggregator on every video of the given benchmarks: the scorer `llmvs summarize` ships with.

    `sources`: (annotations.parquet, embeddings folder, shots folder or None) per benchmark. A seeded
    `cfg.val_fraction` of each benchmark's videos is held out for checkpoint selection, as the split runs
    do; no video is left for testing, so the card quotes the run's cross-validated scores from `summary`
    (its summary.csv). Writes `out` (.pt) and `card` (Markdown, with the .pt's sha256) together."""
    import hashlib

    import torch

    from llmvs.datasets import read_annotations
    from llmvs.embeddings import feature_matrix
    from llmvs.evaluation import tvsum_user_summaries
    from llmvs.io import atomic_path, write_text
    from llmvs.shots import read_shots

    if cfg.selection == "test_rho":
        raise LlmvsError("selection test_rho needs test videos, and the release scorer has none")
    if cfg.val_fraction <= 0 and cfg.selection != "last":
        raise LlmvsError(f"selection {cfg.selection} needs validation videos (val_fraction > 0)")
    if threads:
        torch.set_num_threads(threads)
    parts = [(read_annotations(a), e, s) for a, e, s in sources]
    for (part, _, _), (source, _, _) in zip(parts, sources):
        if not part:
            raise LlmvsError(f"{source}: no videos")
    datasets = [next(iter(p.values())).dataset for p, _, _ in parts]
    if len(set(datasets)) < len(datasets):
        raise LlmvsError(f"a benchmark is given twice ({', '.join(datasets)})")
    results = run_results(summary, run, datasets)  # before training: the card needs them
    videos, feats, metas, shots, users = {}, {}, {}, {}, {}
    fit_keys, val_keys, counts = [], [], {}
    for (part, embeddings_dir, shots_dir), dataset in zip(parts, datasets):
        keys = sorted(part, key=_video_order)
        val = validation_keys(keys, cfg.val_fraction, cfg.seed)
        counts[dataset] = {"videos": len(keys), "fit": len(keys) - len(val), "val": len(val)}
        for k in keys:
            key, v = f"{dataset}:{k}", part[k]  # video_N names repeat across benchmarks
            emb = load_video_embeddings(embeddings_dir, v)
            videos[key], metas[key] = v, emb.meta
            feats[key] = feature_matrix(emb, cfg.features)
            (val_keys if k in val else fit_keys).append(key)
            if shots_dir and k in val:  # validation correlations are logged whatever the selection rule
                shots[key] = read_shots(Path(shots_dir) / f"{k}.parquet", v.n_frames)
                if dataset == "tvsum":
                    users[key] = tvsum_user_summaries(v.user_scores, shots[key], v.n_frames)
    if cfg.selection in ("val_rho", "val_tau") and any(videos[k].dataset == "summe" and k not in shots
                                                        for k in val_keys):
        raise LlmvsError(f"selection {cfg.selection} on SumMe needs shots (--shots-dir)")
    widths = sorted({x.shape[1] for x in feats.values()})
    if len(widths) > 1:
        raise LlmvsError(f"the embeddings have features of several widths {widths}: train on one LLM")
    input_dim = widths[0]
    provenance = _embeddings_provenance(metas, input_dim, cfg.features)

    device = _device()
    mcfg = model_config(cfg, input_dim)
    targets = {k: videos[k].gtscore for k in feats}
    data = {"x": {k: torch.as_tensor(v, device=device) for k, v in feats.items()},
            "y": {k: torch.as_tensor(v, device=device) for k, v in targets.items()},
            "fit": fit_keys, "eval": {"val": val_keys}}

    evaluate = _evaluator(videos, feats, targets, shots, users, per_dataset=list(counts), loss=cfg.loss)

    states, selected, chosen = [], [], []
    for member in range(cfg.ensemble):
        state, epoch, rows = _fit_member(cfg, mcfg, cfg.seed + 1000 * member, data, evaluate, device,
                                         f"release {run}" + (f" member {member}" if cfg.ensemble > 1 else ""))
        states.append(state)
        selected.append(epoch)
        chosen.append(rows[epoch - 1])
    ckpt = {"format": SCORER_FORMAT, "state_dicts": states, "model_config": mcfg.to_dict(),
            "train_config": dict(cfg.__dict__), "selected_epoch": selected, "selection": cfg.selection,
            "run": run, "datasets": counts, "fit_keys": fit_keys, "val_keys": val_keys,
            "feature_schema": {"features": cfg.features, "input_dim": input_dim, **provenance,
                               "captioner_model": captioner_model},
            "seed": cfg.seed}
    data_bytes = save_checkpoint(ckpt)
    sha256 = hashlib.sha256(data_bytes).hexdigest()
    text = release_card(ckpt, Path(out).name, len(data_bytes), sha256, results, chosen)
    with atomic_path(out) as tmp:  # the card names the checkpoint's sha256: both land, or neither
        tmp.write_bytes(data_bytes)
        write_text(text, card)
    print(f"{out}: {len(fit_keys)} videos fitted, {len(val_keys)} for validation; selected epoch "
          f"{', '.join(map(str, selected))}; sha256 {sha256}")
    return ckpt


def _mean_std(row: dict, metric: str, digits: int) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None or mean != mean:
        return "—"
    fmt = (lambda x: f"{x:.{digits}f}".replace("0.", ".", 1)) if digits == 3 else (lambda x: f"{x:.{digits}f}")
    return fmt(mean) + ("" if std is None or std != std else f" ± {fmt(std)}")


DATASET_NAMES = {"summe": "SumMe", "tvsum": "TVSum"}


def release_card(ckpt: dict, name: str, size: int, sha256: str, results: dict[str, dict], chosen: list[dict]) -> str:
    """The model card of a release checkpoint (Markdown)."""
    from llmvs.embeddings import describe

    fs, tc = ckpt["feature_schema"], ckpt["train_config"]
    stem = Path(name).stem
    columns = ", ".join(f"`{c}` ({describe(c) if c != 'qa' else 'max over the query and answer tokens'})"
                        for c in fs["columns"])
    captioner = f"`{fs['captioner']}`" + (f" ({fs['captioner_model']})" if fs.get("captioner_model") else "")
    lines = [
        f"# {stem}: the default scorer of `llmvs summarize`",
        "",
        f"The global aggregator of LLMVS (the only trained part; the LLM stays frozen), run `{ckpt['run']}`, trained "
        f"on every video of {' and '.join(DATASET_NAMES.get(d, d) for d in ckpt['datasets'])}. `llmvs summarize` "
        "uses it unless `--scorer FILE` or `--zero-shot` is given, and refuses it for another LLM.",
        "",
        "| | |",
        "| --- | --- |",
        f"| file | `{name}`, {size:,} bytes, sha256 `{sha256}` |",
        f"| LLM (embeddings `model`) | {fs['llm']} |",
        f"| LLM states | hidden size {fs['hidden_size']}, {fs['dtype'] or 'dtype not recorded'}; "
        f"input {fs['input_dim']} = {len(fs['columns'])} x {fs['hidden_size']} |",
        f"| feature columns | {columns} |",
        f"| captioner | {captioner}, every 15th frame |",
        f"| in-context examples | the other benchmark's (user videos: TVSum's), seed {fs['exemplar_seed']} |",
        "",
        "## Training data",
        "",
        "| dataset | videos | fitted | validation (seeded, for checkpoint selection) |",
        "| --- | --- | --- | --- |",
    ]
    for ds, c in ckpt["datasets"].items():
        val = ", ".join(k.split(":", 1)[1] for k in ckpt["val_keys"] if k.startswith(f"{ds}:"))
        lines.append(f"| {DATASET_NAMES.get(ds, ds)} | {c['videos']} | {c['fit']} | {c['val']}: {val} |")
    sel = ", ".join(f"{e} of {tc['epochs']}" + (f" (validation loss {r['val_loss']:.4f})" if "val_loss" in r else "")
                    for e, r in zip(ckpt["selected_epoch"], chosen))
    lines += ["", f"Selection: `{ckpt['selection']}`, epoch {sel}; seed {ckpt['seed']}.", "",
              "## Configuration", "",
              "The run's training keys (config.yaml `training` < `training_by_dataset` < `runs."
              f"{ckpt['run']}`), with every default:", "", "```json",
              json.dumps(tc, indent=1, sort_keys=True), "```", "",
              f"## Cross-validated results of run `{ckpt['run']}`", "",
              "The same run trained on each split's training videos and tested on its test videos (the benchmark "
              "protocol; mean ± std over the splits). This model has seen every benchmark video, so it has no test "
              "score of its own.", "",
              "| dataset | splits | Kendall τ | Spearman ρ | F1 % |", "| --- | --- | --- | --- | --- |"]
    for ds, r in results.items():
        lines.append(f"| {DATASET_NAMES.get(ds, ds)} | {int(r.get('n_splits') or 0)} | {_mean_std(r, 'tau', 3)} | "
                     f"{_mean_std(r, 'rho', 3)} | {_mean_std(r, 'f1', 1)} |")
    lines += ["", "## Rebuild", "", "From the repository root, once the benchmark embeddings exist (they are made on the "
              "way; their LLM stage takes about an hour on a 2-core CPU):", "", "```bash", RELEASE_COMMAND, "```", "",
              "Snakemake reruns it when the run's training keys change. Training is seeded: the same inputs on the "
              "same kind of machine give the same bytes (the sha256 above).", ""]
    return "\n".join(lines)


def plot_curve(frame, selected: list[int], out, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmvs.io import atomic_path

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    members = frame.groupby("member") if "member" in frame else [(0, frame)]
    for member, part in members:
        suffix = f" #{member}" if "member" in frame else ""
        for col in [c for c in part.columns if c.endswith("_loss")]:
            ax[0].plot(part.epoch, part[col], label=col + suffix)
        for col in [c for c in part.columns if c.endswith(("_rho", "_tau"))]:
            points = part[["epoch", col]].dropna()  # correlations may be logged every few epochs
            ax[1].plot(points.epoch, points[col], marker=".", label=col + suffix)
    for a, name in zip(ax, ("MSE", "correlation")):
        for epoch in selected:
            a.axvline(epoch, color="grey", ls="--", lw=1)
        a.set_xlabel("epoch")
        a.set_ylabel(name)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
    fig.suptitle(f"{title} — selected epoch {', '.join(map(str, selected))}")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def load_model(path):
    """(the checkpoint's model in eval mode — an ensemble mean when it holds several —, checkpoint)."""
    import torch

    from llmvs.model import Ensemble, GlobalAggregator, ModelConfig

    path = Path(path)
    if not path.exists():
        raise LlmvsError(f"{path}: missing model checkpoint (run the train stage)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        states = ckpt["state_dicts"]
        members = []
        for state in states:
            m = GlobalAggregator(ModelConfig(**ckpt["model_config"]))
            m.load_state_dict(state)
            members.append(m)
    except (OSError, RuntimeError, KeyError, TypeError, EOFError) as err:
        raise LlmvsError(f"{path}: not a readable llmvs checkpoint ({str(err).splitlines()[0]})") from None
    return Ensemble(members).to(_device()).eval(), ckpt
