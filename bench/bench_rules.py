"""Rules and tails benchmark: what a credit analyst checks in the twin, with the rules engine and without.

    python bench/bench_rules.py            # the shared tables (/work/shared/datasets or $TWIN_SHARED) and the shapes
    python bench/bench_rules.py --quick    # smaller twins

Figures (printed, and saved to bench/results/rules.json):
* per table: rules found (and kept by construction), the share of twin rows breaking each mined rule that holds on
  every real row, mean and worst, for the engine without rules and rounding steps (as it was before them) and with,
  measured on the twin the user gets: made as `twin clone` makes it (pipeline.fit_model with the detected
  quasi-identifiers, shards sampled and protected by shards.make_shards, read back), and on the same rows as drawn
  before protection (k-anonymity moves quasi-identifiers; the rules must survive it);
* rounding: for every column with rounding steps, the largest gap in points between the real and twin shares of
  values on a step;
* SDMetrics QualityReport without and with rules, over seeds (fit on a random half, twin scored against the
  held-out half, which the model never saw, and against the fitting half): mean +- standard error per variant and
  of the paired difference, so fidelity is measured and not memorisation;
* fit time of the 55-column lending table without and with rules (best of 3, runs interleaved so both see the same
  load, which is recorded), and mining alone;
* tails: a 50,000-row Clayton (theta = 2) table and a Student-t (nu = 3, rho = 0.7) table, empirical tail
  dependence at q = 0.01 of every pair, lower and upper, real vs twin (and vs a Gaussian-copula twin).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import replace
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
from shapes import lending_table  # noqa: E402
from twin_pipeline import pipeline  # noqa: E402
from twin_pipeline.engine import GaussianCopulaEngine  # noqa: E402
from twin_pipeline.options import CloneOptions  # noqa: E402
from twin_pipeline.privacy import detect_quasi_identifiers  # noqa: E402
from twin_pipeline.shards import make_shards, sample_shards, shard_seed  # noqa: E402
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


# the table `twin clone /tmp/wide.csv --scale 10` was run on when the protected twin broke rules: breaks only
EXTRA = {"shape:wide 10,000 rows": lambda: lending_table(0, 10_000)}


def clone_twin(engine: GaussianCopulaEngine, real: pd.DataFrame, options: CloneOptions, rows: int) -> tuple:
    """(the protected twin, the same rows as drawn before protection), made as `twin clone` makes them."""
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as folder:
        make_shards(engine, real, options, rows, Path(folder))
        protected = sample_shards(Path(folder), rows=rows)
    return protected, engine.sample(rows, seed=shard_seed(options.seed, 0))


def rounding_gap(report: dict) -> float:
    gaps = [abs(real - twin) for entry in report["rounding"].values()
            for real, twin in zip(entry["real"], entry["twin"]) if real is not None and twin is not None]
    return round(100 * max(gaps), 2) if gaps else 0.0


def without_rules(real: pd.DataFrame) -> GaussianCopulaEngine:
    """The engine as it was before rules: no rules, no rounding steps."""
    engine = GaussianCopulaEngine(mine_rules=False).fit(real)
    for spec in engine.specs:
        spec.rounding = None
    return engine


def mean_se(values) -> list[float]:
    values = np.asarray(values, dtype=float)
    return [round(float(values.mean()), 2), round(float(values.std(ddof=1) / np.sqrt(len(values))), 2)]


def sdmetrics_over_seeds(real: pd.DataFrame, seeds: int) -> dict:
    """SDMetrics without and with rules, fitted on a random half per seed: [mean, SE] against the held-out half
    and against the fitting half, and of the paired differences (with - without)."""
    scores = {(variant, against): [] for variant in ("without", "with") for against in ("holdout", "fit")}
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(len(real))
        fit = real.iloc[order[: len(real) // 2]].reset_index(drop=True)
        holdout = real.iloc[order[len(real) // 2:]].reset_index(drop=True)
        for variant, engine in (("without", without_rules(fit)), ("with", GaussianCopulaEngine().fit(fit))):
            twin = engine.sample(min(2 * len(holdout), 20_000), seed=seed)
            scores[(variant, "holdout")].append(sdmetrics_score(holdout, twin))
            scores[(variant, "fit")].append(sdmetrics_score(fit, twin))
    out = {f"sdmetrics_{variant}_{against}": mean_se(values) for (variant, against), values in scores.items()}
    for against in ("holdout", "fit"):
        out[f"sdmetrics_gain_{against}"] = mean_se(np.subtract(scores[("with", against)], scores[("without", against)]))
    return out


def table_row(name: str, real: pd.DataFrame, rows: int, seeds: int) -> dict:
    """Breaks and rounding on the protected twin (and on its rows as drawn), and SDMetrics over `seeds` seeds."""
    options = CloneOptions()  # `twin clone`'s defaults, with the quasi-identifiers it detects
    options = replace(options, quasi_identifiers=list(detect_quasi_identifiers(real)))
    with_rules = pipeline.fit_model(real, options)
    row = {"table": name, "rows": len(real), "columns": real.shape[1], "twin_rows": rows,
           "quasi_identifiers": options.quasi_identifiers}
    for label, engine in (("without", without_rules(real)), ("with", with_rules)):
        protected, drawn = clone_twin(engine, real, options, rows)
        for twin, suffix in ((protected, ""), (drawn, "_drawn")):
            # the rules found with the rules engine, measured on both twins
            report = with_rules.rules_report(real, twin)
            exact = [entry for entry in report["rules"] if entry["source"] == "mined" and entry["real"]["share"] == 1.0]
            breaks = {entry["rule"]: broken_share(entry) for entry in exact if broken_share(entry) is not None}
            row[f"break_mean_{label}{suffix}"] = round(100 * float(np.mean(list(breaks.values()))), 3) if breaks else 0.0
            row[f"break_worst_{label}{suffix}"] = round(100 * max(breaks.values()), 3) if breaks else 0.0
            row[f"rounding_gap_points_{label}{suffix}"] = rounding_gap(report)  # the steps found with rounding
            if label == "with":
                row[f"broken_rules{suffix}"] = {rule: round(100 * share, 3) for rule, share in breaks.items() if share}
    if seeds:
        row.update(sdmetrics_over_seeds(real, seeds))
    row["rules"] = len(with_rules.rules.rules)
    row["enforced"] = sum(rule.enforced for rule in with_rules.rules.rules)
    row["rule_list"] = [{"rule": rule.text, "enforced": rule.enforced, "real_share": rule.real_share}
                        for rule in with_rules.rules.rules]
    return row


def fit_time_row(repeat: int = 3) -> dict:
    """Fit time without and with rules, interleaved (both see the same load), best of `repeat` each."""
    real = SHAPES["wide"](seed=0)
    specs = [detect_spec(real[name]) for name in real.columns]
    load_before = os.getloadavg()
    _, mine_seconds = timed(lambda: mining.mine(real, specs), repeat=repeat)
    best = {"without": np.inf, "with": np.inf}
    for _ in range(repeat):
        for label, flag in (("without", False), ("with", True)):
            _, seconds = timed(lambda: GaussianCopulaEngine(mine_rules=flag).fit(real))
            best[label] = min(best[label], seconds)
    return {"table": "shape:wide", "rows": len(real), "columns": real.shape[1], "mine_s": round(mine_seconds, 2),
            "fit_without_rules_s": round(best["without"], 2), "fit_with_rules_s": round(best["with"], 2),
            "growth_s": round(best["with"] - best["without"], 2),
            "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in os.getloadavg()]}


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


def tail_rows() -> list[dict]:
    """The t table has 40,000 rows: at q = 0.01 a pair's tail dependence rests on its 1 % of rows, and on 20,000
    the real sample's own noise (standard error ~0.035) decided whether the twin stayed within 0.07."""
    return [tail_row("clayton theta=2 (50,000 rows)", clayton_table(50_000), 200_000),
            tail_row("student-t nu=3 rho=0.7 (40,000 rows)", elliptical_table(40_000, rho=0.7, nu=3), 200_000)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller twins, fewer seeds")
    parser.add_argument("--seeds", type=int, default=None, help="SDMetrics seeds per table (default 5, quick 3)")
    parser.add_argument("--tails-only", action="store_true", help="re-measure only the tail tables (merged into the "
                        "saved results)")
    args = parser.parse_args()
    if args.tails_only:
        results = json.loads((RESULTS / "rules.json").read_text())
        results["tails"] = tail_rows()
        (RESULTS / "rules.json").write_text(json.dumps(results, indent=2))
        print(json.dumps(results["tails"], indent=1))
        return
    cap = 20_000 if args.quick else 100_000
    seeds = args.seeds or (3 if args.quick else 5)
    started = time.perf_counter()
    results = {"seeds": seeds, "load_average_before": [round(value, 2) for value in os.getloadavg()],
               "tables": [table_row(name, real, min(10 * len(real), cap), seeds) for name, real in tables().items()]
               + [table_row(name, build(), min(10 * len(build()), cap), 0) for name, build in EXTRA.items()]}
    results["fit_time"] = fit_time_row()
    results["tails"] = tail_rows()
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rules.json").write_text(json.dumps(results, indent=2))
    print("| table | rules (kept) | protected twin's rows breaking a mined rule, mean / worst: without -> with "
          "(as drawn) | rounding gap, points | SDMetrics vs holdout without -> with | gain vs holdout | "
          "gain vs fitting half |")
    print("|---|---|---|---|---|---|---|")
    for row in results["tables"]:
        scores = (f"{row['sdmetrics_without_holdout'][0]} -> {row['sdmetrics_with_holdout'][0]} | "
                  f"{row['sdmetrics_gain_holdout'][0]:+.2f} +- {row['sdmetrics_gain_holdout'][1]} | "
                  f"{row['sdmetrics_gain_fit'][0]:+.2f} +- {row['sdmetrics_gain_fit'][1]}"
                  if "sdmetrics_gain_fit" in row else "- | - | -")
        print(f"| {row['table']} | {row['rules']} ({row['enforced']}) | {row['break_mean_without']:.2f} % / "
              f"{row['break_worst_without']:.2f} % -> {row['break_mean_with']:.3f} % / {row['break_worst_with']:.3f} % "
              f"({row['break_mean_with_drawn']:.3f} % / {row['break_worst_with_drawn']:.3f} %) | "
              f"{row['rounding_gap_points_without']} -> {row['rounding_gap_points_with']} | {scores} |")
    print(json.dumps(results["fit_time"]))
    for row in results["tails"]:
        print(json.dumps({key: value for key, value in row.items()}))


if __name__ == "__main__":
    main()
