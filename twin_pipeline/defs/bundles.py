"""Bundles: a portfolio of related tables landing together, as a folder or a `.zip` in `<data>/landing/`.

A bundle holds two or more CSV tables (each named by its file stem) and a `relationships.json`:
  {"foreign_keys": ["loans.borrower_id=borrowers.borrower_id"],
   "primary_keys": {"borrowers": "borrower_id", "loans": "loan_id"},
   "scale": 2.0, "seed": 1, "k": 5}            (the clone parameters are optional)
A folder is complete once it holds a `.ready` file (written last by whoever copies the folder: a folder has no
single size that says a copy is over); a zip once its size is stable over two sensor ticks and it opens. The
bundle's identity is a SHA-256 over its members (the CSVs and relationships.json), sorted by name, each
hashed with its name and length, so the same tables landing again, as a folder or a zip, give the same key.

A bundle is hostile until checked: a zip's directory is read first (at most MAX_ENTRIES entries, stored or
deflate only, no encryption, no links, each member at most MAX_RATIO times its compressed size, all together
at most MAX_BUNDLE_BYTES), and the sensor then streams each member once, hashing it and keeping only its first
PROBE_BYTES to check, so a zip bomb is refused from its directory and nothing is fully expanded in a tick.
A folder's members are looked at with lstat and opened with O_NOFOLLOW: a symlinked member is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..options import CloneOptions, validate_options
from ..related import parse_foreign_key
from ..tables import TwinInputError, open_regular
from .config import read_settings
from .landing import PROBE_BYTES, probe_table

SPEC_NAME = "relationships.json"
READY_MARKER = ".ready"
ZIP_SUFFIX = ".zip"
TABLE_SUFFIX = ".csv"
PARAMETERS = ("scale", "seed", "k", "generalize", "max_suppression")  # the CloneOptions a bundle may set
CHUNK = 1 << 20
MAX_ENTRIES = 1000  # a 40,000-entry zip is not a bundle of related tables
MAX_RATIO = 200  # CSV text deflates 5-20x; a zip bomb 1000x
MAX_BUNDLE_BYTES = int(os.environ.get("TWIN_MAX_BUNDLE_BYTES", str(20 << 30)))
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}


def is_bundle(path: Path) -> bool:
    return path.is_dir() or path.name.lower().endswith(ZIP_SUFFIX)


def bundle_candidates(folder: Path) -> dict[str, tuple[int, int]]:
    """Complete-looking bundles in the landing folder, with (size, mtime in ns): zips, and folders with `.ready`
    (their total size and newest mtime, so a file still changing in a marked folder delays it one more tick).
    Nothing is followed: a link named .zip or to a folder is left to the table side, which rejects it."""
    if not folder.is_dir():
        return {}
    found = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or entry.is_symlink():
                continue
            if entry.is_file(follow_symlinks=False) and entry.name.lower().endswith(ZIP_SUFFIX):
                info = entry.stat(follow_symlinks=False)
                found[entry.name] = (info.st_size, info.st_mtime_ns)
            elif entry.is_dir(follow_symlinks=False) and os.path.lexists(Path(entry.path) / READY_MARKER):
                stats = [member.lstat() for member in Path(entry.path).iterdir()]
                found[entry.name] = (sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats))
    return found


def _is_member(name: str) -> bool:
    return not name.startswith(".") and (name == SPEC_NAME or name.lower().endswith(TABLE_SUFFIX))


Member = tuple[str, int, Callable]  # name, size, open() -> a binary stream


@contextlib.contextmanager
def members(bundle: Path) -> Iterator[list[Member]]:
    """The bundle's members sorted by name, checked before any is read (see the module docstring)."""
    if bundle.is_dir() and not bundle.is_symlink():
        found = []
        for path in sorted(bundle.iterdir()):
            info = path.lstat()
            if not _is_member(path.name):
                continue
            if not stat.S_ISREG(info.st_mode):
                raise TwinInputError(bundle, f"member {path.name} is a symbolic link or not a regular file; "
                                             "links are never followed")
            found.append((path.name, info.st_size, lambda path=path: open_regular(path)))
        yield found
        return
    try:
        with open_regular(bundle) as handle, zipfile.ZipFile(handle) as archive:
            yield _zip_members(archive, bundle)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError, RuntimeError,
            zlib.error) as error:  # corrupt deflate data, deflate64, a bad CRC: while reading the directory or members
        raise TwinInputError(bundle, f"is not a readable zip file ({error})") from None


