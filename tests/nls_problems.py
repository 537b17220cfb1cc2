"""Certified nonlinear least-squares problems (NIST StRD, public domain), typed from the
published data pages, and one generated from its published formula.

Each problem: the model ``f(b, u)`` (numpy and jax alike: written with ``xp``), the data, the two
published starts (start 1 far, start 2 near), the certified parameters, their certified standard
deviations (``sqrt(RSS / (n - p))`` times the root diagonal of ``(J^T J)^-1``) and the certified
residual sum of squares. ``tests/test_nls_battery.py`` checks that the certified parameters give
the certified RSS to 9 digits before it uses a problem (a typo in the data would fail there).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

__all__ = ["Problem", "PROBLEMS"]


class Problem(NamedTuple):
    name: str
    f: Callable  # f(b, u, xp) with b a sequence of parameters
    u: np.ndarray
    x: np.ndarray
    starts: tuple  # (start 1, start 2)
    certified: np.ndarray | None
    sd: np.ndarray | None
    rss: float | None


def _misra1a(b, u, xp):
    return b[0] * (1.0 - xp.exp(-b[1] * u))


def _rat42(b, u, xp):
    return b[0] / (1.0 + xp.exp(b[1] - b[2] * u))


def _rat43(b, u, xp):
    return b[0] / (1.0 + xp.exp(b[1] - b[2] * u)) ** (1.0 / b[3])


def _mgh09(b, u, xp):
    return b[0] * (u**2 + u * b[1]) / (u**2 + u * b[2] + b[3])


def _mgh10(b, u, xp):
    return b[0] * xp.exp(b[1] / (u + b[2]))


def _mgh17(b, u, xp):
    return b[0] + b[1] * xp.exp(-u * b[3]) + b[2] * xp.exp(-u * b[4])


def _eckerle4(b, u, xp):
    return (b[0] / b[1]) * xp.exp(-0.5 * ((u - b[2]) / b[1]) ** 2)


def _lanczos(b, u, xp):
    return b[0] * xp.exp(-b[1] * u) + b[2] * xp.exp(-b[3] * u) + b[4] * xp.exp(-b[5] * u)


def _bennett(b, u, xp):
    return b[0] * (b[1] + u) ** (-1.0 / b[2])


_LANCZOS_U = np.round(np.arange(24) * 0.05, 2)
# Lanczos (1956): the data are f(u) = 0.0951 e^-u + 0.8607 e^-3u + 1.5576 e^-5u rounded: to 6
# significant digits (Lanczos2) and 4 decimals (Lanczos3), both checked against the certified RSS;
# Lanczos1's 13 significant digits give an optimal RSS of 1.4289e-25 against the certified
# 1.4308e-25 (its published values were not all rounded from float64 evaluations), so it is used
# as a generated problem with rounding-level residuals, without certified values
_LANCZOS_F = 0.0951 * np.exp(-_LANCZOS_U) + 0.8607 * np.exp(-3 * _LANCZOS_U) + 1.5576 * np.exp(-5 * _LANCZOS_U)


def _round_sig(v, digits):
    return np.array([float(f"{a:.{digits - 1}e}") for a in v])


_LANCZOS_STARTS = ((1.2, 0.3, 5.6, 5.5, 6.5, 7.6), (0.5, 0.7, 3.6, 4.2, 4.0, 6.3))

# Bennett-type power law (NIST Bennett5's model and certified values as the truth) with a
# deterministic residual pattern of sd ~2e-3: no certified values, scipy is the reference
_BENNETT_U = np.linspace(7.447168, 11.79, 40)
_BENNETT_X = _bennett((-2523.5058043, 46.736564644, 0.93218483193), _BENNETT_U, np) + 2e-3 * np.sin(
    3.7 * np.arange(40.0)
)

PROBLEMS = [
    Problem(
        "Misra1a",
        _misra1a,
        np.array([77.6, 114.9, 141.1, 190.8, 239.9, 289.0, 332.8, 378.4, 434.8, 477.3, 536.8, 593.1, 689.1, 760.0]),
        np.array([10.07, 14.73, 17.94, 23.93, 29.61, 35.18, 40.02, 44.82, 50.76, 55.05, 61.01, 66.40, 75.47, 81.78]),
        ((500.0, 1e-4), (250.0, 5e-4)),
        np.array([2.3894212918e02, 5.5015643181e-04]),
        np.array([2.7070075241e00, 7.2668688436e-06]),
        1.2455138894e-01,
    ),
    Problem(
        "BoxBOD",
        _misra1a,
        np.array([1.0, 2.0, 3.0, 5.0, 7.0, 10.0]),
        np.array([109.0, 149.0, 149.0, 191.0, 213.0, 224.0]),
        ((1.0, 1.0), (100.0, 0.75)),
        np.array([2.1380940889e02, 5.4723748542e-01]),
        np.array([1.2354515176e01, 1.0455993237e-01]),
        1.1680088766e03,
    ),
    Problem(
        "Rat42",
        _rat42,
        np.array([9.0, 14.0, 21.0, 28.0, 42.0, 57.0, 63.0, 70.0, 79.0]),
        np.array([8.930, 10.800, 18.590, 22.330, 39.350, 56.110, 61.730, 64.620, 67.080]),
        ((100.0, 1.0, 0.1), (75.0, 2.5, 0.07)),
        np.array([7.2462237576e01, 2.6180768402e00, 6.7359200066e-02]),
        np.array([1.7340283401e00, 8.8295217536e-02, 3.4465663377e-03]),
        8.0565229338e00,
    ),
    Problem(
        "Rat43",
        _rat43,
        np.arange(1.0, 16.0),
        np.array(
            [16.08, 33.83, 65.80, 97.20, 191.55, 326.20, 386.87, 520.53, 590.03, 651.92, 724.93, 699.56, 689.96, 637.56, 717.41]
        ),
        ((100.0, 10.0, 1.0, 1.0), (700.0, 5.0, 0.75, 1.3)),
        np.array([6.9964151270e02, 5.2771253025e00, 7.5962938329e-01, 1.2792483859e00]),
        np.array([1.6302297817e01, 2.0828735829e00, 1.9566123451e-01, 6.8761936385e-01]),
        8.7864049080e03,
    ),
    Problem(
        "MGH09",
        _mgh09,
        np.array([4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625]),
        np.array([0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246]),
        ((25.0, 39.0, 41.5, 39.0), (0.25, 0.39, 0.415, 0.39)),
        np.array([1.9280693458e-01, 1.9128232873e-01, 1.2305650693e-01, 1.3606233068e-01]),
        np.array([1.1435312227e-02, 1.9633220911e-01, 8.0842031232e-02, 9.0025542308e-02]),
        3.0750560385e-04,
    ),
    Problem(
        "MGH10",
        _mgh10,
        np.arange(50.0, 126.0, 5.0),
        np.array(
            [34780.0, 28610.0, 23650.0, 19630.0, 16370.0, 13720.0, 11540.0, 9744.0, 8261.0, 7030.0, 6005.0, 5147.0, 4427.0, 3820.0, 3307.0, 2872.0]
        ),
        ((2.0, 400000.0, 25000.0), (0.02, 4000.0, 250.0)),
        np.array([5.6096364710e-03, 6.1813463463e03, 3.4522363462e02]),
        np.array([1.5687892471e-04, 2.3309021107e01, 7.8486103508e-01]),
        8.7945855171e01,
    ),
    Problem(
        "MGH17",
        _mgh17,
        np.arange(0.0, 321.0, 10.0),
        np.array(
            [
                0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751, 0.718, 0.685, 0.658, 0.628, 0.603, 0.580,
                0.558, 0.538, 0.522, 0.506, 0.490, 0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406,
            ]
        ),
        ((50.0, 150.0, -100.0, 1.0, 2.0), (0.5, 1.5, -1.0, 0.01, 0.02)),
        np.array([3.7541005211e-01, 1.9358469127e00, -1.4646871366e00, 1.2867534640e-02, 2.2122699662e-02]),
        np.array([2.0723153551e-03, 2.2031669222e-01, 2.2175707739e-01, 4.4861358114e-04, 8.9471996575e-04]),
        5.4648946975e-05,
    ),
    Problem(
        "Eckerle4",
        _eckerle4,
        np.array(
            [
                400.0, 405.0, 410.0, 415.0, 420.0, 425.0, 430.0, 435.0, 436.5, 438.0, 439.5, 441.0, 442.5, 444.0, 445.5, 447.0, 448.5,
                450.0, 451.5, 453.0, 454.5, 456.0, 457.5, 459.0, 460.5, 462.0, 463.5, 465.0, 470.0, 475.0, 480.0, 485.0, 490.0, 495.0,
                500.0,
            ]
        ),
        np.array(
            [
                0.0001575, 0.0001699, 0.0002350, 0.0003102, 0.0004917, 0.0008710, 0.0017418, 0.0046400, 0.0065895, 0.0097302,
                0.0149002, 0.0237310, 0.0401683, 0.0712559, 0.1264458, 0.2073413, 0.2902366, 0.3445623, 0.3698049, 0.3668534,
                0.3106727, 0.2078154, 0.1164354, 0.0616764, 0.0337200, 0.0194023, 0.0117831, 0.0074357, 0.0022732, 0.0008800,
                0.0004579, 0.0002345, 0.0001586, 0.0001143, 0.0000710,
            ]
        ),
        ((1.0, 10.0, 500.0), (1.5, 5.0, 450.0)),
        np.array([1.5543827178e00, 4.0888321754e00, 4.5154121844e02]),
        np.array([1.5408051163e-02, 4.6803020753e-02, 4.6800518816e-02]),
        1.4635887487e-03,
    ),
    Problem(
        "Lanczos1",
        _lanczos,
        _LANCZOS_U,
        _round_sig(_LANCZOS_F, 13),
        _LANCZOS_STARTS,
        None,
        None,
        None,
    ),
    Problem(
        "Lanczos2",
        _lanczos,
        _LANCZOS_U,
        _round_sig(_LANCZOS_F, 6),
        _LANCZOS_STARTS,
        np.array([9.6251029939e-02, 1.0057332849e00, 8.6424689056e-01, 3.0078283915e00, 1.5529016879e00, 5.0028798100e00]),
        None,
        2.2299428125e-11,
    ),
    Problem(
        "Lanczos3",
        _lanczos,
        _LANCZOS_U,
        np.round(_LANCZOS_F, 4),
        _LANCZOS_STARTS,
        np.array([8.6816414977e-02, 9.5498101505e-01, 8.4400777463e-01, 2.9515951832e00, 1.5825685901e00, 4.9863565084e00]),
        np.array([1.7197908859e-02, 9.7041624475e-02, 4.1488663282e-02, 1.0766312506e-01, 5.8371576281e-02, 3.4436403035e-02]),
        1.6117193594e-08,
    ),
    Problem(
        "Bennett",
        _bennett,
        _BENNETT_U,
        _BENNETT_X,
        ((-2000.0, 50.0, 0.8), (-1500.0, 45.0, 0.85)),
        None,
        None,
        None,
    ),
]
