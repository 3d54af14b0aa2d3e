"""Twins of any size in bounded memory: independent shards, each sampled, protected and written on its own.

Why shards work for privacy as well as for memory: every shard is made k-anonymous and copy-free by itself,
and a union of k-anonymous tables is k-anonymous (a quasi-identifier combination that occurs k times in one
shard occurs at least k times in the union), so no step ever needs the whole twin in memory. A shard's seed
is derived from (clone seed, shard number) only, so the twin is the same whether its shards run in one
process, in a pool of processes, or as separate Dagster steps on a cluster. DuckDB then recounts k and looks
for copies of real rows across all shards out of core, and the quality report reads a uniform sample.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .engine import GaussianCopulaEngine
from .options import CloneOptions
from .protection import protect
from .tables import atomic_path, to_csv

SHARD_ROWS = 500_000
QUALITY_SAMPLE_ROWS = 1_000_000


@dataclass(frozen=True)
class Shard:
    index: int
    first_row: int
    rows: int

    @property
    def file_name(self) -> str:
        return f"shard-{self.index:05d}.parquet"


def plan_shards(n: int, shard_rows: int = SHARD_ROWS) -> list[Shard]:
    """Split `n` rows into shards of at most `shard_rows` (the last one smaller)."""
    count = max(1, math.ceil(n / shard_rows))
    return [Shard(i, i * shard_rows, min(shard_rows, n - i * shard_rows)) for i in range(count) if n - i * shard_rows > 0]


def shard_seed(seed: int | None, shard: int) -> int:
    """The seed of one shard: a function of (clone seed, shard number) only."""
    return int(np.random.SeedSequence([seed or 0, shard]).generate_state(1, dtype=np.uint64)[0])


def make_shard(engine: GaussianCopulaEngine, real: pd.DataFrame, options: CloneOptions, shard: Shard, folder: Path,
               frames: list | None = None) -> dict:
    """Sample, protect and write one shard; returns its protection figures. With `frames` the shard is kept
    there instead of written: a caller holding the whole twin in memory passes the same list to `sample_shards`,
    `verify_shards` and `merge_shards` (a Parquet file written and read back cost 0.25 CPU s per 100,000 x 55)."""
    synthetic = engine.sample(shard.rows, seed=shard_seed(options.seed, shard.index), first_row=shard.first_row)
    protected, protection = protect(synthetic, real, engine, options, first_row=shard.first_row)
    if len(protected) < shard.rows:  # protection refills what it removes: a short shard is a bug, not a result
        raise RuntimeError(f"shard {shard.index}: protection returned {len(protected)} of {shard.rows} rows")
    if frames is None:
        _write_shard(protected, Path(folder) / shard.file_name)
    else:
        frames.append(protected)
    return {"shard": shard.index, "rows": len(protected), "protection": protection}


def _write_shard(frame: pd.DataFrame, path: Path) -> Path:
    """One shard's Parquet file, atomically. Float columns are stored plain, not dictionary-encoded: of a wide
    shard's most varied columns (amounts, balances) nearly every value is distinct, and hashing them into a
    dictionary as long as the column was a third of the write, for a file only 10 % smaller, read back as fast
    (the text and integer columns keep their dictionaries). No min/max statistics: nothing reads shards by them
    (DuckDB scans every row group, the row counts are in the footer anyway)."""
    dictionary = [name for name, dtype in frame.dtypes.items() if dtype.kind != "f"]
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False, use_dictionary=dictionary, write_statistics=False)
    return Path(path)


_WORKER: dict = {}


def _init_worker(engine, real, options, folder) -> None:
    _WORKER.update(engine=engine, real=real, options=options, folder=folder)


def _run_in_worker(shard: Shard) -> dict:
    return make_shard(_WORKER["engine"], _WORKER["real"], _WORKER["options"], shard, _WORKER["folder"])


def make_shards(engine: GaussianCopulaEngine, real: pd.DataFrame, options: CloneOptions, n: int, folder: Path,
                workers: int = 1, progress=None, shard_rows: int = SHARD_ROWS, frames: list | None = None) -> list[dict]:
    """All shards of an `n`-row twin into `folder`, in `workers` processes; `progress(message)` after each.
    `frames`, when given, receives every shard's frame in shard order, unwritten, if they are made in this process
    (it stays empty, and the shards are files, if they are made in others): hold them only for a twin small enough
    to keep whole."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shards = plan_shards(n, shard_rows)
    started, results = time.perf_counter(), []

    def report(result: dict) -> None:
        results.append(result)
        if progress:
            done = sum(item["rows"] for item in results)
            elapsed = time.perf_counter() - started
            eta = elapsed / len(results) * (len(shards) - len(results))
            progress(f"shard {len(results)}/{len(shards)}: {done:,} rows in {elapsed:.0f} s, about {eta:.0f} s to go")

    if workers <= 1 or len(shards) == 1:
        for shard in shards:
            report(make_shard(engine, real, options, shard, folder, frames))
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(engine, real, options, folder)) as pool:
            for result in pool.map(_run_in_worker, shards):
                report(result)
    return sorted(results, key=lambda item: item["shard"])


