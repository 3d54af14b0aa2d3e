"""Scale benchmark: end-to-end `twin clone` of credit_data.csv at 10M (and optionally 100M) rows, and the
shard stage's throughput with one worker vs two.

    python bench/bench_scale.py                 # 10M rows end to end, 1 vs 2 workers, a 1M x 50 fit (about 3 minutes)
    python bench/bench_scale.py --rows 100000000 --skip-workers --skip-wide-fit   # the 100M-row run

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
SAMPLE = ROOT / "twin_pipeline" / "samples" / "credit_data.csv"
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

    from twin_pipeline.options import CloneOptions
    from twin_pipeline.pipeline import fit_model
    from twin_pipeline.shards import make_shards

    real = pd.read_csv(SAMPLE)
    options = CloneOptions(quasi_identifiers=QIS.split(","), seed=0)
    engine = fit_model(real, options)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        make_shards(engine, real, options, rows, Path(folder), workers=workers)
        seconds = time.perf_counter() - started
    return {"workers": workers, "rows": rows, "seconds": round(seconds, 1), "rows_per_second": round(rows / seconds)}


WIDE_FIT = """
import sys, time
import numpy as np, pandas as pd
sys.path.insert(0, {root!r})
from twin_pipeline.engine import GaussianCopulaEngine
rng = np.random.default_rng(0)
n, base = 1_000_000, rng.standard_normal((1_000_000, 5))
columns = {{}}
for i in range(50):  # categoricals, skewed integers, numbers with 30 % nulls, flags, decimals; 5 latent factors
    x = base[:, i % 5] * 0.7 + rng.standard_normal(n) * 0.7
    kind = i % 5
    if kind == 0: columns[f"cat{{i}}"] = np.array(list("ABCDEFGH"))[np.digitize(x, [-1.5, -1, -.5, 0, .5, 1, 1.5])]
    elif kind == 1: columns[f"int{{i}}"] = np.round(np.exp(x) * 100).astype(int)
    elif kind == 2: columns[f"num{{i}}"] = np.where(x < -0.5, np.nan, np.round(np.exp(x + 3), 2))
    elif kind == 3: columns[f"flag{{i}}"] = x > 1
    else: columns[f"z{{i}}"] = np.round(x * 1000, 1)
frame = pd.DataFrame(columns)
started = time.perf_counter()
GaussianCopulaEngine().fit(frame)
print(time.perf_counter() - started, next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")))
"""


def wide_fit() -> dict:
    """Fit 1,000,000 rows x 50 columns in a fresh process: seconds and peak memory (frame included)."""
    output = subprocess.run([sys.executable, "-c", WIDE_FIT.format(root=str(ROOT))], check=True, capture_output=True,
                            text=True).stdout.split()
    return {"rows": 1_000_000, "columns": 50, "fit_seconds": round(float(output[0]), 1),
            "peak_rss_mib_with_the_frame": round(int(output[1]) / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-workers", action="store_true", help="skip the 1 vs 2 workers comparison")
    parser.add_argument("--skip-wide-fit", action="store_true", help="skip fitting 1,000,000 x 50")
    args = parser.parse_args()
    results = {"machine": {"cpus": os.cpu_count(), "load_start": os.getloadavg()[0]}}  # times inflate under load
    with tempfile.TemporaryDirectory() as out:
        results["end_to_end"] = run_clone(args.rows, args.workers, Path(out))
    print(results["end_to_end"], flush=True)
    if not args.skip_workers:
        one, two = shard_throughput(1, 4_000_000), shard_throughput(2, 4_000_000)
        results["shard_stage"] = [one, two, {"speedup": round(two["rows_per_second"] / one["rows_per_second"], 2)}]
        print(results["shard_stage"], flush=True)
    if not args.skip_wide_fit:
        results["wide_fit"] = wide_fit()
        print(results["wide_fit"], flush=True)
    results["machine"]["load_end"] = os.getloadavg()[0]
    target = ROOT / "bench" / "results" / f"scale_{args.rows}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
