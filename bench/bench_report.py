"""report.html on tables of every shape: time to draw and write it, its size, and a screenshot of each page
taken by headless Chromium (the check that it opens and reads as a page, not only as a file).

Run: python bench/bench_report.py [--data /work/shared/datasets] [--no-screenshot]
Results: bench/results/report.json, screenshots bench/results/report_<table>.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin_pipeline import pipeline  # noqa: E402
from twin_pipeline.options import CloneOptions  # noqa: E402
from twin_pipeline.privacy import detect_quasi_identifiers, privacy_report  # noqa: E402
from twin_pipeline.protection import protect  # noqa: E402
from twin_pipeline.quality import quality_report  # noqa: E402
from twin_pipeline.quality.tails import tail_report  # noqa: E402
from twin_pipeline.report import write_report  # noqa: E402
from twin_pipeline.tables import read_table  # noqa: E402
from twin_pipeline_tests.shapes import lending_table, narrow_table, overdraft_table  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,4000"]


def tables(data: Path) -> dict:
    return {"credit_data": read_table(data / "credit_data.csv"), "credit_card": read_table(data / "credit_card.csv"),
            "lending_55_columns": lending_table(n=10_000), "narrow": narrow_table(n=10_000),
            "overdraft": overdraft_table()}


def make_report(name: str, real, folder: Path) -> dict:
    """A 2x protected twin and the report `twin clone` writes for it (the attacker audit left out: it is not
    part of the page's cost)."""
    options = replace(CloneOptions(scale=2), quasi_identifiers=detect_quasi_identifiers(real))
    engine = pipeline.fit_model(real, options)
    try:
        twin, protection = protect(engine.sample(2 * len(real), seed=0), real, engine, options)
    except Exception as error:  # noqa: BLE001 - e.g. a narrow table whose every row exists: report the twin unprotected
        print(f"{name}: not protected ({error}); the page is drawn for the unprotected twin")
        twin, protection = engine.sample(2 * len(real), seed=0), None
    quality = quality_report(real, twin)
    quality.update(pipeline.reference_quality(real, options))
    quality["tail_risk"] = tail_report(real, twin)
    privacy = privacy_report(twin, real, quasi_identifiers=options.quasi_identifiers, k=options.k) if protection else {}
    start = time.perf_counter()
    path, figures = write_report(folder / f"report_{name}.html", real, twin, quality, privacy, title=name)
    seconds = time.perf_counter() - start
    result = {"table": name, "rows": len(real), "columns": real.shape[1], "column_plots": len(figures.columns),
              "heatmaps": len(figures.heatmaps), "seconds_to_draw_and_write": seconds,
              "bytes": path.stat().st_size, "megabytes": path.stat().st_size / 2**20}
    print(f"{name}: {real.shape[0]:,} x {real.shape[1]}, {len(figures.columns)} column plots, "
          f"{result['megabytes']:.2f} MB in {seconds:.1f} s")
    return result | {"path": path}


def screenshot(page: Path, target: Path) -> bool:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        return False
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={target}",
                        page.as_uri()], check=True, capture_output=True, timeout=180)
    return target.exists() and target.stat().st_size > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/datasets"))
    parser.add_argument("--no-screenshot", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name, real in tables(args.data).items():
            result = make_report(name, real, Path(folder))
            page = result.pop("path")
            if not args.no_screenshot:
                shot = RESULTS / f"report_{name}.png"
                result["screenshot"] = str(shot.relative_to(ROOT)) if screenshot(page, shot) else None
            results.append(result)
    target = RESULTS / "report.json"
    target.write_text(json.dumps({"window": "1400x4000", "reports": results}, indent=2) + "\n")
    print(f"saved {target}")


if __name__ == "__main__":
    main()
