"""GaussianCopulaEngine: fit a table, sample any number of rows in bounded memory, save and load the model.

The model has one variable per modelled column plus one "is null" variable per column that has some nulls
(so nulls that depend on other columns, such as a joint income that is null for individual applications,
keep that dependence). Each variable has a marginal (see marginals.py); the variables are joined by a
correlation matrix of latent normal scores (see dependence.py). Sampling draws correlated normals in chunks
and maps each through its marginal's quantile function.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from ..errors import NotFittedError, TwinInputError
from ..tables import atomic_path, to_csv, write_json
from . import columns as col
from .conditional import conditional_normals, latent_box, value_boxes
from .copulas_backend import fit_reference, sample_reference
from .dependence import FRAILTY_FAMILIES, average_ranks, T_MAX_ROWS, fit_frailty, fit_t_degrees, frailty_scores, match_pearson, stratified, hermite_rows, latent_correlation, nearest_correlation, tied_normal_scores
from .marginals import K_MIN, NumericMarginal, SlicedMarginal, marginal_from_dict
from .dp import DEFAULT_DELTA, fit_private
from .perturb import DIFFERENCING_NOISE, fit_rng, noisy_correlation
from .rules import RuleSet, load_declared
from .steps import OutcomeSteps
from .transformers import ColumnSpec, Continuous, Derived, detect_spec, mark_duplicates

log = logging.getLogger(__name__)

MODEL_FORMAT = "twin-pipeline/gaussian-copula"
MODEL_VERSION = 1
NULL_SUFFIX = " (is null)"
DEFAULT_CHUNK = 100_000
MIN_DEPENDENCE_ROWS = 30  # a variable with fewer rows off its most common value is modelled as independent
BACKENDS = ("native", "copulas")


class GaussianCopulaEngine:
    """A Gaussian copula over automatically typed marginals.

    backend="native" (default) is this package's vectorised NumPy/SciPy engine; backend="copulas" fits the
    `copulas` library's GaussianMultivariate on the same encoded variables, as a reference to compare with.
    `k` is the smallest count of a value that the model may store verbatim (rarer values are pooled).
    preserve_tails=True fits a Student-t copula too and keeps it when it beats the Gaussian by likelihood:
    a Gaussian copula has no tail dependence, so it understates joint extremes (joint defaults in a crisis).
    epsilon (with delta) makes the fit (epsilon, delta)-differentially private (dp.py); without it the stored
    statistics still carry the differencing noise of perturb.py.
    """

    def __init__(self, backend: str = "native", k: int = K_MIN, preserve_tails: bool = True, match_pearson: bool = True,
                 mine_rules: bool = True, rules=None, epsilon: float | None = None, delta: float | None = None):
        if backend not in BACKENDS:
            raise TwinInputError(None, f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if epsilon is not None and not (np.isfinite(epsilon) and epsilon > 0):
            raise TwinInputError(None, f"epsilon must be a positive number, got {epsilon!r}")
        if delta is not None and not 0 < delta < 1:
            raise TwinInputError(None, f"delta must be between 0 and 1, got {delta!r}")
        if epsilon is not None and backend != "native":
            raise TwinInputError(None, "a differentially private fit needs the native backend")
        self.epsilon, self.delta = epsilon, (delta if delta is not None else DEFAULT_DELTA) if epsilon else None
        self.privacy: dict = {}
        self.backend = backend
        self.k = k
        self.specs: list[ColumnSpec] = []
        self.variables: list[tuple[str, str]] = []  # (column, "value" | "null")
        self.marginals: list[SlicedMarginal | NumericMarginal] = []
        self.correlation: np.ndarray | None = None
        self.n_rows = 0
        self.primary_key: str | None = None
        self.preserve_tails = preserve_tails
        self.match_pearson = match_pearson
        self.tails: dict = {"copula": "gaussian"}
        self.mine_rules = mine_rules  # find business rules in the real table and keep them (see rules/)
        self.declared_rules = load_declared(rules)  # a path, dict or list of declared rules
        self.rules = RuleSet()
        self._reference = None  # the copulas backend's fitted GaussianMultivariate
        self.steps: OutcomeSteps | None = None  # the outcome's thresholds per cell of its parents (steps.py)

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame, primary_key: str | None = None,
            column_kinds: dict[str, str] | None = None, keep_columns=(), seed: int | None = 0) -> "GaussianCopulaEngine":
        """Learn marginals and the latent correlation of `df`; the primary key is not modelled.

        Business rules (mined, and declared ones) are kept by construction: `keep_columns` are never derived
        through a rule (a child table's parent columns, which sampling is conditioned on). Every stored statistic
        is perturbed (perturb.py) with noise drawn from (`seed`, the rows' content): the same seed and rows give
        the same model, a table one row apart gets independent noise; seed=None draws it from the system."""
        _check_frame(df, primary_key, column_kinds)
        rng = fit_rng(seed, df)
        self.primary_key, self.n_rows = primary_key, len(df)
        kinds = column_kinds or {}
        self.specs = [detect_spec(df[name], primary_key=name == primary_key, kind=kinds.get(name), k=self.k)
                      for name in df.columns]
        mark_duplicates(df, self.specs, fixed=set(kinds))
        self.rules = RuleSet()
        if self.epsilon is not None:  # rules are mined from raw values: not in a private fit
            self.privacy = fit_private(self, df, self.epsilon, self.delta, rng)
            self.tails = {"copula": "gaussian", "reason": "differentially private fit"}
            log.info("fitted %d columns with (%g, %g)-differential privacy", len(self.specs), self.epsilon, self.delta)
            return self
        self.privacy = DIFFERENCING_NOISE
        if self.backend == "native" and (self.mine_rules or self.declared_rules):
            self.rules = RuleSet.fit(df, self.specs, self.declared_rules, self.k, mine_rules=self.mine_rules,
                                     keep=set(keep_columns))
        governed = self.rules.governed(df)
        numeric = {name: self.rules.numeric(df, name) for name in self.rules.derived_columns}  # text numbers parsed
        self._real_values = {name: values[np.isfinite(values)] for name, values in numeric.items()}  # fit-time only
        df = self._encode(df)
        candidates = [(spec, *variable) for spec in self.specs
                      for variable in spec.variables(df[spec.name], self.k, governed.get(spec.name), rng)]
        self.variables = [(spec.name, role) for spec, role, *_ in candidates]
        self.marginals = [marginal for _, _, marginal, _, _ in candidates]
        for spec, role, marginal, _, _ in candidates:
            if role == "null":  # the stored null rate is the noisy one
                spec.null_rate = float(marginal.probabilities[1])
        scores = np.zeros((len(df), len(candidates)))  # zero where a value is missing: filled in place, one copy only
        present = np.zeros((len(df), len(candidates)), dtype=bool)
        blocks, informative = [None] * len(candidates), [False] * len(candidates)
        unordered = [i for i, (spec, role, marginal, _, _) in enumerate(candidates)
                     if role == "value" and spec.unordered and len(marginal.values) >= 3]
        # Categories have no order of their own; the copula needs one. Score every other variable first, then
        # order each categorical's values along the direction in which they differ most on those scores
        # (grade A..G follows the interest rate), so the latent correlation can carry the association.
        for pass_indices in ([i for i in range(len(candidates)) if i not in unordered], unordered):
            reference = np.flatnonzero([i not in unordered for i in range(len(candidates))])
            for i in pass_indices:
                _, _, marginal, keys, mask = candidates[i]
                if i in unordered:
                    keys = marginal.reorder(keys, scores[np.ix_(mask, reference)])
                column_scores, upper, block_scores = tied_normal_scores(keys)
                scores[mask, i] = column_scores
                present[:, i] = mask
                blocks[i] = upper, block_scores
                informative[i] = len(keys) * (1 - np.diff(np.concatenate([[0.0], upper])).max()) >= MIN_DEPENDENCE_ROWS
        self._calibrate_rounding(df, governed)
        if self.variables:
            latent = latent_correlation(scores, present, hermite_rows(blocks))
            del scores, present
            # Too few rows off the mode (a column null on 3 rows) give wild estimates that would distort the
            # whole matrix when it is repaired: such variables keep their frequencies but join independently.
            weak = ~np.asarray(informative)
            if self.match_pearson:
                latent = self._match_pearson(df, latent, weak)
            latent[weak, :] = latent[:, weak] = 0.0
            np.fill_diagonal(latent, 1.0)
            self.correlation = nearest_correlation(noisy_correlation(latent, len(df), rng))
        else:
            self.correlation = np.zeros((0, 0))
        self.tails, self._frailty_cholesky = {"copula": "gaussian"}, None
        if self.preserve_tails and self.backend == "native":
            self.tails = self._fit_tails(df)
        if self.backend == "copulas":
            self._reference = fit_reference(self, df)
        elif self.variables:
            self.steps = OutcomeSteps.fit(self, df, rng)
        self._calibrate_governed_shares()
        self._calibrate_derived_rounding()
        log.info("fitted %d columns (%d copula variables) on %d rows", len(self.specs), len(self.variables), len(df))
        return self

    def _calibrate_rounding(self, df: pd.DataFrame, governed: dict) -> None:
        """Rounding weights checked on a simulated sample of each column's marginal (see calibrate_rounding);
        rows whose value a rule writes are not the marginal's."""
        for index, (name, role) in enumerate(self.variables):
            spec, marginal = self._spec(name), self.marginals[index]
            if role == "value" and spec.rounding and isinstance(marginal, NumericMarginal):
                values = df[name][~governed[name]] if name in governed else df[name]
                spec.rounding = col.calibrate_rounding(
                    spec.rounding, spec.to_numbers(values.dropna()),
                    lambda n, rng, marginal=marginal: _in_order(marginal.decode, rng.standard_normal(n)),
                    marginal.atoms, spec.decimals)

    def _calibrate_governed_shares(self, rows: int = 10_000, iterations: int = 3) -> None:
        """A category that a fixed-value rule writes on some rows (written_off is 0 when days_past_due is 0) is
        fitted on the other rows, which its correlated columns select: drawn as fitted, its shares on them came
        out skewed (write-offs 1.5 % -> 3.7 % of the twin). They are corrected on a simulated twin until those rows
        hold each value as often as the real ones do."""
        fixed = {rule.params["column"] for rule in self.rules.rules if rule.kind == "fixed_when" and rule.enforced}
        targets = {i: self.marginals[i].probabilities for i, (name, role) in enumerate(self.variables)
                   if role == "value" and name in fixed and isinstance(self.marginals[i], SlicedMarginal)}
        if not targets or self._reference is not None:
            return
        # Each round is sample(rows, seed=0) with the shares corrected so far: the same latent draws every time,
        # so they are drawn once and the generator is set back to where they left it.
        rng = np.random.default_rng(0)
        latent, orders = self._latent_values(rows, rng, np.linalg.cholesky(self.correlation), {})
        drawn = rng.bit_generator.state
        alone = self._shares_alone(set(targets))
        own_rows = None  # with `alone`: per target, the twin's rows no rule writes and not null (the first round's)
        for _ in range(iterations):
            if own_rows is None:
                rng.bit_generator.state = drawn
                twin = self._assemble(self._decoded(latent, self._latent_marginals(), rng, orders=orders), rows, 0, rng)
                governed = self.rules.governed(twin)
                codes = {i: self.marginals[i].codes(twin[self.variables[i][0]][~governed[self.variables[i][0]]].dropna())
                         for i in targets}
                if alone:
                    own_rows = {i: ~governed[self.variables[i][0]] & twin[self.variables[i][0]].notna().to_numpy()
                                for i in targets}
            else:  # only the targets' own slices moved: their codes are their latent values' slices
                marginals = self._latent_marginals()
                codes = {i: marginals[i].decode(latent[own_rows[i], i]) for i in targets}
            settled = True
            for i, target in targets.items():
                marginal = self.marginals[i]
                if not len(codes[i]):
                    continue
                measured = np.bincount(codes[i], minlength=len(target)) / len(codes[i])
                if np.all(np.abs(measured - target) <= 2 * np.sqrt(target * (1 - target) / len(codes[i]))):
                    continue  # within the simulation's own noise
                settled = False
                corrected = np.where(measured > 0, marginal.probabilities * target / np.maximum(measured, 1e-12),
                                     marginal.probabilities)
                self.marginals[i] = SlicedMarginal(marginal.values, corrected / corrected.sum(), marginal.pooled)
            if settled:
                return

    def _shares_alone(self, targets: set[int]) -> bool:
        """Whether correcting the `targets`' shares (value variables) changes nothing of a simulated twin but
        their own values: no other column copies them, no outcome step reads them, and no enforced rule reads
        them but the fixed-value rules that write them. Then every other column, and the rows those rules
        write, come out the same in each round (the same latent draws, and the targets' slices take no random
        numbers), so a round after the first needs only the targets' slices, not a whole twin."""
        names = {self.variables[i][0] for i in targets}
        if any(spec.copy_of in names for spec in self.specs):
            return False
        if self.steps is not None and ({self.steps.outcome, *self.steps.parents} & targets):
            return False
        return all(not set(rule.columns) & names or (rule.kind == "fixed_when" and set(rule.columns) & names
                                                      == {rule.params["column"]})
                   for rule in self.rules.rules if rule.enforced)

    def _calibrate_derived_rounding(self, rows: int = 5_000, iterations: int = 1) -> None:
        """Stepped columns (rules.stepped_columns) are rounded after their rule bounds them: their step weights are
        corrected on a simulated twin until it sits on each step as often as the real values."""
        names = [name for name in self.rules.stepped_columns if self.rules.formats[name].get("rounding")]
        if not names or self._reference is not None:
            return
        real = {name: self._real_values[name] for name in names}
        shares = {name: np.array(self.rules.formats[name]["rounding"]["shares"], dtype=float) for name in names}
        for _ in range(iterations):
            twin = self.sample(rows, seed=0)
            for name in names:
                rounding = self.rules.formats[name]["rounding"]
                values = self.rules.numeric(twin, name)
                values = values[np.isfinite(values)]
                measured = np.array([col.on_step(values, step).mean() for step in rounding["steps"]])
                target = np.array([col.on_step(real[name], step).mean() for step in rounding["steps"]])
                shares[name] = np.clip(shares[name] + target - measured, 0.0, 1.0)
                shares[name][0] = 1.0
                rounding["weights"] = col.rounding_weights(rounding["steps"], list(shares[name]))

    def _encode(self, df: pd.DataFrame) -> pd.DataFrame:
        """The real table as the copula models it (see RuleSet.encode); derived columns' specs follow."""
        if not self.rules.rules:
            return df
        encoded = self.rules.encode(df)
        computed, derived = self.rules.computed_columns, self.rules.derived_columns
        for index, spec in enumerate(self.specs):
            if spec.name in computed:
                self.specs[index] = Derived(spec.name, spec.dtype, spec.null_rate)
            elif spec.name in derived:  # an ordered column modelled in its rule's form (rules/forms.py)
                self.specs[index] = Continuous.in_form(encoded[spec.name])
        return encoded

    def _match_pearson(self, df: pd.DataFrame, latent: np.ndarray, weak: np.ndarray) -> np.ndarray:
        """Adjust numeric pairs so the twin reproduces the real Pearson correlations, not only the ranks."""
        numeric = [i for i, (name, role) in enumerate(self.variables)
                   if role == "value" and not weak[i] and self._spec(name).pearson]
        if len(numeric) < 2:
            return latent
        values = pd.DataFrame({i: self._spec(self.variables[i][0]).to_numbers(df[self.variables[i][0]]) for i in numeric})
        pearson = values.corr().to_numpy()
        targets = {(numeric[a], numeric[b]): pearson[a, b] for a in range(len(numeric)) for b in range(a + 1, len(numeric))
                   if np.isfinite(pearson[a, b])}
        return match_pearson(latent, {i: self.marginals[i].decode for i in numeric}, targets)

    def _fit_tails(self, df: pd.DataFrame) -> dict:
        """Choose between the Gaussian and a Student-t copula on the continuous variables' rank pseudo-observations."""
        chosen = [i for i, marginal in enumerate(self.marginals)
                  if isinstance(marginal, NumericMarginal) and marginal.atom_probabilities.max(initial=0.0) < 0.1]
        if len(chosen) < 2:
            return {"copula": "gaussian", "reason": "fewer than two continuous columns"}
        frame = pd.DataFrame({i: self._spec(self.variables[i][0]).to_numbers(df[self.variables[i][0]]) for i in chosen}).dropna()
        if len(frame) < 200:
            return {"copula": "gaussian", "reason": "fewer than 200 complete rows"}
        frame = frame.sample(min(len(frame), T_MAX_ROWS), random_state=0)
        # pandas' frame.rank(): the same ranks, in the same (column-major) layout, which the correlations' sums follow
        uniforms = np.vstack([average_ranks(frame[i].to_numpy()) for i in chosen]).T / (len(frame) + 1)
        block = self.correlation[np.ix_(chosen, chosen)]
        fit = fit_t_degrees(uniforms, block, np.random.default_rng(0))
        tails = {"copula": "t" if fit["use_t"] else "gaussian", "degrees_of_freedom": fit["degrees_of_freedom"],
                 "loglik_t": round(fit["loglik_t"], 3), "loglik_gaussian": round(fit["loglik_gaussian"], 3),
                 "columns": [self.variables[i][0] for i in chosen]}
        # Asymmetric tails (joint defaults in a crisis without a boom co-movement): a gamma frailty on the
        # continuous variables, lower or upper tail, kept only when it beats both symmetric copulas by more than
        # a BIC penalty, so symmetric tables keep their Gaussian or t copula.
        # The frailty is fitted and calibrated on rank (normal-score) correlations: the Pearson-matched ones are
        # tuned to the Gaussian's joint shape, not to the frailty's.
        scores = np.corrcoef(special.ndtri(uniforms).T)
        full = self.correlation.copy()
        full[np.ix_(chosen, chosen)] = scores
        frailty = fit_frailty(uniforms, scores, full, chosen, np.random.default_rng(0))
        symmetric = max(fit["loglik_gaussian"], fit["loglik_t"] - 1.0)
        tails["tail_asymmetry"] = round(frailty["asymmetry"], 3)
        if np.isfinite(frailty["loglik"]):
            tails["loglik_" + frailty["family"]] = round(frailty["loglik"], 3)
        if frailty["loglik"] - 0.5 * np.log(len(uniforms)) > symmetric:
            tails.update(copula=frailty["family"], theta=frailty["theta"], degrees_of_freedom=None,
                         variables=chosen, inner_correlation=frailty["inner"].tolist())
        return tails

    def _spec(self, name: str) -> ColumnSpec:
        return next(spec for spec in self.specs if spec.name == name)

    # ----------------------------------------------------------------- sampling
    def sample(self, n: int, seed: int | None = None, chunk_size: int = DEFAULT_CHUNK,
               conditions: dict | None = None, first_row: int = 0) -> pd.DataFrame:
        """`n` synthetic rows; the same seed gives the same rows. See `iter_samples` for the other arguments."""
        chunks = list(self.iter_samples(n, seed=seed, chunk_size=chunk_size, conditions=conditions, first_row=first_row))
        if chunks:
            return pd.concat(chunks, ignore_index=True)
        nothing = {i: marginal.decode(np.empty(0)) for i, marginal in enumerate(self.marginals)}
        return self._assemble(nothing, 0, 0, np.random.default_rng(0))

    def iter_samples(self, n: int, seed: int | None = None, chunk_size: int = DEFAULT_CHUNK,
                     conditions: dict | None = None, first_row: int = 0) -> Iterator[pd.DataFrame]:
        """Yield `n` rows in chunks of `chunk_size`: memory does not grow with `n`.

        `conditions` restricts every row: {"Status": "bad"} for a category, {"Income": (None, 120)} for a numeric
        range (None is an open end). Conditioned rows come from the conditional copula, not from rejection.
        `first_row` numbers the fresh keys, so shards sampled apart get keys that do not collide.
        """
        self._require_fit()
        n = int(n)
        if n < 0:
            raise TwinInputError(None, f"number of rows must be >= 0, got {n}")
        if conditions and self._reference is not None:
            raise TwinInputError(None, "conditional sampling needs the native backend")
        box = self._latent_box(conditions or {})
        rng = np.random.default_rng(seed)
        cholesky = np.linalg.cholesky(self.correlation) if len(self.variables) else None
        marginals = self._latent_marginals()
        done = 0
        while done < n:
            size = min(chunk_size, n - done)
            if self._reference is not None:
                decoded = sample_reference(self, size, rng)
            else:
                latent, orders = self._latent_values(size, rng, cholesky, box)
                decoded = self._decoded(latent, marginals, rng, conditions, orders)
                del latent, orders  # freed before the frame is built: fresh memory is most of a sample's cost
                for index, condition in (conditions or {}).items():
                    variable = self.variables.index((index, "value"))
                    if isinstance(self.marginals[variable], NumericMarginal):
                        low, high = condition
                        decoded[variable] = np.clip(decoded[variable], -np.inf if low is None else low,
                                                    np.inf if high is None else high)
            yield self._assemble(decoded, size, first_row + done, rng)
            done += size

    def sample_scenario(self, n: int, column: str, shares: dict, seed: int | None = None) -> pd.DataFrame:
        """A stress portfolio: `shares` of the rows take the given values of `column` ({"bad": 0.2} = 20 % defaults);
        the remaining rows keep the column's other values in their modelled proportions."""
        if not 0 < sum(shares.values()) <= 1:
            raise TwinInputError(column, f"scenario shares must add up to at most 1, got {sum(shares.values())}")
        marginal = self.marginals[self.variables.index((column, "value"))]
        counts = {value: int(round(share * n)) for value, share in shares.items()}
        others = [(value, p) for value, p in zip(marginal.values, marginal.probabilities) if value not in shares]
        remaining = n - sum(counts.values())
        total = sum(p for _, p in others)
        for value, p in others:
            counts[value] = counts.get(value, 0) + int(round(remaining * p / total)) if total > 0 else 0
        seeds = np.random.SeedSequence(seed).spawn(len(counts) + 1)
        parts = [self.sample(count, seed=np.random.default_rng(child).integers(2**63 - 1), conditions={column: value})
                 for (value, count), child in zip(counts.items(), seeds) if count > 0]
        frame = pd.concat(parts, ignore_index=True)
        order = np.random.default_rng(seeds[-1]).permutation(len(frame))
        return frame.iloc[order].reset_index(drop=True)

    def sample_given(self, given: pd.DataFrame, seed: int | None = None, chunk_size: int = DEFAULT_CHUNK) -> pd.DataFrame:
        """One synthetic row per row of `given`, conditioned on that row's values of `given`'s columns.

        This is how a child table is generated under its synthetic parents: each child row is drawn from the
        conditional copula given its parent's values, so parent-child relations carry over.
        """
        self._require_fit()
        unknown = [name for name in given.columns if (name, "value") not in self.variables]
        if unknown:
            raise TwinInputError(", ".join(map(str, unknown)), "cannot condition on columns that are not modelled")
        rng = np.random.default_rng(seed)
        cholesky = np.linalg.cholesky(self.correlation)
        marginals = self._latent_marginals()
        parts = []
        for start in range(0, len(given), chunk_size):
            block = given.iloc[start:start + chunk_size]
            box = {}
            for name in block.columns:
                variable = self.variables.index((name, "value"))
                marginal, spec = self.marginals[variable], self._spec(name)
                present = block[name].notna().to_numpy()
                if isinstance(marginal, SlicedMarginal):
                    keys = np.full(len(block), -1)
                    keys[present] = marginal.codes(block.loc[present, name])
                else:
                    keys = np.full(len(block), np.nan)
                    keys[present] = spec.to_numbers(block.loc[present, name])
                box[variable] = value_boxes(marginal, keys)
            latent, _ = self._latent_values(len(block), rng, cholesky, box)
            decoded = {i: marginal.decode(latent[:, i]) for i, marginal in enumerate(marginals)}
            self._decode_outcome(decoded, latent, block.columns)
            parts.append(self._assemble(decoded, len(block), start, rng, given=block))
        return pd.concat(parts, ignore_index=True) if parts else self.sample(0)

    def rederive(self, before: pd.DataFrame, after: pd.DataFrame, keep=(), seed: int | None = None) -> pd.DataFrame:
        """`after` is `before` (typed views, same index) with values moved by privacy protection (a group
        member's age and income): on the rows whose inputs moved, the derived columns not in `keep` are derived
        again, so the rules kept by construction hold on the protected twin as on the sampled one. A ratio keeps
        the model's residual around its line; an ordered column keeps its value unless a moved bound now excludes
        it, then sits on that bound (re-deriving its modelled gap from a bound that moved far, a member's income,
        pushed a wide twin's loan amounts onto their floor); sums and formulas are computed."""
        depends = {name: inputs for name, inputs in self.rules.depends.items() if name in after.columns}
        derived = [name for name in depends if name not in keep or self.rules.inverted(name)]  # a kept loan: ltv follows
        if not derived or len(after) == 0:
            return after
        involved = set(depends).union(*depends.values()) & set(after.columns)
        moved = {name: _moved(before[name], after[name]) for name in involved}
        for _ in depends:  # through chains of derivations (a sum of an ordered column)
            for name, inputs in depends.items():
                moved[name] = moved[name] | np.any([moved[i] for i in inputs if i in moved], axis=0)
        touched = np.any([moved[name] for name in derived], axis=0)
        if not touched.any():
            return after
        used = set().union(*(rule.columns for rule in self.rules.rules if rule.enforced))
        columns = [name for name in after.columns if name in used]  # only these rows and columns take part
        before, rows = before.loc[touched, columns], after.loc[touched, columns]
        text = self.text_view(rows)
        encoded = self.rules.encode(text)
        ratios = [name for name in derived if self.rules.derived_columns.get(name) and
                  self.rules.derived_columns[name].kind == "ratio"]
        if ratios:
            encoded[ratios] = self.rules.encode(self.text_view(before))[ratios]
        kept = [name for name in keep if name in rows.columns]
        encoded[kept] = self.text_view(rows[kept])  # a settled column stays itself; what derives from it follows
        rng = np.random.default_rng(seed)

        def round_moved(name, numbers):  # a value that did not move is on its steps already: rounding it again
            rounded = self._round_derived(name, numbers, rng)  # would pile more onto the coarse steps
            current = self.rules.numeric(text, name) if name in derived else np.nan  # read only when rounded
            return np.where(numbers == current, numbers, rounded)
        decoded = self.typed_view(self.rules.decode(encoded, round_values=round_moved, keep=set(kept)))
        out = after.copy(deep=False)  # only the columns set below are copied: they are replaced, `after` stays
        for name in derived:
            index = rows.index[moved[name][touched]]
            # the column itself unless kept, and a ratio's input moved to keep it in range
            for column in ([] if name in kept else [name]) + self.rules.moved_inputs(name, kept):
                values = out[column].copy()
                values.loc[index] = decoded.loc[index, column]
                out[column] = values
        return out

    def renumber_keys(self, frame: pd.DataFrame, first_row: int = 0, seed: int | None = None) -> pd.DataFrame:
        """Fresh identifier values numbered from `first_row`: after rows were replaced or dropped, keys stay
        unique and never real."""
        frame = frame.set_axis(pd.RangeIndex(len(frame)), copy=False)  # a key column is replaced, never written into
        rng = np.random.default_rng(seed)
        for spec in self.specs:
            if spec.is_key:
                frame[spec.name] = spec.cast(pd.Series(spec.mint(first_row, len(frame), rng)))
        return frame

    def typed_view(self, frame: pd.DataFrame, copy: bool = True) -> pd.DataFrame:
        """Numbers written as text become numbers and text dates become datetimes, so privacy protection treats
        them by value (micro-aggregates "13.5%", never regroups a date into "Other"). `copy=False` converts
        `frame` itself (its columns are replaced, never written into)."""
        return _converted(frame, {spec.name: spec.typed for spec in self._view_specs()}, copy)

    def text_view(self, frame: pd.DataFrame, copy: bool = True) -> pd.DataFrame:
        """The inverse of `typed_view`: back to the input's text formats (nulls stay null); `copy` as there."""
        return _converted(frame, {spec.name: spec.text for spec in self._view_specs()}, copy)

    def written_view(self, frame: pd.DataFrame, copy: bool = True) -> pd.DataFrame:
        """The frame as its writers (CSV, Parquet, a caller's own to_csv) should see it: whole-number columns
        with blanks as nullable integers, so they are written "31", not "31.0" (`typed_view` reads them back).
        `copy=False` converts a frame the caller made for it (a sampled chunk, a protected twin) in place."""
        def writer(spec: ColumnSpec):  # a copy of another column is written as that column
            source = spec.copy_of or spec.name
            value = self.variables.index((source, "value")) if (source, "value") in self.variables else None
            return lambda values: self._spec(source).written(values, None if value is None else self.marginals[value])
        return _converted(frame, {spec.name: writer(spec) for spec in self.specs}, copy)

    def _view_specs(self) -> list[ColumnSpec]:
        """Each column's reading for the views: a column a rule derives has lost its kind to the rule's form
        (rules/forms.py), so a text date or text number reads as the rule reads it, not as raw text that
        protection would regroup into "Other"."""
        parsing, derived = self.rules.parsing, self.rules.derived_columns
        return [ColumnSpec.from_dict({"name": spec.name, "dtype": spec.dtype, **parsing[spec.name]})
                if spec.name in derived and spec.name in parsing else spec for spec in self.specs]

    def _decoded(self, latent: np.ndarray, marginals: list, rng: np.random.Generator, conditions: dict | None = None,
                 orders: np.ndarray | None = None) -> dict[int, np.ndarray]:
        """Each model variable of latent rows through its marginal (`_latent_marginals`), the outcome in its cell.
        With `orders` (the rows by rising value of each variable, from `stratified`) a column is decoded in that
        order and put back: the same values, each one cell by cell, but np.interp and np.searchsorted find the
        next knot beside the last one instead of searching for it (0.1 CPU s less on a 100,000-row wide shard)."""
        if orders is None:
            decoded = {i: marginal.decode(latent[:, i]) for i, marginal in enumerate(marginals)}
        else:
            decoded = {i: _in_order(marginal.decode, latent[:, i], order)
                       for (i, marginal), order in zip(enumerate(marginals), orders)}
        self._decode_outcome(decoded, latent, conditions or {}, None if conditions else rng)
        return decoded

    def _decode_outcome(self, decoded: dict, latent: np.ndarray, given, rng=None) -> None:
        """The outcome in its cell (steps.py), unless it is itself given or conditioned on; `rng` for an
        unconditional batch, whose cells then keep their shares exactly."""
        if self.steps is not None and self.variables[self.steps.outcome][0] not in given:
            self.steps.apply(decoded, latent, rng)

    def _latent_box(self, conditions: dict) -> dict[int, tuple[float, float]]:
        box = {}
        for name, condition in conditions.items():
            if (name, "value") not in self.variables:
                raise TwinInputError(name, "cannot condition on this column: it is not modelled (unknown, key or constant)")
            if name in self.rules.derived_columns:
                raise TwinInputError(name, f"cannot condition on this column: it is modelled through the rule "
                                           f"{self.rules.derived_columns[name].text}")
            variable = self.variables.index((name, "value"))
            box[variable] = latent_box(self.marginals[variable], condition, name)
            if box[variable][0] >= box[variable][1]:
                raise TwinInputError(name, f"condition {condition!r} selects no modelled values")
            if (name, "null") in self.variables:  # a conditioned value is a present value
                null_variable = self.variables.index((name, "null"))
                box[null_variable] = (-np.inf, float(self.marginals[null_variable].thresholds[0]))
        return box

    def _nu(self) -> float | None:
        return self.tails["degrees_of_freedom"] if self.tails["copula"] == "t" else None

    def _latent_marginals(self) -> list:
        """The marginals with their knots moved to the copula's own latent scale (Student-t or normal), so a
        latent value is decoded by one interpolation, with no t-to-normal step per cell."""
        nu = self._nu()
        if nu is None:
            return self.marginals
        return [marginal.rescaled(lambda z: np.where(np.isinf(z), z, special.stdtrit(nu, special.ndtr(z))))
                for marginal in self.marginals]

    def _frailty_values(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Latent normal scores under the gamma-frailty copula (see dependence.frailty_scores)."""
        if getattr(self, "_frailty_cholesky", None) is None:
            self._frailty_cholesky = np.linalg.cholesky(np.asarray(self.tails["inner_correlation"]))
        normals = rng.standard_normal((size, len(self.variables))) @ self._frailty_cholesky.T
        chosen = self.tails["variables"]
        frailty = rng.gamma(1 / self.tails["theta"], 1.0, size)
        normals[:, chosen] = frailty_scores(normals[:, chosen], self.tails["theta"],
                                            self.tails["copula"] == "survival_clayton", frailty)
        return normals

    def _latent_values(self, size: int, rng: np.random.Generator, cholesky, box) -> tuple[np.ndarray, np.ndarray | None]:
        """Correlated latent values for `size` rows on the copula's scale (normal, or Student-t with its
        mixing variable); `box` bounds (on the normal scale) restrict the conditioned variables. With them, each
        variable's rows in rising order when they were stratified (else None), for `_decoded`."""
        if cholesky is None:
            return np.zeros((size, 0)), None
        if self.tails["copula"] in FRAILTY_FAMILIES and not box:  # conditions: drawn from the Gaussian part
            return stratified(self._frailty_values(size, rng), rng)
        nu, mixing = self._nu(), None
        if nu is not None:
            mixing = np.sqrt(rng.chisquare(nu, size) / nu)
            box = {index: tuple(np.where(np.isinf(bound), bound, special.stdtrit(nu, special.ndtr(bound)))
                                for bound in bounds) for index, bounds in box.items()}
        if box:
            normals = conditional_normals(self.correlation, box, size, rng, row_scale=mixing)
        else:
            normals = rng.standard_normal((size, len(self.variables))) @ cholesky.T
        latent = normals if mixing is None else normals / mixing[:, None]
        return (latent, None) if box else stratified(latent, rng, nu)

    def write_sample(self, path: str | Path, n: int, seed: int | None = None, chunk_size: int = DEFAULT_CHUNK,
                     progress=None) -> Path:
        """Stream `n` rows to CSV or Parquet (by suffix) atomically; `progress(done, n)` is called per chunk."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        parquet = path.suffix.lower() == ".parquet"
        done = 0
        with atomic_path(path) as tmp:
            writer = None
            for chunk in self.iter_samples(n, seed=seed, chunk_size=chunk_size):
                if parquet:
                    table = pa.Table.from_pandas(chunk, preserve_index=False)
                    writer = writer or pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                else:
                    to_csv(chunk, tmp, mode="a" if done else "w", header=not done)
                done += len(chunk)
                if progress:
                    progress(done, n)
            if writer is not None:
                writer.close()
            elif done == 0:  # zero rows: still a file with the columns
                empty = self.sample(0)
                if parquet:
                    empty.to_parquet(tmp, index=False)
                else:
                    to_csv(empty, tmp)
        return path

    def _assemble(self, decoded: dict[int, np.ndarray], size: int, start: int, rng: np.random.Generator,
                  given: pd.DataFrame | None = None) -> pd.DataFrame:
        """Turn decoded model variables into a frame with the input's columns, order, dtypes and formats."""
        position = {variable: i for i, variable in enumerate(self.variables)}
        out = {}
        for spec in self.specs:
            value_index, null_index = position.get((spec.name, "value")), position.get((spec.name, "null"))
            marginal, values = (None, None) if value_index is None else (self.marginals[value_index], decoded[value_index])
            is_null = None if null_index is None else np.asarray(decoded[null_index]) == 1
            out[spec.name] = spec.sample(marginal, values, is_null, size, start, rng, out)
        frame = pd.DataFrame(out, index=pd.RangeIndex(size), copy=False)
        for name in given.columns if given is not None else ():
            frame[name] = given[name].to_numpy()
        if self.rules.rules:
            frame = self.rules.decode(frame, round_values=lambda name, numbers: self._round_derived(name, numbers, rng))
        return self.written_view(frame, copy=False)  # a frame of its own

    def _round_derived(self, name: str, numbers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A derived column's numbers on the real column's decimals and rounding steps."""
        fmt = self.rules.formats.get(name, {})
        if fmt.get("rounding") and name in self.rules.stepped_columns:  # sums: their parts' steps
            numbers = col.round_to_steps(numbers, fmt["rounding"], rng, bounds=(fmt["floor"], fmt["ceiling"]))
        return np.round(numbers, fmt["decimals"]) if fmt.get("decimals") is not None else numbers

    # ----------------------------------------------------------- inspection
    @property
    def correlation_matrix(self) -> pd.DataFrame:
        """Latent correlation of the model variables, labelled by column ("<col> (is null)" for null indicators)."""
        self._require_fit()
        labels = [name if role == "value" else name + NULL_SUFFIX for name, role in self.variables]
        return pd.DataFrame(self.correlation, index=labels, columns=labels)

    def describe(self) -> dict[str, dict]:
        """Per column: kind, chosen family and its KS statistic, null rate, values pooled for privacy."""
        self._require_fit()
        marginal_of = {name: self.marginals[i] for i, (name, role) in enumerate(self.variables) if role == "value"}
        summary = {}
        for spec in self.specs:
            marginal = marginal_of.get(spec.name)
            entry = {"kind": spec.kind, "dtype": spec.dtype, "null_rate": round(spec.null_rate, 6),
                     "family": None, "fit_statistic": None, **({"copy_of": spec.copy_of} if spec.copy_of else {})}
            if isinstance(marginal, NumericMarginal):
                entry.update(family=marginal.family, fit_statistic=marginal.fit_statistic, p_value=marginal.p_value,
                             point_masses=len(marginal.atoms))
            elif isinstance(marginal, SlicedMarginal):
                entry.update(family="categorical", categories=len(marginal.values), pooled_values=marginal.pooled)
            if spec.name in self.rules.derived_columns:  # modelled through a rule (an ordered column: see rules/forms.py)
                entry["rule"] = self.rules.derived_columns[spec.name].text
            summary[spec.name] = entry
        return summary

    def rules_report(self, real: pd.DataFrame, synthetic: pd.DataFrame) -> dict:
        """Every rule (mined or declared) with the share of real and twin rows satisfying it, and every column's
        rounding steps with the share of values on each."""
        from .rules.report import rules_report

        self._require_fit()
        return rules_report(self.rules, self.specs, real, synthetic)

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """The model as statistical summaries only: no raw row, no value seen fewer than k times."""
        self._require_fit()
        return {
            "format": MODEL_FORMAT, "version": MODEL_VERSION, "backend": self.backend, "k": self.k,
            "n_rows": self.n_rows, "primary_key": self.primary_key,
            "columns": [spec.to_dict() for spec in self.specs],
            "variables": [{"column": name, "role": role, "marginal": marginal.to_dict()}
                          for (name, role), marginal in zip(self.variables, self.marginals)],
            "correlation": self.correlation.tolist(), "tails": self.tails, "rules": self.rules.to_dict(),
            "privacy": self.privacy, "outcome_steps": self.steps.to_dict() if self.steps is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "GaussianCopulaEngine":
        if data.get("format") != MODEL_FORMAT:
            raise TwinInputError(None, "not a twin-pipeline Gaussian copula model")
        if data["backend"] != "native":
            raise TwinInputError(None, "only native models can be saved and loaded; refit the copulas reference")
        engine = cls(backend=data["backend"], k=data["k"])
        engine.n_rows, engine.primary_key = data["n_rows"], data["primary_key"]
        engine.specs = [ColumnSpec.from_dict(spec) for spec in data["columns"]]
        engine.variables = [(variable["column"], variable["role"]) for variable in data["variables"]]
        engine.marginals = [marginal_from_dict(variable["marginal"]) for variable in data["variables"]]
        engine.correlation = np.asarray(data["correlation"], dtype=float).reshape(len(engine.variables), -1)
        engine.tails = data.get("tails", {"copula": "gaussian"})
        engine.privacy = data.get("privacy", {})
        engine.epsilon, engine.delta = engine.privacy.get("epsilon"), engine.privacy.get("delta")
        engine.rules = RuleSet.from_dict(data.get("rules"))
        engine.steps = OutcomeSteps.from_dict(data.get("outcome_steps"))
        return engine

    def save(self, path: str | Path) -> Path:
        """Write the model as one JSON file, atomically."""
        return write_json(self.to_dict(), path, indent=None)

    @classmethod
    def load(cls, path: str | Path) -> "GaussianCopulaEngine":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise TwinInputError(path, f"is not a readable model file ({error})") from None
        return cls.from_dict(data)

    def _require_fit(self) -> None:
        if self.correlation is None:
            raise NotFittedError(None, "the engine is not fitted: call fit(df) first")


def _check_frame(df: pd.DataFrame, primary_key: str | None, column_kinds: dict | None) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"fit expects a pandas DataFrame, got {type(df).__name__}")
    if len(df) < 2:
        raise TwinInputError(None, f"the table has {len(df)} row(s); at least 2 are needed to learn a distribution")
    if df.columns.duplicated().any():
        duplicated = sorted(set(df.columns[df.columns.duplicated()].astype(str)))
        raise TwinInputError(None, f"duplicate column names: {', '.join(duplicated)}")
    if primary_key is not None:
        if primary_key not in df.columns:
            raise TwinInputError(None, f"primary key {primary_key!r} is not a column (columns: {', '.join(map(str, df.columns))})")
        if df[primary_key].isna().any() or df[primary_key].duplicated().any():
            raise TwinInputError(None, f"primary key {primary_key!r} is not unique and non-null on every row")
    unknown = set(column_kinds or {}) - set(df.columns)
    if unknown:
        raise TwinInputError(None, f"column kinds given for unknown columns: {', '.join(sorted(map(str, unknown)))}")


def _converted(frame: pd.DataFrame, conversions: dict, copy: bool = True) -> pd.DataFrame:
    """A copy of `frame` (or, not `copy`, the frame itself) with each column that its conversion changes
    replaced (a column is replaced, never written into). A conversion hands back a column it leaves alone, which
    is not set again: setting a column copies it once more and splits the frame's blocks, which every later copy
    joins again (0.1 CPU s of a 100,000-row wide shard's views went on that)."""
    out = frame.copy() if copy else frame
    for name, convert in conversions.items():
        if name in out.columns:
            values = out[name]
            converted = convert(values)
            if converted is not values:
                out[name] = converted
    return out


def _in_order(decode, values: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """decode(values), computed on the values sorted by `order` (their argsort when not given) and put back in
    place: the same values (a marginal decodes each value alone), but np.interp finds each next knot beside the
    last (half the time on 20,000 normal draws)."""
    order = np.argsort(values) if order is None else order
    ranked = decode(values[order])
    out = np.empty_like(ranked)
    out[order] = ranked
    return out


def _moved(first: pd.Series, second: pd.Series) -> np.ndarray:
    """Cell by cell, whether a column's value changed (two missing values are no change): compared in numpy when
    both hold the same plain numbers or times (a Python comparison per cell costs 20x more), else as Python
    objects (mixed types compare by value). Missing values are looked for only where the values compare unequal:
    on a text column that scan cost as much as the comparison, for the few cells a protection pass moves. Two
    columns holding the very same memory (a column k-anonymity left alone, shared with its input) moved nowhere:
    not compared at all (five text columns of a wide shard went on comparing each cell with itself)."""
    if len(first) == len(second) and all(map(_one_buffer, _buffers(first), _buffers(second))):
        return np.zeros(len(first), dtype=bool)
    if first.dtype == second.dtype and isinstance(first.dtype, np.dtype) and first.dtype.kind in "biufmM":
        moved = ~(first.to_numpy() == second.to_numpy())
    else:
        moved = ~(first.astype(object, copy=False) == second.astype(object, copy=False)).to_numpy()
    rows = np.flatnonzero(moved)
    if len(rows):
        moved[rows] = ~(first.iloc[rows].isna().to_numpy() & second.iloc[rows].isna().to_numpy())
    return moved


def _buffers(column: pd.Series) -> tuple[np.ndarray, ...]:
    """The arrays holding a column's cells, as views (a nullable column: its values and its mask)."""
    values = column.array
    if isinstance(values, pd.api.extensions.ExtensionArray) and hasattr(values, "_mask"):
        return values._data, values._mask
    return (column.to_numpy(),)


def _one_buffer(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two arrays are views of the same cells: same start, layout and type."""
    return (first.dtype == second.dtype and first.shape == second.shape and first.strides == second.strides
            and first.__array_interface__["data"][0] == second.__array_interface__["data"][0])
