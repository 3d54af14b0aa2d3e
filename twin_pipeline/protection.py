"""Protecting a sampled twin: rare strings out, rare real records redrawn, k-anonymity, fresh keys and identifiers.

Its own module so both the single-file pipeline (pipeline.py) and each shard (shards.py) call it without importing
each other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .engine import GaussianCopulaEngine
from .engine.marginals import SlicedMarginal
from .options import CloneOptions


def identifier_formats(engine: GaussianCopulaEngine) -> dict[str, dict]:
    """The direct-identifier columns the engine mints fresh values for, with their formats."""
    return {spec.name: spec.id_pattern for spec in engine.specs
            if spec.is_key and spec.id_pattern.get("type") == "format"}


def conditional_draw(engine: GaussianCopulaEngine, given: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One fresh row per row of `given` (typed view) keeping its values: the engine's conditional copula on the
    columns it models; a value it cannot condition on (a catch-all it never stored) leaves that column free
    for the draw and is written back as given."""
    modelled = [name for name in given.columns if (name, "value") in engine.variables]
    if not modelled:
        return engine.typed_view(engine.sample(len(given), seed=seed))
    given = engine.text_view(given[modelled].reset_index(drop=True))
    condition = given.copy()
    for name in modelled:
        marginal = engine.marginals[engine.variables.index((name, "value"))]
        if isinstance(marginal, SlicedMarginal) and not pd.api.types.is_numeric_dtype(condition[name].dtype):
            condition[name] = condition[name].where(condition[name].isin(marginal.values))
    fresh = engine.sample_given(condition, seed=seed)
    for name in modelled:
        fresh[name] = given[name].to_numpy()
    return engine.typed_view(fresh)


def protect(synthetic: pd.DataFrame, real: pd.DataFrame, engine: GaussianCopulaEngine, options: CloneOptions,
            first_row: int = 0, resample=None, ignore_columns: list[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """Rare raw strings out, rare real records redrawn, k-anonymity on the quasi-identifiers with suppressed rows
    refilled (exactly the rows asked for), derived columns made to agree with moved quasi-identifiers (the rules
    hold); keys are renumbered from `first_row` afterwards, and fresh direct
    identifiers equal to a real one are drawn again.

    `resample(n)` draws replacement rows (default: from `engine`, conditioned on the values to keep);
    `ignore_columns` (foreign keys) are left out of the copy comparison, like every key the engine mints afresh
    (compared, a fresh loan_id made every twin row differ from every real one, and no copy was ever found)."""
    from .privacy import protect_twin
    from .privacy.identifiers import replace_real_values

    resample_rng = np.random.default_rng(np.random.SeedSequence([options.seed or 0, first_row]))
    fresh_seed = lambda: int(resample_rng.integers(2**63 - 1))  # noqa: E731
    draw = resample or (lambda n: engine.sample(n, seed=fresh_seed()))
    given = None if resample else (lambda rows: conditional_draw(engine, rows, fresh_seed()))
    formats = identifier_formats(engine)
    # The twin's typed view replaces the columns it converts in a shallow copy: no copy of every column, and the
    # caller's frame unchanged (no step of protect_twin writes into the frame it is given)
    protected, protection = protect_twin(
        engine.typed_view(synthetic.copy(deep=False), copy=False), engine.typed_view(real), resample=lambda n: engine.typed_view(draw(n)),
        k=options.k, quasi_identifiers=options.quasi_identifiers, generalize=options.generalize,
        max_suppression=options.max_suppression, primary_key=options.primary_key,
        ignore_columns=list(ignore_columns or ()) + [spec.name for spec in engine.specs if spec.is_key],
        resample_given=given, seed=fresh_seed(),
        conform=lambda before, after, qis: engine.rederive(before, after, keep=qis, seed=fresh_seed()),
    )
    written = engine.written_view(engine.text_view(protected, copy=False), copy=False)  # protect_twin's own frame
    protected = engine.renumber_keys(written, first_row, seed=[options.seed or 0, first_row])
    protected, clashes = replace_real_values(protected, real, formats, resample_rng)
    protection["direct_identifiers_redrawn_for_equalling_a_real_value"] = clashes
    return protected, protection
