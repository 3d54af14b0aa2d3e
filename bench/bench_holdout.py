"""Held-out benchmark of the whole protected twin: does protection keep what is true and remove what is disclosive?

    python bench/bench_holdout.py                 # every table; results in bench/results/holdout.json
    python bench/bench_holdout.py --tables tiny   # some of them (credit_data credit_card tiny narrow wide large)
    python bench/bench_holdout.py --tables credit_card --twin-seeds 5   # and the spread of 5 twins' scores

Each table is split once, 50/50 with a fixed seed. The pipeline is fitted on one half with default options, and
makes a twin the size of the other (held-out) half. Measured:
* SDMetrics QualityReport of the twin against the held-out half, beside the ceiling: the real training half
  against the held-out half (a twin cannot be closer to new real rows than real rows are), and beside the
  same twin before protection (what protection costs, apart from the engine); and both again with SDMetrics'
  pair bins taken from the real table (see bench_engine.sdmetrics_score: the official report bins each table
  on its own range, which penalises a twin for not pinning one real outlier);
* every low-cardinality column's largest share difference from the training half, against 0.02 plus two
  binomial standard errors of the two samples;
* twin rows equal to a real record unique in the training half, and to one shared by fewer than k;
* rows breaking a mined rule that holds on every training row (mean and worst over the rules, in %), on the twin
  and before protection (micro-aggregation moves quasi-identifiers that rules tie to other columns);
* k recounted on the quasi-identifiers the protection reports; rows returned against rows asked for;
* anonymeter singling-out, linkability and inference risks (training half as the original, half of the held-out
  half as the control), beside the control baseline: the other half of the held-out half used as the
  "synthetic" table. A twin should give an attacker no more than fresh real rows do.

`holdout_run(name, table, make_twin)` is the reusable core: pass another
`make_twin(train, n, seed=None) -> (twin, protection)`
to measure a variant (a DP epsilon, other options) on the same splits.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_engine import sdmetrics_score  # noqa: E402

from twin_pipeline import pipeline, protection  # noqa: E402
from twin_pipeline.options import CloneOptions  # noqa: E402
from twin_pipeline.privacy.copies import LOW_CARDINALITY, RealCombinations  # noqa: E402
from twin_pipeline.privacy.grouping import smallest_group  # noqa: E402
from twin_pipeline_tests.shapes import SHAPES  # noqa: E402

DATASETS = Path("/work/shared/datasets")
RESULTS = ROOT / "bench" / "results" / "holdout.json"
KEYS = {"large": "loan_id"}
N_ATTACKS = 200
MAX_ATTEMPTS = 200_000  # anonymeter's singling-out search, bounded: on a few discrete columns it can run for hours


def load_tables(names: list[str]) -> dict[str, pd.DataFrame]:
    tables = {}
    for name in names:
        if name in SHAPES:
            tables[name] = SHAPES[name]()
        else:
            tables[name] = pd.read_csv(DATASETS / f"{name}.csv")
    return tables


def default_twin(primary_key: str | None = None, **overrides) -> Callable[[pd.DataFrame, int], tuple]:
    """The pipeline with default options (plus `overrides`): fit on `train`, sample and protect `n` rows."""
    def make(train: pd.DataFrame, n: int, seed: int | None = None) -> tuple[pd.DataFrame, dict]:
        options = CloneOptions(primary_key=primary_key, **overrides, **({} if seed is None else {"seed": seed}))
        engine = pipeline.fit_model(train, options)
        sample = engine.sample(n, seed=options.seed)
        twin, report = protection.protect(sample, train, engine, options)
        breaks = {label: {key: round(100 * value, 3) for key, value in engine.rules_report(train, rows)["summary"].items()
                          if key in ("mined_break_mean", "mined_break_worst")}
                  for label, rows in (("twin", twin), ("unprotected", sample))}
        return twin, {**report, "unprotected_twin": sample,  # engine.sample writes the input's formats
                      "rule_breaks_percent": breaks}
    return make


def split(table: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(table))
    half = len(table) // 2
    return table.iloc[order[:half]].reset_index(drop=True), table.iloc[order[half:]].reset_index(drop=True)


def _labels(series: pd.Series) -> pd.Series:
    """Values as text, every kind of missing (None, NaN) as one label; numbers as floats, so a twin's nullable
    integers (1) read like the real table's floats (1.0)."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        series = series.astype("Float64")
    return series.astype(object).where(series.notna(), "<missing>").astype(str)


