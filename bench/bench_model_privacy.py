"""What a saved model gives away, and what its privacy costs in fidelity.

    python bench/bench_model_privacy.py                      # all parts, this checkout's engine
    python bench/bench_model_privacy.py --before main~20     # reconstruction + fidelity of an older engine
    python bench/bench_model_privacy.py --smartnoise-python /path/to/venv/bin/python   # add SmartNoise MST / AIM

Parts (results merged into bench/results/model_privacy.json, one entry per engine label):
* reconstruction: per table, the share of distinct 1..10-value moving averages of each sorted numeric column that
  the model stores exactly, and the sorted-column rebuild from the 4 largest values (twin_pipeline_tests.attacks);
* differencing: the income of the top earner read by an attacker who knows every other row, over 40 fit seeds
  (median relative error, share of estimates within 2 %);
* fidelity (credit_data, credit_card and the tiny overdraft shape by default): SDMetrics QualityReport of a twin
  against the held-out half of a fixed 50/50 split (random_state 0),
  beside the ceiling (the real training half against the held-out half); default fit and DP at epsilon 0.5, 1,
  3, 10 (mean and standard deviation over 3 fit seeds), SmartNoise's MST/AIM on the same split when a Python
  with smartnoise-synth is given (it pins its own dependencies, so it lives in its own environment).
* ablation: DP at epsilon 1 on credit_data with one part at a time given an infinite budget (6 fit seeds).
The shared tables are read from $TWIN_SHARED_DATASETS (default ../shared/datasets), else the bundled samples.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "model_privacy.json"
EPSILONS = (0.5, 1.0, 3.0, 10.0)
INCOME = {"credit_data": "Income", "credit_card": "income", "lending_table": "annual_income"}
warnings.filterwarnings("ignore")


def use_engine(revision: str | None) -> str:
    """Import twin_pipeline from this checkout, or from `revision` extracted to a temporary folder."""
    sys.path.insert(0, str(ROOT))
    if revision is None:
        return "current"
    archive = subprocess.run(["git", "archive", revision, "twin_pipeline"], cwd=ROOT, capture_output=True, check=True)
    folder = Path(tempfile.mkdtemp(prefix="engine-"))
    tarfile.open(fileobj=BytesIO(archive.stdout)).extractall(folder)
    sys.path.insert(0, str(folder))
    return revision


def tables() -> dict[str, pd.DataFrame]:
    from twin_pipeline_tests.shapes import lending_table, mixed_table, narrow_table, overdraft_table

    shared = Path(os.environ.get("TWIN_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
    found = {}
    for name in ("credit_data", "credit_card"):
        path = shared / f"{name}.csv" if (shared / f"{name}.csv").exists() else ROOT / "twin_pipeline" / "samples" / f"{name}.csv"
        found[name] = pd.read_csv(path)
    found.update(overdraft_table=overdraft_table(), narrow_table=narrow_table(), lending_table=lending_table(),
                 mixed_table=mixed_table())
    return found


def fit(real: pd.DataFrame, seed: int = 0, epsilon: float | None = None):
    from twin_pipeline.engine import GaussianCopulaEngine

    engine = GaussianCopulaEngine(epsilon=epsilon) if epsilon is not None else GaussianCopulaEngine()
    try:
        return engine.fit(real, seed=seed)
    except TypeError:  # an engine from before seeded noise
        return engine.fit(real)


def as_json(model: dict) -> dict:
    return json.loads(json.dumps(model, default=lambda value: value.item()))


def reconstruction(data: dict[str, pd.DataFrame], epsilon: float | None = None) -> dict:
    from twin_pipeline_tests.attacks import moving_average_leaks, rebuild_sorted_column

    out = {}
    for name, real in data.items():
        model = as_json(fit(real, epsilon=epsilon).to_dict())
        leaks = moving_average_leaks(real, model)
        numeric = [spec["name"] for spec in model["columns"] if spec["kind"] in ("continuous", "integer")]
        rebuilt = [rebuild_sorted_column(real, model, column) for column in numeric]
        averages = sum(column["moving_averages"] for column in leaks.values())
        stored = sum(column["stored_exactly"] for column in leaks.values())
        out[name] = {"moving_averages": averages, "stored_exactly": stored,
                     "share_stored": round(stored / max(averages, 1), 6),
                     "columns_leaking": sorted(column for column, item in leaks.items() if item["stored_exactly"]),
                     "rebuild_recovered_exactly": sum(item["recovered_exactly"] for item in rebuilt),
                     "rebuild_values": sum(item["rebuilt"] for item in rebuilt)}
        print(f"  {name}: {stored} of {averages} moving averages stored, rebuild recovers "
              f"{out[name]['rebuild_recovered_exactly']} values", flush=True)
    return out


def differencing(data: dict[str, pd.DataFrame], seeds: int = 40) -> dict:
    from twin_pipeline_tests.attacks import differencing_error

    out = {}
    for name, column in INCOME.items():
        real = data[name]
        errors = np.array([differencing_error(real, column, lambda frame, s=seed: fit(frame, seed=s).to_dict())
                           ["relative_error"] for seed in range(seeds)])
        out[name] = {"column": column, "value": float(real[column].max()), "fits": seeds,
                     "median_relative_error": round(float(np.median(errors)), 4),
                     "smallest_relative_error": round(float(errors.min()), 4),
                     "share_within_2_percent": round(float((errors < 0.02).mean()), 4)}
        print(f"  {name}.{column}: {out[name]}", flush=True)
    return out


def sdmetrics_score(real: pd.DataFrame, synthetic: pd.DataFrame) -> float:
    sys.path.insert(1, str(ROOT / "bench"))
    from bench_engine import sdmetrics_score as score  # one definition of the score for every benchmark

    return score(real, synthetic[real.columns])


def split(real: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    shuffled = real.sample(frac=1.0, random_state=0).reset_index(drop=True)
    return shuffled.iloc[: len(shuffled) // 2], shuffled.iloc[len(shuffled) // 2:].reset_index(drop=True)


def fidelity(data: dict[str, pd.DataFrame], dp: bool, names: list[str], seeds: int = 3) -> dict:
    out = {}
    for name in names:
        train, holdout = split(data[name])
        entry = {"rows_train": len(train), "ceiling": sdmetrics_score(holdout, train)}
        settings = [None] + (list(EPSILONS) if dp else [])
        for epsilon in settings:
            scores = [sdmetrics_score(holdout, fit(train, seed=seed, epsilon=epsilon).sample(len(train), seed=seed))
                      for seed in range(seeds)]
            entry["default" if epsilon is None else f"epsilon_{epsilon:g}"] = {
                "mean": round(float(np.mean(scores)), 2), "sd": round(float(np.std(scores)), 2)}
        out[name] = entry
        print(f"  {name}: {entry}", flush=True)
    return out


def ablation(data: dict[str, pd.DataFrame], epsilon: float = 1.0, seeds: int = 6) -> dict:
    """Where the DP budget is lost on credit_data: each part (numeric marginals, categorical counts, correlation)
    in turn gets an effectively infinite budget (its rho x 1e9) while the rest keeps epsilon's."""
    from twin_pipeline.engine import dp

    train, holdout = split(data["credit_data"])
    parts = {"numeric marginals": "private_numeric", "categorical counts": "private_sliced",
             "correlation": "private_correlation"}
    out = {}
    for label, function in [("none", None), *parts.items()]:
        original = getattr(dp, function) if function else None
        if function:  # rho is the 4th positional argument of every part's query
            setattr(dp, function, lambda *args, f=original: f(*args[:3], args[3] * 1e9, *args[4:]))
        try:
            scores = [sdmetrics_score(holdout, fit(train, seed=seed, epsilon=epsilon).sample(len(train), seed=seed))
                      for seed in range(seeds)]
        finally:
            if function:
                setattr(dp, function, original)
        out[f"exact {label}"] = {"mean": round(float(np.mean(scores)), 2), "sd": round(float(np.std(scores)), 2)}
        print(f"  exact {label}: {out[f'exact {label}']}", flush=True)
    return out


