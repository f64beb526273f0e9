"""The field's h5 formats: the eccv16 benchmark files and the LLMVS authors' released LLM states.

eccv16 (`eccv16_dataset_{summe,tvsum}_google_pool5.h5`, the files every video-summarization paper
since Zhang et al. 2016 trains and evaluates on): one group `video_N` per video with `features`
(n_steps, 1024) GoogLeNet pool5, `gtscore` (n_steps,), `user_summary` (n_users, n_frames),
`change_points` (n_shots, 2) inclusive KTS shots, `n_frame_per_seg`, `n_frames`, `picks`, `n_steps`,
`gtsummary`, and for SumMe `video_name` (bytes).
- `read_eccv16`: a file's fields per `video_N`, each checked against our annotations (which video
  it is, frame count, picks, shots tiling, SumMe user summaries).
- `write_eccv16` / `video_entry` / `benchmark_entries`: the same layout for any videos; benchmark
  entries come from our annotations and the shipped KTS shots. `export_h5` is the CLI stage.

The authors' states (`user_prompt_pool.h5`, `gen_pool.h5`: one dataset per video, steps x tokens x
5120; TVSum keyed `video_N`, SumMe by name with spaces as `_`): `import_states` writes one embeddings
file per video (columns `q`, `a`), so a run with `features: qa` trains on them.

    videos = read_eccv16("eccv16_dataset_summe_google_pool5.h5", "summe")   # {"video_1": H5Video, ...}
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmvs import LlmvsError
from llmvs.shots import MIN_SHOT_SECONDS, SHOT_SECONDS

AUTHORS_LLM = "meta-llama/Llama-2-13b-chat-hf"
REQUIRED = ("n_frames", "picks", "change_points", "n_frame_per_seg", "gtscore", "user_summary")
# dtypes written (the published files store user_summary as <f4; integers as int32)
DTYPES = {"features": np.float32, "gtscore": np.float32, "user_summary": np.float32, "gtsummary": np.float32,
          "change_points": np.int32, "n_frame_per_seg": np.int32, "picks": np.int32, "n_frames": np.int32,
          "n_steps": np.int32}


@dataclass(frozen=True)
class H5Video:
    """One eccv16 group, checked against the annotations of video `key`."""

    key: str
    n_frames: int
    picks: np.ndarray          # int64 [n_steps]
    change_points: np.ndarray  # int64 [n_shots, 2], inclusive, tiling 0..n_frames-1
    gtscore: np.ndarray        # float32 [n_steps]
    user_summary: np.ndarray   # bool [n_users, n_frames]
    features: np.ndarray | None = None  # float32 [n_steps, D]; None when absent or not read
    name: str | None = None    # video_name (SumMe)


def _open(path, mode="r"):
    import h5py

    path = Path(path)
    if mode == "r" and not path.exists():
        raise LlmvsError(f"{path}: missing h5 file")
    try:
        return h5py.File(path, mode)
    except OSError as err:
        raise LlmvsError(f"{path}: not a readable h5 file ({' '.join(str(err).split())})") from None


def _video_order(key: str):
    tail = key.rsplit("_", 1)[-1]
    return (0, int(tail), key) if tail.isdigit() else (1, 0, key)


def _text(value) -> str:
    """A string stored as bytes, str, or a one-element array of either."""
    value = np.asarray(value)
    value = value.item() if value.size == 1 else value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _same_name(a: str, b: str) -> bool:
    return a.replace("_", " ").strip() == b.replace("_", " ").strip()


def _int(where: str, field: str, value) -> int:
    x = np.asarray(value)
    if x.size != 1 or not np.isfinite(x).all() or float(x.item()) != int(x.item()):
        raise LlmvsError(f"{where}: {field} is not a whole number ({x.ravel()[:3]})")
    return int(x.item())


def _check_identity(where: str, g, video, videos, n_frames: int) -> str | None:
    """Which video the group holds: SumMe by `video_name`, both by `n_frames` (all 50 TVSum lengths
    are distinct, so the frame count pins a TVSum video)."""
    name = None
    if video.dataset == "summe":
        if "video_name" not in g:
            raise LlmvsError(f"{where}: no video_name (SumMe groups name their video)")
        name = _text(g["video_name"][()])
        if not _same_name(name, video.name):
            raise LlmvsError(f"{where}: video_name is {name!r} in the h5, but {video.key} is {video.name!r} "
                             "in the annotations")
    if n_frames != video.n_frames:
        other = [v for v in videos.values() if v.n_frames == n_frames]
        hint = (f"; {n_frames} frames is our {other[0].key} ({other[0].name}): the h5 orders the videos "
                "differently" if other else "")
        raise LlmvsError(f"{where}: {n_frames} frames in the h5, but {video.key} ({video.name}) has "
                         f"{video.n_frames} in the annotations{hint}")
    return name


def _check_summe_users(where: str, users: np.ndarray, video) -> None:
    """The h5's user summaries must be the GT `user_score > 0`, one row per user; rows may come in
    another order (every metric is a mean or max over users)."""
    ours = video.user_scores > 0
    if users.shape == ours.shape and np.array_equal(users, ours):
        return
    pool = [bytes(np.packbits(r)) for r in ours]
    unmatched = 0
    for row in users:
        b = bytes(np.packbits(row))
        if b in pool:
            pool.remove(b)
        else:
            unmatched += 1
    if users.shape != ours.shape or unmatched:
        raise LlmvsError(f"{where}: user_summary ({users.shape[0]} users) is not the GT user_score > 0 of "
                         f"{video.name} ({ours.shape[0]} users; {unmatched} h5 row(s) match none of them)")


def _read_group(path, g, video, videos, with_features: bool) -> H5Video:
    import h5py

    from llmvs.evaluation import check_shots

    where = f"{path}: {video.key}"
    if not isinstance(g, h5py.Group):
        raise LlmvsError(f"{where}: a dataset, not a group of fields")
    missing = [k for k in REQUIRED if k not in g]
    if missing:
        raise LlmvsError(f"{where}: no {', '.join(missing)}")
    n_frames = _int(where, "n_frames", g["n_frames"][()])
    name = _check_identity(where, g, video, videos, n_frames)
    picks = np.asarray(g["picks"][()]).ravel().astype(np.int64)
    if not np.array_equal(picks, video.picks):
        raise LlmvsError(f"{where}: picks are not the annotations' 0, 15, ... < {video.n_frames} "
                         f"({len(picks)} picks, {video.n_steps} steps)")
    if "n_steps" in g and _int(where, "n_steps", g["n_steps"][()]) != len(picks):
        raise LlmvsError(f"{where}: n_steps {_int(where, 'n_steps', g['n_steps'][()])} but {len(picks)} picks")
    try:
        cps = check_shots(np.asarray(g["change_points"][()]), n_frames)
    except (LlmvsError, ValueError) as err:
        raise LlmvsError(f"{where}: change_points do not tile its {n_frames} frames ({err})") from None
    per_seg = np.asarray(g["n_frame_per_seg"][()]).ravel().astype(np.int64)
    lengths = cps[:, 1] - cps[:, 0] + 1
    if per_seg.shape != lengths.shape or not np.array_equal(per_seg, lengths):
        bad = next((i for i, (a, b) in enumerate(zip(per_seg, lengths)) if a != b), min(len(per_seg), len(lengths)))
        raise LlmvsError(f"{where}: n_frame_per_seg disagrees with change_points ({len(per_seg)} values for "
                         f"{len(lengths)} shots; first difference at shot {bad})")
    gtscore = np.asarray(g["gtscore"][()], dtype=np.float32).ravel()
    if gtscore.shape != picks.shape:
        raise LlmvsError(f"{where}: gtscore has {gtscore.size} values for {len(picks)} steps")
    if not np.isfinite(gtscore).all():
        raise LlmvsError(f"{where}: gtscore has {int((~np.isfinite(gtscore)).sum())} NaN/inf value(s)")
    users = np.asarray(g["user_summary"][()])
    if users.ndim != 2 or users.shape[1] != n_frames:
        raise LlmvsError(f"{where}: user_summary has shape {users.shape}, expected (n_users, {n_frames})")
    if not np.isin(users, (0, 1)).all():
        raise LlmvsError(f"{where}: user_summary holds values other than 0 and 1")
    users = users.astype(bool)
    if video.dataset == "summe":
        _check_summe_users(where, users, video)
    features = None
    if with_features and "features" in g:
        features = np.asarray(g["features"][()], dtype=np.float32)
        if features.ndim != 2 or features.shape[0] != len(picks) or not np.isfinite(features).all():
            raise LlmvsError(f"{where}: features have shape {features.shape}, expected {len(picks)} finite rows")
    return H5Video(video.key, n_frames, picks, cps, gtscore, users, features, name)


def read_eccv16(path, dataset: str, *, data_dir=None, keys=None, features: bool = True,
                videos=None) -> dict[str, H5Video]:
    """`video_N` -> H5Video for every group of an eccv16 file (or only `keys`), each checked against
    our annotations of `dataset` (or `videos`, e.g. read from an annotations.parquet); `features=False`
    leaves the features unread."""
    from llmvs.datasets import load_dataset

    videos = videos if videos is not None else load_dataset(dataset, data_dir)
    path = Path(path)
    with _open(path) as f:
        unknown = [k for k in f.keys() if k not in videos]
        if unknown:
            raise LlmvsError(f"{path}: group {unknown[0]!r} is not a {dataset} video "
                             f"(expected video_1 ... video_{len(videos)})")
        out = {}
        for key in sorted(f.keys(), key=_video_order) if keys is None else keys:
            if key not in f:
                raise LlmvsError(f"{path}: no group {key} ({videos[key].name if key in videos else 'unknown video'})")
            out[key] = _read_group(path, f[key], videos[key], videos, features)
    return out


# --- writing --------------------------------------------------------------------------------

def video_entry(n_frames: int, picks, change_points, *, features=None, gtscore=None, user_summary=None,
                name: str | None = None) -> dict:
    """One group's fields. `gtsummary` (unused by every method we know; undocumented in the original
    files) is the 15 % knapsack of `gtscore` over the shots, taken at the picks."""
    from llmvs.evaluation import check_shots, knapsack_summary

    cps = check_shots(change_points, n_frames)
    picks = np.asarray(picks, dtype=np.int64)
    entry = {"n_frames": n_frames, "picks": picks, "n_steps": len(picks), "change_points": cps,
             "n_frame_per_seg": cps[:, 1] - cps[:, 0] + 1}
    if features is not None:
        entry["features"] = np.asarray(features, dtype=np.float32).reshape(len(picks), -1)
    if gtscore is not None:
        entry["gtscore"] = np.asarray(gtscore, dtype=np.float32)
        entry["gtsummary"] = knapsack_summary(entry["gtscore"], cps, n_frames, picks)[picks]
    if user_summary is not None:
        entry["user_summary"] = np.asarray(user_summary)
    if name is not None:
        entry["video_name"] = name
    return entry


def write_eccv16(out, entries: dict[str, dict], attrs: dict | None = None) -> None:
    """Write groups `key -> video_entry(...)` in the eccv16 layout, atomically; `attrs` go on the root
    (provenance; readers of the layout ignore them)."""
    from llmvs.io import atomic_path

    with atomic_path(out) as tmp:
        with _open(tmp, "w") as f:
            for k, v in (attrs or {}).items():
                f.attrs[k] = str(v)
            for key in sorted(entries, key=_video_order):
                g = f.create_group(key)
                for field, value in entries[key].items():
                    if field == "video_name":  # a bytes scalar, as the SumMe file stores it
                        g.create_dataset(field, data=np.bytes_(str(value).encode()))
                    else:
                        g.create_dataset(field, data=np.asarray(value).astype(DTYPES[field]))


def benchmark_entries(dataset: str, *, data_dir=None, keys=None, features: dict | None = None) -> dict[str, dict]:
    """eccv16 entries of benchmark videos from our annotations and the shipped KTS shots: `gtscore` as
    rebuilt (DESIGN §2), SumMe user summaries = GT user_score > 0, TVSum's = each annotator's 15 %
    knapsack over the KTS shots; `features` (key -> [n_steps, D]) optional."""
    from llmvs.datasets import kts_path, load_change_points, load_dataset
    from llmvs.evaluation import tvsum_user_summaries

    videos = load_dataset(dataset, data_dir)
    keys = list(keys) if keys else list(videos)
    unknown = [k for k in keys if k not in videos]
    if unknown:
        raise LlmvsError(f"no {dataset} video {unknown[0]!r} (expected video_1 ... video_{len(videos)})")
    shots = load_change_points(kts_path(dataset, data_dir), {k: videos[k] for k in keys})
    entries = {}
    for k in keys:
        v, cps = videos[k], shots[k]
        users = v.user_summaries if dataset == "summe" else tvsum_user_summaries(v.user_scores, cps, v.n_frames)
        entries[k] = video_entry(v.n_frames, v.picks, cps, features=(features or {}).get(k), gtscore=v.gtscore,
                                 user_summary=users, name=v.name if dataset == "summe" else None)
    return entries


def _frames_table(source, work: Path):
    """(path, table, metadata) of a frames Parquet, or of a video decoded into `work` by the frames stage."""
    from llmvs.io import read_parquet, table_metadata
    from llmvs.video import decode_frames

    source = Path(source)
    if source.suffix != ".parquet":
        decoded = work / f"{source.stem}.parquet"
        decode_frames(source, decoded)
        source = decoded
    table = read_parquet(source, "frames")
    meta = table_metadata(table)
    if "jpeg" not in table.column_names or "n_frames" not in meta or "fps" not in meta:
        raise LlmvsError(f"{source}: not a frames Parquet of `llmvs frames` (jpeg column, n_frames and fps)")
    return source, table, meta


def _benchmark_features(dataset, keys, encoder, frames_dir, batch_size, data_dir, work) -> dict[str, np.ndarray]:
    """Image features of benchmark videos from `frames_dir/{key}.parquet`, checked against the annotations."""
    from llmvs.datasets import load_dataset
    from llmvs.image_features import encode_jpegs

    videos = load_dataset(dataset, data_dir)
    feats = {}
    for k in keys or list(videos):
        if k not in videos:
            raise LlmvsError(f"no {dataset} video {k!r} (expected video_1 ... video_{len(videos)})")
        v = videos[k]
        src, table, meta = _frames_table(Path(frames_dir) / f"{k}.parquet", work)
        if int(meta["n_frames"]) != v.n_frames or not np.array_equal(table.column("frame_index").to_numpy(), v.picks):
            raise LlmvsError(f"{src}: frames of a {meta['n_frames']}-frame video, but {k} ({v.name}) has "
                             f"{v.n_frames} frames (picks 0, 15, ...)")
        feats[k] = encode_jpegs(encoder, table.column("jpeg").to_pylist(), batch_size, k)
    return feats


def _video_entries(sources, encoder, batch_size, shot_seconds, min_shot_seconds, work) -> dict[str, dict]:
    """video_1 ... video_N: your videos (or their frames Parquet), shots detected on colour histograms."""
    from llmvs.image_features import encode_jpegs
    from llmvs.shots import detect_shots, frame_features

    entries = {}
    for i, source in enumerate(sources, 1):
        src, table, meta = _frames_table(source, work)
        jpegs = table.column("jpeg").to_pylist()
        picks = table.column("frame_index").to_numpy().astype(np.int64)
        n_frames, fps = int(meta["n_frames"]), float(meta["fps"])
        cps = detect_shots(frame_features(jpegs), n_frames, picks, fps, shot_seconds, min_shot_seconds)
        entries[f"video_{i}"] = video_entry(n_frames, picks, cps, name=Path(meta.get("video") or src).stem,
                                            features=encode_jpegs(encoder, jpegs, batch_size, Path(source).name))
    return entries


def export_h5(out, *, sources=(), dataset: str | None = None, keys=None, image_model: str | None = None,
              frames_dir=None, models_dir=None, data_dir=None, shot_seconds: float = SHOT_SECONDS,
              min_shot_seconds: float = MIN_SHOT_SECONDS, batch_size: int = 32) -> dict[str, dict]:
    """The `export-h5` stage. Benchmark mode (`dataset`): entries from our annotations and KTS shots,
    features from `frames_dir/{key}.parquet` when an `image_model` is given. Otherwise `sources` (videos
    or frames Parquet files) become video_1 ... video_N with shots detected on colour histograms (they
    have no captions) and features from `image_model`."""
    from llmvs import __version__
    from llmvs.image_features import load_image_encoder

    if dataset and sources:
        raise LlmvsError(f"{sources[0]}: with --dataset the videos are benchmark keys: use --keys")
    if not dataset and not sources:
        raise LlmvsError("give video or frames files, or --dataset summe|tvsum")
    if not dataset and not image_model:
        raise LlmvsError(f"{sources[0]}: features of your videos need --image-model")
    if dataset and bool(image_model) != bool(frames_dir):
        raise LlmvsError("benchmark features need both --image-model and --frames-dir (frames/{key}.parquet)")
    encoder = load_image_encoder(image_model, models_dir) if image_model else None
    attrs = {"written_by": f"llmvs {__version__} export-h5", "features": encoder.id if encoder else "none"}
    with tempfile.TemporaryDirectory(prefix=".llmvs-export-") as work:
        if dataset:
            feats = _benchmark_features(dataset, keys, encoder, frames_dir, batch_size, data_dir, Path(work)) \
                if encoder else None
            entries = benchmark_entries(dataset, data_dir=data_dir, keys=keys, features=feats)
            attrs["shots"] = f"the eccv16 KTS change points shipped with llmvs (data/{dataset})"
        else:
            entries = _video_entries(sources, encoder, batch_size, shot_seconds, min_shot_seconds, Path(work))
            attrs["shots"] = (f"llmvs.shots.detect_shots on colour histograms: one shot per {shot_seconds:g} s, "
                              f"none shorter than {min_shot_seconds:g} s")
        write_eccv16(out, entries, attrs)
    return entries


# --- the authors' released LLM states -------------------------------------------------------

def _pooled(path, f, name: str, video) -> np.ndarray:
    """[n_steps, D]: the max over the token axis of one video's states (a 2-D array is taken as pooled)."""
    x = np.asarray(f[name][()])
    where = f"{path}: {name} ({video.key})"
    if x.ndim == 3:
        x = x.max(axis=1)  # parity: the authors' model max-pools concat(q, a) over tokens; per part is the same
    elif x.ndim != 2:
        raise LlmvsError(f"{where}: shape {x.shape}, expected steps x tokens x hidden")
    if x.shape[0] != video.n_steps:
        raise LlmvsError(f"{where}: {x.shape[0]} steps, but {video.key} has {video.n_steps} "
                         f"(picks 0, 15, ... < {video.n_frames})")
    if not np.isfinite(x).all():
        raise LlmvsError(f"{where}: {int((~np.isfinite(x)).sum())} NaN/inf value(s)")
    if np.abs(x).max(initial=0) > 65504:  # our embeddings files store float16
        raise LlmvsError(f"{where}: values up to {np.abs(x).max():.0f} overflow float16")
    return x.astype(np.float32)


