"""Where twin-pipeline keeps its files: `TWIN_DATA_DIR`, or ./data; and the files it ships (package data)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SAMPLES = PACKAGE / "samples"  # the bundled public credit tables (modeldata's credit_data, AER's CreditCard)
INSTANCE_CONFIG = PACKAGE / "dagster.yaml"  # the Dagster instance config; the repository's dagster.yaml links here


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data directory: the argument, else $TWIN_DATA_DIR, else ./data."""
    return Path(override or os.environ.get("TWIN_DATA_DIR") or "data")
