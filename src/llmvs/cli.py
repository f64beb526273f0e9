"""`llmvs <stage>`: one subcommand per pipeline stage (the Snakemake rules call these).

Run `llmvs --help` or `llmvs <stage> --help`. Errors in the input come out as one line,
`llmvs: error: <file>: <problem>`, with exit status 1.
"""

from __future__ import annotations

import argparse
import sys

from llmvs import LlmvsError, __version__


def _annotations(a):
    from llmvs.datasets import write_annotations

    write_annotations(a.dataset, a.out, a.data_dir, h5=a.h5)


def _shots(a):
    from llmvs.shots import run_shots

    run_shots(out=a.out, captions=a.captions, frames=a.frames, change_points=a.change_points,
              annotations=a.annotations, video=a.video, shot_seconds=a.shot_seconds,
              min_shot_seconds=a.min_shot_seconds, h5=a.h5)


def _frames(a):
    from llmvs.video import decode_frames

    decode_frames(a.video, a.out, max_side=a.max_side)


def _captions(a):
    from llmvs.captioning import run_captions

    run_captions(a.out, a.backend, frames=a.frames, annotations=a.annotations, video=a.video,
                 source=a.source, model_dir=a.model, captioner=a.captioner, batch_size=a.batch_size)


def _prompts(a):
    from pathlib import Path

    from llmvs.llm_stage import PromptRunner

    if len(a.captions) != len(a.out):
        raise LlmvsError(f"{len(a.captions)} --captions files for {len(a.out)} --out files")
    todo = [(c, o) for c, o in zip(a.captions, a.out) if a.overwrite or not Path(o).exists()]  # resumable
    if not todo:
        return
    runner = PromptRunner(a.llm, a.exemplars, a.dataset, a.seed, a.path, a.dtype, a.batch_size,
                          a.max_new_tokens, a.threads, a.data_dir, a.token_budget, a.title_prompt)
    for c, o in todo:
        meta = runner.run(c, o, token_states=Path(o).with_suffix(".tokens.parquet") if a.token_states else None)
        print(f"{o}: {meta['video']} {meta['n_unparsed_answers']} unparsed answer(s), "
              f"{meta['n_fallback_windows']} fallback window(s)")


def _tfidf(a):
    from llmvs.tfidf import run_tfidf

    run_tfidf(a.captions, a.out, a.dims)


def _encode(a):
    from llmvs.encoders import run_encode

    run_encode(a.captions, a.out, a.encoder, titles=a.titles, annotations=a.annotations, models_dir=a.models_dir,
               batch_size=a.batch_size, device=a.device, threads=a.threads)


def _run_config(text: str):
    """A TrainConfig from inline JSON or a JSON file, errors naming where the keys came from."""
    import json

    from llmvs.io import read_json
    from llmvs.run_config import TrainConfig

    inline = text.lstrip().startswith("{")
    source = "--run-config" if inline else text
    if inline:
        try:
            keys = json.loads(text)
        except ValueError as err:
            raise LlmvsError(f"{source}: not valid JSON ({err})") from None
    else:
        keys = read_json(text, "run config")
    try:
        return TrainConfig.from_dict(keys)
    except (LlmvsError, TypeError) as err:
        raise LlmvsError(f"{source}: {err}") from None


def _train(a):
    from llmvs.train import train_split

    cfg = _run_config(a.run_config)
    dirs = a.embeddings_dir[0] if len(a.embeddings_dir) == 1 else a.embeddings_dir
    train_split(a.annotations, dirs, a.splits, a.split, cfg, a.out_dir, a.shots_dir, a.threads,
                a.extra_annotations, a.extra_embeddings_dir, a.also_select)


def _ridge(a):
    from llmvs.ridge import LAMBDAS, SIGMAS, ridge_split

    rows = ridge_split(a.annotations, a.embeddings_dir, a.splits, a.split, a.features, a.out_dir,
                       shots_dir=a.shots_dir, lambdas=a.lambdas or LAMBDAS, sigmas=a.sigmas or SIGMAS,
                       selection=a.selection, seed=a.seed, val_fraction=a.val_fraction, refit=not a.no_refit)
    for r in rows:
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))


