"""`twin clone` end to end: the protected twin, its model and both reports, with the guarantees recounted."""

import gc
import os
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from twin_pipeline.cli import main
from twin_pipeline_tests import shapes


@pytest.fixture(scope="module")
def cloned(tmp_path_factory, credit_data):
    folder = tmp_path_factory.mktemp("clone")
    source = folder / "loans.csv"
    credit_data.head(1500).to_csv(source, index=False)
    code = main(["clone", str(source), "--out", str(folder / "out"), "--scale", "2", "--seed", "7",
                 "--quasi-identifiers", "Age,Marital,Home,Job,Income"])
    return code, folder / "out", credit_data.head(1500)


def test_writes_the_twin_and_reports(cloned):
    code, out, real = cloned
    assert code == 0
    twin = pd.read_csv(out / "synthetic.csv")
    assert list(twin.columns) == list(real.columns) and abs(len(twin) - 3000) <= 30
    quality = json.loads((out / "quality_report.json").read_text())
    privacy = json.loads((out / "privacy_report.json").read_text())
    assert quality["similarity_score"] > 85 and quality["correlation_error"] < 0.1
    assert privacy["k"] >= 5 and privacy["exact_match_rate"] == 0
    assert "audit" not in privacy and not (out / "privacy_audit.json").exists()  # the audit is off the clone's path
    assert (out / "model.json").exists() and not list(out.glob("*.tmp"))
    assert gc.get_freeze_count() == 0  # a long-lived caller (twin serve, a Dagster worker) keeps no object for good


def test_k_anonymity_holds_when_recounted_and_no_row_is_a_copy(cloned):
    _, out, real = cloned
    twin = pd.read_csv(out / "synthetic.csv")
    qis = ["Age", "Marital", "Home", "Job", "Income"]
    assert twin.groupby(qis, dropna=False).size().min() >= 5
    assert not twin.merge(real.drop_duplicates(), how="inner", on=list(real.columns)).shape[0]


def test_same_seed_same_twin(cloned, tmp_path):
    _, out, real = cloned
    source = tmp_path / "loans.csv"
    real.to_csv(source, index=False)
    assert main(["clone", str(source), "--out", str(tmp_path / "again"), "--scale", "2", "--seed", "7",
                 "--quasi-identifiers", "Age,Marital,Home,Job,Income"]) == 0
    assert pd.read_csv(tmp_path / "again" / "synthetic.csv").equals(pd.read_csv(out / "synthetic.csv"))


