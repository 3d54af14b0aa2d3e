"""The marginal families and the KS p-value on scipy.special alone (engine/families.py) give scipy.stats's numbers:
the same cdf and ppf bit for bit, and the same accepted and rejected families; the truncated normal's Nelder-Mead
(engine/marginals.py) gives scipy.optimize's minimum bit for bit."""

import numpy as np
import pytest
from scipy import stats

from twin_pipeline.engine.families import distribution, ks_pvalue
from twin_pipeline.engine.marginals import KS_ALPHA, _fit_parameters, _nelder_mead

RNG = np.random.default_rng(3)
FAMILIES = {  # our name and parameters -> scipy's distribution and arguments
    "normal": ({"loc": 2.5, "scale": 0.7}, lambda p: (stats.norm, (p["loc"], p["scale"]))),
    "truncnorm": ({"loc": -1.0, "scale": 3.0, "low": 0.0, "high": 4.0}, lambda p: (stats.norm, (p["loc"], p["scale"]))),
    "lognormal": ({"s": 0.8, "scale": 1200.0}, lambda p: (stats.lognorm, (p["s"], 0.0, p["scale"]))),
    "uniform": ({"loc": -3.0, "scale": 10.0}, lambda p: (stats.uniform, (p["loc"], p["scale"]))),
    "gamma": ({"a": 2.3, "scale": 450.0}, lambda p: (stats.gamma, (p["a"], 0.0, p["scale"]))),
    "beta": ({"a": 0.6, "b": 3.5, "loc": -0.01, "scale": 1.02}, lambda p: (stats.beta, (p["a"], p["b"], p["loc"], p["scale"]))),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_cdf_and_ppf_are_scipy_stats_bit_for_bit(name):
    parameters, scipy_form = FAMILIES[name]
    ours, (theirs, arguments) = distribution(name, parameters), scipy_form(parameters)
    centre, spread = theirs.median(*arguments), theirs.std(*arguments)
    x = np.concatenate([centre + spread * RNG.normal(0, 3, 2000), [-np.inf, np.inf, np.nan, 0.0, -1.0, 1e6]])
    q = np.concatenate([RNG.uniform(0, 1, 2000), RNG.uniform(0, 1e-9, 50), [0.0, 1.0, 1 - 1e-16, -0.1, 1.1, np.nan]])
    np.testing.assert_array_equal(ours.cdf(x), theirs.cdf(x, *arguments))
    np.testing.assert_array_equal(ours.ppf(q), theirs.ppf(q, *arguments))
    inside = theirs.ppf(RNG.uniform(0.001, 0.999, 500), *arguments)  # all inside the support: the direct path
    np.testing.assert_array_equal(ours.cdf(inside), theirs.cdf(inside, *arguments))
    assert ours.cdf(inside[0]) == theirs.cdf(inside[0], *arguments) and np.ndim(ours.cdf(inside[0])) == 0
    assert ours.cdf(centre) == theirs.cdf(centre, *arguments) and np.ndim(ours.cdf(centre)) == 0
    assert ours.ppf(0.3) == theirs.ppf(0.3, *arguments) and np.ndim(ours.ppf(0.3)) == 0


SIZES = [5, 8, 13, 30, 75, 140, 141, 300, 1000, 2500, 5000]


def test_the_ks_p_value_is_scipy_s_kstwo_sf_and_decides_alike():
    """Over every n the engine tests (5 to 5,000 values) and distances across [0, 1], densest near the critical
    value: agreement to 1e-10 (relative), exact where both use the same method, and every accept / reject at
    KS_ALPHA the same but at the critical value itself, where p is KS_ALPHA to the last digits and scipy's own
    versions differ (1.17 moved n = 30, 75 and 140 across it by 1e-15)."""
    for n in SIZES:
        critical = stats.kstwo.isf(KS_ALPHA, n)
        distances = np.concatenate([np.linspace(0.0, 1.0, 401), critical * (1 + np.linspace(-0.02, 0.02, 81)),
                                    np.nextafter(critical, [0.0, 1.0])])
        ours = np.array([ks_pvalue(d, n) for d in distances])
        theirs = stats.kstwo.sf(distances, n)
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-300)
        decided = np.abs(theirs / KS_ALPHA - 1) > 1e-10  # within the agreement of KS_ALPHA is a tie rounding decides
        assert decided.sum() >= len(distances) - 3
        np.testing.assert_array_equal(ours[decided] < KS_ALPHA, theirs[decided] < KS_ALPHA)
        if n > 140:  # smirnov, Pelz-Good and Durbin as scipy chooses them: the same digits
            np.testing.assert_array_equal(ours, theirs)


def test_nelder_mead_is_scipy_s_step_for_step():
    """The same minimum to the bit as scipy.optimize.minimize(method="Nelder-Mead") with the same options: on the
    truncated normal's likelihood of varied samples, and on functions that take every move, tie, are flat, step,
    turn NaN or infinite, from starts with zero coordinates (scipy's other initial simplex step)."""
    from scipy import optimize

    def scipy_minimum(function, start):
        return optimize.minimize(function, list(start), method="Nelder-Mead",
                                 options={"maxiter": 200, "xatol": 1e-4, "fatol": 1e-4}).x

    rng = np.random.default_rng(5)
    samples = [rng.normal(40, 9, 800), rng.lognormal(3, 1, 300), rng.uniform(0, 1, 2000) ** 3,
               np.round(rng.normal(10, 2, 500)), rng.exponential(5, 40)]
    for x in map(np.sort, samples):
        with pytest.MonkeyPatch.context() as patch:  # the likelihood truncnorm is fitted with, and its start
            calls = []
            patch.setattr("twin_pipeline.engine.marginals._nelder_mead", lambda f, start: calls.append((f, start)) or start)
            _fit_parameters("truncnorm", x, x[0], x[-1])
        (function, start), = calls
        np.testing.assert_array_equal(_nelder_mead(function, start), scipy_minimum(function, start))
    functions = [lambda t: 0.0, lambda t: float(np.floor(t[0]) + np.floor(t[1])),
                 lambda t: np.nan if t[0] > 1.02 else t[0] ** 2 + t[1] ** 2,
                 lambda t: np.inf if t[1] < 0 else (t[0] - 3) ** 2 + t[1], lambda t: np.round(t[0] ** 2 + t[1] ** 2, 1),
                 lambda t: (t[0] - 1) ** 2 + 100 * (t[1] - t[0] ** 2) ** 2, lambda t: abs(t[0]) + abs(t[1])]
    with np.errstate(invalid="ignore"):
        for function in functions:
            for start in [(0.0, 0.0), (1.0, 0.0), (0.0, -2.0), (-3.5, 2.25), (1e-9, 1e9)]:
                np.testing.assert_array_equal(_nelder_mead(function, start), scipy_minimum(function, start))
