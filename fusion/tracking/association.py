"""Global nearest neighbour data association on the gated sparse cost.

Each track takes at most one detection and each detection goes to at most one track.
The cost of pairing track ``i`` with detection ``j`` is the negative log-likelihood of
the innovation up to a constant,

    c_ij = d2_ij + ln |S_ij|,

and a track that takes no detection pays ``miss_cost[i]``, so a pair is only taken when
it beats that track's miss. The ``ln |S|`` term stops a vague new track from stealing a
detection from a precise one; the tracker therefore uses one miss cost for all tracks
(a per-track ``gamma + ln |S_i|`` would cancel ``ln |S|`` out of every comparison).

The problem is solved exactly as one sparse rectangular assignment: every track gets a
private "miss" column, which makes a full matching of the tracks always exist, and
``scipy.sparse.csgraph.min_weight_full_bipartite_matching`` (LAPJVsp) solves it in
one call over all connected components at once, with no Python loop per component.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_array
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

# Contested problems with at most this many matrix entries are solved dense.
DENSE_LIMIT = 40_000


def assign(
    n_tracks: int,
    n_detections: int,
    track: np.ndarray,
    detection: np.ndarray,
    cost: np.ndarray,
    miss_cost: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one assignment of tracks to detections on a sparse cost.

    Parameters
    ----------
    n_tracks, n_detections : int
        Sizes of the two sides.
    track, detection : ndarray, shape (G,), intp
        Gated pairs; each (track, detection) pair appears at most once.
    cost : ndarray, shape (G,)
        Cost of each gated pair.
    miss_cost : ndarray, shape (n_tracks,)
        Cost of leaving each track without a detection.

    Returns
    -------
    assigned_track, assigned_detection : ndarray, shape (A,), intp
        The chosen pairs, sorted by track.
    """
    if track.size == 0:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty
    if track.size == 1:
        # One pair (a claim, a supersede, a lone drone detection): taken if it beats
        # the miss, as below, without the dozen calls of the general path.
        take = cost < miss_cost[track]
        return track[take], detection[take]
    # A pair whose track and detection are in no other gated pair is its own
    # connected component: the only choice is to take it or not. In steady state that
    # is nearly every pair, so they are settled here and the solver only sees the
    # contested clusters.
    track_degree = np.bincount(track, minlength=n_tracks)
    detection_degree = np.bincount(detection, minlength=n_detections)
    isolated = (track_degree[track] == 1) & (detection_degree[detection] == 1)
    direct = isolated & (cost < miss_cost[track])
    if isolated.all():
        # Nothing contested (a small batch, usually): the direct pairs are the answer,
        # already in track order when the pairs came from the gate.
        out_track, out_detection = track[direct], detection[direct]
        if not (out_track[1:] < out_track[:-1]).any():
            return out_track, out_detection
        order = np.argsort(out_track, kind="stable")
        return out_track[order], out_detection[order]
    contested = ~isolated
    solved_track, solved_detection = _solve(
        track[contested], detection[contested], cost[contested], miss_cost
    )
    out_track = np.concatenate([track[direct], solved_track])
    out_detection = np.concatenate([detection[direct], solved_detection])
    order = np.argsort(out_track, kind="stable")
    return out_track[order], out_detection[order]


def _solve(
    track: np.ndarray,
    detection: np.ndarray,
    cost: np.ndarray,
    miss_cost: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact assignment of the contested pairs: one dense or one sparse LAPJV call."""
    if track.size == 0:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty
    if np.any(track[1:] < track[:-1]):  # the gate hands pairs over sorted by track
        order = np.argsort(track, kind="stable")
        track, detection, cost = track[order], detection[order], cost[order]
    involved, local_track = np.unique(track, return_inverse=True)
    candidates, local_detection = np.unique(detection, return_inverse=True)
    k, m = involved.size, candidates.size
    if k * (m + k) <= DENSE_LIMIT:
        # Small contested sets (the usual case): a dense solve skips the sparse
        # machinery's fixed cost (~0.25 ms). Non-edges are infeasible (inf); the miss
        # diagonal keeps a full assignment of the rows possible.
        dense = np.full((k, m + k), np.inf)
        dense[local_track, local_detection] = cost
        dense[np.arange(k), m + np.arange(k)] = miss_cost[involved]
        row, col = linear_sum_assignment(dense)
    else:
        # CSR built directly (scipy's COO route costs more than the solve): row r holds
        # its real edges, then its private miss column m + r. With rows sorted, edge e
        # sits at e + (miss slots of the rows before it) = e + local_track[e].
        indptr = np.zeros(k + 1, dtype=np.intp)
        np.cumsum(np.bincount(local_track, minlength=k) + 1, out=indptr[1:])
        indices = np.empty(indptr[-1], dtype=np.intp)
        weights = np.empty(indptr[-1])
        real_slot = np.arange(track.size) + local_track
        miss_slot = indptr[1:] - 1
        indices[real_slot], indices[miss_slot] = local_detection, m + np.arange(k)
        weights[real_slot], weights[miss_slot] = cost, miss_cost[involved]
        # Every full matching has exactly k edges, so a constant shift keeps the optimum
        # and makes every weight non-zero, which LAPJVsp requires.
        weights += 1.0 - weights.min()
        graph = csr_array((weights, indices, indptr), shape=(k, m + k))
        row, col = min_weight_full_bipartite_matching(graph)
    real = col < m
    return involved[row[real]].astype(np.intp), candidates[col[real]].astype(np.intp)


def miss_cost(P_pos: np.ndarray, R: np.ndarray, gamma: float) -> np.ndarray:
    """Cost of a track taking no detection, shape (V,): the same for every track.

    It is the gate ``gamma`` at the vaguest track's typical innovation covariance, so
    that any gated pair beats a miss, while ``ln |S|`` still decides between a precise
    and a vague track competing for one detection (a per-track miss cost would cancel
    that term out of every comparison).

    Parameters
    ----------
    P_pos : ndarray, shape (V, 2, 2)
        Predicted position covariance of each visible track.
    R : ndarray, shape (M, 2, 2)
        The batch's detection covariances.
    gamma : float
        Chi-square gate of the association.
    """
    if R.shape[0] == 0 or P_pos.shape[0] == 0:
        return np.zeros(P_pos.shape[0])
    R_mean = R.sum(axis=0) / R.shape[0]  # what R.mean does, without its 3 us of checks
    # S = P_pos + mean R, kept as its three distinct entries per track
    det = (P_pos[:, 0, 0] + R_mean[0, 0]) * (P_pos[:, 1, 1] + R_mean[1, 1])
    det -= (P_pos[:, 0, 1] + R_mean[0, 1]) ** 2
    cost = np.empty(P_pos.shape[0])
    cost.fill(gamma + np.log(det.max()))  # np.full, without its 3 us of Python
    return cost
