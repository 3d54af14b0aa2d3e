"""The parametric families a numeric marginal may take, and the Kolmogorov-Smirnov p-value that accepts one, on
scipy.special alone.

Why not scipy.stats: importing it costs a third of a second (its 100 distribution objects and their docstrings),
paid by every `twin clone` before it reads its table, and the engine needs four special functions from it. A
family here is scipy.stats's own arithmetic: standardise by loc and scale, apply the standard distribution's
special function inside the support (0 or 1 outside it), scale back; so cdf and ppf are scipy.stats's numbers,
bit for bit (twin_pipeline_tests/test_families.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

INF = np.inf


@dataclass(frozen=True)
class Family:
    """A standard distribution (support, cdf, ppf on the standard scale) at a location and scale."""

    cdf_standard: Callable[[np.ndarray], np.ndarray]
    ppf_standard: Callable[[np.ndarray], np.ndarray]
    support: tuple[float, float]
    loc: float = 0.0
    scale: float = 1.0

    def cdf(self, x):
        """P(X <= x), as scipy.stats's `dist.cdf(x, *shape, loc, scale)`."""
        z = np.asarray((np.asarray(x, dtype=float) - self.loc) / self.scale, dtype=float)
        low, high = self.support
        inside = (low < z) & (z < high)
        if inside.all():  # every value inside the support (a fitted family's sample): the function alone
            return np.asarray(self.cdf_standard(z))[()]
        out = np.where(z >= high, 1.0, np.where(np.isnan(z), np.nan, 0.0))
        out[inside] = self.cdf_standard(z[inside])
        return out[()]

    def ppf(self, q):
        """The q-quantile, as scipy.stats's `dist.ppf(q, *shape, loc, scale)`: the support's ends at 0 and 1."""
        q = np.asarray(q, dtype=float)
        low, high = self.support
        out = np.where(q == 0, low * self.scale + self.loc, np.where(q == 1, high * self.scale + self.loc, np.nan))
        inside = (0 < q) & (q < 1)
        out[inside] = self.ppf_standard(q[inside]) * self.scale + self.loc
        return out[()]


def distribution(name: str, parameters: dict) -> Family:
    """The named family at fitted parameters (marginals.select_family's names and parameter keys)."""
    p = parameters
    if name in ("normal", "truncnorm"):  # truncnorm: the normal at its truncation-aware fit, truncated where used
        return Family(special.ndtr, special.ndtri, (-INF, INF), p["loc"], p["scale"])
    if name == "lognormal":
        s = p["s"]
        return Family(lambda z: special.ndtr(np.log(z) / s), lambda q: np.exp(s * special.ndtri(q)), (0.0, INF),
                      0.0, p["scale"])
    if name == "uniform":
        return Family(lambda z: z, lambda q: q, (0.0, 1.0), p["loc"], p["scale"])
    if name == "gamma":
        a = p["a"]
        return Family(lambda z: special.gammainc(a, z), lambda q: special.gammaincinv(a, q), (0.0, INF),
                      0.0, p["scale"])
    if name == "beta":
        a, b = p["a"], p["b"]
        return Family(lambda z: special.betainc(a, b, z), lambda q: special.betaincinv(a, b, q), (0.0, 1.0),
                      p["loc"], p["scale"])
    raise ValueError(f"unknown family {name!r}")


def ks_pvalue(statistic: float, n: int) -> float:
    """P(D_n >= statistic) for the two-sided one-sample Kolmogorov-Smirnov distance of n values: the exact
    distribution, computed as scipy.stats.kstwo.sf computes it (Simard and L'Ecuyer's choice of method, J. Stat.
    Softw. 39(11), 2011), to the last digit except where noted.

    * a small p-value (n d^2 past 4 when n <= 140, else past 2.2; or d >= 1/2): twice the one-sided tail
      `special.smirnov`, both tails crossed at once being then negligible (impossible from d = 1/2);
    * n > 140 between: Pelz and Good's asymptotic series (5 digits or better there);
    * otherwise Durbin's matrix formula, exact. scipy takes Pomeranz's recursion (exact too) for n <= 140 and
      n d^2 past 0.75, and closed forms where n d <= 1: there the two differ in the last digits (1e-11).
    """
    d = float(statistic)
    if d >= 1.0:
        return 0.0
    if n * d <= 0.5:
        return 1.0
    if d >= 0.5 or (n * d * d > 4.0 if n <= 140 else n * d * d >= 2.2):
        return float(np.clip(2.0 * special.smirnov(n, d), 0.0, 1.0))
    cdf = _pelz_good_cdf(n, d) if n > 140 and n * d**1.5 > 1.4 else _durbin_cdf(n, d)
    return float(np.clip(1.0 - np.clip(cdf, 0.0, 1.0), 0.0, 1.0))