def _release_scorer(a):
    from llmvs.release import train_release

    shots = a.shots_dir or [None] * len(a.annotations)
    if not len(a.annotations) == len(a.embeddings_dir) == len(shots):
        raise LlmvsError(f"{len(a.annotations)} --annotations, {len(a.embeddings_dir)} --embeddings-dir and "
                         f"{len(shots)} --shots-dir: give one of each per benchmark")
    train_release(list(zip(a.annotations, a.embeddings_dir, shots)), _run_config(a.run_config), a.out, a.card,
                  a.summary, run=a.run, threads=a.threads, captioner_model=a.captioner_model,
                  smooth_steps=a.smooth_steps)


def _evaluate(a):
    from llmvs.scoring import evaluate_split

    rows = evaluate_split(a.annotations, a.splits, a.split, a.method, a.out_dir, embeddings_dir=a.embeddings_dir,
                          model_path=a.model, shots_dir=a.shots_dir, seed=a.seed, smooth_steps=a.smooth_steps,
                          feature=a.features, reading=a.reading, checkpoints=a.checkpoints)
    for r in rows:
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))


def _aggregate(a):
    from llmvs.report import aggregate, combine

    if a.combine:
        combine(a.combine, a.out_dir)
    else:
        readings = dict(r.partition("=")[::2] for r in a.readings)
        aggregate(a.metrics, a.out_dir, a.human, a.uses_title, readings)


def _human(a):
    from llmvs.human import write_human_table

    write_human_table(a.datasets, a.out, a.data_dir)


def _import_states(a):
    from llmvs.h5 import import_states

    written = import_states(a.prompt, a.gen, a.dataset, a.out_dir, data_dir=a.data_dir, keys=a.keys, llm=a.llm)
    print(f"{a.out_dir}: {len(written)} embeddings file(s) (columns q, a; train with features: qa)")


def _h5_features(a):
    from llmvs.h5_workflow import googlenet_embeddings

    written = googlenet_embeddings(a.h5, a.annotations, a.out_dir, keys=a.keys)
    print(f"{a.out_dir}: {len(written)} embeddings file(s) (column googlenet)")


