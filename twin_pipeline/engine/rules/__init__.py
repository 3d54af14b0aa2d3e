"""Business rules and value formats a credit analyst checks, kept by construction (see core.py for the kinds).

`RuleSet.fit(real, specs, declared)` mines the real table (mining.py), adds the declared rules (declared.py),
and plans which rules the engine keeps by construction: each derived column has one defining rule and the
derivations form no cycle. `encode` turns the real table into what the copula models (an ordered column becomes
its fraction of the allowed interval, its gap to its bound or itself, see forms.py; rows whose value a category
or a threshold fixes are left out of that column's fit); `decode` turns sampled rows back (ordered columns into
their interval, sums, ratios and a later date from its term computed, or a ratio's input from the modelled ratio,
fixed values written, a threshold column's values exchanged between rows where a category fixes another value),
so every enforced rule holds on every twin row while the modelled parts keep their marginals and correlations.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ..columns import detect_rounding
from . import forms
from .core import DAY, ENFORCE_SHARE, SEPARATOR, Rule, combination_keys, date_plus, evaluate, formatted
from .core import numbers as read_numbers
from .declared import load_declared, read_rules_file, validate_declared
from .mining import REPORT_SHARE, mine

MODELLED_KINDS = ("order", "ratio")  # derived columns the copula still models (an ordered form, a residual)

__all__ = ["Rule", "RuleSet", "load_declared", "read_rules_file", "validate_declared", "REPORT_SHARE"]



class RuleSet:
    """The rules of one table and the plan that keeps the enforced ones."""

    def __init__(self, rules: list[Rule] | None = None, formats: dict | None = None):
        self.rules = rules or []
        self.formats = formats or {}  # derived column -> {"dtype", "decimals", "rounding"} of the real column
        self.depends: dict[str, set[str]] = {}  # an empty rule set (no mining, a private fit) saves too

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, real: pd.DataFrame, specs, declared: list[Rule] | None = None, k: int = 5,
            mine_rules: bool = True, keep=frozenset()) -> "RuleSet":
        declared = validate_declared(declared or [], real)  # rules checked against this table
        mined = mine(real, specs, k) if mine_rules else []
        covered = {(rule.kind, frozenset(rule.columns)) for rule in declared}
        rules = declared + [rule for rule in mined if (rule.kind, frozenset(rule.columns)) not in covered]
        ruleset = cls(rules)
        ruleset._plan(real, specs, k, set(keep))
        return ruleset

    def _plan(self, real: pd.DataFrame, specs, k: int, keep: set) -> None:
        """Choose the rules kept by construction, declared first, fixed values, then exact relations, then orders."""
        spec_of = {spec.name: spec for spec in specs}
        modelled = {name for name, spec in spec_of.items() if spec.shape}  # not keys, constants or copies
        self.depends: dict[str, set[str]] = {}
        present = functools.cache(lambda name: real[name].notna().to_numpy())  # each column's, once for all rules
        rank = {"fixed_when": 0, "determined": 1, "fixed_combinations": 1, "sum": 2, "formula": 2, "ratio": 2,
                "date_term": 2, "order": 3, "range": 4}
        # null-when rules before value rules: "x is null when individual" is the cause, not the reverse; values
        # fixed past a threshold last, so they never displace a rule planned without them (_enforce_threshold)
        for rule in sorted(self.rules, key=lambda r: (r.threshold is not None, r.source != "declared", rank[r.kind],
                                                      r.kind == "fixed_when" and r.params["value"] is not None)):
            rule.enforced, rule.derived = False, None
            if not set(rule.columns) <= modelled:
                rule.note = "involves a key, constant or copied column"
            elif rule.real_share < ENFORCE_SHARE and rule.source == "mined":
                rule.note = f"holds on {rule.real_share:.2%} of the real rows: reported, not enforced"
            elif rule.kind == "range":
                rule.enforced = True  # the marginals never leave the real range, which the rule contains
            elif rule.kind == "order" and (through := self._kept_through(rule)):
                rule.enforced, rule.note = True, f"kept by deriving {through.derived} through {through.text}"
            elif rule.kind == "fixed_when":
                if rule.params["column"] in keep:
                    rule.note = "the column is given when sampling (a parent's column)"
                elif rule.threshold is not None:
                    self._enforce_threshold(rule, real, keep)
                else:
                    self._enforce(rule, None, real)
            else:
                for candidate in [name for name in self._candidates(rule, present, spec_of) if name not in keep]:
                    if self._enforce(rule, candidate, real):
                        break
                else:
                    rule.note = rule.note or "its columns are already derived through other rules"
        # a cut found in the data that the engine cannot keep is dropped, not reported: those left are mostly
        # the ends of other relations (the largest payments are all on paid-off loans), not business rules
        self.rules = [rule for rule in self.rules if rule.enforced or rule.threshold is None or rule.source != "mined"]
        governed = self.governed(real)
        parsed = self.parsing
        for name, rule in self.derived_columns.items():
            spec = spec_of[name]
            is_date = parsed.get(name, {}).get("kind") == "datetime"
            self.formats[name] = {"dtype": spec.dtype, "decimals": spec.decimals,
                                  "rounding": None if is_date else spec.rounding}
            if rule.kind in ("order", "ratio", "formula"):
                self.formats[name].update(_smoothed_range(self.numeric(real, name), governed.get(name), k))
            if rule.kind == "formula" and rule.source == "mined":  # the range the upload's contract checks
                self.formats[name]["bounds"] = spec.bounds
            if rule.kind == "ratio":  # decoding moves `a` into the target's range (RuleSet._ratio) or recomputes
                self.formats[name]["a_decimals"] = spec_of[rule.params["a"]].decimals  # an inverted ratio's target
                self.formats[name]["target_decimals"] = spec_of[rule.params["target"]].decimals
            if rule.kind == "order":
                values = self.numeric(real, name)
                mine = ~governed.get(name, np.zeros(len(real), dtype=bool))  # rows a fixed-value rule writes: not
                low, high = self._interval(name, real, own_range=False)
                fmt = self.formats[name]
                fmt["form"] = forms.choose_form(np.where(mine, values, np.nan), low, high, fmt["floor"],
                                                fmt["ceiling"], spec.decimals, np.random.default_rng(0))
                # the steps of the values strictly inside their interval: those on its ends come back exactly
                low, high = self._interval(name, real)
                inside = (values > low) & (values < high) & mine
                if not is_date:
                    self.formats[name]["rounding"] = detect_rounding(values[inside], spec.decimals, with_atoms=True)

    def _candidates(self, rule: Rule, present, spec_of) -> list[str]:
        """Columns the rule could derive, best first: never a finer-grained column from coarser ones' sums
        (its decimals would be lost), never one whose value a category fixes (the fixed value would break it).
        `present(name)`: the real column's non-null rows."""
        p = rule.params
        if rule.kind == "determined":
            return [p["column"]]
        if rule.kind == "date_term":
            return [p["end"]]
        if rule.kind == "fixed_combinations":
            return [p["columns"][1]]
        fixed = {r.params["column"] for r in self.rules if r.kind == "fixed_when" and r.enforced}
        if rule.kind == "ratio" and p["a"] not in fixed and self._bounding_order(rule):
            # ltv = loan / value with loan <= value: the ratio modelled, the input derived from it and kept inside
            # the order (deriving the ratio from two bound inputs clipped it to its range, breaking it)
            return [p["a"], p["target"]]
        if rule.kind in ("ratio", "formula"):
            return [p["target"]]
        if rule.kind == "sum":
            columns = [p["target"], *p["terms"]]
            finest = max(spec_of[name].decimals or 0 for name in columns)
            options = [name for name in columns if (spec_of[name].decimals or 0) == finest and name not in fixed]
            return sorted(options, key=lambda name: name != p["target"])
        # either side can be derived (its rounding is kept, moved inward by one unit where it would cross the
        # bound). First the side the rule bounds wherever it is present (a joint income, present only where the
        # income is, rather than the income of every row), then the lower side: a loan is a share of the
        # income, a balance a share of the loan.
        def uncovered(name: str) -> bool:  # some row has it without the other side
            return bool((present(name) & ~present(p["high"] if name == p["low"] else p["low"])).any())

        return sorted((p["low"], p["high"]), key=lambda name: (uncovered(name), name != p["low"]))

    def _bounding_order(self, ratio: Rule) -> Rule | None:
        """An order rule the engine may keep between a ratio's input `a` and its other input `b`."""
        pair = {ratio.params["a"], ratio.params.get("b")}
        return next((rule for rule in self.rules if rule.kind == "order" and set(rule.columns) == pair
                     and (rule.source == "declared" or rule.real_share >= ENFORCE_SHARE)), None)

    def _kept_through(self, order: Rule) -> Rule | None:
        """The enforced rule deriving one side of `order` from the other in a way that keeps it: an inverted
        ratio (its input is put inside the order), or a date plus a never-negative term (start <= end)."""
        def keeps(rule: Rule) -> bool:
            p = rule.params
            if rule.kind == "ratio":
                return rule.derived == p["a"] and set(order.columns) == {p["a"], p["b"]}
            return (rule.kind == "date_term" and (order.params["low"], order.params["high"]) == (p["start"], p["end"])
                    and order.params.get("offset", 0) <= 0 <= p["offset_days"])
        return next((rule for rule in self.rules if rule.enforced and keeps(rule)), None)

    def _enforce_threshold(self, rule: Rule, real: pd.DataFrame, keep: set) -> bool:
        """A value fixed past a threshold (stage 3 when days past due >= 90), planned after every other rule.
        Another value a category fixes in the same column (stage 1 when grade == 'BB') wins where both apply;
        the rule is then kept by exchanging its number column's values between such rows and free ones
        (`_exchange`), so that column must be used by no other kept rule. A second threshold with another value
        in one column, or a derived column, is not written over."""
        name, cut = rule.params["column"], rule.threshold
        fixed = self._fixing_another_value(rule)
        if name in self.derived_columns:
            rule.note = f"{name} is derived through another rule"
        elif any(other.threshold is not None for other in fixed):
            rule.note = f"another threshold fixes {name} to another value"
        elif fixed and (len(rule.params["when"]) > 1 or cut in keep or cut in self.depends
                        or any(cut in other.columns for other in self.rules if other.enforced)):
            rule.note = f"{cut} would be exchanged between rows to keep it, but other rules use it"
        else:
            return self._enforce(rule, None, real)
        return False

    def _enforce(self, rule: Rule, derived: str | None, real: pd.DataFrame) -> bool:
        inputs = set(rule.columns) - {derived} if derived else set(rule.params["when"])
        target = derived or rule.params["column"]
        if exchanged := set(rule.columns) & set(self.exchanged):
            rule.note = f"{', '.join(sorted(exchanged))} is exchanged between rows to keep another rule"
            return False
        if derived and any(other.enforced and other.derived == derived
                           and (other.kind != "order" or rule.kind != "order") for other in self.rules):
            return False  # one defining rule per column; several order rules on one column combine
        if any(self._reaches(name, target) for name in inputs):
            rule.note = "would make a cycle with another enforced rule"
            return False
        if derived and rule.kind in ("sum", "ratio", "formula", "date_term"):  # an order bounds only rows it applies to
            present = real[derived].notna().to_numpy()
            if (present != real[list(inputs)].notna().all(axis=1).to_numpy()).any():
                rule.note = f"{derived} is present on rows where its other columns are not"
                return False
        self.depends.setdefault(target, set()).update(inputs)
        rule.enforced, rule.derived, rule.note = True, derived, None
        return True

    def _reaches(self, start: str, goal: str) -> bool:
        stack, seen = [start], set()
        while stack:
            name = stack.pop()
            if name == goal:
                return True
            if name not in seen:
                seen.add(name)
                stack.extend(self.depends.get(name, ()))
        return False

    # ------------------------------------------------------------- encoding
    @property
    def exchanged(self) -> dict[str, Rule]:
        """Number columns whose values decoding exchanges between rows to keep a threshold rule (`_exchange`)."""
        return {rule.threshold: rule for rule in self.rules if rule.enforced and rule.threshold is not None
                and self._blocking(rule)}

    def _blocking(self, rule: Rule) -> list[Rule]:
        """The kept category rules fixing another value in a threshold rule's column: they win where both apply."""
        return [other for other in self._fixing_another_value(rule) if other.threshold is None]

    def _fixing_another_value(self, rule: Rule) -> list[Rule]:
        """The kept fixed-value rules that write another value than `rule`'s into its column."""
        return [other for other in self.rules if other.enforced and other.kind == "fixed_when"
                and other.params["column"] == rule.params["column"] and other.params["value"] != rule.params["value"]]

    @property
    def derived_columns(self) -> dict[str, Rule]:
        return {rule.derived: rule for rule in self.rules if rule.enforced and rule.derived}

    def order_rules(self, name: str) -> list[Rule]:
        """The enforced order rules bounding `name`: those deriving it, and those an inverted ratio keeps."""
        return [rule for rule in self.rules if rule.enforced and rule.kind == "order"
                and (rule.derived == name or (rule.derived is None and name in rule.columns))]

    def inverted(self, name: str) -> bool:
        """Whether `name` is a ratio's input derived from the modelled ratio (`loan = ltv x value`)."""
        rule = self.derived_columns.get(name)
        return rule is not None and rule.kind == "ratio" and name == rule.params["a"]

    @property
    def stepped_columns(self) -> set[str]:
        """Derived columns put on the real column's rounding steps (a loan on 100s): an ordered column and a
        ratio's input derived from it; sums, formulas and ratios take the steps of their parts."""
        return {name for name, rule in self.derived_columns.items() if rule.kind == "order" or self.inverted(name)}

    @property
    def computed_columns(self) -> set[str]:
        """Derived columns that are not modelled at all (computed from others); an ordered column is modelled
        in its form (forms.py), a ratio target as its residual (an inverted ratio's input is computed)."""
        computed = {name for name, rule in self.derived_columns.items()
                    if rule.kind not in MODELLED_KINDS or self.inverted(name)}
        for rule in self.derived_columns.values():
            if rule.kind == "fixed_combinations":
                computed.update(rule.params["columns"][1:])
        return computed

    def governed(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per column, the rows whose value an enforced fixed-value rule writes."""
        masks: dict[str, np.ndarray] = {}
        for rule in self.rules:
            if rule.enforced and rule.kind == "fixed_when":
                applicable, _ = rule.check(frame)
                name = rule.params["column"]
                masks[name] = masks.get(name, np.zeros(len(frame), dtype=bool)) | applicable
        return masks

    def encode(self, real: pd.DataFrame) -> pd.DataFrame:
        """The table the copula models: ordered derived columns in their form (forms.py),
        fixed combinations one joined category."""
        encoded = real.copy()
        for name, rule in self.derived_columns.items():
            if rule.kind == "order":  # its fraction of its interval, its gap to its bound, or itself (forms.py)
                fmt = self.formats[name]
                encoded[name] = forms.encode(fmt.get("form", "fraction"), self.numeric(real, name),
                                             *self._interval(name, real, own_range=False), fmt["floor"], fmt["ceiling"])
            elif rule.kind == "ratio" and name == rule.params["target"]:  # the residual around the fitted line
                p = rule.params
                scale = 1.0 if not p.get("b") else real[p["b"]].to_numpy(dtype=float) ** (-p["power"])
                with np.errstate(divide="ignore", invalid="ignore"):
                    line = p["slope"] * real[p["a"]].to_numpy(dtype=float)
                    encoded[name] = real[name].to_numpy(dtype=float) * scale - line
            elif rule.kind == "fixed_combinations":
                first = rule.params["columns"][0]
                encoded[first] = combination_keys(real, rule.params["columns"]).where(real[first].notna())
        return encoded

    def decode(self, frame: pd.DataFrame, round_values=None, keep=frozenset()) -> pd.DataFrame:
        """Sampled rows back to real columns: derived values computed and fixed values written, in dependency
        order. `round_values(name, numbers)` puts a derived column's numbers back on its decimals and steps;
        `keep` columns are left as they are (and the columns derived from them follow them)."""
        derived = self.derived_columns
        fixed: dict[str, list[Rule]] = {}
        for rule in sorted(self.rules, key=lambda rule: rule.threshold is None):  # a category's value wins
            if rule.enforced and rule.kind == "fixed_when":
                fixed.setdefault(rule.params["column"], []).append(rule)
        for rule in derived.values():
            if rule.kind == "fixed_combinations" and rule.params["columns"][0] not in keep:
                _split_combinations(frame, rule)
        pending = set(derived) | set(fixed)
        while pending:
            ready = [name for name in pending if not (self.depends.get(name, set()) & pending)]
            if not ready:
                raise RuntimeError("the rules' derivations form a cycle")  # the plan prevents it
            for name in sorted(ready):
                if name in keep and not self.inverted(name):  # a kept inverted ratio's input: its target follows
                    pending.discard(name)
                    continue
                if name in derived and derived[name].kind != "fixed_combinations":
                    frame[name] = self._derive(derived[name], frame, round_values, keep)
                for rule in fixed.get(name, []):
                    if rule.threshold is not None and rule.threshold not in keep:
                        self._exchange(rule, frame)
                    _write_fixed(frame, rule)
                if name in derived and name in fixed and pd.api.types.is_float_dtype(frame[name]):
                    # fixed values filling the rows a derivation left empty: a count is whole again (not "6.0")
                    frame[name] = _as_dtype(frame[name].to_numpy(), self.formats[name].get("dtype"))
                pending.discard(name)
        return frame

    def _exchange(self, rule: Rule, frame: pd.DataFrame) -> None:
        """Keep a threshold rule where a category fixes another value in its column (a grade 'BB' drawn with
        120 days past due, which the real rows never pair): those rows' numbers past the cut are exchanged with
        the largest numbers short of it on rows no category fixes, largest with largest. The number column keeps
        its values exactly (only which rows hold them changes) and both rules hold; were free rows too few, the
        category's value stays on the rest."""
        blocking = self._blocking(rule)
        if not blocking:
            return
        applies, _ = rule.check(frame)
        blocked = np.zeros(len(frame), dtype=bool)
        for other in blocking:
            blocked |= other.check(frame)[0]
        values = read_numbers(frame[rule.threshold])
        conflict = np.flatnonzero(applies & blocked)
        free = np.flatnonzero(~applies & ~blocked & np.isfinite(values))
        count = min(len(conflict), len(free))
        if not count:
            return
        conflict = conflict[np.argsort(-values[conflict], kind="stable")[:count]]
        free = free[np.argsort(-values[free], kind="stable")[:count]]
        column = frame[rule.threshold].copy()
        column.iloc[conflict], column.iloc[free] = column.iloc[free].to_numpy(), column.iloc[conflict].to_numpy()
        frame[rule.threshold] = column

    def _ratio(self, rule: Rule, frame: pd.DataFrame, keep=frozenset()) -> np.ndarray:
        """A ratio's target from its inputs and modelled residual, kept in its own (smoothed) range by
        construction: where the drawn `a` and `b` would carry it past an end (a large spend on a small income),
        `a` is moved to the value that puts the target on that end, as an ordered column is moved onto its bound
        (forms.py), so the rule still holds there. `a` stays where a category fixes its value, where other rules
        use it, or where it is kept (`keep`); the caller clips the target there."""
        p, name = rule.params, rule.derived
        a, residual = frame[p["a"]].to_numpy(dtype=float), frame[name].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = frame[p["b"]].to_numpy(dtype=float) ** p["power"] if p.get("b") else np.ones(len(frame))
            numbers = (p["slope"] * a + residual) * scale
            fmt = self.formats.get(name, {})
            if "floor" not in fmt or not self._movable(p["a"], rule, keep):
                return numbers
            bound = np.clip(numbers, fmt["floor"], fmt["ceiling"])
            move = (bound != numbers) & np.isfinite(numbers) & (scale != 0)
            move &= ~self.governed(frame).get(p["a"], np.zeros(len(frame), dtype=bool))
            if not move.any():
                return numbers
            moved = (bound / scale - residual) / p["slope"]
            decimals = fmt.get("a_decimals")
            if decimals is not None:  # on the input's decimals, a unit inward where rounding crossed the end
                moved = np.round(moved, decimals)
                target = (p["slope"] * moved + residual) * scale
                inward = np.sign((numbers - bound) * p["slope"] * scale)  # +1: a smaller `a` pulls the target in
                crossed = (target < fmt["floor"]) | (target > fmt["ceiling"])
                moved = np.round(np.where(crossed, moved - inward * 10.0 ** -decimals, moved), decimals)
            a = np.where(move, moved, a)
            frame[p["a"]] = _as_dtype(a, str(frame[p["a"]].dtype))
            return (p["slope"] * a + residual) * scale

    def _inverted_ratio(self, rule: Rule, frame: pd.DataFrame, round_values, keep=frozenset()) -> np.ndarray:
        """A ratio's input `a` derived from the modelled target and `b` (`loan = ltv x value`), on its steps,
        inside its own range and its order rules (inward to a step where it crossed); the target is then
        recomputed from the rounded `a` on its decimals, so both rules hold on every row. A kept `a` (a
        quasi-identifier protection moved) stays and the target follows it; a kept target gives `a` on its
        decimals only (a coarser step would break the ratio)."""
        p, name = rule.params, rule.derived
        movable = self._movable(p["target"], rule, keep)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = frame[p["b"]].to_numpy(dtype=float) ** p["power"]
            if name in keep:
                numbers = frame[name].to_numpy(dtype=float)
            else:
                numbers = (frame[p["target"]].to_numpy(dtype=float) / scale - p["intercept"]) / p["slope"]
                decimals = self.formats[name].get("decimals")
                if movable and round_values is not None:
                    numbers = round_values(name, numbers)
                elif decimals is not None:
                    numbers = np.round(numbers, decimals)
                numbers = self._inside(name, numbers, *self._interval(name, frame))  # the rules win over its range
            if movable:
                target = (p["slope"] * numbers + p["intercept"]) * scale
                decimals = self.formats[name].get("target_decimals")
                frame[p["target"]] = target if decimals is None else np.round(target, decimals)
        return numbers

    def moved_inputs(self, name: str, keep=frozenset()) -> list[str]:
        """The inputs decoding `name` may move besides it (a ratio's `a`, see `_ratio`, or an inverted ratio's
        target, see `_inverted_ratio`)."""
        rule = self.derived_columns.get(name)
        if rule is None or rule.kind != "ratio":
            return []
        moved = rule.params["a"] if name == rule.params["target"] else rule.params["target"]
        return [moved] if self._movable(moved, rule, keep) else []

    def _movable(self, column: str, rule: Rule, keep) -> bool:
        """Whether `column` may be moved to keep `rule`: not kept, not derived, and used by no other enforced
        rule but the fixed values written into it (whose rows stay)."""
        return column not in keep and all(
            other is rule or not other.enforced or column not in other.columns
            or (other.kind == "fixed_when" and other.params["column"] == column) for other in self.rules)

    def _derive(self, rule: Rule, frame: pd.DataFrame, round_values, keep=frozenset()) -> pd.Series:
        p, name = rule.params, rule.derived
        if rule.kind == "determined":
            mapping = pd.Series(p["mapping"])
            return pd.Series(mapping.reindex(frame[p["by"]].astype(str).to_numpy()).to_numpy(), index=frame.index)
        if rule.kind == "order":
            fmt = self.formats[name]
            numbers = forms.decode(fmt.get("form", "fraction"), frame[name].to_numpy(dtype=float),
                                   *self._interval(name, frame, own_range=False), fmt["floor"], fmt["ceiling"])
        elif rule.kind == "sum":  # target = sum(sign * term): solve for whichever column is derived
            terms = {p["target"]: -1, **p["terms"]}
            numbers = -sum(sign * frame[term].to_numpy(dtype=float) for term, sign in terms.items() if term != name)
            numbers = numbers / terms[name]
        elif self.inverted(name):  # the modelled target gives its input
            return _as_dtype(self._inverted_ratio(rule, frame, round_values, keep), self.formats[name].get("dtype"))
        elif rule.kind == "ratio":  # the modelled residual keeps how far real rows sit from the line
            numbers = self._ratio(rule, frame, keep)
        elif rule.kind == "date_term":  # the later date from the earlier one and the term
            numbers = date_plus(self.numeric(frame, p["start"]), read_numbers(frame[p["term"]]),
                                p["unit"]) + p["offset_days"] * DAY
        else:
            numbers = evaluate(p["expression"], frame)
        if rule.kind == "ratio" and rule.source == "mined" and "floor" in self.formats.get(name, {}):
            # a mined, approximate relation must not carry a column past its own (smoothed) range, which the
            # upload's contract checks (where `_ratio` could not move its input); a declared formula is the
            # user's word and wins
            numbers = np.clip(numbers, self.formats[name]["floor"], self.formats[name]["ceiling"])
        elif rule.kind == "formula" and self.formats.get(name, {}).get("bounds"):  # a mined product (EL = PD x
            numbers = np.clip(numbers, *self.formats[name]["bounds"])  # LGD x EAD) of three extremes may pass it
        if round_values is not None:
            numbers = round_values(name, numbers)
        if rule.kind == "order":  # rounding must not cross a rule's bound (the rules win over the own range)
            numbers = self._inside(name, numbers, *self._interval(name, frame, own_range=False))
        dtype = self.formats.get(name, {}).get("dtype")
        return formatted(numbers, self.parsing[name], dtype) if name in self.parsing else _as_dtype(numbers, dtype)

    # ----------------------------------------------------------- reporting
    def report(self, real: pd.DataFrame, twin: pd.DataFrame) -> list[dict]:
        """Every rule with the share of real and twin rows satisfying it."""
        entries = []
        for rule in self.rules:
            columns_present = set(rule.columns) <= set(twin.columns)
            entries.append({"rule": rule.text, "kind": rule.kind, "source": rule.source, "name": rule.name,
                            "enforced": rule.enforced, "derived": rule.derived, "note": rule.note,
                            "real": rule.shares(real), "twin": rule.shares(twin) if columns_present else None})
        return entries

    def to_dict(self) -> dict:
        return {"rules": [rule.to_dict() for rule in self.rules], "formats": self.formats,
                "depends": {name: sorted(inputs) for name, inputs in self.depends.items()}}

    @classmethod
    def from_dict(cls, data: dict | None) -> "RuleSet":
        data = data or {}
        ruleset = cls([Rule.from_dict(rule) for rule in data.get("rules", [])], data.get("formats", {}))
        ruleset.depends = {name: set(inputs) for name, inputs in data.get("depends", {}).items()}
        return ruleset


    @property
    def parsing(self) -> dict[str, dict]:
        """How rules read their text-number and date columns (core.parse_of), per column."""
        return {name: parse for rule in self.rules for name, parse in rule.params.get("parse", {}).items()}

    def numeric(self, frame: pd.DataFrame, name: str) -> np.ndarray:
        """A column's numbers as its rules read them (text numbers and dates parsed; anything else: NaN)."""
        return read_numbers(frame[name], self.parsing.get(name))

    def _inside(self, name: str, numbers: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """`numbers` moved into [low, high] per row: inward to the column's first rounding step if one fits,
        else to its decimals, else onto the bound."""
        rounding = self.formats[name].get("rounding")
        units = [10.0 ** -(self.formats[name].get("decimals") or 0)] + (rounding["steps"][1:2] if rounding else [])
        for unit in units[::-1]:
            with np.errstate(invalid="ignore"):
                up, down = np.ceil(low / unit - 1e-9) * unit, np.floor(high / unit + 1e-9) * unit
                numbers = np.where((numbers < low) & (up <= high), up, numbers)
                numbers = np.where((numbers > high) & (down >= low), down, numbers)
        return np.clip(numbers, low, high)

    def _interval(self, name: str, frame: pd.DataFrame, own_range: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the interval an ordered column may take: the other columns of its order rules bound it
        (satisfactory <= open lines <= total lines), and so does its own range."""
        fmt = self.formats[name]
        low = np.full(len(frame), fmt["floor"] if own_range else -np.inf)
        high = np.full(len(frame), fmt["ceiling"] if own_range else np.inf)
        for rule in self.order_rules(name):
            p = rule.params
            if name == p["low"]:  # name <= high - offset
                high = np.fmin(high, self.numeric(frame, p["high"]) - p.get("offset", 0))
            else:  # name >= low + offset
                low = np.fmax(low, self.numeric(frame, p["low"]) + p.get("offset", 0))
        return low, high


def _smoothed_range(values: np.ndarray, governed, k: int) -> dict:
    """An ordered column's own floor and ceiling: the end knots of its summary grid (the noisy means of its
    extreme half-blocks), as in the marginals, so no borrower's value, nor a mean two models could difference, is
    stored. The noise is drawn from the column's content (perturb.fit_rng)."""
    from ..marginals import point_mass_rows, summary_grid
    from ..perturb import fit_rng

    keep = np.isfinite(values) & (~governed if governed is not None else True)
    ordered = np.sort(values[keep])
    if not len(ordered):
        return {"floor": 0.0, "ceiling": 0.0}
    _, knots = summary_grid(ordered, fit_rng(k, pd.DataFrame({"values": ordered})))
    # An end value held by a point mass's rows (the 0 balance of paid-off loans) is stored exactly, as the
    # marginals store it: the noisy end knot would move every such row off it (0 -> 0.01).
    needed = point_mass_rows(len(ordered), k)
    floor = ordered[0] if np.searchsorted(ordered, ordered[0], "right") >= needed else knots[0]
    ceiling = ordered[-1] if len(ordered) - np.searchsorted(ordered, ordered[-1]) >= needed else knots[-1]
    return {"floor": float(floor), "ceiling": float(ceiling)}


def _as_dtype(numbers: np.ndarray, dtype: str | None):
    if dtype and dtype.startswith(("int", "uint")) and np.isfinite(numbers).all():
        return np.round(numbers).astype(dtype)
    return numbers


def _write_fixed(frame: pd.DataFrame, rule: Rule) -> None:
    applicable, _ = rule.check(frame)
    if not applicable.any():
        return
    name, value = rule.params["column"], rule.params["value"]
    column = frame[name]
    if value is None:
        if pd.api.types.is_integer_dtype(column) or pd.api.types.is_bool_dtype(column):
            column = column.astype(float if pd.api.types.is_integer_dtype(column) else object)
        frame[name] = column.mask(applicable)
    else:
        if not pd.api.types.is_numeric_dtype(column) or isinstance(value, str):
            column = column.astype(object)
        column = column.copy()
        column[applicable] = value
        frame[name] = column


def _split_combinations(frame: pd.DataFrame, rule: Rule) -> None:
    columns = rule.params["columns"]
    joined = frame[columns[0]]
    known = joined.isin(rule.params["combinations"])
    fallback = rule.params["combinations"][0]  # pooled ("Other") combinations become the most common one
    parts = joined.where(known | joined.isna(), fallback).astype(object)
    split = parts.str.split(SEPARATOR, expand=True)
    for position, name in enumerate(columns):
        values = split[position] if position in split.columns else pd.Series(None, index=frame.index)
        frame[name] = _restore_type(values.where(parts.notna()), rule.params["dtypes"][name])


def _restore_type(values: pd.Series, dtype: str) -> pd.Series:
    if dtype.startswith(("int", "uint", "float")):
        numbers = pd.to_numeric(values, errors="coerce")
        return numbers.astype(dtype) if numbers.notna().all() else numbers
    if dtype == "bool":
        return values.map({"True": True, "False": False})
    return values