def _zip_members(archive: zipfile.ZipFile, bundle: Path) -> list[Member]:
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise TwinInputError(bundle, f"holds {len(infos):,} entries; a bundle may hold at most {MAX_ENTRIES:,}")
    entries = [(entry, Path(entry.filename).name) for entry in infos
               if not entry.is_dir() and "__MACOSX" not in entry.filename]
    entries = [(entry, name) for entry, name in entries if _is_member(name)]
    duplicated = sorted(name for name, count in Counter(name for _, name in entries).items() if count > 1)
    if duplicated:
        raise TwinInputError(bundle, f"holds several files named {', '.join(duplicated)}")
    total = 0
    for entry, name in entries:
        if entry.flag_bits & 0x1:
            raise TwinInputError(bundle, f"member {name} is encrypted; land the bundle unencrypted")
        if entry.compress_type not in ZIP_METHODS:
            raise TwinInputError(bundle, f"member {name} uses compression method {entry.compress_type}; only "
                                         f"{' and '.join(ZIP_METHODS.values())} are read")
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise TwinInputError(bundle, f"member {name} is a symbolic link; links are never followed")
        if entry.file_size > MAX_RATIO * max(entry.compress_size, 1) and entry.file_size > PROBE_BYTES:
            raise TwinInputError(bundle, f"member {name} expands {entry.file_size / max(entry.compress_size, 1):,.0f}"
                                         f" times ({entry.file_size:,} bytes): refused as a possible zip bomb "
                                         f"(at most {MAX_RATIO}x)")
        total += entry.file_size
    if total > MAX_BUNDLE_BYTES:
        raise TwinInputError(bundle, f"expands to {total:,} bytes; the limit is {MAX_BUNDLE_BYTES:,} "
                                     "(TWIN_MAX_BUNDLE_BYTES)")
    return [(name, entry.file_size, lambda entry=entry: archive.open(entry))
            for entry, name in sorted(entries, key=lambda pair: pair[1])]


def unpack(bundle: Path, target: Path, file_mode: int | None = None) -> Path:
    """Copy the bundle's members (from a folder, or flattened out of a zip) into the existing folder `target`."""
    with members(bundle) as found:
        for name, _, open_member in found:
            with open_member() as source, open(target / name, "wb") as copy:
                shutil.copyfileobj(source, copy, CHUNK)
            if file_mode is not None:
                os.chmod(target / name, file_mode)
    return target


def _digest(digest, name: str, size: int) -> None:
    digest.update(name.encode() + b"\0" + size.to_bytes(8, "big"))


