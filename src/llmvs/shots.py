"""Shots: the benchmark's own KTS shots, or kernel change-point detection on per-step features.

Benchmark videos take the eccv16 KTS shots (the `change_points` of the h5 files, shipped in
`data/<dataset>/kts_change_points.json.gz`): every published F1 and SumMe tau/rho is computed on
them. Other videos (and the benchmarks with `shots: {source: captions}`) get shots from
`ruptures.KernelCPD` (linear kernel on L2-normalised features, exact dynamic programme). Two rules
set the number of shots, none shorter than `min_shot_seconds`:
- `count="fixed"` (default): one shot per `shot_seconds` of video (default 4 s, close to the 2-5 s
  average of the KTS shots);
- `count="kts"`: the number KTS itself would choose (Potapov et al., ECCV 2014), see `kts_breakpoints`.

Features: for benchmark videos, TF-IDF vectors of the frame captions (a caption change is a
scene change); for decoded videos, colour histograms of the sampled frames.

    cps = detect_shots(caption_features(captions), n_frames, picks, fps)   # int [n_shots, 2]
"""

from __future__ import annotations

import io
import math
import re

import numpy as np

from llmvs import LlmvsError

SHOT_SECONDS = 4.0  # one detected shot per this many seconds of video (about the KTS shots' 2-5 s)
MIN_SHOT_SECONDS = 1.0


def _l2_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def caption_features(captions: list[str]) -> np.ndarray:
    """TF-IDF bag of words per caption, rows L2-normalised (float32 [n_steps, vocab])."""
    tokens = [re.findall(r"[a-z0-9]+", c.lower()) for c in captions]
    vocab = {w: i for i, w in enumerate(sorted({w for t in tokens for w in t}))}
    counts = np.zeros((len(captions), max(len(vocab), 1)), dtype=np.float32)
    for row, words in enumerate(tokens):
        for w in words:
            counts[row, vocab[w]] += 1
    df = (counts > 0).sum(axis=0)
    idf = np.log((1 + len(captions)) / (1 + df)) + 1
    return _l2_rows(counts * idf).astype(np.float32)


def frame_features(jpegs: list[bytes], bins: int = 8) -> np.ndarray:
    """Joint RGB colour histogram (bins^3) of each JPEG frame, rows L2-normalised."""
    from PIL import Image

    feats = np.zeros((len(jpegs), bins ** 3), dtype=np.float32)
    for i, data in enumerate(jpegs):
        img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").reduce(4), dtype=np.int64)
        q = (img * bins) // 256
        idx = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
        feats[i] = np.bincount(idx.ravel(), minlength=bins ** 3)
    return _l2_rows(np.sqrt(feats))  # sqrt: Hellinger-style, so large flat regions do not dominate


# cpd_auto's `vmax`, the weight of the KTS penalty on unit-norm features (see kts_breakpoints). DSNet
# passes 1 on GoogLeNet features; 1.25 agrees best with the eccv16 shots on caption TF-IDF (mean
# boundary F over all 75 SumMe and TVSum videos, grid 0.5-4: benchmarks/shot_agreement.py, docs/shots.md)
KTS_PENALTY = 1.25


