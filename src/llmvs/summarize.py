"""`llmvs summarize`: from your own video to a summary video, with the LLM method end to end.

frames (streamed PyAV decode, every 15th frame) -> captions (a file you give, or a captioning
model: by default BLIP base, as the benchmark captions were made; never invented) -> LLM window
prompting (default SmolLM2; skipped for a scorer that reads a sentence encoder's embeddings of the
captions instead, llmvs.scorer_inputs) -> step scores (by default the scorer shipped in `llmvs/scorers/`,
trained on both benchmarks; or a checkpoint you give, or the LLM's zero-shot answers) -> shots
(kernel change points on the captions' TF-IDF, one shot per 4 s: of the signals measured, the one
closest to the benchmark's KTS shots, docs/shots.md; a shot longer than the budget is split so that
it can be chosen) -> 0/1 knapsack under the budget -> outputs:

- `summary.mp4`: the selected shots in order, H.264 video + AAC audio when the source has audio
  (cutting at arbitrary frames needs a re-encode; nothing else is touched);
- `shots.csv`, `scores.csv`, `timeline.png`, `summary.json`;
- `summary.html`: all of it on one page that opens from the folder, no server needed.

Each stage prints one line with its time to stderr as it ends (the LLM stage also shows a
progress bar with an ETA). All outputs appear together at the end; a failure leaves none behind.

    llmvs summarize my_video.mp4 --out summaries/my_video
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from llmvs import LlmvsError
from llmvs.io import file_sha256
from llmvs.scorer_inputs import check_encoder_scorer, check_scorer, features_read, llm_states, step_features
from llmvs.shots import SHOT_SECONDS

OUTPUTS = ("summary.mp4", "shots.csv", "scores.csv", "timeline.png", "summary.json", "summary.html")
DEFAULT_CAPTIONER = "Salesforce/blip-image-captioning-base"  # the captioner of the benchmark captions (data/SOURCES.md)
SHIPPED_SCORER = Path(__file__).parent / "scorers" / "blip-smollm2.pt"  # rule release_scorer; card beside it


def choose_scorer(scorer=None, zero_shot: bool = False) -> Path | None:
    """The checkpoint that scores the steps: `scorer`, else the shipped default; None = zero-shot answers.

    Without a shipped checkpoint the run stops: a silent fall-back to zero-shot scores would pass off
    the LLM's flat answers as the trained method."""
    from llmvs.release import RELEASE_COMMAND

    if zero_shot:
        return None
    if scorer:
        if not Path(scorer).exists():
            raise LlmvsError(f"{scorer}: scorer checkpoint not found")
        return Path(scorer)
    if not SHIPPED_SCORER.exists():
        raise LlmvsError(f"{SHIPPED_SCORER}: no default scorer is shipped in this copy of llmvs; build it with "
                         f"`{RELEASE_COMMAND}` in the repository, or pass --scorer FILE or --zero-shot")
    return SHIPPED_SCORER


def resolve_captioner(spec: str) -> Path:
    """The folder of a captioning model (hub id or folder), offline; a missing hub model says how to get it."""
    from llmvs.model_store import default_models_dir, parse_model_spec, resolve_model

    try:
        return resolve_model(spec)
    except LlmvsError:
        if parse_model_spec(spec).kind != "hub":
            raise
        raise LlmvsError(f"{spec}: captioning model not found (not prepared in {default_models_dir()} nor in the "
                         f"Hugging Face cache); fetch it once with `llmvs models prepare {spec}` where the hub is "
                         "reachable, or pass --captions FILE") from None


def budget_fraction(n_frames: int, fps: float, budget: float | None, seconds: float | None) -> float:
    if seconds is not None:
        if seconds <= 0:
            raise LlmvsError(f"--seconds must be positive, got {seconds}")
        return min(1.0, seconds * fps / n_frames)
    if budget is None or not 0 < budget <= 1:
        raise LlmvsError(f"--budget must be in (0, 1], got {budget}")
    return budget


def select_shots(values, lengths, capacity: int) -> np.ndarray:
    """bool per shot: the benchmark's 0/1 knapsack; if it takes nothing, the best shot that fits.

    The knapsack takes no shot whose score is 0 (all-zero zero-shot answers, say), and a user asking
    for a summary should still get one; with `split_shots` beforehand every shot fits.
    """
    from llmvs.evaluation import knapsack

    values, lengths = np.asarray(values, dtype=np.float64), np.asarray(lengths)
    chosen = knapsack(values, lengths, capacity)
    if not chosen:
        fits = np.flatnonzero(lengths <= capacity)
        if not len(fits):
            raise LlmvsError(f"no shot fits a budget of {capacity} frames (the shortest has {lengths.min()})")
        chosen = fits[np.argmax(values[fits])]
    selected = np.zeros(len(values), dtype=bool)
    selected[chosen] = True
    return selected


