"""Reading uploaded tables safely and writing results atomically.

Every problem with an input file becomes a `TwinInputError` whose message names the file and the problem,
so the CLI and the pipeline can show one clear line instead of a traceback. Every write goes to a temporary
file in the target directory first and is renamed into place, so a crash never leaves half a file behind.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import TwinInputError

SNIFF_BYTES = 64 * 1024
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")  # latin-1 decodes anything: reached only for text-like bytes
UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
DELIMITERS = ",;\t|"
ZERO_PADDED = re.compile(r"0\d+")  # a code, not a number: numbers are not written with leading zeros
UPPER_BOOLEAN = re.compile(r"TRUE|FALSE|true|false")  # pandas reads them as bools, written back as True/False
OPEN_END = re.compile(r"9999-12-31([ T]00:00(:00(\.0+)?)?)?|31[./-]12[./-]9999|12/31/9999|99991231")
NO_VALUE = ["-", "--", "\u2013", "\u2014"]  # a lone dash: a spreadsheet's "nothing here" (a number column read as text)
TOTALS_LABEL = re.compile(r"(grand\s+|sub)?totals?|sum|summe|gesamt(summe)?", re.IGNORECASE)
SNIFF_LINES = 50
# Limits a hostile or clumsy upload runs into before it can cost minutes or gigabytes (env overrides them):
# a model holds a columns x columns matrix, so 10,000 columns is a 44 GiB matrix, not a table to clone.
MAX_COLUMNS = int(os.environ.get("TWIN_MAX_COLUMNS", "1000"))
MAX_HEADER_BYTES = 1 << 20  # a header line longer than this is not a table's header
MAX_TABLE_BYTES = int(os.environ.get("TWIN_MAX_TABLE_BYTES", str(50 << 30)))
# OWASP CSV injection: a cell starting with one of these is run as a formula by spreadsheets...
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# ...unless it is a plain number (-12.5, +3, -1,200.50%), which a spreadsheet reads as a number, not a formula.
PLAIN_NUMBER = r"[-+]?(?:\d[\d,]*)?\.?\d+(?:[eE][-+]?\d+)?%?"


def open_regular(path: str | os.PathLike, follow_links: bool = False):
    """Open a file for reading in binary; unless `follow_links`, a symbolic link is refused (O_NOFOLLOW, so a
    landed link to a file elsewhere is never read) and so is anything but a regular file (a FIFO would block)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_links else os.O_NOFOLLOW)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise TwinInputError(path, "is a symbolic link; links are never followed") from None
        if error.errno == errno.ENOENT:
            raise TwinInputError(path, "file not found") from None
        raise
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise TwinInputError(path, "is not a regular file (a directory, link, FIFO or device)")
    return os.fdopen(descriptor, "rb")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20, follow_links: bool = True) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks so large uploads do not load into memory."""
    digest = hashlib.sha256()
    with open_regular(path, follow_links) as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


SAMPLE_EDGE = 1 << 20  # sampled_sha256 reads this much at each end of a file


def sampled_sha256(path: str | os.PathLike, follow_links: bool = True) -> tuple[str, bool]:
    """(hex SHA-256 of the file's size and its first and last MiB, exact): what the landing sensor can afford
    to read in its tick whatever the file's size. `exact` is True when that covered every byte (files up to
    2 MiB): then equal digests mean equal files. For larger files equal digests mean the same size, head and
    tail only, and the run's full SHA-256 decides (see `defs/raw.keep_raw_copy`)."""
    digest = hashlib.sha256(b"twin-sampled-v1")
    with open_regular(path, follow_links) as handle:
        size = os.fstat(handle.fileno()).st_size
        digest.update(size.to_bytes(8, "big"))
        exact = size <= 2 * SAMPLE_EDGE
        digest.update(handle.read(2 * SAMPLE_EDGE if exact else SAMPLE_EDGE))
        if not exact:
            handle.seek(size - SAMPLE_EDGE)
            digest.update(handle.read(SAMPLE_EDGE))
    return digest.hexdigest(), exact


