r"""GOSPA: the generalised optimal sub-pattern assignment metric between two point sets.

Reference: A. S. Rahmathullah, Á. F. García-Fernández, L. Svensson, "Generalized optimal
sub-pattern assignment metric", 20th International Conference on Information Fusion,
2017 (arXiv:1601.05585).

For a truth set :math:`X = \{x_1..x_N\}` and a track set :math:`Y = \{y_1..y_M\}`,
cut-off :math:`c > 0`, order :math:`1 \le p < \infty` and :math:`0 < \alpha \le 2`, with
the cut-off distance :math:`d^{(c)}(x, y) = \min(d(x, y), c)` (Euclidean :math:`d`) and,
without loss of generality, :math:`N \le M`:

.. math::

    d_p^{(c,\alpha)}(X, Y) = \Big( \min_{\pi \in \Pi_M} \sum_{i=1}^{N}
        d^{(c)}(x_i, y_{\pi(i)})^p + \frac{c^p}{\alpha} (M - N) \Big)^{1/p}

where :math:`\Pi_M` is the set of permutations of :math:`1..M` (the case
:math:`N > M` swaps the roles). The minimum is a rectangular linear assignment on the
cost :math:`\min(d, c)^p`, which :func:`scipy.optimize.linear_sum_assignment` solves
exactly.

With :math:`\alpha = 2` the same value can be written over partial assignments
:math:`\gamma` (sets of pairs :math:`(i, j)`, each index at most once):

.. math::

    d_p^{(c,2)}(X, Y) = \Big( \min_{\gamma} \sum_{(i,j) \in \gamma} d(x_i, y_j)^p
        + \frac{c^p}{2} (N - |\gamma|) + \frac{c^p}{2} (M - |\gamma|) \Big)^{1/p}

because a pair at :math:`d \ge c` costs :math:`c^p = c^p/2 + c^p/2` either way. This
splits the metric (to the power :math:`p`) into three parts: **localisation**
:math:`\sum_{\gamma} d^p` over pairs closer than :math:`c`, **missed**
:math:`\frac{c^p}{2}` per truth left unassigned, and **false** :math:`\frac{c^p}{2}` per
track left unassigned; ``distance ** p == localisation + missed + false``. A pair whose
distance is exactly :math:`c` counts as a missed plus a false, not as localisation.

For :math:`\alpha \ne 2` the split is not defined by the paper; here localisation is the
sum of :math:`\min(d, c)^p` over the full assignment and missed / false carry the
:math:`\frac{c^p}{\alpha}` cardinality penalty, which still sums to ``distance ** p``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class GospaResult:
    """GOSPA at one time step.

    The parts are in units of distance to the power ``p``, so that
    ``distance ** p == localisation + missed + false``.

    Attributes
    ----------
    distance : float
        The GOSPA metric :math:`d_p^{(c,\\alpha)}`, in units of distance.
    localisation : float
        Sum of :math:`d^p` over assigned pairs.
    missed : float
        :math:`c^p / \\alpha` times the number of missed truths.
    false : float
        :math:`c^p / \\alpha` times the number of false tracks.
    n_missed : int
        Truths with no track assigned.
    n_false : int
        Tracks with no truth assigned.
    assignment : ndarray, shape (N,), int64
        For each truth, the index of its track, or -1 when missed.
    """

    distance: float
    localisation: float
    missed: float
    false: float
    n_missed: int
    n_false: int
    assignment: np.ndarray


def _as_points(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        return a.reshape(0, a.shape[-1] if a.ndim == 2 else 2)
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {a.shape}")
    return a


def gospa(
    truth: np.ndarray, tracks: np.ndarray, c: float, p: float = 2.0, alpha: float = 2.0
) -> GospaResult:
    """GOSPA between truth positions and track positions at one time step.

    Parameters
    ----------
    truth : ndarray, shape (N, D)
        Truth positions (D = 2: east, north). N may be 0.
    tracks : ndarray, shape (M, D)
        Track positions in the same frame. M may be 0.
    c : float
        Cut-off distance, > 0: the largest localisation error charged per pair, and
        what an unassigned object costs (``c**p / alpha``).
    p : float
        Order, >= 1; larger values punish outliers more.
    alpha : float
        Cardinality weight, 0 < alpha <= 2; 2 gives the localisation / missed /
        false decomposition (see the module docstring).

    Returns
    -------
    GospaResult
    """
    if not c > 0:
        raise ValueError(f"cut-off c must be > 0, got {c}")
    if not p >= 1:
        raise ValueError(f"order p must be >= 1, got {p}")
    if not 0 < alpha <= 2:
        raise ValueError(f"alpha must be in (0, 2], got {alpha}")
    X = _as_points(truth, "truth")
    Y = _as_points(tracks, "tracks")
    n, m = X.shape[0], Y.shape[0]
    assignment = np.full(n, -1, dtype=np.int64)
    penalty = c**p / alpha  # cost of one unassigned object
    if n and m:
        if X.shape[1] != Y.shape[1]:
            raise ValueError(f"truth is {X.shape[1]}-D but tracks are {Y.shape[1]}-D")
        # d[i, j] = |x_i - y_j|, all pairs at once.
        d = np.sqrt(((X[:, None, :] - Y[None, :, :]) ** 2).sum(axis=-1))
        cost = np.minimum(d, c) ** p
        rows, cols = linear_sum_assignment(cost)
        if alpha == 2:
            # Pairs at the cut-off are cheaper split into a miss and a false track
            # (or equal): drop them from the assignment so the parts add up.
            keep = d[rows, cols] < c
            rows, cols = rows[keep], cols[keep]
        assignment[rows] = cols
        localisation = float(cost[rows, cols].sum())
        n_pairs = rows.size
    else:
        localisation = 0.0
        n_pairs = 0
    if alpha == 2:
        n_missed, n_false = n - n_pairs, m - n_pairs
    else:
        # Only the cardinality difference is charged; pairs at d >= c stay assigned
        # and cost c**p as localisation.
        n_missed, n_false = max(n - m, 0), max(m - n, 0)
    missed = penalty * n_missed
    false = penalty * n_false
    return GospaResult(
        distance=float((localisation + missed + false) ** (1.0 / p)),
        localisation=localisation,
        missed=missed,
        false=false,
        n_missed=n_missed,
        n_false=n_false,
        assignment=assignment,
    )


@dataclass(frozen=True)
class GospaSeries:
    """GOSPA over a sequence of time steps, one entry per step.

    Attributes
    ----------
    distance, localisation, missed, false : ndarray, shape (K,), float64
        Per step, as in :class:`GospaResult`.
    n_missed, n_false : ndarray, shape (K,), int64
        Per step counts.
    assignments : list of ndarray
        Per step, shape (N_k,) int64: track index for each truth, -1 when missed.
    """

    distance: np.ndarray
    localisation: np.ndarray
    missed: np.ndarray
    false: np.ndarray
    n_missed: np.ndarray
    n_false: np.ndarray
    assignments: list[np.ndarray]

    def __len__(self) -> int:
        return int(self.distance.shape[0])

    def summary(self) -> dict[str, float]:
        """Means over the steps, the usual one-number figures for a report.

        Returns the mean GOSPA distance and the means of the three parts (to the
        power ``p``), and the mean counts of missed truths and false tracks.
        """
        if len(self) == 0:
            nan = float("nan")
            return dict.fromkeys(
                ("distance", "localisation", "missed", "false", "n_missed", "n_false"), nan
            )
        return {
            "distance": float(self.distance.mean()),
            "localisation": float(self.localisation.mean()),
            "missed": float(self.missed.mean()),
            "false": float(self.false.mean()),
            "n_missed": float(self.n_missed.mean()),
            "n_false": float(self.n_false.mean()),
        }


def gospa_series(
    truths: Iterable[np.ndarray],
    tracks: Iterable[np.ndarray],
    c: float,
    p: float = 2.0,
    alpha: float = 2.0,
) -> GospaSeries:
    """GOSPA at each time step of two aligned sequences.

    Parameters
    ----------
    truths : iterable of ndarray, each shape (N_k, D)
        Truth positions per step.
    tracks : iterable of ndarray, each shape (M_k, D)
        Track positions per step, at the same times as ``truths``.
    c, p, alpha : float
        See :func:`gospa`.

    Returns
    -------
    GospaSeries

    Raises
    ------
    ValueError
        If the sequences have different lengths.
    """
    truths, tracks = list(truths), list(tracks)
    if len(truths) != len(tracks):
        raise ValueError(f"{len(truths)} truth steps but {len(tracks)} track steps")
    results = [gospa(x, y, c, p, alpha) for x, y in zip(truths, tracks, strict=True)]

    def column(name: str, dtype: type) -> np.ndarray:
        return np.array([getattr(r, name) for r in results], dtype=dtype)

    return GospaSeries(
        distance=column("distance", np.float64),
        localisation=column("localisation", np.float64),
        missed=column("missed", np.float64),
        false=column("false", np.float64),
        n_missed=column("n_missed", np.int64),
        n_false=column("n_false", np.int64),
        assignments=[r.assignment for r in results],
    )
