"""Property tests: any small mixed table fits and samples without error and keeps its schema and ranges."""

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin_pipeline.engine import GaussianCopulaEngine
from twin_pipeline.engine.marginals import OTHER


@st.composite
def tables(draw):
    n = draw(st.integers(2, 60))
    floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    columns = {}
    for index in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["float", "int", "category", "bool"]))
        if kind == "float":
            values = draw(st.lists(floats, min_size=n, max_size=n))
        elif kind == "int":
            values = draw(st.lists(st.integers(-1000, 1000), min_size=n, max_size=n))
        elif kind == "category":
            values = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=n, max_size=n))
        else:
            values = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        series = pd.Series(values)
        if kind != "bool" and draw(st.booleans()):
            series = series.mask(pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n))))
        columns[f"{kind}_{index}"] = series
    return pd.DataFrame(columns)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.integers(0, 2**31))
def test_any_table_round_trips(real, seed):
    twin = GaussianCopulaEngine().fit(real).sample(50, seed=seed)
    assert list(twin.columns) == list(real.columns) and len(twin) == 50
    for name in real.columns:
        values, synthetic = real[name].dropna(), twin[name].dropna()
        if real[name].isna().all():
            assert twin[name].isna().all()
        elif pd.api.types.is_numeric_dtype(real[name]) and not pd.api.types.is_bool_dtype(real[name]):
            assert synthetic.empty or (synthetic.min() >= values.min() - 1e-9 and synthetic.max() <= values.max() + 1e-9)
            if pd.api.types.is_integer_dtype(real[name]):
                assert np.all(synthetic == np.round(synthetic))
        else:
            assert set(synthetic) <= set(values) | {OTHER}
        if real[name].notna().all():
            assert twin[name].notna().all()
