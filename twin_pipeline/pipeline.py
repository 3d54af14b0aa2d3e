"""The clone pipeline as plain functions: fit, sample, protect, report.

The `twin clone` command and the Dagster assets call these same functions in the same order, so the command
line and the orchestrated pipeline cannot drift apart.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import pandas as pd

from . import publish
from .engine import GaussianCopulaEngine
from .engine.keys import is_key
from .errors import TwinError, TwinInputError
from .options import CloneOptions, resolve_options
from .protection import protect
from .shards import QUALITY_SAMPLE_ROWS, make_shards, merge_shards, recount_database, sample_shards, verify_shards
from .sharing import SharedTasks
from .tables import read_table, sha256_file, write_json

log = logging.getLogger(__name__)

PARQUET_FROM_ROWS = 1_000_000  # larger twins are written as Parquet unless a format is asked for
CLONE_RECORD = "clone.json"  # beside a twin: the real table's path and SHA-256 and the options, for a later audit
AUDIT_FILE = "privacy_audit.json"
AUDIT_MAX_SUPPRESSION = 0.05  # the largest share of rows the audit's refit may suppress (its twin is not published)


def check_disk_space(folder: Path, rows: int, bytes_per_row: float, source) -> None:
    """Refuse a twin that cannot fit on the disk of `folder` (estimated from the input's bytes per row, x2 for
    the shards beside the merged file), before any shard is written."""
    folder = Path(folder)
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    needed, free = 2 * rows * max(bytes_per_row, 1.0), shutil.disk_usage(existing).free
    if needed > free:
        raise TwinInputError(source, f"a twin of {rows:,} rows needs about {needed / 2**30:,.1f} GiB; "
                                     f"{existing} has {free / 2**30:,.1f} GiB free")


def direct_identifiers(real: pd.DataFrame, options: CloneOptions, known: dict[str, dict] | None = None
                       ) -> dict[str, dict]:
    """Columns that name a person by themselves (SSN, e-mail, ...); a column whose kind the user set is theirs.

    Fitting, protecting, verifying and reporting each ask about the same table: the answer is kept while the
    frame lives (the pipeline never changes a real table in place), so the scan runs once per table. `known`:
    the answer found on a table this one is rows of, taken instead of a scan (`reference_quality`)."""
    from .privacy.identifiers import detect_direct_identifiers

    return dict(_per_table(real, options, "identifiers", lambda: (
        {name: found for name, found in known.items() if name in real.columns} if known is not None
        else detect_direct_identifiers(real, primary_key=options.primary_key, exclude=list(options.column_kinds)))))


def _per_table(real: pd.DataFrame, options: CloneOptions, what: str, find):
    """`find()`, found once per real table and kept while the frame lives (see `direct_identifiers`)."""
    key = (what, id(real), tuple(real.columns), real.shape, options.primary_key, tuple(options.column_kinds))
    if key not in _PER_TABLE:
        _PER_TABLE[key] = find()
        weakref.finalize(real, _PER_TABLE.pop, key, None)  # an id is reused only after its frame is gone
    return _PER_TABLE[key]


_PER_TABLE: dict[tuple, object] = {}


def dropped_columns(real: pd.DataFrame, options: CloneOptions) -> list[str]:
    """The columns a twin leaves out: the direct identifiers, with `drop_identifiers`; none otherwise."""
    return list(direct_identifiers(real, options)) if options.drop_identifiers else []


def pin_quasi_identifiers(real: pd.DataFrame, options: CloneOptions) -> CloneOptions:
    """The options with their quasi-identifiers fixed once for every shard: the user's list as given, else those
    detected on the real table as {column: why chosen}, so the privacy report says which they were."""
    from .privacy import choose_quasi_identifiers

    if options.quasi_identifiers:
        return options
    return replace(options, quasi_identifiers=choose_quasi_identifiers(real, primary_key=options.primary_key)["chosen"])


def fit_model(real: pd.DataFrame, options: CloneOptions) -> GaussianCopulaEngine:
    """The engine, fitted without direct identifiers: they are dropped (`drop_identifiers`) or become identifier
    columns that mint fresh values of their format (the model keeps the format, never a value)."""
    from .privacy.identifiers import identifier_format

    started = time.perf_counter()
    identifiers, all_columns = direct_identifiers(real, options), list(real.columns)
    kinds = dict(options.column_kinds)
    if options.drop_identifiers:
        real = real.drop(columns=dropped_columns(real, options))
    else:
        kinds = {**{name: "identifier" for name in identifiers}, **kinds}
    if not any(name != options.primary_key and name not in identifiers and real[name].notna().any()
               and (name in options.column_kinds or not is_key(real[name])) for name in real.columns):
        # A twin of fresh keys alone says nothing of the table, and its checks would fail on what is not there
        raise TwinInputError(None, "nothing to model: every column is empty, a key or a direct identifier "
                                   f"({', '.join(map(str, all_columns))}); add the columns that describe the rows")
    engine = GaussianCopulaEngine(k=options.k, rules=options.rules, epsilon=options.epsilon).fit(
        real, primary_key=options.primary_key, column_kinds=kinds or None, seed=options.seed)
    for spec in engine.specs:
        if spec.name in identifiers and not options.drop_identifiers:
            spec.id_pattern = {**identifier_format(real[spec.name], identifiers[spec.name]["kind"], options.k),
                               "why": identifiers[spec.name]["why"]}
    log.info("fitted %d columns on %d rows in %.2f s", len(real.columns), len(real), time.perf_counter() - started)
    return engine


def privacy_audit(real: pd.DataFrame, options: CloneOptions, holdout_share: float = 0.2) -> dict:
    """Risk as an attacker would measure it, within `options.audit_budget` seconds: refit the same pipeline
    (fit, sample, protect) on a training share of the rows and attack its twin, with the held-out rows as the
    control set (privacy.risk.audit_generator). Not part of making the twin: `twin clone --audit`,
    `twin audit privacy DIR` and the `privacy_audit` asset run it after the product exists."""
    from .privacy import audit_generator

    # The refit's twin is never published: its 80 % share may need a few more suppressed rows than the product's
    # cap allows (small tables), and failing the audit for that would hide the risk it is there to measure.
    refit = replace(options, max_suppression=max(options.max_suppression, AUDIT_MAX_SUPPRESSION))

    def generate(train: pd.DataFrame) -> pd.DataFrame:
        engine = fit_model(train, refit)
        return protect(engine.sample(len(train), seed=refit.seed), train, engine, refit)[0]

    try:
        audit = audit_generator(real, generate, quasi_identifiers=options.quasi_identifiers, secrets=options.secrets,
                                budget_seconds=options.audit_budget, holdout_share=holdout_share,
                                seed=options.seed or 0,
                                ignore_columns=key_columns(real, options))
    except TwinError as error:  # the training share cannot be made k-anonymous or copy-free within the limits
        return {"status": "skipped",
                "skipped": f"the refit on the training share could not make a twin: {error.problem}"}
    audit.setdefault("method", {})["refit_max_suppression"] = refit.max_suppression
    return {"status": "skipped" if "skipped" in audit else "completed", **audit}


def reference_quality(real: pd.DataFrame, options: CloneOptions, identifiers: dict[str, dict] | None = None) -> dict:
    """The holdout ceiling and TSTR utility (quality.holdout): a twin of 80 % of the rows, made like the product,
    scored against the 20 % held out; `quality_vs_ceiling` is 100 when it is as close as real rows are.

    Which columns are direct identifiers is decided once, on the whole table, as the product decides it (and
    `identifiers`, the caller's `direct_identifiers` of it, spares the scan): the training share's twin treats
    them alike. It is a judgement about what a column is (an SSN, an e-mail), not a statistic the held-out rows
    could lend the twin, and the reference scores no identifier column."""
    from .quality.holdout import holdout_evaluation

    made = {"protected": True}
    identifiers = direct_identifiers(real, options, identifiers)

    def make_twin(train: pd.DataFrame, rows: int) -> pd.DataFrame:
        direct_identifiers(train, options, identifiers)
        engine = fit_model(train, options)
        twin = engine.sample(rows, seed=options.seed)
        try:
            return protect(twin, train, engine, options)[0]
        except TwinError as error:  # a share can be too small to anonymise within the caps
            made.update(protected=False, why=error.problem)
            return twin

    started = time.perf_counter()
    evaluation = holdout_evaluation(real, make_twin, primary_key=options.primary_key,
                                    column_kinds=scored_kinds(real, options), target=options.target,
                                    seed=options.seed or 0)
    holdout = evaluation["holdout"]
    if "skipped" not in holdout:
        holdout["twin_protected"] = made
        holdout["seconds"] = time.perf_counter() - started
    return {"quality_vs_ceiling": holdout.get("quality_vs_ceiling"), "holdout": holdout,
            "utility": evaluation["utility"]}


def report(real: pd.DataFrame, protected: pd.DataFrame, engine: GaussianCopulaEngine, options: CloneOptions,
           protection: dict, verified: dict, comparison=None) -> tuple[dict, dict]:
    """Quality of the protected twin against the real table, and its privacy figures beside it (k, copies, distance
    to the closest record); the attacker audit is `privacy_audit`, off this path. `protected` is a sample of the
    twin whose rows, k and copies `verified` counted over all of it (shards.verify_shards): they are reported,
    not counted again on the sample. The holdout reference is the caller's to add (`reference_quality`): it
    needs only the real table, so `clone_file` runs it in another process from the start. `comparison`: the
    quality metrics' view of the same two tables, when the pictures already built it (`report_figures`)."""
    from .privacy import privacy_report
    from .quality import quality_report
    from .quality.tails import tail_columns, tail_report

    identifiers = direct_identifiers(real, options)
    ignore = [name for name in key_columns(real, options) if name in protected.columns]
    real = comparable(real, protected)
    quality = (comparison.report() if comparison is not None
               else quality_report(real, protected, primary_key=options.primary_key,
                                   column_kinds=scored_kinds(real, options)))
    typed_real = engine.typed_view(real)  # "$1,200" is a number too; of the twin, only the columns it can read
    read = [name for name in tail_columns(typed_real, options.primary_key) if name in protected.columns]
    quality["tail_risk"] = tail_report(typed_real, engine.typed_view(protected[read]), primary_key=options.primary_key,
                                       columns=engine.tails.get("columns") if engine.tails["copula"] != "gaussian" else None)
    quality["marginals"] = engine.describe()
    quality["copula"] = engine.tails
    quality["rules"] = engine.rules_report(real, protected)
    privacy = privacy_report(protected, real, quasi_identifiers=protection["quasi_identifiers"], k=options.k,
                             anonymity=protection["k_anonymity"], ignore_columns=ignore, recounted=verified)
    privacy["protection"] = protection
    privacy["model"] = engine.privacy  # the fit's noise: differencing noise, or the DP budget and its split
    action = ("dropped (drop_identifiers)" if options.drop_identifiers
              else "replaced by fresh values of the same format, never a real one")
    privacy["direct_identifiers"] = {name: {**found, "action": action} for name, found in identifiers.items()}
    return quality, with_recount(privacy, verified, options.k)


def scored_kinds(real: pd.DataFrame, options: CloneOptions) -> dict[str, str] | None:
    """The column kinds the quality report, its pictures and the holdout reference read a twin with: the kinds
    the user gave, and direct identifiers, which carry no statistics (scored as categories in the reference, a
    card extract's fresh masked cards put its twin 5 points under the ceiling)."""
    return {**options.column_kinds,
            **{name: "identifier" for name in direct_identifiers(real, options) if name in real.columns}} or None


def key_columns(real: pd.DataFrame, options: CloneOptions) -> list[str]:
    """Columns never compared as data: the primary key, the direct identifiers (fresh or dropped) and any other
    key (engine.keys.is_key: a loan_id not named as the primary key is minted afresh too). Found once per
    table: a clone's recount and its reports ask alike (0.01 CPU s on the wide table)."""
    def find() -> list[str]:
        named = ([options.primary_key] if options.primary_key else []) + list(direct_identifiers(real, options))
        return named + [name for name in real.columns if name not in named and is_key(real[name])]
    return list(_per_table(real, options, "keys", find))


def comparable(real: pd.DataFrame, twin: pd.DataFrame) -> pd.DataFrame:
    """The real table on the twin's columns: identifiers dropped from the twin are compared and shown nowhere.
    The table itself when the twin has all its columns (a copy would be a new frame to `direct_identifiers`,
    scanned again: 0.05-0.2 s per report)."""
    shown = [name for name in real.columns if name in twin.columns]
    return real if len(shown) == real.shape[1] else real[shown]


def report_figures(real: pd.DataFrame, twin: pd.DataFrame, options: CloneOptions,
                   helper: ProcessPoolExecutor | None = None, image_format: str = "svg", after: Future | None = None):
    """The real-vs-twin pictures of report.html, begun now (report.html.Drawing) and shared with `helper` when
    given, once it has finished `after`: they need only the tables, so a helper draws them while `report` runs;
    `.finish(quality)` with its quality report completes them."""
    from .report.html import Drawing

    real = comparable(real, twin)
    return Drawing(real, twin, options.primary_key, scored_kinds(real, options), helper, image_format, after)


def report_page(path: Path, real: pd.DataFrame, twin: pd.DataFrame, quality: dict, privacy: dict,
                options: CloneOptions, title: str = "", figures=None, image_format: str = "svg"):
    """report.html beside the twin: the reports' figures and real-vs-twin pictures in one self-contained page.
    Returns its path and the figures (drawn here unless given, see `report_figures`), which the Dagster asset
    page reuses."""
    from .report import write_report

    figures = figures or report_figures(real, twin, options, image_format=image_format).finish(quality)
    return write_report(path, comparable(real, twin), twin, quality, privacy, title=title, figures=figures)


def _ceiling_note(quality: dict) -> str:
    """'98.0 % of the holdout ceiling, TSTR AUC gap 0.01' (or why either was not measured)."""
    holdout, utility = quality.get("holdout") or {}, quality.get("utility") or {}
    parts = [f"{quality['quality_vs_ceiling']:.1f} % of the holdout ceiling" if quality.get("quality_vs_ceiling")
             else f"no holdout ceiling ({holdout.get('skipped')})"]
    parts.append(f"TSTR {utility['metric'].upper()} real {utility['real']:.3f} / twin {utility['twin']:.3f} "
                 f"on {utility['target']}" if "gap" in utility else f"no TSTR ({utility.get('skipped')})")
    return ", ".join(parts)


def audit_to_file(real: pd.DataFrame, options: CloneOptions, out_dir: Path) -> dict:
    """Run `privacy_audit` and write it to `out_dir/privacy_audit.json`, whatever happens: an audit that fails
    is recorded as failed (with its error) beside a twin that stays valid."""
    try:
        audit = privacy_audit(real, options)
    except Exception as error:  # noqa: BLE001 - the audit must never take the product down with it
        log.exception("the privacy audit failed")
        audit = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    write_json(audit, Path(out_dir) / AUDIT_FILE)
    return audit


def audit_summary(audit: dict) -> str:
    """One line for a terminal or a log: what the audit found, or why it did not run."""
    if audit.get("status") != "completed":
        return f"privacy audit {audit.get('status', 'skipped')}: {audit.get('error') or audit.get('skipped')}"
    from .privacy.risk import risk_figures

    figures = [f"{name} {figure['risk']:+.2f}" for name, figure in risk_figures(audit).items()]
    budget = audit["budget"]
    flagged = ", ".join(audit["flagged"]) or "nothing"
    return (f"privacy audit in {budget['elapsed']:.1f} s of {budget['seconds']:g} s"
            f"{' (truncated: ' + ', '.join(budget['not_run']) + ' not run)' if budget['truncated'] else ''}: "
            f"{'; '.join(figures)}; flagged: {flagged}")


def audit_clone_dir(out_dir: str | Path, real_path: str | Path | None = None, budget: float | None = None,
                    secrets: list[str] | None = None) -> dict:
    """`twin audit privacy DIR`: audit the clone in `out_dir` against its real table (`real_path`, else the
    path recorded in DIR/clone.json), with the clone's own options; writes DIR/privacy_audit.json."""
    out_dir = Path(out_dir)
    record_path = out_dir / CLONE_RECORD
    if not record_path.is_file():
        raise TwinInputError(out_dir, f"has no {CLONE_RECORD}: not the output folder of 'twin clone'")
    record = json.loads(record_path.read_text())
    source = Path(real_path or record["source"])
    if not source.is_file():
        raise TwinInputError(source, "the real table is not there (give it with --real FILE)")
    if sha256_file(source) != record["sha256"]:
        raise TwinInputError(source, f"is not the table this twin was cloned from (its SHA-256 differs from "
                                     f"{record_path})")
    options = CloneOptions.from_dict(record["options"])
    options = replace(options, audit_budget=options.audit_budget if budget is None else budget,
                      secrets=options.secrets if secrets is None else secrets)
    real = read_table(source)
    options, _ = resolve_options(real, options, source)
    return audit_to_file(real, options, out_dir)


def combine_protection(results: list[dict]) -> dict:
    """One protection summary for a twin made of shards: counts add up, shares are weighted by rows, the largest
    share shift is the largest of any shard, and the rules are the same in each."""
    first = results[0]["protection"]
    total = lambda pick: sum(pick(item["protection"]) or 0 for item in results)  # noqa: E731
    rows = total(lambda p: p["rows"]["returned"])
    anonymity = dict(first["k_anonymity"])
    anonymity.update(records_suppressed=total(lambda p: p["k_anonymity"]["records_suppressed"]),
                     initial_k=min(item["protection"]["k_anonymity"]["initial_k"] for item in results),
                     shards=len(results), transformations_note="transformations_applied are those of shard 0")
    copies = {key: total(lambda p, key=key: p["exact_copies"].get(key)) for key, value in first["exact_copies"].items()
              if isinstance(value, int) and not isinstance(value, bool)}
    copies.update(
        {key: first["exact_copies"][key] for key in ("rule", "columns_compared", "replacements_calibrated_on",
                                                     "natural_identical_match_share")},
        identical_match_share=total(lambda p: p["exact_copies"]["identical_match_share"] * p["rows"]["returned"])
        / max(rows, 1),
        share_shift=max((item["protection"]["exact_copies"]["share_shift"] for item in results),
                        key=lambda shift: shift["largest_share_change"]))
    return {"quasi_identifiers": first["quasi_identifiers"], "k_anonymity": anonymity,
            "quasi_identifier_choice": first["quasi_identifier_choice"],
            "rare_strings": first["rare_strings"] if len(results) == 1 else {"shards": len(results)},
            "exact_copies": copies, "rows": {key: total(lambda p, key=key: p["rows"][key]) for key in first["rows"]}}


def with_recount(privacy: dict, verified: dict, k: int) -> dict:
    """The privacy report with the figures DuckDB recounted over all shards (`shards.verify_shards`): the report
    itself measures a sample of the twin."""
    recount = {key: verified[key] for key in ("rows", "k", "exact_matches", "exact_match_rate", "rare_record_copies")}
    return {**privacy, **recount, "k_satisfied": verified["k"] is None or verified["k"] >= k}


def clone_file(source: str | Path, out_dir: str | Path, options: CloneOptions, progress=None,
               audit: bool = False) -> dict:
    """Run the whole pipeline on a file; write the twin, its model and both reports under `out_dir`, and
    with `audit` the attacker audit after them (its failure is reported, it never undoes the twin).

    The twin is made in shards (see shards.py), so memory stays bounded however many rows are asked for.
    """
    try:
        return _clone_file(Path(source), Path(out_dir), options, progress, audit)
    except TwinError as error:  # problems found past reading (a bad primary key, ...) are about this file
        raise error.naming(source) from None


def _clone_file(source: Path, out_dir: Path, options: CloneOptions, progress, audit: bool) -> dict:
    # The evaluation's own refit (holdout ceiling and TSTR) needs only the real table and the options, writing the
    # CSV only the shard files: one forked helper process does them beside the main line (fit, sample, protect,
    # report), so a second core takes them off the clone's wall time, and shares the pictures with it once free.
    # It starts now, loading scikit-learn while this process reads the table. Same inputs, same figures.
    # Each process does its linear algebra on one thread: the two of them already fill the two cores a clone
    # is measured on, and OpenBLAS's second thread spun idle between the small products (0.6 of narrow's 2.4 CPU s
    # making its shards, taken from the helper's core) and made the model's last bits depend on the thread count.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"), _frozen():
        helper = ProcessPoolExecutor(1, initializer=_end_with, initargs=(os.getpid(),))
        helper.submit(_load_evaluation)
        try:
            return _clone_with(source, out_dir, options, progress, audit, helper)
        except BaseException:
            helper.shutdown(wait=False, cancel_futures=True)  # a failed clone does not wait for its evaluation
            raise


@contextlib.contextmanager
def _frozen():
    """The objects alive before the clone (the imported modules' few hundred thousand) left out of the garbage
    collector's passes while it runs, in this process and in the helper forked from it, as the gc module's docs
    advise before a fork. The collections cost the helper 0.24 CPU s and this process 0.1 s on the 55-column table,
    0.07 and 0.05 with them frozen. Unfrozen after: a long-lived caller (`twin serve`, a Dagster worker) keeps
    nothing."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _end_with(parent: int) -> None:
    """The helper ends when the clone's process is gone: a clone killed outright (SIGKILL, the OOM killer, a
    cancelled Dagster run) cannot shut its helper down, which otherwise waits for work forever."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="end-with-clone").start()


