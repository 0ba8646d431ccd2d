"""The alert engine's fast paths equal the plain ones they replace.

``breach_probability`` works every look-ahead time and motion mode in one array; the
reference here is the loop it replaced (one time and one mode at a time), and the two
must agree to the bit, so no alert opens differently. ``Snapshot.checked`` settles the
finiteness of the whole covariance with one sum and falls back to block-by-block checks
only when that sum is not finite: the same arrays must be accepted and refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from fusion.alerting.breach import breach_probability
from fusion.alerting.snapshot import Snapshot


def _loop_reference(gap, normal, x, P, horizon, accel_vars, weights=None, steps=4):
    """The step-by-step form: one look-ahead time, then one mode, at a time."""
    H = np.broadcast_to(np.asarray(horizon, dtype=float), gap.shape)
    n0, n1 = normal[:, 0], normal[:, 1]

    def along(block):
        return n0 * n0 * block[:, 0, 0] + n0 * n1 * (block[:, 0, 1] + block[:, 1, 0]) \
            + n1 * n1 * block[:, 1, 1]

    closing = n0 * x[:, 2] + n1 * x[:, 3]
    var_p, var_v = along(P[:, :2, :2]), along(P[:, 2:, 2:])
    cov_pv = along(P[:, :2, 2:] + P[:, 2:, :2].transpose(0, 2, 1))
    J = accel_vars.shape[0]
    w = np.full((J, gap.shape[0]), 1.0 / J) if weights is None else weights
    best = np.zeros((J, gap.shape[0]))
    for k in range(1, steps + 1):
        tau = H * (k / steps)
        margin = gap + tau * closing
        var = var_p + tau * cov_pv + tau * tau * var_v
        for j in range(J):
            sigma = np.sqrt(np.maximum(var + accel_vars[j] * tau**4 / 4.0, 1e-12))
            np.maximum(best[j], ndtr(-margin / sigma), out=best[j])
    p = (w * best).sum(axis=0)
    return np.where(gap <= 0.0, 1.0, np.clip(p, 0.0, 1.0))


@pytest.mark.parametrize("seed", range(6))
def test_breach_probability_equals_the_loop_to_the_bit(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    gap = rng.normal(100.0, 300.0, n)
    angle = rng.uniform(0.0, 2 * np.pi, n)
    normal = np.c_[np.cos(angle), np.sin(angle)]
    x = rng.normal(0.0, 5.0, (n, 4))
    A = rng.normal(0.0, 3.0, (n, 4, 4))
    P = A @ A.transpose(0, 2, 1)
    horizon = rng.uniform(1.0, 120.0) if seed % 2 else rng.uniform(1.0, 120.0, n)
    accel_vars = rng.uniform(0.001, 1.0, 1 + seed % 2)
    weights = None if seed < 3 else rng.dirichlet(np.ones(accel_vars.size), n).T
    steps = 1 + seed % 4
    got = breach_probability(gap, normal, x, P, horizon, accel_vars, weights, steps)
    want = _loop_reference(gap, normal, x, P, horizon, accel_vars, weights, steps)
    assert got.tobytes() == want.tobytes()


def _arrays(n=5):
    rng = np.random.default_rng(7)
    A = rng.normal(0.0, 3.0, (n, 4, 4))
    return (np.arange(n, dtype=np.int64), rng.normal(0.0, 100.0, (n, 4)),
            A @ A.transpose(0, 2, 1), np.zeros(n, np.uint8), np.ones(n))


def test_snapshot_refuses_non_finite_blocks_it_reads():
    ids, x, P, cls, conf = _arrays()
    for block in ((0, 0), (1, 1), (2, 3), (3, 0)):  # position, velocity, vel-pos rows
        bad = P.copy()
        bad[2][block] = np.nan
        with pytest.raises(ValueError, match="NaN or infinity"):
            Snapshot.checked(ids, x, bad, cls, conf)
    bad_x = x.copy()
    bad_x[1, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        Snapshot.checked(ids, bad_x, P, cls, conf)


def test_snapshot_accepts_what_it_never_reads_and_checks_signed_classes():
    ids, x, P, cls, conf = _arrays()
    odd = P.copy()
    odd[0, 0, 2] = np.nan  # the position-velocity block above the diagonal: unread
    snap = Snapshot.checked(ids, x, odd, cls, conf)
    assert np.isfinite(snap.P_pos).all() and np.isfinite(snap.P_vel).all()
    with pytest.raises(ValueError, match="indices outside"):
        Snapshot.checked(ids, x, P, np.array([0, 1, -1, 2, 3]), conf)
    with pytest.raises(ValueError, match="indices outside"):
        Snapshot.checked(ids, x, P, np.array([0, 1, 9, 2, 3], np.uint8), conf)


def test_breach_blocks_gathered_from_snapshot_rows_match_covariance_blocks():
    """The view gathers the breach's covariance blocks from ``Snapshot.P_rows`` (the
    tracker's P as it came, or rebuilt from a checkpoint's blocks): the same bits as
    :func:`covariance_blocks` of the full P."""
    from fusion.alerting.breach import BreachModel, covariance_blocks
    from fusion.alerting.rules import load_rules
    from fusion.alerting.views import _breach

    rng = np.random.default_rng(11)
    n = 50
    ids, x, P, cls, conf = _arrays(n)
    gap = rng.uniform(1.0, 500.0, n)
    angle = rng.uniform(0.0, 2 * np.pi, n)
    normal = np.c_[np.cos(angle), np.sin(angle)]
    model = BreachModel.from_rule(load_rules().for_zone("*").predicted_incursion)
    want = model.probability(gap, normal, x, covariance_blocks(P), None)
    snap = Snapshot.checked(ids, x, P, cls, conf)
    restored = Snapshot(**snap.as_state())
    rows = np.arange(n)
    for s in (snap, restored):
        got = _breach(model, s, rows, s.table, gap, normal)
        assert got.tobytes() == want.tobytes()
