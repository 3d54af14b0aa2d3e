"""The `twin` command: clone a table, run the bundled demo, check the audit trail.

Every user-facing problem ends as one line on stderr naming the file or argument, with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from .defaults import DEFAULT_K, DEFAULT_MAX_SUPPRESSION, DEFAULT_SEED, TWIN_MAX_REDRAWN
from .errors import TwinError, TwinInputError
from .options import CloneOptions, validate_options
from .paths import data_dir

EXIT_INPUT = TwinInputError.exit_code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_INPUT, f"twin: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rows expects a whole number of rows, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--rows must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale expects a number such as 10 or 0.5, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--scale must be positive, got {text}")
    return value


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="twin", description="Privacy-safe synthetic digital twins of credit and loan tables.",
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    clone = commands.add_parser("clone", help="fit a copula on a CSV and write a protected synthetic twin",
                                description="Fit a Gaussian copula on INPUT, sample a twin, enforce k-anonymity, and "
                                            "write DIR/synthetic.csv (or .parquet), DIR/model.json, "
                                            "DIR/quality_report.json, DIR/privacy_report.json and DIR/report.html. "
                                            "The quality report always carries quality_vs_ceiling and TSTR: a twin "
                                            "of 80 %% of at most 10,000 real rows scored against the other 20 %%, "
                                            "made in a second process beside the product. The attacker audit is "
                                            "opt-in (--audit, or 'twin audit privacy DIR' later).")
    clone.add_argument("input", nargs="+",
                       help="CSV (comma, semicolon, tab or pipe separated) or Parquet file; several related tables "
                            "with --foreign-key")
    clone.add_argument("--out", required=True, help="output directory (created if missing)")
    size = clone.add_mutually_exclusive_group()
    size.add_argument("--rows", type=_positive_int, help="number of synthetic rows (default: as many as the input)")
    size.add_argument("--scale", type=_positive_float, help="synthetic rows as a multiple of the input rows, e.g. 10")
    clone.add_argument("--primary-key", action="append",
                       help="key column: not modelled, regenerated with fresh values (TABLE.COLUMN for related tables)")
    clone.add_argument("--foreign-key", action="append", default=[], metavar="CHILD.COL=PARENT.COL",
                       help="relationship between related tables, e.g. loans.borrower_id=borrowers.borrower_id")
    clone.add_argument("--seed", type=int, default=DEFAULT_SEED,
                       help=f"random seed; the same seed gives the same twin (default {DEFAULT_SEED})")
    clone.add_argument("--epsilon", type=float,
                       help="fit with (epsilon, 1e-6)-differential privacy, e.g. 1 (default: no DP; the model "
                            "still carries noise against differencing)")
    clone.add_argument("--k", type=int, default=DEFAULT_K,
                       help=f"k-anonymity target on the quasi-identifiers, at least 2 (default {DEFAULT_K})")
    clone.add_argument("--quasi-identifiers", type=_names,
                       help="comma-separated quasi-identifier columns (default: detected by name and kind)")
    clone.add_argument("--generalize", choices=["bands"], help="generalise numeric quasi-identifiers into bands")
    clone.add_argument("--max-suppression", type=float, default=DEFAULT_MAX_SUPPRESSION,
                       help="largest share of rows k-anonymity may suppress before failing "
                            f"(default {DEFAULT_MAX_SUPPRESSION}; a twin's suppressed rows are redrawn, and up to "
                            f"{TWIN_MAX_REDRAWN * 100:.0f} %% of them always may be)")
    clone.add_argument("--format", choices=["csv", "parquet"],
                       help="output format (default: csv, parquet from 1,000,000 rows)")
    clone.add_argument("--rules", metavar="FILE",
                       help="declared business rules (JSON or YAML): inequality, range, fixed_combinations, formula, "
                            "fixed_when; rules found in the data are kept without it")
    clone.add_argument("--no-escape-formulas", dest="escape_formulas", action="store_false",
                       help="write text cells starting with = + - @ tab or CR as they are; by default they get a "
                            "leading apostrophe so a spreadsheet shows them instead of running them (OWASP)")
    clone.add_argument("--workers", type=int, default=1,
                       help="processes that sample and protect shards of 500,000 rows in parallel (default 1)")
    clone.add_argument("--drop-identifiers", action="store_true",
                       help="drop direct identifiers (SSN, e-mail, phone, name, address, account or card number) "
                            "instead of replacing them by fresh values of the same format (the default)")
    clone.add_argument("--target", help="column the TSTR utility model predicts (default: the outcome column, 2 to "
                                        "20 values named like default, status, approval, bad, overdrawn or card)")
    clone.add_argument("--audit", action="store_true",
                       help="after the twin is written, run the attacker audit (DIR/privacy_audit.json); "
                            "same as 'twin audit privacy DIR' later")
    _audit_options(clone)

    demo = commands.add_parser("demo", help="materialize the bundled sample portfolio end to end with Dagster",
                               description="Run the Dagster pipeline (six assets and their checks) on the bundled "
                                           "credit_data.csv sample, on the local SQLite instance under the data "
                                           "directory, and print where the outputs are.")
    demo.add_argument("--data-dir", help="data directory (default: $TWIN_DATA_DIR or ./data)")
    demo.add_argument("--json", action="store_true", help="print the full result as JSON instead of the stages")

    audit = commands.add_parser("audit", help="attack a twin (privacy), or verify or show the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, parser_class=_Parser)
    privacy = audit_commands.add_parser(
        "privacy", help="attacker audit of a clone's output folder: membership, inference, linkability, singling-out",
        description="Refit the clone's pipeline on 80 %% of the real rows and attack its twin with the other 20 %% as "
                    "the control set, within a time budget; writes DIR/privacy_audit.json. Exit 1 if it failed.")
    privacy.add_argument("dir", help="output folder of 'twin clone' (holds clone.json)")
    privacy.add_argument("--real", help="the real table (default: the path recorded in DIR/clone.json)")
    _audit_options(privacy, defaults_from_clone=True)
    verify = audit_commands.add_parser("verify", help="recompute the hash chain; exit 1 naming the first broken entry")
    show = audit_commands.add_parser("show", help="print the audit trail, optionally for one portfolio")
    show.add_argument("portfolio", nargs="?", help="portfolio (partition key)")
    for sub in (verify, show):
        sub.add_argument("--data-dir", help="data directory (default: $TWIN_DATA_DIR or ./data)")

    status = commands.add_parser("status", help="what is in the data directory: portfolios and their scores, "
                                                "files waiting in landing/, rejected files and why",
                                 description="List the portfolios (quality, holdout ceiling, report.html), the files "
                                             "waiting in landing/ and every rejected file with its reason.")
    status.add_argument("--data-dir", help="data directory (default: $TWIN_DATA_DIR or ./data)")

    serve = commands.add_parser("serve", help="the seed's REST API (upload, clone, status, download, validate)",
                                description="Serve the REST API over the data directory, launching clone runs on the "
                                            "Dagster instance at $DAGSTER_HOME (else <data>/dagster_home) and "
                                            "executing them itself: no daemon needed. Every call but health needs "
                                            "'Authorization: Bearer $TWIN_API_TOKEN' (generated and printed when unset).")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--data-dir", help="data directory (default: $TWIN_DATA_DIR or ./data)")
    serve.add_argument("--ssl-certfile", help="TLS certificate (PEM); with --ssl-keyfile, serves HTTPS")
    serve.add_argument("--ssl-keyfile", help="TLS private key (PEM)")
    serve.add_argument("--max-upload", default="1GiB", help="largest upload, enforced while streaming (default 1GiB)")
    serve.add_argument("--cors-origin", action="append", default=[],
                       help="allow browser calls from this origin (repeatable; default: CORS off)")
    serve.add_argument("--insecure-http", action="store_true",
                       help="allow plain HTTP on a non-loopback address (only behind a TLS-terminating proxy)")
    serve.add_argument("--max-concurrent-runs", type=int,
                       help="clone runs executing at once (default: the instance's run queue limit)")
    parser.epilog = _command_list(commands)
    return parser


def _audit_options(parser: argparse.ArgumentParser, defaults_from_clone: bool = False) -> None:
    same = " (default: the clone's, else {})" if defaults_from_clone else " (default: {})"
    parser.add_argument("--audit-budget", "--budget", dest="audit_budget", type=float,
                        default=None if defaults_from_clone else 60.0,
                        help="seconds the attacker audit may take; stages that would start later are listed as "
                             "not run" + same.format("60"))
    parser.add_argument("--secrets", type=_names, help="comma-separated columns the attacker tries to infer"
                        + same.format("the target column and the most sensitive amounts"))


def _command_list(commands: argparse._SubParsersAction) -> str:
    """Every subcommand, nested ones (audit verify, audit show, ...) included, for `twin --help`: built from
    the parsers themselves so a new command is listed without editing this."""
    lines = ["commands:"]
    helps = {action.dest: action.help for action in commands._choices_actions}
    for name, sub in commands.choices.items():
        nested = [action for action in sub._actions if isinstance(action, argparse._SubParsersAction)]
        if not nested:
            lines.append(f"  twin {name:18s} {helps.get(name) or ''}")
            continue
        inner = {action.dest: action.help for action in nested[0]._choices_actions}
        lines += [f"  twin {name + ' ' + child:18s} {inner.get(child) or ''}" for child in nested[0].choices]
    return "\n".join(lines + ["", "twin COMMAND --help shows a command's options."])


def _serve(args) -> int:
    from .api.server import ServeError, parse_size, serve

    try:
        limit = parse_size(args.max_upload)
    except ValueError as error:
        raise TwinInputError("--max-upload", str(error)) from None
    try:
        serve(args.host, args.port, data_dir(args.data_dir), ssl_certfile=args.ssl_certfile,
              ssl_keyfile=args.ssl_keyfile, max_upload_bytes=limit, cors_origins=args.cors_origin,
              insecure_http=args.insecure_http, max_concurrent_runs=args.max_concurrent_runs)
    except ServeError as error:
        raise TwinInputError("twin serve", str(error)) from None
    return 0


def _clone(args) -> int:
    keys = args.primary_key or []
    related = len(args.input) > 1 or args.foreign_key
    if not related and len(keys) > 1:
        raise TwinInputError("--primary-key", "give one primary key for a single table")
    options = CloneOptions(rows=args.rows, scale=args.scale, primary_key=None if related or not keys else keys[0],
                           k=args.k, quasi_identifiers=args.quasi_identifiers, generalize=args.generalize,
                           max_suppression=args.max_suppression, seed=args.seed, output_format=args.format,
                           workers=args.workers, rules=args.rules, drop_identifiers=args.drop_identifiers,
                           target=args.target, escape_formulas=args.escape_formulas, audit_budget=args.audit_budget,
                           secrets=args.secrets, epsilon=args.epsilon)
    validate_options(options)  # before any file is read: a bad flag is named as such
    say = lambda message: print(f"  {message}", flush=True)  # noqa: E731
    if related:
        if options.epsilon is not None:
            # A borrower added or removed takes all their child rows (accounts, payments) with them: each child
            # table would need a per-parent contribution bound and its share of the budget (engine/dp.py's
            # guarantee is per row of one table). Until then a model that claimed epsilon would be wrong.
            raise TwinInputError("--epsilon", "is not supported for related tables: one parent's removal changes all "
                                 "of its child rows, which the differentially private fit does not bound; clone "
                                 "each table alone with --epsilon, or the related tables without it")
        return _clone_related(args, options, keys, say)
    from .pipeline import clone_file

    summary = clone_file(args.input[0], args.out, options, progress=say, audit=args.audit)
    correlation, k = summary["correlation_error"], summary["k"]
    print(f"twin of {summary['source']}: {summary['rows_synthetic']:,} rows, similarity {summary['similarity_score']:.1f}/100, "
          f"correlation error {'n/a (under two numeric columns)' if correlation is None or correlation != correlation else f'{correlation:.3f}'}, "
          f"k = {'n/a (no quasi-identifiers)' if k is None else k}, "
          f"copies of rare real records {summary['rare_record_copies']}, rows equal to a real row "
          f"{summary['exact_match_rate']:.0%}")
    rules = summary["rules"]
    print(f"  rules: {rules['rules']} found or declared, {rules['enforced']} kept by construction; twin rows breaking "
          f"one of the {rules['mined_exact']} mined rules that hold on every real row: "
          f"{rules['mined_break_mean']:.3%} on average, {rules['mined_break_worst']:.3%} at worst"
          + (f"; {rules['near_rules']} near-rule(s) (on >= 99.9 % of real rows) broken on at most "
             f"{rules['near_rule_excess_worst']:.2%} more rows than in the real table" if rules["near_rules"] else "")
          + (f"; DECLARED RULES BROKEN: {', '.join(rules['declared_broken'])}" if rules["declared_broken"] else ""))
    for name, path in summary["outputs"].items():
        print(f"  {name:15s} {path}")
    return 0


def _clone_related(args, options: CloneOptions, keys: list[str], say) -> int:
    from .related import clone_tables, parse_foreign_key

    if args.rows:
        raise TwinInputError("--rows", "related tables take --scale (children follow their parents)")
    if not args.foreign_key:
        raise TwinInputError("--foreign-key", "several input tables need at least one --foreign-key relationship")
    primary_keys = {}
    for key in keys:
        if "." not in key:
            raise TwinInputError("--primary-key", f"use TABLE.COLUMN with related tables, got {key!r}")
        table, column = key.split(".", 1)
        primary_keys[table] = column
    summary = clone_tables(args.input, args.out, [parse_foreign_key(text) for text in args.foreign_key], options,
                           primary_keys=primary_keys, progress=say)
    print("twin of related tables: " + ", ".join(f"{name} {rows:,} rows" for name, rows in summary["tables"].items()))
    for path in summary["outputs"]:
        print(f"  {path}")
    return 0


def _demo(args) -> int:
    from .defs.demo import BlockingCheckFailed, run_demo

    started = time.perf_counter()
    say = (lambda message: None) if args.json else (lambda message: print(f"  {message}", flush=True))  # noqa: E731
    say(f"cloning the bundled sample with Dagster (data directory {data_dir(args.data_dir)})")
    try:
        result = run_demo(data_dir(args.data_dir), progress=say)
    except BlockingCheckFailed as error:
        print(f"twin: demo twin failed a blocking check: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    utility = result["utility"]
    tstr = (f"TSTR {utility['metric'].upper()} on {utility['target']}: real {utility['real']:.3f}, twin "
            f"{utility['twin']:.3f}" if "gap" in utility else f"TSTR not measured: {utility.get('skipped')}")
    ceiling = result["quality_vs_ceiling"]
    print(f"done in {time.perf_counter() - started:.1f} s: portfolio {result['portfolio']}, similarity "
          f"{result['similarity_score']:.1f}/100, {f'{ceiling:.1f} % of the holdout ceiling' if ceiling else 'no ceiling'}, "
          f"{tstr}")
    for name in ("synthetic.csv", "report.html", "quality_report.json", "privacy_report.json"):
        if name in result["outputs"]:
            print(f"  {name:20s} {result['outputs'][name]}")
    print(f"  checks: {', '.join(f'{n} ' + ('ok' if c['passed'] else 'FAILED') for n, c in result['checks'].items())}")
    print(f"  drop CSV files into {Path(result['portfolio_dir']).parents[1] / 'landing'} while the UI runs:")
    print(f"  {result['open_ui']}")
    return 0


def _status(args) -> int:
    from .defs.landing import rejected_files
    from .defs.resources import TwinStorage

    storage = TwinStorage(data_dir=str(data_dir(args.data_dir)))
    print(f"data directory {storage.root}")
    portfolios = sorted(path for path in (storage.root / "portfolios").glob("*") if path.is_dir())
    print(f"portfolios ({len(portfolios)}):")
    for folder in portfolios:
        report = folder / "quality_report.json"
        quality = json.loads(report.read_text()) if report.exists() else {}
        ceiling = quality.get("quality_vs_ceiling")
        scores = (f"similarity {quality['similarity_score']:.1f}"
                  + (f", {ceiling:.1f} % of the holdout ceiling" if ceiling else "")) if quality else "no report yet"
        page = folder / "report.html"
        print(f"  {folder.name:32s} {scores}" + (f"  {page}" if page.exists() else ""))
    waiting = sorted(path.name for path in storage.landing.glob("*") if not path.name.startswith(".")) \
        if storage.landing.is_dir() else []
    print(f"landing/ ({len(waiting)} waiting): {', '.join(waiting) or 'empty'}  [{storage.landing}]")
    rejected = rejected_files(storage.rejected)
    print(f"rejected/ ({len(rejected)}):")
    for entry in rejected:
        print(f"  {entry['file']:32s} {entry['rejected_at']}  {entry['reason']}")
    return 0


def _audit(args) -> int:
    from .audit import AuditLog

    if args.audit_command == "privacy":
        return _audit_privacy(args)
    database = data_dir(args.data_dir) / "twin.duckdb"
    if not database.exists():
        raise TwinInputError(database, "no audit database yet: run a clone through the pipeline first")
    log = AuditLog(database)
    if args.audit_command == "verify":
        result = log.verify()
        if result.ok:
            print(f"audit trail intact: {result.checked} entries and {result.lineage_checked} lineage rows verified "
                  f"against the recorded head ({log.heads_path})")
            return 0
        print(f"audit trail BROKEN at entry {result.first_broken_id}: {result.reason}", file=sys.stderr)
        return 1
    entries = log.entries(args.portfolio)
    print(entries.to_string(index=False) if len(entries) else "no audit entries")
    return 0


def _audit_privacy(args) -> int:
    from .pipeline import AUDIT_FILE, audit_clone_dir, audit_summary

    audit = audit_clone_dir(args.dir, args.real, args.audit_budget, args.secrets)
    print(audit_summary(audit))
    print(f"  privacy_audit   {Path(args.dir) / AUDIT_FILE}")
    return 1 if audit.get("status") == "failed" else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    handlers = {"clone": _clone, "demo": _demo, "audit": _audit, "status": _status, "serve": _serve}
    try:
        return handlers[args.command](args)
    except TwinError as error:
        print(f"twin: error: {error}", file=sys.stderr)
        return error.exit_code
    except MemoryError:
        print("twin: error: out of memory: use fewer rows or columns, or give the process more memory",
              file=sys.stderr)
        return EXIT_INPUT
    except OSError as error:  # disk full, permissions, a name too long: one line, not a traceback
        where = f"{error.filename}: " if error.filename else ""
        print(f"twin: error: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("twin: interrupted", file=sys.stderr)
        return 130


def _keep_freed_memory() -> None:
    """glibc's malloc keeps what a clone frees for its next arrays, instead of giving every block over 32 MB (a
    100,000 x 55 matrix is 44 MB) back to the system and faulting fresh pages in for the next: page faults cost
    3-4x more while the other core is busy, as the clone's helper keeps it. Sampling and protecting the 55-column
    twin took 0.28-0.45 s of system time, 0.11-0.17 with it, at the same peak memory. For a one-shot `twin clone` only
    (a long-lived server would keep its peak); the process forked for the holdout reference inherits it; left
    alone where the user tunes malloc, or the C library is not glibc."""
    import ctypes

    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"; None or an error on other C libraries
        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError):
        return
    if not glibc or any(name.startswith("MALLOC_") or name == "GLIBC_TUNABLES" for name in os.environ):
        return
    mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD (an int): the heap's free top is kept up to 2 GiB
    mallopt(-3, 2**30)  # M_MMAP_THRESHOLD: blocks up to 1 GiB come from (and go back to) the heap


def run() -> None:
    """The `twin` command as a process. A `twin clone` that succeeded ends without the interpreter's teardown
    (freeing every module and object of pandas, scipy and matplotlib one by one: about 0.5 s of a 3 s clone): its
    outputs are written and closed, and nothing else waits for the exit but the log handlers. Not while a child
    process lives (a failed clone's helper is stopped by that teardown; skipped, it would wait forever)."""
    import multiprocessing

    # Set before anything imports numpy or pyarrow; a user's own settings win.
    # OpenBLAS starts a worker thread per core as it loads (numpy's and SciPy's copies alike, again in a forked
    # helper) and each spins about 0.1 s waiting for work that never comes: a clone runs its small products on one
    # thread (pipeline._clone_file), and the spinning took 0.3-0.5 of the 55-column clone's 8 CPU s from the other
    # process.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # Arrow's default pool (mimalloc) spends 0.2 s of system time setting itself up on first use, which in a
    # one-shot command is the CSV writer's (0.43 CPU s for the 100,000 x 55 twin, 0.23 on the C library's malloc).
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    clone = build_parser().parse_known_args()[0].command == "clone"
    if clone:
        _keep_freed_memory()
    code = main()
    if code == 0 and clone and not multiprocessing.active_children():
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
