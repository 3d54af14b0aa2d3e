"""Copy protection: no twin row equals a real row; no string rarer than k in the real data is emitted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin_pipeline.privacy import exact_copy_mask, remove_exact_copies, replace_rare_strings


def real_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "income": np.round(rng.lognormal(8, 0.5, n), 2),
        "job": rng.choice(["clerk", "nurse", "teacher"], n),
    })


class Sampler:
    """A resampler drawing fresh rows from a pool, recording how often it was asked."""

    def __init__(self, pool: pd.DataFrame):
        self.pool, self.calls, self.position = pool.reset_index(drop=True), [], 0

    def __call__(self, n: int) -> pd.DataFrame:
        self.calls.append(n)
        rows = self.pool.iloc[self.position:self.position + n]
        self.position += n
        return rows


def test_copies_of_real_rows_are_replaced_until_none_remain():
    real = real_table()
    fresh = real_table(200, seed=9).assign(age=lambda d: d["age"] + 200)  # ages no real person has
    synthetic = pd.concat([fresh.iloc[:100], real.iloc[:10]], ignore_index=True).sample(frac=1, random_state=1)
    sampler = Sampler(fresh.iloc[100:])
    cleaned, report = remove_exact_copies(synthetic, real, sampler)
    assert not exact_copy_mask(cleaned, real).any()
    assert len(cleaned) == len(synthetic)
    assert report["exact_copies_found"] == 10 and report["rows_resampled"] == 10 and report["copies_dropped"] == 0
    assert sampler.calls == [10]
    assert list(cleaned.dtypes) == list(synthetic.dtypes)
    # Rows that were not copies stay in place.
    untouched = ~exact_copy_mask(synthetic, real)
    pd.testing.assert_frame_equal(cleaned[untouched].reset_index(drop=True),
                                  synthetic[untouched].reset_index(drop=True))


def test_a_resampler_that_keeps_copying_is_bounded_then_rows_are_dropped():
    real = real_table()
    synthetic = pd.concat([real_table(50, seed=3).assign(age=300), real.iloc[:5]], ignore_index=True)
    stubborn = Sampler(pd.concat([real] * 10, ignore_index=True))  # only ever returns real rows
    cleaned, report = remove_exact_copies(synthetic, real, stubborn, max_rounds=3)
    assert not exact_copy_mask(cleaned, real).any()
    assert report["resample_rounds"] == 3 and stubborn.calls == [5, 5, 5]
    assert report["copies_dropped"] == 5 and len(cleaned) == 50


def test_copies_are_found_across_dtypes_and_missing_values():
    real = pd.DataFrame({"age": [30, 40, 50], "income": [1.5, np.nan, 2.5], "job": ["a", "b", None]})
    synthetic = pd.DataFrame({"age": [30.0, 40.0, 50.0], "income": [1.5, np.nan, 2.5],
                              "job": pd.Categorical(["a", "b", None])})
    assert exact_copy_mask(synthetic, real).tolist() == [True, True, True]
    synthetic.loc[1, "income"] = 2.0
    assert exact_copy_mask(synthetic, real).tolist() == [True, False, True]


def test_a_new_primary_key_does_not_hide_a_copied_record():
    real = real_table(20).assign(id=[f"R{i}" for i in range(20)])
    synthetic = real.iloc[:4].assign(id=[f"S{i}" for i in range(4)])
    assert not exact_copy_mask(synthetic, real).any()
    assert exact_copy_mask(synthetic, real, ignore_columns=["id"]).all()


def test_resampler_returning_the_wrong_shape_is_reported():
    real = real_table()
    with pytest.raises(ValueError, match=r"resample\(3\) must return 3 rows"):
        remove_exact_copies(real.iloc[:3], real, lambda n: real.iloc[:1])


def test_strings_rarer_than_k_in_the_real_data_are_never_emitted():
    real = pd.DataFrame({"job_title": ["clerk"] * 10 + ["nurse"] * 5 + ["Chief Risk Officer", "Astronaut"] * 2,
                         "city": ["Oslo"] * 19})
    synthetic = pd.DataFrame({
        "job_title": ["clerk", "Chief Risk Officer", "nurse", "Astronaut", "Other", "invented", None],
        "city": ["Oslo"] * 7,
    })
    cleaned, counts = replace_rare_strings(synthetic, real, k=5)
    real_counts = real["job_title"].value_counts()
    emitted = cleaned["job_title"].dropna()
    assert not emitted.isin(real_counts[real_counts < 5].index).any()
    assert cleaned["job_title"].tolist()[:6] == ["clerk", "Other", "nurse", "Other", "Other", "invented"]
    assert cleaned["job_title"].isna().iloc[6]
    assert counts["job_title"] == {"rare_real_values": 2, "cells_replaced": 2}
    assert counts["city"]["cells_replaced"] == 0


def test_rare_strings_keep_categorical_dtype_and_skip_excluded_columns():
    real = pd.DataFrame({"title": ["a"] * 6 + ["b"], "key": [f"k{i}" for i in range(7)]})
    synthetic = pd.DataFrame({"title": pd.Categorical(["a", "b", "b"]), "key": ["k1", "k2", "k3"]})
    cleaned, _ = replace_rare_strings(synthetic, real, k=5, exclude=["key"])
    assert isinstance(cleaned["title"].dtype, pd.CategoricalDtype)
    assert cleaned["title"].tolist() == ["a", "Other", "Other"]
    assert cleaned["key"].tolist() == ["k1", "k2", "k3"]
