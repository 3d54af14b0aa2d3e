"""Benchmark of twin_pipeline.privacy: k-anonymity speed, and the quality cost of enforcing k on a twin.

    python bench/bench_privacy.py            # 1,000,000 rows x 5 QIs, then both sample tables at 10x rows
    python bench/bench_privacy.py --quick    # 100,000 rows, sample tables at 2x rows
    python bench/bench_privacy.py --attacks  # also privacy report + anonymeter risks (train 2/3, control 1/3)

Speed: a synthetic bank table (age, income, region, sex, free-text job title with thousands of values) and an
all-numeric one (the worst case for micro-aggregation), k = 5. Quality: fit the Gaussian copula engine on
each public sample table, sample 10x rows, enforce k on the quasi-identifiers named in issue 4, and score the
unprotected and the protected twin with SDMetrics' QualityReport against the real table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin_pipeline.privacy import attacker_risk, enforce_k_anonymity, privacy_report, protect_twin  # noqa: E402
from twin_pipeline.privacy.grouping import smallest_group  # noqa: E402

SAMPLES = {
    "credit_data.csv": ["Age", "Marital", "Home", "Job", "Income"],
    "credit_card.csv": ["age", "income", "owner", "selfemp", "dependents"],
}


def bank_table(n: int, seed: int = 0) -> pd.DataFrame:
    """Mixed quasi-identifiers as a bank would have them, plus two non-identifying columns."""
    rng = np.random.default_rng(seed)
    titles = np.array([f"job title {i}" for i in range(20_000)], dtype=object)
    return pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "annual_income": np.round(rng.lognormal(10.5, 0.6, n), 2),
        "region": rng.choice([f"R{i:02d}" for i in range(50)], n),
        "sex": rng.choice(["F", "M"], n),
        "job_title": titles[np.minimum(rng.zipf(1.3, n), len(titles)) - 1],
        "loan_amount": rng.integers(1, 500, n) * 100,
        "default": rng.random(n) < 0.1,
    })


def numeric_table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "income": np.round(rng.lognormal(10.5, 0.6, n), 2),
        "dependents": rng.integers(0, 7, n),
        "seniority": rng.integers(0, 45, n),
        "birth_year_offset": rng.normal(0, 1, n).round(3),
    })


def time_k_anonymity(name: str, frame: pd.DataFrame, qis: list[str]) -> dict:
    start, cpu_start = time.perf_counter(), time.process_time()
    protected, report = enforce_k_anonymity(frame, target_k=5, quasi_identifiers=qis)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    recounted = int(protected.groupby(qis, dropna=False).size().min())
    result = {
        "table": name, "rows": len(frame), "quasi_identifiers": qis, "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2), "load_average_1min": round(os.getloadavg()[0], 2),
        "initial_k": report["initial_k"], "final_k_recounted": recounted,
        "records_suppressed": report["records_suppressed"], "information_loss": report["information_loss"],
    }
    print(json.dumps(result), flush=True)
    return result


def quality_score(real: pd.DataFrame, synthetic: pd.DataFrame) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sdmetrics marks the single-table import as moving
        from sdmetrics.reports.single_table import QualityReport

    metadata = {"columns": {
        column: {"sdtype": "numerical" if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
                 else "datetime" if pd.api.types.is_datetime64_any_dtype(dtype) else "categorical"}
        for column, dtype in real.dtypes.items()
    }}
    report = QualityReport()
    report.generate(real, synthetic, metadata, verbose=False)
    return 100 * report.get_score()


def twin_quality(file_name: str, qis: list[str], factor: int, seed: int = 0) -> dict:
    """Fit the engine, sample factor x rows, protect the twin as the pipeline does, score both twins."""
    from twin_pipeline.engine import GaussianCopulaEngine

    real = pd.read_csv(ROOT / "twin_pipeline" / "samples" / file_name)
    start = time.perf_counter()
    engine = GaussianCopulaEngine().fit(real)
    twin = engine.sample(factor * len(real), seed=seed)
    fit_sample_seconds = time.perf_counter() - start
    start = time.perf_counter()
    seeds = iter(range(seed + 1, seed + 1000))
    protected, protection = protect_twin(twin, real, lambda n: engine.sample(n, seed=next(seeds)), k=5,
                                         quasi_identifiers=qis)
    report = protection["k_anonymity"]
    protect_seconds = time.perf_counter() - start
    privacy = privacy_report(protected, real, quasi_identifiers=qis, k=5, anonymity=report)
    result = {
        "table": file_name, "real_rows": len(real), "twin_rows": len(twin), "quasi_identifiers": qis,
        "fit_and_sample_seconds": round(fit_sample_seconds, 2), "protect_seconds": round(protect_seconds, 2),
        "initial_k": report["initial_k"], "final_k_recounted": smallest_group(protected, qis),
        "records_suppressed": report["records_suppressed"],
        "rare_record_copies_found": protection["exact_copies"]["rare_record_copies_found"],
        "exact_match_rate_after": privacy["exact_match_rate"],
        "rare_string_cells_replaced": sum(c["cells_replaced"] for c in protection["rare_strings"].values()),
        "information_loss": report["information_loss"],
        "quality_unprotected": round(quality_score(real, twin), 2),
        "quality_protected": round(quality_score(real, protected), 2),
    }
    result["quality_drop_points"] = round(result["quality_unprotected"] - result["quality_protected"], 2)
    print(json.dumps(result), flush=True)
    return result


def attack_risk(file_name: str, qis: list[str], seed: int = 0) -> dict:
    """anonymeter risks of a protected twin trained on 2/3 of a sample table, the last third as control."""
    from twin_pipeline.engine import GaussianCopulaEngine

    real = pd.read_csv(ROOT / "twin_pipeline" / "samples" / file_name)
    shuffled = real.sample(frac=1, random_state=seed).reset_index(drop=True)
    train, holdout = shuffled.iloc[: 2 * len(real) // 3], shuffled.iloc[2 * len(real) // 3:]
    engine = GaussianCopulaEngine().fit(train)
    seeds = iter(range(seed + 1, seed + 1000))
    twin, protection = protect_twin(engine.sample(5_000, seed=seed), train,
                                    lambda n: engine.sample(n, seed=next(seeds)), k=5, quasi_identifiers=qis)
    start = time.perf_counter()
    privacy = privacy_report(twin, train, holdout, quasi_identifiers=qis, anonymity=protection["k_anonymity"])
    report_seconds = time.perf_counter() - start
    start = time.perf_counter()
    risk = attacker_risk(twin, train, holdout, quasi_identifiers=qis, n_attacks=500, seed=seed)
    result = {"table": file_name, "privacy_report_seconds": round(report_seconds, 2),
              "attacker_risk_seconds": round(time.perf_counter() - start, 2),
              "distance_to_closest_record": privacy["distance_to_closest_record"],
              "share_closer_to_train_than_holdout": privacy["share_closer_to_train_than_holdout"],
              "exact_match_rate": privacy["exact_match_rate"], **risk}
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 rows and 2x twins instead of 1,000,000 and 10x")
    parser.add_argument("--skip-quality", action="store_true", help="only the k-anonymity speed benchmark")
    parser.add_argument("--attacks", action="store_true", help="also run anonymeter attacks (about 20 s a table)")
    args = parser.parse_args()
    rows = 100_000 if args.quick else 1_000_000
    results = {"speed": [time_k_anonymity("bank (mixed QIs)", bank_table(rows),
                                           ["age", "annual_income", "region", "sex", "job_title"]),
                         time_k_anonymity("all-numeric QIs", numeric_table(rows), list(numeric_table(10).columns))]}
    if not args.skip_quality:
        results["quality"] = [twin_quality(file_name, qis, factor=2 if args.quick else 10)
                              for file_name, qis in SAMPLES.items()]
    if args.attacks:
        results["attacks"] = [attack_risk(file_name, qis) for file_name, qis in SAMPLES.items()]
    target = ROOT / "bench" / "results" / ("privacy_quick.json" if args.quick else "privacy.json")
    target.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"saved {target}")


if __name__ == "__main__":
    main()
