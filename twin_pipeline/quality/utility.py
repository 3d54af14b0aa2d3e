"""Machine-learning utility, train-synthetic-test-real (TSTR): does a model trained on the twin score like one
trained on the real data?

The same gradient-boosting model (scikit-learn's HistGradientBoosting, fixed settings and seed) is trained once
on the twin and once on the real training share, and both are tested on the real held-out share, which neither
the twin's model nor the classifier saw. Reported: AUC (classification; one-vs-rest, weighted by prevalence,
for more than two classes) or R^2 (a numeric target) for both, the gap real - twin with a 95 % bootstrap interval
over the held-out rows (`gap_ci`), and whether both models lean
on the same columns: Spearman correlation of their permutation importances on the held-out share, over the
columns either model ranks in its top 10 (top half on narrower tables), and the overlap of those top lists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import TwinInputError
from ..outcome import outcome_column
from .metrics import _as_numbers, _plan

MIN_CLASS_ROWS = 10  # rare classes are folded into the largest one: too few rows to learn or to score
MAX_TRAIN_ROWS = 50_000  # the models learn from at most this many rows (a larger twin adds nothing to the score)
# Held-out rows the permutation importances are measured on, one shuffle per column: the importances only rank
# columns for the agreement figure, and every extra shuffled row is a pass over every tree of both models.
MAX_IMPORTANCE_ROWS = 300
MAX_CATEGORIES = 250  # HistGradientBoosting takes at most 255 bins; rarer categories share one code
IMPORTANCE_REPEATS = 1
BOOTSTRAP_ROUNDS = 200  # the gap's interval: test rows resampled, predictions reused (no refit)
TOP_FEATURES = 10  # importance agreement: Spearman over the union of both models' top columns (at most 10,
# at most half the columns: on a 12-column table a top 10 would overlap whatever the models learnt)
THREADS = 1
# Early stopping on a tenth of the training rows. Every round of a model with C classes is C trees to grow and
# to evaluate in the importances, so the rounds are few and long (learning rate 0.2, stop 5 rounds past the best:
# 6 to 50 rounds on the bench tables, at most 50 x 0.2 as much learning as 100 x 0.1): 35-55 % less CPU than
# 0.1 / 100 / 10, with gaps that moved by less than the classifier's own seed moves them on five of six bench
# tables, and well inside the interval on the sixth (bench/bench_tstr_settings.py).
MODEL_SETTINGS = {"max_iter": 50, "learning_rate": 0.2, "early_stopping": True, "validation_fraction": 0.1,
                  "n_iter_no_change": 5, "random_state": 0}


def choose_target(real: pd.DataFrame, target: str | None = None) -> tuple[str | None, str]:
    """The column to predict and why: the user's `target`, else the table's outcome column (outcome.py).
    (None, reason) when there is none."""
    if target is not None:
        if target not in real.columns:
            raise TwinInputError("--target", f"column {target!r} is not in the real data")
        return target, "given"
    return outcome_column(real)


def _labels(values: pd.Series, keep: list) -> np.ndarray:
    """Class labels as text, classes outside `keep` folded into keep[0] (the most frequent)."""
    text = values.astype("string").fillna("<missing>").to_numpy(dtype=object)
    return np.where(np.isin(text, keep), text, keep[0])


class _Encoder:
    """Numbers as numbers (text numbers and dates parsed as the quality report parses them) and categories as
    integer codes learnt from the real training share's values as text, so every frame is encoded the same way.
    `train`: that share encoded (its categories counted on the codes it was encoded with)."""

    def __init__(self, train: pd.DataFrame, plan: dict, features: list[str]):
        self.plan, self.features = plan, features
        self.categories, texts = {}, {}
        for name in features:
            if plan[name].type == "categorical":
                texts[name] = codes, text = _texts(train[name])
                counts = pd.Series(np.bincount(codes[codes >= 0], minlength=len(text)), index=text)
                # as text.value_counts() orders them: by count, ties as its sort leaves them
                self.categories[name] = pd.Index(counts.sort_values(ascending=False).index[:MAX_CATEGORIES])
        self.train = self._encode(train, texts)

    @property
    def categorical_mask(self) -> np.ndarray:
        return np.array([name in self.categories for name in self.features])

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        return self._encode(frame, {})

    def _encode(self, frame: pd.DataFrame, texts: Mapping[str, tuple]) -> np.ndarray:
        """`frame` encoded; `texts`: its categorical columns' `_texts`, where at hand."""
        columns = []
        for name in self.features:
            if name in self.categories:
                codes, text = texts[name] if name in texts else _texts(frame[name])
                known = self.categories[name].get_indexer(text).astype("float64")
                known[known < 0] = len(self.categories[name])  # unseen or rare
                columns.append(np.append(known, np.nan)[codes])  # code -1 (missing) picks the NaN
            else:
                columns.append(_as_numbers(frame[name], self.plan[name]))
        return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def _texts(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """`values` as text (astype("string")): (codes, -1 where missing; the distinct texts, in order of first
    appearance). Each distinct value is converted once where equal values are equal texts (whole numbers, text,
    floats without a -0.0), which spares converting and hashing every row's text (4/5 of the encoder's time)."""
    array = values.to_numpy()
    kind = array.dtype.kind
    if not (kind in "iub" or (kind == "f" and not np.signbit(array[array == 0]).any())
            or (kind == "O" and pd.api.types.infer_dtype(array, skipna=True) in ("string", "empty"))):
        values = values.astype("string")  # 1 and 1.0 hash alike but read "1" and "1.0"
    codes, distinct = pd.factorize(values)
    return codes, distinct.astype("string")


def _cap(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return frame.sample(rows, random_state=seed) if len(frame) > rows else frame


def _binary_auc(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Area under the ROC curve for each row of `weights` (how often each test row counts: ones, or one
    bootstrap draw's counts per row): the share of (positive, negative) pairs the score puts in the right
    order, ties counted half. It is the rank-sum (Mann-Whitney) figure sklearn's roc_auc_score gives, for every
    draw at once: each positive row's negatives scored below it, and half those tied, are read off one running
    sum of the negatives' weights in score order (a ranking per draw would cost hundreds). Counts are whole,
    so every sum is exact."""
    negatives = np.flatnonzero(~positive)
    negatives = negatives[np.argsort(score[negatives], kind="stable")]
    ranked, positives = score[negatives], np.flatnonzero(positive)
    below = np.zeros((len(weights), len(negatives) + 1))  # below[:, j]: weight of the j lowest-scored negatives
    np.cumsum(weights[:, negatives], axis=1, out=below[:, 1:])
    beaten = 0.5 * (below[:, np.searchsorted(ranked, score[positives], "left")]
                    + below[:, np.searchsorted(ranked, score[positives], "right")])
    counted = weights[:, positives]
    pairs = counted.sum(axis=1) * below[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (counted * beaten).sum(axis=1) / pairs, np.nan)


def _auc(proba: np.ndarray, classes: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of class probabilities `proba` (columns in `classes` order) for each row of `weights`: binary, or
    one-vs-rest weighted by each class's prevalence among the rows counted."""
    labels = np.unique(truth)

    def one_vs_rest(label) -> np.ndarray:
        column = np.flatnonzero(classes == label)
        score = proba[:, column[0]] if len(column) else np.zeros(len(truth))  # a class the model never saw
        return _binary_auc(truth == label, score, weights)

    if len(labels) <= 2:  # binary: both one-vs-rest AUCs are the same number
        return one_vs_rest(labels[0])
    aucs = np.stack([one_vs_rest(label) for label in labels])
    counts = np.stack([weights[:, truth == label].sum(axis=1) for label in labels])
    present = counts > 0
    averaged = np.where(present, aucs * counts, 0.0).sum(axis=0) / counts.sum(axis=0)
    first = aucs[present.argmax(axis=0), np.arange(aucs.shape[1])]  # a draw with two classes left: binary
    classes_left = present.sum(axis=0)
    return np.where(classes_left == 2, first, np.where(classes_left > 2, averaged, np.nan))


def _r2(predicted: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """R^2 for each row of `weights`, as sklearn's r2_score gives it on the rows counted (1 when a constant
    truth is predicted exactly, else 0 for a constant truth)."""
    mean = weights @ truth / weights.sum(axis=1)
    residual = weights @ (truth - predicted) ** 2
    total = (weights * (truth[None] - mean[:, None]) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1.0 - residual / total, np.where(residual == 0, 1.0, 0.0))


def _once(score, predicted: np.ndarray, truth: np.ndarray) -> float:
    """`score` on every test row counted once."""
    return float(score(predicted, truth, np.ones((1, len(truth))))[0])


def _with_shuffled_copies(rows: np.ndarray, x: np.ndarray, seed: int) -> np.ndarray:
    """`rows`, then a copy of `x` per column and repeat with that column's values shuffled (IMPORTANCE_REPEATS
    shuffles per column), in one array: a model predicts them all in one call (a call per copy costs several
    times more), and both models the same rows."""
    rng = np.random.default_rng(seed)
    n, width = x.shape
    copies = width * IMPORTANCE_REPEATS
    out = np.empty((len(rows) + copies * n, width))
    out[:len(rows)] = rows
    out[len(rows):].reshape(copies, n, width)[:] = x
    for index in range(copies):
        column = index // IMPORTANCE_REPEATS
        start = len(rows) + index * n
        out[start:start + n, column] = x[rng.permutation(n), column]
    return out


def _permutation_importances(metric, base: np.ndarray, shuffled: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean drop of `metric` from the predictions `base` of some rows to those of their copies with one column
    shuffled (`shuffled`, in `_with_shuffled_copies` order), as sklearn's permutation_importance measures it."""
    n = len(y)
    copies = len(shuffled) // n
    score = metric(base, y)
    drops = [score - metric(shuffled[index * n:(index + 1) * n], y) for index in range(copies)]
    return np.asarray(drops).reshape(copies // IMPORTANCE_REPEATS, IMPORTANCE_REPEATS).mean(axis=1)


def _bootstrap_weights(n: int, rng: np.random.Generator, rounds: int = BOOTSTRAP_ROUNDS) -> np.ndarray:
    """(rounds, n): how often each test row is drawn in each of `rounds` draws of n rows with replacement."""
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(rounds)]).astype("float64")


def _percentile_interval(draws: np.ndarray) -> list[float]:
    """95 % percentile interval of the finite draws: how much the gap would move on another held-out sample of
    the same size (the models stay fixed)."""
    finite = draws[np.isfinite(draws)]
    return [float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975))] if len(finite) else [np.nan] * 2


def tstr(train: pd.DataFrame, twin: pd.DataFrame, holdout: pd.DataFrame, primary_key: str | None = None,
         column_kinds: Mapping[str, str] | None = None, target: str | None = None, seed: int = 0) -> dict:
    """Train on the twin and on the real training share, test both on the real held-out share (module doc).

    `twin` must come from a model fitted on `train` only, or the held-out rows leak into it. Returns
    {"skipped": reason} when there is no target or too little to learn from.
    """
    from threadpoolctl import threadpool_limits

    load_model()  # loads the OpenMP runtime first, so the limit below applies to it
    # One thread: on tables this size OpenMP's start-up per tree costs more than it saves, and on a busy
    # machine two spinning threads made a fit 15x slower than one.
    with threadpool_limits(THREADS):
        return _tstr(train, twin, holdout, primary_key, column_kinds, target, seed)


def load_model() -> None:
    """Import scikit-learn's gradient boosting (a third of a second: a caller with a process to spare loads it
    early). It loads scipy.stats, whose ~280 array-API functions each have their docstring parsed and written
    again with a table of the array libraries they support (scipy._lib._array_api.xp_capabilities): 0.09 of its
    0.24 CPU s, for docstrings nobody reads here, so they are left as written (`_docstrings_as_written`). A SciPy
    whose decorator that does not fit is loaded again, as it comes."""
    import sys

    if "scipy.stats" not in sys.modules:
        with contextlib.suppress(Exception), _docstrings_as_written():
            import sklearn.ensemble  # noqa: F401
    import sklearn.ensemble  # noqa: F401,F811


@contextlib.contextmanager
def _docstrings_as_written():
    """SciPy's xp_capabilities decorator given `_DocstringAsWritten` for a docstring parser while inside."""
    from scipy._lib import _array_api

    parser = _array_api.FunctionDoc
    _array_api.FunctionDoc = _DocstringAsWritten
    try:
        yield
    finally:
        _array_api.FunctionDoc = parser


class _DocstringAsWritten:
    """A function's docstring as it was written (after the signature line xp_capabilities drops); the section
    the decorator appends to is discarded."""

    def __init__(self, function, *args, **kwargs):
        self.text = function.__doc__ or ""

    def __getitem__(self, section: str) -> list:
        return []

    def __str__(self) -> str:
        return "\n" + self.text


def _tstr(train, twin, holdout, primary_key, column_kinds, target, seed) -> dict:
    from scipy.stats import spearmanr
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    plan = _plan(train, primary_key, column_kinds)
    types = {name: column.type for name, column in plan.items()}
    target, why = choose_target(train, target)
    if target is None:
        return {"skipped": why}
    features = [name for name, column in plan.items() if column.type != "excluded" and name != target]
    if not features:
        return {"skipped": f"no column other than the target {target!r} to learn from", "target": target}
    classify = types[target] != "numeric" and types[target] != "datetime"
    train, twin = _cap(train, MAX_TRAIN_ROWS, seed), _cap(twin, MAX_TRAIN_ROWS, seed)
    encode = _Encoder(train, plan, features)
    if classify:
        counts = train[target].astype("string").fillna("<missing>").value_counts()
        keep = list(counts[counts >= MIN_CLASS_ROWS].index) or list(counts.index[:1])
        labels = {name: _labels(frame[target], keep) for name, frame in
                  (("train", train), ("twin", twin), ("holdout", holdout))}
        if len(np.unique(labels["holdout"])) < 2 or len(np.unique(labels["train"])) < 2:
            return {"skipped": f"the target {target!r} has a single class in the real training or held-out share",
                    "target": target}
        metric, model_type = "auc", HistGradientBoostingClassifier
    else:
        labels = {name: _as_numbers(frame[target], plan[target]) for name, frame in
                  (("train", train), ("twin", twin), ("holdout", holdout))}
        metric, model_type = "r2", HistGradientBoostingRegressor
    x = {"train": encode.train, "twin": encode(twin), "holdout": encode(holdout)}
    present = {name: pd.notna(labels[name]) for name in labels}  # rows whose target is known
    if len(np.unique(labels["twin"][present["twin"]])) < 2:
        return {"skipped": f"the twin has a single value of the target {target!r}", "target": target}

    result = {"target": target, "target_chosen": why, "task": "classification" if classify else "regression",
              "metric": metric, "model": f"{model_type.__name__}({', '.join(f'{k}={v}' for k, v in MODEL_SETTINGS.items())})",
              "features": len(features), "n_train": int(present["train"].sum()), "n_twin": int(present["twin"].sum()),
              "n_test": int(present["holdout"].sum())}
    if classify:
        result["classes"] = [str(label) for label in keep]
    test_x, test_y = x["holdout"][present["holdout"]], labels["holdout"][present["holdout"]]
    rng = np.random.default_rng(seed)
    probe = rng.permutation(len(test_y))[:MAX_IMPORTANCE_ROWS]
    rows = _with_shuffled_copies(test_x, test_x[probe], seed)  # the test rows, then the importances' copies
    weights = _bootstrap_weights(len(test_y), rng)  # the gap's interval: test rows resampled, models fixed
    importances, draws = {}, {}
    for name in ("train", "twin"):
        model = model_type(categorical_features=encode.categorical_mask, **MODEL_SETTINGS)
        model.fit(x[name][present[name]], labels[name][present[name]])
        if classify:
            predict, score = model.predict_proba, lambda proba, y, counted, model=model: _auc(
                proba, model.classes_, y, counted)
        else:
            predict, score = model.predict, _r2
        predictions = predict(rows)
        predicted = predictions[:len(test_x)]
        result["real" if name == "train" else "twin"] = _once(score, predicted, test_y)
        draws[name] = score(predicted, test_y, weights)
        importances[name] = _permutation_importances(lambda predicted, y, score=score: _once(score, predicted, y),
                                                     predicted[probe], predictions[len(test_x):], test_y[probe])
    result["gap"] = result["real"] - result["twin"]
    result["gap_ci"] = _percentile_interval(draws["train"] - draws["twin"])
    result["relative"] = result["twin"] / result["real"] if result["real"] else float("nan")
    real_order, twin_order = (list(np.argsort(-importances[name])) for name in ("train", "twin"))
    top = max(1, min(TOP_FEATURES, len(features) // 2))
    # Ranked over the columns either model leans on (at least 3, for a rank correlation to mean anything):
    # the long tail of near-zero importances is noise.
    ranked = min(len(features), max(3, top))
    chosen = sorted(set(real_order[:ranked]) | set(twin_order[:ranked]))
    rho = spearmanr(importances["train"][chosen], importances["twin"][chosen]).statistic if len(chosen) > 2 else np.nan
    result["importance_agreement"] = {
        "spearman": float(rho) if np.isfinite(rho) else float("nan"),
        "columns_ranked": len(chosen),
        "top_overlap": len(set(real_order[:top]) & set(twin_order[:top])) / top,
        "top_real": [features[i] for i in real_order[:top]], "top_twin": [features[i] for i in twin_order[:top]],
        "importances": {name: {"real": float(importances["train"][i]), "twin": float(importances["twin"][i])}
                        for i, name in enumerate(features)},
    }
    return result
