"""What the quality report says about rules and value formats: every rule with the share of real and twin rows
satisfying it, and every column's rounding steps with the share of values on each, real vs twin."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..columns import on_step


def rules_report(ruleset, specs, real: pd.DataFrame, twin: pd.DataFrame) -> dict:
    """The `rules` section of quality_report.json."""
    entries = ruleset.report(real, twin)
    rounding = {}
    steps_of = {spec.name: spec.rounding for spec in specs if getattr(spec, "rounding", None)}
    steps_of.update({name: fmt["rounding"] for name, fmt in ruleset.formats.items() if fmt.get("rounding")})
    for name, steps in steps_of.items():
        if name in real.columns and name in twin.columns:
            rounding[name] = {"steps": steps["steps"][1:], "real": _shares(real[name], steps["steps"][1:]),
                              "twin": _shares(twin[name], steps["steps"][1:])}
    return {"rules": entries, "rounding": rounding, "summary": summarise(entries)}


def _shares(values: pd.Series, steps: list[float]) -> list[float | None]:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    numbers = numbers[np.isfinite(numbers)]
    return [round(float(on_step(numbers, step).mean()), 6) if len(numbers) else None for step in steps]


def broken_share(entry: dict) -> float | None:
    """Share of twin rows breaking a rule, among the rows it applies to."""
    twin = entry.get("twin") or {}
    return None if twin.get("share") is None else round(1 - twin["share"], 6)


def summarise(entries: list[dict]) -> dict:
    """Counts, how often the twin breaks the mined rules that hold on every real row (mean and worst), and how
    much more often than the real table it breaks the near-rules (mined, holding on >= 99.9 % of real rows):
    a twin breaking such a rule as often as the real rows do is not at fault."""
    mined = [entry for entry in entries if entry["source"] == "mined" and entry["real"]["share"] is not None]
    exact = [entry for entry in mined if entry["real"]["share"] >= 1.0]
    breaks = [share for share in map(broken_share, exact) if share is not None]
    excess = [broken_share(entry) - (1 - entry["real"]["share"]) for entry in mined
              if entry["real"]["share"] < 1.0 and broken_share(entry) is not None]
    declared_broken = [entry["name"] or entry["rule"] for entry in entries
                       if entry["source"] == "declared" and (broken_share(entry) or 0) > 0]
    return {"rules": len(entries), "enforced": sum(entry["enforced"] for entry in entries),
            "declared": sum(entry["source"] == "declared" for entry in entries),
            "mined_break_mean": round(float(np.mean(breaks)), 6) if breaks else 0.0,
            "mined_break_worst": round(float(np.max(breaks)), 6) if breaks else 0.0,
            "mined_exact": len(exact), "near_rules": len(excess),
            "near_rule_excess_worst": round(max(0.0, *excess), 6) if excess else 0.0,
            "declared_broken": declared_broken}
