"""`llmvs evaluate-scores`: any method's importance scores, evaluated under the benchmark protocol.

Input: one score vector per video, keyed `video_N` or by the video's name (SumMe: its name, spaces or
underscores; TVSum: its YouTube id), from
- CSV: columns `video, score` (rows in frame order) or `video, frame_index, score`;
- `.npz` (one array per video) or `.npy` (a dict saved with np.save; that is a pickle: load only files
  you trust);
- `.h5`/`.hdf5`: one dataset per video at the root.
n_steps values (one per 15th frame: picks 0, 15, ...) are step scores; n_frames values are frame
scores. The length decides and the output says which. Frame scores enter the knapsack as they are
(each shot's mean over its own frames) and are taken at frames 0, 15, ... for the TVSum correlation.

Per video: tau (Kendall tau-b) and rho (Spearman) as LLMVS computes them, F1 (max over users on
SumMe, mean on TVSum), the authors' knapsack over the shipped KTS shots (or an h5's change points).
Averages, beside a seeded `random` control computed the same way:
- honest: the mean over each split's test videos (all of them, one process), then over the 5 splits;
- as_authors: the rank-0 shard only (test keys 0, 5, ... of each split: SumMe the first, TVSum #0 and
  #5; official-protocol §8.2). The authors keep the checkpoint with the best test rho of ~400
  evaluations; a score file has no checkpoints, so the scores' row is the shard average, and the
  random row is the best of K random draws per split (by shard rho).

    report = evaluate_scores("scores.csv", "summe"); print(format_report(report))
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmvs import LlmvsError
from llmvs.datasets import DATASET_NAMES

WORLD_SIZE = 5  # the authors' GPUs: rank 0 evaluates test keys 0, 5, 10, ... of a split
METRICS = ("tau", "rho", "f1")


# --- reading --------------------------------------------------------------------------------

def _read_csv(path: Path) -> dict:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if "video" not in cols or "score" not in cols:
            raise LlmvsError(f"{path}: a CSV of scores needs columns video, score (and optionally frame_index); "
                             f"it has {', '.join(cols) or 'none'}")
        rows: dict[str, list] = {}
        for line, row in enumerate(reader, 2):
            try:
                score = float(row["score"])
                index = int(row["frame_index"]) if "frame_index" in cols else None
            except (TypeError, ValueError):
                raise LlmvsError(f"{path}: line {line}: score {row['score']!r} or frame_index is not a "
                                 "number") from None
            rows.setdefault(row["video"], []).append((index, score))
    out = {}
    for key, pairs in rows.items():
        if "frame_index" in cols:
            pairs.sort(key=lambda p: p[0])
            out[key] = (np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs]))
        else:
            out[key] = (None, np.array([p[1] for p in pairs]))
    return out


def read_score_file(path) -> dict[str, tuple[np.ndarray | None, np.ndarray]]:
    """Stored key -> (frame_index or None, scores as stored)."""
    path = Path(path)
    if not path.exists():
        raise LlmvsError(f"{path}: missing score file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_csv(path)
        if suffix == ".npz":
            with np.load(path) as z:
                return {k: (None, z[k]) for k in z.files}
        if suffix == ".npy":
            obj = np.load(path, allow_pickle=True)
            obj = obj.item() if obj.dtype == object and obj.shape == () else obj
            if not isinstance(obj, dict):
                raise LlmvsError(f"{path}: a .npy score file must hold a dict {{video: scores}} (np.save of a dict)")
            return {str(k): (None, np.asarray(v)) for k, v in obj.items()}
        if suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                out = {}
                for k, v in f.items():
                    if not isinstance(v, h5py.Dataset):
                        raise LlmvsError(f"{path}: {k} is a group; expected one dataset of scores per video")
                    out[k] = (None, v[()])
                return out
    except (OSError, ValueError) as err:
        raise LlmvsError(f"{path}: not a readable score file ({' '.join(str(err).split())[:200]})") from None
    raise LlmvsError(f"{path}: unknown score file type {suffix or '(none)'}: use .csv, .npz, .npy or .h5")


def _lookup(videos) -> dict[str, str]:
    """Every accepted name of a video -> its key: `video_N`, its name, spaces and underscores alike."""
    names = {}
    for key, v in videos.items():
        for name in (key, v.name, v.name.replace(" ", "_"), v.name.replace("_", " ")):
            names[name] = key
    return names


def match_scores(raw: dict, videos, path) -> dict[str, tuple[np.ndarray, str]]:
    """`video_N` -> (float64 scores, "step" | "frame"), each checked against its video."""
    lookup, dataset = _lookup(videos), next(iter(videos.values())).dataset
    out, given = {}, {}
    for stored, (index, scores) in raw.items():
        key = lookup.get(str(stored))
        if key is None:
            raise LlmvsError(f"{path}: unknown video {stored!r}: expected video_1 ... video_{len(videos)} or a "
                             f"{DATASET_NAMES[dataset]} video name")
        v = videos[key]
        if key in given:
            raise LlmvsError(f"{path}: {key} ({v.name}) is given twice, as {given[key]!r} and {stored!r}")
        given[key] = stored
        s = np.asarray(scores)
        s = s.reshape(-1) if s.ndim > 1 and s.size == max(s.shape) else s  # (n, 1) and (1, n) vectors
        if s.ndim != 1 or not np.issubdtype(s.dtype, np.number):
            raise LlmvsError(f"{path}: {key} ({v.name}): scores of shape {s.shape} and type {s.dtype}, "
                             "expected one number per step or per frame")
        if index is not None:
            kind = "step" if np.array_equal(index, v.picks) else "frame" if np.array_equal(
                index, np.arange(v.n_frames)) else None
            if kind is None:
                raise LlmvsError(f"{path}: {key} ({v.name}): frame_index must be the picks 0, 15, ... < "
                                 f"{v.n_frames} (step scores) or every frame 0 ... {v.n_frames - 1}")
        else:
            kind = "step" if len(s) == v.n_steps else "frame" if len(s) == v.n_frames else None
            if kind is None:
                raise LlmvsError(f"{path}: {key} ({v.name}): {len(s)} scores, expected {v.n_steps} step scores "
                                 f"(one per 15th frame) or {v.n_frames} frame scores")
        bad = int((~np.isfinite(s.astype(np.float64))).sum())
        if bad:
            raise LlmvsError(f"{path}: {key} ({v.name}): {bad} NaN/inf score(s)")
        out[key] = (s.astype(np.float64), kind)
    return out


# --- the protocol ---------------------------------------------------------------------------

def rank0_shard(test_keys: list[str]) -> list[str]:
    """The test keys rank 0 of the authors' 5-GPU run evaluates (a non-shuffling DistributedSampler)."""
    return list(test_keys[::WORLD_SIZE])


