"""The `train` stage: fit the global aggregator on one split of one benchmark.

AdamW, cosine schedule, one video per step (gradient accumulation optional), fixed and recorded
seeds; AMP (fp16) on CUDA. The loss is MSE against `gtscore` (the paper) or 1 - the correlation
within each video (`loss: pearson`); `target: users` takes it against each annotator's own labels
instead, averaged. `seeds` independent models are trained per split (the same validation videos,
other initialisations), so a results row reports the spread that seeds alone cause. Model selection never looks at test videos: a deterministic validation subset is carved from
the split's training keys (`val_seed`) and the checkpoint is chosen by validation loss (`val_loss`,
the default), validation correlation (`val_rho`, `val_tau`) or simply the last epoch (`last`). The
paper's protocol (`test_rho`: the epoch with the best *test* rho; `shard_rho`: the same over the
rank-0 shard only, the authors' reading, llmvs.score_files.rank0_shard) exists only for comparison, and
its rows are labelled as such. `also_select` keeps, from the same training, the epochs another rule
would choose (the seeds give the same trajectory whatever the rule, so the as_authors reading of a run
needs no second training); their test correlations are then logged too, and never select the model's
own epoch.

Writes `model.pt` (llmvs.checkpoints: one model per seed, model config, feature schema, selection, and
under `also_selected` the models of each `also_select` rule), `train_log.csv` and `train_curve.png`.

    llmvs train --annotations A --embeddings-dir E --splits S --split 0 --run-config run.json --out-dir D
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from llmvs import LlmvsError
from llmvs.checkpoints import device, predict
from llmvs.run_config import TrainConfig, model_config, reads_correlations

CHECKPOINT_FORMAT = "llmvs-checkpoint/2"


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


def folders(embeddings_dir) -> str | list[str]:
    """The embeddings folder(s) a model read, as recorded in its checkpoint."""
    return str(embeddings_dir) if isinstance(embeddings_dir, (str, Path)) else [str(d) for d in embeddings_dir]


def member_seed(cfg: TrainConfig, split: int, seed: int, member: int) -> int:
    """The initialisation seed of ensemble `member` of the `seed`-th model of a split."""
    return cfg.seed + split + 1000 * (seed * cfg.ensemble + member)


def training_targets(video, target: str = "gtscore") -> np.ndarray:
    """What a model is fitted to at a video's steps: `gtscore` [T], or `users` [U, T]: each annotator's own
    labels (SumMe: in that user's summary or not; TVSum: the 1-5 score), leaving out an annotator whose
    labels do not vary over the steps (nothing to rank against)."""
    if target == "gtscore":
        return video.gtscore
    labels = video.user_scores[:, video.picks] if video.dataset == "tvsum" else video.user_summaries[:, video.picks]
    labels = labels.astype(np.float32)
    labels = labels[labels.max(1) > labels.min(1)]
    if not len(labels):
        raise LlmvsError(f"{video.dataset} {video.key}: no annotator's labels vary over its steps (target users)")
    return labels


def _batch(tensors: list, targets: list):
    """Pad videos to one length: (x [B, T, D], y [B, T], padding mask [B, T], True = padding). One video
    with per-annotator targets [U, T] gives y and the mask [U, T]."""
    import torch

    if targets[0].ndim == 2:
        return tensors[0][None], targets[0], torch.zeros(targets[0].shape, dtype=torch.bool, device=targets[0].device)
    n = max(len(t) for t in targets)
    x = tensors[0].new_zeros(len(tensors), n, tensors[0].shape[-1])
    y = targets[0].new_zeros(len(targets), n)
    pad = torch.ones(len(targets), n, dtype=torch.bool, device=x.device)
    for i, (t, g) in enumerate(zip(tensors, targets)):
        x[i, :len(g)], y[i, :len(g)], pad[i, :len(g)] = t, g, False
    return x, y, pad


def step_shots(picks, change_points) -> np.ndarray:
    """int [n_steps]: the shot (row of the inclusive `change_points`) each step's pick falls in."""
    starts = np.asarray(change_points, np.int64).reshape(-1, 2)[:, 0]
    return np.searchsorted(starts, np.asarray(picks, np.int64), side="right") - 1


def video_losses(pred, y, pad, loss: str = "mse", shots=None):
    """Each video's loss, [B], over its unpadded steps (pred, y: [B, T]; pad: [B, T], True = padding).

    `mse`: mean squared error. `pearson`: 1 - the correlation of scores and targets within the video,
    blind to each video's level and scale of importance (the benchmarks rank steps within a video).
    `shot_pearson`: the same over shot means (`shots`: per video the shot of each step, `step_shots`),
    what the knapsack of SumMe's protocol ranks: each shot by the mean score of its steps."""
    keep = (~pad).float()
    n = keep.sum(1)
    if loss == "mse":
        return ((pred - y) ** 2 * keep).sum(1) / n
    if loss == "shot_pearson":
        import torch

        out = []
        for b, seg in enumerate(shots):
            # only the shots that hold a step: a KTS shot shorter than the step (15 frames) may hold none
            seg = torch.unique(seg, return_inverse=True)[1].to(pred.device)
            t, k = len(seg), int(seg.max()) + 1
            count = torch.zeros(k, dtype=pred.dtype, device=pred.device).index_add_(0, seg, torch.ones_like(pred[b, :t]))
            means = [torch.zeros(k, dtype=pred.dtype, device=pred.device).index_add_(0, seg, v[b, :t]) / count
                     for v in (pred, y)]
            out.append(video_losses(means[0][None], means[1][None], torch.zeros(1, k, dtype=torch.bool,
                                                                                   device=pred.device), "pearson")[0])
        return torch.stack(out)
    pc = (pred - (pred * keep).sum(1, keepdim=True) / n[:, None]) * keep
    yc = (y - (y * keep).sum(1, keepdim=True) / n[:, None]) * keep
    return 1 - (pc * yc).sum(1) / ((pc.pow(2).sum(1) * yc.pow(2).sum(1)).sqrt() + 1e-8)


def _evaluator(videos, feats, targets, shots, users, per_dataset=(), loss: str = "mse"):
    """evaluate(model, keys, metrics) -> validation loss, and with `metrics` tau/rho/F1 (means over the
    videos; also per benchmark for `per_dataset`, whose tau/rho follow different protocols)."""
    import torch

    from llmvs.evaluation import video_metrics

    def video_loss(k, pred, y):  # the training loss of one unpadded video, in float64 (mean over annotators)
        y = torch.as_tensor(y, dtype=torch.float64).reshape(-1, len(pred))
        pred = torch.as_tensor(pred, dtype=torch.float64)[None].expand(len(y), -1)
        seg = [torch.as_tensor(step_shots(videos[k].picks, shots[k]))] * len(y) if loss == "shot_pearson" else None
        return float(video_losses(pred, y, torch.zeros_like(pred, dtype=torch.bool), loss, seg).mean())

    def evaluate(model, keys, metrics=True):
        if not keys:
            return {}
        preds = {k: predict(model, feats[k]) for k in keys}  # one forward per video for loss and metrics
        out = {"loss": float(np.mean([video_loss(k, preds[k], targets[k]) for k in keys]))}
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


def selection_key(selection: str, row: dict, epoch: int) -> float:
    """How an epoch's log row ranks under a selection rule (higher is better)."""
    if selection == "last":
        return epoch
    column = {"shard_rho": "test_rho"}.get(selection, selection)
    if column not in row:  # e.g. no validation videos (val_fraction 0): refuse rather than keep epoch 1
        raise LlmvsError(f"selection {selection} reads {column}, which this training does not compute "
                         "(no validation or test videos for it)")
    return -row[column] if column == "val_loss" else row[column]


def _fit_member(cfg: TrainConfig, mcfg, seed: int, data: dict, evaluate, dev, desc: str, also_select=()):
    """Train one model; returns ({rule: (selected state dict, selected epoch)} for `cfg.selection` and each
    of `also_select`, log rows)."""
    import torch
    from tqdm import tqdm

    from llmvs.aggregator import GlobalAggregator, center_steps

    seed_everything(seed)
    model = GlobalAggregator(mcfg).to(dev)
    if mcfg.standardize:  # statistics of the steps as the model sees them
        steps = [center_steps(data["x"][k][None])[0] if mcfg.center else data["x"][k] for k in data["fit"]]
        model.set_standardization(torch.cat(steps))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.t_max or cfg.epochs, eta_min=cfg.eta_min)
    use_amp = cfg.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    order_rng = np.random.default_rng(seed)
    fit = list(data["fit"])
    rules = (cfg.selection, *also_select)
    log, best, kept = [], dict.fromkeys(rules), {}
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
            with torch.autocast(dev.type, dtype=torch.float16, enabled=use_amp):
                pred = model(x, pad if padded else None).float()
            # each video's own loss, averaged over the videos (= batch of one, accumulated); per-annotator
            # targets (one video, y [U, T]): its loss against each annotator, averaged
            rows = len(y) // len(pred)  # target rows per video: 1, or its annotators
            per_video = video_losses(pred.expand(len(y), -1), y, pad, cfg.loss, [data["shots"][fit[j]] for j in idx]
                                     * rows if cfg.loss == "shot_pearson" else None).reshape(len(pred), rows).mean(1)
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
        metrics = any(map(reads_correlations, rules)) or epoch % cfg.metrics_every == 0 \
            or epoch == cfg.epochs
        for part, keys in data["eval"].items():
            row.update({f"{part}_{m}": v for m, v in evaluate(model, keys, metrics).items()})
        log.append(row)
        for rule in rules:
            key = selection_key(rule, row, epoch)
            if best[rule] is None or key > best[rule]:
                best[rule] = key
                kept[rule] = ({n: p.detach().cpu().clone() for n, p in model.state_dict().items()}, epoch)
        if cfg.patience is not None and epoch - kept[cfg.selection][1] >= cfg.patience:
            break
    return kept, log


