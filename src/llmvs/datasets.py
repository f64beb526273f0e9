"""Benchmark ground truth (SumMe, TVSum) rebuilt from the original annotation files.

Everything the method and the evaluation need comes from the shipped `data/` folder (or any
`data_dir` with the same layout): per video the key `video_N`, its name or YouTube id, frame
count, fps, the picks (every 15th frame), `gtscore` at the picks, and the raw per-user
annotations. The `video_N` <-> name mappings live here and nowhere else.

    from llmvs.datasets import load_dataset, load_splits
    videos = load_dataset("tvsum")            # {"video_1": Video(...), ...}
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmvs import LlmvsError

DATASETS = ("summe", "tvsum")
DATASET_NAMES = {"summe": "SumMe", "tvsum": "TVSum"}  # as the papers write them
OTHER_BENCHMARK = {"summe": "tvsum", "tvsum": "summe"}  # where in-context examples and extra data come from
STEP = 15  # benchmark convention: one step per 15 frames, picks = 0, 15, 30, ...


def default_data_dir() -> Path:
    """`$LLMVS_DATA_DIR`, else the `data/` folder shipped beside `src/`."""
    env = os.environ.get("LLMVS_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data"


def picks_for(n_frames: int, step: int = STEP) -> np.ndarray:
    return np.arange(0, n_frames, step, dtype=np.int64)


@dataclass(frozen=True)
class Video:
    """One annotated benchmark video.

    `user_scores` holds the raw annotations at full frame rate, one row per user:
    SumMe: the GT `user_score` columns (0 = not selected, k > 0 = in that user's summary);
    TVSum: each annotator's 1-5 importance score per frame.
    """

    dataset: str
    key: str
    name: str
    n_frames: int
    fps: float
    picks: np.ndarray
    gtscore: np.ndarray
    user_scores: np.ndarray
    title: str = ""
    user_summary: np.ndarray | None = None  # bool [n_users, n_frames]: an eccv16 h5's, when read from one

    @property
    def n_steps(self) -> int:
        return len(self.picks)

    @property
    def caption_key(self) -> str:
        """Key of this video in the shipped caption JSON files."""
        return self.name.replace(" ", "_") if self.dataset == "summe" else self.name

    @property
    def user_summaries(self) -> np.ndarray:
        """SumMe: bool [n_users, n_frames], frame in that user's summary."""
        if self.dataset != "summe":
            raise ValueError("TVSum user summaries depend on shots: use tvsum_user_summaries()")
        return self.user_scores > 0


def _check_dataset(name: str) -> None:
    if name not in DATASETS:
        raise LlmvsError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")


def _require(path: Path) -> Path:
    if not path.exists():
        raise LlmvsError(f"{path}: missing benchmark file (is data_dir right?)")
    return path


def _read_tsv(path: Path) -> list[dict]:
    with open(_require(path), newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _scale01(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return np.zeros_like(x, np.float32) if hi == lo else ((x - lo) / (hi - lo)).astype(np.float32)


def _load_summe(data_dir: Path) -> dict[str, Video]:
    from scipy.io import loadmat

    videos = {}
    for row in _read_tsv(data_dir / "summe" / "summe-info.derived.tsv"):
        gt = loadmat(_require(data_dir / "summe" / row["gt_file"]))
        n_frames = int(np.asarray(gt["nFrames"]).item())
        user_score = np.asarray(gt["user_score"])
        gt_score = np.asarray(gt["gt_score"], np.float32).ravel()
        if user_score.shape[0] != n_frames or gt_score.shape[0] != n_frames:
            raise LlmvsError(f"{row['gt_file']}: annotations do not have nFrames={n_frames} rows")
        picks = picks_for(n_frames)
        videos[row["h5_key_assumed"]] = Video(
            dataset="summe", key=row["h5_key_assumed"], name=row["video_name"],
            n_frames=n_frames, fps=float(np.asarray(gt["FPS"]).item()), picks=picks,
            gtscore=gt_score[picks],  # already the fraction of users, in [0, 1]
            user_scores=np.ascontiguousarray(user_score.T), title=row["video_name"])
    return videos


@functools.lru_cache(maxsize=4)
def _tvsum_annotations(path: Path) -> dict[str, np.ndarray]:
    """YouTube id -> uint8 [20, n_frames] annotator scores, in file order."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows: dict[str, list[np.ndarray]] = {}
    with opener(_require(path), "rt") as f:
        for n, line in enumerate(f, 1):
            vid, _category, scores = line.rstrip("\n").split("\t")
            try:
                row = np.fromstring(scores, dtype=np.int64, sep=",")  # 5x faster than a list of str
            except ValueError:
                row = np.zeros(0)
            if row.size != scores.count(",") + 1 or not ((row >= 1) & (row <= 5)).all():
                raise LlmvsError(f"{path}: line {n} ({vid}) holds a score that is not an integer from 1 to 5")
            rows.setdefault(vid, []).append(row.astype(np.uint8))
    return {vid: np.stack(r) for vid, r in rows.items()}


def _load_tvsum(data_dir: Path) -> dict[str, Video]:
    tsv = data_dir / "tvsum" / "ydata-tvsum50-anno.tsv"
    anno = _tvsum_annotations(tsv if tsv.exists() else tsv.with_suffix(".tsv.gz"))
    videos = {}
    for row in _read_tsv(data_dir / "tvsum" / "ydata-tvsum50-info.derived.tsv"):
        scores = anno.get(row["video_id"])
        if scores is None:
            raise LlmvsError(f"{tsv}: no annotations for {row['video_id']}")
        n_frames = scores.shape[1]
        if n_frames != int(row["n_frames"]):
            raise LlmvsError(f"{tsv}: {row['video_id']} has {n_frames} frames, info says {row['n_frames']}")
        picks = picks_for(n_frames)
        videos[row["h5_key_assumed"]] = Video(
            dataset="tvsum", key=row["h5_key_assumed"], name=row["video_id"],
            n_frames=n_frames, fps=n_frames / float(row["length_sec"]), picks=picks,
            # mean of the 20 annotators at the picks, min-max scaled per video
            gtscore=_scale01(scores[:, picks].mean(axis=0, dtype=np.float64)),
            user_scores=scores, title=row["title"])
    return videos


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, data_dir: Path) -> dict[str, Video]:
    return _load_summe(data_dir) if name == "summe" else _load_tvsum(data_dir)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Video]:
    """All videos of a benchmark, keyed `video_N` in numeric order."""
    _check_dataset(name)
    return _load_cached(name, Path(data_dir or default_data_dir()).resolve())


def load_splits(name: str, data_dir: str | os.PathLike | None = None) -> list[dict[str, list[str]]]:
    """The five standard splits: [{"train_keys": [...], "test_keys": [...]}, ...]."""
    _check_dataset(name)
    path = _require(Path(data_dir or default_data_dir()) / "splits" / f"{name}_splits.json")
    splits = json.loads(path.read_text())
    for i, s in enumerate(splits):
        if set(s["train_keys"]) & set(s["test_keys"]):
            raise LlmvsError(f"{path}: split {i} has videos in both train and test")
    return splits


def load_caption_json(path: str | os.PathLike) -> dict[str, dict]:
    """Read a JSON file of the shipped data (`.json` or `.json.gz`): captions, change points."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(_require(path), "rt") as f:
            return json.load(f)
    except (ValueError, OSError) as err:
        raise LlmvsError(f"{path}: not a readable JSON file ({err})") from None


def shipped_captions_path(name: str, captioner: str = "blip", data_dir=None) -> Path:
    return Path(data_dir or default_data_dir()) / "captions" / captioner / f"{name}_captions.json.gz"


def kts_path(name: str, data_dir=None) -> Path:
    """The eccv16 KTS change points of a benchmark (`kts_change_points.json`, or its `.gz`)."""
    _check_dataset(name)
    plain = Path(data_dir or default_data_dir()) / name / "kts_change_points.json"
    return plain if plain.exists() else plain.with_name(plain.name + ".gz")


def load_change_points(path, videos: dict[str, Video]) -> dict[str, np.ndarray]:
    """`video_N` -> int [n_shots, 2] inclusive shots from a change-point JSON (the shipped KTS layout:
    `{"videos": {name: {"h5_key_assumed", "n_frames", "change_points"}}}`, keyed as the caption files are),
    each checked against the annotations: same key, same `n_frames`, shots that tile the frames."""
    from llmvs.evaluation import check_shots

    path = Path(path)
    try:
        entries = load_caption_json(path)["videos"]
    except (LlmvsError, KeyError, TypeError) as err:
        raise LlmvsError(f"{path}: not a change-point JSON ({err})") from None
    out = {}
    for key, v in videos.items():
        entry = entries.get(v.caption_key)
        if entry is None:
            raise LlmvsError(f"{path}: no change points for {key} ({v.caption_key})")
        if entry.get("h5_key_assumed", key) != key:
            raise LlmvsError(f"{path}: {v.caption_key} is {entry['h5_key_assumed']} there, but {key} in the annotations")
        if int(entry.get("n_frames", v.n_frames)) != v.n_frames:
            raise LlmvsError(f"{path}: {key} ({v.caption_key}) has {entry['n_frames']} frames there, "
                             f"but {v.n_frames} in the annotations")
        try:
            out[key] = check_shots(entry["change_points"], v.n_frames)
        except (LlmvsError, KeyError, TypeError, ValueError) as err:
            raise LlmvsError(f"{path}: {key} ({v.caption_key}): change points do not tile its {v.n_frames} frames "
                             f"({err})") from None
    return out


# --- the `annotations` stage: one Parquet row per video -------------------------------------

def annotations_table(name: str, data_dir=None, h5=None):
    """One row per video; with an eccv16 `h5`, only the h5's videos, each checked against the annotation files
    (llmvs.h5.read_eccv16), its `gtscore` as the training target and its `user_summary` as the F1 ground truth."""
    import pyarrow as pa

    videos = list(load_dataset(name, data_dir).values())
    if h5:
        from dataclasses import replace

        from llmvs.h5 import read_eccv16

        groups = read_eccv16(h5, name, data_dir=data_dir, features=False)
        videos = [replace(v, gtscore=groups[v.key].gtscore, user_summary=groups[v.key].user_summary)
                  for v in videos if v.key in groups]
    columns = {
        "key": [v.key for v in videos],
        "name": [v.name for v in videos],
        "title": [v.title for v in videos],
        "n_frames": pa.array([v.n_frames for v in videos], pa.int64()),
        "fps": pa.array([v.fps for v in videos], pa.float64()),
        "picks": pa.array([v.picks for v in videos], pa.list_(pa.int64())),
        "gtscore": pa.array([v.gtscore for v in videos], pa.list_(pa.float32())),
        "user_scores": pa.array([list(v.user_scores) for v in videos], pa.list_(pa.list_(pa.uint8()))),
    }
    if h5:
        columns["user_summary"] = pa.array([list(v.user_summary) for v in videos], pa.list_(pa.list_(pa.bool_())))
    return pa.table(columns)


def write_annotations(name: str, out, data_dir=None, h5=None) -> None:
    from llmvs.io import write_parquet

    meta = {"dataset": name, **({"h5": str(h5), "gtscore": f"the h5's gtscore ({h5})"} if h5 else {})}
    write_parquet(annotations_table(name, data_dir, h5), out, metadata=meta)


def _nested_rows(column) -> list[np.ndarray]:
    """A list<list<x>> column as one [rows, n] array per table row, without a Python object per value."""
    col = column.combine_chunks()
    inner = col.flatten()
    values = inner.flatten().to_numpy(zero_copy_only=False)
    outer, lengths = col.offsets.to_numpy(), inner.value_lengths().to_numpy()
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return [values[starts[a]:starts[b]].reshape(b - a, -1) for a, b in zip(outer[:-1], outer[1:])]


def read_annotations(path) -> dict[str, Video]:
    """Videos from an `annotations.parquet` written by `write_annotations`."""
    from llmvs.io import read_parquet, table_metadata

    table = read_parquet(path, "annotations")
    dataset = table_metadata(table).get("dataset")
    if dataset not in DATASETS:
        raise LlmvsError(f"{path}: no dataset name in the file metadata")
    summaries = None
    if "user_summary" in table.column_names:  # from an eccv16 h5 (write_annotations with h5)
        summaries = _nested_rows(table.column("user_summary"))
        table = table.drop_columns(["user_summary"])
    videos = {}
    for i, row in enumerate(table.to_pylist()):
        videos[row["key"]] = Video(
            dataset=dataset, key=row["key"], name=row["name"], n_frames=row["n_frames"], fps=row["fps"],
            picks=np.asarray(row["picks"], np.int64), gtscore=np.asarray(row["gtscore"], np.float32),
            user_scores=np.asarray(row["user_scores"], np.uint8), title=row["title"],
            user_summary=None if summaries is None else summaries[i].astype(bool))
    return videos


def annotation_files(name: str, data_dir=None) -> list[Path]:
    """Every file `load_dataset(name)` reads (so a workflow can declare them as inputs)."""
    _check_dataset(name)
    root = Path(data_dir or default_data_dir())
    if name == "summe":
        info = root / "summe" / "summe-info.derived.tsv"
        return [info] + [root / "summe" / row["gt_file"] for row in _read_tsv(info)]
    tsv = root / "tvsum" / "ydata-tvsum50-anno.tsv"
    return [tsv if tsv.exists() else tsv.with_suffix(".tsv.gz"), root / "tvsum" / "ydata-tvsum50-info.derived.tsv"]
