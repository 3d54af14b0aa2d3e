"""Sharded twins: the same rows in one process or several, k-anonymous and copy-free across all shards."""

from dataclasses import replace

import pandas as pd
import pytest

from twin_pipeline.options import CloneOptions
from twin_pipeline.pipeline import fit_model
from twin_pipeline.shards import (make_shards, merge_shards, plan_shards, recount_database, sample_shards,
                                  verify_shards)

QIS = ["Age", "Marital", "Home", "Job", "Income"]


@pytest.fixture(scope="module")
def setup(credit_data):
    real = credit_data.head(1500).reset_index(drop=True)
    real.insert(0, "loan_id", range(1, len(real) + 1))
    options = CloneOptions(primary_key="loan_id", quasi_identifiers=QIS, seed=11)
    return real, options, fit_model(real, options)


def read_all(folder):
    return pd.concat([pd.read_parquet(path) for path in sorted(folder.glob("shard-*.parquet"))], ignore_index=True)


def test_plan_covers_every_row_once():
    shards = plan_shards(1_234_567, shard_rows=500_000)
    assert [shard.rows for shard in shards] == [500_000, 500_000, 234_567]
    assert [shard.first_row for shard in shards] == [0, 500_000, 1_000_000]


def test_a_shard_file_reads_back_as_the_frame_written_its_floats_stored_plain(tmp_path):
    import numpy as np
    import pyarrow.parquet as pq

    from twin_pipeline.shards import _write_shard

    frame = pd.DataFrame({"amount": [1.5, -0.0, np.nan, 2.25] * 50, "count": pd.array([1, None, 3, 4] * 50, "Int64"),
                          "grade": ["A", None, "B", "A"] * 50, "term": [36, 60, 36, 36] * 50})
    path = _write_shard(frame, tmp_path / "shard-00000.parquet")
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, frame)
    assert np.signbit(back["amount"].to_numpy()).tolist() == np.signbit(frame["amount"].to_numpy()).tolist()
    columns = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {columns.column(i).path_in_schema: columns.column(i).encodings for i in range(columns.num_columns)}
    assert not any("DICTIONARY" in encoding for encoding in encodings["amount"])
    assert any("DICTIONARY" in encoding for encoding in encodings["grade"])


def test_same_twin_in_one_process_or_two(setup, tmp_path):
    real, options, engine = setup
    make_shards(engine, real, options, 6000, tmp_path / "one", workers=1, shard_rows=2000)
    make_shards(engine, real, options, 6000, tmp_path / "two", workers=2, shard_rows=2000)
    assert read_all(tmp_path / "one").equals(read_all(tmp_path / "two"))


def test_union_of_shards_is_k_anonymous_copy_free_and_keys_unique(setup, tmp_path):
    real, options, engine = setup
    make_shards(engine, real, options, 6000, tmp_path, shard_rows=2000)
    verified = verify_shards(tmp_path, real, QIS, ["loan_id"])
    twin = read_all(tmp_path)
    assert verified["k"] >= 5 and twin.groupby(QIS, dropna=False).size().min() >= 5
    assert verified["exact_matches"] == 0 and verified["rows"] == len(twin)
    assert twin["loan_id"].is_unique and not set(twin["loan_id"]) & set(real["loan_id"])


def test_verify_finds_a_planted_copy(setup, tmp_path):
    real, options, engine = setup
    make_shards(engine, real, replace(options, seed=3), 2000, tmp_path, shard_rows=2000)
    twin = read_all(tmp_path)
    planted = pd.concat([twin.iloc[:-1], real.iloc[[0]].assign(loan_id=10**9)], ignore_index=True)
    planted.astype(twin.dtypes.to_dict()).to_parquet(tmp_path / "shard-00000.parquet", index=False)
    assert verify_shards(tmp_path, real, QIS, ["loan_id"])["exact_matches"] == 1


def test_shards_kept_in_memory_give_what_their_files_give(setup, tmp_path):
    """A twin kept in memory (`frames`) is never written as shard files, and its sample, recount and merged
    outputs are those of the same shards written and read back."""
    real, options, engine = setup
    frames = []
    make_shards(engine, real, options, 6000, tmp_path / "kept", shard_rows=2000, frames=frames)
    make_shards(engine, real, options, 6000, tmp_path / "files", shard_rows=2000)
    assert len(frames) == 3 and not list((tmp_path / "kept").iterdir())
    for rows in (10_000, 1000):  # the whole twin, then a sample drawn alike from both
        kept, read = sample_shards(tmp_path / "kept", rows=rows, frames=frames), sample_shards(tmp_path / "files", rows=rows)
        assert kept.equals(read) and kept.dtypes.equals(read.dtypes)
    made_elsewhere = []  # shards made in other processes are files, whatever the caller asked
    make_shards(engine, real, options, 6000, tmp_path / "two", workers=2, shard_rows=2000, frames=made_elsewhere)
    assert made_elsewhere == [] and sample_shards(tmp_path / "two", frames=made_elsewhere).equals(
        pd.concat(frames, ignore_index=True))
    planted = frames[1].copy()
    planted.iloc[0] = real.iloc[0]  # a copy of a real row: found in memory as in the files
    frames[1] = planted
    planted.to_parquet(tmp_path / "files" / "shard-00001.parquet", index=False)
    recounted = [verify_shards(tmp_path / source, real, QIS, ["loan_id"], frames=kept)
                 for source, kept in (("kept", frames), ("files", None))]
    with recount_database() as database:  # a cursor of the caller's database, which stays open
        recounted.append(verify_shards(tmp_path / "kept", real, QIS, ["loan_id"], frames=frames, database=database))
        assert database.execute("SELECT 1").fetchall() == [(1,)]
    assert recounted[0] == recounted[1] == recounted[2]
    assert recounted[0]["exact_matches"] >= 1 and recounted[0]["rows"] == 6000
    for suffix in ("csv", "parquet"):
        merged = [merge_shards(tmp_path / source, tmp_path / f"{source}.{suffix}", frames=kept)
                  for source, kept in (("kept", frames), ("files", None))]
        assert pd.read_parquet(merged[0]).equals(pd.read_parquet(merged[1])) if suffix == "parquet" \
            else merged[0].read_bytes() == merged[1].read_bytes()


def test_sample_and_merge_read_one_shard_at_a_time(setup, tmp_path):
    real, options, engine = setup
    make_shards(engine, real, options, 6000, tmp_path / "s", shard_rows=2000)
    assert len(sample_shards(tmp_path / "s", rows=1000)) == pytest.approx(1000, rel=0.15)
    merged = pd.read_parquet(merge_shards(tmp_path / "s", tmp_path / "twin.parquet"))
    assert merged.equals(read_all(tmp_path / "s"))
    assert len(pd.read_csv(merge_shards(tmp_path / "s", tmp_path / "twin.csv"))) == len(merged)