# Files a user may pick instead of the CSV export, named so the error says what to do
NOT_CSV = {b"PK\x03\x04": ("a ZIP archive or an Excel .xlsx workbook", "save the sheet as CSV"),
           b"\xd0\xcf\x11\xe0": ("an Excel .xls workbook", "save the sheet as CSV"),
           b"\x1f\x8b": ("gzip-compressed", "decompress it first (gunzip)"),
           b"PAR1": ("a Parquet file", "give it the .parquet suffix")}
JSON_START = re.compile(r'\s*(\[\s*)?\{\s*"')


def _decode(raw: bytes, path: Path) -> tuple[str, str]:
    """Detect binary content and pick the text encoding from the first bytes."""
    for magic, (what, remedy) in NOT_CSV.items():
        if raw.startswith(magic):
            raise TwinInputError(path, f"is {what}, not a CSV table: {remedy}")
    if b"\x00" in raw:
        raise TwinInputError(path, "looks like a binary file (NUL bytes), not a CSV table")
    try:
        raw.decode("utf-8-sig")
        return "utf-8-sig", raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        # A truncated multi-byte character at the end of the sniff window is not an encoding problem.
        if error.start >= len(raw) - 3 and len(raw) >= SNIFF_BYTES:
            return "utf-8-sig", raw[: error.start].decode("utf-8-sig")
        printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in raw) / max(len(raw), 1)
        if printable < 0.85:
            raise TwinInputError(path, "looks like a binary file, not a CSV table") from None
        if not UTF8_SEQUENCE.search(raw):  # no UTF-8 character at all: a Windows / Latin-1 export ("D\xfcsseldorf")
            encoding = next(name for name in ENCODINGS[1:] if _decodes(raw, name))
            return encoding, raw.decode(encoding)
        raise TwinInputError(  # some UTF-8 and some not: a damaged or mixed file, which no guess reads right
            path,
            f"is not valid UTF-8 (byte 0x{raw[error.start]:02x} at offset {error.start}); "
            "re-save it as UTF-8",
        ) from None


