"""The clone pipeline as plain functions: fit, sample, protect, report.

The `twin clone` command and the Dagster assets call these same functions in the same order, so the command
line and the orchestrated pipeline cannot drift apart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .engine import GaussianCopulaEngine
from .tables import TwinInputError, read_table, write_frame, write_json

log = logging.getLogger(__name__)

PARQUET_FROM_ROWS = 1_000_000  # larger twins are written as Parquet unless a format is asked for


@dataclass
class CloneOptions:
    """What a user can set for one clone; every field has a sensible default."""

    rows: int | None = None
    scale: float | None = None  # rows = scale x the real table's rows; default 1x
    primary_key: str | None = None
    k: int = 5
    quasi_identifiers: list[str] | None = None  # None: detected by name and kind
    generalize: str | None = None  # "bands" to generalise numeric quasi-identifiers into bands
    max_suppression: float = 0.01
    seed: int | None = 0
    output_format: str | None = None  # "csv" or "parquet"; None: by size
    column_kinds: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def target_rows(n_real: int, rows: int | None = None, scale: float | None = None) -> int:
    """How many synthetic rows to make: `rows`, or `scale` x the real rows, or as many as the real table."""
    if rows is not None and scale is not None:
        raise TwinInputError("--rows/--scale", "give either a number of rows or a scale, not both")
    if rows is not None:
        if rows < 1:
            raise TwinInputError("--rows", f"must be a positive number of rows, got {rows}")
        return int(rows)
    if scale is not None:
        if not scale > 0:
            raise TwinInputError("--scale", f"must be positive, got {scale}")
        return max(1, int(round(n_real * scale)))
    return n_real


def fit_model(real: pd.DataFrame, options: CloneOptions) -> GaussianCopulaEngine:
    started = time.perf_counter()
    engine = GaussianCopulaEngine(k=options.k).fit(real, primary_key=options.primary_key,
                                                     column_kinds=options.column_kinds or None)
    log.info("fitted %d columns on %d rows in %.2f s", len(real.columns), len(real), time.perf_counter() - started)
    return engine


def generate(engine: GaussianCopulaEngine, n: int, seed: int | None) -> pd.DataFrame:
    started = time.perf_counter()
    synthetic = engine.sample(n, seed=seed)
    log.info("sampled %d rows in %.2f s", n, time.perf_counter() - started)
    return synthetic


def protect(synthetic: pd.DataFrame, real: pd.DataFrame, engine: GaussianCopulaEngine,
            options: CloneOptions) -> tuple[pd.DataFrame, dict]:
    """Rare raw strings out, copies of real rows resampled, k-anonymity on the quasi-identifiers."""
    from .privacy import protect_twin

    resample_rng = np.random.default_rng(np.random.SeedSequence(options.seed).spawn(1)[0])
    return protect_twin(
        synthetic, real, resample=lambda n: engine.sample(n, seed=int(resample_rng.integers(2**63 - 1))),
        k=options.k, quasi_identifiers=options.quasi_identifiers, generalize=options.generalize,
        max_suppression=options.max_suppression, primary_key=options.primary_key,
    )


def privacy_audit(real: pd.DataFrame, options: CloneOptions, holdout_share: float = 0.2,
                  attacker: bool = True) -> dict:
    """Risk as an attacker would measure it: refit the same pipeline on 80 % of the rows and compare the
    protected twin's closeness (and anonymeter's singling-out, linkability and inference attacks) on those
    training rows against the 20 % it never saw. 0 advantage = the twin leaks nothing about who was in it."""
    from .privacy import attacker_risk, privacy_report

    shuffled = real.sample(frac=1.0, random_state=options.seed or 0).reset_index(drop=True)
    cut = int(round(len(shuffled) * (1 - holdout_share)))
    train, holdout = shuffled.iloc[:cut], shuffled.iloc[cut:]
    if len(holdout) < 20 or len(train) < 20:
        return {"skipped": f"{len(real)} rows are too few to hold out a control set"}
    engine = fit_model(train, options)
    twin, protection = protect(engine.sample(len(train), seed=options.seed), train, engine, options)
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
    quality["tail_risk"] = tail_report(real, protected, primary_key=options.primary_key)
    quality["marginals"] = engine.describe()
    quality["copula"] = engine.tails
    ignore = [options.primary_key] if options.primary_key else []
    privacy = privacy_report(protected, real, quasi_identifiers=protection["quasi_identifiers"], k=options.k,
                             anonymity=protection["k_anonymity"], ignore_columns=ignore)
    privacy["protection"] = protection
    privacy["audit"] = privacy_audit(real, options)
    return quality, privacy


def clone_file(source: str | Path, out_dir: str | Path, options: CloneOptions, progress=None) -> dict:
    """Run the whole pipeline on a file; write the twin, its model and both reports under `out_dir`."""
    source, out_dir = Path(source), Path(out_dir)
    real = read_table(source)
    if options.primary_key is not None and options.primary_key not in real.columns:
        raise TwinInputError(source, f"primary key {options.primary_key!r} is not a column "
                                     f"(columns: {', '.join(map(str, real.columns))})")
    if options.primary_key is not None and (real[options.primary_key].isna().any()
                                            or real[options.primary_key].duplicated().any()):
        raise TwinInputError(source, f"primary key {options.primary_key!r} is not unique and non-null on every row")
    n = target_rows(len(real), options.rows, options.scale)
    say = progress or (lambda message: None)
    say(f"read {len(real):,} rows x {real.shape[1]} columns from {source}")
    engine = fit_model(real, options)
    say("fitted the model: " + ", ".join(f"{name}={entry['family'] or entry['kind']}"
                                          for name, entry in engine.describe().items()))
    synthetic = generate(engine, n, options.seed)
    say(f"sampled {n:,} rows")
    protected, protection = protect(synthetic, real, engine, options)
    k_report = protection["k_anonymity"]
    say(f"k-anonymity: k={k_report['final_k']} on {', '.join(protection['quasi_identifiers']) or 'no quasi-identifiers'}; "
        f"{k_report['records_suppressed']} rows suppressed")
    quality, privacy = report(real, protected, engine, options, protection)
    say("measured quality and privacy (with an 80/20 held-out attacker audit)")
    fmt = options.output_format or ("parquet" if len(protected) >= PARQUET_FROM_ROWS else "csv")
    outputs = {
        "synthetic": write_frame(protected, out_dir / f"synthetic.{fmt}"),
        "model": engine.save(out_dir / "model.json"),
        "quality_report": write_json(quality, out_dir / "quality_report.json"),
        "privacy_report": write_json(privacy, out_dir / "privacy_report.json"),
    }
    return {"source": str(source), "rows_real": len(real), "rows_synthetic": len(protected),
            "similarity_score": quality["similarity_score"], "correlation_error": quality["correlation_error"],
            "k": k_report["final_k"], "exact_match_rate": privacy.get("exact_match_rate"),
            "outputs": {name: str(path) for name, path in outputs.items()}}
