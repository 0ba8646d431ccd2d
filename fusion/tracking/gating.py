"""Gating: which (track, detection) pairs are plausible at all.

Two stages. A spatial pre-gate finds pairs whose Euclidean distance is below a
per-track radius that bounds the ellipsoidal gate; only those pairs get the exact
chi-square test on the Mahalanobis distance

    d^2 = y' S^-1 y,  y = z - H x,  S = H P H' + R,

so the work grows with the number of plausible pairs, not tracks x detections.

The pre-gate is a spatial hash: detections go into square cells, kept in a hash
table sorted by slot, and each track looks up the cells that its radius overlaps.
Everything is a handful of whole-array numpy calls (no tree to build, no Python loop
per track or per cell); the few tracks whose radius spans many cells (long coasts)
use k-d trees instead, and tiny problems test every pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import chi2

# Below this many track x detection pairs, testing every pair beats any index.
DENSE_PAIR_LIMIT = 4096
# A track whose radius overlaps more grid cells than this goes to the k-d tree path.
MAX_CELLS_PER_TRACK = 64
# Fibonacci hashing constant (2^64 / golden ratio), spreads cell keys over the slots.
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
# gate_within hands over to gate when its sweep would test more candidate pairs than
# this per position (boxes lined up along east, a column of tracks on one road).
SWEEP_PAIR_LIMIT = 16
# gate sweeps over east while its strips hold at most this many detections per track
# (measured: 5 per track at 1e3 tracks, 1.5x faster than the hash grid; 15 per track at
# 1e4, 1.7x slower, its gathers no longer in cache).
SWEEP_GATE_LIMIT = 8


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
        """The pairs selected by a boolean mask, shape (G,) (these pairs when it keeps
        all: the arrays are never written in place)."""
        if keep.all():
            return self
        return GatedPairs(
            self.track[keep], self.detection[keep], self.d2[keep], self.log_det_S[keep]
        )


def _max_eigenvalue(M: np.ndarray) -> np.ndarray:
    """Largest eigenvalue of symmetric 2x2 matrices, shape (N, 2, 2) -> (N,)."""
    a, b, c = M[:, 0, 0], M[:, 0, 1], M[:, 1, 1]
    return 0.5 * (a + c) + np.sqrt(0.25 * (a - c) ** 2 + b * b)


def _tree_pairs(
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


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For items with ``counts[i]`` children: parent index and rank of each child.

    ``counts`` (K,) -> ``parent`` (sum counts,), ``rank`` (sum counts,) with
    ``rank`` running 0 .. counts[i] - 1 within each parent.
    """
    parent = np.repeat(np.arange(counts.size), counts)
    first = np.cumsum(counts) - counts  # index of each parent's first child
    rank = np.arange(parent.size) - first[parent]
    return parent, rank