def step_scores(embeddings, scorer: str | None, smooth_steps: float = 0.0) -> tuple[np.ndarray, str]:
    """Scores per sampled frame from a trained checkpoint (smoothed over time by `smooth_steps`), or the
    zero-shot answers."""
    from llmvs.embeddings import feature_matrix, read_embeddings
    from llmvs.scoring import zero_shot_scores

    emb = read_embeddings(embeddings)
    if not scorer:
        return zero_shot_scores(emb.answer_score, embeddings), "zero-shot LLM answers"
    from llmvs.checkpoints import checkpoint_scores, load_model

    model, ckpt = load_model(scorer)
    x = feature_matrix(emb, ckpt["model_config"]["features"])
    scores = checkpoint_scores(model, ckpt, x, scorer=scorer, features=embeddings, smooth_steps=smooth_steps)
    return scores.astype(np.float64), str(scorer)


def write_summary_video(src, out, change_points: np.ndarray, selected: np.ndarray, fps: float) -> float:
    """Concatenate the selected shots of `src` into `out` (H.264 + AAC, the source's display rotation
    kept, so a phone video plays upright); returns its duration in s."""
    import av

    from llmvs.video import display_rotation

    rotation = display_rotation(src)

    keep = np.zeros(int(change_points[-1, 1]) + 1, dtype=bool)
    ranges = []
    for (s, e), sel in zip(change_points, selected):
        if sel:
            keep[s:e + 1] = True
            ranges.append((s / fps, (e + 1) / fps))
    with av.open(str(src)) as inp, av.open(str(out), "w", format="mp4") as outp:
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        rate = Fraction(fps).limit_denominator(1001)
        rate_tb = 1 / rate
        vout = outp.add_stream("libx264", rate=rate)
        vout.width = vin.codec_context.width - vin.codec_context.width % 2
        vout.height = vin.codec_context.height - vin.codec_context.height % 2
        vout.pix_fmt = "yuv420p"
        vout.options = {"crf": "20", "preset": "veryfast"}
        if rotation:
            vout.set_display_rotation(rotation)
        aout = resampler = None
        if ain is not None:
            aout = outp.add_stream("aac", rate=ain.codec_context.sample_rate or 44100)
            resampler = av.AudioResampler(format="fltp", layout="stereo" if (ain.codec_context.channels or 1) > 1 else "mono",
                                          rate=aout.codec_context.sample_rate)
        index = written = samples = 0
        streams = [vin] + ([ain] if ain is not None else [])
        for packet in inp.demux(*streams):
            for frame in packet.decode():
                if packet.stream.type == "video":
                    if index < len(keep) and keep[index]:
                        f = frame.reformat(width=vout.width, height=vout.height, format="yuv420p")
                        f.pts, f.time_base = written, rate_tb
                        outp.mux(vout.encode(f))
                        written += 1
                    index += 1
                elif aout is not None and frame.pts is not None:
                    t = float(frame.pts * frame.time_base)
                    if any(a <= t < b for a, b in ranges):
                        for rf in resampler.resample(frame):
                            rf.pts = samples
                            samples += rf.samples
                            outp.mux(aout.encode(rf))
        outp.mux(vout.encode())
        if aout is not None:
            outp.mux(aout.encode())
    return written / fps


