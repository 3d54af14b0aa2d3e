"""DigitalTwinCloner: the notebook API. Train a model on a table, keep it by id, generate twins from it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from .engine.copula import GaussianCopulaEngine
from .engine.multitable import MultiTableEngine
from .errors import TwinInputError
from .paths import data_dir
from .tables import as_read, write_json


class DigitalTwinCloner:
    """Models are saved under `<data>/models/<model_id>.json` (statistical summaries only), so a twin can be
    regenerated later, or elsewhere, without the original table."""

    def __init__(self, data_directory: str | os.PathLike | None = None, k: int = 5):
        self.models_dir = data_dir(data_directory) / "models"
        self.k = k

    def train(self, df: pd.DataFrame, primary_key: str | None = None,
              column_kinds: dict[str, str] | None = None) -> tuple[str, dict]:
        """Fit a copula on `df` as `twin clone` does on a file (read as `read_table` reads it; direct identifiers
        become fresh values of their format, never a real one); returns (model_id, metadata with columns, n_rows,
        kinds and chosen families)."""
        from .options import CloneOptions
        from .pipeline import fit_model

        df = as_read(df)
        engine = fit_model(df, CloneOptions(primary_key=primary_key, k=self.k, column_kinds=dict(column_kinds or {}),
                                            seed=None))
        model_id = self._store(engine.to_dict())
        described = engine.describe()
        metadata = {
            "model_id": model_id,
            "columns": list(df.columns),
            "n_rows": len(df),
            "primary_key": primary_key,
            "column_kinds": {name: entry["kind"] for name, entry in described.items()},
            "families": {name: entry["family"] for name, entry in described.items() if entry["family"]},
            "model_path": str(self.models_dir / f"{model_id}.json"),
        }
        return model_id, metadata

    def train_tables(self, tables: dict[str, pd.DataFrame], relationships: list[tuple[str, str, str, str]],
                     primary_keys: dict[str, str] | None = None) -> tuple[str, dict]:
        """Fit related tables; relationships are (child, foreign_key, parent, primary_key) tuples."""
        engine = MultiTableEngine(k=self.k).fit(tables, relationships, primary_keys)
        model_id = self._store(engine.to_dict())
        return model_id, {"model_id": model_id, "tables": engine.order, "rows": engine.rows,
                          "relationships": [list(relation) for relation in relationships]}

    def generate_tables(self, model_id: str, scale: float = 1.0, rows: dict[str, int] | None = None,
                        seed: int | None = None) -> dict[str, pd.DataFrame]:
        """Synthetic related tables; every foreign key references a synthetic parent."""
        return MultiTableEngine.from_dict(self._read(model_id)).sample(rows=rows, scale=scale, seed=seed)

    def _store(self, model: dict) -> str:
        model_id = "twin-" + hashlib.sha256(json.dumps(model, sort_keys=True, default=str).encode()).hexdigest()[:12]
        write_json(model, self.models_dir / f"{model_id}.json", indent=None)
        return model_id

    def _read(self, model_id: str) -> dict:
        path = self.models_dir / f"{model_id}.json"
        if not path.exists():
            raise TwinInputError(path, f"no model with id {model_id!r}")
        return json.loads(path.read_text())

    def load(self, model_id: str) -> GaussianCopulaEngine:
        return GaussianCopulaEngine.from_dict(self._read(model_id))

    def generate(self, model_id: str, num_samples: int, seed: int | None = None,
                 conditions: dict | None = None) -> pd.DataFrame:
        """`num_samples` synthetic rows from a trained model (same seed, same rows); `conditions` as in
        GaussianCopulaEngine.iter_samples, e.g. {"Status": "bad"} or {"Income": (None, 120)} for stress tests."""
        return self.load(model_id).sample(num_samples, seed=seed, conditions=conditions)

    @staticmethod
    def get_comparison(original: pd.DataFrame, synthetic: pd.DataFrame, primary_key: str | None = None) -> dict:
        """similarity_score (0-100), correlation_error, ks_statistics and categorical_match of a twin. Direct
        identifiers (e-mail, phone, ...) get fresh values in a twin and are not scored, as in `twin clone`."""
        from .privacy.identifiers import detect_direct_identifiers
        from .quality import quality_report

        identifiers = detect_direct_identifiers(original, primary_key=primary_key)
        return quality_report(original, synthetic, primary_key=primary_key,
                              column_kinds={name: "identifier" for name in identifiers} or None)

    def list_models(self) -> list[str]:
        return sorted(path.stem for path in Path(self.models_dir).glob("twin-*.json"))
