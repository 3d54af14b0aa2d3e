"""The report's pictures, drawn with matplotlib into SVG or PNG bytes (no display, no global pyplot state, so it is
safe in a Dagster step or a web worker). report.html takes SVG: its text stays text for the browser to set, where
PNG would rasterise every glyph and compress every pixel (most of a plot's cost); the Dagster UI's inline markdown
takes PNG.

Columns are read exactly as the quality report reads them (`quality.metrics`): numbers written as text and
dates are compared as numbers, everything else as categories with missing its own category.

matplotlib (a third of a second to import) is imported by the first picture drawn, not with this module: a clone's
main process computes the aggregates (`distribution`) and hands the drawing to its helper process.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..quality.metrics import _as_numbers, _Column

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REAL_COLOUR, TWIN_COLOUR = "#3b6ea8", "#e07b28"
BINS = 30
COMPACT_BINS = 15  # a thumbnail: fewer steps, fewer bytes
TOP_CATEGORIES = 12  # more categories are drawn as these and one "other" bar
DPI = 100
MISSING_LABEL = "(missing)"
CELL_INCHES = 0.24  # a heatmap cell: room for a 7-point label beside it
LABEL_INCHES_PER_CHARACTER = 0.065  # a 7-point label, generously
MAX_LABEL = 22  # longer column names are shortened on axes (the report's tables carry the full names)


MIME_TYPES = {"svg": "image/svg+xml", "png": "image/png"}
# SVG text as text, set by the viewer in the figure's sans-serif font; ids from a fixed salt and no date, so the
# same picture is the same bytes; no metadata block (half a kilobyte a picture).
SVG_SETTINGS = {"svg.fonttype": "none", "svg.hashsalt": "twin-report"}
SVG_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


def load() -> None:
    """matplotlib's modules for the pictures, loaded ahead of the first: by a helper process waiting to be handed
    them (a third of a second it would otherwise take once they arrive). As they load, matplotlib writes a table
    of every property into the docstrings of ~120 artist classes (matplotlib.artist.kwdoc: 0.07 of the 0.26 CPU
    s), docstrings nobody reads here, so they are loaded without it."""
    with _without_property_tables():
        import matplotlib.backends.backend_svg  # noqa: F401
        import matplotlib.figure  # noqa: F401


@contextlib.contextmanager
def _without_property_tables():
    """matplotlib.artist.kwdoc, the property table of an artist class, an empty text while inside."""
    from matplotlib import artist

    kwdoc = artist.kwdoc
    artist.kwdoc = _no_property_table
    try:
        yield
    finally:
        artist.kwdoc = kwdoc


def _no_property_table(*args, **kwargs) -> str:
    return ""


def encode(figure: Figure, image_format: str = "png", tight: bool = False) -> bytes:
    """The figure as SVG or PNG bytes; `tight` crops to the drawn content (a second layout pass: only for
    figures whose label widths are not known beforehand)."""
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context(SVG_SETTINGS if image_format == "svg" else {}):
        figure.savefig(buffer, format=image_format, dpi=DPI, bbox_inches="tight" if tight else None,
                       metadata=SVG_METADATA if image_format == "svg" else None)
    return buffer.getvalue()


def short(name) -> str:
    text = str(name)
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


@dataclass(frozen=True)
class Distribution:
    """A column's real and twin distributions as its plot shows them: densities on shared bins for numbers and
    dates, shares of the most frequent categories (and "other") for labels. Aggregates only: a helper process
    drawing the plot is sent a few numbers, never a row."""

    real: np.ndarray
    twin: np.ndarray | None
    edges: np.ndarray | None = None  # bin edges (numbers and dates); None for categories
    labels: tuple[str, ...] = ()  # category labels, one per share
    dates: bool = False  # edges are nanoseconds since the epoch


def distribution(real: pd.Series, twin: pd.Series, column: _Column, bins: int = BINS,
                 numbers: tuple[np.ndarray, np.ndarray] | None = None) -> Distribution:
    """Numbers and dates on `bins` shared bins over the real 0.5-99.5 % range (one outlier does not squash the
    picture; whole numbers over a short range get a bin per value, as bins straddling integers would alias);
    categories as the real table's TOP_CATEGORIES most frequent labels and "other". `numbers`: both columns
    already read as numbers (the quality report's)."""
    if column.type in ("numeric", "datetime"):
        real_values, twin_values = numbers or (_as_numbers(real, column), _as_numbers(twin, column))
        real_values, twin_values = real_values[~np.isnan(real_values)], twin_values[~np.isnan(twin_values)]
        if not len(real_values):
            return Distribution(np.zeros(0), None, np.zeros(0), dates=column.type == "datetime")
        low, high = np.percentile(real_values, [0.5, 99.5])
        low, high = (low - 0.5, high + 0.5) if low == high else (low, high)
        whole = np.all(real_values == np.round(real_values)) and high - low <= 2 * bins
        # Equal bins are given as a count and a range: numpy then bins by arithmetic, where an array of edges sorts
        # every value (3x the time on a 100,000-row twin), over the same np.linspace edges, so the same counts.
        edges = np.arange(low - 0.5, high + 1.0) if whole else np.linspace(low, high, bins + 1)
        binning = {"bins": edges} if whole else {"bins": bins, "range": (low, high)}
        density = lambda values: np.histogram(np.clip(values, low, high), density=True, **binning)[0]  # noqa: E731
        return Distribution(density(real_values), density(twin_values) if len(twin_values) else None, edges,
                            dates=column.type == "datetime")
    real_share, twin_share = _shares(real), _shares(twin)
    order = list(real_share.index[:TOP_CATEGORIES])
    rest = lambda share: max(0.0, 1.0 - share.reindex(order, fill_value=0).sum())  # noqa: E731
    other = bool(len(real_share) > len(order) or rest(twin_share) > 1e-9)
    bars = lambda share: np.array(list(share.reindex(order, fill_value=0)) + ([rest(share)] if other else []))  # noqa: E731
    return Distribution(bars(real_share), bars(twin_share), labels=tuple(order + ["other"] * other))


def column_plot(shown: Distribution, image_format: str = "svg", compact: bool = False) -> bytes:
    """Real (filled blue) and twin (orange) together: density steps for numbers and dates, side-by-side bars of
    shares for categories. No title, no legend and few ticks: the page names the column and states the colours
    once, and text is most of a plot's drawing time. `compact`: the shapes alone, 280 x 80 pixels of PNG in four
    colours (a few hundred bytes), for a page that inlines only short markdown (the Dagster UI); the caption
    beside it carries the name and score."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = _canvas(compact, shown.edges is not None)
    if shown.edges is not None:
        if len(shown.real):
            # One stairs artist per table instead of a rectangle per bin: a third of the drawing time.
            _stairs(axes, shown.real, shown.edges, REAL_COLOUR, fill=True, alpha=0.45)
            if shown.twin is not None:
                _stairs(axes, shown.twin, shown.edges, TWIN_COLOUR, linewidth=1.6)
            if shown.dates:
                low, high = shown.edges[0], shown.edges[-1]
                ticks = axes.get_xticks()
                axes.set_xticks(ticks, [pd.Timestamp(int(t)).strftime("%Y-%m") if low <= t <= high else ""
                                        for t in ticks], fontsize=7)
        axes.set_yticks([])
    else:
        positions = np.arange(len(shown.labels))
        _bars(axes, positions - 0.4, shown.real, REAL_COLOUR)
        _bars(axes, positions, shown.twin, TWIN_COLOUR)
        slanted = len(shown.labels) > 4
        axes.set_xticks(positions, [short(label) for label in shown.labels], rotation=35 if slanted else 0,
                        ha="right" if slanted else "center", fontsize=7)
        axes.yaxis.set_major_locator(MaxNLocator(3))
    if compact:
        return few_colours(encode(figure), 4)
    return encode(figure, image_format)


def _bars(axes: Axes, starts: np.ndarray, heights: np.ndarray, colour: str) -> None:
    """Bars 0.4 wide starting at `starts`, drawn as one filled step line (zero between bars): two artists per
    plot instead of a rectangle per category and table."""
    edges = np.column_stack([starts, starts + 0.4]).ravel()
    steps = np.column_stack([heights, np.zeros(len(heights))]).ravel()[:-1]
    _stairs(axes, steps, edges, colour, fill=True, alpha=0.8)


def _stairs(axes: Axes, heights: np.ndarray, edges: np.ndarray, colour: str, fill: bool = False, **style) -> None:
    """`axes.stairs(heights, edges, color=colour, fill=fill, **style)` on a zero baseline, its extent given to the
    data limits as its edges and heights (as `add_artist`'s docs advise): `stairs` finds it by walking every
    segment of the outline in Python, a fifth of a column plot's time. The same artist, limits and picture."""
    from matplotlib.patches import StepPatch

    colours = {"facecolor": colour, "linewidth": 0} if fill else {"edgecolor": colour}
    steps = axes.add_artist(StepPatch(heights, edges, baseline=0, fill=fill, **colours, **style))
    steps.sticky_edges.y.append(0)
    axes.update_datalim([(edges.min(), min(0.0, heights.min())), (edges.max(), max(0.0, heights.max()))])
    axes.autoscale()  # the view follows the data limits when drawn, as after `stairs`


_CANVASES = threading.local()  # per thread: a web worker's threads never draw on one figure together


def _canvas(compact: bool, numeric: bool) -> tuple[Figure, Axes]:
    """The figure and axes of a column plot, cleared of the previous plot's bars, steps and tick settings.
    One per layout and thread, reused: a new axes builds its ticks and spines anew, a quarter of a plot's
    drawing time, and the picture is the same byte for byte (test_report_html)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import AutoLocator, MaxNLocator, ScalarFormatter

    canvases = vars(_CANVASES)
    if (compact, numeric) not in canvases:
        if compact:
            figure = Figure(figsize=(2.8, 0.8))
            axes = figure.add_axes((0.0, 0.02, 1.0, 0.96))
            axes.set_axis_off()
        else:
            figure = Figure(figsize=(4.2, 2.6))  # three to a row in a 1400-pixel window
            figure.subplots_adjust(left=0.04 if numeric else 0.1, right=0.97, top=0.96,
                                   bottom=0.13 if numeric else 0.3)
            axes = figure.subplots()
            _unlabelled(axes)
            axes.tick_params(labelsize=7)
            for side in ("top", "right"):
                axes.spines[side].set_visible(False)
        canvases[compact, numeric] = figure, axes
    figure, axes = canvases[compact, numeric]
    for artist in [*axes.patches, *axes.lines, *axes.collections]:
        artist.remove()
    axes.relim()
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_locator(AutoLocator())
        axis.set_major_formatter(ScalarFormatter())
    axes.xaxis.set_major_locator(MaxNLocator(5))
    return figure, axes


def _unlabelled(*axes: Axes) -> None:
    """Axes without axis labels, whose (empty) labels need no place: matplotlib otherwise measures every tick
    label at each drawing to keep the label clear of them, a quarter of a heatmap's drawing time."""
    for each in axes:
        each.xaxis.set_label_coords(0.5, 0.0)
        each.yaxis.set_label_coords(0.0, 0.5)


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
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    side = 0.22 * len(matrix)
    figure = Figure(figsize=(side, side))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.imshow(matrix.to_numpy(float), cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -limit, limit), interpolation="nearest")
    axes.set_axis_off()
    return few_colours(encode(figure), 12)


def _shares(series: pd.Series) -> pd.Series:
    """Each value's share, labelled as text (missing as its own label), most frequent first. Counted on the
    values and labelled after: converting every row to text first took ten times longer."""
    counts = series.value_counts(dropna=False, normalize=True)
    shares = pd.Series(counts.to_numpy(), [MISSING_LABEL if pd.isna(value) else str(value) for value in counts.index])
    return shares if shares.index.is_unique else shares.groupby(level=0, sort=False).sum().sort_values(
        ascending=False, kind="stable")  # values written alike (1 and "1") are one label


def heatmap_plots(panels: Mapping[str, tuple[pd.DataFrame, float]], image_format: str = "png") -> dict[str, bytes]:
    """{title: picture} for {title: (matrix, limit)}, matrices over the same columns: each coloured -limit blue ..
    0 white .. +limit red, with its colour bar; cells large enough for their row and column names to be read at
    full size. One figure, sized for the longest label and title (so it is drawn once: a tight crop would draw it
    twice), takes each panel's cells, colour scale and title in turn: its 2 x n labelled ticks, most of a
    heatmap's drawing time, are built once."""
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    matrix = next(iter(panels.values()))[0]
    size = len(matrix)
    labels = [short(name) for name in matrix.columns]
    grid = max(2.6, CELL_INCHES * size)  # the cells, in inches (a few columns still read at full size)
    label = LABEL_INCHES_PER_CHARACTER * max(len(text) for text in labels) + 0.15
    # Colour bar on the right and the title on top (room for all of it: it starts at the cells' left edge).
    width, height = label + max(grid + 0.9, 0.075 * max(map(len, panels))), label + grid + 0.35
    figure = Figure(figsize=(width, height))
    axes = figure.add_axes((label / width, label / height, grid / width, grid / height))
    # The cells as an image of one pixel each, which the viewer enlarges without smoothing (matplotlib resampled
    # it to the figure's pixels and compressed those), and labels without tick marks: each label sits at its
    # cell's middle, and the marks were 2 x n more objects to draw.
    image = axes.imshow(matrix.to_numpy(float), cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -1.0, 1.0),
                        interpolation="none")
    axes.set_xticks(range(size), labels, rotation=90, fontsize=7)
    axes.set_yticks(range(size), labels, fontsize=7)
    axes.tick_params(bottom=False, left=False)
    bar = figure.add_axes(((label + grid + 0.12) / width, label / height, 0.14 / width, grid / height))
    figure.colorbar(image, cax=bar).ax.tick_params(labelsize=7)
    _unlabelled(axes, bar)
    pictures = {}
    for title, (matrix, limit) in panels.items():
        image.set_data(matrix.to_numpy(float))
        image.set_norm(TwoSlopeNorm(0.0, -limit, limit))  # the colour bar follows
        axes.set_title(title, fontsize=10, loc="left", y=1.0)  # where matplotlib would put it over bottom ticks
        pictures[title] = encode(figure, image_format)
    return pictures


def tail_plot(tail_risk: dict, image_format: str = "png") -> bytes | None:
    """Empirical tail dependence of the most dependent pairs, real vs twin, at each level and side."""
    from matplotlib.figure import Figure

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
    return encode(figure, image_format, tight=True)
