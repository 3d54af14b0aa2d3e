"""The clone pipeline as plain functions: fit, sample, protect, report.

The `twin clone` command and the Dagster assets call these same functions in the same order, so the command
line and the orchestrated pipeline cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .engine import GaussianCopulaEngine
from .errors import TwinError, TwinInputError
from .options import CloneOptions, resolve_options
from .tables import read_table, sha256_file, write_json

log = logging.getLogger(__name__)

PARQUET_FROM_ROWS = 1_000_000  # larger twins are written as Parquet unless a format is asked for
CLONE_RECORD = "clone.json"  # beside a twin: the real table's path and SHA-256 and the options, for a later audit
AUDIT_FILE = "privacy_audit.json"
AUDIT_MAX_SUPPRESSION = 0.05  # the largest share of rows the audit's refit may suppress (its twin is not published)


def fit_model(real: pd.DataFrame, options: CloneOptions) -> GaussianCopulaEngine:
    started = time.perf_counter()
    engine = GaussianCopulaEngine(k=options.k, rules=options.rules).fit(real, primary_key=options.primary_key,
                                                     column_kinds=options.column_kinds or None)
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


def privacy_audit(real: pd.DataFrame, options: CloneOptions, holdout_share: float = 0.2) -> dict:
    """Risk as an attacker would measure it, within `options.audit_budget` seconds: refit the same pipeline
    (fit, sample, protect) on a training share of the rows and attack its twin, with the held-out rows as the
    control set (privacy.risk.audit_generator). Not part of making the twin: `twin clone --audit`,
    `twin audit privacy DIR` and the `privacy_audit` asset run it after the product exists."""
    from .privacy import audit_generator

    # The refit's twin is never published: its 80 % share may need a few more suppressed rows than the product's
    # cap allows (small tables), and failing the audit for that would hide the risk it is there to measure.
    refit = replace(options, max_suppression=max(options.max_suppression, AUDIT_MAX_SUPPRESSION))

    def generate(train: pd.DataFrame) -> pd.DataFrame:
        engine = fit_model(train, refit)
        return protect(engine.sample(len(train), seed=refit.seed), train, engine, refit)[0]

    try:
        audit = audit_generator(real, generate, quasi_identifiers=options.quasi_identifiers, secrets=options.secrets,
                                budget_seconds=options.audit_budget, holdout_share=holdout_share,
                                seed=options.seed or 0,
                                ignore_columns=[options.primary_key] if options.primary_key else [])
    except TwinError as error:  # the training share cannot be made k-anonymous or copy-free within the limits
        return {"status": "skipped",
                "skipped": f"the refit on the training share could not make a twin: {error.problem}"}
    audit.setdefault("method", {})["refit_max_suppression"] = refit.max_suppression
    return {"status": "skipped" if "skipped" in audit else "completed", **audit}


def report(real: pd.DataFrame, protected: pd.DataFrame, engine: GaussianCopulaEngine, options: CloneOptions,
           protection: dict, verified: dict) -> tuple[dict, dict]:
    """Quality of the protected twin (or a sample of it) against the real table, and its privacy figures beside it:
    rows, k and copies as DuckDB recounted them over the whole twin (`shards.verify_shards`), the distance to the
    closest record; the attacker audit is `privacy_audit`, off this path."""
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
                             anonymity=protection["k_anonymity"], ignore_columns=ignore, recounted=verified)
    privacy["protection"] = protection
    return quality, privacy


def audit_to_file(real: pd.DataFrame, options: CloneOptions, out_dir: Path) -> dict:
    """Run `privacy_audit` and write it to `out_dir/privacy_audit.json`, whatever happens: an audit that fails
    is recorded as failed (with its error) beside a twin that stays valid."""
    try:
        audit = privacy_audit(real, options)
    except Exception as error:  # noqa: BLE001 - the audit must never take the product down with it
        log.exception("the privacy audit failed")
        audit = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    write_json(audit, Path(out_dir) / AUDIT_FILE)
    return audit


def audit_summary(audit: dict) -> str:
    """One line for a terminal or a log: what the audit found, or why it did not run."""
    if audit.get("status") != "completed":
        return f"privacy audit {audit.get('status', 'skipped')}: {audit.get('error') or audit.get('skipped')}"
    from .privacy.risk import risk_figures

    figures = [f"{name} {figure['risk']:+.2f}" for name, figure in risk_figures(audit).items()]
    budget = audit["budget"]
    flagged = ", ".join(audit["flagged"]) or "nothing"
    return (f"privacy audit in {budget['elapsed']:.1f} s of {budget['seconds']:g} s"
            f"{' (truncated: ' + ', '.join(budget['not_run']) + ' not run)' if budget['truncated'] else ''}: "
            f"{'; '.join(figures)}; flagged: {flagged}")


def audit_clone_dir(out_dir: str | Path, real_path: str | Path | None = None, budget: float | None = None,
                    secrets: list[str] | None = None) -> dict:
    """`twin audit privacy DIR`: audit the clone in `out_dir` against its real table (`real_path`, else the
    path recorded in DIR/clone.json), with the clone's own options; writes DIR/privacy_audit.json."""
    out_dir = Path(out_dir)
    record_path = out_dir / CLONE_RECORD
    if not record_path.is_file():
        raise TwinInputError(out_dir, f"has no {CLONE_RECORD}: not the output folder of 'twin clone'")
    record = json.loads(record_path.read_text())
    source = Path(real_path or record["source"])
    if not source.is_file():
        raise TwinInputError(source, "the real table is not there (give it with --real FILE)")
    if sha256_file(source) != record["sha256"]:
        raise TwinInputError(source, f"is not the table this twin was cloned from (its SHA-256 differs from "
                                     f"{record_path})")
    options = CloneOptions.from_dict(record["options"])
    options = replace(options, audit_budget=options.audit_budget if budget is None else budget,
                      secrets=options.secrets if secrets is None else secrets)
    real = read_table(source)
    options, _ = resolve_options(real, options, source)
    return audit_to_file(real, options, out_dir)


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