def import_states(prompt_h5, gen_h5, dataset: str, out_dir, *, data_dir=None, keys=None,
                  llm: str = AUTHORS_LLM) -> list[Path]:
    """Write `out_dir/{video_N}.arrow` (columns `q` = user_prompt, `a` = gen, each max over tokens) for
    every video of `dataset` (or `keys`); returns the written files."""
    from llmvs.datasets import load_dataset
    from llmvs.embeddings import features_table, write_arrow

    videos = load_dataset(dataset, data_dir)
    keys = list(keys) if keys else list(videos)
    unknown = [k for k in keys if k not in videos]
    if unknown:
        raise LlmvsError(f"no {dataset} video {unknown[0]!r} (expected video_1 ... video_{len(videos)})")
    paths = {"q": Path(prompt_h5), "a": Path(gen_h5)}
    written = []
    with _open(paths["q"]) as fq, _open(paths["a"]) as fa:
        for key in keys:
            v = videos[key]
            name = v.key if dataset == "tvsum" else v.caption_key  # the authors' keys
            cols = {}
            for col, f in (("q", fq), ("a", fa)):
                if name not in f:
                    how = "video_N" if dataset == "tvsum" else "the video name with spaces as '_'"
                    raise LlmvsError(f"{paths[col]}: no states for {key} ({v.name}): expected a dataset "
                                     f"{name!r} ({dataset} files are keyed by {how})")
                cols[col] = _pooled(paths[col], f, name, v)
            if cols["q"].shape[1] != cols["a"].shape[1]:
                raise LlmvsError(f"{paths['a']}: {name} ({key}) states are {cols['a'].shape[1]}-d, but "
                                 f"{cols['q'].shape[1]}-d in {paths['q']}")
            meta = {"model": llm, "hidden_size": int(cols["q"].shape[1]), "dtype": str(fq[name].dtype),
                    "source": "the LLMVS authors' released states", "prompt_file": str(paths["q"]),
                    "gen_file": str(paths["a"]), "h5_key": name, "video": key, "n_frames": v.n_frames,
                    "fps": v.fps, "exemplar_seed": None,
                    "captioner": "LLaVA-1.5-7B (as the paper says; the files do not record it)",
                    "columns": {"q": f"max over tokens of {paths['q'].name}[{name!r}] (the query states)",
                                "a": f"max over tokens of {paths['a'].name}[{name!r}] (the answer states)"}}
            out = Path(out_dir) / f"{key}.arrow"
            write_arrow(features_table(v.picks, cols, meta), out)
            written.append(out)
    return written