def _decodes(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


def _delimiter(text: str, path: Path) -> str:
    """The separator among , ; tab | (a single-column table has none; its header must then look like a name).

    Each candidate parses the first lines once (linear in their length, unlike csv.Sniffer, which took minutes
    on one 130,000-column header): the one splitting the header into most fields that every complete line
    repeats wins."""
    lines = [line for line in text.splitlines()[:SNIFF_LINES + 1] if line.strip()]
    complete = lines[:-1] if len(lines) > 2 else lines  # the last line may be cut off by the sniff window
    best = _best_delimiter(complete)
    if best is not None:
        return best
    if len(complete) > 3 and any(_best_delimiter(complete[start:]) for start in (1, 2, 3)):
        raise TwinInputError(path, f"its first line ({lines[0].strip()[:60]!r}) is not a header like the lines "
                                   "below it: remove the title lines above the header")
    if re.search(r"[:]|\s{2,}|\S\s+\S.*\s", lines[0].strip()):
        raise TwinInputError(path, "no delimiter found: expected a comma, semicolon, tab or pipe separated table")
    return ","


def _best_delimiter(lines: list[str]) -> str | None:
    """The delimiter splitting the first line into most fields that the other lines repeat, if any."""
    best, best_score = None, (0.0, 1)
    for delimiter in DELIMITERS:
        try:
            widths = [len(row) for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)]
        except csv.Error:  # a field over csv's 128 KB limit: not this delimiter
            continue
        if not widths or widths[0] < 2:
            continue
        score = (sum(width == widths[0] for width in widths) / len(widths), widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _head(handle, path: Path) -> bytes:
    """The first SNIFF_BYTES, extended to the end of the header line (at most MAX_HEADER_BYTES)."""
    head = handle.read(SNIFF_BYTES)
    while b"\n" not in head.lstrip(b"\r\n \t") and len(head) < MAX_HEADER_BYTES:
        more = handle.read(SNIFF_BYTES)
        if not more:
            return head
        head += more
    if b"\n" not in head.lstrip(b"\r\n \t"):
        raise TwinInputError(path, f"its first line is longer than {MAX_HEADER_BYTES >> 20} MB: not a table header")
    return head


def read_table(path: str | os.PathLike, min_rows: int = 2, follow_links: bool = True) -> pd.DataFrame:
    """Read a CSV (any of , ; tab |) or Parquet file into a DataFrame, or raise a clear TwinInputError.
    With follow_links=False (landed files) a symbolic link or non-regular file is refused, not read."""
    path = Path(path)
    if not os.path.lexists(path):
        raise TwinInputError(path, "file not found")
    if path.is_dir() and follow_links:
        raise TwinInputError(path, "is a directory, not a table file")
    with open_regular(path, follow_links) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise TwinInputError(path, "is empty (0 bytes)")
        if path.suffix.lower() == ".parquet":
            try:
                frame = pd.read_parquet(handle)
            except Exception as error:  # pyarrow raises several types for corrupt files
                raise TwinInputError(path, f"is not a readable Parquet file ({error})") from None
        else:
            frame = _without_open_ends(_without_totals(_read_csv(handle, path, size)))
    if frame.shape[1] == 0:
        raise TwinInputError(path, "has no columns")
    if len(frame) == 0:
        raise TwinInputError(path, "has a header but no data rows")
    if len(frame) < min_rows:
        raise TwinInputError(path, f"has only {len(frame)} data row; at least {min_rows} are needed to learn a distribution")
    return frame


def _read_csv(handle, path: Path, size: int) -> pd.DataFrame:
    if size > MAX_TABLE_BYTES:
        raise TwinInputError(path, f"is {size / 2**30:.1f} GiB; the limit is {MAX_TABLE_BYTES / 2**30:.1f} GiB "
                                   "(TWIN_MAX_TABLE_BYTES)")
    head = _head(handle, path)
    encoding, text = _decode(head, path)
    if not text.strip():
        raise TwinInputError(path, "is empty (only whitespace)")
    if JSON_START.match(text):
        raise TwinInputError(path, "is JSON, not a CSV table: export the table as CSV")
    delimiter = _delimiter(text, path)
    _check_header(path, next(line for line in text.splitlines() if line.strip()), delimiter)
    handle.seek(0)
    try:
        frame = pd.read_csv(handle, sep=delimiter, encoding=encoding, low_memory=False, na_values=NO_VALUE,
                            dtype=dict.fromkeys(_as_written(text, delimiter), str) or None)
        frame.attrs["csv_dialect"] = {"sep": delimiter, "encoding": "utf-8-sig" if head.startswith(codecs.BOM_UTF8)
                                      else "utf-8" if encoding == "utf-8-sig" else encoding,
                                      **_line_ends_and_blanks(head, text, delimiter)}
        return frame
    except UnicodeDecodeError as error:
        raise TwinInputError(path, f"is not valid {encoding} past the first {SNIFF_BYTES} bytes ({error.reason})") from None
    except (pd.errors.ParserError, csv.Error) as error:
        raise TwinInputError(path, f"is not a well-formed table: {str(error).strip()}") from None
    except pd.errors.EmptyDataError:
        raise TwinInputError(path, "has no columns") from None
    except MemoryError:
        raise TwinInputError(path, f"does not fit in memory ({size / 2**20:,.0f} MiB as text); split it or give "
                                   "the process more memory") from None


def _sniffed_rows(text: str, delimiter: str) -> list[list[str]]:
    """The complete rows of the sniffed head (its last line may be cut off), header first."""
    lines = [line for line in text.splitlines() if line.strip()]
    return list(csv.reader(io.StringIO("\n".join(lines[:-1] if len(lines) > 2 else lines)), delimiter=delimiter))


def _line_ends_and_blanks(head: bytes, text: str, delimiter: str) -> dict:
    """How the file ends its lines and writes a missing value, when not as pandas writes them: a Windows export's
    CRLF, a spreadsheet's lone dash where no cell of the head is empty (both came back as LF and blank cells)."""
    found = {"lineterminator": "\r\n"} if b"\r\n" in head else {}
    cells = [value.strip() for row in _sniffed_rows(text, delimiter)[1:] for value in row]
    dashes = [value for value in cells if value in NO_VALUE]
    if dashes and "" not in cells:
        found["na_rep"] = max(set(dashes), key=dashes.count)
    return found


def _as_written(text: str, delimiter: str) -> list[str]:
    """Columns of the first lines that pandas would rewrite, read as text so the twin writes them alike: codes
    with a leading zero ("01067", "007"; as numbers a zip code 01067 became 1067 and its twin wrote four-digit zip
    codes) and flags spelled TRUE/FALSE or true/false (as bools they came back True/False)."""
    rows = _sniffed_rows(text, delimiter)
    if len(rows) < 2:
        return []
    kept = {i for row in rows[1:] for i, value in enumerate(row[:len(rows[0])])
            if ZERO_PADDED.fullmatch(value) or UPPER_BOOLEAN.fullmatch(value)}
    return [rows[0][i] for i in sorted(kept)]


def _without_open_ends(frame: pd.DataFrame) -> pd.DataFrame:
    """A core banking system writes an open contract's end date as 9999-12-31 (a date column may not be empty):
    past pandas' last date, the column read as text and its twin wrote "Other" on most rows. The sentinel is read
    as a blank (an end not yet known) and `attrs["csv_dialect"]["open_end"]` keeps it, per column, to write back."""
    found = {}
    for name in frame.columns[frame.dtypes == object]:
        text = frame[name].astype(str).str.strip()
        open_end = text.str.fullmatch(OPEN_END).to_numpy() & frame[name].notna().to_numpy()
        if open_end.any() and not open_end[frame[name].notna().to_numpy()].all():
            found[name] = text[open_end].mode().iloc[0]
            frame[name] = frame[name].mask(open_end)
    if found:
        frame.attrs.setdefault("csv_dialect", {})["open_end"] = found
    return frame


def as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """A table built in memory (a notebook's `pd.read_csv`) as `read_table` reads a file: lone-dash placeholders
    and 9999-12-31 open ends blank, a totals row at the bottom left out. Without it a notebook's twin modelled the
    TOTAL row and made a dashed amount column a category."""
    frame = frame.copy()
    for name in frame.columns[frame.dtypes == object]:
        column = frame[name]
        frame[name] = column.where(~column.astype(str).str.strip().isin(NO_VALUE))
    return _without_open_ends(_without_totals(frame))


def _without_totals(frame: pd.DataFrame) -> pd.DataFrame:
    """A spreadsheet export's totals row at the bottom ("TOTAL" in its first filled cell, the column sums beside
    it) is not a record: modelled, it put an amount 20,000 times the median into the twin's top tail. It is left
    out (`frame.attrs["left_out"]` says so) when its label appears nowhere else in that column."""
    if len(frame) < 3:
        return frame
    last = frame.iloc[-1]
    filled = last[last.notna()]
    if not len(filled) or not isinstance(filled.iloc[0], str) or not TOTALS_LABEL.fullmatch(filled.iloc[0].strip()):
        return frame
    if (frame[filled.index[0]] == filled.iloc[0]).sum() > 1:
        return frame
    frame = frame.iloc[:-1].infer_objects()
    for name in last.index[last.isna()]:  # whole numbers the totals row's blank cell made float
        column = frame[name]
        if pd.api.types.is_float_dtype(column) and column.notna().all() and (column % 1 == 0).all():
            frame[name] = column.astype("int64")
    frame.attrs["left_out"] = f"the totals row at the bottom ({filled.index[0]} = {filled.iloc[0]!r})"
    return frame


def _check_header(path: Path, header_line: str, delimiter: str) -> None:
    """Duplicate, empty and too many column names (the header is the first non-blank line, as for pandas)."""
    names = next(csv.reader(io.StringIO(header_line), delimiter=delimiter), [])
    if len(names) > MAX_COLUMNS:
        raise TwinInputError(path, f"has {len(names):,} columns; at most {MAX_COLUMNS:,} are supported "
                                   "(TWIN_MAX_COLUMNS)")
    names = [name.strip().lstrip("\ufeff") for name in names]
    seen: set[str] = set()
    duplicates = sorted({name for name in names if name in seen or seen.add(name)})
    if duplicates:
        raise TwinInputError(path, f"has duplicate column names: {', '.join(duplicates)}")
    if any(name == "" for name in names):
        raise TwinInputError(path, "has an empty column name in its header (a pandas index? write the file with "
                                   "to_csv(..., index=False), or name the column)")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name[:100]}."  # a 250-byte name would otherwise make a temporary name too long
    handle, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
    os.close(handle)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _holds_text(column: pd.Series) -> bool:
    """Whether a text column holds any string (pandas' .str accessor refuses a column of only numbers or None)."""
    return pd.api.types.infer_dtype(column, skipna=True) in ("string", "mixed", "mixed-integer")