def random_scores(key: str, n_steps: int, seed: int = 0) -> np.ndarray:
    """The seeded `random` control, the same draw as `llmvs evaluate --method random` (scoring.py)."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())]).random(n_steps)


def checkpoint_draws(key: str, n_steps: int, seed: int, split: int, k: int) -> np.ndarray:
    """[k, n_steps]: the random control's stand-ins for k checkpoints of one split's run."""
    return np.random.default_rng([seed, zlib.crc32(key.encode()), split + 1]).random((k, n_steps))


def protocol_metrics(video, scores: np.ndarray, kind: str, cps: np.ndarray | None, users=None) -> dict:
    """tau, rho and (with shots) F1 of one video's step or frame scores (`kind`), as `video_metrics`."""
    from llmvs.evaluation import video_metrics

    return video_metrics(video, scores, cps, users, frame_level=kind == "frame")


def load_shots(dataset, videos, keys, *, h5=None, shots="kts", shots_dir=None, data_dir=None):
    """(key -> shots, key -> TVSum user summaries or None, a line saying where the shots came from)."""
    from llmvs.evaluation import tvsum_user_summaries

    if shots not in ("kts", "captions"):
        raise LlmvsError(f"unknown shots {shots!r}: expected kts or captions")
    users = {}
    if h5:
        if shots != "kts":
            raise LlmvsError(f"{h5}: --h5 brings its own change points; leave out --shots {shots}")
        from llmvs.h5 import read_eccv16

        groups = read_eccv16(h5, dataset, data_dir=data_dir, keys=keys, features=False)
        cps = {k: g.change_points for k, g in groups.items()}
        # TVSum F1 reads the h5's user summaries; SumMe's equal the GT user_score > 0 (read_eccv16 checks)
        users = {k: g.user_summary for k, g in groups.items()} if dataset == "tvsum" else {}
        where = f"the change points and user summaries of {h5}"
    elif shots == "kts":
        from llmvs.datasets import kts_path, load_change_points

        path = kts_path(dataset, data_dir)
        cps = load_change_points(path, {k: videos[k] for k in keys})
        where = f"the eccv16 KTS change points ({path})"
    else:
        if not shots_dir:
            raise LlmvsError("--shots captions needs --shots-dir: a folder of shots Parquet files ({video_N}.parquet "
                             "from `llmvs shots`)")
        from llmvs.shots import read_shots

        cps = {k: read_shots(Path(shots_dir) / f"{k}.parquet", videos[k].n_frames) for k in keys}
        where = f"the shots in {shots_dir}"
    if dataset == "tvsum":
        for k in keys:
            if k not in users:
                users[k] = tvsum_user_summaries(videos[k].user_scores, cps[k], videos[k].n_frames)
    return cps, users, where


