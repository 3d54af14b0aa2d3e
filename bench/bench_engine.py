"""Engine benchmark: quality, speed and memory of the native engine beside the `copulas` reference, in one run.

    python bench/bench_engine.py            # full run (about 15 minutes, most of it in the copulas reference)
    python bench/bench_engine.py --quick    # skip the 10,000,000-row memory run and sample copulas less

Figures (printed as a markdown table and saved to bench/results/engine.json):
* SDMetrics QualityReport score, our correlation_error and the Spearman error of a 10x twin of each model side by
  side: the native engine (with and without NORTA Pearson matching), the `copulas` backend, and SDV's
  GaussianCopulaSynthesizer (pip install '.[bench]');
* fit time of credit_data.csv, and time to sample 1,000,000 rows;
* copulas' GaussianMultivariate fitted directly on the numeric columns, fit and sample time;
* peak RSS of writing 10,000,000 rows to Parquet (in a child process, so this process's memory does not count);
* attacker risks (anonymeter singling-out, linkability, inference) of a twin fitted on 80 % of the rows, with the
  other 20 % as the control set, beside the quality figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from twin_pipeline.engine import GaussianCopulaEngine  # noqa: E402
from twin_pipeline.quality import quality_report  # noqa: E402

SAMPLES = ROOT / "twin_pipeline" / "samples"
RESULTS = ROOT / "bench" / "results"


def sdmetrics_score(real: pd.DataFrame, synthetic: pd.DataFrame, real_bins: bool = False) -> float:
    """SDMetrics QualityReport (0-100); numeric columns with more than 10 values are numerical, datetimes datetime,
    others categorical.

    `real_bins`: SDMetrics 0.32's Column Pair Trends cuts each numeric column into 10 equal-width bins over each
    table's *own* range, so a twin that does not reproduce one real outlier (credit_card's age 0.17, which no
    privacy-safe twin should pin) has every bin shifted against the real one (age x owner: 0.48 where the same
    twin scores 0.93 on common bins). Its maintainers specified bins from the real table with open ends
    (sdv-dev/SDMetrics#368); this option scores that way, beside the official figure."""
    from sdmetrics.reports.single_table import QualityReport
    from sdmetrics.reports.single_table._properties.column_pair_trends import ColumnPairTrends

    columns = {name: {"sdtype": "datetime" if pd.api.types.is_datetime64_any_dtype(real[name])
                      else "numerical" if pd.api.types.is_numeric_dtype(real[name]) and real[name].nunique() > 10
                      else "categorical"} for name in real.columns}
    report = QualityReport()
    official, edges = ColumnPairTrends._get_processed_data, {}

    def processed_on_real_bins(self, data, metadata):  # first call: the real table, whose edges both then use
        processed, discrete = official(self, data, metadata)
        for name in discrete.columns:
            if name not in edges:
                edges[name] = np.histogram_bin_edges(processed[name].dropna())
                edges[name][0], edges[name][-1] = -np.inf, np.inf
            discrete[name] = np.digitize(processed[name], edges[name])
        return processed, discrete

    try:
        if real_bins:
            ColumnPairTrends._get_processed_data = processed_on_real_bins
        report.generate(real, synthetic, {"columns": columns}, verbose=False)
    finally:
        ColumnPairTrends._get_processed_data = official
    return round(100 * report.get_score(), 2)


def timed(function, repeat: int = 1):
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return result, best


class SDVReference:
    """SDV's GaussianCopulaSynthesizer behind the engine's fit / sample interface (pip install '.[bench]')."""

    def fit(self, real: pd.DataFrame) -> "SDVReference":
        from sdv.metadata import Metadata
        from sdv.single_table import GaussianCopulaSynthesizer

        self.model = GaussianCopulaSynthesizer(Metadata.detect_from_dataframe(real))
        self.model.fit(real)
        return self

    def sample(self, rows: int, seed: int = 0) -> pd.DataFrame:
        return self.model.sample(rows)


MODELS = {  # every model makes the same 10x twin of the same table, so the rows compare like with like
    "native": lambda: GaussianCopulaEngine(),
    "native, match_pearson=False": lambda: GaussianCopulaEngine(match_pearson=False),
    "copulas backend": lambda: GaussianCopulaEngine(backend="copulas"),
    "SDV GaussianCopulaSynthesizer": SDVReference,
}


def spearman_error(real: pd.DataFrame, twin: pd.DataFrame) -> float:
    """Mean |Spearman difference| over the numeric column pairs: what NORTA Pearson matching trades away."""
    numeric = [name for name in real.columns if pd.api.types.is_numeric_dtype(real[name]) and real[name].nunique() > 10]
    a, b = real[numeric].corr("spearman").to_numpy(), twin[numeric].corr("spearman").to_numpy()
    upper = np.triu_indices(len(numeric), 1)
    return float(np.nanmean(np.abs(a[upper] - b[upper])))


def quality_row(name: str, real: pd.DataFrame, model: str, rows: int) -> dict:
    engine, fit_seconds = timed(lambda: MODELS[model]().fit(real), repeat=3 if model.startswith("native") else 1)
    twin, sample_seconds = timed(lambda: engine.sample(rows, seed=0))
    ours = quality_report(real, twin)
    return {"table": name, "model": model, "rows": rows, "fit_s": round(fit_seconds, 3),
            "sample_s": round(sample_seconds, 3), "sdmetrics": sdmetrics_score(real, twin),
            "similarity_score": round(ours["similarity_score"], 2), "correlation_error": round(ours["correlation_error"], 4),
            "spearman_error": round(spearman_error(real, twin), 4)}


def attacker_row(name: str, real: pd.DataFrame) -> dict:
    from twin_pipeline.privacy import attacker_risk

    shuffled = real.sample(frac=1.0, random_state=0).reset_index(drop=True)
    cut = int(0.8 * len(shuffled))
    train, control = shuffled.iloc[:cut], shuffled.iloc[cut:]
    twin = GaussianCopulaEngine().fit(train).sample(len(train), seed=1)
    risks = attacker_risk(twin, train, control)
    return {"table": name, **risks}


def copulas_numeric_row(name: str, real: pd.DataFrame, rows: int) -> dict:
    from copulas.multivariate import GaussianMultivariate

    numeric = real.select_dtypes("number")
    numeric = numeric.fillna(numeric.median())
    model = GaussianMultivariate()
    _, fit_seconds = timed(lambda: model.fit(numeric))
    _, sample_seconds = timed(lambda: model.sample(rows))
    ours = GaussianCopulaEngine()
    _, our_fit = timed(lambda: ours.fit(numeric), repeat=3)
    _, our_sample = timed(lambda: ours.sample(rows, seed=0))
    return {"table": name, "columns": numeric.shape[1], "rows_sampled": rows,
            "copulas_fit_s": round(fit_seconds, 2), "copulas_sample_s": round(sample_seconds, 2),
            "native_fit_s": round(our_fit, 3), "native_sample_s": round(our_sample, 3)}


def memory_row(rows: int) -> dict:
    """Write `rows` rows of a credit_data twin to Parquet in a child process and read its peak RSS."""
    code = (
        "import sys, time, pandas as pd;"
        f"sys.path.insert(0, {str(ROOT)!r});"
        "from twin_pipeline.engine import GaussianCopulaEngine;"
        f"e = GaussianCopulaEngine().fit(pd.read_csv({str(SAMPLES / 'credit_data.csv')!r}));"
        "t = time.perf_counter();"
        f"e.write_sample('/tmp/twin_bench.parquet', {rows}, seed=0);"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) parent through fork and exec
        "print(time.perf_counter() - t, next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
    )
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    Path("/tmp/twin_bench.parquet").unlink(missing_ok=True)
    return {"rows": rows, "seconds": round(float(output[0]), 1), "peak_rss_mib": round(int(output[1]) / 1024)}


