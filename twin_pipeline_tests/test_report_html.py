"""report.html: one self-contained page with a plot per scored column, labelled heatmaps and the summary
cards, small enough to mail for a 55-column table."""

import base64
import html
import re
import threading

import numpy as np
import pandas as pd
import pytest
from shapes import lending_table, overdraft_table

from twin_pipeline.quality import quality_report
from twin_pipeline.quality.tails import tail_report
from twin_pipeline.report import write_report
from twin_pipeline.report.html import column_scores

IMAGE = re.compile(r'<img alt="([^"]+)" title="[^"]*" src="data:image/(?:svg\+xml|png);base64,([A-Za-z0-9+/=]+)">')


def images(page: str) -> dict[str, bytes]:
    return {alt: base64.b64decode(data) for alt, data in IMAGE.findall(page)}


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    real, twin = lending_table(n=1_500), lending_table(seed=1, n=3_000)
    quality = quality_report(real, twin)
    quality["tail_risk"] = tail_report(real, twin)
    quality["rules"] = {"rules": [  # the shape of engine.rules.report.rules_report
        {"name": "balance <= loan_amount", "real": {"share": 1.0}, "twin": {"share": 1.0}},
        {"name": "paid_total = sum of parts", "real": {"share": 1.0}, "twin": {"share": 0.97}}],
        "summary": {"enforced": 1, "mined_break_worst": 0.03}}
    privacy = {"k": 5, "exact_matches": 0, "exact_match_rate": 0.0,
               "audit": {"attacker_risk": {"singling_out": {"risk": 0.01, "ci": [0.0, 0.04]}}}}
    path, _ = write_report(tmp_path_factory.mktemp("report") / "report.html", real, twin, quality, privacy,
                        title="lending")
    return path, quality


def test_the_page_has_a_plot_per_scored_column_and_is_self_contained(wide):
    path, quality = wide
    page = path.read_text()
    shown = images(page)
    scored = list(column_scores(quality))
    assert len(scored) >= 50
    assert [alt for alt in shown if alt.startswith("column ")] == [f"column {name}" for name in scored]
    assert all(data.startswith(b"<?xml") and b"<svg" in data and len(data) > 2_000 for data in shown.values())
    assert "<figcaption><b>" + html.escape(scored[0]) + "</b> score " in page  # each plot named and scored
    assert not re.search(r"""(src|href)=["'](?!data:)""", page) and "<script" not in page  # nothing to fetch
    assert path.stat().st_size < 5 * 2**20


def test_the_worst_column_comes_first_and_the_cards_carry_the_figures(wide):
    path, quality = wide
    page = path.read_text()
    first = re.search(r'<img alt="column ([^"]+)"', page).group(1)
    assert first == min(column_scores(quality).items(), key=lambda item: item[1])[0]
    for label in ("similarity score", "k-anonymity", "copies of real rows", "rules kept"):
        assert f'<div class="label">{label}</div>' in page
    assert '<div class="value">1 / 2</div>' in page  # rules kept
    assert "singling_out" in page and "[0.000, 0.040]" in page  # privacy figure with its interval
    assert {"heatmap real", "heatmap twin", "heatmap twin − real", "tail dependence"} <= set(images(page))


def test_a_table_without_numbers_still_gets_its_page(tmp_path):
    real = overdraft_table()
    path, _ = write_report(tmp_path / "report.html", real, real.sample(frac=1, random_state=1),
                        quality_report(real, real), {})
    page = path.read_text()
    assert len([alt for alt in images(page) if alt.startswith("column ")]) == 4
    assert "Fewer than two numeric columns" in page and "Holdout ceiling not measured" in page


