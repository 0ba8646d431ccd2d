r"""Probability that a track breaches a zone within a horizon, from its state and covariance.

A straight-line path says *whether* the estimate heads into the zone; an operator needs
*how likely* the target is to be inside by then. Across the nearest stretch of
boundary the zone is a half-plane (the approximation :mod:`fusion.alerting.probability`
makes for P(inside)); with ``n`` the unit normal from the boundary point ``q`` towards
the track, the track's margin outside the zone after ``tau`` seconds of constant
velocity plus white acceleration noise is Gaussian,

.. math::

    m(\tau) = n'(p - q) + \tau\, n' v, \qquad
    \sigma^2(\tau) = n' [P_{pp} + \tau (P_{pv} + P_{vp}) + \tau^2 P_{vv}] n
                     + q_a \tau^4 / 4,

and ``Phi(-m(tau) / sigma(tau))`` is the probability of being across the line at
``tau``. Being across at *any* time before the horizon ``H`` is a breach, so the
breach probability is at least the largest of these over ``tau <= H``; it is taken on a
few times ``tau = H k / K``. Taking ``tau = H`` alone would understate it: the
acceleration noise grows ``sigma`` as ``tau^2``, so a walker 10 m from the line is far
likelier across within 10 s than exactly at 60 s. With an IMM (modes of acceleration
noise ``q_j`` and probabilities ``mu_j``) each mode's probability is worked out so and
the modes are mixed, ``sum_j mu_j max_tau Phi(-m / sigma_j)``: a quiet track's
prediction holds over a minute, a manoeuvring one's spreads within seconds, and the
mode probabilities say how far to trust each.

References: Bar-Shalom, Li, Kirubarajan (2001), sec. 6.3 (the CV prediction) and 11.6
(IMM mixtures); the half-plane probability as in ``fusion.alerting.probability``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from scipy.special import ndtr

__all__ = ["BreachModel", "breach_probability", "covariance_blocks", "gap_and_normal"]


@dataclass(frozen=True, eq=False)
class BreachModel:
    """The breach prediction a zone's predicted-incursion rule asks for.

    Attributes
    ----------
    horizon : float
        Look-ahead, seconds.
    accel_vars : ndarray, shape (J,)
        White acceleration noise variance of each motion mode (quiet, manoeuvring).
    prior : ndarray, shape (J,)
        Mode probabilities used where the tracker gives none.
    noise_reach : float
        ``2 sqrt(accel_vars[0]) horizon^2``, the noise part of :meth:`reach`.
    """

    horizon: float
    accel_vars: np.ndarray
    prior: np.ndarray
    # The reach's noise term, worked out once: numpy scalar arithmetic costs a few
    # microseconds a call.
    noise_reach: float = field(init=False, repr=False)
    # The look-ahead times and their noise, the same for every track: see _times.
    _times: tuple[np.ndarray, np.ndarray, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        noise_reach = 2.0 * np.sqrt(self.accel_vars[0]) * self.horizon**2
        object.__setattr__(self, "noise_reach", noise_reach)  # frozen
        object.__setattr__(self, "_times", _times(float(self.horizon), 4, self.accel_vars))

    @classmethod
    def from_rule(cls, rule) -> BreachModel:
        """From a :class:`fusion.alerting.rules.PredictedIncursionRule`."""
        m = rule.manoeuvre_prob
        return cls(
            rule.horizon,
            np.array([rule.accel_std**2, rule.manoeuvre_accel_std**2]),
            np.array([1.0 - m, m]),
        )

    def reach(self, speed: np.ndarray) -> np.ndarray:
        """Distance (N,) beyond which the quiet mode gives a track no real chance of a
        breach: its straight-line travel plus four sigma of its acceleration noise."""
        return speed * self.horizon + self.noise_reach

    def probability(
        self,
        gap: np.ndarray,
        normal: np.ndarray,
        x: np.ndarray,
        blocks: np.ndarray,
        mu: np.ndarray | None,
    ) -> np.ndarray:
        """:func:`breach_probability` of M tracks from their covariance blocks.

        Parameters
        ----------
        gap, normal, x : ndarray, shapes (M,), (M, 2), (M, 4)
            As for :func:`breach_probability`.
        blocks : ndarray, shape (M, 3, 2, 2)
            Position block, velocity block, and the position-velocity cross term
            ``P_pv + P_vp'`` of each covariance (see :func:`covariance_blocks`).
        mu : ndarray, shape (J, M), optional
            Mode probabilities; None: the prior.
        """
        w = self.prior[:, None] if mu is None else mu  # (J, 1) broadcasts over tracks
        return _from_blocks(gap, normal, x, blocks, self._times, w)


def gap_and_normal(polygon: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance outside a polygon and the unit normal from its nearest boundary point.

    Parameters
    ----------
    polygon : ndarray, shape (K, 2)
        Zone vertices (local metres).
    points : ndarray, shape (N, 2)

    Returns
    -------
    gap : ndarray, shape (N,)
        Distance to the boundary, negative inside.
    normal : ndarray, shape (N, 2)
        Unit vector from the nearest boundary point towards the point (outward for
        points outside); for points inside, pointing out of the zone through the nearest
        edge.
    """
    zone = shapely.Polygon(polygon)
    pts = shapely.points(points)
    boundary = zone.exterior
    nearest = shapely.get_coordinates(shapely.shortest_line(boundary, pts)).reshape(-1, 2, 2)
    q = nearest[:, 0]
    offset = points - q
    dist = np.hypot(offset[:, 0], offset[:, 1])
    inside = shapely.contains_xy(zone, points[:, 0], points[:, 1])
    normal = np.divide(offset, dist[:, None], out=np.zeros_like(offset), where=dist[:, None] > 0)
    normal[inside] *= -1.0  # inside, the way out is away from the point's side
    return np.where(inside, -dist, dist), normal


