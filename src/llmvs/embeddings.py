"""Per-step window features as Arrow IPC files: pooling token states into columns, writing, reading.

One row per step; every feature column is a `fixed_size_list<float16>[D]`, described in the
file's metadata (`columns`). From one LLM pass the stage stores several poolings side by side:

| column | tokens pooled | layer |
| --- | --- | --- |
| `q`, `q_mean` | every query token: chat-template header, line markers, captions (the paper's q) | final RMSNorm |
| `q_text`, `q_text_mean` | the caption tokens of the window only | final RMSNorm |
| `c`, `c_mean` | the centre caption's tokens only | final RMSNorm |
| `a`, `a_mean` | the generated answer tokens (the paper's a) | final RMSNorm |
| `mid_*` | the same spans | middle layer L/2, unit RMS per token |

plain names are max-pooled over tokens (as the paper), `_mean` ones averaged. Besides: the answer
text, its parsed score, `score_probs` (p(score = 1..10) after "Score: ") and their expectation
`answer_expected`. `read_embeddings` returns any column as a float32 [T, D] matrix. The caption
encoders' files (`llmvs.encoders`, no LLM) hold `q_text` and `c` of a sentence encoder and the 1-d
float32 `TITLE_COLUMNS`; `googlenet` files (llmvs.h5_workflow, from an eccv16 h5) hold `IMAGE_COLUMNS`. A run
may read columns from several folders (`load_video_features` with a list): each column comes from the
first folder whose file has it.

    emb = read_embeddings("results/summe/embeddings/blip/smollm2/video_1.arrow"); emb.features("c")
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmvs import LlmvsError

SPANS = {
    "q": "every query token (chat-template header, line markers, captions)",
    "q_text": "the caption tokens of the window (no template, header or line-marker tokens)",
    "c": "the centre caption's tokens",
    "a": "the generated answer tokens",
}
LAYERS = {"": "output of the final RMSNorm", "mid_": "output of the middle layer (L/2), each token scaled to unit RMS"}
POOLS = {"": "max over tokens", "_mean": "mean over tokens"}
FEATURE_COLUMNS = tuple(f"{layer}{span}{pool}" for layer in LAYERS for span in SPANS for pool in POOLS)
# 1-d columns of the caption-encoder stage (llmvs.encoders), beside its q_text and c; not written by the LLM
# stage, so FEATURE_COLUMNS (what an LLM scorer may read) leaves them out
TITLE_COLUMNS = {
    "title_sim": "cosine between the sentence embeddings of the centre caption and of the video's title",
    "title_sim_max": "max over the window's captions of title_sim",
    "title_sim_tfidf": "cosine between the TF-IDF vectors of the centre caption and of the video's title",
    "title_sim_tfidf_max": "max over the window's captions of title_sim_tfidf",
}

# frame features without captions: the eccv16 h5's `features` (llmvs.h5_workflow.googlenet_embeddings)
IMAGE_COLUMNS = {"googlenet": "GoogLeNet pool5 features of the frame at the pick (the eccv16 h5 `features`)"}


def describe(column: str) -> str:
    if column in TITLE_COLUMNS:
        return TITLE_COLUMNS[column]
    if column in IMAGE_COLUMNS:
        return IMAGE_COLUMNS[column]
    for layer, ltext in LAYERS.items():
        for span, stext in SPANS.items():
            for pool, ptext in POOLS.items():
                if column == f"{layer}{span}{pool}":
                    return f"{ptext} of {stext}; {ltext}"
    raise LlmvsError(f"unknown feature column {column!r}: expected one of "
                     f"{', '.join(FEATURE_COLUMNS + tuple(TITLE_COLUMNS) + tuple(IMAGE_COLUMNS))}")


def pool_window(result, text_mask: np.ndarray, centre_mask: np.ndarray) -> dict[str, np.ndarray]:
    """Every feature column of one window from its token states (see the module docstring)."""
    out = {}
    for layer, (q, a) in {"": (result.q, result.a), "mid_": (result.q_mid, result.a_mid)}.items():
        if q is None:
            continue
        for span, x in (("q", q), ("q_text", q[text_mask]), ("c", q[centre_mask]), ("a", a)):
            if len(x) == 0:
                raise LlmvsError(f"no tokens to pool for {layer}{span}")
            out[f"{layer}{span}"] = x.max(axis=0)
            out[f"{layer}{span}_mean"] = x.mean(axis=0)
    return out


def fixed_list(x: np.ndarray, dtype=np.float16):
    import pyarrow as pa

    x = np.asarray(x)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.astype(dtype).ravel(), pa.from_numpy_dtype(dtype)), x.shape[1])


def features_table(frame_index, columns: dict[str, np.ndarray], metadata: dict, extra: dict | None = None):
    """Arrow table: frame_index, the [T, D] feature `columns` (float16 lists), `extra` plain columns;
    the columns' descriptions (those of `extra` where `metadata["columns"]` gives them) join `metadata`."""
    import pyarrow as pa

    data = {"frame_index": pa.array(np.asarray(frame_index), pa.int64())}
    for name, x in columns.items():
        if not np.all(np.isfinite(x)):
            raise LlmvsError(f"feature column {name} contains NaN/inf")
        if np.abs(x).max(initial=0) > 65504:
            raise LlmvsError(f"feature column {name} overflows float16 (max |x| {np.abs(x).max():.0f})")
        data[name] = fixed_list(x)
    data.update(extra or {})
    described = {name: metadata.get("columns", {}).get(name) or describe(name) for name in columns}
    # plain columns keep the descriptions given for them (e.g. float32 per-step scalars)
    described.update({k: v for k, v in metadata.get("columns", {}).items() if k in (extra or {})})
    meta = {**metadata, "columns": described}
    return pa.table(data).replace_schema_metadata({k.encode(): json.dumps(v).encode() for k, v in meta.items()})


