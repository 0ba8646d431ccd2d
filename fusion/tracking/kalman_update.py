"""The batched Kalman update for a position measurement (``H = [I 0]``).

Split from ``fusion.tracking.kalman`` (which re-exports :func:`update`,
:func:`update_batch_last`, ``UPDATE_BLOCK`` and ``SHRINK_LIMIT``, so callers import
them from there as before); layout and references as described there.
"""

from __future__ import annotations

import math

import numpy as np

# Filters per block in update_batch_last (all modes counted). Its largest temporaries are
# (4, 2) per filter, 256 KiB at 4096 filters. Temporaries of 256 KiB per 2048 filters
# ((4, 4, 2048), from an earlier form of the update) were returned to the system after
# each call and faulted back in on the 2-core EPYC of issue 14 (2x slower per filter at
# 1e4 filters). A block costs some 50 numpy calls whatever its size, so blocks must not
# be cut finer than that: at 2048 the two modes of a 1e3-track scan (2,100 filters)
# took two blocks, and the update 1.5x as long as in one (2026-12-03, same runs);
# at 4096 the kernel benchmark at 1e4 filters ran 0.74-0.94 ms against 1.38-1.42 at 2048,
# and the scan at 1e3 and 1e4 tracks in a plain process as fast or faster.
UPDATE_BLOCK = 4096

# A block of filters keeps the multiplied-out Joseph form (update_batch_last) only if no
# variance in it shrank by more than this factor in the update. Against an
# extended-precision reference, random priors and noises, the multiplied-out form was
# then within 3e-12 of the exact result, relative to the posterior's standard
# deviations (the Joseph products: 1e-12); for shrink factors up to 1e5 within 3e-11,
# and it degrades fast beyond (1e-7 up to 1e9, 0.08 past it, where long coasting meets
# a precise fix), so such a block is redone with the products.
SHRINK_LIMIT = 1e4