def test_plots_shared_with_a_helper_process_are_the_plots_drawn_alone_in_the_same_order(wide, tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    path, quality = wide
    real, twin = lending_table(n=1_500), lending_table(seed=1, n=3_000)
    with ProcessPoolExecutor(1) as helper:
        shared, figures = write_report(tmp_path / "report.html", real, twin, quality, title="lending", helper=helper)
    alone = images(path.read_text())
    assert list(figures.columns) == [alt.removeprefix("column ") for alt in alone if alt.startswith("column ")]
    assert all(figures.columns[name] == alone[f"column {name}"] for name in figures.columns)
    assert {f"heatmap {name}" for name in figures.heatmaps} <= set(alone)


def test_a_column_plot_on_the_reused_canvas_is_the_plot_a_fresh_canvas_draws():
    from twin_pipeline.quality.metrics import _Comparison
    from twin_pipeline.report import plots

    real, twin = lending_table(n=800), lending_table(seed=1, n=800)
    for seed, frame in enumerate((real, twin)):
        days = np.random.default_rng(seed).integers(0, 900, len(frame))
        frame.insert(0, "issued", pd.Timestamp("2020-01-01") + pd.to_timedelta(days, "D"))  # before numbers
    comparison = _Comparison(real, twin)
    names = [name for name, column in comparison.plan.items() if column.type != "excluded"]
    kinds = {comparison.plan[name].type for name in names}
    assert {"numeric", "categorical", "datetime"} <= kinds  # every way a plot sets its axes, one after another

    def draw(name, compact=False):
        shown = plots.distribution(comparison.real[name], comparison.synthetic[name], comparison.plan[name])
        return plots.column_plot(shown, compact=compact)

    after_others = {(name, compact): draw(name, compact) for compact in (False, True) for name in names}
    for (name, compact), image in after_others.items():
        vars(plots._CANVASES).clear()  # a fresh figure, as the first plot of a process gets
        assert draw(name, compact) == image, name


LOAD_PICTURES = """
import hashlib
import numpy as np
from twin_pipeline.report import plots
{setup}
plots.load()
from matplotlib import artist
from matplotlib.lines import Line2D
assert artist.kwdoc.__module__ == "matplotlib.artist"  # matplotlib's own, back in place
shown = plots.Distribution(np.array([0.2, 0.5, 0.3]), np.array([0.3, 0.4, 0.3]), np.array([0.0, 1.0, 2.0, 3.0]))
print("agg_filter" in Line2D.set.__doc__, hashlib.sha256(plots.column_plot(shown)).hexdigest())
"""


def test_pictures_loaded_without_matplotlibs_property_tables_are_the_same_pictures():
    import subprocess
    import sys

    runs = [subprocess.run([sys.executable, "-c", LOAD_PICTURES.format(setup=setup)], capture_output=True, text=True)
            for setup in ("", "import matplotlib.figure")]  # loaded before: as it comes
    assert [run.returncode for run in runs] == [0, 0], [run.stderr for run in runs]
    (without, picture), (table, same_picture) = (run.stdout.split() for run in runs)
    assert (without, table) == ("False", "True") and picture == same_picture


def test_a_heatmap_carries_its_cells_as_one_pixel_each_and_its_labels_without_tick_marks():
    import io

    from PIL import Image

    from twin_pipeline.report import plots

    names = ["alpha", "beta", "gamma", "delta", "epsilon"]
    matrix = pd.DataFrame(np.random.default_rng(0).uniform(-1, 1, (5, 5)), names, names)
    svg = plots.heatmap_plots({"one": (matrix, 1.0)}, "svg")["one"].decode()
    sizes = [Image.open(io.BytesIO(base64.b64decode(data))).size
             for data in re.findall(r'xlink:href="data:image/png;base64,([^"]+)"', svg)]
    assert (5, 5) in sizes  # the cells (the other image is the colour bar)
    assert all(f">{name}</text>" in svg for name in names)
    assert len(re.findall(r"<use ", svg)) == len(re.findall(r"<use ", plots.heatmap_plots(
        {"one": (matrix.iloc[:2, :2], 1.0)}, "svg")["one"].decode()))  # the colour bar's marks only


def test_column_plots_are_the_pictures_matplotlib_s_stairs_draws(monkeypatch):
    from twin_pipeline.quality.metrics import _Comparison
    from twin_pipeline.report import plots

    real, twin = lending_table(n=600), lending_table(seed=1, n=600)
    comparison = _Comparison(real, twin)
    shown = [plots.distribution(comparison.real[name], comparison.synthetic[name], column)
             for name, column in comparison.plan.items() if column.type != "excluded"]

    def pictures():
        vars(plots._CANVASES).clear()
        return [plots.column_plot(each, compact=compact) for compact in (False, True) for each in shown]

    drawn = pictures()
    monkeypatch.setattr(plots, "_stairs", lambda axes, heights, edges, colour, fill=False, **style: axes.stairs(
        heights, edges, fill=fill, color=colour, **({"linewidth": 0} if fill else {}), **style))
    assert pictures() == drawn


def test_column_densities_count_each_value_in_its_bin():
    """A plot's densities are the histogram over its own edges, for numbers, whole numbers and dates."""
    from twin_pipeline.quality.metrics import _Comparison
    from twin_pipeline.report import plots

    rng = np.random.default_rng(5)
    real = pd.DataFrame({"amount": rng.lognormal(8, 1.5, 2_000), "term": rng.integers(12, 40, 2_000),
                         "issued": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, 2_000), "D")})
    twin = real.sample(9_000, replace=True, random_state=1).reset_index(drop=True)
    twin["amount"] *= rng.uniform(0.5, 1.5, len(twin))
    comparison = _Comparison(real, twin)
    for name in real.columns:
        shown = plots.distribution(real[name], twin[name], comparison.plan[name], numbers=comparison.numbers[name])
        for values, density in zip(comparison.numbers[name], (shown.real, shown.twin)):
            clipped = np.clip(values, shown.edges[0], shown.edges[-1])
            assert np.allclose(density, np.histogram(clipped, bins=shown.edges, density=True)[0], rtol=0, atol=1e-15)