def bundle_sha256(folder: Path) -> str:
    """SHA-256 over the members of an unpacked bundle: sorted names, each with its length and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and _is_member(p.name)):
        _digest(digest, path.name, path.stat().st_size)
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class BundleSpec:
    """An unpacked bundle, checked: its tables, relationships, primary keys and clone parameters."""

    tables: dict[str, Path]
    relationships: list[tuple[str, str, str, str]]
    primary_keys: dict[str, str]
    parameters: dict

    def options(self, **overrides) -> CloneOptions:
        chosen = {**self.parameters, **{name: value for name, value in overrides.items() if value is not None}}
        return CloneOptions(**chosen)


def read_spec(folder: Path, origin: Path | str) -> BundleSpec:
    """Check an unpacked bundle in `folder` (errors name `origin`, the landed bundle): relationships.json is
    there and well-formed, every table reads, and every key it names is a column of a table in the bundle."""
    tables = {path.stem: path for path in sorted(folder.iterdir()) if path.name.lower().endswith(TABLE_SUFFIX)}
    spec_path = folder / SPEC_NAME
    if not spec_path.is_file():
        raise TwinInputError(origin, f"has no {SPEC_NAME} (foreign keys, primary keys, clone parameters)")
    if len(tables) < 2:
        raise TwinInputError(origin, f"holds {len(tables)} CSV table(s); a bundle relates at least 2")
    where = f"{origin}/{SPEC_NAME}"
    try:
        spec = read_settings(spec_path)
    except TwinInputError as error:
        raise TwinInputError(where, error.problem) from None
    if not isinstance(spec, dict):
        raise TwinInputError(where, "must hold a JSON object")
    unknown = sorted(set(spec) - {"foreign_keys", "primary_keys", *PARAMETERS})
    if unknown:
        raise TwinInputError(where, f"unknown setting(s) {', '.join(unknown)}; allowed: foreign_keys, "
                                    f"primary_keys, {', '.join(PARAMETERS)}")
    foreign_keys, primary_keys = spec.get("foreign_keys"), spec.get("primary_keys") or {}
    if not isinstance(foreign_keys, list) or not foreign_keys or not all(isinstance(f, str) for f in foreign_keys):
        raise TwinInputError(where, 'needs "foreign_keys": a non-empty list like ["loans.borrower_id=borrowers.id"]')
    if not isinstance(primary_keys, dict) or not all(isinstance(v, str) for v in primary_keys.values()):
        raise TwinInputError(where, 'needs "primary_keys" as {"table": "column"}')
    try:
        relationships = [parse_foreign_key(text) for text in foreign_keys]
    except TwinInputError as error:
        raise TwinInputError(where, error.problem) from None
    columns = {}
    for name, path in tables.items():
        try:
            columns[name] = set(probe_table(path))
        except TwinInputError as error:
            raise TwinInputError(f"{origin}/{path.name}", error.problem) from None
    named = [pair for child, foreign_key, parent, primary_key in relationships
             for pair in ((child, foreign_key), (parent, primary_key))]
    for table, column in named + list(primary_keys.items()):
        if table not in columns:
            raise TwinInputError(where, f"names table {table!r}, which is not in the bundle "
                                        f"(tables: {', '.join(tables)})")
        if column not in columns[table]:
            raise TwinInputError(where, f"names column {table}.{column}, which {table}.csv does not have")
    parameters = {name: spec[name] for name in PARAMETERS if name in spec}
    validate_options(CloneOptions(**parameters), where)
    _acyclic(relationships, where)
    return BundleSpec(tables, relationships, dict(primary_keys), parameters)


def _acyclic(relationships: list[tuple[str, str, str, str]], where: str) -> None:
    """Parents must come before children: a cycle (a -> b -> a, or a table its own parent) has no order."""
    parents: dict[str, set[str]] = {}
    for child, _, parent, _ in relationships:
        parents.setdefault(child, set()).add(parent)
    done: set[str] = set()

    def visit(table: str, path: tuple[str, ...]) -> None:
        if table in path:
            raise TwinInputError(where, f"foreign keys form a cycle ({' -> '.join(path[path.index(table):] + (table,))})")
        if table not in done:
            for parent in sorted(parents.get(table, ())):
                visit(parent, path + (table,))
            done.add(table)

    for table in sorted(parents):
        visit(table, ())


def inspect_bundle(bundle: Path) -> str:
    """What the sensor asks of a landed bundle: its SHA-256, once its directory, its spec and the first rows of
    each table check out. Each member is streamed once (hashed whole, only its first PROBE_BYTES kept), so a
    tick never holds or writes a whole bundle."""
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory() as scratch, members(bundle) as found:
        for name, size, open_member in found:
            _digest(digest, name, size)
            kept = bytearray()
            with open_member() as source:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    if len(kept) < PROBE_BYTES:
                        kept += chunk[: PROBE_BYTES - len(kept)]
            if size > len(kept) and name != SPEC_NAME:  # probe whole lines only
                kept = kept[: kept.rfind(b"\n") + 1] or kept
            (Path(scratch) / name).write_bytes(bytes(kept))
        read_spec(Path(scratch), bundle)
    return digest.hexdigest()
