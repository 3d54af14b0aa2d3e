"""How much of a weak default signal can any twin keep under a copy rule? (issue #13, TSTR on small discrete tables)

A perfect twin is fresh rows of the table's own generator (what an ideal model would sample). Each candidate copy
rule removes the twin rows it forbids, as the protection would (a replacement can only move a forbidden row to an
allowed combination); TSTR is then measured as `twin clone` does (quality.utility.tstr: the same gradient
boosting trained on the twin and on the real training rows), tested on 20,000 fresh held-out rows, over 5 seeds.
The engine's own unprotected and protected twins of the same training rows are measured beside it.

Rules (a twin row "equals a real record" on every column; counts are real training rows sharing it):
  none            every row kept (the perfect twin, or the engine's unprotected sample);
  below_k         the product's rule: no row equal to a record fewer than k real rows share;
  unique_only     no row equal to a record no other real row shares;
  qi_and_outcome  below_k, judged on the quasi-identifiers plus the outcome (a full copy is forbidden only when
                  fewer than k real rows share its quasi-identifiers and outcome).

    python bench/bench_tstr_bound.py            # tiny, narrow, loans; bench/results/tstr_bound.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin_pipeline import pipeline, protection  # noqa: E402
from twin_pipeline.options import CloneOptions, resolve_options  # noqa: E402
from twin_pipeline.outcome import outcome_column  # noqa: E402
from twin_pipeline.privacy.copies import RealCombinations  # noqa: E402
from twin_pipeline.quality.utility import tstr  # noqa: E402
from twin_pipeline_tests.shapes import loan_book_table, narrow_table, overdraft_table  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "tstr_bound.json"
K = 5
TABLES = {"tiny": (overdraft_table, 450), "narrow": (narrow_table, 10_000), "loans": (loan_book_table, 10_000)}


def forbidden(twin, train, qis, outcome) -> dict:
    full = RealCombinations(train, list(train.columns)).count(twin)
    judged = RealCombinations(train, list(qis) + [outcome]).count(twin)
    return {"none": np.zeros(len(twin), bool), "below_k": (full > 0) & (full < K), "unique_only": full == 1,
            "qi_and_outcome": (full > 0) & (full < K) & (judged > 0) & (judged < K)}


def measure(name: str, seed: int) -> dict:
    make, rows = TABLES[name]
    n_train = int(rows * 0.8)
    train, holdout, perfect = make(1000 + seed, n_train), make(2000 + seed, 20_000), make(3000 + seed, n_train)
    options, _ = resolve_options(train, CloneOptions(seed=seed), "bench")
    options = pipeline.pin_quasi_identifiers(train, options)
    outcome, _ = outcome_column(train)
    engine = pipeline.fit_model(train, options)
    sample = engine.sample(n_train, seed=seed)
    protected, _ = protection.protect(sample, train, engine, options)
    auc = lambda twin: tstr(train, twin, holdout, seed=seed)  # noqa: E731
    result = {"seed": seed, "quasi_identifiers": list(options.quasi_identifiers), "real": auc(perfect)["real"],
              "engine_protected": auc(protected)["twin"]}
    for twin_name, twin in (("perfect", perfect), ("engine", engine.typed_view(sample))):
        for rule, mask in forbidden(twin, train, options.quasi_identifiers, outcome).items():
            result[f"{twin_name}_{rule}"] = auc(twin[~mask])["twin"]
            result[f"{twin_name}_{rule}_forbidden_share"] = float(mask.mean())
    return result


def main() -> None:
    tables = {}
    for name in TABLES:
        runs = [measure(name, seed) for seed in range(5)]
        keys = [key for key in runs[0] if key not in ("seed", "quasi_identifiers")]
        tables[name] = {"mean": {key: round(float(np.mean([run[key] for run in runs])), 3) for key in keys},
                        "runs": runs}
        print(name, json.dumps(tables[name]["mean"]), flush=True)
    RESULTS.write_text(json.dumps({"command": "python bench/bench_tstr_bound.py", "k": K,
                                   "load_average_1min": round(os.getloadavg()[0], 1), "tables": tables},
                                  indent=1) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
