"""Scale benchmark: end-to-end `twin clone` of credit_data.csv at 10M (and optionally 100M) rows, and the
shard stage's throughput with one worker vs two.

    python bench/bench_scale.py                 # 10M rows end to end + 1 vs 2 workers (about 6 minutes)
    python bench/bench_scale.py --rows 100000000 --skip-workers   # the 100M-row run (about 25 minutes)

Peak memory is the largest sum of resident set sizes over the whole process tree (the CLI and its worker
processes), sampled from /proc every 0.2 s. Results go to bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "samples" / "credit_data.csv"
QIS = "Age,Marital,Home,Job,Income"


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending += [int(child) for child in children.read().split()]
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            continue
    return total / 1024


def run_clone(rows: int, workers: int, out: Path) -> dict:
    command = [sys.executable, "-m", "twin_pipeline.cli", "clone", str(SAMPLE), "--out", str(out), "--rows", str(rows),
               "--workers", str(workers), "--quasi-identifiers", QIS, "--format", "parquet"]
    started, peak = time.perf_counter(), 0.0
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while process.poll() is None:
        peak = max(peak, tree_rss_mib(process.pid))
        time.sleep(0.2)
    output = process.stdout.read()
    if process.returncode:
        raise RuntimeError(output)
    privacy = json.loads((out / "privacy_report.json").read_text())
    quality = json.loads((out / "quality_report.json").read_text())
    return {"rows": rows, "workers": workers, "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mib_process_tree": round(peak), "k_recounted": privacy["k"], "exact_copies": privacy["exact_matches"],
            "rows_written": privacy["rows"], "similarity_score": round(quality["similarity_score"], 2),
            "correlation_error": round(quality["correlation_error"], 4)}


def shard_throughput(workers: int, rows: int) -> dict:
    """Rows per second of the shard stage alone (sample + protect + write), fit excluded."""
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from twin_pipeline.pipeline import CloneOptions, fit_model
    from twin_pipeline.shards import make_shards

    real = pd.read_csv(SAMPLE)
    options = CloneOptions(quasi_identifiers=QIS.split(","), seed=0)
    engine = fit_model(real, options)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        make_shards(engine, real, options, rows, Path(folder), workers=workers)
        seconds = time.perf_counter() - started
    return {"workers": workers, "rows": rows, "seconds": round(seconds, 1), "rows_per_second": round(rows / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-workers", action="store_true", help="skip the 1 vs 2 workers comparison")
    args = parser.parse_args()
    results = {"machine": {"cpus": os.cpu_count()}}
    with tempfile.TemporaryDirectory() as out:
        results["end_to_end"] = run_clone(args.rows, args.workers, Path(out))
    print(results["end_to_end"], flush=True)
    if not args.skip_workers:
        one, two = shard_throughput(1, 4_000_000), shard_throughput(2, 4_000_000)
        results["shard_stage"] = [one, two, {"speedup": round(two["rows_per_second"] / one["rows_per_second"], 2)}]
        print(results["shard_stage"], flush=True)
    target = ROOT / "bench" / "results" / f"scale_{args.rows}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
