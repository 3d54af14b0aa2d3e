"""Tail dependence: joint extremes of a t-copula table survive into the twin; Gaussian tables lose nothing."""

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from twin_pipeline.engine import GaussianCopulaEngine
from twin_pipeline.quality import correlation_errors


def elliptical_table(n, rho, nu=None, seed=0):
    rng = np.random.default_rng(seed)
    correlation = np.full((3, 3), rho) + (1 - rho) * np.eye(3)
    z = rng.multivariate_normal(np.zeros(3), correlation, size=n)
    u = special.ndtr(z) if nu is None else special.stdtr(nu, z / np.sqrt(rng.chisquare(nu, n) / nu)[:, None])
    return pd.DataFrame({"income": stats.lognorm(0.6, scale=50_000).ppf(u[:, 0]).round(2),
                         "loan_amount": stats.gamma(2, scale=5_000).ppf(u[:, 1]).round(0),
                         "utilisation": stats.beta(2, 5).ppf(u[:, 2]).round(4)})


def tail_dependence(frame, q):
    ranks = frame.rank(pct=True).to_numpy()
    pairs = [(i, j) for i in range(ranks.shape[1]) for j in range(i + 1, ranks.shape[1])]
    lower = [((ranks[:, i] < q) & (ranks[:, j] < q)).mean() / q for i, j in pairs]
    upper = [((ranks[:, i] > 1 - q) & (ranks[:, j] > 1 - q)).mean() / q for i, j in pairs]
    return np.array(lower + upper)


def test_t_copula_keeps_joint_extremes():
    # 40,000 rows: at q = 0.01 a pair's tail dependence in 20,000 real rows rests on 200 of them (standard error
    # ~0.035), and the real table's own noise left the twin on the 0.07 threshold
    real = elliptical_table(40_000, rho=0.7, nu=3)
    engine = GaussianCopulaEngine().fit(real)
    assert engine.tails["copula"] == "t" and engine.tails["degrees_of_freedom"] <= 5
    twin = engine.sample(200_000, seed=1)
    assert np.abs(tail_dependence(twin, 0.01) - tail_dependence(real, 0.01)).max() < 0.07
    gaussian_twin = GaussianCopulaEngine(preserve_tails=False).fit(real).sample(200_000, seed=1)
    assert (tail_dependence(real, 0.01) - tail_dependence(gaussian_twin, 0.01)).min() > 0.1  # what the Gaussian misses


@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_tables_lose_nothing(seed):
    real = elliptical_table(10_000, rho=0.5, seed=seed)
    with_tails = GaussianCopulaEngine().fit(real)
    without = GaussianCopulaEngine(preserve_tails=False).fit(real)
    assert with_tails.tails["copula"] == "gaussian" or with_tails.tails["degrees_of_freedom"] >= 15
    errors = [correlation_errors(real, engine.sample(50_000, seed=2))["max_abs_error"]
              for engine in (with_tails, without)]
    assert errors[0] < 0.03 and errors[1] < 0.03


def test_tail_choice_is_saved(tmp_path):
    engine = GaussianCopulaEngine().fit(elliptical_table(5_000, rho=0.7, nu=3))
    loaded = GaussianCopulaEngine.load(engine.save(tmp_path / "model.json"))
    assert loaded.tails == engine.tails
    assert loaded.sample(1000, seed=4).equals(engine.sample(1000, seed=4))


def test_tail_report_shows_what_the_gaussian_misses():
    from twin_pipeline.quality.tails import tail_report

    real = elliptical_table(20_000, rho=0.7, nu=3)
    with_tails = tail_report(real, GaussianCopulaEngine().fit(real).sample(100_000, seed=1))
    without = tail_report(real, GaussianCopulaEngine(preserve_tails=False).fit(real).sample(100_000, seed=1))
    assert len(with_tails["pairs"]) == 3
    assert with_tails["max_tail_dependence_gap"] < 0.1 < without["max_tail_dependence_gap"]
    corner = with_tails["pairs"][0]["joint_exceedance_5pct"]["low_low"]
    assert abs(corner["real"] - corner["twin"]) < 0.005


def test_tail_ranks_are_pandas_percentile_ranks_to_the_bit():
    from twin_pipeline.quality.tails import _ranks

    rng = np.random.default_rng(3)
    samples = [rng.normal(size=50_000), rng.integers(0, 30, 50_000).astype(float), np.round(rng.lognormal(size=9_999), 1),
               np.array([0.0, -0.0, np.inf, -np.inf, 1.0, np.inf]), np.array([2.5]), np.array([])]
    for values in samples + [-values for values in samples]:
        assert np.array_equal(_ranks(values), pd.Series(values).rank(pct=True, method="average").to_numpy())


def test_tail_columns_are_the_numbers_with_a_tail():
    from twin_pipeline.quality.tails import tail_columns

    real = elliptical_table(500, rho=0.5).assign(id=range(500), grade=list("ABCDE") * 100, flag=[True, False] * 250,
                                                  children=np.arange(500) % 4)
    assert tail_columns(real, primary_key="id") == ["income", "loan_amount", "utilisation"]