def recount_database(memory_limit: str = "1GB"):
    """The DuckDB database `verify_shards` recounts in (it takes a cursor). A caller opens it before its arrays
    exist: DuckDB gives the C library's free memory back to the system as each database starts (malloc_trim),
    memory a clone keeps for its next arrays (cli._keep_freed_memory) and would fault in again (0.1-0.2 GB)."""
    import duckdb

    connection = duckdb.connect()
    connection.execute("SET memory_limit = ?", [memory_limit])  # values and paths are parameters, never SQL text
    connection.execute("SET preserve_insertion_order = false")
    return connection


def _quoted(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def verify_shards(folder: Path, real: pd.DataFrame, quasi_identifiers: list[str], ignore_columns: list[str],
                  k: int = 5, memory_limit: str = "1GB", frames: list[pd.DataFrame] | None = None,
                  database=None) -> dict:
    """Recount k over all shards, count rows equal to a real row, and among them the disclosive ones: equal to a
    real record whose combination fewer than `k` real rows share. Out of core in DuckDB; the shard path is a query
    parameter (a folder named o'q is not SQL). `frames`: the shards kept in memory (`make_shards`), if any;
    `database`: a `recount_database` to take a cursor of (else one is opened with `memory_limit`)."""
    with recount_database(memory_limit) if database is None else database.cursor() as connection:
        if frames:  # each frame scanned where it is: no concatenated copy of the twin
            for number, frame in enumerate(frames):
                connection.register(f"shard_{number}", frame)
            shards = "(" + " UNION ALL ".join(f"SELECT * FROM shard_{number}" for number in range(len(frames))) + ")"
            pattern = None
        else:
            shards, pattern = "read_parquet($shards)", {"shards": str(Path(folder) / "shard-*.parquet")}
        rows = connection.execute(f"SELECT count(*) FROM {shards}", pattern).fetchall()[0][0]
        smallest = None
        if quasi_identifiers:
            groups = ", ".join(map(_quoted, quasi_identifiers))
            smallest = connection.execute(f"SELECT min(c) FROM (SELECT count(*) AS c FROM {shards} "
                                          f"GROUP BY {groups})", pattern).fetchall()[0][0]
        compared = [name for name in real.columns if name not in set(ignore_columns)]
        columns = ", ".join(map(_quoted, compared))
        connection.register("real_rows", real[compared])
        connection.execute(f"CREATE TEMP TABLE real_combinations AS SELECT {columns}, count(*) AS n FROM real_rows "
                           f"GROUP BY ALL")
        condition = " AND ".join(f"s.{_quoted(name)} IS NOT DISTINCT FROM r.{_quoted(name)}" for name in compared)
        copies, rare = connection.execute(
            f"SELECT count(*), count(*) FILTER (WHERE r.n < {int(k)}) FROM {shards} s "
            f"JOIN real_combinations r ON {condition}", pattern).fetchall()[0]
    return {"rows": int(rows), "k": None if smallest is None else int(smallest), "exact_matches": int(copies),
            "exact_match_rate": copies / rows if rows else 0.0, "rare_record_copies": int(rare)}


def sample_shards(folder: Path, rows: int = QUALITY_SAMPLE_ROWS, seed: int = 0,
                  frames: list[pd.DataFrame] | None = None) -> pd.DataFrame:
    """A uniform random sample of at most `rows` rows across all shards, read one shard at a time. `frames`: the
    shards kept in memory (`make_shards`), if any."""
    sources = frames or _shard_files(folder)
    sizes = [len(frame) for frame in frames] if frames else [_row_count(path) for path in sources]
    total = sum(sizes)
    rng = np.random.default_rng(seed)
    parts = []
    for source, size in zip(sources, sizes):
        take = size if total <= rows else int(rng.binomial(size, rows / total))
        frame = source if frames else pd.read_parquet(source)
        parts.append(frame if take >= size else frame.iloc[np.sort(rng.choice(size, take, replace=False))])
    return pd.concat(parts, ignore_index=True)


def _shard_files(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob("shard-*.parquet"))


def _row_count(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def merge_shards(folder: Path, target: Path, escape_formulas: bool = True, dialect: dict | None = None,
                 frames: list[pd.DataFrame] | None = None) -> Path:
    """Concatenate shard files into one CSV (formula-escaped unless asked not to; in the input's `dialect`, see
    tables.to_csv) or Parquet file (by suffix), one shard in memory at a time, atomically. `frames`: the shards
    kept in memory (`make_shards`), if any."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_path(target) as tmp:
        writer = None
        for number, source in enumerate(frames or _shard_files(folder)):
            if Path(target).suffix.lower() == ".parquet":
                table = pa.Table.from_pandas(source, preserve_index=False) if frames else pq.read_table(source)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
            else:
                to_csv(source if frames else pd.read_parquet(source), tmp, escape_formulas, dialect,
                       mode="a" if number else "w", header=not number)
        if writer is not None:
            writer.close()
    return Path(target)
