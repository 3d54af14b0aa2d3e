"""The newcomer path: folders that exist before the first upload, a rejected file visible in the UI and in
`twin status`, `twin --help` listing every subcommand, and `twin demo` saying what it does as it does it."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from twin_pipeline.cli import main
from twin_pipeline.defs import demo
from twin_pipeline.defs.rejected import rejected_uploads
from twin_pipeline.defs.resources import TwinStorage


def test_a_sensor_tick_creates_the_folders_and_a_rejected_file_is_observed_and_named(landing):
    shutil.rmtree(landing.storage.root)  # a fresh data directory: nothing there yet
    assert landing.tick().skip_reason  # the first tick makes the folders even with nothing to do
    assert all((landing.storage.root / name).is_dir() for name in ("landing", "rejected", "portfolios"))
    landing.drop("scan.csv", bytes(range(256)) * 40)
    landing.tick()
    result = landing.tick()
    [event] = result.asset_events
    assert event.asset_key == rejected_uploads.key and event.metadata["file"].value == "scan.csv"
    assert "binary" in event.metadata["reason"].value
    assert event.metadata["moved_to"].value == str(landing.storage.rejected / "scan.csv")
    assert "rejected scan.csv: looks like a binary file" in result.skip_reason.skip_message  # the tick's line in the UI


def test_twin_status_lists_portfolios_waiting_files_and_rejections_with_their_reason(tmp_path, capsys):
    storage = TwinStorage(data_dir=str(tmp_path))
    storage.ensure_folders()
    folder = storage.portfolio_dir("loans-abc123")
    folder.mkdir()
    (folder / "quality_report.json").write_text(json.dumps({"similarity_score": 96.523, "quality_vs_ceiling": 98.04}))
    (storage.landing / "next.csv").write_text("a,b\n1,2\n")
    (storage.rejected / "scan.csv").write_bytes(b"\x00")
    (storage.rejected / "scan.csv.reason.txt").write_text("20261203T080000Z rejected scan.csv: is a binary file\n")
    assert main(["status", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "loans-abc123" in out and "similarity 96.5, 98.0 % of the holdout ceiling" in out
    assert "landing/ (1 waiting): next.csv" in out
    assert "scan.csv" in out and "20261203T080000Z  is a binary file" in out


def test_twin_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("twin clone", "twin demo", "twin status", "twin audit verify", "twin audit show"):
        assert command in out


def test_the_command_line_loads_no_engine_until_a_command_needs_it_and_the_package_still_exports_its_api():
    # `twin --help` (and parsing any command's flags) must not wait for pandas, SciPy or matplotlib.
    probe = ("import sys, twin_pipeline.cli; heavy = sorted(m for m in ('pandas', 'scipy', 'matplotlib', "
             "'sklearn', 'twin_pipeline.engine') if m in sys.modules); print(heavy); "
             "from twin_pipeline import DigitalTwinCloner, GaussianCopulaEngine, enforce_k_anonymity; "
             "import twin_pipeline; print(DigitalTwinCloner.__name__, GaussianCopulaEngine.__name__, "
             "enforce_k_anonymity.__name__, sorted(set(twin_pipeline.__all__) & set(dir(twin_pipeline))))")
    lines = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines[0] == "[]"
    assert lines[1] == ("DigitalTwinCloner GaussianCopulaEngine enforce_k_anonymity "
                        "['DigitalTwinCloner', 'GaussianCopulaEngine', 'enforce_k_anonymity']")
    import twin_pipeline

    with pytest.raises(AttributeError):
        twin_pipeline.no_such_name  # noqa: B018


def test_the_notebook_comparison_does_not_score_fresh_e_mail_addresses(tmp_path):
    """A twin's e-mails are fresh by design; scored as a category (match 0) they took a mortgage twin from 96 to 86."""
    from twin_pipeline import DigitalTwinCloner

    rng = np.random.default_rng(0)
    real = pd.DataFrame({"amount": np.round(rng.lognormal(11, 0.5, 600), -2), "grade": rng.choice(list("ABC"), 600),
                         "email": [f"user{rng.integers(450)}@example.com" for _ in range(600)]})  # some borrowers twice
    cloner = DigitalTwinCloner(tmp_path)
    twin = cloner.generate(cloner.train(real)[0], 600, seed=1)
    assert not twin["email"].isin(real["email"]).any()
    comparison = cloner.get_comparison(real, twin)
    assert comparison["column_types"]["email"] == "excluded" and comparison["similarity_score"] > 90


def test_the_notebook_api_reads_a_pandas_frame_as_the_cli_reads_the_file(tmp_path):
    """A ledger export read with `pd.read_csv` keeps its TOTAL row and its "-" placeholders: the notebook's twin
    modelled the totals (amounts to 600 times the median) and made the dashed balance a category of rare values."""
    from twin_pipeline import DigitalTwinCloner

    rng = np.random.default_rng(4)
    amount, balance = np.round(rng.lognormal(7, 0.6, 800), 2), np.round(rng.lognormal(8, 1, 800), 2)
    rows = pd.DataFrame({"account": rng.choice(["cash", "loans", "fees"], 800), "amount": amount,
                         "balance": np.where(rng.random(800) < 0.1, "-", balance.astype(str))})
    rows.loc[len(rows)] = ["TOTAL", amount.sum(), "-"]
    rows.to_csv(tmp_path / "ledger.csv", index=False)
    real = pd.read_csv(tmp_path / "ledger.csv")
    cloner = DigitalTwinCloner(tmp_path)
    model_id, metadata = cloner.train(real)
    assert metadata["n_rows"] == 800 and metadata["column_kinds"]["balance"] == "continuous"
    twin = cloner.generate(model_id, 4000, seed=1)
    assert "TOTAL" not in set(twin["account"]) and twin["amount"].max() < 20 * np.median(amount)
    assert twin["balance"].isna().mean() == pytest.approx(0.1, abs=0.03)


@pytest.mark.parametrize("command", [["clone"], ["demo"], ["status"], ["serve"], ["audit", "privacy"],
                                     ["audit", "verify"], ["audit", "show"]])
def test_every_subcommand_prints_its_help(command, capsys):
    """argparse expands % in help texts: one stray "%" made `twin clone --help` a TypeError."""
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0 and "usage: twin" in capsys.readouterr().out


@pytest.mark.slow  # a whole clone with the attacker audit through the CLI; CI also runs `twin demo` itself
def test_twin_demo_prints_each_stage_and_the_total_and_creates_the_folders(tmp_path, credit_data, monkeypatch,
                                                                           capsys):
    sample = tmp_path / "sample.csv"
    credit_data.head(600).to_csv(sample, index=False)
    run = demo.run_demo
    monkeypatch.setattr(demo, "run_demo", lambda folder, progress=None: run(folder, sample=sample, progress=progress))
    assert main(["demo", "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert all((tmp_path / "data" / name).is_dir() for name in ("landing", "rejected", "portfolios"))
    for step in ("raw_upload", "fitted_marginals", "k_anonymized_output", "quality_report"):
        assert f"... {step}" in out and f"ok  {step} (" in out
    assert out.index("... raw_upload") < out.index("ok  quality_report")
    assert "check k_anonymity_at_least_k: passed" in out and "done in " in out and "report.html" in out