def build_parser() -> argparse.ArgumentParser:
    from llmvs.llm import DTYPES
    from llmvs.llm_stage import PATHS, PROMPTS_DEFAULTS
    from llmvs.run_config import AUTHORS_EVALUATIONS, METHODS, READINGS, SELECTIONS
    from llmvs.shots import MIN_SHOT_SECONDS, SHOT_SECONDS
    from llmvs.summarize import DEFAULT_CAPTIONER

    smooth_help = "Gaussian smoothing of the step scores over time: sigma in steps (a run's evaluation key)"

    p = argparse.ArgumentParser(prog="llmvs", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"llmvs {__version__}")
    sub = p.add_subparsers(dest="stage", required=True, metavar="<stage>")

    s = sub.add_parser("annotations", help="benchmark ground truth -> annotations.parquet")
    s.add_argument("--dataset", required=True, choices=["summe", "tvsum"])
    s.add_argument("--data-dir", help="benchmark data folder (default: the shipped copy)")
    s.add_argument("--h5", help="an eccv16 h5 of the benchmark: its videos only, checked against the annotation "
                                "files, with its gtscore (training target) and user_summary (F1 ground truth)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_annotations)

    s = sub.add_parser("shots", help="a video's shots (shipped KTS or detected) -> shots/{video}.parquet")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--change-points", help="the benchmark's KTS change points (data/<dataset>/kts_change_points.json.gz)")
    src.add_argument("--h5", help="an eccv16 h5: the video's change_points (checked against --annotations)")
    src.add_argument("--captions", help="captions Parquet: TF-IDF caption features")
    src.add_argument("--frames", help="frames Parquet: colour-histogram features")
    _benchmark_video_args(s, "n_frames/fps of a benchmark video", "video key inside --annotations")
    s.add_argument("--shot-seconds", type=float, default=SHOT_SECONDS, help="detected shots: one per this many seconds")
    s.add_argument("--min-shot-seconds", type=float, default=MIN_SHOT_SECONDS)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_shots)

    s = sub.add_parser("frames", help="decode every 15th frame -> frames/{video}.parquet")
    s.add_argument("video", help="input video file")
    s.add_argument("--max-side", type=int, default=640, help="downscale so the longer side is at most this")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_frames)

    s = sub.add_parser("captions", help="one caption per sampled frame -> captions/{captioner}/{video}.parquet")
    s.add_argument("--backend", required=True, choices=["import", "transformers", "vllm"])
    s.add_argument("--frames", help="frames Parquet (model backends; import: gives the picks)")
    _benchmark_video_args(s, "import for a benchmark video", "video key (benchmark) or caption-file key")
    s.add_argument("--source", help="import: caption JSON (shipped format) or CSV frame_index,caption")
    s.add_argument("--model", help="transformers / vllm: a hub id org/name[@revision] prepared with "
                                   "`llmvs models prepare`, or a local model folder")
    s.add_argument("--captioner", help="captioner id stored in the file (default: source or model name)")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_captions)

    s = sub.add_parser("prompts", help="LLM window scoring + hidden states -> embeddings/.../{video}.arrow")
    s.add_argument("--captions", nargs="+", required=True, help="captions Parquet file(s)")
    s.add_argument("--out", nargs="+", required=True, help="one .arrow per captions file")
    s.add_argument("--llm", default="smollm2", help="'smollm2' (shipped), a prepared hub id, a .gguf file or a local model folder")
    s.add_argument("--dataset", help="benchmark of these videos (chooses the other one's exemplars)")
    s.add_argument("--exemplars", default="auto", help="auto | summe | tvsum | none | exemplars.json")
    s.add_argument("--seed", type=int, default=0, help="exemplar seed")
    s.add_argument("--path", default=PROMPTS_DEFAULTS["path"], choices=PATHS,
                   help="fast: shared-prefix KV cache (default); plain: full prompt per window; vllm: vLLM engines")
    s.add_argument("--dtype", default=PROMPTS_DEFAULTS["dtype"], choices=DTYPES)
    s.add_argument("--batch-size", type=int, default=PROMPTS_DEFAULTS["batch_size"], help="most windows per forward pass")
    s.add_argument("--token-budget", type=int, default=PROMPTS_DEFAULTS["token_budget"],
                   help="most padded query tokens per forward pass")
    s.add_argument("--max-new-tokens", type=int, default=PROMPTS_DEFAULTS["max_new_tokens"])
    s.add_argument("--threads", type=int, help="torch CPU threads")
    s.add_argument("--token-states", action="store_true", help="also write token-level states (.tokens.parquet)")
    s.add_argument("--title-prompt", action="store_true",
                   help="each window names its video's title (benchmark: the annotations'; else the file name)")
    s.add_argument("--overwrite", action="store_true", help="recompute files that exist")
    s.add_argument("--data-dir")
    s.set_defaults(func=_prompts)

    s = sub.add_parser("tfidf", help="control features without an LLM: TF-IDF/LSA of the captions -> .arrow")
    s.add_argument("--captions", nargs="+", required=True, help="captions Parquet files (the LSA basis is fitted on all)")
    s.add_argument("--out", nargs="+", required=True, help="one .arrow per captions file")
    s.add_argument("--dims", type=int, default=256, help="LSA dimensions")
    s.set_defaults(func=_tfidf)

    s = sub.add_parser("encode", help="caption features from a sentence encoder (no LLM) + title relevance -> .arrow")
    s.add_argument("--captions", nargs="+", required=True, help="captions Parquet files (the TF-IDF IDF is fitted on all)")
    s.add_argument("--out", nargs="+", required=True, help="one .arrow per captions file")
    s.add_argument("--encoder", default="minilm", help="minilm | mpnet (shipped packages), a hub id prepared with "
                                                       "`llmvs models prepare`, or a sentence-transformers folder")
    s.add_argument("--titles", "--title", nargs="+", help="one title per captions file (default: the annotations' "
                                                          "title, else the video's name)")
    s.add_argument("--annotations", help="annotations.parquet: the benchmark videos' titles")
    s.add_argument("--models-dir", default=None, help="models folder (default: $LLMVS_MODELS, else ./models)")
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    s.add_argument("--threads", type=int, help="torch CPU threads")
    s.set_defaults(func=_encode)

    s = sub.add_parser("train", help="fit the global aggregator on one split -> model.pt, train_log.csv")
    s.add_argument("--annotations", required=True)
    s.add_argument("--embeddings-dir", nargs="+", required=True,
                   help="embeddings folder(s): each feature is read from the first folder that has it")
    s.add_argument("--splits", required=True, help="splits JSON")
    s.add_argument("--split", type=int, required=True)
    s.add_argument("--run-config", required=True, help="JSON file or inline JSON of training keys")
    s.add_argument("--shots-dir", help="shots of the videos (needed for selections by rho on SumMe)")
    s.add_argument("--extra-annotations", help="augment: annotations.parquet of the other benchmark")
    s.add_argument("--extra-embeddings-dir", help="augment: the other benchmark's embeddings folder")
    s.add_argument("--also-select", nargs="+", default=[], choices=SELECTIONS, metavar="RULE",
                   help="also keep the models these selection rules choose in the same training (e.g. "
                        "shard_rho, read by `evaluate --reading as_authors`)")
    s.add_argument("--threads", type=int)
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=_train)

    s = sub.add_parser("ridge", help="ridge-regression control on one split (λ, σ chosen on validation videos) "
                                     "-> model.npz, validation.csv, scores.parquet, metrics.csv")
    s.add_argument("--annotations", required=True)
    s.add_argument("--embeddings-dir", required=True)
    s.add_argument("--splits", required=True, help="splits JSON")
    s.add_argument("--split", type=int, required=True)
    s.add_argument("--features", nargs="+", default=["q_text", "c"], help="embedding columns, concatenated")
    s.add_argument("--shots-dir", help="shots of the videos (default: the benchmark's shipped KTS shots)")
    s.add_argument("--lambdas", type=float, nargs="+", help="ridge penalties to try (default 1 ... 1e7)")
    s.add_argument("--sigmas", type=float, nargs="+", help="smoothing sigmas in steps to try (default 0 ... 16)")
    s.add_argument("--selection", choices=["val_tau", "val_loss"],
                   help="validation rule (default: val_tau on TVSum, val_loss on SumMe)")
    s.add_argument("--seed", type=int, default=1112, help="validation subset seed (+ split), as the trainer's")
    s.add_argument("--val-fraction", type=float, default=0.2)
    s.add_argument("--no-refit", action="store_true", help="keep the model fitted without the validation videos")
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=_ridge)

    s = sub.add_parser("release-scorer", help="fit the headline run on every benchmark video -> the scorer "
                                              "`summarize` ships with (.pt + model card)")
    s.add_argument("--annotations", nargs="+", required=True, help="annotations.parquet of each benchmark")
    s.add_argument("--embeddings-dir", nargs="+", required=True, help="embeddings folder of each benchmark")
    s.add_argument("--shots-dir", nargs="+", help="shots folder of each benchmark (validation tau/rho/F1)")
    s.add_argument("--run", default="llmvs", help="name of the run the training keys come from")
    s.add_argument("--run-config", required=True, help="JSON file or inline JSON of training keys")
    s.add_argument("--summary", required=True, help="summary.csv with the run's cross-validated results")
    s.add_argument("--captioner-model", default=DEFAULT_CAPTIONER, help="the model that wrote the captions")
    s.add_argument("--smooth-steps", type=float, default=0.0, help=smooth_help + "; stored for `summarize`")
    s.add_argument("--threads", type=int)
    s.add_argument("--out", required=True, help="checkpoint (.pt)")
    s.add_argument("--card", required=True, help="model card (.md)")
    s.set_defaults(func=_release_scorer)

    s = sub.add_parser("evaluate", help="scores + tau/rho/F1 of a split's test videos -> metrics.csv")
    s.add_argument("--annotations", required=True)
    s.add_argument("--splits", required=True)
    s.add_argument("--split", type=int, required=True)
    s.add_argument("--method", required=True, choices=[m for m in METHODS if m != "ridge"])
    s.add_argument("--features", help="method feature: the 1-d embeddings column that is the score")
    s.add_argument("--model", help="model.pt (method model)")
    s.add_argument("--embeddings-dir", nargs="+", help="embeddings folder (methods model, zero_shot; a model: "
                                                       "the folders it was trained on)")
    s.add_argument("--shots-dir", required=True)
    s.add_argument("--seed", type=int, default=0, help="seed of the random control")
    s.add_argument("--smooth-steps", type=float, default=0.0, help=smooth_help)
    s.add_argument("--reading", choices=READINGS, default="honest",
                   help="as_authors: the rank-0 shard of the test videos only (official-protocol 8.2), a model's "
                        "epoch chosen by that shard's rho (its own selection shard_rho, or kept by train "
                        "--also-select shard_rho); random: the best of --checkpoints draws by the shard's rho")
    s.add_argument("--checkpoints", type=int, default=AUTHORS_EVALUATIONS,
                   help="as_authors random: draws per split (the authors' 2 evaluations x 200 epochs)")
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=_evaluate)

    s = sub.add_parser("aggregate", help="all metrics -> metrics.csv, summary.csv, summary.png")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--metrics", nargs="+", help=".../{dataset}/runs/{captioner}/{llm}/{run}/split{N}/metrics.csv")
    src.add_argument("--combine", nargs="+", help="several settings' summary.csv -> one summary.csv and chart")
    s.add_argument("--human", help="human.csv from `llmvs human`")
    s.add_argument("--uses-title", nargs="*", default=[], metavar="RUN", help="runs whose scores read the video's title")
    s.add_argument("--readings", nargs="*", default=[], metavar="RUN=READING",
                   help="runs not read honestly: test_rho (epoch chosen on the test split), as_authors (rank-0 shard)")
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=_aggregate)

    s = sub.add_parser("human", help="human agreement baseline (pairwise leave-one-out) -> CSV")
    s.add_argument("--datasets", nargs="+", default=["summe", "tvsum"], choices=["summe", "tvsum"])
    s.add_argument("--data-dir")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_human)

    s = sub.add_parser("import-states", help="the LLMVS authors' released LLM states (user_prompt_pool.h5, "
                                             "gen_pool.h5) -> embeddings/{video}.arrow")
    s.add_argument("--prompt", required=True, help="user_prompt_pool.h5: the query states (column q)")
    s.add_argument("--gen", required=True, help="gen_pool.h5: the answer states (column a)")
    s.add_argument("--dataset", required=True, choices=["summe", "tvsum"])
    s.add_argument("--llm", default="meta-llama/Llama-2-13b-chat-hf", help="the LLM recorded in the files' metadata")
    s.add_argument("--data-dir")
    _embeddings_out(s, _import_states, "every video")

    s = sub.add_parser("h5-features", help="an eccv16 h5's GoogLeNet features -> embeddings/{video}.arrow "
                                           "(column googlenet)")
    s.add_argument("--h5", required=True, help="the eccv16 h5 (features: n_steps x 1024 GoogLeNet pool5)")
    s.add_argument("--annotations", required=True, help="annotations.parquet the groups are checked against")
    _embeddings_out(s, _h5_features, "every video of the annotations")

    from llmvs.cli_tools import add_parsers

    add_parsers(sub, smooth_help)
    return p


