"""report.html: one self-contained page (SVG images inlined as base64, no script, no external file) that a
risk modeller opens to judge a twin: summary cards, quality against the holdout ceiling, TSTR utility, every
column's real-vs-twin distribution (worst first), labelled correlation heatmaps, tail dependence and the
privacy figures with their confidence intervals.

Everything shown comes from the quality and privacy reports except the pictures, which are drawn from the
real table and the twin (aggregates only: histograms and shares, never a row).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..quality.metrics import _Comparison
from ..sharing import SharedTasks
from ..tables import atomic_path
from . import plots

LEGEND = (f"<span style='color:{plots.REAL_COLOUR}'>&#9632; real (filled)</span> &nbsp; "
          f"<span style='color:{plots.TWIN_COLOUR}'>&#9633; twin (outline / orange bars)</span>")
DIFFERENCE_LIMIT = 0.25  # the difference heatmap is full colour at +-0.25: differences are small
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2733;background:#fafbfc}
h1{font-size:24px;margin:0 0 4px} h2{font-size:19px;margin:32px 0 8px;border-bottom:1px solid #d8dee6;padding-bottom:4px}
.muted{color:#5b6775;font-size:13px} .cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{background:#fff;border:1px solid #d8dee6;border-radius:8px;padding:12px 16px;min-width:150px}
.card .value{font-size:26px;font-weight:600} .card .label{font-size:13px;color:#5b6775}
.card .note{font-size:12px;color:#5b6775;margin-top:2px}
table{border-collapse:collapse;font-size:13px;background:#fff} td,th{border:1px solid #d8dee6;padding:4px 8px;text-align:right}
th{background:#eef2f6} td:first-child,th:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:10px} .grid figure{margin:0;background:#fff;border:1px solid #d8dee6;padding:4px}
figcaption{font-size:12px;padding:0 4px 2px} figcaption b{font-weight:600}
figure img{display:block;max-width:100%} .wide img{max-width:none}
.heatmaps{display:flex;flex-wrap:wrap;gap:16px;overflow-x:auto}
"""


def fmt(value, digits: int = 1) -> str:
    """A figure as people read it: rounded, '-' when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return html.escape(str(value))


def _img(data: bytes | None, alt: str, css: str = "", caption: str = "") -> str:
    if not data:
        return ""
    encoded = base64.b64encode(data).decode()
    mime = plots.MIME_TYPES["svg" if data.lstrip().startswith(b"<") else "png"]
    return (f'<figure class="{css}">' + (f"<figcaption>{caption}</figcaption>" if caption else "")
            + f'<img alt="{html.escape(alt)}" title="{html.escape(alt)}" src="data:{mime};base64,{encoded}"></figure>')


def _card(label: str, value: str, note: str = "") -> str:
    return (f'<div class="card"><div class="label">{html.escape(label)}</div><div class="value">{value}</div>'
            + (f'<div class="note">{note}</div>' if note else "") + "</div>")


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def column_scores(quality: Mapping) -> dict[str, float]:
    """Each scored column's shape score, 1 - KS or 1 - TVD (1 = identical), worst first."""
    scores = {**{name: 1.0 - value for name, value in quality.get("ks_statistics", {}).items()},
              **quality.get("categorical_match", {})}
    return dict(sorted(scores.items(), key=lambda item: (not math.isfinite(item[1]), item[1])))


def correlation_panels(comparison: _Comparison) -> dict[str, pd.DataFrame]:
    """Pearson correlations of the numeric and date columns as the quality report measures them (each pair on
    rows where both are present): real, twin, and twin - real. Constant columns are left out."""
    real, twin = comparison.correlations
    names = comparison.numeric
    real, twin = pd.DataFrame(real, names, names), pd.DataFrame(twin, names, names)
    keep = [name for name in names if real[name].notna().sum() > 1]
    real, twin = real.loc[keep, keep], twin.loc[keep, keep]
    return {"real": real, "twin": twin, "twin − real": twin - real}


def heatmap_images(panels: Mapping[str, pd.DataFrame], image_format: str = "svg") -> dict[str, bytes]:
    """{name: labelled correlation heatmap} for `correlation_panels`; the difference panel ('−' in its name) on the
    narrower colour scale."""
    limits = {name: DIFFERENCE_LIMIT if "−" in name else 1.0 for name in panels}
    titles = {name: f"Pearson correlation: {name}" + (f" (colour full at ±{limits[name]:g})" if limits[name] != 1.0
                                                       else "") for name in panels}
    pictures = plots.heatmap_plots({titles[name]: (matrix, limits[name]) for name, matrix in panels.items()},
                                   image_format)
    return {name: pictures[titles[name]] for name in panels}