SMARTNOISE_WORKER = """
import sys, time, warnings; warnings.filterwarnings("ignore")
import pandas as pd
from snsynth import Synthesizer
train, method, eps, out = pd.read_csv(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
categorical = [c for c in train.columns if not pd.api.types.is_numeric_dtype(train[c]) or train[c].nunique() <= 10]
continuous = [c for c in train.columns if c not in categorical]
started = time.time()
synth = Synthesizer.create(method, epsilon=eps, verbose=False)
synth.fit(train, preprocessor_eps=0.5 * eps, categorical_columns=categorical, continuous_columns=continuous, nullable=True)
synth.sample(len(train)).to_csv(out, index=False)
print(time.time() - started)
"""


def smartnoise(data: dict[str, pd.DataFrame], python: str, runs: list[tuple[str, str, float]], timeout: int) -> dict:
    """SmartNoise synthesizers on the same split, half of epsilon spent on its own bounds (it fails with less)."""
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, method, epsilon in runs:
            train, holdout = split(data[name])
            source, target = Path(folder) / "train.csv", Path(folder) / "twin.csv"
            train.to_csv(source, index=False)
            key = f"{name}/{method}/epsilon_{epsilon:g}"
            try:
                done = subprocess.run([python, "-c", SMARTNOISE_WORKER, str(source), method, str(epsilon), str(target)],
                                      capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                out[key] = {"failed": f"did not finish within {timeout} s"}
            else:
                if done.returncode:
                    out[key] = {"failed": done.stderr.strip().splitlines()[-1]}
                else:
                    twin = pd.read_csv(target)
                    out[key] = {"sdmetrics": sdmetrics_score(holdout, twin.astype(train.dtypes.to_dict(), errors="ignore")),
                                "fit_and_sample_s": round(float(done.stdout.split()[-1]), 1)}
            print(f"  {key}: {out[key]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="measure the engine of this git revision instead (no DP, no differencing)")
    parser.add_argument("--parts", default="reconstruction,differencing,fidelity,ablation,smartnoise")
    parser.add_argument("--fidelity-tables", default="credit_data,credit_card,overdraft_table")
    parser.add_argument("--smartnoise-python", help="a Python with smartnoise-synth installed")
    parser.add_argument("--smartnoise-runs", default="credit_data/mst/1,credit_data/mst/3,credit_card/mst/1,"
                                                     "credit_data/aim/1")
    parser.add_argument("--smartnoise-timeout", type=int, default=900)
    args = parser.parse_args()
    label = use_engine(args.before)
    parts = set(args.parts.split(","))
    data = tables()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    entry = results.setdefault(label, {})
    started = time.time()
    if "reconstruction" in parts:
        print("reconstruction (default fit)", flush=True)
        entry["reconstruction"] = reconstruction(data)
        if args.before is None:
            print("reconstruction (epsilon = 1)", flush=True)
            entry["reconstruction_dp_epsilon_1"] = reconstruction(data, epsilon=1.0)
    if "differencing" in parts and args.before is None:
        print("differencing", flush=True)
        entry["differencing"] = differencing(data)
    if "fidelity" in parts:
        print("fidelity", flush=True)
        entry.setdefault("fidelity", {}).update(fidelity(data, args.before is None, args.fidelity_tables.split(",")))
    if "ablation" in parts and args.before is None:
        print("ablation (credit_data, epsilon 1)", flush=True)
        entry["ablation_epsilon_1"] = ablation(data)
    if "smartnoise" in parts and args.smartnoise_python:
        print("smartnoise", flush=True)
        runs = [(name, method, float(epsilon)) for name, method, epsilon in
                (run.split("/") for run in args.smartnoise_runs.split(","))]
        entry["smartnoise"] = smartnoise(data, args.smartnoise_python, runs, args.smartnoise_timeout)
    entry["seconds"] = round(time.time() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
