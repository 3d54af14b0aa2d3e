"""Where twin-pipeline keeps its files: `TWIN_DATA_DIR`, or ./data."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data directory: the argument, else $TWIN_DATA_DIR, else ./data."""
    return Path(override or os.environ.get("TWIN_DATA_DIR") or "data")
