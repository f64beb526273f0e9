"""The `frames` stage: decode a video sequentially with PyAV and keep every 15th frame as JPEG.

Decoding is streamed (only the sampled frames are converted, never all frames in memory), so a
long 720p video costs about its decode time. Rotation metadata is applied; variable frame rate is
handled by counting decoded frames (frame_index) and reading each frame's own timestamp (time_s).
A stream the decoder rejects, or one that ends before its index says, is an error naming the frame.

Output `frames/{video}.parquet`: frame_index, time_s, jpeg; metadata: video, n_frames, fps,
width, height, duration_s, has_audio.
"""

from __future__ import annotations

import io
from pathlib import Path

from llmvs import LlmvsError
from llmvs.datasets import STEP



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
    except av.error.FFmpegError as err:
        raise LlmvsError(f"{path}: not a readable video ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise LlmvsError(f"{path}: not a readable video ({err})") from None
    if not container.streams.video:
        container.close()
        raise LlmvsError(f"{path}: no video stream (audio-only or not a video)")
    return container, container.streams.video[0]


def frame_rotation(frame) -> int:
    """A decoded frame's display rotation in degrees, as PyAV reports it (0 for none or no frame)."""
    return int(getattr(frame, "rotation", 0) or 0)


def display_rotation(path) -> int:
    """The display rotation of the video's first frame (`frame_rotation`)."""
    container, stream = open_video(path)
    with container:
        return frame_rotation(next(container.decode(stream), None))


def _rotate(img, angle: int):
    """The image turned by a display rotation in [0, 360) degrees."""
    return img.rotate(angle, expand=True) if angle else img


def _corrupt(path, where: str | None, problem: str | None) -> LlmvsError | None:
    """The error for a stream the decoder rejects, naming the first bad frame in display order.

    The main pass decodes with frame threads, which report an error a few packets late (how many
    depends on the core count); this second, single-threaded pass finds the packet itself. Falls
    back to `where` (or None when no packet fails, e.g. a truncated file).
    """
    import av

    container, stream = open_video(path)
    stream.thread_type = "NONE"
    time_base = stream.time_base  # PyAV 18.1.1 refuses to read it once the container is closed
    bad = None
    shown = []  # presentation times of every packet: a frame's display index is how many come before it
    try:
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            shown.append(packet.pts)
            if bad is None:
                try:
                    packet.decode()
                except av.error.FFmpegError as err:
                    bad, problem = packet.pts, err.strerror
    except av.error.FFmpegError:
        pass  # the demuxer gives up too: the packets read so far are all there is
    finally:
        container.close()
    if bad is not None:
        where = f"at frame {sum(p < bad for p in shown)} ({float(bad * time_base):.2f} s)"
    elif where is None:
        return None
    return LlmvsError(f"{path}: corrupt video stream {where}: {problem}")


def iter_sampled_frames(path, step: int = STEP, max_side: int | None = 640, counter: dict | None = None):
    """Yield (frame_index, time_s, PIL image) for frames 0, step, 2*step, ...

    Every frame is decoded (sequential decode is far cheaper than seeking) but only the sampled
    ones are converted. The total frame count is left in `counter["n_frames"]`, the rotation
    applied in `counter["rotation"]`.
    """
    import av

    container, stream = open_video(path)
    stream.thread_type = "AUTO"
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    # where the file's own index says the video ends: a shorter decode means lost frames
    listed_end = (float((stream.start_time or 0) + stream.duration) * stream.time_base
                  if stream.duration and stream.time_base else None)
    index, end, rotation = 0, None, 0
    try:
        for frame in container.decode(stream):
            if index % step == 0:
                rotation = frame_rotation(frame) % 360
                img = _rotate(frame.to_image(), rotation)
                if max_side and max(img.size) > max_side:
                    img.thumbnail((max_side, max_side))
                t = float(frame.time) if frame.time is not None else index / rate
                yield index, t, img
            if frame.pts is not None and frame.duration:
                end = float((frame.pts + frame.duration) * frame.time_base)
            index += 1
    except av.error.FFmpegError as err:
        raise _corrupt(path, f"after frame {index - 1}" if index else "at frame 0", err.strerror) from None
    finally:
        container.close()
    if index == 0:
        raise LlmvsError(f"{path}: no decodable video frames")
    # a truncated download (index at the front, data cut short) decodes without any error;
    # a frame-threaded decoder also drops the errors of the last few packets silently
    if listed_end is not None and end is not None and end < listed_end - max(2 / rate, 0.25):
        raise _corrupt(path, None, None) or LlmvsError(
            f"{path}: truncated video: decoding ends at {end:.2f} s after {index} frames, its index lists {listed_end:.2f} s")
    if counter is not None:
        counter["n_frames"] = index
        counter["rotation"] = rotation


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
    bar = tqdm(iter_sampled_frames(path, step, max_side, counter), desc=f"frames {Path(path).name}", unit="frame",
               mininterval=2)
    with bar, atomic_path(out) as tmp:  # the bar shows first: once the temporary file exists, the stage is at work
        with pq.ParquetWriter(tmp, schema, compression="none") as writer:  # JPEG is compressed already
            batch = []
            for index, t, img in bar:
                buf = io.BytesIO()
                img.save(buf, format="JPEG", quality=quality)
                batch.append((index, t, buf.getvalue()))
                if len(batch) == 256:
                    writer.write_table(pa.table(list(zip(*batch)), schema=schema))
                    batch = []
            if batch:
                writer.write_table(pa.table(list(zip(*batch)), schema=schema))
            meta["n_frames"] = counter["n_frames"]
            if counter["rotation"] in (90, 270):  # width, height as displayed (the frames are stored upright)
                meta["width"], meta["height"] = meta["height"], meta["width"]
            writer.add_key_value_metadata({k: json.dumps(v) for k, v in meta.items()})
    return meta
