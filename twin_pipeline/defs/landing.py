"""The landing folder: which files are complete, which are tables, and what to do with the others.

A file is taken only when two looks in a row (two sensor ticks) see the same size and modification time, so
a copy still in progress is never read; dotfiles, `*.tmp` and `*.part` are never taken, and `*.json` files are
the settings of the table beside them. A file that is not a readable table is moved to `rejected/` with a
`<name>.reason.txt`, so it neither blocks the folder nor is retried forever.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq

from ..tables import TwinInputError, read_table
from .config import sidecar_of

IGNORED_SUFFIXES = (".tmp", ".part")
BUNDLE_SUFFIXES = (".zip",)  # a zip of related tables is a bundle (see bundles.py), never a table itself
SETTINGS_SUFFIX = ".json"
FULL_READ_BYTES = 64 << 20  # larger CSV files are probed on their first PROBE_BYTES only
PROBE_BYTES = 1 << 20
EMPTY_GRACE_SECONDS = 60  # an empty file may be a copy that has not started writing yet


def candidates(folder: Path) -> dict[str, tuple[int, int]]:
    """Landed files that may be tables, with (size, mtime in ns)."""
    if not folder.is_dir():
        return {}
    found = {}
    for path in folder.iterdir():
        name = path.name
        if name.startswith(".") or name.lower().endswith((*IGNORED_SUFFIXES, SETTINGS_SUFFIX, *BUNDLE_SUFFIXES)) \
                or not path.is_file():
            continue
        stat = path.stat()
        found[name] = (stat.st_size, stat.st_mtime_ns)
    return found


@dataclass
class LandingCursor:
    """What the sensor has seen: files waiting to settle, files handled, content hashes already cloned."""

    waiting: dict[str, list[int]] = field(default_factory=dict)
    handled: dict[str, list[int]] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)  # SHA-256 -> portfolio key

    @classmethod
    def from_json(cls, text: str | None) -> "LandingCursor":
        return cls(**json.loads(text)) if text else cls()

    def to_json(self) -> str:
        return json.dumps({"waiting": self.waiting, "handled": self.handled, "hashes": self.hashes}, sort_keys=True)

    def settled(self, seen: dict[str, tuple[int, int]], now_ns: int | None = None) -> list[str]:
        """Files unchanged since the previous look (not yet handled); records the others as waiting."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        ready = []
        for name, (size, mtime) in sorted(seen.items()):
            stat = [size, mtime]
            if self.handled.get(name) == stat:
                continue
            young_and_empty = size == 0 and now_ns - mtime < EMPTY_GRACE_SECONDS * 10**9
            if self.waiting.get(name) == stat and not young_and_empty:
                ready.append(name)
            else:
                self.waiting[name] = stat
        self.waiting = {name: stat for name, stat in self.waiting.items() if name in seen and name not in ready}
        self.handled = {name: stat for name, stat in self.handled.items() if name in seen}
        return ready

    def mark_handled(self, name: str, stat: tuple[int, int]) -> None:
        self.handled[name] = list(stat)
        self.waiting.pop(name, None)


def probe_table(path: Path) -> list[str]:
    """The table's column names; raise TwinInputError (naming `path`) unless the file reads as a table.
    Large files are probed cheaply, on their first rows."""
    size = path.stat().st_size
    if path.suffix.lower() == ".parquet":
        try:
            metadata = pq.read_metadata(path)
        except Exception as error:  # pyarrow raises several types for files that are not Parquet
            raise TwinInputError(path, f"is not a readable Parquet file ({error})") from None
        if metadata.num_rows < 2 or metadata.num_columns == 0:
            raise TwinInputError(path, f"has {metadata.num_rows} row(s) and {metadata.num_columns} column(s); "
                                       "a table needs columns and at least 2 rows")
        return list(metadata.schema.names)
    if size <= FULL_READ_BYTES:
        return [str(column) for column in read_table(path).columns]
    with open(path, "rb") as handle:
        head = handle.read(PROBE_BYTES)
    head = head[: head.rfind(b"\n") + 1] or head
    with tempfile.TemporaryDirectory() as scratch:
        sample = Path(scratch) / path.name
        sample.write_bytes(head)
        try:
            return [str(column) for column in read_table(sample).columns]
        except TwinInputError as error:
            raise TwinInputError(path, error.problem) from None


REASON_SUFFIX = ".reason.txt"


def rejected_files(rejected: Path) -> list[dict]:
    """What is in rejected/, newest first: {"file", "reason", "rejected_at"} from each `<name>.reason.txt`."""
    if not rejected.is_dir():
        return []
    found = []
    for note in rejected.glob(f"*{REASON_SUFFIX}"):
        stamp, _, reason = note.read_text(errors="replace").strip().partition(" rejected ")
        found.append({"file": note.name[: -len(REASON_SUFFIX)], "reason": reason.partition(": ")[2] or reason,
                      "rejected_at": stamp})
    return sorted(found, key=lambda entry: entry["rejected_at"], reverse=True)


def reject(path: Path, rejected: Path, reason: str) -> Path:
    """Move a landed file (and its settings file) to rejected/ beside a `<name>.reason.txt`; returns the new path."""
    rejected.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = rejected / path.name
    if target.exists():
        target = rejected / f"{path.stem}.{stamp}{path.suffix}"
    sidecar = sidecar_of(path)
    shutil.move(str(path), target)
    if sidecar is not None:
        shutil.move(str(sidecar), rejected / (target.name + SETTINGS_SUFFIX))
    target.with_name(target.name + REASON_SUFFIX).write_text(f"{stamp} rejected {path.name}: {reason}\n")
    return target