def clone_file(source: str | Path, out_dir: str | Path, options: CloneOptions, progress=None,
               audit: bool = False) -> dict:
    """Run the whole pipeline on a file; write the twin, its model and both reports under `out_dir`, and
    with `audit` the attacker audit after them (its failure is reported, it never undoes the twin).

    The twin is made in shards (see shards.py), so memory stays bounded however many rows are asked for.
    """
    try:
        return _clone_file(Path(source), Path(out_dir), options, progress, audit)
    except TwinError as error:  # problems found past reading (a bad primary key, ...) are about this file
        raise error.naming(source) from None


def _clone_file(source: Path, out_dir: Path, options: CloneOptions, progress, audit: bool) -> dict:
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
        quality, privacy = report(real, sample_shards(Path(folder)), engine, options, protection, verified)
        say("measured quality and privacy")
        fmt = options.output_format or ("parquet" if verified["rows"] >= PARQUET_FROM_ROWS else "csv")
        synthetic_path = merge_shards(Path(folder), out_dir / f"synthetic.{fmt}")
    outputs = {
        "synthetic": synthetic_path,
        "model": engine.save(out_dir / "model.json"),
        "quality_report": write_json(quality, out_dir / "quality_report.json"),
        "privacy_report": write_json(privacy, out_dir / "privacy_report.json"),
        "clone": write_json({"source": str(source.resolve()), "sha256": sha256_file(source),
                             "options": options.to_dict()}, out_dir / CLONE_RECORD),
    }
    audited = None
    if audit:
        say(f"attacker audit (budget {options.audit_budget:g} s) ...")
        audited = audit_to_file(real, options, out_dir)
        outputs["privacy_audit"] = out_dir / AUDIT_FILE
        say(audit_summary(audited))
    return {"source": str(source), "rows_real": len(real), "rows_synthetic": verified["rows"],
            "similarity_score": quality["similarity_score"], "correlation_error": quality["correlation_error"],
            "k": verified["k"], "exact_match_rate": verified["exact_match_rate"], "rules": quality["rules"]["summary"],
            "audit": audited,
            "outputs": {name: str(path) for name, path in outputs.items()}}
