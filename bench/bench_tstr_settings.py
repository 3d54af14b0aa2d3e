"""Is a cheaper TSTR model as informative? (issue #13: the reference's CPU in `twin clone`'s helper process)

TSTR's gap moves with the classifier's own seed (its early-stopping validation rows) even when the split and the
twin stay fixed; a change of model settings is a change of measurement only if it moves the gap by more than that.
For each table of bench_reference.py and each clone seed, the reference split and twin are made once, as
`twin clone` makes them (pipeline.reference_quality), then `utility.tstr` runs with the settings before and after
(`--before` / `--after`, JSON) for several classifier seeds. Saved per table and setting: the real and twin AUC
(or R^2) and the gap, mean and standard deviation over the classifier seeds, the gap's bootstrap interval width
and TSTR's CPU seconds.

    python bench/bench_tstr_settings.py              # bench/results/tstr_settings.json
    python bench/bench_tstr_settings.py --tables wide --clone-seeds 0 --model-seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_reference import TABLES  # noqa: E402

from twin_pipeline import pipeline  # noqa: E402
from twin_pipeline.options import CloneOptions, resolve_options  # noqa: E402
from twin_pipeline.quality import holdout, utility  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "tstr_settings.json"
BEFORE = {"max_iter": 100, "learning_rate": 0.1, "n_iter_no_change": 10}  # main 03ae065


def reference_split(real, seed: int) -> dict:
    """tstr's arguments exactly as reference_quality passes them for `twin clone --seed SEED`."""
    options, _ = resolve_options(real, CloneOptions(scale=10, seed=seed), "bench")
    options = pipeline.pin_quasi_identifiers(real, options)
    captured = {}

    def capture(train, twin, held_out, **keywords):
        captured.update(train=train, twin=twin, holdout=held_out, **keywords)
        return {"skipped": "captured"}

    measured, holdout.tstr = holdout.tstr, capture
    try:
        pipeline.reference_quality(real.drop(columns=pipeline.dropped_columns(real, options)), options)
    finally:
        holdout.tstr = measured
    return captured


def measure(split: dict, settings: dict, model_seeds: int) -> dict | None:
    base, runs = dict(utility.MODEL_SETTINGS), []
    try:
        for model_seed in range(model_seeds):
            utility.MODEL_SETTINGS = {**base, **settings, "random_state": model_seed}
            start = time.process_time()
            result = utility.tstr(**split)
            if "gap" not in result:
                return None
            runs.append([result["real"], result["twin"], result["gap"], result["gap_ci"][1] - result["gap_ci"][0],
                         time.process_time() - start])
    finally:
        utility.MODEL_SETTINGS = base
    runs = np.array(runs)
    summary = {name: {"mean": round(float(runs[:, i].mean()), 4), "sd": round(float(runs[:, i].std()), 4)}
               for i, name in enumerate(("real", "twin", "gap"))}
    return {**summary, "gap_range": [round(float(runs[:, 2].min()), 4), round(float(runs[:, 2].max()), 4)],
            "gap_ci_width": round(float(runs[:, 3].mean()), 4), "cpu_s": round(float(runs[:, 4].mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--clone-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--model-seeds", type=int, default=5)
    parser.add_argument("--before", type=json.loads, default=BEFORE)
    parser.add_argument("--after", type=json.loads, default={key: utility.MODEL_SETTINGS[key] for key in BEFORE})
    args = parser.parse_args()
    results = {}
    for name in args.tables:
        real = TABLES[name]()
        for seed in args.clone_seeds:
            split = reference_split(real, seed)
            row = {"before": measure(split, args.before, args.model_seeds),
                   "after": measure(split, args.after, args.model_seeds)}
            if row["before"] is None:
                continue
            row["gap_shift"] = round(row["after"]["gap"]["mean"] - row["before"]["gap"]["mean"], 4)
            results[f"{name} seed {seed}"] = row
            print(name, seed, json.dumps({"gap_shift": row["gap_shift"],
                                          "gap_sd_before": row["before"]["gap"]["sd"],
                                          "ci_width": row["before"]["gap_ci_width"],
                                          "real_before_after": [row["before"]["real"]["mean"], row["after"]["real"]["mean"]],
                                          "cpu_before_after": [row["before"]["cpu_s"], row["after"]["cpu_s"]]}), flush=True)
    RESULTS.write_text(json.dumps({"command": "python bench/bench_tstr_settings.py " + " ".join(sys.argv[1:]),
                                   "before": args.before, "after": args.after, "model_seeds": args.model_seeds,
                                   "load_average_1min": round(os.getloadavg()[0], 1), "tables": results},
                                  indent=1) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
