"""Quality against an honest reference: the holdout ceiling.

A twin compared with the rows its model was fitted on looks best when it stays close to them, and no figure
says how good "good" is. So the real table is split once (80 % training share, 20 % held out, shuffled with
the clone's seed), a twin is made from the training share only, and both the twin and the real training share
are scored against the held-out share with the same `quality_report`:

  ceiling             quality_report(held out, real training share): how close a fresh real sample of the same
                      population comes; sampling noise alone keeps it below 100.
  twin_vs_holdout     quality_report(held out, twin of the training share, as many rows as the training share),
                      so both figures carry the same sampling noise.
  quality_vs_ceiling  100 x twin_vs_holdout / ceiling: 100 means the twin is as close to unseen rows as real
                      rows are; above 100 is possible by chance on small tables.

Tables over MAX_ROWS rows are first sampled down to it (the same sizes for ceiling and twin keep it fair).
The same split serves TSTR (`utility.tstr`): its twin never saw the held-out rows either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from .metrics import column_types, quality_report
from .utility import tstr

HOLDOUT_SHARE = 0.2
MIN_HOLDOUT_ROWS = 50  # fewer held-out rows and the ceiling is noise
# Larger tables are evaluated on a uniform sample of this many rows (8,000 to train, 2,000 held out): the
# reference refit and TSTR then cost the same on a million rows as on 10,000, and the ceiling and the twin are
# measured at the same sizes, so their ratio stays fair; TSTR states its bootstrap interval at that size.
MAX_ROWS = 10_000


def split(real: pd.DataFrame, share: float = HOLDOUT_SHARE, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training share, held-out share) of the real rows, shuffled with `seed`."""
    order = np.random.default_rng(seed).permutation(len(real))
    cut = len(real) - int(round(len(real) * share))
    return real.iloc[order[:cut]].reset_index(drop=True), real.iloc[order[cut:]].reset_index(drop=True)


def _scores(report: dict) -> dict:
    columns = {**{name: 1.0 - value for name, value in report["ks_statistics"].items()},
               **report["categorical_match"]}
    return {"score": report["similarity_score"], "column_shapes": 100 * report["column_shapes"],
            "pair_trends": 100 * report["pair_trends"], "correlation_error": report["correlation_error"],
            "columns": columns}


def holdout_evaluation(real: pd.DataFrame, make_twin: Callable[[pd.DataFrame, int], pd.DataFrame],
                       primary_key: str | None = None, column_kinds: Mapping[str, str] | None = None,
                       target: str | None = None, seed: int = 0, share: float = HOLDOUT_SHARE) -> dict:
    """{"holdout": ceiling / twin_vs_holdout / quality_vs_ceiling, "utility": TSTR} on one 80/20 split.

    `make_twin(train, rows)` fits the clone's model on `train` only and returns `rows` protected twin rows:
    the caller's pipeline, so the reference is made exactly like the product.
    """
    if len(real) > MAX_ROWS:
        real = real.sample(MAX_ROWS, random_state=seed)
    train, holdout = split(real, share, seed)
    if len(holdout) < MIN_HOLDOUT_ROWS:
        reason = f"{len(real)} rows are too few to hold out {MIN_HOLDOUT_ROWS} rows as a reference"
        return {"holdout": {"skipped": reason}, "utility": {"skipped": reason}}
    # Column types are decided once on the whole real table, so a share never reads a column differently.
    types = column_types(real, primary_key, column_kinds)
    twin = make_twin(train, len(train))
    ceiling = _scores(quality_report(holdout, train, column_kinds=types))
    achieved = _scores(quality_report(holdout, twin, column_kinds=types))
    columns = {name: {"ceiling": ceiling["columns"][name], "twin": achieved["columns"].get(name, float("nan"))}
               for name in ceiling["columns"]}
    holdout_report = {
        "method": f"twin of {len(train)} training rows and those rows, each scored against {len(holdout)} "
                  f"held-out real rows (seed {seed})",
        "n_train": len(train), "n_holdout": len(holdout),
        "ceiling": ceiling["score"], "twin_vs_holdout": achieved["score"],
        "quality_vs_ceiling": 100.0 * achieved["score"] / ceiling["score"],
        "column_shapes": {"ceiling": ceiling["column_shapes"], "twin": achieved["column_shapes"]},
        "pair_trends": {"ceiling": ceiling["pair_trends"], "twin": achieved["pair_trends"]},
        "correlation_error": {"ceiling": ceiling["correlation_error"], "twin": achieved["correlation_error"]},
        "columns": columns,
    }
    utility = tstr(train, twin, holdout, primary_key=primary_key, column_kinds=types, target=target, seed=seed)
    return {"holdout": holdout_report, "utility": utility}
