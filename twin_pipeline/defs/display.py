"""What the Dagster UI shows for an asset: markdown tables, scores rounded as people read them, and pictures.

Dagster's UI shows a markdown entry on the asset page only when it is shorter than 1,000 characters
(dagster-webserver 1.13, MetadataEntry: `mdStr.length < 1e3`); a longer one opens from a [Show Markdown] link.
So the worst columns and the correlation differences are drawn compact (flat shapes in a small palette, a few
hundred bytes of PNG) with their names and scores as text beside them, one entry each, and show inline; the
labelled full-size heatmaps stay one click away, and report.html (linked by path) has every picture."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..quality.metrics import _Comparison
from ..report import plots
from ..report.html import DIFFERENCE_LIMIT, column_scores, correlation_panels

WORST_COLUMNS = 4  # the asset page shows the columns the twin reproduces least well; report.html shows all
HEATMAP_COLUMNS = 8  # the inline correlation picture: the columns whose correlations the twin misses most


def rounded(value, digits: int = 1):
    """A score as the UI should show it (96.5, not 96.52756842841539); None stays None."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        return value
    return round(float(value), digits) if math.isfinite(value) else None


def _inline(data: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode()})"


def images_markdown(images: Mapping[str, bytes], caption: str = "") -> str:
    """Markdown showing PNG images inline, one per line, each with its name as alt text."""
    if not images:
        return "_nothing to draw_"
    lines = [_inline(data, name) for name, data in images.items()]
    return "\n\n".join(([caption] if caption else []) + lines)


def heatmap_markdown(panels: Mapping[str, pd.DataFrame]) -> str:
    """Labelled correlation heatmaps (one image per panel, names on both axes) for an asset page."""
    first = next(iter(panels.values()))
    if first.empty:
        return "_no variable pairs to correlate_"
    return images_markdown(plots.heatmap_plots({title: (matrix, 1.0) for title, matrix in panels.items()}))


def inline_figures(real: pd.DataFrame, twin: pd.DataFrame, quality: Mapping, primary_key: str | None = None,
                   column_kinds: Mapping[str, str] | None = None, count: int = WORST_COLUMNS) -> dict[str, str]:
    """Markdown entries short enough to show on the asset page: each of the `count` columns the twin reproduces
    least well as a compact real-vs-twin picture under its name and score, and the twin - real correlation
    differences among the columns where they are largest, named in order."""
    comparison = _Comparison(real, twin, primary_key, column_kinds)
    ceiling = (quality.get("holdout") or {}).get("columns", {})
    # Short lines with hard breaks ("  \n"): the UI's value column is narrow and does not wrap long ones.
    entries = {"worst_columns": "Least well reproduced columns, worst first.  \nScore 1 − KS (numbers) or 1 − TVD  \n"
                                "(categories), 1 = identical; then what a  \nfresh real sample scores. Real filled "
                                "blue,  \ntwin orange; every column is in report.html."}
    for rank, (name, score) in enumerate(list(column_scores(quality).items())[:count], 1):
        if name not in comparison.plan:
            continue
        shown = plots.distribution(comparison.real[name], comparison.synthetic[name], comparison.plan[name],
                                   bins=plots.COMPACT_BINS)
        image = plots.column_plot(shown, compact=True)
        reference = f", real sample {ceiling[name]['ceiling']:.3f}" if name in ceiling else ""
        entries[f"worst_column_{rank}"] = f"**{plots.short(name)}** {score:.3f}{reference}\n\n{_inline(image, 'plot')}"
    if len(comparison.numeric) > 1:
        difference = correlation_panels(comparison)["twin − real"]
        worst = difference.abs().max().sort_values(ascending=False).index[:HEATMAP_COLUMNS]
        if len(worst) > 1:
            picture = plots.compact_heatmap(difference.loc[worst, worst], DIFFERENCE_LIMIT)
            names = [plots.short(name) for name in worst]
            entries["correlation_difference"] = (
                f"twin − real correlation, largest {difference.abs().to_numpy().max():.2f}  \n"
                f"blue −{DIFFERENCE_LIMIT:g}, white 0, red +{DIFFERENCE_LIMIT:g}  \nrows = columns, in order:  \n"
                + ",  \n".join(", ".join(names[i:i + 3]) for i in range(0, len(names), 3))
                + f"\n\n{_inline(picture, 'correlation difference')}")
    return entries


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured markdown table (floats rounded, missing values blank)."""
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, (float, np.floating)):
            return f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(cell(value) for value in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
