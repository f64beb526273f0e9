"""The `frames` stage: decode a video sequentially with PyAV and keep every 15th frame as JPEG.

Decoding is streamed (only the sampled frames are converted, never all frames in memory), so a
long 720p video costs about its decode time. Rotation metadata is applied; variable frame rate is
handled by counting decoded frames (frame_index) and reading each frame's own timestamp (time_s).

Output `frames/{video}.parquet`: frame_index, time_s, jpeg; metadata: video, n_frames, fps,
width, height, duration_s, has_audio.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from llmvs import LlmvsError

STEP = 15


def open_video(path):
    """Open `path` with PyAV and return (container, video stream), or raise a clear error."""
    import av

    path = Path(path)
    if not path.exists():
        raise LlmvsError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise LlmvsError(f"{path}: empty file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise LlmvsError(f"{path}: not a readable video ({err})") from None
    if not container.streams.video:
        container.close()
        raise LlmvsError(f"{path}: no video stream (audio-only or not a video)")
    return container, container.streams.video[0]


def _rotate(img, frame):
    angle = int(getattr(frame, "rotation", 0) or 0) % 360
    return img.rotate(angle, expand=True) if angle else img


def iter_sampled_frames(path, step: int = STEP, max_side: int | None = 640, counter: dict | None = None):
    """Yield (frame_index, time_s, PIL image) for frames 0, step, 2*step, ...

    Every frame is decoded (sequential decode is far cheaper than seeking) but only the sampled
    ones are converted. The total frame count is left in `counter["n_frames"]`.
    """
    import av

    container, stream = open_video(path)
    stream.thread_type = "AUTO"
    index = 0
    try:
        for frame in container.decode(stream):
            if index % step == 0:
                img = _rotate(frame.to_image(), frame)
                if max_side and max(img.size) > max_side:
                    img.thumbnail((max_side, max_side))
                t = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
                yield index, t, img
            index += 1
    except av.error.FFmpegError as err:
        raise LlmvsError(f"{path}: corrupt video stream at frame {index} ({err})") from None
    finally:
        container.close()
    if index == 0:
        raise LlmvsError(f"{path}: no decodable video frames")
    if counter is not None:
        counter["n_frames"] = index


def video_info(path) -> dict:
    container, stream = open_video(path)
    try:
        rate = stream.average_rate or stream.guessed_rate
        return {"fps": float(rate) if rate else 25.0, "width": stream.codec_context.width,
                "height": stream.codec_context.height, "has_audio": bool(container.streams.audio),
                "duration_s": float(container.duration / 1e6) if container.duration else None}
    finally:
        container.close()


def decode_frames(path, out, step: int = STEP, max_side: int | None = 640, quality: int = 90) -> dict:
    """Write the frames Parquet for `path` (streamed, 256 frames per row group); returns its metadata."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from llmvs.io import atomic_path

    meta = {"video": str(path), **video_info(path)}
    schema = pa.schema([("frame_index", pa.int64()), ("time_s", pa.float64()), ("jpeg", pa.binary())])
    counter: dict = {}
    with atomic_path(out) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="none") as writer:  # JPEG is compressed already
            batch = []
            frames = iter_sampled_frames(path, step, max_side, counter)
            for index, t, img in tqdm(frames, desc=f"frames {Path(path).name}", unit="frame", mininterval=2):
                buf = io.BytesIO()
                img.save(buf, format="JPEG", quality=quality)
                batch.append((index, t, buf.getvalue()))
                if len(batch) == 256:
                    writer.write_table(pa.table(list(zip(*batch)), schema=schema))
                    batch = []
            if batch:
                writer.write_table(pa.table(list(zip(*batch)), schema=schema))
            meta["n_frames"] = counter["n_frames"]
            writer.add_key_value_metadata({k: json.dumps(v) for k, v in meta.items()})
    return meta
