"""Quality against the holdout ceiling and TSTR utility on the shared credit tables (what the README quotes),
and the time of `quality_report` on million-row frames (the credit table resampled, a wide mixed table).

Run: python bench/bench_quality.py [--rows 1000000] [--data /work/shared/datasets]; results in
bench/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin_pipeline import pipeline  # noqa: E402
from twin_pipeline.options import CloneOptions  # noqa: E402
from twin_pipeline.privacy import detect_quasi_identifiers  # noqa: E402
from twin_pipeline.quality import quality_report  # noqa: E402
from twin_pipeline.tables import read_table  # noqa: E402
from twin_pipeline_tests.shapes import lending_table  # noqa: E402

SAMPLE = ROOT / "twin_pipeline" / "samples" / "credit_data.csv"
SHARED = Path("/work/shared/datasets")
TABLES = ("credit_data.csv", "credit_card.csv")  # the outcome column is found, not given (outcome.py)


def resampled_credit(rows: int, seed: int) -> pd.DataFrame:
    """credit_data.csv drawn with replacement to `rows` rows, numeric columns jittered by 5% of their spread."""
    rng = np.random.default_rng(seed)
    real = pd.read_csv(SAMPLE)
    frame = real.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    for name in frame.select_dtypes("number"):
        noise = rng.normal(0, 0.05 * frame[name].std(), rows)
        frame[name] = (frame[name] + noise).round().clip(lower=real[name].min())
    return frame


def wide_mixed(rows: int, seed: int, numeric: int = 40, categorical: int = 20) -> pd.DataFrame:
    """A 60-column table: correlated normals with 5% nulls, text categories of 3-22 levels, one datetime."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(rows, 4))
    columns = {}
    for i in range(numeric):
        values = base[:, i % 4] + rng.normal(scale=1.0 + i % 3, size=rows)
        values[rng.random(rows) < 0.05] = np.nan
        columns[f"num_{i}"] = values
    for i in range(categorical):
        levels = np.array([f"level_{j}" for j in range(3 + i)])
        columns[f"cat_{i}"] = levels[np.clip((base[:, i % 4] * 2 + 3 + i / 2).astype(int), 0, len(levels) - 1)]
    columns["opened"] = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, rows), unit="D")
    return pd.DataFrame(columns)


def timed(label: str, real: pd.DataFrame, synthetic: pd.DataFrame) -> dict:
    start = time.perf_counter()
    report = quality_report(real, synthetic)
    seconds = time.perf_counter() - start
    print(
        f"{label}: {len(real):,} x {real.shape[1]} columns vs {len(synthetic):,} rows -> {seconds:.2f} s "
        f"(similarity_score {report['similarity_score']:.2f}, correlation_error {report['correlation_error']:.4f})"
    )
    return {"table": label, "rows": len(real), "columns": real.shape[1], "seconds": seconds,
            "similarity_score": report["similarity_score"]}


def reference(label: str, real: pd.DataFrame, target: str | None) -> dict:
    """The pipeline's holdout ceiling and TSTR, with the clone's default options (quasi-identifiers detected)."""
    options = replace(CloneOptions(target=target), quasi_identifiers=detect_quasi_identifiers(real))
    start = time.perf_counter()
    result = pipeline.reference_quality(real, options)
    seconds = time.perf_counter() - start
    holdout, utility = result["holdout"], result["utility"]
    print(f"{label} ({len(real):,} x {real.shape[1]}): ceiling {holdout['ceiling']:.1f}, twin {holdout['twin_vs_holdout']:.1f}, "
          f"quality_vs_ceiling {holdout['quality_vs_ceiling']:.1f}; TSTR {utility.get('metric')} on {utility.get('target')}: "
          f"real {utility.get('real', float('nan')):.3f}, twin {utility.get('twin', float('nan')):.3f}, "
          f"importance Spearman {utility.get('importance_agreement', {}).get('spearman', float('nan')):.2f} ({seconds:.1f} s)")
    utility = {key: value for key, value in utility.items() if key != "importance_agreement"} | {
        "importance_agreement": {key: value for key, value in utility.get("importance_agreement", {}).items()
                                 if key != "importances"}}
    return {"table": label, "rows": len(real), "columns": real.shape[1], "seconds": seconds,
            "holdout": {key: value for key, value in holdout.items() if key != "columns"}, "utility": utility}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the timing frames (0: no timing)")
    parser.add_argument("--data", type=Path, default=SHARED, help="folder with credit_data.csv and credit_card.csv")
    args = parser.parse_args()
    results = {"reference": [reference(name, read_table(args.data / name), None) for name in TABLES]}
    results["reference"].append(reference("lending_table (shapes.py, 10,000 x 55)", lending_table(n=10_000), None))
    if args.rows:
        results["timing"] = [timed("credit_data resampled", resampled_credit(args.rows, 1), resampled_credit(args.rows, 2)),
                             timed("wide mixed", wide_mixed(args.rows, 1), wide_mixed(args.rows, 2))]
    target = ROOT / "bench" / "results" / "quality.json"
    if not args.rows and target.exists():  # --rows 0: the saved timing stays as it was measured
        results["timing"] = json.loads(target.read_text()).get("timing")
    target.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"saved {target}")


if __name__ == "__main__":
    main()