def test_related_tables_keep_valid_foreign_keys(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(5)
    borrowers = pd.DataFrame({"borrower_id": range(1, 801), "income": rng.lognormal(10, 0.5, 800).round(2),
                              "region": rng.choice(["north", "south", "east"], 800)})
    counts = rng.poisson(1.5, 800)
    loans = pd.DataFrame({"loan_id": range(1, counts.sum() + 1),
                          "borrower_id": np.repeat(borrowers["borrower_id"], counts),
                          "amount": (np.repeat(borrowers["income"], counts) * rng.uniform(0.1, 0.4, counts.sum())).round(-2)})
    borrowers.to_csv(tmp_path / "borrowers.csv", index=False)
    loans.to_csv(tmp_path / "loans.csv", index=False)
    code = main(["clone", str(tmp_path / "borrowers.csv"), str(tmp_path / "loans.csv"), "--out", str(tmp_path / "out"),
                 "--primary-key", "borrowers.borrower_id", "--primary-key", "loans.loan_id",
                 "--foreign-key", "loans.borrower_id=borrowers.borrower_id", "--scale", "2"])
    assert code == 0
    twin_borrowers = pd.read_csv(tmp_path / "out" / "borrowers.csv")
    twin_loans = pd.read_csv(tmp_path / "out" / "loans.csv")
    assert twin_loans["borrower_id"].isin(twin_borrowers["borrower_id"]).all()
    assert twin_loans["loan_id"].is_unique and len(twin_borrowers) >= 0.99 * 1600
    report = json.loads((tmp_path / "out" / "quality_report.json").read_text())
    assert report["loans->borrowers"]["valid_foreign_keys"] == 1.0
    assert report["loans->borrowers"]["children_per_parent_ks"] <= 0.05
    assert report["loans"]["quality"]["similarity_score"] > 85


def test_related_tables_need_a_relationship(tmp_path, capsys):
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("x,y\n1,2\n3,4\n5,6\n")
    assert main(["clone", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "--foreign-key" in capsys.readouterr().err


def test_text_dates_and_rates_survive_protection_in_their_format(tmp_path):
    import numpy as np

    rng = np.random.default_rng(8)
    n = 2000
    real = pd.DataFrame({
        "application_date": (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")).strftime("%Y-%m-%d"),
        "int_rate": [f"{rate:.2f}%" for rate in rng.uniform(5, 25, n)],
        "age": rng.integers(21, 70, n), "marital_status": rng.choice(["single", "married", "divorced"], n),
    })
    real.to_csv(tmp_path / "apps.csv", index=False)
    assert main(["clone", str(tmp_path / "apps.csv"), "--out", str(tmp_path / "out")]) == 0
    twin = pd.read_csv(tmp_path / "out" / "synthetic.csv")
    assert twin["application_date"].str.fullmatch(r"20(20|21|22)-\d{2}-\d{2}").all()
    assert twin["int_rate"].str.fullmatch(r"\d{1,2}\.\d{2}%").all()
    assert twin.groupby(["age", "marital_status"]).size().min() >= 5


def test_a_rate_fixed_by_its_grade_is_cloned_with_the_grade_s_rate(tmp_path):
    """A rule writes every value of the rate column (nothing of it is left to model): the clone must not crash
    and each twin grade carries its real rate, at the real grade shares."""
    import numpy as np

    rng = np.random.default_rng(4)
    n = 800
    grade = rng.choice(list("ABCDE"), n, p=[0.3, 0.25, 0.2, 0.15, 0.1])
    rates = {"A": 5.5, "B": 7.25, "C": 9.9, "D": 13.1, "E": 17.0}
    real = pd.DataFrame({"grade": grade, "int_rate": pd.Series(grade).map(rates),
                         "loan_amount": np.round(rng.gamma(2, 5000, n), -2)})
    real.to_csv(tmp_path / "graded.csv", index=False)
    assert main(["clone", str(tmp_path / "graded.csv"), "--out", str(tmp_path / "out")]) == 0
    twin = pd.read_csv(tmp_path / "out" / "synthetic.csv")
    assert len(twin) == n
    assert (twin["int_rate"] == twin["grade"].map(rates)).all()
    shares = real["grade"].value_counts(normalize=True)
    assert (twin["grade"].value_counts(normalize=True).reindex(shares.index) - shares).abs().max() < 0.05


def test_declared_rules_file_is_kept_reported_and_summarised(tmp_path, capsys):
    from shapes import lending_table

    source = tmp_path / "loans.csv"  # the wide table's loan and payment columns: the rest costs time, not cover
    lending_table(n=1500)[["state", "homeownership", "annual_income", "total_credit_lines", "open_credit_lines",
                           "num_satisfactory_accounts", "loan_amount", "term", "grade", "loan_status", "paid_total",
                           "paid_principal", "paid_interest", "paid_late_fees"]].to_csv(source, index=False)
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [
        {"type": "formula", "name": "paid in full", "target": "paid_total",
         "expression": "paid_principal + paid_interest + paid_late_fees"},
        {"type": "inequality", "low": "num_satisfactory_accounts", "high": "open_credit_lines"}]}))
    assert main(["clone", str(source), "--out", str(tmp_path / "out"), "--rules", str(rules), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "rules:" in printed and "kept by construction" in printed and "DECLARED RULES BROKEN" not in printed
    section = json.loads((tmp_path / "out" / "quality_report.json").read_text())["rules"]
    declared = [entry for entry in section["rules"] if entry["source"] == "declared"]
    assert [entry["name"] for entry in declared] == ["paid in full", "rule 2"]
    assert all(entry["real"]["share"] == 1.0 and entry["twin"]["share"] == 1.0 for entry in declared)
    assert section["rounding"]["annual_income"]["steps"][0] == 100.0


def test_a_rules_file_contradicting_the_table_is_one_line_naming_the_rule(tmp_path, capsys):
    source = tmp_path / "loans.csv"
    pd.DataFrame({"a": range(100), "b": range(100, 0, -1)}).to_csv(source, index=False)
    rules = tmp_path / "rules.yaml"
    rules.write_text("- {type: inequality, low: a, high: b, name: a below b}\n")
    assert main(["clone", str(source), "--out", str(tmp_path / "out"), "--rules", str(rules)]) == 2
    error = capsys.readouterr().err.strip()
    assert "rules.yaml" in error and "a below b" in error and "contradicts the data" in error and "\n" not in error


def test_the_clone_writes_report_html_and_the_holdout_and_utility_figures(cloned):
    _, out, real = cloned
    quality = json.loads((out / "quality_report.json").read_text())
    assert 90 < quality["quality_vs_ceiling"] < 105 and 90 < quality["holdout"]["ceiling"] <= 100
    assert quality["holdout"]["twin_protected"]["protected"] and quality["holdout"]["n_holdout"] == 300
    assert quality["utility"]["target"] == "Status" and quality["utility"]["twin"] > 0.7
    page = (out / "report.html").read_text()
    assert all(f'alt="column {name}"' in page for name in real.columns)


def applicants(n: int = 400, seed: int = 2) -> pd.DataFrame:
    """A small table with two quasi-identifiers by name (age, region), a near miss (a ratio to income) and two
    plain columns."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(20, 70, n), "region": rng.choice(["north", "south", "east"], n),
                         "loan_amount": rng.lognormal(9, 0.4, n).round(-2), "defaulted": rng.integers(0, 2, n),
                         "loan_to_income": rng.uniform(0.1, 0.6, n).round(2)})


@pytest.mark.parametrize("given", [None, "age,region"])
def test_the_privacy_report_says_why_each_quasi_identifier_was_chosen(tmp_path, given):
    """Detected quasi-identifiers keep their detection reason (issue #11); only a user's list says 'given by the
    user'. Both say how to override the choice."""
    source = tmp_path / "applicants.csv"
    applicants().to_csv(source, index=False)
    flags = ["--quasi-identifiers", given] if given else []
    assert main(["clone", str(source), "--out", str(tmp_path / "out"), *flags]) == 0
    choice = json.loads((tmp_path / "out" / "privacy_report.json").read_text())["protection"]["quasi_identifier_choice"]
    assert list(choice["chosen"]) == ["age", "region"]
    if given:
        assert set(choice["chosen"].values()) == {"given by the user"} and choice["not_chosen"] == {}
    else:
        assert choice["chosen"] == {"age": "the word 'age' names age / birth date",
                                    "region": "the word 'region' names place (postcode, state, region)"}
        assert "ratio" in choice["not_chosen"]["loan_to_income"]
    assert "--quasi-identifiers" in choice["override"]


def test_whole_numbers_with_blanks_come_back_whole_in_the_twin_csv(tmp_path):
    """A column of whole numbers with empty cells was written "31.0" after protection: it stays "31" and ""."""
    from test_engine_columns import with_blanks

    with_blanks().to_csv(tmp_path / "real.csv", index=False)
    assert main(["clone", str(tmp_path / "real.csv"), "--out", str(tmp_path / "out")]) == 0
    twin = pd.read_csv(tmp_path / "out" / "synthetic.csv", dtype=str, keep_default_na=False)
    for name in ("years", "dependents"):
        assert twin[name].str.fullmatch(r"\d+|").all() and 0.1 < (twin[name] == "").mean() < 0.3


def test_the_summary_line_says_what_is_not_applicable(tmp_path, capsys):
    """A ledger with one amount and no quasi-identifier printed "correlation error nan, k = None"."""
    import numpy as np

    rng = np.random.default_rng(0)
    source = tmp_path / "ledger.csv"
    pd.DataFrame({"amount": np.round(rng.lognormal(5, 1, 400), 2),
                  "channel": rng.choice(["web", "branch", "app"], 400)}).to_csv(source, index=False)
    assert main(["clone", str(source), "--out", str(tmp_path / "out")]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("twin of"))
    assert "correlation error n/a (under two numeric columns)" in line and "k = n/a (no quasi-identifiers)" in line


def test_tail_risk_covers_amounts_written_as_text(tmp_path):
    """An export's amounts are text ("$1,234.56", "13.5%"): the tail report left them out and said
    "fewer than two continuous columns" for a table of four correlated amounts."""
    import numpy as np

    rng = np.random.default_rng(3)
    base = rng.lognormal(9, 0.8, 800)
    source = tmp_path / "invoices.csv"
    pd.DataFrame({"Amount": [f"{a:,.2f}" for a in base], "Fee": [f"${a * rng.uniform(0.01, 0.03):,.2f}" for a in base],
                  "Rate": [f"{r:.1f}%" for r in rng.uniform(3, 20, 800)]}).to_csv(source, index=False)
    assert main(["clone", str(source), "--out", str(tmp_path / "out")]) == 0
    pairs = json.loads((tmp_path / "out" / "quality_report.json").read_text())["tail_risk"]["pairs"]
    assert {"Amount", "Fee"} in [set(pair["columns"]) for pair in pairs]


def test_the_command_as_a_process_finishes_its_outputs_and_exit_code(tmp_path):
    """`twin clone` as a process skips the interpreter's teardown when it succeeds (cli.run): its last line is
    printed, its files are whole, and a failure still exits with its code. Neither leaves a helper process behind:
    one would hold the output pipes open and the run would time out."""
    source = tmp_path / "overdraft.csv"
    shapes.overdraft_table().to_csv(source, index=False)
    command = [sys.executable, "-m", "twin_pipeline.cli", "clone"]
    done = subprocess.run(command + [str(source), "--out", str(tmp_path / "out"), "--scale", "2"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1].split()[0] == "report"  # the summary's last line, flushed
    assert len(pd.read_csv(tmp_path / "out" / "synthetic.csv")) == 900
    assert json.loads((tmp_path / "out" / "clone.json").read_text())["options"]
    failed = subprocess.run(command + [str(tmp_path / "missing.csv"), "--out", str(tmp_path / "none")],
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and "file not found" in failed.stderr


def test_the_command_loads_openblas_with_one_thread_and_arrow_on_malloc():
    """`twin` (cli.run) loads numpy's and SciPy's OpenBLAS with one thread (a worker thread per core spins as the
    library loads, taking CPU from the clone's other process) and gives Arrow the C library's malloc (its default
    pool's set-up is 0.2 s of system time). A user's own settings win."""
    script = ("import sys\nfrom twin_pipeline import cli\nsys.argv = ['twin', '--help']\ntry:\n    cli.run()\n"
              "except SystemExit:\n    pass\nimport numpy, scipy.linalg, pyarrow\nfrom threadpoolctl import threadpool_info\n"
              "print(sorted(i['num_threads'] for i in threadpool_info() if i['internal_api'] == 'openblas'),"
              " pyarrow.default_memory_pool().backend_name)")
    given = {"OPENBLAS_NUM_THREADS": "2", "ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}
    environment = {name: value for name, value in os.environ.items() if name not in given}
    for settings, expected in (({}, "[1, 1] system"), (given, "[2, 2] jemalloc")):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                              env={**environment, **settings})
        assert done.stdout.strip().splitlines()[-1] == expected, done.stderr


@pytest.mark.skipif(not hasattr(os, "confstr") or "glibc" not in (os.confstr("CS_GNU_LIBC_VERSION") or ""),
                    reason="glibc's malloc")
def test_a_clone_process_reuses_the_memory_it_frees():
    """`twin clone` keeps what it frees for its next arrays (cli._keep_freed_memory): a 64 MB array freed and made
    again faults no fresh pages in (page faults cost most while the helper process keeps the other core busy).
    A user's own malloc settings are left alone."""
    script = ("import sys, resource, numpy\nfrom twin_pipeline import cli\ncli._keep_freed_memory()\n"
              "numpy.ones(8 << 20).sum()\nbefore = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
              "kept = numpy.ones(8 << 20)\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)")
    environment = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    faults = {}
    for label, settings in (("ours", {}), ("user's", {"MALLOC_TRIM_THRESHOLD_": "131072"})):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                              env={**environment, **settings, "NUMPY_MADVISE_HUGEPAGE": "0"})
        faults[label] = int(done.stdout.split()[-1])
    assert faults["ours"] < 1000 < 10_000 < faults["user's"], faults


@pytest.mark.parametrize("columns", [
    {"a": [None] * 300, "b": [None] * 300},  # an export whose every cell is blank
    {"customer_id": [f"C{100000 + i}" for i in range(300)]},  # keys alone
    {"email": [f"user{i}@example.com" for i in range(300)]},  # a direct identifier alone (dropped, or fresh)
])
@pytest.mark.parametrize("flags", [[], ["--drop-identifiers"]])
def test_a_table_with_nothing_to_model_is_one_line_naming_the_file(tmp_path, capsys, columns, flags):
    source = tmp_path / "contacts.csv"
    pd.DataFrame(columns).to_csv(source, index=False)
    assert main(["clone", str(source), "--out", str(tmp_path / "out"), *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("twin: error:") and "contacts.csv" in error and "nothing to model" in error
    assert "\n" not in error and not (tmp_path / "out" / "synthetic.csv").exists()


def test_the_clone_s_main_process_imports_neither_scipy_stats_scikit_learn_nor_dagster(tmp_path):
    """Whatever the main process imports, every clone pays before it reads its table: scipy.stats (a third of a
    second) and scikit-learn belong to the helper's holdout reference (a forked process: its imports are not in
    the main process's sys.modules), matplotlib to whichever process draws a picture first, Dagster to the
    pipeline's definitions."""
    rng = np.random.default_rng(5)
    income = np.round(rng.lognormal(10.5, 0.5, 1200), 2)
    source = tmp_path / "loans.csv"
    pd.DataFrame({"income": income, "amount": np.round(income * rng.uniform(0.1, 0.9, 1200), 2),  # amount <= income
                  "rate": np.round(rng.gamma(4.0, 2.0, 1200), 2), "age": rng.integers(21, 70, 1200),
                  "grade": rng.choice(list("ABCD"), 1200), "default": (rng.random(1200) < 0.1).astype(int)}
                 ).to_csv(source, index=False)
    script = ("import json, sys\n"
              "from twin_pipeline import cli, pipeline\n"
              "from twin_pipeline.report import html\n"
              "heavy = ('scipy.stats', 'sklearn', 'matplotlib', 'dagster')\n"
              "loaded = [name for name in heavy if name in sys.modules]\n"
              "code = cli.main(['clone', sys.argv[1], '--out', sys.argv[2]])\n"
              "print(json.dumps([loaded, [name for name in heavy if name in sys.modules], code]))\n")
    done = subprocess.run([sys.executable, "-c", script, str(source), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    imported, after_clone, code = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 0 and imported == []
    assert not {"scipy.stats", "sklearn", "dagster"} & set(after_clone)
    model = json.loads((tmp_path / "out" / "model.json").read_text())
    assert any(variable["marginal"].get("p_value") is not None for variable in model["variables"])  # a KS test ran