def formula_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text cell a spreadsheet would run as a formula (starting with = + - @ tab or CR,
    and not a plain number) prefixed with an apostrophe, OWASP's CSV-injection defence; numbers untouched."""
    return _formula_safe(frame)[0]


def _formula_safe(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, tuple[np.ndarray, pd.Series]]]:
    """`formula_safe`'s frame and the codes and distinct values of each of its text columns (`_distinct`), which
    `to_csv` tests and writes: a text column is factorised once, not once to escape and once to write (merging
    the 100,000 x 55 twin: 0.34 -> 0.31 CPU s)."""
    text_columns = [name for name in frame.columns
                    if frame[name].dtype == object or isinstance(frame[name].dtype, pd.StringDtype)]
    if not text_columns:
        return frame, {}
    escaped, distincts = frame.copy(deep=False), {}
    for name in text_columns:
        column = frame[name]
        codes, distinct = distincts[name] = _distinct(column)
        if not _holds_text(distinct):
            continue
        # The first character of every distinct text (NaN for numbers): the number pattern only on the few that
        # start like a formula.
        starts = distinct.str[:1].isin(FORMULA_STARTS).to_numpy(dtype=bool)
        if not starts.any():
            continue
        cells = distinct[starts].astype(str)
        risky = np.zeros(len(distinct), dtype=bool)
        risky[np.flatnonzero(starts)[~cells.str.fullmatch(PLAIN_NUMBER).to_numpy(dtype=bool)]] = True
        rows = (codes >= 0) & risky[codes]
        if rows.any():
            escaped[name] = column.where(~rows, "'" + column[rows].astype(str))
            distincts[name] = _distinct(escaped[name])
    return escaped, distincts


