"""Cloning related tables from files: `twin clone borrowers.csv loans.csv --foreign-key ...`.

Each table is protected like a single twin (rare strings, copies, k-anonymity on its own quasi-identifiers).
Parents are protected first; children of a suppressed parent are dropped with it, so every foreign key in the
output still references an existing synthetic parent.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .engine.multitable import MultiTableEngine
from .options import CloneOptions, validate_options
from .protection import protect
from .quality import quality_report
from .quality.metrics import ks_statistic
from .tables import TwinInputError, read_table, write_frame, write_json


def parse_foreign_key(text: str) -> tuple[str, str, str, str]:
    """"loans.borrower_id=borrowers.borrower_id" -> ("loans", "borrower_id", "borrowers", "borrower_id")."""
    try:
        child, parent = text.split("=")
        child_table, foreign_key = child.strip().split(".", 1)
        parent_table, primary_key = parent.strip().split(".", 1)
    except ValueError:
        raise TwinInputError("--foreign-key", f"expected CHILD.COLUMN=PARENT.COLUMN, got {text!r}") from None
    return child_table, foreign_key, parent_table, primary_key


def children_per_parent(tables: dict[str, pd.DataFrame], relation: tuple[str, str, str, str]) -> np.ndarray:
    child, foreign_key, parent, primary_key = relation
    counts = tables[child][foreign_key].value_counts()
    return counts.reindex(tables[parent][primary_key], fill_value=0).to_numpy(dtype=float)


def clone_tables(sources: list[str | Path], out_dir: str | Path, relationships: list[tuple[str, str, str, str]],
                 options: CloneOptions, primary_keys: dict[str, str] | None = None, progress=None) -> dict:
    """Fit, sample and protect related tables; write `<table>.csv` per table and one report."""
    say = progress or (lambda message: None)
    real = {Path(source).stem: read_table(source) for source in sources}
    if len(real) != len(sources):
        raise TwinInputError(", ".join(map(str, sources)), "two input files have the same name")
    validate_options(options, ", ".join(map(str, sources)))
    scale = options.scale or 1.0
    engine = MultiTableEngine(k=options.k).fit(real, relationships, primary_keys)
    say(f"fitted {len(real)} related tables: {', '.join(engine.order)}")
    synthetic = engine.sample(scale=scale, seed=options.seed)
    out_dir = Path(out_dir)
    reports = {}
    rng = np.random.default_rng(options.seed)
    for name in engine.order:
        parents = [relation for relation in engine.relationships if relation.child == name]
        for relation in parents:  # children of suppressed parents go with them
            alive = synthetic[name][relation.foreign_key].isin(synthetic[relation.parent][relation.primary_key])
            synthetic[name] = synthetic[name][alive].reset_index(drop=True)

        links = [relation.foreign_key for relation in parents]  # synthetic references, never compared as data

        def resample(n: int, name=name, parents=parents) -> pd.DataFrame:
            """Replacement rows for copies: drawn from the table's model, linked to random synthetic parents."""
            rows = engine.engines[name].sample(n, seed=int(rng.integers(2**63 - 1)))
            for relation in parents:
                rows[relation.foreign_key] = rng.choice(synthetic[relation.parent][relation.primary_key].to_numpy(), n)
            return rows

        # Protect whole records, a child with its parent's columns: a loan is identifying with its borrower.
        records = {source: engine.joined_frame(name, tables).join(tables[name][links])
                   for source, tables in (("real", real), ("synthetic", synthetic))}
        table_options = replace(options, primary_key=engine.primary_keys[name], quasi_identifiers=None)
        protected, protection = protect(records["synthetic"], records["real"], engine.engines[name], table_options,
                                        resample=resample, ignore_columns=links)
        synthetic[name] = protected[real[name].columns]
        reports[name] = {"quality": quality_report(real[name].drop(columns=links), synthetic[name].drop(columns=links),
                                                   primary_key=engine.primary_keys[name]),
                         "k_anonymity": protection["k_anonymity"], "quasi_identifiers": protection["quasi_identifiers"]}
        write_frame(synthetic[name], out_dir / f"{name}.csv", options.escape_formulas, real[name].attrs.get("csv_dialect"))
        say(f"{name}: {len(synthetic[name]):,} rows, k={protection['k_anonymity']['final_k']}")
    for relation in relationships:
        child, foreign_key, parent, primary_key = relation
        valid = synthetic[child][foreign_key].isin(synthetic[parent][primary_key]).mean() if len(synthetic[child]) else 1.0
        reports[f"{child}->{parent}"] = {
            "valid_foreign_keys": float(valid),
            "children_per_parent_ks": ks_statistic(children_per_parent(real, relation),
                                                   children_per_parent(synthetic, relation)),
        }
    write_json(reports, out_dir / "quality_report.json")
    return {"tables": {name: len(frame) for name, frame in synthetic.items()}, "reports": reports,
            "outputs": [str(out_dir / f"{name}.csv") for name in engine.order] + [str(out_dir / "quality_report.json")]}