COLUMNS_PER_TASK = 4  # column plots handed to a helper process at a time


def column_caption(name: str, score: float, ceiling: Mapping) -> str:
    """'<b>name</b> score 0.912 · real sample 0.950': the column's shape score and, when the holdout was
    measured, the score a fresh real sample reaches (`ceiling`: the holdout report's columns)."""
    return (f"<b>{html.escape(str(name))}</b> score {fmt(score, 3)}"
            + (f" · real sample {fmt(ceiling[name]['ceiling'], 3)}" if name in ceiling else ""))


def _draw_columns(shown: list[tuple[str, plots.Distribution]], image_format: str) -> list[tuple[str, bytes]]:
    return [(name, plots.column_plot(distribution, image_format)) for name, distribution in shown]


def _summary(quality: Mapping, privacy: Mapping) -> str:
    holdout, utility = quality.get("holdout") or {}, quality.get("utility") or {}
    cards = [_card("quality vs ceiling", fmt(quality.get("quality_vs_ceiling")) + ("%" if quality.get("quality_vs_ceiling") else ""),
                   f"twin {fmt(holdout.get('twin_vs_holdout'))} / real sample {fmt(holdout.get('ceiling'))}"
                   if "ceiling" in holdout else html.escape(holdout.get("skipped", "not measured"))),
             _card("similarity score", fmt(quality.get("similarity_score")),
                   f"correlation error {fmt(quality.get('correlation_error'), 3)}")]
    if "gap" in utility:
        metric = utility["metric"].upper() if utility["metric"] == "auc" else "R²"
        cards.append(_card(f"TSTR gap ({metric})", fmt(utility["gap"], 3),
                           f"{html.escape(str(utility['target']))}: real {fmt(utility['real'], 3)}, "
                           f"twin {fmt(utility['twin'], 3)}"))
    else:
        cards.append(_card("TSTR", "–", html.escape(utility.get("skipped", "not measured"))))
    cards.append(_card("k-anonymity", fmt(privacy.get("k")), f"target k = {fmt(privacy.get('target_k'))}"
                       if privacy.get("target_k") is not None else ""))
    cards.append(_card("copies of real rows", fmt(privacy.get("exact_matches")),
                       f"rate {fmt(privacy.get('exact_match_rate'), 4)}" if "exact_match_rate" in privacy else ""))
    rules = _rules_kept(quality.get("rules"))
    if rules is not None:
        summary = quality["rules"].get("summary") or {}
        cards.append(_card("rules kept", rules, f"{summary.get('enforced', 0)} by construction; twin rows breaking "
                                                f"mined rules: worst {fmt(summary.get('mined_break_worst'), 4)}"))
    return f'<div class="cards">{"".join(cards)}</div>'


def _rules_kept(rules) -> str | None:
    """'kept / total' from the quality report's `rules` section (engine.rules.report): a rule is kept when the
    share of twin rows satisfying it is at least the real rows' share."""
    entries = (rules or {}).get("rules") if isinstance(rules, Mapping) else None
    if not entries:
        return None
    shares = [((entry.get("real") or {}).get("share"), (entry.get("twin") or {}).get("share")) for entry in entries]
    kept = sum(1 for real, twin in shares if real is not None and twin is not None and twin >= real - 1e-9)
    return f"{kept} / {len(entries)}"


def _quality_section(quality: Mapping) -> str:
    holdout = quality.get("holdout") or {}
    if "ceiling" not in holdout:
        return f"<p class='muted'>Holdout ceiling not measured: {html.escape(holdout.get('skipped', 'no holdout'))}</p>"
    rows = [["overall score (0-100)", fmt(holdout["ceiling"]), fmt(holdout["twin_vs_holdout"])],
            ["column shapes", fmt(holdout["column_shapes"]["ceiling"]), fmt(holdout["column_shapes"]["twin"])],
            ["pair trends", fmt(holdout["pair_trends"]["ceiling"]), fmt(holdout["pair_trends"]["twin"])],
            ["correlation error", fmt(holdout["correlation_error"]["ceiling"], 3),
             fmt(holdout["correlation_error"]["twin"], 3)]]
    return (f"<p>{html.escape(holdout['method'])}. <b>quality vs ceiling = {fmt(holdout['quality_vs_ceiling'])}%</b>: "
            "100 % means the twin is as close to unseen real rows as real rows are.</p>"
            + _table(["against the held-out rows", "real training share (ceiling)", "twin of that share"], rows))