def update(
    x: np.ndarray, P: np.ndarray, z: np.ndarray, R: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Update each filter with one position measurement (``H = [I 0]``).

    Joseph form ``P = (I - K H) P (I - K H)' + K R K'``; batch-first front end of
    :func:`update_batch_last`.

    Parameters
    ----------
    x : ndarray, shape (N, 4)
        Predicted states.
    P : ndarray, shape (N, 4, 4)
        Predicted covariances.
    z : ndarray, shape (N, 2)
        Measured positions.
    R : ndarray, shape (N, 2, 2)
        Measurement covariances.

    Returns
    -------
    x_post : ndarray, shape (N, 4)
    P_post : ndarray, shape (N, 4, 4)
    """
    x_post, P_post = update_batch_last(x.T, P.transpose(1, 2, 0), z.T, R.transpose(1, 2, 0))
    return np.ascontiguousarray(x_post.T), np.ascontiguousarray(P_post.transpose(2, 0, 1))


def _mm(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Batched product of small batch-last matrices with inner dimension 2.

    Parameters
    ----------
    X : ndarray, shape (a, 2, *B)
    Y : ndarray, shape (2, c, *B)

    Returns
    -------
    XY : ndarray, shape (a, c, *B)
    """
    # Two broadcast multiply-adds whose inner loops run over N; every product in the
    # update has inner dimension 2 because H = [I 0] picks two of the four states.
    XY = X[:, 0, None] * Y[None, 0]
    XY += X[:, 1, None] * Y[None, 1]
    return XY


def update_batch_last(
    x: np.ndarray,
    P: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    likelihood: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`update` on batch-last arrays, Joseph form written on blocks.

    Joseph form ``P = (I - K H) P (I - K H)' + K R K'``: it stays symmetric
    positive-definite under round-off and for a suboptimal ``K``, which the simple
    ``(I - K H) P`` does not guarantee over thousands of updates.

    It is evaluated multiplied out first. With ``L = P H'`` (the first two columns of
    ``P``) and ``S = H P H' + R``, for any ``K``

    ``(I - K H) P (I - K H)' + K R K' = P - K L' - L K' + K S K' = P - (K E' + E K') / 2``,
    ``E = 2 L - K S``,

    one product of inner dimension 2 (:func:`_mm`) for ``K E'`` besides the small
    ``K S``, and symmetric by construction. It is still the Joseph form, first-order
    insensitive to an error in ``K``, but computed as ``P`` minus a term nearly as
    large, so its round-off is relative to the prior rather than the posterior: where
    some variance shrinks by more than ``SHRINK_LIMIT`` the block is recomputed as the
    Joseph products (:func:`_joseph_products`), whose round-off is relative to the
    posterior. Both agree with filterpy far inside the tests' 1e-9.

    Parameters
    ----------
    x : ndarray, shape (4, *B)
        Predicted states; ``B`` is the batch shape, (N,) or (J, N) for IMM modes.
    P : ndarray, shape (4, 4, *B)
        Predicted covariances.
    z : ndarray, shape (2, *B), or broadcastable to it
        Measured positions; (2, 1, N) for B = (J, N) serves every mode.
    R : ndarray, shape (2, 2, *B), or broadcastable to it
        Measurement covariances.
    likelihood : ndarray, shape B, optional
        Filled with each filter's measurement likelihood ``N(y; 0, S)``, ``y = z - H x``
        (what an IMM weighs its modes by), from the ``S`` the update inverts anyway.

    Returns
    -------
    x_post : ndarray, shape (4, *B)
    P_post : ndarray, shape (4, 4, *B)
        New arrays laid out in memory like ``x`` and ``P``; the inputs are not modified.
    """
    x_post = np.empty_like(x)
    P_post = np.empty_like(P)
    # Blocks of filters at a time: the products below make (4, 2, *B) temporaries, and
    # at n = 1e5 fresh 6 MB temporaries cost more in page faults than in arithmetic.
    # Blocks of at most UPDATE_BLOCK filters (modes included) keep them small, reused
    # by the allocator and in cache. The blocks are of equal size: each costs some 50
    # numpy calls whatever its size, so a short last block (2100 filters as 2048 + 52)
    # would cost nearly as much as a full one.
    n = x.shape[-1]
    blocks = -(-n * math.prod(x.shape[1:-1]) // UPDATE_BLOCK)  # ceil; np.prod costs 3 us
    step = max(1, -(-n // max(blocks, 1)))
    if step >= n:  # one block (every small batch): no views to cut
        _update_block(x, P, z, R, x_post, P_post, likelihood)
        return x_post, P_post
    for lo in range(0, n, step):  # a loop over blocks, not filters
        b = slice(lo, lo + step)
        _update_block(
            x[..., b], P[..., b], z[..., b], R[..., b], x_post[..., b], P_post[..., b],
            None if likelihood is None else likelihood[..., b],
        )
    return x_post, P_post


def _update_block(
    x: np.ndarray,
    P: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    x_post: np.ndarray,
    P_post: np.ndarray,
    likelihood: np.ndarray | None,
) -> None:
    """The algebra of :func:`update_batch_last` on one block of filters, written into
    ``x_post``, ``P_post`` and ``likelihood`` (views of the whole outputs)."""
    y = z - x[:2]  # y = z - H x
    S = P[:2, :2] + R  # S = H P H' + R
    S_inv, det = _inv2_batch_last(S)
    L = P[:, :2]  # P H'
    K = _mm(L, S_inv)  # K = P H' S^-1, shape (4, 2, n)
    np.add(x, _mm(K, y[:, None])[:, 0], out=x_post)  # x = x + K y
    if likelihood is not None:
        Sy = _mm(S_inv, y[:, None])[:, 0]  # S^-1 y
        d2 = y[0] * Sy[0]
        d2 += y[1] * Sy[1]  # y' S^-1 y
        np.exp(-0.5 * d2, out=likelihood)
        likelihood /= (2.0 * np.pi) * np.sqrt(det)

    E = _mm(K, S)
    np.subtract(L + L, E, out=E)  # E = 2 L - K S
    # G = P - K E', accumulated in P_post: the largest temporary is (4, 2, n) or
    # (2, 4, n), which is what lets a block hold UPDATE_BLOCK filters.
    Et = E.swapaxes(0, 1)
    np.multiply(K[:, 0, None], Et[None, 0], out=P_post)
    for i in (0, 2):  # the two halves of the rows, not filters
        P_post[i : i + 2] += K[i : i + 2, 1, None] * Et[None, 1]
    np.subtract(P, P_post, out=P_post)
    # (G + G') / 2 = P - (K E' + E K') / 2 when P is symmetric; when round-off left the
    # prior a few ulps off, this restores symmetry exactly too (over long runs that
    # drift compounds), a change far below 1e-9 relative.
    _symmetrise(P_post)
    # Filters where a variance collapsed (rare) take the products instead, each on its
    # own, so a filter's result never depends on the others in its block. A NaN fails
    # the comparison too, and gets the products' verdict.
    prior, post = P.diagonal(axis1=0, axis2=1), P_post.diagonal(axis1=0, axis2=1)
    kept = post * SHRINK_LIMIT > prior
    if not kept.all():
        bad = ~kept.all(axis=-1)  # shape B
        P_post[:, :, bad] = _joseph_products(
            P[:, :, bad], np.broadcast_to(R, S.shape)[:, :, bad], K[:, :, bad]
        )


def _symmetrise(P: np.ndarray) -> None:
    """``P = (P + P') / 2`` in place for P (4, 4, *B), block by block.

    The off-diagonal 2x2 block and the off-diagonal entries of the two diagonal blocks:
    no (4, 4, *B) temporary, and the same bits as the whole-matrix expression.
    """
    top_right = P[:2, 2:] + P[2:, :2].swapaxes(0, 1)
    top_right *= 0.5
    P[:2, 2:] = top_right
    P[2:, :2] = top_right.swapaxes(0, 1)
    for i in (0, 2):  # the two diagonal blocks
        off = P[i, i + 1] + P[i + 1, i]
        off *= 0.5
        P[i, i + 1] = P[i + 1, i] = off


def _joseph_products(P: np.ndarray, R: np.ndarray, K: np.ndarray) -> np.ndarray:
    """``(I - K H) P (I - K H)' + K R K'`` as products, symmetrised.

    With ``H = [I 0]``, ``K = [K1; K2]`` (position and velocity rows) and
    ``M = I - K H = [[I - K1, 0], [-K2, I]]``, the first two columns of ``M`` are
    ``M_0 = [I - K1; -K2]`` and the last two are ``[0; I]``, so

    ``M P = M_0 P_top + [0; P_bottom]`` and ``(M P) M' = (M P)_left M_0' + [0, (M P)_right]``

    where ``P_top`` is the first two rows of ``P``. Each product has inner dimension
    2 (:func:`_mm`), a quarter of the work of general 4x4 products.

    Parameters
    ----------
    P : ndarray, shape (4, 4, *B)
    R : ndarray, shape (2, 2, *B)
    K : ndarray, shape (4, 2, *B)

    Returns
    -------
    P_post : ndarray, shape (4, 4, *B)
    """
    M0 = -K  # M_0 = [I - K1; -K2], the first two columns of M = I - K H
    M0[0, 0] += 1.0
    M0[1, 1] += 1.0
    MP = _mm(M0, P[:2])  # M P = M_0 P_top + [0; P_bottom]
    MP[2:] += P[2:]
    P_post = _mm(MP[:, :2], M0.swapaxes(0, 1))  # (M P) M' = (M P)_left M_0'
    P_post[:, 2:] += MP[:, 2:]  # + [0, (M P)_right]
    P_post += _mm(_mm(K, R), K.swapaxes(0, 1))  # + K R K'
    _symmetrise(P_post)  # as the multiplied-out form
    return P_post


def _inv2_batch_last(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and determinant of symmetric 2x2 matrices in closed form, shape
    (2, 2, *B) -> (2, 2, *B) and B."""
    a, b, c = S[0, 0], S[0, 1], S[1, 1]
    det = a * c - b * b
    S_inv = np.empty_like(S)
    np.divide(c, det, out=S_inv[0, 0])
    np.divide(a, det, out=S_inv[1, 1])
    np.divide(-b, det, out=S_inv[0, 1])
    S_inv[1, 0] = S_inv[0, 1]
    return S_inv, det
