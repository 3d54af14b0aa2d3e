"""Twins of related tables (borrowers and their loans) whose foreign keys all point at synthetic parents.

Parents are modelled with one extra column per child table: how many children each parent has, so the count
follows the parent's own columns. A child table is modelled joined to its parent's columns, and generated
row by row conditioned on its synthetic parent's values (GaussianCopulaEngine.sample_given). Foreign keys are
then set to the parent's fresh key, so every one of them is valid by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..tables import TwinInputError
from .copula import GaussianCopulaEngine

PARENT_PREFIX = "parent."


@dataclass(frozen=True)
class Relationship:
    child: str
    foreign_key: str
    parent: str
    primary_key: str

    @property
    def count_column(self) -> str:
        return f"{self.child} per {self.parent}"


class MultiTableEngine:
    """Fit and sample a set of tables linked by (child, foreign_key, parent, primary_key) relationships."""

    def __init__(self, k: int = 5):
        self.k = k
        self.relationships: list[Relationship] = []
        self.engines: dict[str, GaussianCopulaEngine] = {}
        self.order: list[str] = []
        self.columns: dict[str, list[str]] = {}
        self.primary_keys: dict[str, str | None] = {}
        self.rows: dict[str, int] = {}

    def fit(self, tables: dict[str, pd.DataFrame], relationships: list[tuple[str, str, str, str]],
            primary_keys: dict[str, str] | None = None) -> "MultiTableEngine":
        self.relationships = [Relationship(*relation) for relation in relationships]
        self._validate(tables)
        self.primary_keys = {name: (primary_keys or {}).get(name) for name in tables}
        for relation in self.relationships:
            self.primary_keys[relation.parent] = relation.primary_key
        self.order = _parents_first(list(tables), self.relationships)
        self.columns = {name: list(frame.columns) for name, frame in tables.items()}
        self.rows = {name: len(frame) for name, frame in tables.items()}
        for name in self.order:
            joined = self.joined_frame(name, tables)
            parents = [column for column in joined.columns if str(column).startswith(PARENT_PREFIX)]
            self.engines[name] = GaussianCopulaEngine(k=self.k).fit(joined, primary_key=self.primary_keys[name],
                                                                    keep_columns=parents)  # sampled given
        return self

    def _validate(self, tables: dict[str, pd.DataFrame]) -> None:
        for relation in self.relationships:
            for table, column in ((relation.child, relation.foreign_key), (relation.parent, relation.primary_key)):
                if table not in tables:
                    raise TwinInputError(table, "relationship names a table that was not given")
                if column not in tables[table].columns:
                    raise TwinInputError(table, f"relationship names column {column!r}, which the table does not have")
            keys = tables[relation.parent][relation.primary_key]
            if keys.isna().any() or keys.duplicated().any():
                raise TwinInputError(relation.parent, f"primary key {relation.primary_key!r} is not unique and non-null")
            orphans = ~tables[relation.child][relation.foreign_key].dropna().isin(keys)
            if orphans.any():
                raise TwinInputError(relation.child, f"{int(orphans.sum())} rows have a {relation.foreign_key!r} that "
                                                     f"matches no {relation.parent}.{relation.primary_key}")

    def _parent_relation(self, table: str) -> Relationship | None:
        return next((relation for relation in self.relationships if relation.child == table), None)

    def _foreign_keys(self, table: str) -> list[str]:
        return [relation.foreign_key for relation in self.relationships if relation.child == table]

    def joined_frame(self, name: str, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """The table as modelled: without foreign keys, plus its children counts, plus its parent's columns.

        It is also the record that privacy protection looks at: a loan together with its borrower's columns.
        """
        frame = tables[name].drop(columns=self._foreign_keys(name))
        for relation in self.relationships:
            if relation.parent == name:
                counts = tables[relation.child][relation.foreign_key].value_counts()
                frame[relation.count_column] = counts.reindex(frame[relation.primary_key], fill_value=0).to_numpy()
        relation = self._parent_relation(name)
        if relation is not None:
            parent = tables[relation.parent]
            parent_columns = [column for column in parent.columns
                              if column != relation.primary_key and column not in self._foreign_keys(relation.parent)]
            joined = parent.set_index(relation.primary_key)[parent_columns].reindex(tables[name][relation.foreign_key])
            for column in parent_columns:
                frame[PARENT_PREFIX + column] = joined[column].to_numpy()
        return frame

    def sample(self, rows: dict[str, int] | None = None, scale: float = 1.0, seed: int | None = None) -> dict[str, pd.DataFrame]:
        """Synthetic tables: root tables get `rows[name]` (or `scale` x their real rows); children follow their parents."""
        seeds = dict(zip(self.order, np.random.SeedSequence(seed).spawn(len(self.order))))
        out: dict[str, pd.DataFrame] = {}
        for name in self.order:
            engine, rng_seed = self.engines[name], int(np.random.default_rng(seeds[name]).integers(2**63 - 1))
            relation = self._parent_relation(name)
            if relation is None:
                n = (rows or {}).get(name, int(round(scale * self.rows[name])))
                out[name] = engine.sample(n, seed=rng_seed)
                continue
            parent = out[relation.parent]
            repeats = np.repeat(np.arange(len(parent)), parent[relation.count_column].clip(lower=0).astype(int))
            given = parent.iloc[repeats].reset_index(drop=True)
            given_columns = [column for column in given.columns if PARENT_PREFIX + column in engine.correlation_matrix.index]
            conditions = given[given_columns].rename(columns=lambda column: PARENT_PREFIX + column)
            child = engine.sample_given(conditions, seed=rng_seed) if len(conditions) else engine.sample(0)
            child[relation.foreign_key] = given[relation.primary_key].to_numpy()
            for other in self._foreign_keys(name):
                if other != relation.foreign_key:  # further parents: any synthetic key, valid by construction
                    other_relation = next(r for r in self.relationships if r.child == name and r.foreign_key == other)
                    keys = out[other_relation.parent][other_relation.primary_key].to_numpy()
                    child[other] = np.random.default_rng(rng_seed).choice(keys, len(child))
            out[name] = child
        return {name: out[name][self.columns[name]] for name in self.order}


    def to_dict(self) -> dict:
        return {"format": "twin-pipeline/multi-table", "k": self.k, "order": self.order, "columns": self.columns,
                "rows": self.rows, "primary_keys": self.primary_keys,
                "relationships": [list(vars(relation).values()) for relation in self.relationships],
                "engines": {name: engine.to_dict() for name, engine in self.engines.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "MultiTableEngine":
        engine = cls(k=data["k"])
        engine.order, engine.columns, engine.rows = data["order"], data["columns"], data["rows"]
        engine.primary_keys = data["primary_keys"]
        engine.relationships = [Relationship(*relation) for relation in data["relationships"]]
        engine.engines = {name: GaussianCopulaEngine.from_dict(model) for name, model in data["engines"].items()}
        return engine


def _parents_first(names: list[str], relationships: list[Relationship]) -> list[str]:
    order, pending = [], list(names)
    while pending:
        ready = [name for name in pending
                 if all(relation.parent in order for relation in relationships if relation.child == name)]
        if not ready:
            raise TwinInputError(", ".join(pending), "relationships form a cycle; parents must come before children")
        order += ready
        pending = [name for name in pending if name not in ready]
    return order