def kts_breakpoints(features: np.ndarray, min_size: int = 1, penalty: float = KTS_PENALTY) -> list[int]:
    """Segment starts (step indices > 0) of the KTS segmentation, its count chosen by the KTS rule.

    Kernel temporal segmentation (Potapov, Douze, Harchaoui, Schmid, "Category-specific video
    summarization", ECCV 2014; the eccv16 shots are KTS shots) chooses the count with the rule of its
    `cpd_auto` (KTS v1.1, the code DSNet's `make_shots` calls): for m change points among n steps,
    with L_m the least total within-segment scatter (sum of squared distances to the segment means;
    linear kernel), take the m that minimises
        L_m / n + penalty * m / (2 n) * (log(n / m) + 1)        (0 for m = 0)
    `penalty` is cpd_auto's `vmax` (DSNet passes 1, with n the number of sampled frames, desc_rate 1,
    as here; the default `KTS_PENALTY` is set for caption TF-IDF). Rows are L2-normalised first, as
    DSNet normalises its GoogLeNet features, so L_0 / n <= 1: the rule keeps a shot whole while its
    spread per step stays well under penalty / 2, and cuts at every step once the spread passes it
    (tests/test_shots.py shows both). One ruptures dynamic programme gives the best segmentation for
    every m; segments have at least `min_size` steps (DSNet uses 1).
    """
    import ruptures as rpt

    x = _l2_rows(np.asarray(features, dtype=np.float64))
    n = len(x)
    max_cps = n // min_size - 1  # the most change points ruptures can place with segments >= min_size
    if max_cps < 1:
        return []
    algo = rpt.KernelCPD(kernel="linear", min_size=min_size, jump=1).fit(x)
    algo.predict(n_bkps=max_cps)  # one DP: fills algo.segmentations_dict[m] for every m <= max_cps
    sums = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    squares = np.concatenate([[0.0], np.cumsum((x * x).sum(axis=1))])

    def scatter(bkps):  # L_m from prefix sums: sum |x|^2 - |segment sum|^2 / length, per segment
        edges = np.array([0, *bkps])
        s, e = edges[:-1], edges[1:]
        return float((squares[e] - squares[s]).sum() - ((sums[e] - sums[s]) ** 2).sum(axis=1).dot(1.0 / (e - s)))

    best_cost, best_m = scatter([n]) / n, 0
    for m in range(1, max_cps + 1):
        pen = penalty * m / (2 * n) * (math.log(n / m) + 1)
        if pen >= best_cost:  # L_m >= 0 and the penalty grows with m (m <= n): no larger m can win
            break
        cost = scatter(algo.segmentations_dict[m]) / n + pen
        if cost < best_cost:  # strict: the smallest m wins a tie, as np.argmin in cpd_auto
            best_cost, best_m = cost, m
    return algo.segmentations_dict[best_m][:-1] if best_m else []


