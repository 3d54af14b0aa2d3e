"""One dynamic partition per portfolio, keyed by what the file is called and what it contains.

A single table and a bundle of related tables are different portfolios with different assets, so they are in
different partition sets: a bundle's key never shows as a partition of the single-table assets (or the reverse).
"""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg

portfolios = dg.DynamicPartitionsDefinition(name="portfolios")  # single tables: the clone_portfolio assets
bundle_portfolios = dg.DynamicPartitionsDefinition(name="bundles")  # bundles of related tables: related_twin

STEM_MAX = 40
HASH_CHARS = 16  # 64 bits: a different file with the same key takes ~2^32 tries, not seconds (24 bits)


def portfolio_key(file_name: str | Path, sha256: str) -> str:
    """`<sanitised stem>-<first 16 hex of the SHA-256>`: readable in the UI, and the same bytes give the same key.

    The stem keeps only lower-case letters, digits and underscores, so the key is safe in paths, URLs and
    Dagster's partition syntax; the hash tells two uploads with the same name apart.
    """
    stem = Path(file_name).name.split(".")[0].lower()
    stem = re.sub(r"[^a-z0-9]+", "_", stem).strip("_")[:STEM_MAX].strip("_") or "upload"
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"expected a hex SHA-256 digest, got {sha256!r}")
    return f"{stem}-{sha256[:HASH_CHARS]}"