def _utility_section(utility: Mapping) -> str:
    if "gap" not in utility:
        return f"<p class='muted'>{html.escape(utility.get('skipped', 'not measured'))}</p>"
    agreement = utility["importance_agreement"]
    rows = [["trained on the real training share", fmt(utility["real"], 3)],
            ["trained on the twin", fmt(utility["twin"], 3)], ["gap (real − twin)", fmt(utility["gap"], 3)],
            ["gap, 95 % bootstrap interval", "[" + ", ".join(fmt(v, 3) for v in utility.get("gap_ci", [None] * 2)) + "]"],
            ["importance agreement (Spearman)", fmt(agreement["spearman"], 2)],
            ["top-feature overlap", fmt(agreement["top_overlap"], 2)]]
    return (f"<p>Target <b>{html.escape(str(utility['target']))}</b> ({html.escape(utility['target_chosen'])}), "
            f"{html.escape(utility['model'])}, tested on {fmt(utility['n_test'])} held-out real rows; "
            f"metric {html.escape(utility['metric'].upper())}.</p>"
            + _table(["model", utility["metric"].upper()], rows)
            + "<p class='muted'>Most important columns, real: " + html.escape(", ".join(agreement["top_real"]))
            + "<br>twin: " + html.escape(", ".join(agreement["top_twin"])) + "</p>")


def _privacy_section(privacy: Mapping) -> str:
    rows = []
    for key in ("k", "k_satisfied", "exact_matches", "exact_match_rate", "rows"):
        if key in privacy:
            rows.append([key.replace("_", " "), fmt(privacy[key], 4), ""])
    for path, entry in _with_ci(privacy):
        low, high = entry["ci"]
        rows.append([html.escape(path), fmt(entry["risk"], 3), f"[{fmt(low, 3)}, {fmt(high, 3)}]"])
    if not rows:
        return "<p class='muted'>No privacy figures.</p>"
    return _table(["figure", "value", "95 % confidence interval"], rows)


def _with_ci(node, path: str = ""):
    """(path, {"risk", "ci"}) for every attacker figure with a confidence interval, wherever it sits."""
    if isinstance(node, Mapping):
        if "risk" in node and isinstance(node.get("ci"), (list, tuple)) and len(node["ci"]) == 2:
            yield path, node
            return
        for key, value in node.items():
            yield from _with_ci(value, f"{path} › {key}" if path else str(key))


@dataclass
class Figures:
    """The pictures of one twin, drawn once and shared by report.html and the Dagster asset page."""

    columns: dict[str, bytes]  # scored column -> real-vs-twin plot (the page puts them worst first)
    heatmaps: dict[str, bytes]  # "real" / "twin" / "twin − real" -> labelled correlation heatmap
    tails: bytes | None
    scored: int


def draw(real: pd.DataFrame, twin: pd.DataFrame, quality: Mapping, primary_key: str | None = None,
         column_kinds: Mapping[str, str] | None = None, helper: Executor | None = None,
         image_format: str = "svg") -> Figures:
    """Every picture of the page (see `Drawing`), drawn here or shared with a `helper` executor. Columns are read
    as the quality report typed them (its `column_types`; `column_kinds` when it has none), so each plot shows
    what was scored and no column is detected twice."""
    return Drawing(real, twin, primary_key, quality.get("column_types") or column_kinds, helper,
                   image_format).finish(quality)