def _distinct(column: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Each cell's code and the column's distinct values (missing ones left out, code -1): a text column repeats
    its values, and string tests in Python run once per distinct value instead of once per cell."""
    codes, uniques = pd.factorize(column)
    return codes, pd.Series(np.asarray(uniques, dtype=object), dtype=object)


def to_csv(frame: pd.DataFrame, target, escape_formulas: bool = True, dialect: dict | None = None, **kwargs) -> None:
    """The one way a CSV output is written: formula-escaped unless asked not to (see formula_safe). A text cell
    holding a carriage return is quoted (text cells are then all quoted): Python's csv module quotes only the
    line terminator's characters, and an unquoted CR splits the row, starting a new line with what follows.
    `dialect` is the input's separator, encoding, line ends, blank and open end dates (`read_table`'s
    `attrs["csv_dialect"]`): a semicolon Latin-1 export, a UTF-8 one with the byte-order mark Excel needs, a
    Windows one with CRLF and "-" for nothing, a core system's 9999-12-31, is written back alike (a character
    the encoding lacks becomes "?"). Most tables are written by Arrow's CSV writer, byte for byte as pandas
    writes them (`_arrow_columns`), in a third of the time (the 100,000 x 55 twin: 1.6 -> 0.5 CPU s)."""
    frame, distincts = _formula_safe(frame) if escape_formulas else (frame, {})
    open_end = {name: value for name, value in (dialect or {}).get("open_end", {}).items() if name in frame}
    if open_end:  # the end date of an open contract, as the input wrote it
        frame = frame.assign(**{name: frame[name].astype(object).where(frame[name].notna(), value)
                                for name, value in open_end.items()})
    text = {name: distincts[name] if name in distincts and name not in open_end else _distinct(frame[name])
            for name in frame.columns if frame[name].dtype == object}
    has_cr = any(_holds_text(values) and values.str.contains("\r", regex=False, na=False).any()
                 for _, values in text.values())
    dialect = dialect or {}
    sep, encoding = dialect.get("sep", ","), dialect.get("encoding", "utf-8")
    if kwargs.get("mode") == "a" and encoding == "utf-8-sig":  # the mark opens the file, not every chunk
        encoding = "utf-8"
    line_end, blank = dialect.get("lineterminator", "\n"), dialect.get("na_rep", "")
    plain = not has_cr and not set(kwargs) - {"mode", "header"} and (line_end, blank) == ("\n", "")
    columns = _arrow_columns(frame, text, sep, encoding) if plain else None
    if columns is None:
        frame.to_csv(target, index=False, quoting=csv.QUOTE_NONNUMERIC if has_cr else csv.QUOTE_MINIMAL, sep=sep,
                     encoding=encoding, errors="replace", lineterminator=line_end, na_rep=blank, **kwargs)
        return
    import pyarrow.csv

    with open(target, "ab" if kwargs.get("mode") == "a" else "wb") as handle:
        handle.write((codecs.BOM_UTF8 if encoding == "utf-8-sig" else b"")
                     + (sep.join(map(str, frame.columns)) + "\n").encode() * bool(kwargs.get("header", True)))
        pyarrow.csv.write_csv(columns, handle,
                              pyarrow.csv.WriteOptions(include_header=False, delimiter=sep, quoting_style="none"))


# Python writes a float in fixed notation from 1e-4 up to 1e16 and Arrow from 1e-6 up to 1e10, both with the
# shortest digits that read back as the same number: inside both ranges they agree but for Python's ".0" on
# whole numbers.
ARROW_FLOATS = (1e-4, 1e10)
# A float column with at most one distinct value in this many cells has its distinct values converted and taken
# by code: Arrow's float to text is most of the CSV merge (100,000 cells: 5-7 ms, 1-2 ms by distinct values).
REPEATED_FLOATS = 4


def _arrow_columns(frame: pd.DataFrame, text: Mapping[str, tuple[np.ndarray, pd.Series]], sep: str, encoding: str):
    """An Arrow table of the frame's cells as the text pandas' `to_csv` (QUOTE_MINIMAL, missing as "") writes, or
    None when pandas must write the frame: a cell or name the CSV has to quote (separator, quote, line break), a
    single column (an empty row is written quoted), an encoding other than UTF-8, or a column type whose text
    Arrow writes differently (dates, categories, float32, objects other than text)."""
    import pyarrow as pa

    special = [sep, '"', "\n", "\r"]
    if (frame.shape[1] < 2 or encoding not in ("utf-8", "utf-8-sig") or not frame.columns.is_unique
            or any(mark in str(name) for name in frame.columns for mark in special)):
        return None
    try:
        return pa.table({str(index): _arrow_text(frame[name], text.get(name), special)
                         for index, name in enumerate(frame.columns)})
    except (_Unwritable, UnicodeError, pa.ArrowException):  # a lone surrogate: pandas writes it as "?"
        return None


class _Unwritable(Exception):
    """A column `_arrow_text` leaves to pandas."""


def _arrow_text(column: pd.Series, text: tuple[np.ndarray, pd.Series] | None, special: list[str]):
    import pyarrow as pa
    import pyarrow.compute as pc

    if text is not None:  # text: the distinct values hold only strings, none the CSV must quote
        codes, distinct = text
        if len(distinct) and (pd.api.types.infer_dtype(distinct, skipna=False) != "string"
                              or distinct.str.contains("|".join(map(re.escape, special))).any()):
            raise _Unwritable
        # Each distinct text converted once and taken by its cells' codes (missing: no code), not every cell's
        # Python string converted: the same strings and nulls.
        return pc.take(pa.array(distinct.to_numpy(), type=pa.string()), pa.array(codes, mask=codes < 0))
    kind = column.dtype.kind if pd.api.types.is_numeric_dtype(column.dtype) else "?"
    if kind in "iu":
        return pc.cast(pa.array(column, from_pandas=True), pa.string())
    if kind == "b":
        return pc.if_else(pa.array(column, from_pandas=True), "True", "False")
    if kind != "f" or column.dtype != np.float64:
        raise _Unwritable
    values = column.to_numpy(dtype=float, na_value=np.nan)
    # Told apart by their bits: factorizing the floats would make -0.0 and 0.0 one value (and write one as the other).
    codes, distinct = pd.factorize(values.view(np.int64))
    if len(distinct) <= len(codes) // REPEATED_FLOATS:  # amounts on a step, counts stored as floats
        return pc.take(_float_text(distinct.view(np.float64)), pa.array(codes))
    return _float_text(values)


def _float_text(values: np.ndarray):
    """Floats' text as pandas writes them (NaN missing)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    magnitude = np.abs(values)
    missing = np.isnan(magnitude)
    if not np.all(missing | (magnitude == 0) | ((magnitude >= ARROW_FLOATS[0]) & (magnitude < ARROW_FLOATS[1]))):
        return pa.array(values.astype(str), mask=missing, type=pa.string())  # numpy's repr, as pandas
    written = pc.cast(pa.array(values, from_pandas=True), pa.string())
    # In that range Arrow writes a whole number, and only a whole one, without a point: told by the numbers, not
    # by searching the text, and a column of only whole or only fractional numbers is not picked row by row.
    whole = magnitude == np.floor(magnitude)
    if not whole.any():
        return written
    pointed = pc.binary_join_element_wise(written, ".0", "")
    return pointed if np.all(whole | missing) else pc.if_else(pa.array(whole), pointed, written)


def write_frame(frame: pd.DataFrame, target: str | os.PathLike, escape_formulas: bool = True,
                dialect: dict | None = None) -> Path:
    """Write a frame as CSV (formula-escaped unless asked not to; in `dialect`, see to_csv) or Parquet (unchanged),
    by suffix, atomically."""
    target = Path(target)
    with atomic_path(target) as tmp:
        if target.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            to_csv(frame, tmp, escape_formulas, dialect)
    return target


def write_json(obj: Any, target: str | os.PathLike, indent: int | None = 2) -> Path:
    """Write JSON atomically (NaN written as null, numpy scalars converted); `indent=None`: one compact line."""
    target = Path(target)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(to_jsonable(obj), indent=indent, default=_json_default, allow_nan=False) + "\n")
    return target


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_jsonable(obj: Any) -> Any:
    """Deep-convert numpy scalars and NaN/inf (to None) so json.dumps(allow_nan=False) accepts it."""
    if isinstance(obj, dict):
        return {str(key): to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(value) for value in obj]
    if hasattr(obj, "tolist") and getattr(obj, "ndim", 0) > 0:  # numpy arrays
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    return obj