def _grid_pairs(
    z_pred: np.ndarray, radius: np.ndarray, z: np.ndarray, cell: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs closer than each track's radius, via a spatial hash of the detections.

    Detections fall into square cells of side ``cell``; a cell's key is unique over
    the detections' bounding grid, and its slot in a power-of-two hash table is a
    Fibonacci hash of the key. Detections are sorted by slot once, so a slot's
    detections are one contiguous run found from a cumulative count. Each track
    visits the cells overlapped by its radius's bounding box; hash collisions bring
    in detections of other cells, which the key comparison drops, so every pair is
    found exactly once.

    Returns
    -------
    track, detection : ndarray, shape (G,), intp
        Pairs within the radius, grouped by track in increasing order.
    wide : ndarray, intp
        Tracks that overlap more than ``MAX_CELLS_PER_TRACK`` cells, not searched.
    """
    origin = z.min(axis=0)
    det_cell = np.floor((z - origin) / cell).astype(np.int64)  # (M, 2), >= 0
    n_cy = int(det_cell[:, 1].max()) + 1
    n_cx = int(det_cell[:, 0].max()) + 1
    det_key = det_cell[:, 0] * n_cy + det_cell[:, 1]
    bits = max(int(z.shape[0]).bit_length() + 1, 4)  # load factor at most 1/2
    shift = np.uint64(64 - bits)
    det_slot = ((det_key.astype(np.uint64) * _HASH_MULTIPLIER) >> shift).astype(np.intp)
    by_slot = np.argsort(det_slot, kind="stable")
    slot_end = np.cumsum(np.bincount(det_slot, minlength=1 << bits))

    # Cell ranges of each track's bounding box, clipped to the detections' grid.
    lo = np.floor((z_pred - radius[:, None] - origin) / cell).astype(np.int64)
    hi = np.floor((z_pred + radius[:, None] - origin) / cell).astype(np.int64)
    np.maximum(lo, 0, out=lo)
    np.minimum(hi, [n_cx - 1, n_cy - 1], out=hi)
    span = np.maximum(hi - lo + 1, 0)
    n_cells = span[:, 0] * span[:, 1]
    too_wide = n_cells > MAX_CELLS_PER_TRACK
    n_cells[too_wide] = 0

    # One query per (track, cell) ...
    q_track, q_rank = _expand(n_cells)
    q_span_y = span[q_track, 1]
    q_key = (lo[q_track, 0] + q_rank // q_span_y) * n_cy + lo[q_track, 1] + q_rank % q_span_y
    q_slot = ((q_key.astype(np.uint64) * _HASH_MULTIPLIER) >> shift).astype(np.intp)
    q_end = slot_end[q_slot]
    q_count = q_end - np.where(q_slot > 0, slot_end[q_slot - 1], 0)
    hit = np.flatnonzero(q_count)  # most queries land in empty slots
    # ... and one candidate per detection in that query's slot.
    c_query, c_rank = _expand(q_count[hit])
    c_query = hit[c_query]
    det = by_slot[q_end[c_query] - q_count[c_query] + c_rank]
    track = q_track[c_query]
    same_cell = det_key[det] == q_key[c_query]
    track, det = track[same_cell], det[same_cell]
    dx = z[det, 0] - z_pred[track, 0]
    dy = z[det, 1] - z_pred[track, 1]
    near = dx * dx + dy * dy <= radius[track] ** 2
    return track[near], det[near], np.flatnonzero(too_wide)


def _sweep_pairs(
    z_pred: np.ndarray, radius: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Pairs whose east and north offsets are both within the track's radius, by a
    sweep over east; None when the candidates would outnumber ``SWEEP_GATE_LIMIT``
    per track (dense scenes, or tracks lined up along one north-south strip).

    Detections are sorted by east once; each track's candidates are the run whose
    east lies within its radius (two binary searches), and the north test keeps the
    box. Cheaper than the hash grid when the strips hold few detections, which is the
    usual scan: a few calls over all tracks and one over the candidates.

    Returns
    -------
    track, detection : ndarray, shape (G,), intp
        A superset of the pairs within the radius (the box around its circle).
    """
    n, m = z_pred.shape[0], z.shape[0]
    # Detections per strip if they were spread evenly along east: a dense scene goes
    # to the grid before paying for the sort.
    extent = float(z[:, 0].max() - z[:, 0].min())
    if 2.0 * float(radius.mean()) * m > SWEEP_GATE_LIMIT * extent:
        return None
    radius = radius * (1.0 + 1e-6)  # round-off must not drop a pair on the bound
    order = np.argsort(z[:, 0], kind="stable")
    east = z[order, 0]
    first = np.searchsorted(east, z_pred[:, 0] - radius, side="left")
    count = np.searchsorted(east, z_pred[:, 0] + radius, side="right") - first
    if count.sum() > SWEEP_GATE_LIMIT * max(n, 1):
        return None
    track, rank = _expand(count)
    det = order[first[track] + rank]
    keep = np.abs(z[det, 1] - z_pred[track, 1]) <= radius[track]
    return track[keep], det[keep]


def _spatial_pairs(
    z_pred: np.ndarray, radius: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs closer than each track's radius (or a superset): the east sweep when its
    strips are sparse, else the hash grid, k-d trees for wide tracks.

    The cell side is twice the 90th percentile radius, so nine tracks in ten overlap
    at most 2 x 2 cells and the rest a few more.
    """
    swept = _sweep_pairs(z_pred, radius, z)
    if swept is not None:
        return swept
    k = int(0.9 * (radius.size - 1))
    cell = 2.0 * float(np.partition(radius, k)[k])  # the 90th percentile, without a sort
    track, det, wide = _grid_pairs(z_pred, radius, z, max(cell, 1e-6))
    if wide.size == 0:
        return track, det
    wide_track, wide_det = _tree_pairs(z_pred[wide], radius[wide], z)
    return np.concatenate([track, wide[wide_track]]), np.concatenate([det, wide_det])


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
    dense = n * m <= dense_pair_limit
    if dense:
        # Every pair, as (N, M) broadcasts in pair order (track-major): no pair index
        # to gather through; only the pairs inside get their indices. Each entry is
        # the same expression as on the gathered path.
        y0 = z[:, 0] - z_pred[:, 0, None]
        y1 = z[:, 1] - z_pred[:, 1, None]
        a = P_pos[:, 0, 0, None] + R[:, 0, 0]
        b = P_pos[:, 0, 1, None] + R[:, 0, 1]
        c = P_pos[:, 1, 1, None] + R[:, 1, 1]
    else:
        # d^2 <= gamma implies |y|^2 <= gamma * lambda_max(S), and
        # lambda_max(P + R) <= lambda_max(P) + max_j lambda_max(R_j).
        radius = np.sqrt(threshold * (_max_eigenvalue(P_pos) + _max_eigenvalue(R).max()))
        ti, dj = _spatial_pairs(z_pred, radius, z)
        y0 = z[dj, 0] - z_pred[ti, 0]
        y1 = z[dj, 1] - z_pred[ti, 1]
        # S = H P H' + R per pair, kept as its three distinct entries
        a = P_pos[:, 0, 0][ti] + R[:, 0, 0][dj]
        b = P_pos[:, 0, 1][ti] + R[:, 0, 1][dj]
        c = P_pos[:, 1, 1][ti] + R[:, 1, 1][dj]
    det = (a * c - b * b).ravel()
    d2 = ((c * y0 * y0 - 2.0 * b * y0 * y1 + a * y1 * y1).ravel() / det)  # y' S^-1 y
    inside = (d2 <= threshold).nonzero()[0]  # flatnonzero, without its 1 us wrapper
    if dense:
        ti, dj = np.divmod(inside, m)  # the pair index is track * M + detection
    else:
        ti, dj = ti[inside], dj[inside]
    # Sort by track, then detection; the dense and grid paths are already nearly in
    # that order, so the sort only runs when some track has pairs out of order.
    if not dense:
        key = ti * m + dj
        if key.size > 1 and np.any(key[1:] < key[:-1]):
            order = np.argsort(key, kind="stable")
            ti, dj, inside = ti[order], dj[order], inside[order]
    return GatedPairs(ti, dj, d2[inside], np.log(det[inside]))


def gate_within(
    z: np.ndarray, P_pos: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of one set of positions inside each other's gate, each pair once.

    The pairs ``a < b`` that :func:`gate` ``(z, P_pos, z, P_pos, threshold)`` passes,
    with ``d^2`` evaluated by the same expression, found by a sweep over east instead
    of the spatial hash: a self-join of well separated tracks (duplicate search) has
    almost no candidates, and the sweep costs a sort and a few whole-array calls.

    ``d^2 <= gamma`` implies ``|y| <= sqrt(gamma lambda_max(P_a + P_b)) <= r_a + r_b``
    with ``r = sqrt(gamma lambda_max(P))``, so only pairs whose boxes of half-width
    ``r`` overlap are tested. When the boxes line up along east so that the candidates
    outnumber ``SWEEP_PAIR_LIMIT`` per position, :func:`gate` does the work instead.

    Parameters
    ----------
    z : ndarray, shape (N, 2)
    P_pos : ndarray, shape (N, 2, 2)
    threshold : float

    Returns
    -------
    a, b : ndarray, shape (G,), intp
        Indices into the N positions, ``a < b``.
    """
    n = z.shape[0]
    # A relative margin over the bound keeps round-off from dropping a pair on it.
    r = np.sqrt(threshold * _max_eigenvalue(P_pos)) * (1.0 + 1e-6)
    lo = z[:, 0] - r
    order = np.argsort(lo, kind="stable")
    end = np.searchsorted(lo[order], (z[:, 0] + r)[order], side="right")
    count = np.maximum(end - np.arange(1, n + 1), 0)  # later boxes starting before this ends
    if count.sum() > SWEEP_PAIR_LIMIT * max(n, 1):
        near = gate(z, P_pos, z, P_pos, threshold)
        pair = near.track < near.detection
        return near.track[pair], near.detection[pair]
    parent, rank = _expand(count)
    i, j = order[parent], order[parent + 1 + rank]
    overlap = np.abs(z[i, 1] - z[j, 1]) <= r[i] + r[j]
    i, j = i[overlap], j[overlap]
    ti, dj = np.minimum(i, j), np.maximum(i, j)
    # As in gate, with the track ti and the detection dj
    y0 = z[dj, 0] - z[ti, 0]
    y1 = z[dj, 1] - z[ti, 1]
    a = P_pos[:, 0, 0][ti] + P_pos[:, 0, 0][dj]
    b = P_pos[:, 0, 1][ti] + P_pos[:, 0, 1][dj]
    c = P_pos[:, 1, 1][ti] + P_pos[:, 1, 1][dj]
    det = a * c - b * b
    d2 = (c * y0 * y0 - 2.0 * b * y0 * y1 + a * y1 * y1) / det  # y' S^-1 y
    inside = d2 <= threshold
    return ti[inside], dj[inside]
