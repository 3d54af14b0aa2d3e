"""The report's pictures, drawn with matplotlib's Agg backend into PNG bytes (no display, no global pyplot
state, so it is safe in a Dagster step or a web worker).

Columns are read exactly as the quality report reads them (`quality.metrics`): numbers written as text and
dates are compared as numbers, everything else as categories with missing its own category.
"""

from __future__ import annotations

import io
import threading

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import AutoLocator, MaxNLocator, ScalarFormatter

from ..quality.metrics import _as_numbers, _Column

REAL_COLOUR, TWIN_COLOUR = "#3b6ea8", "#e07b28"
BINS = 30
TOP_CATEGORIES = 12  # more categories are drawn as these and one "other" bar
DPI = 100
MISSING_LABEL = "(missing)"
CELL_INCHES = 0.24  # a heatmap cell: room for a 7-point label beside it
LABEL_INCHES_PER_CHARACTER = 0.065  # a 7-point label, generously
MAX_LABEL = 22  # longer column names are shortened on axes (the report's tables carry the full names)


def png(figure: Figure, tight: bool = False) -> bytes:
    """PNG bytes; `tight` crops to the drawn content (a second rendering pass: only for figures whose
    label widths are not known beforehand)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight" if tight else None)
    return buffer.getvalue()


def short(name) -> str:
    text = str(name)
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def column_plot(name: str, real: pd.Series, twin: pd.Series, column: _Column, subtitle: str = "",
                compact: bool = False) -> bytes:
    """Real (filled blue) and twin (orange) together: density histograms on shared bins for numbers and dates
    (the real 0.5-99.5 % range, so one outlier does not squash the picture), bars of shares for categories.
    No legend and few ticks: text is most of matplotlib's drawing time, and the page states the colours once.
    `compact`: the shapes alone, 280 x 80 pixels in four colours (a few hundred bytes), for a page that inlines
    only short markdown (the Dagster UI); the caption beside it carries the name and score."""
    numeric = column.type in ("numeric", "datetime")
    figure, axes = _canvas(compact, numeric)
    if numeric:
        real_values, twin_values = _as_numbers(real, column), _as_numbers(twin, column)
        real_values, twin_values = real_values[~np.isnan(real_values)], twin_values[~np.isnan(twin_values)]
        if len(real_values):
            low, high = np.percentile(real_values, [0.5, 99.5])
            low, high = (low - 0.5, high + 0.5) if low == high else (low, high)
            bins = BINS // 2 if compact else BINS  # a thumbnail: fewer steps, fewer bytes
            whole = np.all(real_values == np.round(real_values)) and high - low <= 2 * bins
            # Whole numbers over a short range get one bin per value: bins straddling integers would alias.
            edges = np.arange(low - 0.5, high + 1.0) if whole else np.linspace(low, high, bins + 1)
            # One stairs artist per table instead of a rectangle per bin: a third of the drawing time.
            real_density = np.histogram(np.clip(real_values, low, high), bins=edges, density=True)[0]
            axes.stairs(real_density, edges, fill=True, color=REAL_COLOUR, alpha=0.45)
            if len(twin_values):
                twin_density = np.histogram(np.clip(twin_values, low, high), bins=edges, density=True)[0]
                axes.stairs(twin_density, edges, linewidth=1.6, color=TWIN_COLOUR)
            if column.type == "datetime":
                ticks = axes.get_xticks()
                axes.set_xticks(ticks, [pd.Timestamp(int(t)).strftime("%Y-%m") if low <= t <= high else ""
                                        for t in ticks], fontsize=7)
        axes.set_yticks([])
    else:
        real_share = _shares(real)
        twin_share = _shares(twin)
        order = list(real_share.index[:TOP_CATEGORIES])
        rest = lambda share: max(0.0, 1.0 - share.reindex(order, fill_value=0).sum())  # noqa: E731
        labels = order + (["other"] if len(real_share) > len(order) or rest(twin_share) > 1e-9 else [])
        real_bars = list(real_share.reindex(order, fill_value=0)) + ([rest(real_share)] if len(labels) > len(order) else [])
        twin_bars = list(twin_share.reindex(order, fill_value=0)) + ([rest(twin_share)] if len(labels) > len(order) else [])
        positions = np.arange(len(labels))
        axes.bar(positions - 0.2, real_bars, width=0.4, color=REAL_COLOUR, alpha=0.8)
        axes.bar(positions + 0.2, twin_bars, width=0.4, color=TWIN_COLOUR, alpha=0.8)
        axes.set_xticks(positions, [short(label) for label in labels], rotation=35 if len(labels) > 4 else 0,
                        ha="right" if len(labels) > 4 else "center", fontsize=7)
        axes.yaxis.set_major_locator(MaxNLocator(3))
    if compact:
        return few_colours(png(figure), 4)
    axes.set_title(f"{short(name)}{'  ·  ' + subtitle if subtitle else ''}", fontsize=9, loc="left")
    return png(figure)


_CANVASES = threading.local()  # per thread: a web worker's threads never draw on one figure together


def _canvas(compact: bool, numeric: bool) -> tuple[Figure, Axes]:
    """The figure and axes of a column plot, cleared of the previous plot's bars, steps and tick settings.
    One per layout and thread, reused: a new axes builds its ticks and spines anew, a quarter of a plot's
    drawing time, and the picture is the same byte for byte (test_report_html)."""
    canvases = vars(_CANVASES)
    if (compact, numeric) not in canvases:
        if compact:
            figure = Figure(figsize=(2.8, 0.8))
            axes = figure.add_axes((0.0, 0.02, 1.0, 0.96))
            axes.set_axis_off()
        else:
            figure = Figure(figsize=(4.2, 2.6))  # three to a row in a 1400-pixel window
            figure.subplots_adjust(left=0.04 if numeric else 0.1, right=0.97, top=0.88,
                                   bottom=0.13 if numeric else 0.3)
            axes = figure.subplots()
            axes.tick_params(labelsize=7)
            for side in ("top", "right"):
                axes.spines[side].set_visible(False)
        canvases[compact, numeric] = figure, axes
    figure, axes = canvases[compact, numeric]
    for container in list(axes.containers):
        container.remove()
    for artist in [*axes.patches, *axes.lines, *axes.collections]:
        artist.remove()
    axes.relim()
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_locator(AutoLocator())
        axis.set_major_formatter(ScalarFormatter())
    axes.xaxis.set_major_locator(MaxNLocator(5))
    return figure, axes


def few_colours(data: bytes, colours: int = 6) -> bytes:
    """The PNG with its colours reduced to a small palette (anti-aliased edges snap to the nearest one): a plot
    of flat shapes then compresses to a few hundred bytes."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def compact_heatmap(matrix: pd.DataFrame, limit: float) -> bytes:
    """The matrix's cells alone (blue -limit .. white 0 .. red +limit), 22 pixels each, in a small palette."""
    side = 0.22 * len(matrix)
    figure = Figure(figsize=(side, side))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.imshow(matrix.to_numpy(float), cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -limit, limit), interpolation="nearest")
    axes.set_axis_off()
    return few_colours(png(figure), 12)


