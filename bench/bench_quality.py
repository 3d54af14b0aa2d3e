"""Time `quality_report` on million-row frames: the bundled credit table resampled, and a wide mixed table.

Run: python bench/bench_quality.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from twin_pipeline.quality import quality_report

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "samples" / "credit_data.csv"


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


def timed(label: str, real: pd.DataFrame, synthetic: pd.DataFrame) -> None:
    start = time.perf_counter()
    report = quality_report(real, synthetic)
    seconds = time.perf_counter() - start
    print(
        f"{label}: {len(real):,} x {real.shape[1]} columns vs {len(synthetic):,} rows -> {seconds:.2f} s "
        f"(similarity_score {report['similarity_score']:.2f}, correlation_error {report['correlation_error']:.4f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    timed("credit_data resampled", resampled_credit(rows, 1), resampled_credit(rows, 2))
    timed("wide mixed", wide_mixed(rows, 1), wide_mixed(rows, 2))


if __name__ == "__main__":
    main()
