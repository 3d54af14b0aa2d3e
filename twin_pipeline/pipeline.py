"""The clone pipeline as plain functions: fit, sample, protect, report.

The `twin clone` command and the Dagster assets call these same functions in the same order, so the command
line and the orchestrated pipeline cannot drift apart.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .engine import GaussianCopulaEngine
from .errors import TwinError
from .options import CloneOptions, resolve_options
from .tables import read_table, write_json

log = logging.getLogger(__name__)

PARQUET_FROM_ROWS = 1_000_000  # larger twins are written as Parquet unless a format is asked for


def fit_model(real: pd.DataFrame, options: CloneOptions) -> GaussianCopulaEngine:
    started = time.perf_counter()
    engine = GaussianCopulaEngine(k=options.k, rules=options.rules, epsilon=options.epsilon).fit(
        real, primary_key=options.primary_key, column_kinds=options.column_kinds or None, seed=options.seed)
    log.info("fitted %d columns on %d rows in %.2f s", len(real.columns), len(real), time.perf_counter() - started)
    return engine


def protect(synthetic: pd.DataFrame, real: pd.DataFrame, engine: GaussianCopulaEngine, options: CloneOptions,
            first_row: int = 0, resample=None, ignore_columns: list[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """Rare raw strings out, copies of real rows resampled, k-anonymity on the quasi-identifiers; keys are
    renumbered from `first_row` afterwards so replaced and suppressed rows leave them unique.

    `resample(n)` draws replacement rows (default: from `engine`); `ignore_columns` (foreign keys) are left out
    of the copy comparison, like the primary key."""
    from .privacy import protect_twin

    resample_rng = np.random.default_rng(np.random.SeedSequence([options.seed or 0, first_row]))
    draw = resample or (lambda n: engine.sample(n, seed=int(resample_rng.integers(2**63 - 1))))
    protected, protection = protect_twin(
        engine.typed_view(synthetic), engine.typed_view(real), resample=lambda n: engine.typed_view(draw(n)),
        k=options.k, quasi_identifiers=options.quasi_identifiers, generalize=options.generalize,
        max_suppression=options.max_suppression, primary_key=options.primary_key, ignore_columns=ignore_columns or (),
    )
    return engine.renumber_keys(engine.text_view(protected), first_row, seed=options.seed), protection


def privacy_audit(real: pd.DataFrame, options: CloneOptions, holdout_share: float = 0.2,
                  attacker: bool = True) -> dict:
    """Risk as an attacker would measure it: refit the same pipeline on 80 % of the rows and compare the
    protected twin's closeness (and anonymeter's singling-out, linkability and inference attacks) on those
    training rows against the 20 % it never saw. 0 advantage = the twin leaks nothing about who was in it."""
    from .privacy import KAnonymityError, attacker_risk, privacy_report

    shuffled = real.sample(frac=1.0, random_state=options.seed or 0).reset_index(drop=True)
    cut = int(round(len(shuffled) * (1 - holdout_share)))
    train, holdout = shuffled.iloc[:cut], shuffled.iloc[cut:]
    if len(holdout) < 20 or len(train) < 20:
        return {"skipped": f"{len(real)} rows are too few to hold out a control set"}
    engine = fit_model(train, options)
    try:
        twin, protection = protect(engine.sample(len(train), seed=options.seed), train, engine, options)
    except KAnonymityError as error:  # a small table's 80 % can be too small to anonymise within the cap
        return {"skipped": f"the 80 % refit could not be made {options.k}-anonymous: {error.problem}"}
    ignore = [options.primary_key] if options.primary_key else []
    audit = {"method": f"fit on {len(train)} rows, {len(holdout)} held out as the control set",
             "holdout": privacy_report(twin, train, holdout, quasi_identifiers=protection["quasi_identifiers"],
                                       k=options.k, ignore_columns=ignore)}
    try:
        audit["attacker_risk"] = attacker_risk(twin, train, holdout, quasi_identifiers=protection["quasi_identifiers"],
                                               ignore_columns=ignore) if attacker else None
    except ImportError:
        audit["attacker_risk"] = {"skipped": "anonymeter is not installed (pip install twin-pipeline[dev])"}
    return audit


def report(real: pd.DataFrame, protected: pd.DataFrame, engine: GaussianCopulaEngine, options: CloneOptions,
           protection: dict) -> tuple[dict, dict]:
    """Quality of the protected twin against the real table, and its privacy figures beside it."""
    from .privacy import privacy_report
    from .quality import quality_report
    from .quality.tails import tail_report

    quality = quality_report(real, protected, primary_key=options.primary_key)
    quality["correlation_errors"] = engine.compare_correlations(real, protected)
    quality["tail_risk"] = tail_report(real, protected, primary_key=options.primary_key,
                                       columns=engine.tails.get("columns") if engine.tails["copula"] != "gaussian" else None)
    quality["marginals"] = engine.describe()
    quality["copula"] = engine.tails
    quality["rules"] = engine.rules_report(real, protected)
    ignore = [options.primary_key] if options.primary_key else []
    privacy = privacy_report(protected, real, quasi_identifiers=protection["quasi_identifiers"], k=options.k,
                             anonymity=protection["k_anonymity"], ignore_columns=ignore)
    privacy["protection"] = protection
    privacy["model"] = engine.privacy  # the fit's noise: differencing noise, or the DP budget and its split
    privacy["audit"] = privacy_audit(real, options)
    return quality, privacy


def combine_protection(results: list[dict]) -> dict:
    """One protection summary for a twin made of shards: counts add up, the rules are the same in each."""
    first = results[0]["protection"]
    total = lambda pick: sum(pick(item["protection"]) or 0 for item in results)  # noqa: E731
    anonymity = dict(first["k_anonymity"])
    anonymity.update(records_suppressed=total(lambda p: p["k_anonymity"]["records_suppressed"]),
                     initial_k=min(item["protection"]["k_anonymity"]["initial_k"] for item in results),
                     shards=len(results), transformations_note="transformations_applied are those of shard 0")
    return {"quasi_identifiers": first["quasi_identifiers"], "k_anonymity": anonymity,
            "rare_strings": first["rare_strings"] if len(results) == 1 else {"shards": len(results)},
            "exact_copies": {key: total(lambda p, key=key: p["exact_copies"].get(key))
                             for key, value in first["exact_copies"].items() if isinstance(value, (int, float))}}


def with_recount(privacy: dict, verified: dict, k: int) -> dict:
    """The privacy report with the figures DuckDB recounted over all shards (`shards.verify_shards`): the report
    itself measures a sample of the twin."""
    recount = {key: verified[key] for key in ("rows", "k", "exact_matches", "exact_match_rate")}
    return {**privacy, **recount, "k_satisfied": verified["k"] is None or verified["k"] >= k}


def clone_file(source: str | Path, out_dir: str | Path, options: CloneOptions, progress=None) -> dict:
    """Run the whole pipeline on a file; write the twin, its model and both reports under `out_dir`.

    The twin is made in shards (see shards.py), so memory stays bounded however many rows are asked for.
    """
    try:
        return _clone_file(Path(source), Path(out_dir), options, progress)
    except TwinError as error:  # problems found past reading (a bad primary key, ...) are about this file
        raise error.naming(source) from None


def _clone_file(source: Path, out_dir: Path, options: CloneOptions, progress) -> dict:
    from .privacy import detect_quasi_identifiers
    from .shards import make_shards, merge_shards, sample_shards, verify_shards

    real = read_table(source)
    options, n = resolve_options(real, options, source)
    say = progress or (lambda message: None)
    say(f"read {len(real):,} rows x {real.shape[1]} columns from {source}")
    qis = options.quasi_identifiers or detect_quasi_identifiers(real, primary_key=options.primary_key)
    options = replace(options, quasi_identifiers=list(qis))
    engine = fit_model(real, options)
    say("fitted the model: " + ", ".join(f"{name}={entry['family'] or entry['kind']}"
                                          for name, entry in engine.describe().items()))
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".shards-", dir=out_dir) as folder:
        results = make_shards(engine, real, options, n, Path(folder), workers=options.workers, progress=say)
        protection = combine_protection(results)
        verified = verify_shards(Path(folder), real, list(qis), [options.primary_key] if options.primary_key else [])
        say(f"k-anonymity: k={verified['k']} on {', '.join(qis) or 'no quasi-identifiers'}; "
            f"{protection['k_anonymity']['records_suppressed']} rows suppressed; {verified['exact_matches']} copies")
        quality, privacy = report(real, sample_shards(Path(folder)), engine, options, protection)
        privacy = with_recount(privacy, verified, options.k)
        say("measured quality and privacy (with an 80/20 held-out attacker audit)")
        fmt = options.output_format or ("parquet" if verified["rows"] >= PARQUET_FROM_ROWS else "csv")
        synthetic_path = merge_shards(Path(folder), out_dir / f"synthetic.{fmt}")
    outputs = {
        "synthetic": synthetic_path,
        "model": engine.save(out_dir / "model.json"),
        "quality_report": write_json(quality, out_dir / "quality_report.json"),
        "privacy_report": write_json(privacy, out_dir / "privacy_report.json"),
    }
    return {"source": str(source), "rows_real": len(real), "rows_synthetic": verified["rows"],
            "similarity_score": quality["similarity_score"], "correlation_error": quality["correlation_error"],
            "k": verified["k"], "exact_match_rate": verified["exact_match_rate"], "rules": quality["rules"]["summary"],
            "outputs": {name: str(path) for name, path in outputs.items()}}