def _shares(series: pd.Series) -> pd.Series:
    labels = series.astype("string").fillna(MISSING_LABEL)
    return labels.value_counts(normalize=True)


def heatmap_plot(matrix: pd.DataFrame, title: str, limit: float = 1.0) -> bytes:
    """One labelled correlation matrix, coloured -limit blue .. 0 white .. +limit red, with its colour bar;
    cells are large enough for their row and column names to be read at full size. The margins are sized from
    the longest label, so the figure is drawn once (a tight crop would draw it twice)."""
    size = len(matrix)
    labels = [short(name) for name in matrix.columns]
    grid = max(2.6, CELL_INCHES * size)  # the cells, in inches (a few columns still read at full size)
    label = LABEL_INCHES_PER_CHARACTER * max(len(text) for text in labels) + 0.15
    # Colour bar on the right and the title on top (room for all of it: it starts at the cells' left edge).
    width, height = label + max(grid + 0.9, 0.075 * len(title)), label + grid + 0.35
    figure = Figure(figsize=(width, height))
    axes = figure.add_axes((label / width, label / height, grid / width, grid / height))
    image = axes.imshow(matrix.to_numpy(float), cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -limit, limit),
                        interpolation="nearest")
    axes.set_xticks(range(size), labels, rotation=90, fontsize=7)
    axes.set_yticks(range(size), labels, fontsize=7)
    axes.set_title(title, fontsize=10, loc="left")
    bar = figure.add_axes(((label + grid + 0.12) / width, label / height, 0.14 / width, grid / height))
    figure.colorbar(image, cax=bar).ax.tick_params(labelsize=7)
    return png(figure)


def tail_plot(tail_risk: dict) -> bytes | None:
    """Empirical tail dependence of the most dependent pairs, real vs twin, at each level and side."""
    pairs = tail_risk.get("pairs") or []
    keys = [key for key in (pairs[0] if pairs else {}) if key.startswith(("lower_", "upper_"))]
    if not keys:
        return None
    figure = Figure(figsize=(min(12, 2.6 + 2.2 * len(pairs)), 2.9))
    axes = figure.subplots()
    width = 0.8 / (2 * len(keys))
    positions = np.arange(len(pairs))
    for index, key in enumerate(keys):
        for offset, (name, colour) in enumerate((("real", REAL_COLOUR), ("twin", TWIN_COLOUR))):
            where = positions - 0.4 + width * (2 * index + offset + 0.5)
            axes.bar(where, [pair[key][name] for pair in pairs], width=width, color=colour,
                     alpha=0.45 + 0.5 * index / max(1, len(keys) - 1), label=f"{name} {key.replace('_', ' q=')}")
    axes.set_xticks(positions, [" ×\n".join(short(c) for c in pair["columns"]) for pair in pairs], fontsize=7)
    axes.set_ylabel("tail dependence λ(q)", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=6, ncols=2, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return png(figure, tight=True)
