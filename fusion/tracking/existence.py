r"""Track existence as a log-likelihood-ratio score, confirmed and deleted by an SPRT.

Each track carries the log-likelihood ratio ``L`` of "a target" against "clutter"
(Blackman and Popoli, *Design and Analysis of Modern Tracking Systems*, 1999, sec.
6.2; Bar-Shalom, Willett, Tian, *Tracking and Data Fusion*, 2011, ch. 3). Per batch of
a sensor with detection probability ``P_D`` and clutter density ``lambda`` (false
detections per m^2 in the batch):

* a new track on one detection starts at the prior odds
  ``L_0 = ln(beta_NT / lambda)``, ``beta_NT`` the density of new targets;
* a detection assigned to the track adds its likelihood against clutter,

  .. math:: \Delta L = \ln P_D - \ln\lambda - \ln 2\pi - \tfrac12 \ln|S| - \tfrac12 d^2,

  with ``S`` the innovation covariance and ``d^2`` the squared Mahalanobis distance;
* a miss adds ``ln(1 - P_D P_G p_c)``: ``P_G`` the gate probability and ``p_c`` the
  probability that the target was inside the sensor's coverage at all.

Wald's sequential probability ratio test with error probabilities ``alpha`` (a false
track confirmed) and ``beta`` (a real one dropped) confirms at
``L >= ln((1 - beta) / alpha)`` and drops a candidate at ``L <= ln(beta / (1 - alpha))``.
A confirmed track's score is capped ``D = ln((1 - alpha) / beta)`` above the
confirmation threshold and the track is deleted when it falls back below that threshold:
at ``P_D = 0.9`` that is three misses in a row from the cap, at ``P_D = 0.97`` two, and
at a ground sensor's ``P_D = 0.3`` fourteen. Dense clutter (large ``lambda``) makes
each hit worth less, so a candidate there needs more hits before it confirms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

_LN_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class Thresholds:
    """The SPRT's thresholds on the track score (natural log).

    Attributes
    ----------
    drop : float
        A tentative track at or below this is deleted.
    confirm : float
        A tentative track at or above this is confirmed; a confirmed track below it is
        deleted.
    ceiling : float
        A confirmed track's score is capped here, so that a long-lived track forgets
        old evidence and a dead target's track goes after a few misses.
    """

    drop: float
    confirm: float
    ceiling: float

    @classmethod
    def from_error_probabilities(cls, alpha: float, beta: float) -> Thresholds:
        """Wald's thresholds for false-track probability ``alpha`` and loss probability ``beta``."""
        confirm = float(np.log((1.0 - beta) / alpha))
        return cls(
            drop=float(np.log(beta / (1.0 - alpha))),
            confirm=confirm,
            ceiling=confirm + float(np.log((1.0 - alpha) / beta)),
        )


def confirm_threshold(
    thresholds: Thresholds, false_track_rate: float, candidates: int, beta: float
) -> float:
    """Confirmation threshold for one batch with ``candidates`` unassigned detections.

    Wald's ``alpha`` bounds the chance that one clutter-born candidate is confirmed;
    ``candidates`` of them per batch make ``alpha * candidates`` false tracks per batch.
    To hold that to ``false_track_rate``, each candidate is held to
    ``alpha' = min(alpha, false_track_rate / candidates)``: busy sensors in dense clutter
    need more evidence, quiet ones keep the configured ``alpha``.
    """
    alpha = float(np.exp(np.log(1.0 - beta) - thresholds.confirm))  # inverts ln((1-b)/a)
    alpha_batch = min(alpha, false_track_rate / max(candidates, 1))
    return float(np.log((1.0 - beta) / alpha_batch))


def initial_score(new_target_density: float, clutter_density: float) -> float:
    """``L_0 = ln(beta_NT / lambda)``: prior odds of a lone detection being a new target."""
    return float(np.log(new_target_density / clutter_density))


def hit_score(
    pd: float, clutter_density: float, d2: np.ndarray, log_det_S: np.ndarray
) -> np.ndarray:
    """Score gained by each track that took a detection.

    Parameters
    ----------
    pd : float
        Detection probability of the sensor.
    clutter_density : float
        False detections per square metre in the batch.
    d2 : ndarray, shape (K,)
        Squared Mahalanobis distance of each assigned pair.
    log_det_S : ndarray, shape (K,)
        ``ln |S|`` of each pair's innovation covariance.

    Returns
    -------
    delta : ndarray, shape (K,)
    """
    # ln [ P_D N(y; 0, S) / lambda ],  N(y; 0, S) = exp(-d^2 / 2) / (2 pi sqrt|S|)
    return np.log(pd) - np.log(clutter_density) - _LN_2PI - 0.5 * (log_det_S + d2)


def miss_score(
    pd: float, gate_probability: float, p_cover: float | np.ndarray
) -> np.ndarray:
    """Score lost by each visible track that took no detection, shape like ``p_cover``.

    ``ln(1 - P_D P_G p_c)``: a target that may have been outside the footprint (small
    ``p_c``) is barely charged for not being seen.
    """
    return np.log1p(-pd * gate_probability * p_cover)


def coverage_probability(depth: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Probability that a target whose estimate lies ``depth`` metres inside the coverage
    edge really is inside, for a position standard deviation ``sigma`` (one-dimensional
    across the nearest edge): ``Phi(depth / sigma)``.

    Parameters
    ----------
    depth : ndarray, shape (K,)
        Distance from the estimate to the coverage boundary, metres (>= 0 inside).
    sigma : ndarray, shape (K,)
        Position standard deviation, metres (> 0).
    """
    return ndtr(depth / sigma)
