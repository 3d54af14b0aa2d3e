"""The privacy report a data-protection officer signs, and a bounded attacker audit that would catch a leak.

`privacy_report` (fast, on every clone): k recounted, exact copies, and the distance from twin rows to their
closest real record.

`audit_generator` (off the critical path, time-bounded): fit a generator on a training share of the real rows,
then attack its output as an adversary would, with the held-out rows as the control set:
* membership: is a training row closer to its nearest twin row than a held-out row is, relative to how close it
  is to other real people? Each row's distance to its closest twin row is divided by its distance to its
  closest other real row (training and held-out together), so an unusual held-out row, far from everyone, does
  not read as "not a member" (on a 1,000-row credit_data slice, a fresh real sample read +0.08 on one split
  by plain distance, +0.02 by this ratio). Measured on every training row (up to a cap) as the AUC of "closer
  means member" (DeLong 95 % interval); the risk is 2 x AUC - 1 (0: the twin is as close to unseen people as
  to its own training rows; 1: every training row has a near-copy);
* inference of named secrets (default: the target column and the most sensitive amounts) from the columns an
  attacker knows, by the nearest twin row on those columns;
* linkability: the two halves of the known columns pointing at the same twin rows;
* singling-out: anonymeter's multivariate queries, with capped queries and attempts.
Inference and linkability risks follow anonymeter's definition, (success on training rows - success on
control rows) / (1 - success on control rows), with a Newcombe 95 % interval on the difference.

Distances run on encoded columns, so a KD-tree (few dimensions) or one matrix product per chunk (many) finds
nearest neighbours: a number becomes its mid-rank in the reference table (0..1), a category one-hot scaled so a
mismatch costs 1, missing its own indicator. The distance is the root mean square over columns of those
per-column differences (each 0..1), a rank-based Gower distance.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special
from scipy.spatial import cKDTree

from twin_pipeline.outcome import outcome_column
from twin_pipeline.privacy.copies import exact_copy_mask
from twin_pipeline.privacy.grouping import smallest_group
from twin_pipeline.privacy.numeric import NumericColumn, is_numeric_qi
from twin_pipeline.privacy.quasi_identifiers import detect_quasi_identifiers

TOP_CATEGORIES = 32  # one-hot coordinates per categorical column; rarer values share one "other" coordinate
KD_TREE_MAX_DIMENSIONS = 16  # above this a KD-tree visits most leaves: a chunked matrix product is faster
CHUNK_CELLS = 8_000_000  # query rows x reference rows per chunk of the brute-force search (64 MB of float64)
INFERENCE_TOLERANCE = 0.05  # a numeric secret is guessed when within 5 % of the true value (anonymeter's rule)
LINK_NEIGHBOURS = 10
MIN_FLAGGED_RISK = 0.05  # a risk is flagged when its family-wise interval excludes 0 and it is at least this large
FAMILY_ALPHA = 0.05  # shared by all attacks of one audit (Bonferroni): a fresh twin is flagged in < 5 % of audits
Z95 = 1.959963984540054
_SQRT_HALF = np.sqrt(0.5)


# ---------------------------------------------------------------------------------------------------- encoding
@dataclass
class Encoder:
    """Columns as coordinates for nearest-neighbour search, fitted on a reference (training) table."""

    numeric: dict[str, tuple[NumericColumn, np.ndarray, bool]] = field(default_factory=dict)  # codec, sorted, nulls
    categorical: dict[str, list[str]] = field(default_factory=dict)  # the top values, in coordinate order

    @classmethod
    def fit(cls, reference: pd.DataFrame, columns: Sequence[str], others: Sequence[pd.DataFrame] = ()) -> Encoder:
        encoder = cls()
        for column in columns:
            series = reference[column]
            if is_numeric_qi(series):
                codec = NumericColumn(series.dtype, pd.api.types.is_datetime64_any_dtype(series.dtype), None)
                values = codec.values(series)
                nulls = bool(np.isnan(values).any()) or any(frame[column].isna().any() for frame in others)
                encoder.numeric[column] = (codec, np.sort(values[~np.isnan(values)]), nulls)
            else:
                counts = _as_text(series).value_counts(dropna=False)
                encoder.categorical[column] = list(counts.index[:TOP_CATEGORIES])
        return encoder

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def transform(self, frame: pd.DataFrame, columns: Sequence[str] | None = None) -> np.ndarray:
        """(rows, coordinates) float64; `columns` picks a subset (an attacker's known columns)."""
        blocks = []
        for column in self.columns if columns is None else columns:
            if column in self.numeric:
                codec, ordered, nulls = self.numeric[column]
                values = _numbers(frame[column], codec)
                missing = np.isnan(values)
                rank = _twice_midranks(ordered, values) / (2.0 * max(len(ordered), 1))
                blocks.append(np.where(missing, 0.5, rank)[:, None])
                if nulls:
                    blocks.append(missing.astype(np.float64)[:, None])
            else:
                top = self.categorical[column]
                codes = pd.Categorical(_as_text(frame[column]), categories=top).codes.astype(np.int64)
                one_hot = np.zeros((len(frame), len(top) + 1))
                one_hot[np.arange(len(frame)), np.where(codes < 0, len(top), codes)] = _SQRT_HALF
                blocks.append(one_hot)
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))