def embeddings_table(frame_index, results, masks, metadata: dict):
    """The prompts stage's table: every pooling of every window, the answers and score probabilities."""
    import pyarrow as pa

    from llmvs.prompt_builder import SCORES, parse_score

    pooled = [pool_window(r, t, c) for r, (t, c) in zip(results, masks)]
    columns = {name: np.stack([p[name] for p in pooled]) for name in pooled[0]}
    probs = np.stack([r.score_probs if r.score_probs is not None else np.full(len(SCORES), np.nan, np.float32)
                      for r in results]).astype(np.float32)
    extra = {
        "answer": pa.array([r.answer for r in results], pa.string()),
        "answer_score": pa.array([parse_score(r.answer) for r in results], pa.float32()),
        "answer_expected": pa.array(probs @ np.asarray(SCORES, np.float32), pa.float32()),
        "score_probs": fixed_list(probs, np.float32),
        "n_query_tokens": pa.array([len(r.q) for r in results], pa.int32()),
        "n_answer_tokens": pa.array([len(r.a) for r in results], pa.int32()),
        "n_text_tokens": pa.array([int(t.sum()) for t, _ in masks], pa.int32()),
        "n_centre_tokens": pa.array([int(c.sum()) for _, c in masks], pa.int32()),
    }
    return features_table(frame_index, columns, metadata, extra)


def write_arrow(table, out) -> None:
    import pyarrow as pa

    from llmvs.io import atomic_path

    with atomic_path(out) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=1024)


def write_token_states(frame_index, results, out, row_group_size: int = 4096) -> None:
    """Token-level final-norm q/a states (float16) as Parquet, one row per token, bounded row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmvs.io import atomic_path

    rows = [(f, part, i, s) for f, r in zip(frame_index, results)
            for part, states in (("q", r.q), ("a", r.a)) for i, s in enumerate(states)]
    states = np.stack([s for *_, s in rows])
    table = pa.table({"frame_index": pa.array([int(f) for f, *_ in rows], pa.int64()),
                      "part": pa.array([p for _, p, _, _ in rows], pa.dictionary(pa.int8(), pa.string())),
                      "token": pa.array([i for _, _, i, _ in rows], pa.int32()),
                      "state": fixed_list(states)})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)


@dataclass
class Embeddings:
    """One video's embeddings file: `features(name)` gives a float32 [T, D] column."""

    path: Path
    table: object
    meta: dict

    @property
    def frame_index(self) -> np.ndarray:
        return self.table.column("frame_index").to_numpy()

    @property
    def columns(self) -> list[str]:
        import pyarrow as pa

        return [f.name for f in self.table.schema if pa.types.is_fixed_size_list(f.type)]

    def features(self, name: str) -> np.ndarray:
        if name not in self.table.column_names:
            raise LlmvsError(f"{self.path}: no feature column {name!r} (it has {', '.join(self.columns)}); "
                             "rerun the prompts stage with this version")
        arr = self.table.column(name).combine_chunks()
        x = arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), arr.type.list_size).astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise LlmvsError(f"{self.path}: column {name} contains NaN/inf")
        return x

    def scalar(self, name: str) -> np.ndarray:
        if name not in self.table.column_names:
            raise LlmvsError(f"{self.path}: no column {name!r}")
        return self.table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)

    @property
    def answer_score(self) -> np.ndarray:
        return self.scalar("answer_score")

    @property
    def answer_expected(self) -> np.ndarray:
        return self.scalar("answer_expected")