def breach_probability(
    gap: np.ndarray,
    normal: np.ndarray,
    x: np.ndarray,
    P: np.ndarray,
    horizon: float | np.ndarray,
    accel_vars: np.ndarray,
    weights: np.ndarray | None = None,
    steps: int = 4,
) -> np.ndarray:
    """Probability that each track crosses the boundary within ``horizon`` seconds.

    Parameters
    ----------
    gap : ndarray, shape (N,)
        Distance outside the zone (<= 0: already inside, probability 1).
    normal : ndarray, shape (N, 2)
        Unit normal from the nearest boundary point towards the track.
    x : ndarray, shape (N, 4)
        east, north, v_east, v_north.
    P : ndarray, shape (N, 4, 4)
    horizon : float or ndarray, shape (N,)
        Look-ahead ``H``, seconds.
    accel_vars : ndarray, shape (J,)
        White acceleration noise variance of each motion mode, (m/s^2)^2.
    weights : ndarray, shape (J, N), optional
        Mode probabilities (default: equal).
    steps : int
        Times ``H k / steps`` (k = 1..steps) at which the track may be across; 1 asks
        only whether it is across at ``H``.

    Returns
    -------
    p : ndarray, shape (N,), in [0, 1]
    """
    J = accel_vars.shape[0]
    w = np.full((J, gap.shape[0]), 1.0 / J) if weights is None else weights
    times = _times(np.broadcast_to(np.asarray(horizon, dtype=float), gap.shape), steps, accel_vars)
    return _from_blocks(gap, normal, x, covariance_blocks(P), times, w)


def covariance_blocks(P: np.ndarray) -> np.ndarray:
    """The blocks of state covariances ``P`` (N, 4, 4) the breach probability reads,
    (N, 3, 2, 2): position, velocity, and the cross term ``P_pv + P_vp'``."""
    blocks = np.empty((P.shape[0], 3, 2, 2))
    blocks[:, 0] = P[:, :2, :2]
    blocks[:, 1] = P[:, 2:, 2:]
    np.add(P[:, :2, 2:], P[:, 2:, :2].transpose(0, 2, 1), out=blocks[:, 2])
    return blocks


def _times(
    horizon: float | np.ndarray, steps: int, accel_vars: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The look-ahead times ``tau = H k / steps`` (k = 1..steps), ``tau^2``, and each
    mode's noise variance ``q_j tau^4 / 4`` there: shapes (steps, 1) or (steps, N) as
    ``horizon`` is one number or one per track (N,), and (J, steps, 1 or N).

    One horizon gives the same times for every track, so a model works them out once
    and they broadcast over its tracks: the same products as per track, so the same
    bits, without a few calls per evaluation.
    """
    tau = np.arange(1, steps + 1)[:, None] / steps * horizon
    return tau, tau * tau, accel_vars[:, None, None] * tau**4 / 4.0


def _from_blocks(
    gap: np.ndarray,
    normal: np.ndarray,
    x: np.ndarray,
    blocks: np.ndarray,
    times: tuple[np.ndarray, np.ndarray, np.ndarray],
    w: np.ndarray,
) -> np.ndarray:
    """:func:`breach_probability` with the covariance as :func:`covariance_blocks`, the
    look-ahead times as :func:`_times` and the mode weights ``w`` (J, N) or (J, 1)."""
    n0, n1 = normal[:, :1], normal[:, 1:]
    # n' B n of the three blocks at once, (N, 3): the same products in the same order
    # as one block at a time, so the same bits.
    along = (
        n0 * n0 * blocks[..., 0, 0]
        + n0 * n1 * (blocks[..., 0, 1] + blocks[..., 1, 0])
        + n1 * n1 * blocks[..., 1, 1]
    )
    var_p, var_v, cov_pv = along[:, 0], along[:, 1], along[:, 2]
    closing = normal[:, 0] * x[:, 2] + normal[:, 1] * x[:, 3]  # n'v, negative towards the zone
    # Every look-ahead time and mode in one array each, (steps, N) and (J, steps, N):
    # a few calls per step instead of a few per time and mode (the engine's arrays are
    # a few hundred tracks, where each numpy call's overhead is the cost). The same
    # element-wise operations in the same order as one time at a time, so the same bits.
    tau, tau2, noise = times
    margin = gap + tau * closing  # m(tau) = n'(p - q) + tau n'v
    var = var_p + tau * cov_pv + tau2 * var_v
    sigma = np.sqrt(np.maximum(var + noise, 1e-12))
    best = ndtr(-margin / sigma).max(axis=1)
    p = (w * best).sum(axis=0)
    np.minimum(np.maximum(p, 0.0, out=p), 1.0, out=p)  # np.clip, without its wrapper
    np.copyto(p, 1.0, where=gap <= 0.0)
    return p
