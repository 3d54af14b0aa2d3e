"""One dynamic partition per portfolio, keyed by what the file is called and what it contains.

The content part is 64 bits of `tables.sampled_sha256` (size, first and last MiB), not of the full SHA-256, so
the landing sensor's tick reads at most 2 MiB of a file whatever its size. Why that is still safe:
- identical bytes always give the same key (the digest is a function of the bytes);
- up to 2 MiB the digest covers every byte: different files get different keys (64 bits: ~2^32 tries to
  find a collision, where the old 24 bits took seconds);
- above 2 MiB two different files of the same name, size, head and tail share a key; the run's raw_upload
  step hashes the whole file and refuses one whose full SHA-256 differs from what its portfolio already holds
  (`raw.keep_raw_copy`), and the sensor never skips such a file as "same bytes" (it lets the run decide), so
  two different files are never cloned into, or published as, one portfolio.

A single table and a bundle of related tables are different portfolios with different assets, so they are in
different partition sets: a bundle's key never shows as a partition of the single-table assets (or the reverse).
"""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg

from ..tables import sampled_sha256

portfolios = dg.DynamicPartitionsDefinition(name="portfolios")  # single tables: the clone_portfolio assets
bundle_portfolios = dg.DynamicPartitionsDefinition(name="bundles")  # bundles of related tables: related_twin

STEM_MAX = 40
HASH_CHARS = 16  # 64 bits: a different file with the same key takes ~2^32 tries, not seconds (24 bits)


def portfolio_key(file_name: str | Path, sha256: str) -> str:
    """`<sanitised stem>-<first 16 hex of the digest>` (a `sampled_sha256` for a table, the full SHA-256 of a
    bundle): readable in the UI, and the same bytes give the same key.

    The stem keeps only lower-case letters, digits and underscores, so the key is safe in paths, URLs and
    Dagster's partition syntax; the hash tells two uploads with the same name apart.
    """
    stem = Path(file_name).name.split(".")[0].lower()
    stem = re.sub(r"[^a-z0-9]+", "_", stem).strip("_")[:STEM_MAX].strip("_") or "upload"
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"expected a hex SHA-256 digest, got {sha256!r}")
    return f"{stem}-{sha256[:HASH_CHARS]}"


def table_key(file_name: str | Path, path: str | Path, follow_links: bool = True) -> str:
    """The portfolio key of a table file landed or uploaded as `file_name` (reads at most 2 MiB of `path`)."""
    return portfolio_key(file_name, sampled_sha256(path, follow_links)[0])