@dataclass
class ScoreReport:
    path: str
    dataset: str
    shots: str
    per_video: list[dict]
    rows: list[dict] = field(default_factory=list)
    checkpoints: int = 400
    seed: int = 0


def _mean_std(values: list[dict]) -> dict:
    out = {}
    for m in METRICS:
        xs = [v[m] for v in values if m in v]
        if xs:
            out[m], out[f"{m}_std"] = float(np.mean(xs)), float(np.std(xs))
    return out


def _shard_means(per_key: dict, keys: list[str]) -> dict:
    return {m: float(np.mean([per_key[k][m] for k in keys])) for m in METRICS if m in per_key[keys[0]]}


def tvsum_rhos(draws: np.ndarray, annotator_frame_scores) -> np.ndarray:
    """[k]: the TVSum rho (Spearman per annotator at frames 0, 15, ..., mean over annotators) of each row
    of `draws`, as ranks and one matrix product; equals `tvsum_correlation`'s rho to rounding. Used only
    to pick the best of k draws; the chosen draw's numbers come from `protocol_metrics`."""
    from scipy.stats import rankdata

    def unit_ranks(x):
        r = rankdata(x, axis=1)
        r -= r.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(r, axis=1, keepdims=True)
        return np.divide(r, norm, out=np.zeros_like(r), where=norm > 0)  # constant: rho 0, as rank_correlation

    annot = np.asarray(annotator_frame_scores, dtype=np.float64)[:, ::15]
    return (unit_ranks(np.asarray(draws, dtype=np.float64)) @ unit_ranks(annot).T).mean(axis=1)


def best_random_draw(videos, cps, shard: list[str], seed: int, split: int, k: int) -> dict[str, np.ndarray]:
    """Of k random draws (checkpoints) of one split, the one with the best rank-0 shard rho, as the
    authors' ModelCheckpoint(monitor=val_sRho) keeps: key -> its step scores, for every key of `shard`."""
    draws = {key: checkpoint_draws(key, videos[key].n_steps, seed, split, k) for key in shard}
    if videos[shard[0]].dataset == "tvsum":
        rhos = np.mean([tvsum_rhos(draws[key], videos[key].user_scores) for key in shard], axis=0)
    else:  # SumMe's rho goes through the knapsack of each draw
        rhos = [np.mean([protocol_metrics(videos[key], draws[key][i], "step", cps[key])["rho"] for key in shard])
                for i in range(k)]
    best = int(np.argmax(rhos))  # the first of equal bests: a checkpoint that merely ties is not saved
    return {key: draws[key][best] for key in shard}


def _best_random(videos, cps, users, splits, seed: int, k: int) -> list[dict]:
    """Per split: the shard means of `best_random_draw`."""
    from tqdm import tqdm

    out = []
    for s, split in enumerate(tqdm(splits, desc=f"random: best of {k} per split", unit="split")):
        shard = rank0_shard(split["test_keys"])
        best = best_random_draw(videos, cps, shard, seed, s, k)
        out.append(_shard_means({key: protocol_metrics(videos[key], best[key], "step", cps[key], users.get(key))
                                 for key in shard}, shard))
    return out


