"""Breach probability within a horizon, against Monte Carlo draws of the same model."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.alerting.breach import breach_probability, gap_and_normal
from fusion.tracking import kalman

# The zone is the half-plane north <= 0 near the tracks (a wide strip).
STRIP = np.array([[-1e5, -3000.0], [1e5, -3000.0], [1e5, 0.0], [-1e5, 0.0]])


def monte_carlo(x, P, horizon, accel_var, rng, draws=200_000):
    """Fraction of CV + white-acceleration draws south of north = 0 after ``horizon``."""
    states = rng.multivariate_normal(x, P, size=draws)
    Q = kalman.process_noise(np.array([horizon]), accel_var)[0]
    F = kalman.transition_matrix(horizon)
    end = states @ F.T + rng.multivariate_normal(np.zeros(4), Q, size=draws)
    return float(np.mean(end[:, 1] <= 0.0))


@pytest.mark.parametrize(
    "north, v_north, horizon, accel_var",
    [(600.0, -12.0, 60.0, 0.04), (600.0, -8.0, 60.0, 0.04), (300.0, -2.0, 30.0, 4.0),
     (900.0, 5.0, 60.0, 0.04)],
)
def test_agrees_with_monte_carlo(north, v_north, horizon, accel_var):
    rng = np.random.default_rng(11)
    x = np.array([0.0, north, 1.0, v_north])
    P = np.diag([400.0, 400.0, 4.0, 4.0])
    P[1, 3] = P[3, 1] = 10.0
    gap, normal = gap_and_normal(STRIP, x[None, :2])
    got = breach_probability(
        gap, normal, x[None], P[None], horizon, np.array([accel_var]), steps=1
    )
    assert got[0] == pytest.approx(monte_carlo(x, P, horizon, accel_var, rng), abs=0.01)


def first_passage(x, P, horizon, accel_var, rng, draws=100_000, steps=90):
    """Fraction of draws south of north = 0 at any time up to ``horizon``, under the
    model the breach probability makes: the state's Gaussian and one random
    acceleration held over the horizon (variance ``accel_var`` per axis)."""
    state = rng.multivariate_normal(x, P, size=draws)
    accel = rng.normal(0.0, np.sqrt(accel_var), size=draws)
    tau = np.linspace(0.0, horizon, steps + 1)[1:, None]
    north = state[:, 1] + tau * state[:, 3] + 0.5 * accel * tau**2
    return float((north <= 0.0).any(axis=0).mean())


@pytest.mark.parametrize(
    "north, v_north, accel_var", [(20.0, -1.5, 0.04), (300.0, -8.0, 0.0025), (150.0, -2.0, 0.04)]
)
def test_looking_before_the_horizon_bounds_the_first_passage(north, v_north, accel_var):
    """Across at some tau <= H: at least P(across at H), at most the true first passage."""
    rng = np.random.default_rng(5)
    x = np.array([0.0, north, 0.0, v_north])
    P = np.diag([25.0, 25.0, 0.25, 0.25])
    gap, normal = gap_and_normal(STRIP, x[None, :2])
    args = (gap, normal, x[None], P[None], 45.0, np.array([accel_var]))
    at_h, within = breach_probability(*args, steps=1)[0], breach_probability(*args)[0]
    truth = first_passage(x, P, 45.0, accel_var, rng)
    assert at_h <= within <= truth + 0.01
    assert within >= truth - 0.1


def test_modes_mix_by_their_probabilities():
    x = np.array([[0.0, 600.0, 0.0, -8.0]])
    P = np.diag([400.0, 400.0, 4.0, 4.0])[None]
    gap, normal = gap_and_normal(STRIP, x[:, :2])
    quiet, wild = (breach_probability(gap, normal, x, P, 60.0, np.array([q])) for q in (0.04, 4.0))
    both = breach_probability(
        gap, normal, x, P, 60.0, np.array([0.04, 4.0]), weights=np.array([[0.7], [0.3]])
    )
    assert both[0] == pytest.approx(0.7 * quiet[0] + 0.3 * wild[0])


def test_inside_is_certain_and_receding_is_not():
    x = np.array([[0.0, -100.0, 0.0, 5.0], [0.0, 2000.0, 0.0, 10.0]])
    P = np.broadcast_to(np.diag([100.0, 100.0, 1.0, 1.0]), (2, 4, 4))
    gap, normal = gap_and_normal(STRIP, x[:, :2])
    assert gap[0] == pytest.approx(-100.0) and gap[1] == pytest.approx(2000.0)
    np.testing.assert_allclose(normal[1], [0.0, 1.0])
    p = breach_probability(gap, normal, x, P, 60.0, np.array([0.04]))
    assert p[0] == 1.0 and p[1] < 1e-6
