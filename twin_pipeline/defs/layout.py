"""Which files an asset of a twin is persisted as: declared on the asset (`persisted_as`), read by the IO manager.

One part: the asset's value is the file's content; several: the value is a dict of parts. Tables may be CSV or
Parquet (a large twin, or one asked for as Parquet, is written as Parquet under the declared name's stem), and
are handed to downstream steps as their path, since a twin may not fit in memory; JSON files as their value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

FILES = "twin/files"  # definition metadata: the asset's files by part
TABLE_FORMATS = (".csv", ".parquet")


def persisted_as(**files: str) -> dict:
    """Definition metadata of an asset persisted as `files` (part -> file name), e.g. persisted_as(model="model.json")."""
    return {FILES: files}


def files_of(definition_metadata: Mapping) -> dict[str, str]:
    """The declared files of an asset (part -> file name), from its definition metadata."""
    files = definition_metadata.get(FILES)
    if not files:
        raise ValueError("the asset declares no files: define it with twin_asset(..., files=...)")
    return dict(files)


def files_in(folder: Path, files: Mapping[str, str]) -> dict[str, Path]:
    """The existing files of an asset in a portfolio folder, by part (a table may be .csv or .parquet)."""
    found = {}
    for part, name in files.items():
        path = folder / name
        variants = [path.with_suffix(suffix) for suffix in TABLE_FORMATS] if path.suffix in TABLE_FORMATS else [path]
        existing = next((variant for variant in variants if variant.exists()), None)  # writes remove the other
        if existing is not None:
            found[part] = existing
    return found