def detect_shots(features: np.ndarray, n_frames: int, picks, fps: float,
                 shot_seconds: float = SHOT_SECONDS, min_shot_seconds: float = MIN_SHOT_SECONDS,
                 count: str = "fixed", penalty: float = KTS_PENALTY) -> np.ndarray:
    """Inclusive [start, end] frame ranges tiling [0, n_frames - 1], cut between sampled steps.

    `count="fixed"`: one shot per `shot_seconds`; `count="kts"`: the number of shots KTS's rule
    chooses with weight `penalty` (`kts_breakpoints`). Either way no shot spans fewer steps than
    `min_shot_seconds` needs.
    """
    import ruptures as rpt

    feats = np.asarray(features, dtype=np.float64)
    picks = np.asarray(picks, dtype=np.int64)
    n_steps = len(picks)
    if feats.ndim != 2 or feats.shape[0] != n_steps:
        raise LlmvsError(f"shot features have shape {feats.shape}, expected ({n_steps}, D)")
    if not np.all(np.isfinite(feats)):
        raise LlmvsError("shot features contain NaN/inf")
    if fps <= 0 or shot_seconds <= 0:
        raise LlmvsError("fps and shot_seconds must be positive")
    if count not in ("fixed", "kts"):
        raise LlmvsError(f"shot count rule must be 'fixed' or 'kts', got {count!r}")
    if penalty < 0:
        raise LlmvsError(f"the KTS penalty must be >= 0, got {penalty}")
    step_seconds = (picks[1] - picks[0]) / fps if n_steps > 1 else n_frames / fps
    min_size = max(1, math.ceil(min_shot_seconds / step_seconds))
    if count == "kts":
        bkps = kts_breakpoints(feats, min_size, penalty)
    else:
        n_shots = min(max(1, round(n_frames / fps / shot_seconds)), max(1, n_steps // min_size))
        if n_shots == 1:
            return np.array([[0, n_frames - 1]], dtype=np.int64)
        algo = rpt.KernelCPD(kernel="linear", min_size=min_size, jump=1).fit(feats)
        bkps = algo.predict(n_bkps=n_shots - 1)[:-1]  # step indices where a new shot starts
    starts = np.concatenate([[0], picks[np.asarray(bkps, dtype=np.int64)]])
    ends = np.concatenate([starts[1:] - 1, [n_frames - 1]])
    return np.stack([starts, ends], axis=1).astype(np.int64)


def split_shots(change_points, max_frames: int, picks) -> tuple[np.ndarray, np.ndarray]:
    """Cut every shot longer than `max_frames` into pieces that fit; keep the others.

    A shot longer than the whole summary budget can never be selected, so a short video (or a
    short budget) would get an empty summary. Pieces follow the sampled steps (each step carries
    one score), grouping as many whole steps as fit; a single step longer than `max_frames` is
    cut into equal pieces. Returns (pieces int[n, 2] inclusive, index of the shot each came from).
    """
    cps = np.asarray(change_points, dtype=np.int64).reshape(-1, 2)
    picks = np.asarray(picks, dtype=np.int64)
    if max_frames < 1:
        raise LlmvsError(f"cannot split shots into pieces of {max_frames} frames")
    pieces, origin = [], []
    for i, (s, e) in enumerate(cps):
        if e - s + 1 <= max_frames:
            pieces.append((s, e))
            origin.append(i)
            continue
        cuts = np.concatenate([[s], picks[(picks > s) & (picks <= e)], [e + 1]])
        start = s
        for a, b in zip(cuts[:-1], cuts[1:]):  # [a, b) is one step inside the shot
            if b - start > max_frames and a > start:  # close the group before this step
                pieces.append((start, a - 1))
                start = a
            if b - a > max_frames:  # one step alone is too long: equal pieces of it
                n = -(-(b - a) // max_frames)
                edges = a + np.round(np.arange(n + 1) * (b - a) / n).astype(np.int64)
                pieces.extend((x, y - 1) for x, y in zip(edges[:-1], edges[1:]))
                start = b
        if start <= e:
            pieces.append((start, e))
        origin.extend([i] * (len(pieces) - len(origin)))
    return np.array(pieces, dtype=np.int64).reshape(-1, 2), np.array(origin, dtype=np.int64)


def run_shots(out, captions=None, frames=None, change_points=None, annotations=None, video=None,
              shot_seconds: float = SHOT_SECONDS, min_shot_seconds: float = MIN_SHOT_SECONDS, h5=None) -> None:
    """The `shots` stage -> shots Parquet: a benchmark video's shipped change points (`change_points`
    JSON) or those of an eccv16 `h5`, or change points detected on features of a captions or frames Parquet."""
    import pyarrow as pa

    from llmvs.io import read_parquet, table_metadata, write_parquet

    videos = None
    if annotations:
        from llmvs.datasets import read_annotations

        videos = read_annotations(annotations)
        if video not in videos:
            raise LlmvsError(f"{annotations}: no video {video!r}")
    if change_points or h5:
        if videos is None:
            raise LlmvsError(f"{change_points or h5}: benchmark change points need --annotations and --video")
        v = videos[video]
        if h5:  # the group is checked against the annotations: which video, frames, picks, shots tiling
            from llmvs.h5 import read_eccv16

            cps = read_eccv16(h5, v.dataset, keys=[video], features=False, videos=videos)[video].change_points
        else:
            from llmvs.datasets import load_change_points

            cps = load_change_points(change_points, {video: v})[video]
        write_parquet(pa.table({"start": cps[:, 0], "end": cps[:, 1]}), out,
                      metadata={"n_frames": v.n_frames, "fps": v.fps, "source": str(change_points or h5)})
        return
    source = captions or frames
    table = read_parquet(source, "captions" if captions else "frames")
    meta = table_metadata(table)
    if videos is not None:
        n_frames, fps = videos[video].n_frames, videos[video].fps
    elif "n_frames" in meta and "fps" in meta:
        n_frames, fps = int(meta["n_frames"]), float(meta["fps"])
    else:
        raise LlmvsError(f"{source}: no n_frames/fps in the metadata; pass --annotations and --video")
    picks = np.asarray(table.column("frame_index").to_pylist(), np.int64)
    if captions:
        feats = caption_features(table.column("caption").to_pylist())
    else:
        feats = frame_features(table.column("jpeg").to_pylist())
    cps = detect_shots(feats, n_frames, picks, fps, shot_seconds, min_shot_seconds)
    write_parquet(pa.table({"start": cps[:, 0], "end": cps[:, 1]}), out,
                  metadata={"n_frames": n_frames, "fps": fps, "source": str(source),
                            "shot_seconds": shot_seconds, "min_shot_seconds": min_shot_seconds})


def read_shots(path, n_frames: int | None = None) -> np.ndarray:
    """int [n_shots, 2] inclusive ranges from a shots Parquet, checked against `n_frames`."""
    from llmvs.evaluation import check_shots
    from llmvs.io import read_parquet

    table = read_parquet(path, "shots")
    cps = np.stack([table.column("start").to_numpy(), table.column("end").to_numpy()], axis=1)
    if n_frames is not None:
        try:
            check_shots(cps, n_frames)
        except LlmvsError as err:
            raise LlmvsError(f"{path}: {err}") from None
    return cps