_RESCALE = np.ldexp(np.longdouble(1), 128)  # Durbin's H^n overflows and n!/n^n underflows: both run rescaled


def _durbin_cdf(n: int, d: float):
    """P(D_n < d) by Durbin's matrix formula in Marsaglia, Tsang and Wang's form (J. Stat. Softw. 8(18), 2003):
    with n d = k - h (k whole, 0 <= h < 1), the k-th diagonal entry of H^n times n!/n^n, H of order 2k - 1.
    O(k^3 log n): used only where k is small (at most 24 when n <= 140, about n^(1/3) beyond)."""
    k = int(np.ceil(n * d))
    h, m = k - n * d, 2 * k - 1
    inverse_factorials = [1.0]  # 1/j!, j = 0..m
    for j in range(1, m + 1):
        inverse_factorials.append(inverse_factorials[-1] / j)
    inverse_factorials = np.array(inverse_factorials)
    steps = np.arange(m)[:, None] - np.arange(m)[None, :] + 1  # H[i, j] = 1/(i - j + 1)!, zero above the superdiagonal
    matrix = np.where(steps >= 0, inverse_factorials[np.clip(steps, 0, m)], 0.0)
    edge = (1.0 - h ** np.arange(1, m + 1)) * inverse_factorials[1:]  # the first column, and the last row reversed
    edge[-1] = (1.0 + (max(2 * h - 1.0, 0) ** m - 2 * h**m)) * inverse_factorials[m]
    matrix[:, 0], matrix[-1, :] = edge, edge[::-1]
    power, exponent, matrix_exponent, remaining = np.eye(m), 0, 0, n
    while remaining:  # square and multiply
        if remaining % 2:
            power, exponent = power @ matrix, exponent + matrix_exponent
        matrix, matrix_exponent = matrix @ matrix, 2 * matrix_exponent
        if abs(matrix[k - 1, k - 1]) > _RESCALE:
            matrix /= _RESCALE
            matrix_exponent += 128
        remaining //= 2
    p = power[k - 1, k - 1]
    for i in range(1, n + 1):  # times n!/n^n
        p = i * p / n
        if abs(p) < 1 / _RESCALE:
            p *= _RESCALE
            exponent -= 128
    return np.ldexp(p, exponent) if exponent else p


def _pelz_good_cdf(n: int, d: float) -> float:
    """P(D_n <= d) by Pelz and Good's series (J. R. Stat. Soc. B 38(2), 1976): the Li-Chien / Korolyuk expansion
    in powers of 1/sqrt(n), each term summed in its Jacobi-theta form that converges fast for small sqrt(n) d."""
    pi2, pi4, pi6 = np.pi**2, np.pi**4, np.pi**6
    z = np.sqrt(n) * d
    z2, z3, z4, z6 = z**2, z**3, z**4, z**6
    if -pi2 / 8 / z2 < -708:
        return 0.0
    q = np.exp(-pi2 / 8 / z2)
    k1a, k1b = -z2, pi2 / 4
    k2a, k2b, k2c = 6 * z6 + 2 * z4, (2 * z4 - 5 * z2) * pi2 / 4, pi4 * (1 - 2 * z2) / 16
    k3d, k3c = pi6 * (5 - 30 * z2) / 64, pi4 * (-60 * z2 + 212 * z4) / 16
    k3b, k3a = pi2 * (135 * z4 - 96 * z6) / 4, -30 * z6 - 90 * z**8
    terms = np.zeros(4)  # K0..K3, first their sums over odd m = 2k - 1 of c(m) q^(m^2), by Horner in q^(8k)
    top = int(np.ceil(16 * z / np.pi))
    for k in range(top, 0, -1):
        m = 2 * k - 1
        terms *= np.power(q, 8 * k)
        terms += np.array([1.0, k1a + k1b * m**2, k2a + k2b * m**2 + k2c * m**4,
                           k3a + k3b * m**2 + k3c * m**4 + k3d * m**6])
    terms *= q
    terms *= np.sqrt(2 * np.pi)
    terms /= np.array([z, 6 * z4, 72 * z**7, 6480 * z**10])
    q = np.exp(-pi2 / 2 / z2)  # then K2's and K3's sums over all k of their terms in q^(k^2)
    ks = np.arange(top, 0, -1)
    squares = ks**2
    terms[2] += np.sum(squares * q**squares) * (pi2 * np.sqrt(2 * np.pi) / (-36 * z3))
    terms[3] += np.sum((np.sqrt(3) * z + np.pi * ks) * (np.sqrt(3) * z - np.pi * ks) * squares * q**squares) * (
        pi2 * np.sqrt(2 * np.pi) / (216 * z6))
    terms /= np.power(n * 1.0, np.arange(4) / 2.0)
    return sum(terms)
