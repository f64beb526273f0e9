"""Throughput of `llmvs summarize` on a long 720p video, stage by stage (everything but captioning).

    python benchmarks/summarize_long_video.py --minutes 10 --out results/bench/summarize.json

Makes a synthetic 720p30 H.264 clip with audio (moving shapes, scene changes every 20 s), writes
captions for it (one per sampled frame: the scene's description), then times `llmvs summarize` and
reads each stage's time from the summary.json it writes.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time

import av
import numpy as np


def make_video(path, minutes, fps=30, size=(1280, 720)):
    n = int(minutes * 60 * fps)
    with av.open(path, "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        v.options = {"preset": "ultrafast"}
        a = out.add_stream("aac", rate=44100)
        colours = np.random.default_rng(0).integers(0, 255, (64, 3), dtype=np.uint8)
        samples = 0
        for i in range(n):
            scene = i // (20 * fps)
            img = np.empty((size[1], size[0], 3), np.uint8)
            img[:] = colours[scene % 64]
            x = (i * 7) % (size[0] - 120)
            img[300:420, x:x + 120] = 255 - colours[scene % 64]
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
            while samples < (i + 1) * 44100 // fps:
                t = (samples + np.arange(1024)) / 44100
                f = av.AudioFrame.from_ndarray((0.1 * np.sin(2 * np.pi * (220 + 20 * scene) * t)).astype(np.float32)[None],
                                               format="flt", layout="mono")
                f.sample_rate, f.pts = 44100, samples
                samples += 1024
                for p in a.encode(f):
                    out.mux(p)
        for s in (v, a):
            for p in s.encode():
                out.mux(p)
    return n, fps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="results/bench/long_video")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    video = os.path.join(a.work, "long720p.mp4")
    t = time.time()
    n, fps = make_video(video, a.minutes)
    make_s = time.time() - t
    steps = (n + 14) // 15
    with open(os.path.join(a.work, "long720p.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame_index", "caption"])
        for i in range(steps):
            w.writerow([15 * i, f"a white box slides across a plain coloured wall in scene {(15 * i) // (20 * fps)}"])
    t = time.time()
    proc = subprocess.run([sys.executable, "-m", "llmvs.cli", "summarize", video, "--captions",
                           os.path.join(a.work, "long720p.csv"), "--zero-shot", "--out", os.path.join(a.work, "summary"),
                           "--dtype", a.dtype], capture_output=True, text=True)
    total = time.time() - t
    if proc.returncode:
        sys.exit(proc.stderr[-2000:])
    summary = json.load(open(os.path.join(a.work, "summary", "summary.json")))
    result = {"video_minutes": a.minutes, "resolution": "1280x720", "fps": fps, "frames": n, "windows": steps,
              "llm_dtype": a.dtype, "make_video_s": make_s, "summarize_wall_s": total,
              "realtime_factor": a.minutes * 60 / total, "summary_duration_s": summary["summary_duration_s"],
              "stage_seconds": summary["timings"],
              "cpus": os.cpu_count(), "peak_rss_note": "streaming decode; frames never all in memory"}
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
