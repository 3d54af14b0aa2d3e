"""What the Dagster UI shows for an asset: markdown tables, scores rounded as people read them, and the
report's labelled pictures (drawn once by `twin_pipeline.report`) as markdown images with inline PNG data.

Dagster's UI renders markdown metadata in the table only under 1,000 characters; an image is longer, so it
opens at full size from the entry's [Show Markdown] link, and report.html (linked by path) has every picture."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..report import plots

WORST_COLUMNS = 4  # the asset page shows the columns the twin reproduces least well; report.html shows all


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
    return images_markdown({title: plots.heatmap_plot(matrix, title) for title, matrix in panels.items()})


def worst_columns_markdown(columns: Mapping[str, bytes], count: int = WORST_COLUMNS) -> str:
    """The first `count` column plots (report figures are ordered worst first), real filled blue, twin orange."""
    chosen = dict(list(columns.items())[:count])
    return images_markdown(chosen, f"The {len(chosen)} columns the twin reproduces least well (real: filled blue, "
                                   "twin: orange); every column is in report.html.")


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