def plot_timeline(out, times, scores, change_points, selected, fps, thumbs, title="", cuts=None) -> None:
    """Thumbnails above the score curve; selected shots shaded, `cuts` (default: every shot start) as lines."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from llmvs.io import atomic_path

    fig = plt.figure(figsize=(12, 4.2))
    n = len(thumbs)
    for i, (t, jpeg) in enumerate(thumbs):
        ax = fig.add_axes([0.06 + i * 0.9 / n, 0.62, 0.9 / n - 0.01, 0.28])  # room for the title above
        ax.imshow(Image.open(io.BytesIO(jpeg)))
        ax.set_axis_off()
        ax.set_title(f"{t:.1f} s", fontsize=7)
    ax = fig.add_axes([0.06, 0.12, 0.9, 0.45])
    for (s, e), sel in zip(change_points, selected):
        if sel:
            ax.axvspan(s / fps, (e + 1) / fps, color="tab:orange", alpha=0.3, lw=0)
    cut = None
    for s in (change_points[1:, 0] if cuts is None else cuts):
        cut = ax.axvline(s / fps, color="grey", lw=0.8, alpha=0.7)
    end = (change_points[-1, 1] + 1) / fps
    # the last sampled frame's score holds to the end of the video, as in the shot scores
    (curve,) = ax.step(np.append(times, end), np.append(scores, scores[-1]), where="post", color="tab:blue",
                       lw=1.2, label="importance")
    ax.set_xlim(0, end)
    lo, hi = min(0.0, float(np.min(scores))), float(np.max(scores))
    ax.set_ylim(lo, hi + 0.1 * ((hi - lo) or 1.0))  # from 0, so a flat curve reads as flat, not as noise
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score")
    handles = [curve, plt.Rectangle((0, 0), 1, 1, color="tab:orange", alpha=0.3)] + ([cut] if cut else [])
    ax.legend(handles=handles, labels=["importance", "selected", "shot boundary"][:len(handles)], fontsize=8,
              loc="lower right", bbox_to_anchor=(1, 1), ncol=3, frameon=False, borderaxespad=0.1)  # above the axes
    fig.suptitle(title, fontsize=9, y=0.995)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def summarize_video(video, out_dir, *, captions=None, captioner=None, llm: str = "smollm2", scorer=None,
                    zero_shot: bool = False, budget: float | None = 0.15, seconds: float | None = None,
                    dtype: str | None = None, exemplars: str = "auto", threads: int | None = None,
                    shot_seconds: float = SHOT_SECONDS, smooth_steps: float | None = None,
                    title: str | None = None) -> dict:
    """`captions` (file) or `captioner` (model; default BLIP base); `scorer` (checkpoint; default the
    shipped one) or `zero_shot`; `dtype` of the LLM: by default the one the scorer was trained on;
    `smooth_steps`: by default the scorer's own (a release scorer stores its run's), else none;
    `title`: the video's, for a scorer that reads title columns (default: the file name)."""
    import pandas as pd

    from llmvs.captioning import caption_transformers, frame_images, read_caption_file, write_captions
    from llmvs.evaluation import frame_scores, shot_scores
    from llmvs.io import read_parquet
    from llmvs.embeddings import read_embeddings
    from llmvs.shots import caption_features, detect_shots, split_shots
    from llmvs.summary_page import render_summary_page
    from llmvs.datasets import STEP
    from llmvs.video import decode_frames

    if captions and captioner:
        raise LlmvsError("give --captions FILE or --captioner MODEL, not both")
    # everything that can be refused is refused before the video is decoded and the models run
    scorer = choose_scorer(scorer, zero_shot)
    schema, encoder, columns = {}, None, None
    if scorer is not None:
        from llmvs.checkpoints import load_model
        from llmvs.embeddings import feature_names

        ckpt = load_model(scorer)[1]
        encoder = check_encoder_scorer(scorer, ckpt)  # a scorer of encoder embeddings needs no LLM
        if encoder is None:
            check_scorer(scorer, ckpt, *llm_states(llm))
        schema, columns = ckpt.get("feature_schema", {}), feature_names(ckpt["model_config"]["features"])
        if smooth_steps is None:
            smooth_steps = ckpt.get("scoring", {}).get("smooth_steps", 0.0)
    # the benchmark path's settings for the scorer's LLM states (same captions, LLM, scorer -> same scores)
    dtype = dtype or schema.get("dtype") or "float32"
    exemplar_seed = schema.get("exemplar_seed") or 0
    captioner_dir = None if captions else resolve_captioner(captioner or DEFAULT_CAPTIONER)
    video, out_dir = Path(video), Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    clock, timings = time.perf_counter(), {}

    def lap(key, stage, detail):
        """Record the stage's time and say so at once: long videos take minutes per stage."""
        nonlocal clock
        now = time.perf_counter()
        timings[key] = round(now - clock, 2)
        clock = now
        print(f"{stage:<14}{timings[key]:7.1f} s  {detail}", file=sys.stderr, flush=True)

    try:
        meta = decode_frames(video, work / "frames.parquet")
        frames = read_parquet(work / "frames.parquet")
        picks = frames.column("frame_index").to_numpy()
        n_frames, fps = int(meta["n_frames"]), float(meta["fps"])
        if len(picks) < 2:  # one score ranks nothing, and the LLM window would be that caption alone
            raise LlmvsError(f"{video}: too short to summarize: {n_frames} frame(s) give one sampled frame "
                             f"(every {STEP}th); at least {STEP + 1} frames are needed")
        frac = budget_fraction(n_frames, fps, budget, seconds)
        capacity = int(math.floor(frac * n_frames))
        if capacity < 1:
            raise LlmvsError(f"{video}: a budget of {frac * n_frames / fps:.3f} s is shorter than one frame "
                             f"({1 / fps:.3f} s): raise --budget or --seconds")
        lap("frames_s", "frames", f"{len(picks)} of {n_frames} frames sampled ({n_frames / fps:.1f} s at "
            f"{fps:.2f} fps)")
        if captions:
            caps, captioner_id = read_caption_file(captions, picks, video.stem), f"file:{Path(captions).name}"
        else:
            from llmvs.model_store import describe_model

            caps = caption_transformers(frame_images(frames), captioner_dir)
            captioner_id = describe_model(captioner or DEFAULT_CAPTIONER, captioner_dir)
        write_captions(work / "captions.parquet", picks, caps, captioner=captioner_id, video=video.stem,
                       n_frames=n_frames, fps=fps)
        lap("captions_s", "captions", f"{len(caps)} from {captioner_id}")
        features, read = step_features(work, work / "captions.parquet", encoder=encoder, title=title,
                                       reads_title=bool(schema.get("title")), llm=llm, exemplars=exemplars,
                                       exemplar_seed=exemplar_seed, dtype=dtype, threads=threads)
        scores, scorer_id = step_scores(features, scorer, smooth_steps or 0.0)
        if scorer == SHIPPED_SCORER:
            scorer_id = f"default scorer {SHIPPED_SCORER.stem}"
        if encoder:
            answers = None
            lap("encoder_s", "encoder", f"{len(caps)} captions by {read['model']}; scores: {scorer_id}")
        else:
            answers = read_embeddings(features).answer_score
            lap("llm_s", "LLM", f"{len(caps)} windows by {read['model']}; scores: {scorer_id}")
        detected = detect_shots(caption_features(caps), n_frames, picks, fps, shot_seconds=shot_seconds)
        # a shot longer than the whole budget could never be chosen: split it (user videos only;
        # the benchmark evaluation keeps its shots whole)
        cps, origin = split_shots(detected, capacity, picks)
        per_frame = frame_scores(scores, n_frames, picks)
        values = shot_scores(per_frame, cps)
        selected = select_shots(values, cps[:, 1] - cps[:, 0] + 1, capacity)
        split_note = f", split into {len(cps)} to fit the budget" if len(cps) > len(detected) else ""
        lap("shots_knapsack_s", "shots", f"{len(detected)} detected{split_note}; {selected.sum()} selected "
            f"for a budget of {capacity / fps:.2f} s")
        duration = write_summary_video(video, work / "summary.mp4", cps, selected, fps)
        lap("summary_video_s", "summary video", f"{duration:.2f} s of {n_frames / fps:.1f} s")
        times = frames.column("time_s").to_numpy()
        shots = pd.DataFrame({"shot": np.arange(len(cps)), "detected_shot": origin, "start_frame": cps[:, 0],
                              "end_frame": cps[:, 1], "start_s": cps[:, 0] / fps, "end_s": (cps[:, 1] + 1) / fps,
                              "score": values, "selected": selected})
        shots.to_csv(work / "shots.csv", index=False, float_format="%.4f")
        steps = pd.DataFrame({"frame_index": picks, "time_s": times, "caption": caps,  # answers only where an LLM ran
                              **({} if answers is None else {"answer_score": answers}), "score": scores})
        # the scores as computed (float32, shortest exact text): the same as the benchmark's scores.parquet
        steps.assign(score=[np.format_float_positional(np.float32(x), trim="-") for x in scores]).to_csv(
            work / "scores.csv", index=False, float_format="%.4f")
        thumb_idx = np.linspace(0, len(picks) - 1, min(6, len(picks))).round().astype(int)
        jpegs = frames.column("jpeg").to_pylist()
        plot_timeline(work / "timeline.png", times, scores, cps, selected, fps,
                      [(times[i], jpegs[i]) for i in thumb_idx], title=f"{video.name}: {duration:.1f} s of "
                      f"{n_frames / fps:.1f} s selected", cuts=detected[1:, 0])
        summary = {"input": str(video), "n_frames": n_frames, "fps": fps, "duration_s": n_frames / fps,
                   "has_audio": meta["has_audio"], "captioner": captioner_id,
                   "llm": None if encoder else read["model"], "llm_dtype": None if encoder else dtype,
                   "features": read["embeddings"], "features_model": read["model"], "feature_columns": columns,
                   "features_read": features_read(read, columns), "title": read["title"], "scorer": scorer_id,
                   "scorer_path": str(scorer) if scorer else None,
                   "scorer_sha256": file_sha256(scorer) if scorer else None, "budget_fraction": frac,
                   "summary_duration_s": duration, "n_detected_shots": int(len(detected)),
                   "n_shots": int(len(cps)), "n_selected_shots": int(selected.sum()),
                   "exemplars": read["exemplars"], "timings": timings}
        (work / "summary.html").write_text(render_summary_page(
            summary, shots.to_dict("records"), steps.to_dict("records"), (work / "timeline.png").read_bytes()),
            encoding="utf-8")
        lap("outputs_s", "outputs", "shots.csv, scores.csv, timeline.png, summary.html")
        (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in OUTPUTS:  # all outputs land together, only after everything succeeded
            (work / name).replace(out_dir / name)
        return summary
    finally:
        shutil.rmtree(work, ignore_errors=True)