def share_deltas(train: pd.DataFrame, twin: pd.DataFrame) -> dict:
    """Per low-cardinality column: the largest share difference, its allowance (0.02 + 2 standard errors of the
    difference of two binomial samples) and whether it is within."""
    out = {}
    for column in train.columns:
        if column not in twin.columns or not 1 < train[column].nunique(dropna=False) <= LOW_CARDINALITY:
            continue
        real = _labels(train[column]).value_counts(normalize=True)
        synthetic = _labels(twin[column]).value_counts(normalize=True)
        both = pd.concat([real, synthetic], axis=1, keys=["real", "twin"]).fillna(0.0)
        gap = (both["twin"] - both["real"]).abs()
        allowance = 0.02 + 2 * np.sqrt(both["real"] * (1 - both["real"]) * (1 / len(train) + 1 / max(len(twin), 1)))
        worst = (gap - allowance).idxmax()
        out[column] = {"largest_delta": round(float(gap.max()), 4), "value": str(gap.idxmax()),
                       "within": bool((gap <= allowance).all()), "allowance_at_worst": round(float(allowance[worst]), 4)}
    return out


def anonymeter_risks(synthetic, train, control, qis, ignore, seed: int = 0) -> dict:
    """risk.attacker_risk with anonymeter's singling-out search bounded (MAX_ATTEMPTS)."""
    import anonymeter.evaluators as evaluators

    from twin_pipeline.privacy import attacker_risk

    original = evaluators.SinglingOutEvaluator

    class Bounded(original):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("max_attempts", MAX_ATTEMPTS)
            super().__init__(*args, **kwargs)

    def numbers(frame: pd.DataFrame) -> pd.DataFrame:  # anonymeter compares values, not datetimes
        dates = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
        return frame.assign(**{c: frame[c].astype("int64") // 86_400_000_000_000 for c in dates})

    evaluators.SinglingOutEvaluator = Bounded
    try:
        risks = attacker_risk(numbers(synthetic), numbers(train), numbers(control), quasi_identifiers=qis,
                              n_attacks=N_ATTACKS, ignore_columns=ignore, seed=seed)
    except Exception as error:  # noqa: BLE001 - an attack that cannot run is reported, not fatal
        return {"error": f"{type(error).__name__}: {error}"}
    finally:
        evaluators.SinglingOutEvaluator = original
    return {"singling_out": risks["singling_out"], "linkability": risks["linkability"],
            "inference_max": max(risks["inference"].values(), key=lambda r: r["risk"]) if risks["inference"] else None}


def _risk_within(twin: dict, baseline: dict) -> bool | None:
    """No higher than the baseline within their confidence intervals: the twin's lower bound is not above the
    baseline's upper bound."""
    if "error" in twin or "error" in baseline:
        return None
    pairs = [(twin[name], baseline[name]) for name in ("singling_out", "linkability", "inference_max") if twin[name]]
    return all(t["ci"][0] <= b["ci"][1] for t, b in pairs)


def holdout_run(name: str, table: pd.DataFrame, make_twin: Callable[[pd.DataFrame, int], tuple],
                primary_key: str | None = None, k: int = 5, attacks: bool = True, attack_seeds: int = 1,
                twin_seeds: int = 1) -> dict:
    """One table through one twin maker; every figure the module doc lists."""
    train, held = split(table)
    started = time.perf_counter()
    twin, protection = make_twin(train, len(held))
    seconds = time.perf_counter() - started
    ignore = [primary_key] if primary_key else []
    ignore += list(pipeline.direct_identifiers(train, CloneOptions(primary_key=primary_key)))
    scored = [c for c in train.columns if c not in ignore]
    ceiling = sdmetrics_score(held[scored], train[scored])
    quality = sdmetrics_score(held[scored], twin[scored])
    unprotected = protection.pop("unprotected_twin", None)  # what protection costs, beside what the engine does
    rule_breaks = protection.pop("rule_breaks_percent", None)
    counts = RealCombinations(train, [c for c in twin.columns if c not in ignore]).count(twin)
    qis = protection["quasi_identifiers"]
    deltas = share_deltas(train[scored], twin)
    result = {
        "table": name, "rows_real": len(table), "columns": table.shape[1], "train_rows": len(train),
        "rows_asked": len(held), "rows_returned": len(twin), "rows_exact": len(twin) == len(held),
        "seconds_fit_sample_protect": round(seconds, 2),
        "sdmetrics_quality": round(quality, 2), "sdmetrics_ceiling": round(ceiling, 2),
        "quality_gap": round(ceiling - quality, 2), "within_2_points": ceiling - quality <= 2,
        "sdmetrics_quality_real_bins": sdmetrics_score(held[scored], twin[scored], real_bins=True),
        "sdmetrics_ceiling_real_bins": sdmetrics_score(held[scored], train[scored], real_bins=True),
        "sdmetrics_unprotected": None if unprotected is None
        else round(sdmetrics_score(held[scored], unprotected[scored]), 2),
        "low_cardinality_shares": deltas,
        "mined_rule_breaks_percent": rule_breaks,  # rows breaking a rule that holds on every training row
        "low_cardinality_all_within": all(d["within"] for d in deltas.values()),
        "rows_equal_to_a_unique_real_record": int((counts == 1).sum()),
        "rows_equal_to_a_rare_real_record": int(((counts > 0) & (counts < k)).sum()),
        "identical_match_share": round(float((counts > 0).mean()), 4),
        "natural_identical_match_share": protection["exact_copies"]["natural_identical_match_share"],
        "quasi_identifiers": qis, "k_recounted": smallest_group(twin, qis),
        "records_suppressed_and_refilled": protection["k_anonymity"]["records_suppressed"],
        "share_shift_from_copy_replacement": protection["exact_copies"]["share_shift"],
        "information_loss": protection["k_anonymity"]["information_loss"],
    }
    if twin_seeds > 1:
        result["twin_seeds"] = _twin_seeds(make_twin, train, held, scored, ceiling, twin_seeds)
    if attacks:
        half = len(held) // 2
        baseline, control = held.iloc[:half].reset_index(drop=True), held.iloc[half:].reset_index(drop=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result["anonymeter_twin"] = anonymeter_risks(twin, train, control, qis, ignore)
            result["anonymeter_baseline"] = anonymeter_risks(baseline, train, control, qis, ignore)
        result["risks_within_baseline"] = _risk_within(result["anonymeter_twin"], result["anonymeter_baseline"])
        if attack_seeds > 1:
            result["anonymeter_seeds"] = _repeated_attacks(make_twin, train, held, qis, ignore, attack_seeds)
    return result


def _twin_seeds(make_twin, train, held, scored, ceiling, seeds: int) -> dict:
    """How far one twin's luck moves the figures: the twin of pipeline seeds 0..seeds-1 (0 is the default twin)
    on the same split, each scored against the held-out half with its shares checked."""
    quality, within = [], []
    for seed in range(seeds):
        twin = make_twin(train, len(held), seed)[0]
        quality.append(round(sdmetrics_score(held[scored], twin[scored]), 2))
        within.append(all(d["within"] for d in share_deltas(train[scored], twin).values()))
    gaps = [round(ceiling - q, 2) for q in quality]
    return {"sdmetrics_quality": quality, "quality_gap": gaps, "gap_mean": round(float(np.mean(gaps)), 2),
            "gap_worst": max(gaps), "seeds_within_2_points": int(sum(g <= 2 for g in gaps)),
            "seeds_all_shares_within": int(sum(within))}


def _repeated_attacks(make_twin, train, held, qis, ignore, seeds: int) -> dict:
    """Is a point estimate above the baseline noise or real? Per seed a new twin (the pipeline's seed), a new
    baseline / control split of the held-out half and new attacks; per risk, the twin's and the baseline's
    estimates, their means, and how many seeds put the twin above the baseline. (Repeating only the attacks
    on one twin is not enough: their attacked rows overlap, and one twin draw's luck is in all of them.)"""
    runs = {"twin": [], "baseline": []}
    half = len(held) // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(1, seeds + 1):
            twin = make_twin(train, len(held), seed)[0]
            order = np.random.default_rng(seed).permutation(len(held))
            baseline = held.iloc[order[:half]].reset_index(drop=True)
            control = held.iloc[order[half:]].reset_index(drop=True)
            runs["twin"].append(anonymeter_risks(twin, train, control, qis, ignore, seed))
            runs["baseline"].append(anonymeter_risks(baseline, train, control, qis, ignore, seed))
    out = {}
    for name in ("singling_out", "linkability", "inference_max"):
        values = {side: [r[name]["risk"] for r in runs[side] if "error" not in r and r.get(name)] for side in runs}
        if not all(values.values()):
            continue
        out[name] = {"twin": [round(v, 3) for v in values["twin"]], "baseline": [round(v, 3) for v in values["baseline"]],
                     "twin_mean": round(float(np.mean(values["twin"])), 3),
                     "baseline_mean": round(float(np.mean(values["baseline"])), 3),
                     "seeds_twin_above_baseline": int(sum(t > b for t, b in zip(values["twin"], values["baseline"])))}
    return out


def markdown(results: list[dict]) -> str:
    def risk(entry, name):
        value = entry.get(name) if isinstance(entry, dict) else None
        return f"{value['risk']:.2f}" if value else "-"

    lines = ["| table | rows x cols | SDMetrics twin / ceiling (unprotected) | same, real-table bins | low-card shares "
             "within | unique-record copies | k | rows asked = returned | singling-out / linkability / inference: "
             "twin (baseline) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        twin, base = r.get("anonymeter_twin", {}), r.get("anonymeter_baseline", {})
        shares = sum(d["within"] for d in r["low_cardinality_shares"].values())
        lines.append(
            f"| {r['table']} | {r['rows_real']:,} x {r['columns']} | {r['sdmetrics_quality']:.1f} / "
            f"{r['sdmetrics_ceiling']:.1f} ({r.get('sdmetrics_unprotected') or '-'}) | "
            f"{r['sdmetrics_quality_real_bins']:.1f} / {r['sdmetrics_ceiling_real_bins']:.1f} | "
            f"{shares} of {len(r['low_cardinality_shares'])} | "
            f"{r['rows_equal_to_a_unique_real_record']} | {r['k_recounted']} | "
            f"{r['rows_asked']:,} = {r['rows_returned']:,} | "
            + " / ".join(f"{risk(twin, n)} ({risk(base, n)})" for n in ("singling_out", "linkability", "inference_max"))
            + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", default=["credit_data", "credit_card", "tiny", "narrow", "wide", "large"])
    parser.add_argument("--no-attacks", action="store_true", help="skip anonymeter")
    parser.add_argument("--attack-seeds", type=int, default=1,
                        help="repeat the attacks with this many seeds (is a twin above its baseline noise or real?)")
    parser.add_argument("--twin-seeds", type=int, default=1,
                        help="also score the twins of this many pipeline seeds on the same split (their spread)")
    parser.add_argument("--wide-variants", action="store_true",
                        help="the wide table with the job title, then the state, left out of the quasi-identifiers")
    args = parser.parse_args()
    results = []
    for name, table in load_tables(args.tables).items():
        print(f"{name}: {len(table):,} x {table.shape[1]}", flush=True)
        results.append(holdout_run(name, table, default_twin(KEYS.get(name)), primary_key=KEYS.get(name),
                                   attacks=not args.no_attacks, attack_seeds=args.attack_seeds,
                                   twin_seeds=args.twin_seeds))
    if args.wide_variants:
        qis = ["emp_title", "emp_length", "state", "homeownership", "annual_income"]
        for left_out in ("emp_title", "state"):
            chosen = [q for q in qis if q != left_out]
            run = holdout_run(f"wide, QIs without {left_out}", SHAPES["wide"](), default_twin(quasi_identifiers=chosen),
                              attacks=not args.no_attacks)
            results.append({**run, "table": f"wide, QIs without {left_out}"})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    previous.update({r["table"]: r for r in results})
    RESULTS.write_text(json.dumps(previous, indent=2, default=str))
    print(markdown(results))


if __name__ == "__main__":
    main()