def fit_models(cfg: TrainConfig, mcfg, data: dict, evaluate, dev, split: int, desc: str, also_select=()):
    """Train `cfg.seeds` models of `cfg.ensemble` members each: ({rule: checkpoint entries} for
    `cfg.selection` and each of `also_select`, log rows)."""
    trained, log = {rule: [] for rule in (cfg.selection, *also_select)}, []
    for s in range(cfg.seeds):
        members = []
        for member in range(cfg.ensemble):
            name = desc + (f" seed {s}" if cfg.seeds > 1 else "") + (f" member {member}" if cfg.ensemble > 1 else "")
            kept, rows = _fit_member(cfg, mcfg, member_seed(cfg, split, s, member), data, evaluate, dev, name,
                                     also_select)
            members.append(kept)
            log += [{"seed": s, "member": member, **r} for r in rows]
        for rule, entries in trained.items():
            entries.append({"seed": member_seed(cfg, split, s, 0), "state_dicts": [m[rule][0] for m in members],
                            "selected_epoch": [m[rule][1] for m in members]})
    return trained, log


def train_split(annotations, embeddings_dir, splits_file, split: int, cfg: TrainConfig, out_dir,
                shots_dir=None, threads: int | None = None, extra_annotations=None, extra_embeddings_dir=None,
                also_select=()) -> dict:
    """Fit `cfg.seeds` models on one split; `extra_*`: the other benchmark (augment: true); `also_select`:
    selection rules whose models are kept beside the run's own (llmvs.checkpoints.load_scorers reads them)."""
    import pandas as pd
    import torch

    from llmvs.datasets import read_annotations
    from llmvs.embeddings import load_video_features
    from llmvs.io import atomic_path, read_splits, write_text
    from llmvs.run_config import SELECTIONS, TEST_SELECTIONS
    from llmvs.score_files import rank0_shard
    from llmvs.shots import read_shots

    if threads:
        torch.set_num_threads(threads)
    videos = read_annotations(annotations)
    train_keys, test_keys = read_splits(splits_file, split)
    missing = sorted(set(train_keys + test_keys) - set(videos))
    if missing:
        raise LlmvsError(f"{annotations}: split {split} names unknown videos {missing[:5]}")
    val_keys = validation_keys(train_keys, cfg.val_fraction, cfg.val_seed + split)
    fit_keys = [k for k in train_keys if k not in val_keys]
    also_select = tuple(dict.fromkeys(r for r in also_select if r != cfg.selection))
    rules = (cfg.selection, *also_select)
    unknown = [r for r in also_select if r not in SELECTIONS]
    if unknown:
        raise LlmvsError(f"also_select {unknown[0]!r}: expected one of {', '.join(SELECTIONS)}")
    test_sets = {"test_rho": test_keys, "shard_rho": rank0_shard(test_keys)}
    reading_test = [r for r in rules if r in test_sets]
    if len(reading_test) > 1:
        raise LlmvsError(f"selections {' and '.join(reading_test)} read different test videos: train them apart")
    if also_select and cfg.patience is not None:  # a stop by the run's own rule would cut the others' epochs
        raise LlmvsError(f"also_select {', '.join(also_select)} needs every epoch: not with patience")
    # test videos only where a selection reads them
    eval_keys = {"val": val_keys, "test": test_sets[reading_test[0]] if reading_test else []}
    needed = fit_keys + val_keys + eval_keys["test"]
    feats = {k: load_video_features(embeddings_dir, videos[k], cfg.features) for k in needed}
    targets = {k: training_targets(videos[k], cfg.target) for k in needed}
    extra_keys = []
    if cfg.augment:  # the augmented setting: every video of the other benchmark joins the fitting set
        if not extra_annotations or not extra_embeddings_dir:
            raise LlmvsError("augment: true needs the other benchmark's annotations and embeddings")
        others = read_annotations(extra_annotations)
        for k, v in others.items():
            feats[f"{v.dataset}:{k}"] = load_video_features(extra_embeddings_dir, v, cfg.features)
            targets[f"{v.dataset}:{k}"] = training_targets(v, cfg.target)
            extra_keys.append(f"{v.dataset}:{k}")
    shots, users = {}, {}
    if shots_dir:  # validation correlations are logged whatever the selection rule
        from llmvs.evaluation import tvsum_user_summaries

        for k in (needed if cfg.loss == "shot_pearson" else val_keys + eval_keys["test"]):
            shots[k] = read_shots(Path(shots_dir) / f"{k}.parquet", videos[k].n_frames)
            if videos[k].dataset == "tvsum" and k not in fit_keys:  # the annotators' summaries stay fixed
                users[k] = tvsum_user_summaries(videos[k].user_scores, shots[k], videos[k].n_frames)
    correlated = [r for r in rules if reads_correlations(r)]
    if correlated and videos[needed[0]].dataset == "summe" and not shots:
        raise LlmvsError(f"selection {correlated[0]} on SumMe needs shots (--shots-dir)")
    if cfg.loss == "shot_pearson" and (not shots or extra_keys or cfg.batch_videos > 1):
        raise LlmvsError("loss shot_pearson needs the shots (--shots-dir), one video per batch and no augment")

    dev = device()
    input_dim = next(iter(feats.values())).shape[1]
    mcfg = model_config(cfg, input_dim)
    data = {"x": {k: torch.as_tensor(v, device=dev) for k, v in feats.items()},
            "y": {k: torch.as_tensor(v, device=dev) for k, v in targets.items()},
            "fit": fit_keys + extra_keys, "eval": eval_keys,
            "shots": {k: torch.as_tensor(step_shots(videos[k].picks, c), device=dev) for k, c in shots.items()}}
    evaluate = _evaluator(videos, feats, targets, shots, users, loss=cfg.loss)
    kept, log = fit_models(cfg, mcfg, data, evaluate, dev, split, f"train split {split}", also_select)
    trained = kept[cfg.selection]

    out_dir = Path(out_dir)
    ckpt = {"format": CHECKPOINT_FORMAT, "seeds": trained, "model_config": mcfg.to_dict(),
            "train_config": dict(cfg.__dict__), "selection": cfg.selection, "split": split,
            "fit_keys": fit_keys, "extra_fit_keys": extra_keys, "val_keys": val_keys, "test_keys": test_keys,
            "feature_schema": {"features": cfg.features, "input_dim": input_dim, "source": folders(embeddings_dir)}}
    if also_select:
        ckpt["also_selected"] = {r: kept[r] for r in also_select}
    with atomic_path(out_dir / "model.pt") as tmp:
        torch.save(ckpt, tmp)
    frame = pd.DataFrame(log)
    frame = frame.drop(columns=[c for c, n in (("seed", cfg.seeds), ("member", cfg.ensemble)) if n == 1])
    with atomic_path(out_dir / "train_log.csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
    selected = [e for t in trained for e in t["selected_epoch"]]
    # the test videos an also-selected rule reads are logged, not drawn beside the run's own validation
    shown = frame if cfg.selection in TEST_SELECTIONS else frame[[c for c in frame if not c.startswith("test_")]]
    plot_curve(shown, selected, out_dir / "train_curve.png", title=f"split {split} ({cfg.selection})")
    also = {r: [e for t in kept[r] for e in t["selected_epoch"]] for r in also_select}
    write_text(json.dumps({"selected_epoch": selected, "selection": cfg.selection,
                           **({"also_selected": also} if also else {})}) + "\n", out_dir / "selection.json")
    return ckpt


def plot_curve(frame, selected: list[int], out, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmvs.io import atomic_path

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    keys = [c for c in ("seed", "member") if c in frame]
    for ids, part in frame.groupby(keys) if keys else [((), frame)]:
        suffix = "".join(f" {k} {i}" for k, i in zip(keys, ids if isinstance(ids, tuple) else (ids,)))
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