def _load_evaluation() -> None:
    """The reference refit's imports, in the helper before its first task: scikit-learn alone is a third of a
    second."""
    from .quality import holdout, utility  # noqa: F401

    utility.load_model()
    gc.freeze()  # the helper's own imports too (it ends with the clone)


def _clone_with(source: Path, out_dir: Path, options: CloneOptions, progress, audit: bool,
                helper: ProcessPoolExecutor) -> dict:
    real = read_table(source)
    options, n = resolve_options(real, options, source)
    check_disk_space(out_dir, n, source.stat().st_size / max(len(real), 1), source)
    say = progress or (lambda message: None)
    left_out = f"; left out {real.attrs['left_out']}" if "left_out" in real.attrs else ""
    say(f"read {len(real):,} rows x {real.shape[1]} columns from {source}{left_out}")
    options = pin_quasi_identifiers(real, options)
    qis = list(options.quasi_identifiers)
    reference = helper.submit(reference_quality, real.drop(columns=dropped_columns(real, options)), options,
                              direct_identifiers(real, options))  # found once, for both processes
    with recount_database() as database:  # before the arrays: its start frees the C library's spare memory
        engine = fit_model(real, options)
        say("fitted the model: " + ", ".join(f"{name}={entry['family'] or entry['kind']}"
                                              for name, entry in engine.describe().items()))
        out_dir.mkdir(parents=True, exist_ok=True)
        staged = publish.version(out_dir, f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}", inherit=False)
        try:
            outputs = _write_outputs(source, real, engine, options, n, qis, staged, say, helper, reference, database)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
    helper.shutdown()  # idle, every result is in: its process has ended when the command does
    publish.publish(out_dir, staged)  # every output replaced at once: a reader never sees a mix of two clones
    summary = outputs.pop("summary")
    result = {**summary, "source": str(source), "rows_real": len(real), "audit": None,
              "outputs": {name: str(out_dir / path.name) for name, path in outputs.items()}}
    if audit:  # after the twin is published: the audit never holds it back or undoes it
        say(f"attacker audit (budget {options.audit_budget:g} s) ...")
        result["audit"] = audit_to_file(real, options, out_dir)
        result["outputs"]["privacy_audit"] = str(out_dir / AUDIT_FILE)
        say(audit_summary(result["audit"]))
    return result


