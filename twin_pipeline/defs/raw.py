"""The one place real rows are kept: an immutable copy of each upload in a directory only its owner can read.

`raw/<key>/<file>` (directory 0700, file 0600) is written once and verified by its SHA-256 whenever it is read;
everything under `portfolios/` is derived and holds no real row. Deleting the upload after the clone (the
seed's "original data can be deleted") removes this copy and the landed file, and is audited.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from ..options import CloneOptions
from ..tables import TwinInputError, atomic_path, open_regular, read_table, sha256_file
from .bundles import bundle_sha256, unpack
from .config import sidecar_of
from .partitions import HASH_CHARS, portfolio_key, table_key
from .resources import TwinStorage

PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600
MANIFEST = "raw_upload.json"  # the file raw_upload is published as (assets.raw_upload)


def keep_raw_copy(storage: TwinStorage, portfolio: str, source: str) -> Path:
    """Copy `source` into raw/<portfolio>/ unless already there; with no source, return the kept copy.
    A source whose full SHA-256 differs from the upload the portfolio already holds is refused: above 2 MiB
    the key (`partitions`) samples the file, so this is where two files sharing a key are told apart."""
    folder = storage.raw_dir(portfolio)
    if source:
        source_path = Path(source)
        target = folder / source_path.name
        held = _held_sha256(storage, portfolio, target)
        if held is not None and sha256_file(source_path) != held:
            raise TwinInputError(source_path, f"is not the upload portfolio {portfolio} holds: same name, size, first "
                                              "and last MiB, other bytes in between; land it under another name")
        if not target.exists():
            _private_dir(folder)
            with atomic_path(target) as tmp, open_regular(source_path) as original, open(tmp, "wb") as copy:
                shutil.copyfileobj(original, copy, 1 << 20)  # O_NOFOLLOW: a link swapped in after the tick is refused
                os.chmod(tmp, PRIVATE_FILE)
        belongs_to = table_key(source_path.name, target)
        if belongs_to != portfolio:
            target.unlink()
            raise TwinInputError(source_path, f"is portfolio {belongs_to} (name + content hash), not {portfolio}")
    else:
        kept = sorted(folder.iterdir()) if folder.is_dir() else []
        if not kept:
            raise TwinInputError(None, f"portfolio {portfolio} has no raw upload in {folder}: it was deleted after "
                                       "its clone or never landed; land the file again (or set `source`)")
        target = kept[0]
    found = table_key(target.name, target)
    if found != portfolio:
        raise TwinInputError(target, f"the kept raw copy changed (it now hashes to {found}): refusing to use it")
    return target


def _held_sha256(storage: TwinStorage, portfolio: str, kept: Path) -> str | None:
    """The full SHA-256 of the upload a portfolio already holds: its kept raw copy's, else (the copy deleted
    after its clone) the one its published manifest recorded; None for a new portfolio."""
    if kept.exists():
        return sha256_file(kept)
    try:
        return json.loads((storage.portfolio_dir(portfolio) / MANIFEST).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def keep_raw_bundle(storage: TwinStorage, portfolio: str, source: str) -> Path:
    """Unpack a bundle (folder or zip) into raw/<portfolio>/ unless already there; with no source, the kept copy.
    The copy is unpacked beside its place and renamed into it whole, and its SHA-256 must give `portfolio`."""
    folder = storage.raw_dir(portfolio)
    if source and not folder.is_dir():
        source_path = Path(source)
        if not source_path.exists():
            raise TwinInputError(source_path, "bundle not found")
        _private_dir(folder.parent / ".unpacking")
        scratch = Path(tempfile.mkdtemp(dir=folder.parent / ".unpacking"))  # mkdtemp: 0700
        try:
            belongs_to = portfolio_key(source_path.name, bundle_sha256(unpack(source_path, scratch, PRIVATE_FILE)))
            if belongs_to != portfolio:
                raise TwinInputError(source_path, f"is portfolio {belongs_to} (name + content hash), not {portfolio}")
            os.replace(scratch, folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if not folder.is_dir():
        raise TwinInputError(None, f"portfolio {portfolio} has no raw bundle in {folder}: land it again "
                                   "(or set `source`)")
    digest = bundle_sha256(folder)
    if not portfolio.endswith(f"-{digest[:HASH_CHARS]}"):
        raise TwinInputError(folder, f"the kept raw bundle changed (it now hashes to {digest[:HASH_CHARS]}): "
                                     "refusing to use it")
    return folder


def _private_dir(folder: Path) -> None:
    for directory in (folder.parent, folder):
        directory.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        os.chmod(directory, PRIVATE_DIR)


def options_of(manifest: dict) -> CloneOptions:
    return CloneOptions(**manifest["options"])


def load_real(storage: TwinStorage, manifest: dict) -> pd.DataFrame:
    """The real table of a portfolio, read from its raw copy after checking the copy's SHA-256."""
    path = storage.raw_dir(manifest["portfolio"]) / manifest["file_name"]
    if not path.exists():
        raise TwinInputError(path, "the raw upload was deleted after its clone (RAW_DATA_DELETED); "
                                   "steps that compare with real rows need the file landed again")
    if sha256_file(path) != manifest["sha256"]:
        raise TwinInputError(path, "the raw copy no longer matches the SHA-256 recorded at ingestion")
    return read_table(path)


def delete_raw_audited(context, storage: TwinStorage, manifest: dict) -> dict:
    """Delete the raw upload (`delete_raw`), audited as RAW_DATA_DELETED; returns the asset metadata saying so."""
    deleted = delete_raw(storage, manifest)
    storage.audit().append("RAW_DATA_DELETED", context.partition_key, manifest["sha256"],
                           {"run_id": context.run.run_id, "deleted": deleted})
    return {"raw_deleted": dg.MetadataValue.json(deleted)}


def delete_raw(storage: TwinStorage, manifest: dict) -> list[str]:
    """Delete the raw copy and, when it was landed in landing/, the landed file and its settings file."""
    folder = storage.raw_dir(manifest["portfolio"])
    deleted = [folder / manifest["file_name"]]
    source = Path(manifest["source"]) if manifest.get("source") else None
    if source is not None and source.resolve().parent == storage.landing.resolve() and source.exists() \
            and sha256_file(source) == manifest["sha256"]:
        deleted += [source] + [sidecar for sidecar in [sidecar_of(source)] if sidecar is not None]
    for path in deleted:
        path.unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return [str(path) for path in deleted]
