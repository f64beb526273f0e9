"""Where the time of a Snakemake run went, per stage, from the controller's own log.

    python benchmarks/run_times.py .snakemake/log/<run>.log --out benchmarks/results-cpu2/make-run-times.csv \
        --results results

Every job's start ("[date]" then "rule NAME:" / "localrule NAME:") and end ("Finished jobid: N") are
read from the log (one-second resolution). A stage is a rule, with the per-benchmark rules
(`encode_tfidf_<captioner>_<dataset>`) counted as one. Per stage: jobs, job-seconds (the sum of its
jobs' durations), and its wall-clock span (first start to last end); the `total` row is the whole run,
from the controller's first job to its last. Writes CSV so runs can be compared. With `--results`, also
the LLM jobs (`llm-stage-times.csv`, one per video: windows from the job's log, time, memory and CPU
time from its Snakemake benchmark file) and the trainings (`train-times.csv`), beside `--out`.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from datetime import datetime
from pathlib import Path

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (\S+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+)")
_PER_SETTING = ("encode_tfidf",)  # rules generated per captioner/dataset


def stage_of(rule: str) -> str:
    return next((p for p in _PER_SETTING if rule.startswith(p + "_")), rule)


def job_spans(log_lines) -> dict[str, tuple[str, datetime, datetime]]:
    """jobid -> (rule, start, end) for every job the log saw finish."""
    now, rule, started, spans = None, None, {}, {}
    for line in log_lines:
        line = line.rstrip("\n")
        if m := _STAMP.match(line):
            now = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := _RULE.match(line):
            rule = m.group(1)
        elif (m := _JOBID.match(line)) and rule is not None:
            started[m.group(1)] = (rule, now)
            rule = None
        elif (m := _FINISHED.match(line)) and m.group(1) in started:
            name, start = started.pop(m.group(1))
            spans[m.group(1)] = (name, start, now)
    return spans


def stage_table(spans) -> list[dict]:
    stages: dict[str, list] = {}
    for name, start, end in spans.values():
        stages.setdefault(stage_of(name), []).append((start, end))
    rows = []
    for stage, jobs in sorted(stages.items(), key=lambda kv: min(s for s, _ in kv[1])):
        rows.append({"stage": stage, "jobs": len(jobs),
                     "job_seconds": sum((e - s).total_seconds() for s, e in jobs),
                     "wall_seconds": (max(e for _, e in jobs) - min(s for s, _ in jobs)).total_seconds()})
    every = [se for jobs in stages.values() for se in jobs]
    if every:
        rows.append({"stage": "total", "jobs": len(every),
                     "job_seconds": sum(r["job_seconds"] for r in rows),
                     "wall_seconds": (max(e for _, e in every) - min(s for s, _ in every)).total_seconds()})
    return rows


def _benchmark(path: Path) -> dict:
    """A Snakemake benchmark file: a header line and one row of measurements."""
    header, row = (line.split("\t") for line in path.read_text().splitlines()[:2])
    return dict(zip(header, row))


def llm_job_rows(results: Path) -> list[dict]:
    rows = []  # benchmarks/prompts/<dataset>/<captioner>/<llm>/<video>.tsv, one job per video
    for path in (results / "benchmarks/prompts").glob("*/*/*/*.tsv"):
        b = _benchmark(path)
        log = (results / "logs" / path.relative_to(results / "benchmarks").with_suffix(".log")).read_text()
        # tqdm draws its last state again on close; it also shows 100 % for 647/649 (rounded): the count
        # is the total of the lines whose count has reached it
        (windows,) = {n for n, total in re.findall(r"prompts \S+: 100%\|[^|]*\| (\d+)/(\d+)", log.replace("\r", "\n"))
                      if n == total}
        seconds = float(b["s"])
        rows.append({"dataset": path.parts[-4], "llm": path.parts[-2], "video": path.stem, "windows": int(windows),
                     "seconds": seconds, "windows_per_s": round(int(windows) / seconds, 2), "max_rss_mb": b["max_rss"],
                     "cpu_time_s": b["cpu_time"]})
    return sorted(rows, key=lambda r: (r["dataset"], r["llm"], int(r["video"].rsplit("_", 1)[-1])))


def train_rows(results: Path) -> list[dict]:
    rows = []  # benchmarks/train_split/<dataset>/<captioner>/<llm>/<run>/split<k>.tsv
    for path in (results / "benchmarks/train_split").glob("*/*/*/*/split*.tsv"):
        b = _benchmark(path)
        rows.append({"dataset": path.parts[-5], "run": path.parts[-2], "split": int(path.stem[5:]),
                     "seconds": float(b["s"]), "max_rss_mb": b["max_rss"], "cpu_time_s": b["cpu_time"]})
    return sorted(rows, key=lambda r: (r["dataset"], r["run"], r["split"]))


def write_csv(rows: list[dict], out) -> None:
    writer = csv.DictWriter(out, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", help="a Snakemake log (.snakemake/log/*.snakemake.log)")
    ap.add_argument("--out", help="CSV to write (default: print)")
    ap.add_argument("--results", help="the run's results folder: also write the LLM-job and training times")
    args = ap.parse_args(argv)
    path = Path(args.log)
    if not path.is_file():
        sys.exit(f"{path}: no such log")
    with open(path) as f:
        rows = stage_table(job_spans(f))
    if not rows:
        sys.exit(f"{path}: no finished job in this log")
    if not args.out:
        write_csv(rows, sys.stdout)
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tables = {out: rows}
    if args.results:
        tables[out.parent / "llm-stage-times.csv"] = llm_job_rows(Path(args.results))
        tables[out.parent / "train-times.csv"] = train_rows(Path(args.results))
    for path, table in tables.items():
        with open(path, "w", newline="") as f:
            write_csv(table, f)


if __name__ == "__main__":
    main()