def test_shared_tasks_wait_for_the_helper_to_be_free_and_are_drawn_here_meanwhile():
    """A helper still busy with earlier work (`after`) is handed nothing: a task queued behind that work could not
    be taken back, and this process, idle, would wait for it. Once free, it is handed them all, the last first."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from twin_pipeline.sharing import SharedTasks

    with ThreadPoolExecutor(1) as helper:
        busy = Future()
        shared = SharedTasks([(pow, (2, power)) for power in range(4)], helper, after=busy)
        shared.add(pow, 3, 2)
        assert shared.results() == [1, 2, 4, 8, 9] and not shared.handed
        busy.set_result(None)
        assert not shared.handed  # nothing left to hand

        free = Future()
        free.set_result(None)
        release = threading.Event()
        shared = SharedTasks([(pow, (2, 0)), (pow, (2, 1)), (release.wait, ()), (pow, (2, 3))], helper, after=free)
        assert set(shared.handed) == {0, 1, 2, 3}  # all of them once it is free, the last first
        release.set()
        assert shared.results() == [1, 2, True, 8]


def test_shared_tasks_the_helper_has_begun_all_stay_with_it():
    """A helper that has begun the tasks keeps every one: taking back those it has not reached would load their
    imports (matplotlib) in this process a second time."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from twin_pipeline.sharing import SharedTasks

    started, release = threading.Event(), threading.Event()

    def hold():
        started.set()
        release.wait()
        return threading.get_ident()

    with ThreadPoolExecutor(1) as helper:
        free = Future()
        free.set_result(None)
        shared = SharedTasks([(threading.get_ident, ())] * 3 + [(hold, ())], helper, after=free)
        started.wait()  # the last is handed first: the helper holds it, the others wait in its queue
        threading.Timer(0.05, release.set).start()
        assert threading.get_ident() not in shared.results()