def _load_pictures_when_free(helper: ProcessPoolExecutor, reference: Future) -> threading.Event:
    """A helper done with its reference before this process collects the pictures is handed them to draw
    (report_figures): it loads matplotlib as soon as it is free, in the time it would wait for them. Set the
    event returned when collecting begins: a helper free only then draws nothing and loads nothing."""
    collecting = threading.Event()

    def load(_reference: Future) -> None:
        if not collecting.is_set():
            with contextlib.suppress(RuntimeError):  # a failed clone's helper is shut down
                helper.submit(_load_pictures)

    reference.add_done_callback(load)
    return collecting


def _load_pictures() -> None:
    from .report import plots

    plots.load()
    gc.freeze()


def _write_outputs(source: Path, real: pd.DataFrame, engine: GaussianCopulaEngine, options: CloneOptions, n: int,
                   qis, out_dir: Path, say, helper: ProcessPoolExecutor, reference: Future, database) -> dict:
    collecting = _load_pictures_when_free(helper, reference)
    with tempfile.TemporaryDirectory(prefix=".shards-", dir=out_dir) as folder:
        # A twin the quality sample would read whole anyway is kept in memory, its shards never written as files
        frames = [] if n <= QUALITY_SAMPLE_ROWS else None
        results = make_shards(engine, real, options, n, Path(folder), workers=options.workers, progress=say,
                              frames=frames)
        protection = combine_protection(results)
        rows = sum(result["rows"] for result in results)
        fmt = options.output_format or ("parquet" if rows >= PARQUET_FROM_ROWS else "csv")
        merge = [(merge_shards, (Path(folder), out_dir / f"synthetic.{fmt}", options.escape_formulas,
                                 real.attrs.get("csv_dialect"), frames))]
        # Shards kept in memory are written out by this process, after its report: the helper would have to be
        # sent them, and it draws the pictures meanwhile. Shard files are the helper's once its reference is done,
        # else this process writes them after its own work: queued behind the reference it ended last on small
        # tables, while this process waited for both. A helper free already merges while this process begins the
        # pictures; a busy one is handed the merge after the pictures, and this process, done with its report,
        # takes it back if the helper has not begun it (it is drawing them).
        merger = None if frames else helper
        merged = SharedTasks(merge, merger, after=reference) if reference.done() else None
        twin = sample_shards(Path(folder), frames=frames)
        # The pictures need only the tables: shared with the helper from now on, handed to it once its reference
        # is done (this process draws them if it has begun none), while this process recounts and reports
        drawing = report_figures(real, twin, options, helper, after=reference)
        merged = merged or SharedTasks(merge, merger, after=reference)
        verified = verify_shards(Path(folder), real, list(qis), key_columns(real, options), options.k, frames=frames,
                                 database=database)
        say(f"k-anonymity: k={verified['k']} on {', '.join(qis) or 'no quasi-identifiers'}; "
            f"{protection['k_anonymity']['records_suppressed']} rows suppressed (refilled); "
            f"{verified['rare_record_copies']} copies of rare real records, {verified['exact_matches']} rows equal a "
            "real row (common combinations)")
        quality, privacy = report(real, twin, engine, options, protection, verified, drawing.comparison)
        collecting.set()
        drawing.hand_tails(quality)  # the last picture, to whoever draws the others, before this process merges
        [synthetic_path] = merged.results()
        figures = drawing.finish(quality)
        quality.update(reference.result())
        page, _ = report_page(out_dir / "report.html", real, twin, quality, privacy, options, title=source.name,
                              figures=figures)
        say(f"quality {quality['similarity_score']:.1f}, {_ceiling_note(quality)}; report: {page}")
    return {
        "synthetic": synthetic_path,
        "model": engine.save(out_dir / "model.json"),
        "quality_report": write_json(quality, out_dir / "quality_report.json"),
        "privacy_report": write_json(privacy, out_dir / "privacy_report.json"),
        "clone": write_json({"source": str(source.resolve()), "sha256": sha256_file(source),
                             "options": options.to_dict()}, out_dir / CLONE_RECORD),
        "summary": {"rows_synthetic": verified["rows"], "similarity_score": quality["similarity_score"],
                    "correlation_error": quality["correlation_error"], "k": verified["k"],
                    "exact_match_rate": verified["exact_match_rate"], "rules": quality["rules"]["summary"],
                    "rare_record_copies": verified["rare_record_copies"]},
        "report": page,
    }
