"""CPU seconds of the clone's main line, stage by stage, for one or two source trees side by side.

    python bench/bench_mainline.py --tables narrow wide large                 # this tree
    python bench/bench_mainline.py --tables wide --trees /work/main .         # before / after; results merged into
                                                                              # bench/results/mainline.json

`twin clone T --scale 10` runs two processes; the main one's serial path (fit, make_shards, verify_shards,
sample_shards, the quality comparison and report) bounds the command's wall time once the helper keeps up
(issue 13). bench_cli times the whole command; this splits the main line into its stages, each by process CPU
time in a fresh process per run (one BLAS thread, as `clone_file` runs it; no helper: the pictures' aggregates are
computed here, their drawing is not), so a change's effect on one stage shows through a shared machine's noise.
Trees alternate run by run and the medians count; the load average is saved with each row. Tables are bench_cli's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_cli import TABLES  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "mainline.json"
STAGES = ("read", "fit", "make_shards", "verify_shards", "sample_shards", "report")
RUN = """
import json, sys, tempfile, time
from pathlib import Path
from threadpoolctl import threadpool_limits
from twin_pipeline import pipeline as P
from twin_pipeline.options import CloneOptions, resolve_options

source, seconds = Path(sys.argv[1]), {}
def stage(name, work):
    start = time.process_time()
    result = work()
    seconds[name] = time.process_time() - start
    return result
with threadpool_limits(1, user_api="blas"), tempfile.TemporaryDirectory() as folder:
    real = stage("read", lambda: P.read_table(source))
    options, n = resolve_options(real, CloneOptions(scale=10), source)
    options = P.pin_quasi_identifiers(real, options)
    engine = stage("fit", lambda: P.fit_model(real, options))
    shards = stage("make_shards", lambda: P.make_shards(engine, real, options, n, Path(folder)))
    verified = stage("verify_shards", lambda: P.verify_shards(Path(folder), real, list(options.quasi_identifiers),
                                                              P.key_columns(real, options), options.k))
    twin = stage("sample_shards", lambda: P.sample_shards(Path(folder)))
    stage("report", lambda: P.report(real, twin, engine, options, P.combine_protection(shards), verified,
                                     P.report_figures(real, twin, options).comparison))
print(json.dumps(seconds))
"""


def run(tree: Path, source: Path) -> dict:
    """One fresh process of `tree`'s code: {stage: CPU seconds}."""
    done = subprocess.run([sys.executable, "-c", RUN, str(source)], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--trees", nargs="+", default=[str(ROOT)], help="source trees (a checkout's root), alternated")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    trees = [Path(tree).resolve() for tree in args.trees]
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    with tempfile.TemporaryDirectory() as folder:
        for table in args.tables:
            source = Path(folder) / f"{table}.csv"
            TABLES[table]().to_csv(source, index=False)
            runs = {tree: [] for tree in trees}
            for _ in range(args.repeats):
                for tree in trees:
                    runs[tree].append({**run(tree, source), "load": os.getloadavg()[0]})
            rows = {}
            for tree, measured in runs.items():
                medians = {name: round(statistics.median(entry[name] for entry in measured), 3) for name in STAGES}
                medians["total"] = round(statistics.median(sum(entry[name] for name in STAGES)
                                                           for entry in measured), 3)
                commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True).stdout.strip()
                rows[commit] = {"tree": str(tree), "cpu_s_median": medians, "runs": measured}
                print(table, commit, medians, flush=True)
            results[table] = rows
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
