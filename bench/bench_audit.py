"""Would the attacker audit catch a leak? A generator that publishes its training rows against one that draws fresh
rows from the same population, on the shared tables and tables of other shapes; and the pipeline's own twin.

    python bench/bench_audit.py        # results in bench/results/audit.json

For a real table there is no "true distribution" to draw fresh rows from, so the table is split in two random
halves: the audit runs on half A, and the fresh generator returns rows of half B (people from the same population
whom the generator never saw). The copying generator returns its training rows as they are. A leak is caught when
the audit flags it (risk >= 0.05, family-wise 95 % interval above 0).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin_pipeline import pipeline  # noqa: E402
from twin_pipeline.options import CloneOptions  # noqa: E402
from twin_pipeline.privacy import audit_generator  # noqa: E402
from twin_pipeline.privacy.risk import risk_figures  # noqa: E402
from twin_pipeline_tests.shapes import lending_table, mixed_table, narrow_table, overdraft_table  # noqa: E402

SHARED = Path(os.environ.get("TWIN_SHARED_DATASETS", "/work/shared/datasets"))
RESULTS = ROOT / "bench" / "results" / "audit.json"
TABLES = {
    "credit_data": lambda: pd.read_csv(SHARED / "credit_data.csv"),
    "credit_card": lambda: pd.read_csv(SHARED / "credit_card.csv"),
    "tiny": lambda: overdraft_table(0),
    "narrow": lambda: narrow_table(0, 30_000),
    "wide": lambda: lending_table(0, 10_000),
    "large": lambda: mixed_table(0),
}


def summary(audit: dict, seconds: float) -> dict:
    if audit.get("status", "completed") != "completed" or "budget" not in audit:
        return {"status": audit.get("status"), "reason": audit.get("skipped") or audit.get("error"),
                "seconds": round(seconds, 2)}
    return {"seconds": round(seconds, 2), "flagged": audit["flagged"], "secrets": audit["secrets"],
            "truncated": audit["budget"]["truncated"],
            "risks": {name: {"risk": round(figure["risk"], 3), "ci": [round(v, 3) for v in figure["ci"]],
                             "ci_family": [round(v, 3) for v in figure["ci_family"]]}
                      for name, figure in risk_figures(audit).items()}}


def timed(run):
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def bench_table(name: str) -> dict:
    real = TABLES[name]()
    order = np.random.default_rng(0).permutation(len(real))
    half_a, half_b = real.iloc[order[: len(real) // 2]], real.iloc[order[len(real) // 2:]].reset_index(drop=True)
    fresh = lambda train: half_b.sample(len(train), replace=len(train) > len(half_b), random_state=1)  # noqa: E731
    row = {"table": name, "rows": len(real), "columns": real.shape[1], "audited_half": len(half_a)}
    row["copying"] = summary(*timed(lambda: audit_generator(half_a, lambda train: train.copy(), seed=0)))
    row["fresh"] = summary(*timed(lambda: audit_generator(half_a, fresh, seed=0)))
    row["pipeline"] = summary(*timed(lambda: pipeline.privacy_audit(real, CloneOptions())))
    row["caught_copying"] = "membership" in row["copying"].get("flagged", [])
    row["passed_fresh"] = row["fresh"].get("flagged") == []
    row["load_average_1min"] = round(os.getloadavg()[0], 1)  # the machine is shared: the seconds vary with it
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    rows = [bench_table(name) for name in TABLES]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"command": "python bench/bench_audit.py", "cpus": os.cpu_count(),
                                   "tables": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
