"""Reading uploaded tables safely and writing results atomically.

Every problem with an input file becomes a `TwinInputError` whose message names the file and the problem,
so the CLI and the pipeline can show one clear line instead of a traceback. Every write goes to a temporary
file in the target directory first and is renamed into place, so a crash never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import TwinInputError

SNIFF_BYTES = 64 * 1024
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")  # latin-1 decodes anything: reached only for text-like bytes


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks so large uploads do not load into memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _decode(raw: bytes, path: Path) -> tuple[str, str]:
    """Detect binary content and pick the text encoding from the first bytes."""
    if b"\x00" in raw:
        raise TwinInputError(path, "looks like a binary file (NUL bytes), not a CSV table")
    try:
        raw.decode("utf-8-sig")
        return "utf-8-sig", raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        # A truncated multi-byte character at the end of the sniff window is not an encoding problem.
        if error.start >= len(raw) - 3 and len(raw) == SNIFF_BYTES:
            return "utf-8-sig", raw[: error.start].decode("utf-8-sig")
        printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in raw) / max(len(raw), 1)
        if printable < 0.85:
            raise TwinInputError(path, "looks like a binary file, not a CSV table") from None
        raise TwinInputError(
            path,
            f"is not valid UTF-8 (byte 0x{raw[error.start]:02x} at offset {error.start}); "
            "re-save it as UTF-8",
        ) from None


def _delimiter(text: str, path: Path) -> str:
    """The separator among , ; tab | (a single-column table has none; its header must then look like a name)."""
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        if re.search(r"[:]|\s{2,}|\S\s+\S.*\s", lines[0].strip()):
            raise TwinInputError(path, "no delimiter found: expected a comma, semicolon, tab or pipe separated "
                                       "table") from None
        return ","


def read_table(path: str | os.PathLike, min_rows: int = 2) -> pd.DataFrame:
    """Read a CSV (any of , ; tab |) or Parquet file into a DataFrame, or raise a clear TwinInputError."""
    path = Path(path)
    if not path.exists():
        raise TwinInputError(path, "file not found")
    if path.is_dir():
        raise TwinInputError(path, "is a directory, not a table file")
    if path.stat().st_size == 0:
        raise TwinInputError(path, "is empty (0 bytes)")
    if path.suffix.lower() == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for corrupt files
            raise TwinInputError(path, f"is not a readable Parquet file ({error})") from None
    else:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
        encoding, text = _decode(head, path)
        if not text.strip():
            raise TwinInputError(path, "is empty (only whitespace)")
        delimiter = _delimiter(text, path)
        try:
            frame = pd.read_csv(path, sep=delimiter, encoding=encoding, low_memory=False)
        except UnicodeDecodeError as error:
            raise TwinInputError(path, f"is not valid UTF-8 past the first {SNIFF_BYTES} bytes ({error.reason})") from None
        except (pd.errors.ParserError, csv.Error) as error:
            raise TwinInputError(path, f"is not a well-formed table: {str(error).strip()}") from None
        except pd.errors.EmptyDataError:
            raise TwinInputError(path, "has no columns") from None
        _check_header(path, text.splitlines()[0], delimiter)
    if frame.shape[1] == 0:
        raise TwinInputError(path, "has no columns")
    if len(frame) == 0:
        raise TwinInputError(path, "has a header but no data rows")
    if len(frame) < min_rows:
        raise TwinInputError(path, f"has only {len(frame)} data row; at least {min_rows} are needed to learn a distribution")
    return frame


def _check_header(path: Path, header_line: str, delimiter: str) -> None:
    names = next(csv.reader(io.StringIO(header_line), delimiter=delimiter))
    names = [name.strip().lstrip("\ufeff") for name in names]
    seen: set[str] = set()
    duplicates = sorted({name for name in names if name in seen or seen.add(name)})
    if duplicates:
        raise TwinInputError(path, f"has duplicate column names: {', '.join(duplicates)}")
    if any(name == "" for name in names):
        raise TwinInputError(path, "has an empty column name in its header")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_frame(frame: pd.DataFrame, target: str | os.PathLike) -> Path:
    """Write a frame as CSV or Parquet (by suffix), atomically."""
    target = Path(target)
    with atomic_path(target) as tmp:
        if target.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return target


def write_json(obj: Any, target: str | os.PathLike) -> Path:
    """Write JSON atomically (NaN written as null, numpy scalars converted)."""
    target = Path(target)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(to_jsonable(obj), indent=2, default=_json_default, allow_nan=False) + "\n")
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
