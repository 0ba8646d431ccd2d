"""Gating: which (track, detection) pairs are plausible at all.

Two stages. A spatial pre-gate finds pairs whose Euclidean distance is below a
per-track radius that bounds the ellipsoidal gate; only those pairs get the exact
chi-square test on the Mahalanobis distance

    d^2 = y' S^-1 y,  y = z - H x,  S = H P H' + R,

so the work grows with the number of plausible pairs, not tracks x detections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import chi2

# Below this many track x detection pairs, testing every pair beats building trees.
DENSE_PAIR_LIMIT = 4096


def gate_threshold(probability: float, dof: int = 2) -> float:
    """Chi-square gate ``gamma`` such that ``P(d^2 <= gamma) = probability``."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"gate probability must lie in (0, 1), got {probability}")
    return float(chi2.ppf(probability, dof))


@dataclass(frozen=True)
class GatedPairs:
    """The pairs that passed the gate, as parallel arrays of length G.

    Attributes
    ----------
    track : ndarray, shape (G,), intp
        Index into the tracks handed to :func:`gate`.
    detection : ndarray, shape (G,), intp
        Index into the batch's detections.
    d2 : ndarray, shape (G,)
        Squared Mahalanobis distance.
    log_det_S : ndarray, shape (G,)
        ``ln |S|`` of the pair's innovation covariance.
    """

    track: np.ndarray
    detection: np.ndarray
    d2: np.ndarray
    log_det_S: np.ndarray

    def __len__(self) -> int:
        return int(self.track.shape[0])

    def subset(self, keep: np.ndarray) -> GatedPairs:
        """The pairs selected by a boolean mask, shape (G,)."""
        return GatedPairs(self.track[keep], self.detection[keep], self.d2[keep], self.log_det_S[keep])


def _max_eigenvalue(M: np.ndarray) -> np.ndarray:
    """Largest eigenvalue of symmetric 2x2 matrices, shape (N, 2, 2) -> (N,)."""
    a, b, c = M[:, 0, 0], M[:, 0, 1], M[:, 1, 1]
    return 0.5 * (a + c) + np.sqrt(0.25 * (a - c) ** 2 + b * b)


def _spatial_pairs(
    z_pred: np.ndarray, radius: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs closer than each track's radius, via k-d trees.

    Tracks are bucketed by radius in factors of two so that one wide (coasting) track
    does not widen the search for all the others; each bucket is one tree query.
    """
    detections = cKDTree(z)
    bucket = np.floor(np.log2(np.maximum(radius, 1.0))).astype(np.intp)
    track_parts, det_parts = [], []
    for level in np.unique(bucket):  # a few radius classes, not a loop per track
        members = np.flatnonzero(bucket == level)
        pairs = cKDTree(z_pred[members]).sparse_distance_matrix(
            detections, max_distance=float(radius[members].max()), output_type="ndarray"
        )
        keep = pairs["v"] <= radius[members][pairs["i"]]
        track_parts.append(members[pairs["i"][keep]])
        det_parts.append(pairs["j"][keep].astype(np.intp))
    return np.concatenate(track_parts), np.concatenate(det_parts)


def gate(
    z_pred: np.ndarray,
    P_pos: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    threshold: float,
    dense_pair_limit: int = DENSE_PAIR_LIMIT,
) -> GatedPairs:
    """Find the (track, detection) pairs inside the chi-square gate.

    Parameters
    ----------
    z_pred : ndarray, shape (N, 2)
        Predicted measurement ``H x`` of each track.
    P_pos : ndarray, shape (N, 2, 2)
        Predicted position covariance ``H P H'`` of each track.
    z : ndarray, shape (M, 2)
        Detections.
    R : ndarray, shape (M, 2, 2)
        Detection covariances.
    threshold : float
        Chi-square gate ``gamma`` (see :func:`gate_threshold`).
    dense_pair_limit : int
        Test all pairs directly when ``N * M`` is at most this.

    Returns
    -------
    GatedPairs
        Sorted by track, then detection, so results do not depend on tree internals.
    """
    n, m = z_pred.shape[0], z.shape[0]
    if n == 0 or m == 0:
        empty = np.empty(0, dtype=np.intp)
        return GatedPairs(empty, empty, np.empty(0), np.empty(0))
    if n * m <= dense_pair_limit:
        ti = np.repeat(np.arange(n), m)
        dj = np.tile(np.arange(m), n)
    else:
        # d^2 <= gamma implies |y|^2 <= gamma * lambda_max(S), and
        # lambda_max(P + R) <= lambda_max(P) + max_j lambda_max(R_j).
        radius = np.sqrt(threshold * (_max_eigenvalue(P_pos) + _max_eigenvalue(R).max()))
        ti, dj = _spatial_pairs(z_pred, radius, z)
        order = np.lexsort((dj, ti))
        ti, dj = ti[order], dj[order]
    y0 = z[dj, 0] - z_pred[ti, 0]
    y1 = z[dj, 1] - z_pred[ti, 1]
    # S = H P H' + R per pair, kept as its three distinct entries
    a = P_pos[ti, 0, 0] + R[dj, 0, 0]
    b = P_pos[ti, 0, 1] + R[dj, 0, 1]
    c = P_pos[ti, 1, 1] + R[dj, 1, 1]
    det = a * c - b * b
    d2 = (c * y0 * y0 - 2.0 * b * y0 * y1 + a * y1 * y1) / det  # y' S^-1 y
    inside = d2 <= threshold
    return GatedPairs(ti[inside], dj[inside], d2[inside], np.log(det[inside]))
