"""CPU the local Snakemake controller itself spends, with and without a scheduler setting.

On a finished run, forces the 80 evaluation jobs (and their aggregation) to rerun with the local
profile, once per `--max-jobs-per-timespan` value, and records the controller's own CPU seconds
(user + system of the snakemake process, not of its jobs) and the wall time. The default 100/1s
wakes the scheduler every second while jobs wait for a core; each wake re-stats the inputs of every
waiting job.

    python benchmarks/controller_overhead.py --workdir . --out benchmarks/results-cpu2/controller-overhead.csv
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

# runs Snakemake in this interpreter and reports its own rusage (children excluded) on exit
PROBE = """
import atexit, resource, runpy, sys
def report():
    r = resource.getrusage(resource.RUSAGE_SELF)
    print(f"CONTROLLER_CPU_S {r.ru_utime + r.ru_stime:.2f}", file=sys.stderr)
atexit.register(report)
sys.argv = ["snakemake", *sys.argv[1:]]
runpy.run_module("snakemake", run_name="__main__")
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default=".", help="a repository with a finished default run")
    p.add_argument("--settings", nargs="+", default=["100/1s", "1000/1m", "1000/10s"], help="--max-jobs-per-timespan values")
    p.add_argument("--cores", default="2")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    rows = []
    for setting in args.settings:
        cmd = [sys.executable, "-c", PROBE, "--profile", "local", "--cores", args.cores, "--max-jobs-per-timespan",
               setting, "--forcerun", "evaluate_split", "--until", "aggregate_setting"]
        start = time.time()
        proc = subprocess.run(cmd, cwd=args.workdir, capture_output=True, text=True)
        wall = time.time() - start
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        cpu = float(next(x for x in proc.stderr.splitlines() if x.startswith("CONTROLLER_CPU_S")).split()[1])
        jobs = sum(1 for x in proc.stderr.splitlines() if x.startswith("Finished job"))
        rows.append({"max_jobs_per_timespan": setting, "jobs": jobs, "wall_s": round(wall, 1),
                     "controller_cpu_s": cpu, "controller_cpu_fraction": round(cpu / wall, 3)})
        print(rows[-1])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