def evaluate_scores(path, dataset: str, *, h5=None, shots: str = "kts", shots_dir=None, seed: int = 0,
                    checkpoints: int = 400, data_dir=None) -> ScoreReport:
    from llmvs.datasets import load_dataset, load_splits

    if checkpoints < 1:
        raise LlmvsError(f"--checkpoints must be at least 1, got {checkpoints}")
    videos = load_dataset(dataset, data_dir)
    splits = load_splits(dataset, data_dir)
    scores = match_scores(read_score_file(path), videos, path)
    tested = {k for s in splits for k in s["test_keys"]}
    missing = sorted(tested - set(scores), key=lambda k: int(k.rsplit("_", 1)[1]))
    if missing:
        listed = ", ".join(f"{k} ({videos[k].name})" for k in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise LlmvsError(f"{path}: no scores for {len(missing)} test video(s) of the 5 splits: {listed} "
                         "(the honest mean needs every test video)")
    keys = sorted(scores, key=lambda k: int(k.rsplit("_", 1)[1]))
    cps, users, where = load_shots(dataset, videos, keys, h5=h5, shots=shots, shots_dir=shots_dir, data_dir=data_dir)
    per_key, rand = {}, {}
    for k in keys:
        v = videos[k]
        per_key[k] = protocol_metrics(v, scores[k][0], scores[k][1], cps[k], users.get(k))
        rand[k] = protocol_metrics(v, random_scores(k, v.n_steps, seed), "step", cps[k], users.get(k))
    per_video = [{"video": k, "name": videos[k].name, "kind": scores[k][1], "n_steps": videos[k].n_steps,
                  "n_frames": videos[k].n_frames,
                  "test_splits": ";".join(str(i) for i, s in enumerate(splits) if k in s["test_keys"]),
                  **per_key[k], **{f"random_{m}": x for m, x in rand[k].items()}} for k in keys]
    report = ScoreReport(str(path), dataset, where, per_video, checkpoints=checkpoints, seed=seed)
    for method, per in (("scores", per_key), ("random", rand)):
        honest = [_shard_means(per, s["test_keys"]) for s in splits]
        report.rows.append({"method": method, "reading": "honest", **_mean_std(honest)})
    report.rows.append({"method": "scores", "reading": "as_authors",
                        **_mean_std([_shard_means(per_key, rank0_shard(s["test_keys"])) for s in splits])})
    report.rows.append({"method": "random", "reading": "as_authors",
                        **_mean_std(_best_random(videos, cps, users, splits, seed, checkpoints))})
    return report


# --- output ---------------------------------------------------------------------------------

def _cell(row: dict) -> str:
    def one(m, digits):
        if m not in row:
            return "-"
        fmt = f"{{:.{digits}f}}"
        return f"{fmt.format(row[m])} ± {fmt.format(row[m + '_std'])}"
    return f"{one('tau', 3):>15} {one('rho', 3):>15} {one('f1', 1):>13}"


def format_report(r: ScoreReport) -> str:
    kinds = [v["kind"] for v in r.per_video]
    n_step, n_frame = kinds.count("step"), kinds.count("frame")
    shard = "the first test key" if r.dataset == "summe" else "test keys #0 and #5"
    lines = [
        f"{r.path}: {len(kinds)} {DATASET_NAMES[r.dataset]} videos: {n_step} with step scores (one per 15th frame), "
        f"{n_frame} with frame scores (one per frame; shot means over every frame, TVSum tau/rho at frames 0, 15, ...)",
        f"shots: {r.shots}; summary: 0/1 knapsack of 15 % of the frames; F1: "
        f"{'max' if r.dataset == 'summe' else 'mean'} over users",
        "tau: Kendall tau-b, rho: Spearman, as LLMVS computes them ("
        + ("knapsack summary vs the fraction of users selecting each frame)" if r.dataset == "summe"
           else "scores vs each annotator's scores at frames 0, 15, ..., mean over the 20 annotators)"),
        "",
        f"{'video':<9} {'name':<28} {'test in':<8} {'tau':>7} {'rho':>7} {'F1':>6} | {'random tau':>10} "
        f"{'rho':>7} {'F1':>6}",
    ]
    for v in r.per_video:
        lines.append(f"{v['video']:<9} {v['name'][:28]:<28} {v['test_splits'] or '-':<8} {v['tau']:>7.3f} "
                     f"{v['rho']:>7.3f} {v['f1']:>6.1f} | {v['random_tau']:>10.3f} {v['random_rho']:>7.3f} "
                     f"{v['random_f1']:>6.1f}")
    rows = {(x["method"], x["reading"]): x for x in r.rows}
    lines += ["", f"{'mean ± std over the 5 splits':<47} {'tau':>15} {'rho':>15} {'F1':>13}",
              f"{'honest (every test video)':<47} {_cell(rows['scores', 'honest'])}",
              f"{f'  random (seed {r.seed}), the reference':<47} {_cell(rows['random', 'honest'])}",
              f"{f'as_authors (rank-0 shard: {shard})':<47} {_cell(rows['scores', 'as_authors'])}",
              f"{f'  random, best of {r.checkpoints} draws per split':<47} {_cell(rows['random', 'as_authors'])}",
              "",
              "as_authors: a score file has no checkpoints, so its row is only the rank-0 shard average; the",
              f"authors keep the best test rho of ~400 evaluations, so random's row is the best of {r.checkpoints} "
              "draws per split by shard rho.",
              "Compare each row with the random row beside it, not with the published numbers alone."]
    return "\n".join(lines)


def write_per_video(r: ScoreReport, out) -> None:
    import pandas as pd

    from llmvs.io import atomic_path

    with atomic_path(out) as tmp:
        pd.DataFrame(r.per_video).to_csv(tmp, index=False, float_format="%.6f")