def markdown(rows: list[dict]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[key]) for key in header) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10M-row memory run; sample copulas less")
    args = parser.parse_args()
    tables = {name: pd.read_csv(SAMPLES / f"{name}.csv") for name in ("credit_data", "credit_card")}
    results = {"quality": [], "speed": [], "copulas_numeric": [], "attacker": [], "memory": [],
               "machine": [{"cpus": os.cpu_count(), "load_start": os.getloadavg()[0]}]}  # times inflate under load
    for name, real in tables.items():
        for model in MODELS:
            results["quality"].append(quality_row(name, real, model, 10 * len(real)))
            print(results["quality"][-1], flush=True)
        results["attacker"].append(attacker_row(name, real))
        print(results["attacker"][-1], flush=True)
    credit = tables["credit_data"]
    engine, fit_seconds = timed(lambda: GaussianCopulaEngine().fit(credit), repeat=5)
    _, million = timed(lambda: engine.sample(1_000_000, seed=0), repeat=3)
    results["speed"].append({"fit_credit_data_s": round(fit_seconds, 3), "sample_1M_rows_s": round(million, 3)})
    results["copulas_numeric"].append(copulas_numeric_row("credit_data", credit, 1_000 if args.quick else 5_000))
    if not args.quick:
        results["memory"].append(memory_row(10_000_000))
    results["machine"][0]["load_end"] = os.getloadavg()[0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "engine.json").write_text(json.dumps(results, indent=2) + "\n")
    for section, rows in results.items():
        if rows:
            print(f"\n### {section}\n{markdown(rows)}")
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")


if __name__ == "__main__":
    main()
