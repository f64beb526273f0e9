"""Atomic file writing and small readers shared by every stage.

A killed job must never leave a file that looks complete, so every writer goes through
`atomic_path`: write to a temporary sibling, then rename over the target.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from llmvs import LlmvsError


_UMASK = os.umask(0)
os.umask(_UMASK)


_STOP: list[int] = []  # termination signals received (see `request_stop`)


def request_stop(signum: int) -> None:
    """Note a termination signal. Its handler's exception can be swallowed when it lands inside a C
    callback (PyAV's log hook, a finalizer); then no output may still be committed, nor success reported."""
    _STOP.append(signum)


def exit_if_stopped() -> None:
    """Exit with 128 + the noted signal, if any: called before every commit and before reporting success."""
    if _STOP:
        raise SystemExit(128 + _STOP[0])


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` only on success (and when no
    termination signal has arrived)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.part"):  # left by a killed earlier attempt
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        exit_if_stopped()
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give them the usual mode
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(table: pa.Table, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write `table` as zstd Parquet atomically; `metadata` values are stored as JSON strings."""
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): json.dumps(v).encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_json(path: str | os.PathLike, what: str = "JSON file"):
    """Parse a JSON file, turning a missing or malformed file into a clear error."""
    path = Path(path)
    if not path.exists():
        raise LlmvsError(f"{path}: missing {what}")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise LlmvsError(f"{path}: not a valid {what} ({err})") from None


def read_splits(path: str | os.PathLike, split: int) -> tuple[list[str], list[str]]:
    """(train_keys, test_keys) of one split from a splits JSON file."""
    splits = read_json(path, "splits file")
    try:
        entry = splits[split]
        return list(entry["train_keys"]), list(entry["test_keys"])
    except (IndexError, KeyError, TypeError):
        n = len(splits) if isinstance(splits, list) else 0
        raise LlmvsError(f"{path}: no split {split} with train_keys and test_keys (the file has {n})") from None


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_parquet(path: str | os.PathLike, what: str = "table") -> pa.Table:
    """Read a Parquet file, turning a missing or unreadable file into a clear error."""
    path = Path(path)
    if not path.exists():
        raise LlmvsError(f"{path}: missing {what}")
    try:
        pf = pq.ParquetFile(path)
        table = pf.read()
    except (pa.ArrowInvalid, OSError) as err:
        # Arrow's reasons can span lines (thrift errors end in a newline): keep the error one line
        raise LlmvsError(f"{path}: not a readable Parquet file ({' '.join(str(err).split())})") from None
    # key-values added after the schema (streamed writers) live in the file footer
    footer = {k: v for k, v in (pf.metadata.metadata or {}).items() if not k.startswith(b"ARROW:")}
    return table.replace_schema_metadata({**footer, **(table.schema.metadata or {})})


def table_metadata(table: pa.Table) -> dict:
    """Decode the JSON metadata written by `write_parquet` (and by the Arrow writers)."""
    meta = table.schema.metadata or {}
    out = {}
    for k, v in meta.items():
        try:
            out[k.decode()] = json.loads(v)
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def concatenate(parts, out) -> None:
    """Write the files `parts` one after another into `out` (a file split across packages), in blocks."""
    with open(out, "wb") as w:
        for part in parts:
            with open(part, "rb") as r:
                while block := r.read(1 << 24):
                    w.write(block)


def file_sha256(path) -> str:
    """The sha256 of a file's bytes, read in blocks (model weights run to gigabytes)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
