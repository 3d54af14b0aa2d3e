"""The landing folder: which files are complete, which are tables, and what to do with the others.

A file is taken only when two looks in a row (two sensor ticks) see the same size and modification time, so
a copy still in progress is never read; dotfiles, `*.tmp` and `*.part` are never taken, and `*.json` files are
the settings of the table beside them. A file that is not a readable table is moved to `rejected/` (0600) with
a `<name>.reason.txt`, so it neither blocks the folder nor is retried forever.

Nothing in the folder is trusted: entries are looked at with lstat and opened with O_NOFOLLOW, so a symbolic
link (to a private file elsewhere) or a FIFO is rejected, never read; a tick probes at most PROBE_BYTES of a
table and spends at most TICK_BUDGET_SECONDS before leaving the rest to the next tick.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat as stat_module
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq

from ..tables import TwinInputError, open_regular, read_table
from .config import sidecar_of

IGNORED_SUFFIXES = (".tmp", ".part")
BUNDLE_SUFFIXES = (".zip",)  # a zip of related tables is a bundle (see bundles.py), never a table itself
SETTINGS_SUFFIX = ".json"
FULL_READ_BYTES = 8 << 20  # larger CSV files are probed on their first PROBE_BYTES only; the run reads them whole
PROBE_BYTES = 1 << 20
EMPTY_GRACE_SECONDS = 60  # an empty file may be a copy that has not started writing yet
TICK_BUDGET_SECONDS = 20.0  # a tick starts no new file after this; the rest waits for the next tick
MAX_NAME_BYTES = 200  # leaves room for `.reason.txt`, `.json` and temporary names within the 255-byte limit


def candidates(folder: Path) -> dict[str, tuple[int, int]]:
    """Landed entries that may be tables, with (size, mtime in ns): regular files, and also links and other
    non-regular entries (FIFOs, sockets, devices), which the sensor rejects without following or opening.
    Directories are bundles (see bundles.py), never tables."""
    if not folder.is_dir():
        return {}
    found = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name.lower().endswith((*IGNORED_SUFFIXES, SETTINGS_SUFFIX, *BUNDLE_SUFFIXES)):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:  # gone between listing and looking
                continue
            if stat_module.S_ISDIR(info.st_mode):
                continue
            found[name] = (info.st_size, info.st_mtime_ns)
    return found


def landed_problem(path: Path) -> str | None:
    """Why a landed entry is refused before anything reads it (a link, not a regular file, a name too long)."""
    info = path.lstat()
    if stat_module.S_ISLNK(info.st_mode):
        return "is a symbolic link; links are never followed (copy the file itself into landing/)"
    if not (stat_module.S_ISREG(info.st_mode) or stat_module.S_ISDIR(info.st_mode)):
        return "is not a regular file (a FIFO, socket or device)"
    if len(path.name.encode()) > MAX_NAME_BYTES:
        return f"has a name of {len(path.name.encode())} bytes; at most {MAX_NAME_BYTES} are supported"
    return None


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
    Large files are probed cheaply, on their first rows; a link or non-regular file is refused, not read."""
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if path.suffix.lower() == ".parquet":
            try:
                metadata = pq.read_metadata(handle)
            except Exception as error:  # pyarrow raises several types for files that are not Parquet
                raise TwinInputError(path, f"is not a readable Parquet file ({error})") from None
        else:
            head = handle.read(PROBE_BYTES) if size > FULL_READ_BYTES else None
    if path.suffix.lower() == ".parquet":
        if metadata.num_rows < 2 or metadata.num_columns == 0:
            raise TwinInputError(path, f"has {metadata.num_rows} row(s) and {metadata.num_columns} column(s); "
                                       "a table needs columns and at least 2 rows")
        return list(metadata.schema.names)
    if head is None:
        return [str(column) for column in read_table(path, follow_links=False).columns]
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
    """Move a landed file, bundle or link (and its settings file) to rejected/ beside a `<name>.reason.txt`;
    returns the new path. Files end up 0600 (they may hold real rows); a link is moved, never followed."""
    rejected.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(rejected, 0o700)  # it may have been made earlier with the default mode
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = _bounded_name(path.name)
    target = rejected / name
    if os.path.lexists(target):
        target = rejected / f"{Path(name).stem}.{stamp}{Path(name).suffix}"
    sidecar = sidecar_of(path)
    shutil.move(str(path), target)  # a rename, or a copy of a link as a link: never a read through it
    if sidecar is not None:
        shutil.move(str(sidecar), rejected / (target.name + SETTINGS_SUFFIX))
    for moved in [target, rejected / (target.name + SETTINGS_SUFFIX)]:
        _private(moved)
    reason_file = target.with_name(target.name + REASON_SUFFIX)
    reason_file.write_text(f"{stamp} rejected {path.name}: {reason}\n")
    os.chmod(reason_file, 0o600)
    return target


def _bounded_name(name: str) -> str:
    """A name short enough for rejected/ (with `.reason.txt` added): long ones keep a prefix and a hash."""
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return name.encode()[:100].decode(errors="ignore") + f"-{digest}{Path(name).suffix[:10]}"


def _private(path: Path) -> None:
    """0600 for a moved file (0700 for a bundle folder and 0600 for its files); links and the rest left as is."""
    if not os.path.lexists(path) or path.is_symlink():
        return
    if path.is_dir():
        os.chmod(path, 0o700)
        for member in path.iterdir():
            if member.is_file() and not member.is_symlink():
                os.chmod(member, 0o600)
    elif path.is_file():
        os.chmod(path, 0o600)