def read_embeddings(path) -> Embeddings:
    """Open an embeddings .arrow file (memory-mapped), with a clear error when missing or corrupt."""
    import pyarrow as pa

    path = Path(path)
    if not path.exists():
        raise LlmvsError(f"{path}: missing embeddings (run the prompts stage)")
    try:
        with pa.memory_map(str(path)) as src:
            table = pa.ipc.open_file(src).read_all()
    except (pa.ArrowInvalid, OSError) as err:
        raise LlmvsError(f"{path}: not a readable Arrow file ({err})") from None
    if "frame_index" not in table.column_names:
        raise LlmvsError(f"{path}: not an embeddings file (no frame_index column)")
    meta = {}
    for k, v in (table.schema.metadata or {}).items():
        try:
            meta[k.decode()] = json.loads(v)
        except ValueError:
            continue
    return Embeddings(path, table, meta)


def feature_names(spec) -> list[str]:
    """A run's `features`: one name or a list (concatenated); `qa` is the paper's max over q and a. A
    name `<source>:<column>` reads the column from that embeddings source (a run reading several that
    share a column name, such as the LLM's and an encoder's `q_text`)."""
    names = [spec] if isinstance(spec, str) else list(spec)
    if not names:
        raise LlmvsError("features: give at least one column")
    return names


def check_feature_names(spec) -> list[str]:
    """A run's `features`, each a column some stage writes (or `qa`), checked without opening a file."""
    names = feature_names(spec)
    known = ("qa", *FEATURE_COLUMNS, *TITLE_COLUMNS, *IMAGE_COLUMNS)
    unknown = [n for n in names if split_source(n)[1] not in known]
    if unknown:
        raise LlmvsError(f"unknown feature column {unknown[0]!r}: expected one of {', '.join(known)}")
    return names


def split_source(name: str) -> tuple[str | None, str]:
    """(source or None, column) of a feature name (`minilm:q_text` -> ("minilm", "q_text"))."""
    source, _, column = name.rpartition(":")
    return source or None, column


def feature_matrix(emb: Embeddings, spec) -> np.ndarray:
    """[T, D_total] model input for a feature spec (see `feature_names`)."""
    parts = []
    for name in (split_source(n)[1] for n in feature_names(spec)):
        # parity: the paper max-pools concat(q, a) over tokens = element-wise max of the pooled parts
        parts.append(np.maximum(emb.features("q"), emb.features("a")) if name == "qa" else emb.features(name))
    return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


def load_video_embeddings(embeddings_dir, video) -> Embeddings:
    """The embeddings file of one benchmark video, its steps checked against the video's picks."""
    path = Path(embeddings_dir) / f"{video.key}.arrow"
    emb = read_embeddings(path)
    frame_index = emb.frame_index
    if len(frame_index) != video.n_steps:
        raise LlmvsError(f"{path}: {len(frame_index)} steps, but {video.key} has {video.n_steps} "
                         f"(picks 0, 15, ... < {video.n_frames})")
    differ = np.flatnonzero(frame_index != video.picks)
    if len(differ):
        i = int(differ[0])
        raise LlmvsError(f"{path}: step {i} is frame {frame_index[i]}, but {video.key}'s step {i} is frame "
                         f"{video.picks[i]} ({len(differ)} of {video.n_steps} steps differ)")
    return emb


def needed_columns(name: str) -> tuple[str, ...]:
    """The stored columns a feature name reads (`qa` reads q and a; a source prefix is not a column)."""
    column = split_source(name)[1]
    return ("q", "a") if column == "qa" else (column,)


def load_video_features(embeddings_dir, video, features) -> np.ndarray:
    """[T, D] model input of one benchmark video (see `feature_matrix`), checked against its steps.
    `embeddings_dir` may be a list of folders: each feature is read from the first one whose file has
    its columns (the workflow checks, before any job, that exactly one has them)."""
    if isinstance(embeddings_dir, (str, Path)):
        return feature_matrix(load_video_embeddings(embeddings_dir, video), features)
    embs = [load_video_embeddings(d, video) for d in embeddings_dir]
    parts = []
    for name in feature_names(features):
        source = split_source(name)[0]  # a folder is named after its source: .../embeddings/<captioner>/<source>
        emb = next((e for e in embs if set(needed_columns(name)) <= set(e.table.column_names)
                    and source in (None, e.path.parent.name)), None)
        if emb is None:
            raise LlmvsError(f"{video.key}: no feature column {name!r} in {', '.join(str(e.path) for e in embs)}")
        parts.append(feature_matrix(emb, name))
    return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
