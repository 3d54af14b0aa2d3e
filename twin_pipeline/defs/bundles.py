"""Bundles: a portfolio of related tables landing together, as a folder or a `.zip` in `<data>/landing/`.

A bundle holds two or more CSV tables (each named by its file stem) and a `relationships.json`:
  {"foreign_keys": ["loans.borrower_id=borrowers.borrower_id"],
   "primary_keys": {"borrowers": "borrower_id", "loans": "loan_id"},
   "scale": 2.0, "seed": 1, "k": 5}            (the clone parameters are optional)
A folder is complete once it holds a `.ready` file (written last by whoever copies the folder: a folder has no
single size that says a copy is over); a zip once its size is stable over two sensor ticks and it opens. The
bundle's identity is a SHA-256 over its members (the CSVs and relationships.json), sorted by name, each
hashed with its name and length, so the same tables landing again, as a folder or a zip, give the same key.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..options import CloneOptions, validate_options
from ..related import parse_foreign_key
from ..tables import TwinInputError
from .landing import probe_table

SPEC_NAME = "relationships.json"
READY_MARKER = ".ready"
ZIP_SUFFIX = ".zip"
TABLE_SUFFIX = ".csv"
PARAMETERS = ("scale", "seed", "k", "generalize", "max_suppression")  # the CloneOptions a bundle may set
CHUNK = 1 << 20


def is_bundle(path: Path) -> bool:
    return path.is_dir() or path.name.lower().endswith(ZIP_SUFFIX)


def bundle_candidates(folder: Path) -> dict[str, tuple[int, int]]:
    """Complete-looking bundles in the landing folder, with (size, mtime in ns): zips, and folders with `.ready`
    (their total size and newest mtime, so a file still changing in a marked folder delays it one more tick)."""
    if not folder.is_dir():
        return {}
    found = {}
    for path in folder.iterdir():
        if path.name.startswith("."):
            continue
        if path.is_file() and path.name.lower().endswith(ZIP_SUFFIX):
            stat = path.stat()
            found[path.name] = (stat.st_size, stat.st_mtime_ns)
        elif path.is_dir() and (path / READY_MARKER).is_file():
            stats = [member.stat() for member in path.iterdir() if member.is_file()]
            found[path.name] = (sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats))
    return found


def _is_member(name: str) -> bool:
    return not name.startswith(".") and (name == SPEC_NAME or name.lower().endswith(TABLE_SUFFIX))


def unpack(bundle: Path, target: Path, file_mode: int | None = None) -> Path:
    """Copy the bundle's members (from a folder, or flattened out of a zip) into the existing folder `target`."""
    if bundle.is_dir():
        for path in sorted(bundle.iterdir()):
            if path.is_file() and _is_member(path.name):
                shutil.copyfile(path, target / path.name)
    else:
        try:
            with zipfile.ZipFile(bundle) as archive:
                entries = [e for e in archive.infolist() if not e.is_dir() and "__MACOSX" not in e.filename]
                names = [Path(e.filename).name for e in entries]
                duplicated = sorted({n for n in names if _is_member(n) and names.count(n) > 1})
                if duplicated:
                    raise TwinInputError(bundle, f"holds several files named {', '.join(duplicated)}")
                for entry, name in zip(entries, names):
                    if _is_member(name):
                        with archive.open(entry) as source, open(target / name, "wb") as copy:
                            shutil.copyfileobj(source, copy, CHUNK)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as error:
            raise TwinInputError(bundle, f"is not a readable zip file ({error})") from None
    if file_mode is not None:
        for path in target.iterdir():
            os.chmod(path, file_mode)
    return target


def bundle_sha256(folder: Path) -> str:
    """SHA-256 over the members of an unpacked bundle: sorted names, each with its length and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and _is_member(p.name)):
        digest.update(path.name.encode() + b"\0" + path.stat().st_size.to_bytes(8, "big"))
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
    try:
        spec = json.loads(spec_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TwinInputError(f"{origin}/{SPEC_NAME}", f"is not readable JSON ({error})") from None
    where = f"{origin}/{SPEC_NAME}"
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
    return BundleSpec(tables, relationships, dict(primary_keys), parameters)


def inspect_bundle(bundle: Path) -> str:
    """What the sensor asks of a landed bundle: its SHA-256, once it unpacks and its spec checks out."""
    with tempfile.TemporaryDirectory() as scratch:
        unpacked = unpack(bundle, Path(scratch))
        read_spec(unpacked, bundle)
        return bundle_sha256(unpacked)
