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

    write_annotations(a.dataset, a.out, a.data_dir)


def _shots(a):
    from llmvs.shots import run_shots

    run_shots(out=a.out, captions=a.captions, frames=a.frames, annotations=a.annotations,
              video=a.video, shot_seconds=a.shot_seconds, min_shot_seconds=a.min_shot_seconds)


def _human(a):
    from llmvs.human import write_human_table

    write_human_table(a.datasets, a.out, a.data_dir)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmvs", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"llmvs {__version__}")
    sub = p.add_subparsers(dest="stage", required=True, metavar="<stage>")

    s = sub.add_parser("annotations", help="benchmark ground truth -> annotations.parquet")
    s.add_argument("--dataset", required=True, choices=["summe", "tvsum"])
    s.add_argument("--data-dir", help="benchmark data folder (default: the shipped copy)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_annotations)

    s = sub.add_parser("shots", help="kernel change-point shots -> shots/{video}.parquet")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--captions", help="captions Parquet: TF-IDF caption features")
    src.add_argument("--frames", help="frames Parquet: colour-histogram features")
    s.add_argument("--annotations", help="annotations.parquet (n_frames/fps of a benchmark video)")
    s.add_argument("--video", help="video key inside --annotations")
    s.add_argument("--shot-seconds", type=float, default=4.0)
    s.add_argument("--min-shot-seconds", type=float, default=1.0)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_shots)

    s = sub.add_parser("human", help="human agreement baseline (pairwise leave-one-out) -> CSV")
    s.add_argument("--datasets", nargs="+", default=["summe", "tvsum"], choices=["summe", "tvsum"])
    s.add_argument("--data-dir")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_human)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except LlmvsError as err:
        print(f"llmvs: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("llmvs: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