def clayton_table(n, theta=2.0, seed=0):
    """Three columns joined by a Clayton copula: strong joint lows (crises), no joint highs."""
    rng = np.random.default_rng(seed)
    frailty = rng.gamma(1 / theta, 1.0, n)
    u = (1 + rng.exponential(size=(n, 3)) / frailty[:, None]) ** (-1 / theta)
    return pd.DataFrame({"income": stats.lognorm(0.6, scale=50_000).ppf(u[:, 0]).round(2),
                         "loan_amount": stats.gamma(2, scale=5_000).ppf(u[:, 1]).round(0),
                         "utilisation": stats.beta(2, 5).ppf(u[:, 2]).round(4)})


def test_clayton_table_keeps_its_lower_tail_and_gains_no_upper_tail():
    real = clayton_table(50_000)
    engine = GaussianCopulaEngine().fit(real)
    assert engine.tails["copula"] == "clayton" and engine.tails["theta"] == 2.0
    twin = engine.sample(200_000, seed=1)
    real_tails, twin_tails = tail_dependence(real, 0.01), tail_dependence(twin, 0.01)
    assert real_tails[:3].min() > 0.6 and real_tails[3:].max() < 0.1  # lower pairs, then upper pairs
    assert np.abs(twin_tails - real_tails).max() < 0.10
    assert correlation_errors(real, twin)["max_abs_error"] < 0.05


def test_mirrored_clayton_is_the_survival_family():
    real = clayton_table(20_000, seed=1)
    mirrored = pd.DataFrame({name: -values for name, values in real.items()})
    engine = GaussianCopulaEngine().fit(mirrored)
    assert engine.tails["copula"] == "survival_clayton"
    twin = engine.sample(100_000, seed=2)
    assert np.abs(tail_dependence(twin, 0.01) - tail_dependence(mirrored, 0.01)).max() < 0.12


def test_frailty_skips_only_thetas_that_cannot_make_the_correlations():
    """Three columns joined by a Clayton frailty over negatively correlated normals: a strong frailty cannot
    reach their correlations. Those thetas are skipped unscored; scored anyway they are the worst by far, so the
    choice and its likelihood are the full grid's."""
    from twin_pipeline.engine import dependence

    rng = np.random.default_rng(3)
    z = rng.multivariate_normal(np.zeros(3), np.full((3, 3), -0.4) + 1.4 * np.eye(3), 3000)
    u = (1 - np.log(special.ndtr(z)) / rng.gamma(1.0, 1.0, 3000)[:, None]) ** -1.0  # theta = 1
    uniforms = pd.DataFrame(u).rank().to_numpy() / 3001
    correlation = np.corrcoef(special.ndtri(uniforms).T)
    fitted = dependence.fit_frailty(uniforms, correlation, correlation, [0, 1, 2], np.random.default_rng(0))
    scored = {}
    for theta in dependence.FRAILTY_THETAS:
        both, _ = dependence._calibration(theta, False)
        block = np.where(np.eye(3, dtype=bool), 1.0, np.interp(correlation, both, dependence.CALIBRATION_GRID))
        scored[theta] = (np.linalg.eigvalsh(block).min() > dependence.REACHABLE_EIGENVALUE,
                         dependence.frailty_loglik(uniforms, dependence.nearest_correlation(block), theta, False))
    unreachable = [loglik for reachable, loglik in scored.values() if not reachable]
    assert len(unreachable) >= 3 and max(unreachable) < min(loglik for reachable, loglik in scored.values() if reachable)
    best = max(scored, key=lambda theta: scored[theta][1])
    assert fitted["theta"] == best and fitted["loglik"] == pytest.approx(scored[best][1], rel=1e-12)


def test_stored_frailty_calibration_is_the_simulation():
    """The engine reads the grid's calibration from a file instead of simulating it in every process: the file
    must hold what the simulation gives, to rounding (else regenerate it with calibration_table)."""
    import json

    from twin_pipeline.engine import dependence

    stored, simulated = json.loads(dependence.CALIBRATION_FILE.read_text()), dependence.calibration_table()
    assert stored.keys() == simulated.keys()
    for key in stored:  # to the last bits only: scipy's and the CPU's rounding differ between machines
        np.testing.assert_allclose(np.array(stored[key]), np.array(simulated[key]), rtol=1e-12, atol=1e-15,
                                   err_msg=key)


def test_t_profile_takes_each_quantile_once_and_scores_as_every_cell():
    """fit_t_degrees inverts each distinct rank once: its best degrees of freedom and likelihood are those of the
    t copula density evaluated cell by cell."""
    from twin_pipeline.engine import dependence

    real = elliptical_table(3000, rho=0.6, nu=4, seed=3)
    uniforms = real.rank().to_numpy() / (len(real) + 1)
    correlation = np.corrcoef(special.ndtri(uniforms).T)
    fitted = dependence.fit_t_degrees(uniforms, correlation, np.random.default_rng(0))
    loglik = {nu: stats.multivariate_t(np.zeros(3), correlation, df=nu).logpdf(stats.t(nu).ppf(uniforms)).sum()
                  - stats.t(nu).logpdf(stats.t(nu).ppf(uniforms)).sum() for nu in dependence.T_DEGREES}
    best = max(loglik, key=loglik.get)
    assert fitted["degrees_of_freedom"] == best and fitted["loglik_t"] == pytest.approx(loglik[best], rel=1e-9)