def _twice_midranks(ordered: np.ndarray, values: np.ndarray) -> np.ndarray:
    """searchsorted(ordered, values, "left") + searchsorted(ordered, values, "right") for sorted `ordered`, from
    one search among its distinct values (the first place of each, its count added where a value is one of them):
    the same integers at a third to two thirds of the cost on 100,000 values (fewer distinct values, less)."""
    if not len(ordered):
        return np.zeros(len(values), dtype=np.intp)
    starts = np.flatnonzero(np.append(True, ordered[1:] != ordered[:-1]))  # -0.0 and 0.0 are one value, as there
    distinct, bounds = ordered[starts], np.append(starts, len(ordered))
    position = np.searchsorted(distinct, values)
    found = np.minimum(position, len(distinct) - 1)
    return 2 * bounds[position] + np.where(distinct[found] == values, np.diff(bounds)[found], 0)


def _as_text(series: pd.Series) -> pd.Series:
    return series.astype("string").fillna("<missing>").astype(object)


def _numbers(series: pd.Series, codec: NumericColumn) -> np.ndarray:
    if is_numeric_qi(series):
        return codec.values(series)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def nearest(queries: np.ndarray, reference: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances and indices of the k nearest reference rows of each query row, nearest first.

    A KD-tree in few dimensions; otherwise chunks of queries against all references, ranked by one matrix product
    (|r|^2 - 2 q.r orders references like |q - r|^2), the chosen distances then computed exactly (a copy is at 0);
    memory bounded by CHUNK_CELLS."""
    k = min(k, len(reference))
    if len(queries) == 0 or k == 0:
        return np.zeros((len(queries), k)), np.zeros((len(queries), k), dtype=np.int64)
    if reference.shape[1] <= KD_TREE_MAX_DIMENSIONS:
        distances, indices = cKDTree(reference).query(queries, k=k)
        return distances.reshape(len(queries), k), indices.reshape(len(queries), k)
    reference_norms = np.einsum("ij,ij->i", reference, reference)
    out_d, out_i = np.empty((len(queries), k)), np.empty((len(queries), k), dtype=np.int64)
    step = max(1, CHUNK_CELLS // len(reference))
    for start in range(0, len(queries), step):
        block = queries[start:start + step]
        score = block @ reference.T
        score *= -2.0
        score += reference_norms
        if k == 1:
            index = score.argmin(axis=1)[:, None]
        else:
            index = np.argpartition(score, k - 1, axis=1)[:, :k]
        exact = np.sqrt(((block[:, None, :] - reference[index]) ** 2).sum(axis=2))
        order = np.argsort(exact, axis=1, kind="stable")
        out_i[start:start + len(block)] = np.take_along_axis(index, order, 1)
        out_d[start:start + len(block)] = np.take_along_axis(exact, order, 1)
    return out_d, out_i


def closest_distances(rows: np.ndarray, reference: np.ndarray, n_columns: int) -> np.ndarray:
    """Distance from each row to its closest reference row: root mean square of the per-column differences."""
    return nearest(rows, reference)[0][:, 0] / np.sqrt(max(n_columns, 1))


# ------------------------------------------------------------------------------------- fast privacy report
def privacy_report(
    synthetic: pd.DataFrame,
    real_train: pd.DataFrame,
    real_holdout: pd.DataFrame | None = None,
    quasi_identifiers: Sequence[str] | None = None,
    k: int = 5,
    anonymity: dict | None = None,
    max_rows: int = 2_000,
    seed: int = 0,
    ignore_columns: Sequence[str] = (),
    recounted: dict | None = None,
) -> dict:
    """Privacy figures of a synthetic table against the real rows it was trained on (and an unseen holdout).

    `anonymity` is the report of `enforce_k_anonymity`, whose suppression count is carried over;
    `ignore_columns` (e.g. a generated primary key) are left out of copy and distance checks; `recounted` (rows,
    k, exact_matches, exact_match_rate) are figures already counted over the whole twin, of which `synthetic` is
    then a sample: they are reported instead of counting again. Distances compare samples of `max_rows` rows.
    """
    qis = list(detect_quasi_identifiers(synthetic) if quasi_identifiers is None else quasi_identifiers)
    if recounted is None:
        copies = exact_copy_mask(synthetic, real_train, ignore_columns)
        recounted = {"rows": len(synthetic), "k": smallest_group(synthetic, qis), "exact_matches": int(copies.sum()),
                     "exact_match_rate": float(copies.mean()) if len(copies) else 0.0}
    columns = [c for c in synthetic.columns if c in real_train.columns and c not in set(ignore_columns)]
    rng = np.random.default_rng(seed)
    n_reference = min(max_rows, len(real_train), len(real_holdout) if real_holdout is not None else max_rows)
    # rows drawn first, then columns: a 100,000-row twin's columns are not copied for the 2,000 rows compared
    syn = _subsample(synthetic, max_rows, rng)[columns]
    train = _subsample(real_train, n_reference, rng)[columns]
    holdout = _subsample(real_holdout, n_reference, rng)[columns] if real_holdout is not None else None
    encoder = Encoder.fit(train, columns, [syn] + ([holdout] if holdout is not None else []))
    syn_x, train_x = encoder.transform(syn), encoder.transform(train)
    dcr: dict = {
        "metric": "root mean square over columns of |mid-rank difference| for numbers, 0/1 mismatch otherwise",
        "rows_compared": {"synthetic": len(syn), "train": len(train)},
    }
    syn_to_train = closest_distances(syn_x, train_x, len(columns))
    dcr["synthetic_to_train"] = _summary(syn_to_train)
    share_closer = None
    if holdout is not None:
        holdout_x = encoder.transform(holdout)
        dcr["rows_compared"]["holdout"] = len(holdout)
        dcr["holdout_to_train"] = _summary(closest_distances(holdout_x, train_x, len(columns)))
        syn_to_holdout = closest_distances(syn_x, holdout_x, len(columns))
        share_closer = float(np.mean((syn_to_train < syn_to_holdout) + 0.5 * (syn_to_train == syn_to_holdout)))
    return {
        "rows": recounted["rows"],
        "quasi_identifiers": qis,
        "target_k": int(k),
        "k": recounted["k"],
        "k_satisfied": recounted["k"] is None or recounted["k"] >= k,  # None: no quasi-identifier to group by
        "records_suppressed": None if anonymity is None else anonymity.get("records_suppressed"),
        "exact_matches": recounted["exact_matches"],
        "exact_match_rate": recounted["exact_match_rate"],
        "distance_to_closest_record": dcr,
        # 0.5 is ideal with equal-sized train and holdout samples; well above 0.5 means memorised rows.
        "share_closer_to_train_than_holdout": share_closer,
    }


def _subsample(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(df) <= n:
        return df
    return df.iloc[np.sort(rng.choice(len(df), size=n, replace=False))]


def _summary(distances: np.ndarray) -> dict | None:
    if len(distances) == 0:
        return None
    return {"median": float(np.median(distances)), "p5": float(np.percentile(distances, 5))}


# -------------------------------------------------------------------------------------------- the secrets
AMOUNT_WORDS = ("income", "salary", "wage", "balance", "amount", "amnt", "debt", "loan", "limit", "payment", "paid",
                "asset", "saving", "expend", "expense", "revenue", "price", "value")
NOT_AMOUNT_WORDS = ("num_", "count", "number", "inquir", "_acc", "months", "since", "_to_", "ratio")  # counts, ratios


def default_secrets(real: pd.DataFrame, quasi_identifiers: Sequence[str] = (), primary_key: str | None = None,
                    n_amounts: int = 2) -> list[str]:
    """What an attacker most wants to learn: the outcome column (outcome.outcome_column, the one TSTR predicts)
    and the `n_amounts` most sensitive amounts (income, balance, debt, loan amount... by name, else the numeric
    columns with the most distinct values), never a key or a column the attacker is assumed to know."""
    known = {primary_key, *quasi_identifiers}
    candidates = [c for c in real.columns if c not in known and real[c].nunique(dropna=True) > 1]
    lower = {c: str(c).lower() for c in candidates}
    target, _ = outcome_column(real, exclude=known)
    numeric = [c for c in candidates if c != target and is_numeric_qi(real[c])
               and not pd.api.types.is_bool_dtype(real[c]) and real[c].nunique() > 10
               and not any(word in lower[c] for word in NOT_AMOUNT_WORDS)]
    named = [c for word in AMOUNT_WORDS for c in numeric if word in lower[c]]
    ranked = list(dict.fromkeys(named + sorted(numeric, key=lambda c: -real[c].nunique())))
    return ([target] if target is not None else []) + ranked[:n_amounts]


# ------------------------------------------------------------------------------------------------- budget
class Deadline:
    """A time budget shared by the stages of an audit; stages that would start after it are left out."""

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def remaining(self) -> float:
        return self.seconds - self.elapsed


# ---------------------------------------------------------------------------------------------- the audit
def audit_generator(
    real: pd.DataFrame,
    generate: Callable[[pd.DataFrame], pd.DataFrame],
    quasi_identifiers: Sequence[str] | None = None,
    secrets: Sequence[str] | None = None,
    budget_seconds: float = 60.0,
    holdout_share: float = 0.2,
    max_real_rows: int = 20_000,
    max_rows: int = 5_000,
    n_attacks: int = 2_000,
    seed: int = 0,
    ignore_columns: Sequence[str] = (),
) -> dict:
    """Fit `generate` on a training share of `real` and attack what it makes, within `budget_seconds`.

    At most `max_real_rows` real rows take part (a random subset; the generator is then judged on that size),
    each attack queries at most `max_rows` training and as many held-out rows, and anonymeter's singling-out
    makes at most 20 query attempts per attack. Stages run in order of importance (membership, inference,
    linkability, singling-out); one that would start after the budget is listed in `budget.not_run`.
    """
    deadline = Deadline(budget_seconds)
    rng = np.random.default_rng(seed)
    used = _subsample(real, max_real_rows, rng).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    cut = int(round(len(used) * (1 - holdout_share)))
    train, holdout = used.iloc[:cut].reset_index(drop=True), used.iloc[cut:].reset_index(drop=True)
    method = {"real_rows": len(real), "rows_used": len(used), "train": len(train), "holdout": len(holdout),
              "design": f"generator fitted on {len(train)} rows; the {len(holdout)} held-out rows are the control"}
    if len(holdout) < 20 or len(train) < 20:
        return {"skipped": f"{len(real)} rows are too few to hold out a control set", "method": method}
    synthetic = generate(train)
    method["generate_seconds"] = round(deadline.elapsed, 2)
    result = attacker_risk(synthetic, train, holdout, quasi_identifiers=quasi_identifiers, secrets=secrets,
                           n_attacks=n_attacks, max_rows=max_rows, seed=seed, ignore_columns=ignore_columns,
                           deadline=deadline)
    return {"method": method, **result}


def attacker_risk(
    synthetic: pd.DataFrame,
    real_train: pd.DataFrame,
    real_holdout: pd.DataFrame,
    quasi_identifiers: Sequence[str] | None = None,
    secrets: Sequence[str] | None = None,
    n_attacks: int = 2_000,
    max_rows: int = 5_000,
    seed: int = 0,
    ignore_columns: Sequence[str] = (),
    deadline: Deadline | None = None,
) -> dict:
    """Membership, inference, linkability and singling-out risks of `synthetic`, made from `real_train`,
    with `real_holdout` (never seen by the generator) as the control set; each with a 95 % interval."""
    deadline = deadline or Deadline(float("inf"))
    columns = [c for c in synthetic.columns if c in real_train.columns and c not in set(ignore_columns)]
    qis = [q for q in (detect_quasi_identifiers(real_train) if quasi_identifiers is None else quasi_identifiers)
           if q in columns]
    secret_columns = [s for s in (default_secrets(real_train[columns], qis) if secrets is None else secrets)
                      if s in columns]
    known = [c for c in (qis if len(qis) >= 2 else columns) if c not in secret_columns]
    rng = np.random.default_rng(seed)
    n_query = min(max_rows, len(real_train))
    train = _subsample(real_train[columns], n_query, rng).reset_index(drop=True)
    control = _subsample(real_holdout[columns], max_rows, rng).reset_index(drop=True)
    syn = _aligned(synthetic[columns].reset_index(drop=True), real_train)
    encoder = Encoder.fit(train, columns, [syn, control])
    encoded = {name: encoder.transform(frame) for name, frame in (("syn", syn), ("train", train), ("control", control))}
    n_attacks = int(min(n_attacks, len(train), len(control)))
    attack_rows = {name: np.sort(rng.choice(len(encoded[name]), n_attacks, replace=False))
                   for name in ("train", "control")}

    n_tests = 3 + len(secret_columns)
    z = special.ndtri(1 - FAMILY_ALPHA / (2 * n_tests))  # each "ci_family" holds with 95 % for all attacks at once
    result: dict = {
        "rows": {"synthetic": len(syn), "train": len(train), "control": len(control),
                 "train_total": len(real_train)},
        "n_attacks": n_attacks, "known_columns": known, "secrets": secret_columns,
        "flag_rule": f"risk >= {MIN_FLAGGED_RISK} and its interval at the family-wise 95 % level (Bonferroni over "
                     f"{n_tests} attacks, ci_family) above 0",
    }
    not_run: dict[str, str] = {}
    seconds: dict[str, float] = {}

    def stage(name: str, run: Callable[[], dict]) -> None:
        if deadline.remaining <= 0:
            not_run[name] = f"time budget of {deadline.seconds:g} s spent"
            return
        started = time.perf_counter()
        try:
            result[name] = run()
        except Exception as error:  # noqa: BLE001 - one attack failing leaves the others' figures standing
            result[name] = {"error": f"{type(error).__name__}: {error}"}
        seconds[name] = round(time.perf_counter() - started, 3)

    stage("membership", lambda: membership_risk(encoded["syn"], encoded["train"], encoded["control"], z))
    stage("inference", lambda: {
        secret: inference_risk(encoder, syn, train, control, attack_rows, [c for c in known if c != secret],
                               secret, z)
        for secret in secret_columns})
    stage("linkability", lambda: linkability_risk(encoder, syn, train, control, attack_rows, known, z))
    stage("singling_out", lambda: singling_out_risk(syn, train, control, min(n_attacks, 200), seed, z))
    result["flagged"] = flagged_risks(result)
    result["budget"] = {"seconds": deadline.seconds, "elapsed": round(deadline.elapsed, 2),
                        "truncated": bool(not_run), "not_run": not_run, "stage_seconds": seconds}
    return result


def _aligned(synthetic: pd.DataFrame, real: pd.DataFrame) -> pd.DataFrame:
    """The twin with the real table's dtypes where they differ (a twin written back as text: dates, "13.5%"),
    so attacks compare like with like."""
    out = synthetic.copy()
    for column in out.columns:
        target = real[column].dtype
        if out[column].dtype == target:
            continue
        if pd.api.types.is_datetime64_any_dtype(target):
            out[column] = pd.to_datetime(out[column], errors="coerce", format="mixed")
        elif pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target):
            out[column] = pd.to_numeric(out[column], errors="coerce")
        else:
            out[column] = out[column].astype(real[column].dtype, errors="ignore") \
                if not pd.api.types.is_bool_dtype(target) else out[column]
    return out


def membership_risk(synthetic: np.ndarray, train: np.ndarray, control: np.ndarray, z_family: float = Z95) -> dict:
    """Membership attack by the distance to the closest twin row over the distance to the closest other real row
    (module doc): AUC of "relatively closer means member" over the training rows against the control rows
    (DeLong 95 % interval); risk = 2 AUC - 1."""
    to_train = nearest(train, synthetic)[0][:, 0]
    to_control = nearest(control, synthetic)[0][:, 0]
    real = np.vstack([train, control])
    to_real = nearest(real, real, k=2)[0][:, -1]  # the row itself is the first, at 0 (a duplicate: both at 0)
    relative = np.concatenate([to_train, to_control]) / np.maximum(to_real, 1e-9)
    scores = -relative[:len(train)], -relative[len(train):]
    auc, (low, high) = auc_with_interval(*scores)
    _, (family_low, family_high) = auc_with_interval(*scores, z_family)
    return {"risk": 2 * auc - 1, "ci": [2 * low - 1, 2 * high - 1], "auc": auc,
            "ci_family": [2 * family_low - 1, 2 * family_high - 1],
            "median_coordinate_distance": {"train": float(np.median(to_train)),
                                           "control": float(np.median(to_control))},
            "share_of_train_with_a_copy": float(np.mean(to_train == 0)),
            "share_of_control_with_a_copy": float(np.mean(to_control == 0))}


def auc_with_interval(positives: np.ndarray, negatives: np.ndarray,
                      z: float = Z95) -> tuple[float, tuple[float, float]]:
    """P(positive score > negative score) + P(tie) / 2, with DeLong's interval (95 % by default; midranks handle
    ties)."""
    m, n = len(positives), len(negatives)
    ranks = pd.Series(np.concatenate([positives, negatives])).rank().to_numpy()  # ties share their mean rank
    within_positive, within_negative = pd.Series(positives).rank().to_numpy(), pd.Series(negatives).rank().to_numpy()
    v10 = (ranks[:m] - within_positive) / n  # per positive: share of negatives it beats
    v01 = 1.0 - (ranks[m:] - within_negative) / m  # per negative: share of positives that beat it
    auc = float(v10.mean())
    variance = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    half = z * np.sqrt(variance)
    return auc, (max(0.0, auc - half), min(1.0, auc + half))


def inference_risk(encoder: Encoder, syn: pd.DataFrame, train: pd.DataFrame, control: pd.DataFrame,
                   attack_rows: dict[str, np.ndarray], known: list[str], secret: str,
                   z_family: float = Z95) -> dict:
    """Guess `secret` of each attacked row as that of the twin row nearest on the known columns."""
    reference = encoder.transform(syn, known)
    success = {}
    for name, frame in (("train", train), ("control", control)):
        targets = frame.iloc[attack_rows[name]]
        index = nearest(encoder.transform(targets, known), reference)[1][:, 0]
        success[name] = _guessed(syn[secret].to_numpy()[index], targets[secret].to_numpy(), secret in encoder.numeric)
    return {**excess_risk(success["train"], success["control"], z_family), "known_columns": len(known)}


def _guessed(guesses: np.ndarray, truth: np.ndarray, numeric: bool) -> np.ndarray:
    if numeric:
        guess = pd.to_numeric(pd.Series(guesses), errors="coerce").to_numpy(float)
        true = pd.to_numeric(pd.Series(truth), errors="coerce").to_numpy(float)
        both_missing = np.isnan(guess) & np.isnan(true)
        return both_missing | (np.abs(guess - true) <= INFERENCE_TOLERANCE * np.abs(true))
    return (_as_text(pd.Series(guesses)).to_numpy() == _as_text(pd.Series(truth)).to_numpy())


def linkability_risk(encoder: Encoder, syn: pd.DataFrame, train: pd.DataFrame, control: pd.DataFrame,
                     attack_rows: dict[str, np.ndarray], known: list[str], z_family: float = Z95) -> dict:
    """Two datasets each holding half of the known columns: a row is linked when its 10 nearest twin rows by
    either half share one."""
    if len(known) < 2:
        return {"skipped": "fewer than two known columns to split between two datasets"}
    halves = (known[: len(known) // 2], known[len(known) // 2:])
    references = [encoder.transform(syn, half) for half in halves]
    success = {}
    for name, frame in (("train", train), ("control", control)):
        targets = frame.iloc[attack_rows[name]]
        a, b = (nearest(encoder.transform(targets, half), reference, LINK_NEIGHBOURS)[1]
                for half, reference in zip(halves, references))
        success[name] = (a[:, :, None] == b[:, None, :]).any(axis=(1, 2))
    return {**excess_risk(success["train"], success["control"], z_family), "aux_columns": [list(h) for h in halves],
            "n_neighbors": LINK_NEIGHBOURS}


def excess_risk(on_train: np.ndarray, on_control: np.ndarray, z_family: float = Z95) -> dict:
    """anonymeter's risk (r_train - r_control) / (1 - r_control), with Newcombe's interval on the difference of the
    two success rates: 95 % ("ci") and at the audit's family-wise level ("ci_family")."""
    p1, p2 = float(np.mean(on_train)), float(np.mean(on_control))
    scale = 1.0 - p2 if p2 < 1.0 else 1.0
    result = {"risk": (p1 - p2) / scale, "success_train": p1, "success_control": p2, "n_attacks": len(on_train)}
    for name, z in (("ci", Z95), ("ci_family", z_family)):
        l1, u1 = _wilson(p1, len(on_train), z)
        l2, u2 = _wilson(p2, len(on_control), z)
        low = p1 - p2 - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
        high = p1 - p2 + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
        result[name] = [float(max(-1.0, low / scale)), float(min(1.0, high / scale))]
    return result


