"""The holdout reference every `twin clone` computes (pipeline.reference_quality: the ceiling, the twin of 80 % of
the rows against the 20 % held out, quality_vs_ceiling, TSTR with its bootstrap interval and importance
agreement), on the shared tables and tables of other shapes, for several clone seeds, with its CPU seconds: the
check that a faster evaluation still gives the same figures (compare two runs' JSON).

    python bench/bench_reference.py                            # every table, seeds 0 1 2
    python bench/bench_reference.py --tables tiny wide --seeds 0   # results in bench/results/reference.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin_pipeline import pipeline  # noqa: E402
from twin_pipeline.options import CloneOptions, resolve_options  # noqa: E402
from twin_pipeline.tables import read_table  # noqa: E402
from twin_pipeline_tests.shapes import lending_table, loan_book_table, narrow_table, overdraft_table  # noqa: E402

SHARED = Path(os.environ.get("TWIN_SHARED_DATASETS", "/work/shared/datasets"))
RESULTS = ROOT / "bench" / "results" / "reference.json"
TABLES = {  # the tables of bench_cli.py
    "credit_data": lambda: read_table(SHARED / "credit_data.csv"),
    "credit_card": lambda: read_table(SHARED / "credit_card.csv"),
    "tiny": lambda: overdraft_table(0),
    "narrow": lambda: narrow_table(0, 30_000),
    "wide": lambda: lending_table(0, 10_000),
    "loans": lambda: loan_book_table(0),  # the reviewer's shape: 2 % default stepping with discrete columns
}


def measure(real, seed: int) -> dict:
    """reference_quality as `twin clone --seed SEED` runs it (quasi-identifiers pinned, dropped identifiers left
    out), in this process."""
    options, _ = resolve_options(real, CloneOptions(scale=10, seed=seed), "bench")
    options = pipeline.pin_quasi_identifiers(real, options)
    start = time.process_time()
    reference = pipeline.reference_quality(real.drop(columns=pipeline.dropped_columns(real, options)), options)
    holdout, utility = reference["holdout"], reference["utility"]
    agreement = utility.get("importance_agreement") or {}
    return {"seed": seed, "cpu_s": round(time.process_time() - start, 2), "ceiling": holdout.get("ceiling"),
            "twin_vs_holdout": holdout.get("twin_vs_holdout"), "quality_vs_ceiling": reference["quality_vs_ceiling"],
            "tstr_target": utility.get("target"), "tstr_real": utility.get("real"), "tstr_twin": utility.get("twin"),
            "tstr_gap": utility.get("gap"), "tstr_gap_ci": utility.get("gap_ci"),
            "importance_spearman": agreement.get("spearman"), "top_overlap": agreement.get("top_overlap"),
            "load_average_1min": round(os.getloadavg()[0], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    results = {}
    for name in args.tables:
        real = TABLES[name]()
        results[name] = [measure(real, seed) for seed in args.seeds]
        for row in results[name]:
            print(name, json.dumps(row), flush=True)
    RESULTS.write_text(json.dumps({"command": "python bench/bench_reference.py " + " ".join(sys.argv[1:]),
                                   "tables": results}, indent=1) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