class Drawing:
    """The pictures of one twin, begun before its quality report exists: a plot per column the quality report
    scores and the correlation heatmaps need only the real table and the twin, so they are handed to a `helper`
    executor (`SharedTasks`, once it has finished `after`; the largest last, which it takes first) while this process
    writes the report; `finish(quality)` adds the tail dependence picture (the report's tail figures, shared
    too; `hand_tails` adds it earlier) and draws what the helper has not begun. `column_kinds` must be the
    quality report's, so each plot shows what was scored; the quality report can then be read off the same
    `comparison` (its numbers and correlations are computed once)."""

    def __init__(self, real: pd.DataFrame, twin: pd.DataFrame, primary_key: str | None = None,
                 column_kinds: Mapping[str, str] | None = None, helper: Executor | None = None,
                 image_format: str = "svg", after: Future | None = None):
        self.comparison = comparison = _Comparison(real, twin, primary_key, column_kinds)
        panels = correlation_panels(comparison) if len(comparison.numeric) > 1 else {}
        shown = [(name, plots.distribution(comparison.real[name], comparison.synthetic[name], column,
                                           numbers=comparison.numbers.get(name)))
                 for name, column in comparison.plan.items()]
        self.groups = [shown[start:start + COLUMNS_PER_TASK] for start in range(0, len(shown), COLUMNS_PER_TASK)]
        self.shared = SharedTasks([(_draw_columns, (group, image_format)) for group in self.groups]
                              + [(heatmap_images, (panels, image_format))] * bool(panels), helper, after)
        self.image_format, self.scored = image_format, len(comparison.plan)
        self.tails_handed = False

    def hand_tails(self, quality: Mapping) -> None:
        """Add the tail dependence picture (it needs the quality report's tail figures) to the shared pictures:
        a caller with other work before `finish` hands it first, so a helper drawing the others draws it too."""
        if not self.tails_handed:
            self.shared.add(plots.tail_plot, quality.get("tail_risk") or {}, self.image_format)
            self.tails_handed = True

    def finish(self, quality: Mapping) -> Figures:
        self.hand_tails(quality)
        *drawn, tails = self.shared.results()
        columns = {name: image for group in drawn[:len(self.groups)] for name, image in group}
        return Figures(columns={name: columns[name] for name in column_scores(quality) if name in columns},
                       heatmaps=drawn[len(self.groups)] if len(drawn) > len(self.groups) else {}, tails=tails,
                       scored=self.scored)


def render(figures: Figures, quality: Mapping, privacy: Mapping | None = None, title: str = "",
           n_real: int | None = None) -> str:
    """The whole page as one HTML string."""
    privacy = privacy or {}
    columns, heatmaps, tails = figures.columns, figures.heatmaps, figures.tails
    ceiling = (quality.get("holdout") or {}).get("columns", {})
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Twin report {html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Digital twin report{': ' + html.escape(title) if title else ''}</h1>",
        f"<p class='muted'>{fmt(quality.get('n_real', n_real))} real rows, {fmt(quality.get('n_synthetic'))} twin "
        f"rows compared, {figures.scored} columns scored. Written {stamp}.</p>",
        _summary(quality, privacy),
        "<h2>Quality against the holdout ceiling</h2>", _quality_section(quality),
        "<h2>Machine-learning utility (train on twin, test on real)</h2>", _utility_section(quality.get("utility") or {}),
        f"<h2>Columns, worst first ({len(columns)})</h2><p class='muted'>Score: 1 − KS for numbers and dates, "
        "1 − total variation distance for categories (1 = identical); real sample: the score the real training "
        "share reaches against the held-out rows. " + LEGEND + "</p>",
        '<div class="grid">' + "".join(_img(columns[name], f"column {name}", caption=column_caption(name, score, ceiling))
                                       for name, score in column_scores(quality).items() if name in columns) + "</div>",
        "<h2>Correlations</h2>",
        '<div class="heatmaps">' + "".join(_img(data, f"heatmap {name}", "wide") for name, data in heatmaps.items())
        + "</div>" if heatmaps else "<p class='muted'>Fewer than two numeric columns.</p>",
        "<h2>Tail dependence</h2>",
        (_img(tails, "tail dependence", "wide") + f"<p class='muted'>Largest gap real vs twin: "
         f"{fmt((quality.get('tail_risk') or {}).get('max_tail_dependence_gap'), 3)}</p>") if tails
        else "<p class='muted'>Fewer than two continuous columns.</p>",
        "<h2>Privacy</h2>", _privacy_section(privacy),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(path: str | Path, real: pd.DataFrame, twin: pd.DataFrame, quality: Mapping,
                 privacy: Mapping | None = None, primary_key: str | None = None,
                 column_kinds: Mapping[str, str] | None = None, title: str = "",
                 figures: Figures | None = None, helper: Executor | None = None,
                 image_format: str = "svg") -> tuple[Path, Figures]:
    """Write report.html atomically; returns its path and the figures (drawn here unless given, see `draw`)."""
    figures = figures or draw(real, twin, quality, primary_key, column_kinds, helper, image_format)
    page = render(figures, quality, privacy, title, n_real=len(real))
    path = Path(path)
    with atomic_path(path) as temporary:
        Path(temporary).write_text(page, encoding="utf-8")
    return path, figures