def _wilson(p: float, n: int, z: float) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def singling_out_risk(syn: pd.DataFrame, train: pd.DataFrame, control: pd.DataFrame, n_attacks: int, seed: int,
                      z_family: float = Z95) -> dict:
    """anonymeter's multivariate singling-out with bounded work: at most 20 query attempts per attack (it loops
    for minutes on narrow tables otherwise) on the same-sized training and control rows."""
    try:
        from anonymeter.evaluators import SinglingOutEvaluator
    except ImportError:
        return {"skipped": "anonymeter is not installed (pip install anonymeter)"}
    same = min(len(train), len(control))
    rng = np.random.default_rng(seed)
    # anonymeter's queries compare dates to text and fail: dates go in as days since 1970 (same order, same ties)
    syn, train, control = (_dates_as_days(frame) for frame in (syn, _subsample(train, same, rng),
                                                             _subsample(control, same, rng)))
    with _seeded_global_numpy(seed), _quiet("anonymeter"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluator = SinglingOutEvaluator(ori=train, syn=syn, control=control, n_attacks=n_attacks,
                                         n_cols=min(3, syn.shape[1]), max_attempts=20 * n_attacks, seed=seed)
        evaluator.evaluate(mode="multivariate")
        risk = evaluator.risk(confidence_level=0.95)
        family = evaluator.risk(confidence_level=1 - 2 * special.ndtr(-z_family))
    return {"risk": float(risk.value), "ci": [float(risk.ci[0]), float(risk.ci[1])], "n_attacks": n_attacks,
            "ci_family": [float(family.ci[0]), float(family.ci[1])],
            "queries_found": len(evaluator.queries()), "notes": sorted({str(w.message) for w in caught})}


def _dates_as_days(frame: pd.DataFrame) -> pd.DataFrame:
    dates = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    return frame.assign(**{c: NumericColumn.of(frame[c]).values(frame[c]) for c in dates}) if dates else frame


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """anonymeter logs "reached maximum number of attempts" as a warning: the cap is ours, the report says so."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _seeded_global_numpy(seed: int) -> Iterator[None]:
    """anonymeter draws from numpy's global generator in places: seed it for repeatable reports, then restore."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def risk_figures(result: dict) -> dict[str, dict]:
    """Every measured risk of an audit by attack name ("inference: <secret>" per secret), skipped or failed
    attacks left out."""
    figures = {name: result.get(name) for name in ("membership", "linkability", "singling_out")}
    inference = result.get("inference")
    if isinstance(inference, dict):
        figures.update({f"inference: {secret}": value for secret, value in inference.items()})
    return {name: figure for name, figure in figures.items() if isinstance(figure, dict) and "ci" in figure}


def flagged_risks(result: dict) -> list[str]:
    """The attacks whose risk is significant for the audit as a whole (family-wise interval above 0) and
    material (>= MIN_FLAGGED_RISK)."""
    return [name for name, figure in risk_figures(result).items()
            if figure["ci_family"][0] > 0 and figure["risk"] >= MIN_FLAGGED_RISK]