def _benchmark_video_args(s: argparse.ArgumentParser, annotations_help: str, video_help: str) -> None:
    """The arguments that name a benchmark video: the annotations file and the video's key."""
    s.add_argument("--annotations", help=f"annotations.parquet ({annotations_help})")
    s.add_argument("--video", help=video_help)


def _embeddings_out(s, func, every: str) -> None:
    """The arguments every importer of embeddings shares: which videos, where their files go."""
    s.add_argument("--keys", nargs="+", help=f"only these videos (video_N; default: {every})")
    s.add_argument("--out-dir", required=True, help="the embeddings folder: one {video}.arrow per video")
    s.set_defaults(func=func)


def _terminate(signum, frame):
    from llmvs.io import request_stop

    request_stop(signum)  # holds even where the exception below is swallowed
    raise SystemExit(128 + signum)  # unwinds `finally` blocks, so temporary files are removed


def main(argv: list[str] | None = None) -> int:
    import signal

    args = build_parser().parse_args(argv)
    if argv is None:  # as a command (not from tests): a scheduler's SIGTERM cleans up like Ctrl-C
        signal.signal(signal.SIGTERM, _terminate)
    try:
        args.func(args)
    except LlmvsError as err:
        print(f"llmvs: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("llmvs: interrupted", file=sys.stderr)
        return 130
    from llmvs.io import exit_if_stopped

    exit_if_stopped()
    return 0


if __name__ == "__main__":
    sys.exit(main())
