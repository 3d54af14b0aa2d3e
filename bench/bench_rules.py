"""Rules and tails benchmark: what a credit analyst checks in the twin, with the rules engine and without.

    python bench/bench_rules.py            # the shared tables (/work/shared/datasets or $TWIN_SHARED) and the shapes
    python bench/bench_rules.py --quick    # smaller twins

Figures (printed, and saved to bench/results/rules.json):
* per table: rules found (and kept by construction), the share of twin rows breaking each mined rule that holds on
  every real row, mean and worst, for the engine without rules and rounding steps (as it was before them) and with;
* rounding: for every column with rounding steps, the largest gap in points between the real and twin shares of
  values on a step;
* SDMetrics QualityReport of the twin without and with rules;
* fit time of the 55-column lending table without and with rules (best of 3), and mining alone;
* tails: a 50,000-row Clayton (theta = 2) table and a Student-t (nu = 3, rho = 0.7) table, empirical tail
  dependence at q = 0.01 of every pair, lower and upper, real vs twin (and vs a Gaussian-copula twin).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "twin_pipeline_tests"))
warnings.filterwarnings("ignore")

from bench_engine import sdmetrics_score, timed  # noqa: E402
from test_engine_tails import clayton_table, elliptical_table, tail_dependence  # noqa: E402
from twin_pipeline.engine import GaussianCopulaEngine  # noqa: E402
from twin_pipeline.engine.transformers import detect_spec  # noqa: E402
from twin_pipeline.engine.rules import mining  # noqa: E402
from twin_pipeline.engine.rules.report import broken_share  # noqa: E402
from twin_pipeline_tests.shapes import SHAPES  # noqa: E402

SHARED = Path(os.environ.get("TWIN_SHARED", "/work/shared/datasets"))
RESULTS = ROOT / "bench" / "results"


def tables() -> dict[str, pd.DataFrame]:
    found = {name: pd.read_csv(SHARED / f"{name}.csv") for name in ("credit_data", "credit_card")
             if (SHARED / f"{name}.csv").exists()}
    return {**found, **{f"shape:{name}": build(seed=0) for name, build in SHAPES.items()}}


def rounding_gap(report: dict) -> float:
    gaps = [abs(real - twin) for entry in report["rounding"].values()
            for real, twin in zip(entry["real"], entry["twin"]) if real is not None and twin is not None]
    return round(100 * max(gaps), 2) if gaps else 0.0


def table_row(name: str, real: pd.DataFrame, rows: int) -> dict:
    with_rules = GaussianCopulaEngine().fit(real)
    without = GaussianCopulaEngine(mine_rules=False).fit(real)
    for spec in without.specs:  # the engine as it was: no rules, no rounding steps
        spec.rounding = None
    row = {"table": name, "rows": len(real), "columns": real.shape[1], "twin_rows": rows}
    for label, engine in (("without", without), ("with", with_rules)):
        twin = engine.sample(rows, seed=1)
        # the rules found with the rules engine, measured on both twins
        report = with_rules.rules_report(real, twin)
        exact = [entry for entry in report["rules"] if entry["source"] == "mined" and entry["real"]["share"] == 1.0]
        breaks = [share for share in map(broken_share, exact) if share is not None]
        row[f"break_mean_{label}"] = round(100 * float(np.mean(breaks)), 3) if breaks else 0.0
        row[f"break_worst_{label}"] = round(100 * float(np.max(breaks)), 3) if breaks else 0.0
        row[f"rounding_gap_points_{label}"] = rounding_gap(report)  # the steps found with rounding, on both twins
        row[f"sdmetrics_{label}"] = sdmetrics_score(real, twin.head(min(rows, 20_000)))
    row["rules"] = len(with_rules.rules.rules)
    row["enforced"] = sum(rule.enforced for rule in with_rules.rules.rules)
    row["rule_list"] = [{"rule": rule.text, "enforced": rule.enforced, "real_share": rule.real_share}
                        for rule in with_rules.rules.rules]
    return row


def fit_time_row() -> dict:
    real = SHAPES["wide"](seed=0)
    specs = [detect_spec(real[name]) for name in real.columns]
    _, mine_seconds = timed(lambda: mining.mine(real, specs), repeat=3)
    _, without = timed(lambda: GaussianCopulaEngine(mine_rules=False).fit(real), repeat=3)
    _, with_rules = timed(lambda: GaussianCopulaEngine().fit(real), repeat=3)
    return {"table": "shape:wide", "rows": len(real), "columns": real.shape[1], "mine_s": round(mine_seconds, 2),
            "fit_without_rules_s": round(without, 2), "fit_with_rules_s": round(with_rules, 2),
            "growth_s": round(with_rules - without, 2)}


def tail_row(name: str, real: pd.DataFrame, rows: int) -> dict:
    engine = GaussianCopulaEngine().fit(real)
    gaussian = GaussianCopulaEngine(preserve_tails=False).fit(real)
    measured = {label: tail_dependence(model.sample(rows, seed=1), 0.01) for label, model in
                (("twin", engine), ("gaussian_twin", gaussian))}
    truth = tail_dependence(real, 0.01)
    half = len(truth) // 2
    return {"table": name, "copula": engine.tails["copula"], "theta": engine.tails.get("theta"),
            "degrees_of_freedom": engine.tails.get("degrees_of_freedom"),
            "lower_real": truth[:half].round(3).tolist(), "lower_twin": measured["twin"][:half].round(3).tolist(),
            "upper_real": truth[half:].round(3).tolist(), "upper_twin": measured["twin"][half:].round(3).tolist(),
            "max_gap": round(float(np.abs(measured["twin"] - truth).max()), 3),
            "max_gap_gaussian": round(float(np.abs(measured["gaussian_twin"] - truth).max()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller twins")
    args = parser.parse_args()
    cap = 20_000 if args.quick else 100_000
    started = time.perf_counter()
    results = {"tables": [table_row(name, real, min(10 * len(real), cap)) for name, real in tables().items()]}
    results["fit_time"] = fit_time_row()
    results["tails"] = [tail_row("clayton theta=2 (50,000 rows)", clayton_table(50_000), 200_000),
                        tail_row("student-t nu=3 rho=0.7 (20,000 rows)", elliptical_table(20_000, rho=0.7, nu=3), 200_000)]
    results["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rules.json").write_text(json.dumps(results, indent=2))
    print("| table | rules (kept) | twin rows breaking a mined rule, mean / worst: without -> with | rounding gap, points | SDMetrics without -> with |")
    print("|---|---|---|---|---|")
    for row in results["tables"]:
        print(f"| {row['table']} | {row['rules']} ({row['enforced']}) | {row['break_mean_without']:.2f} % / "
              f"{row['break_worst_without']:.2f} % -> {row['break_mean_with']:.3f} % / {row['break_worst_with']:.3f} % | "
              f"{row['rounding_gap_points_without']} -> {row['rounding_gap_points_with']} | "
              f"{row['sdmetrics_without']} -> {row['sdmetrics_with']} |")
    print(json.dumps(results["fit_time"]))
    for row in results["tails"]:
        print(json.dumps({key: value for key, value in row.items()}))


if __name__ == "__main__":
    main()
